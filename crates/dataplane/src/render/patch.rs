//! A policy edit patched into what the kernel holds, instead of a render of everything.
//!
//! Even with every chain cached, a full render walks every local identity, every
//! signature, every policy chain and every set (about 25 ms at 10k workloads), and the
//! diff compares all of it again. A typical edit changes one policy: its chains, the
//! signature chains that jump to them, and the marks of the identities whose signature
//! chain got a new number. This patch starts from the kernel's ruleset and re-renders
//! exactly that, with the same code as a full render (so the result is what a render
//! would give, plus leftovers nothing refers to: the next idle sweep removes them).

use std::collections::BTreeSet;

use bulkhead_policy::Engine;
use bulkhead_policy::compile::Direction;
use rustc_hash::{FxHashMap, FxHashSet};

use super::cache::DocKey;
use super::{RenderCache, RenderIndex, RenderOptions, Renderer, SignatureKey};
use crate::ids::KernelIds;
use crate::names::{SIG_OVERFLOW, SIG_SHIFT};
use crate::render::CHAIN_DENY;
use crate::ruleset::{Elem, Ruleset, SetKind};

/// A patched ruleset, and the names of the sets and chains the patch added or changed
/// (everything else is what the kernel holds: the transaction needs only these).
pub struct Patch {
    pub desired: Ruleset,
    pub index: RenderIndex,
    pub touched: Vec<String>,
}

impl Patch {
    /// The transaction from `applied` to the patched ruleset: [`crate::diff`] over the
    /// touched objects alone (a patch adds and changes, never removes).
    pub fn transaction(&self, applied: &Ruleset) -> crate::Transaction {
        let pick = |rs: &Ruleset| {
            let mut sub = Ruleset {
                exists: rs.exists,
                ..Ruleset::default()
            };
            for name in &self.touched {
                if let Some(s) = rs.sets.get(name) {
                    sub.sets.insert(name.clone(), s.clone());
                }
                if let Some(c) = rs.chains.get(name) {
                    sub.chains.insert(name.clone(), c.clone());
                }
            }
            sub
        };
        crate::diff(&pick(applied), &pick(&self.desired))
    }
}

/// The ruleset after a policy-only change, patched into `applied` (what the kernel
/// holds, rendered by this node with this cache, `index` describing it). None when the
/// change is not a patch: an identity's resolution changed (which policies apply to it,
/// isolation, mode), or this node's identities changed since the last full render; the
/// caller then renders everything.
pub fn render_policy_patch(
    engine: &Engine,
    opts: &RenderOptions,
    ids: &mut KernelIds,
    cache: &mut RenderCache,
    applied: &Ruleset,
    index: &RenderIndex,
) -> Option<Patch> {
    // Every local identity must resolve as it did (same policies, same order).
    let mut local: FxHashSet<u32> = FxHashSet::default();
    for (wid, w) in engine.workloads_unordered() {
        let here = opts
            .node
            .as_deref()
            .is_none_or(|n| w.node.as_deref() == Some(n));
        if here && let Some(id) = engine.identity_of(wid) {
            local.insert(id);
        }
    }
    if local.len() != cache.local_keys.len() {
        return None;
    }
    for id in &local {
        let ep = engine.endpoint_policy(*id)?;
        if cache.local_keys.get(id) != Some(&SignatureKey::of(ep)) {
            return None;
        }
    }
    // Identities by resolution.
    let mut by_key: FxHashMap<SignatureKey, Vec<u32>> = FxHashMap::default();
    for (id, key) in &cache.local_keys {
        by_key.entry(key.clone()).or_default().push(*id);
    }

    let mut r = Renderer::new(engine, opts, ids, cache, Some(applied));
    r.out = applied.clone();
    r.index = index.clone();
    // Selector numbers belong to one compile: the index names the current ones (a
    // selector no policy has any more leaves a set only leftovers use).
    let selector_sets = std::mem::take(&mut r.index.selector_sets);
    r.index.selector_sets = selector_sets
        .into_iter()
        .filter_map(|(name, _)| r.sel_by_name.get(&name).map(|&sid| (name, sid)))
        .collect();
    r.local_sigs = r.cache.local_sigs.clone();
    r.touched = Some(FxHashSet::default());

    // The documents whose chains would change.
    let compiled = engine.compiled();
    let mut checked: FxHashMap<DocKey, bool> = FxHashMap::default();
    let mut changed = |r: &Renderer, doc: DocKey| -> bool {
        *checked.entry(doc).or_insert_with(|| {
            let (np, i, dir) = doc;
            let range = if np {
                let n = &compiled.network_policies[i as usize];
                match dir {
                    Direction::Ingress => n.ingress.clone(),
                    Direction::Egress => n.egress.clone(),
                }
                .unwrap_or(0..0)
            } else {
                let p = &compiled.policies[i as usize];
                match dir {
                    Direction::Ingress => p.ingress.clone(),
                    Direction::Egress => p.egress.clone(),
                }
            };
            let rules = &compiled.rules[range.start as usize..range.end as usize];
            !r.cache.doc_unchanged(doc, rules, &r.sel_sets)
        })
    };
    let mut affected: Vec<(&SignatureKey, &Vec<u32>)> = Vec::new();
    for (key, members) in &by_key {
        // NetworkPolicy chains are only part of a direction the resolution is isolated
        // in (as the tail chain renders them).
        let hit = [Direction::Egress, Direction::Ingress]
            .into_iter()
            .any(|dir| {
                let isolated = match dir {
                    Direction::Ingress => key.ingress_isolated,
                    Direction::Egress => key.egress_isolated,
                };
                key.policies.iter().any(|&pi| changed(&r, (false, pi, dir)))
                    || (isolated
                        && key
                            .network_policies
                            .iter()
                            .any(|&ni| changed(&r, (true, ni, dir))))
            });
        if hit {
            affected.push((key, members));
        }
    }
    if affected.is_empty() {
        // The divert chain (L7 proxy) follows every policy's gated rules and the
        // signatures of Discover workloads: rendered again, rewritten in the kernel only
        // if it changed.
        if let Some(port) = opts.l7_proxy {
            r.divert_chain(port);
        }
        let touched = r.touched.take().unwrap_or_default().into_iter().collect();
        return Some(Patch {
            desired: r.out,
            index: r.index,
            touched,
        });
    }

    // Their signature chains again (the changed policy chains are rendered on the way),
    // and the dispatch entries of the new ones.
    let mut e_seen: BTreeSet<String> = BTreeSet::new();
    let mut i_seen: BTreeSet<String> = BTreeSet::new();
    for (key, members) in affected {
        let id = members[0];
        let e = r.signature_chain(id, Direction::Egress);
        let i = r.signature_chain(id, Direction::Ingress);
        r.index
            .signatures
            .insert(key.clone(), (e.clone(), i.clone()));
        let es = r.ids.egress_sigs.number(&e).unwrap_or(SIG_OVERFLOW);
        let is = r.ids.ingress_sigs.number(&i).unwrap_or(SIG_OVERFLOW);
        for m in members {
            r.local_sigs.insert(*m, (es, is));
        }
        for (map, sig, chain, seen) in [
            ("e_dispatch", es, e, &mut e_seen),
            ("i_dispatch", is, i, &mut i_seen),
        ] {
            let chain = if sig == SIG_OVERFLOW {
                CHAIN_DENY.to_string()
            } else {
                chain
            };
            if seen.insert(chain.clone()) {
                let elem = Elem::MarkGoto(sig << SIG_SHIFT, chain);
                let set = r.set(map, SetKind::MarkVerdicts);
                if !set.contains(&elem) {
                    set.insert(elem);
                }
            }
        }
    }
    // New signature numbers: those identities' addresses carry them (and the divert
    // chain names the Discover ones).
    if let Some(port) = opts.l7_proxy {
        r.divert_chain(port);
    }
    r.identity_maps();
    let touched = r.touched.take().unwrap_or_default().into_iter().collect();
    Some(Patch {
        desired: r.out,
        index: r.index,
        touched,
    })
}
