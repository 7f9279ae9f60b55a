//! What one render keeps for the next: chains already rendered, by content.
//!
//! A policy edit used to re-render all of a node's chains (3,600 chains and 17,700 rules
//! at 10k workloads, ~45 ms). Most of that work repeats itself: a policy's chain depends
//! only on its compiled rules, a signature chain only on the chains it jumps to. So each
//! rendered chain is remembered under a key that spells out everything it depends on
//! (never a hash: a collision would program the wrong rules), with the sets its rules
//! use. The next render looks the key up and re-renders only what changed, as Calico
//! Felix's calculation graph recomputes only what an update touches.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_model::Protocol;
use bulkhead_policy::compile::{CRule, Direction, Target};
use bulkhead_policy::spec::{Action, PortSpec};
use rustc_hash::{FxHashMap, FxHashSet};

use super::SignatureKey;
use crate::names::content_name;
use crate::ruleset::{ChainState, Elem, SetKind};
use bulkhead_policy::selectors::EndpointSelector;

/// A set a cached chain's rules refer to: replayed on a cache hit so the set exists and
/// is filled from the current state (its members may have changed since).
#[derive(Clone, Debug)]
pub(super) enum SetUse {
    /// A selector's identities (by set name; the selector's number may differ between
    /// compiles of the same policy).
    Selector(String),
    /// A constant set (CIDRs, their exceptions, DNS name sets filled later).
    Fixed {
        name: String,
        kind: SetKind,
        elems: Vec<Elem>,
    },
    /// The (address, port) pairs of a named port.
    NamedPort {
        set: String,
        port: String,
        proto: Protocol,
        v6: bool,
    },
}

/// A rendered chain and what rendering it again would have done besides.
#[derive(Clone, Debug)]
pub(super) struct Rendered {
    /// Empty: the rules render to nothing (no chain).
    pub name: Arc<str>,
    pub chain: ChainState,
    pub has_pass: bool,
    pub uses: Vec<SetUse>,
}

/// A signature chain and its tail chain (name, chain), and the policy and
/// NetworkPolicy chains they jump to.
#[derive(Debug)]
pub(super) struct SigChains {
    pub jumps: Vec<(Arc<str>, bool)>,
    pub nps: Vec<Arc<str>>,
    pub tail: (String, ChainState),
    pub sig: (String, ChainState),
    /// Their keys in the chain cache (kept alive while this entry is used).
    pub keys: [String; 2],
}

/// A chain's document: (a NetworkPolicy?, its index, the direction).
pub(super) type DocKey = (bool, u32, Direction);

/// Rendered chains by content key. Entries a render did not use are dropped after it,
/// so the cache never holds more than one render's chains.
#[derive(Default)]
pub struct RenderCache {
    /// Key -> (the render that last used it, the chain).
    chains: FxHashMap<String, (u64, Arc<Rendered>)>,
    /// The fast path: (NetworkPolicy?, document index, direction) -> the rules it was
    /// rendered from, compared field by field (no key to format) before reuse.
    by_doc: FxHashMap<DocKey, (u64, Vec<RuleShape>, Arc<Rendered>)>,
    render: u64,
    /// Signature chains by resolution and direction, with the chains they were built
    /// over: reused while those chains are the same.
    sigs: FxHashMap<(SignatureKey, Direction), (u64, Arc<SigChains>)>,
    /// Each local identity's resolution in the last full render: a policy edit that
    /// leaves them all as they were can be patched in (see `patch`).
    pub(super) local_keys: FxHashMap<u32, SignatureKey>,
    /// Selector -> set name, from the last render.
    sel_names: FxHashMap<EndpointSelector, String>,
    /// Each local identity's signature numbers in the last render: a policy-only
    /// render re-marks the addresses of identities whose numbers changed.
    pub(super) local_sigs: FxHashMap<u32, (u32, u32)>,
    /// Addresses the element path marked since the last render: a carried render
    /// checks them again (see `marks`).
    pub(crate) dirty_addrs: FxHashSet<IpAddr>,
    pub(super) hits: usize,
    pub(super) misses: usize,
}

impl RenderCache {
    /// A render begins.
    pub(super) fn start(&mut self) {
        self.render += 1;
        self.hits = 0;
        self.misses = 0;
    }

    pub(super) fn get(&mut self, key: &str) -> Option<Arc<Rendered>> {
        match self.chains.get_mut(key) {
            Some((used, r)) => {
                *used = self.render;
                self.hits += 1;
                Some(r.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub(super) fn put(&mut self, key: String, r: Arc<Rendered>) {
        self.chains.insert(key, (self.render, r));
    }

    /// The chain document `doc` rendered to last time, if its rules read the same.
    pub(super) fn get_doc(
        &mut self,
        doc: DocKey,
        rules: &[CRule],
        selector_sets: &[String],
    ) -> Option<Arc<Rendered>> {
        let (used, shapes, r) = self.by_doc.get_mut(&doc)?;
        let same = shapes.len() == rules.len()
            && shapes
                .iter()
                .zip(rules)
                .all(|(s, r)| s.matches(r, selector_sets));
        if !same {
            return None;
        }
        *used = self.render;
        self.hits += 1;
        Some(r.clone())
    }

    /// Would the document's chain come out as last time? (No side effect.)
    pub(super) fn doc_unchanged(
        &self,
        doc: DocKey,
        rules: &[CRule],
        selector_sets: &[String],
    ) -> bool {
        self.by_doc.get(&doc).is_some_and(|(_, shapes, _)| {
            shapes.len() == rules.len()
                && shapes
                    .iter()
                    .zip(rules)
                    .all(|(s, r)| s.matches(r, selector_sets))
        })
    }

    pub(super) fn put_doc(
        &mut self,
        doc: DocKey,
        rules: &[CRule],
        selector_sets: &[String],
        r: Arc<Rendered>,
    ) {
        let shapes = rules
            .iter()
            .map(|r| RuleShape::of(r, selector_sets))
            .collect();
        self.by_doc.insert(doc, (self.render, shapes, r));
    }

    pub(super) fn get_sig(
        &mut self,
        key: &(SignatureKey, Direction),
        jumps: &[(Arc<str>, bool)],
        nps: &[Arc<str>],
    ) -> Option<Arc<SigChains>> {
        let (used, s) = self.sigs.get_mut(key)?;
        if s.jumps != jumps || s.nps != nps {
            return None;
        }
        *used = self.render;
        self.hits += 1;
        let s = s.clone();
        for k in &s.keys {
            if let Some((used, _)) = self.chains.get_mut(k) {
                *used = self.render;
            }
        }
        Some(s)
    }

    pub(super) fn put_sig(&mut self, key: (SignatureKey, Direction), s: SigChains) {
        self.sigs.insert(key, (self.render, Arc::new(s)));
    }

    /// Each selector's set name (`s_` and a hash of its text). Remembered from the
    /// previous render by selector: printing thousands of selectors is a good part of
    /// a render's fixed cost.
    pub(super) fn selector_sets(&mut self, selectors: &[EndpointSelector]) -> Vec<String> {
        // Selectors of deleted policies linger until they are many.
        if self.sel_names.len() > 2 * selectors.len() + 64 {
            self.sel_names.clear();
        }
        selectors
            .iter()
            .map(|sel| {
                if let Some(n) = self.sel_names.get(sel) {
                    return n.clone();
                }
                let n = content_name("s_", sel.to_string().as_bytes());
                self.sel_names.insert(sel.clone(), n.clone());
                n
            })
            .collect()
    }

    /// The render is done: forget what it did not use.
    pub(super) fn finish(&mut self) {
        let now = self.render;
        self.sigs.retain(|_, (used, _)| *used == now);
        self.chains.retain(|_, (used, _)| *used == now);
        self.by_doc.retain(|_, (used, _, _)| *used == now);
    }

    /// (hits, misses) of the last render, for the agent's log.
    pub fn stats(&self) -> (usize, usize) {
        (self.hits, self.misses)
    }
}

/// What the renderer reads of a compiled rule, with selectors by set name (their
/// numbers change between compiles, their names do not).
#[derive(Debug)]
pub(super) struct RuleShape {
    action: Action,
    gated: bool,
    peers: Vec<PeerShape>,
    ports: Vec<PortSpec>,
}

#[derive(Debug)]
enum PeerShape {
    Selector(String),
    Other(Target),
}

impl RuleShape {
    fn of(r: &CRule, selector_sets: &[String]) -> RuleShape {
        RuleShape {
            action: r.action,
            gated: r.app.is_some() || !r.l7.is_empty(),
            peers: r
                .peers
                .iter()
                .map(|t| match t {
                    Target::Workloads(s) => PeerShape::Selector(selector_sets[*s as usize].clone()),
                    other => PeerShape::Other(other.clone()),
                })
                .collect(),
            ports: r.ports.clone(),
        }
    }

    fn matches(&self, r: &CRule, selector_sets: &[String]) -> bool {
        self.action == r.action
            && self.gated == (r.app.is_some() || !r.l7.is_empty())
            && self.ports == r.ports
            && self.peers.len() == r.peers.len()
            && self.peers.iter().zip(&r.peers).all(|(p, t)| match (p, t) {
                (PeerShape::Selector(name), Target::Workloads(s)) => {
                    selector_sets[*s as usize] == *name
                }
                (PeerShape::Other(o), t) => o == t,
                _ => false,
            })
    }
}

/// The key of a chain rendered from compiled rules: the direction, the chain prefix and
/// every field of every rule the renderer reads, with selectors by their set names.
pub(super) fn rules_key(
    prefix: &str,
    dir: Direction,
    rules: &[CRule],
    selector_sets: &[String],
) -> String {
    let mut k = String::with_capacity(64 * rules.len() + 8);
    let _ = write!(k, "{prefix}{dir:?}");
    for r in rules {
        let gated = r.app.is_some() || !r.l7.is_empty();
        let _ = write!(k, "|{:?}{}", r.action, u8::from(gated));
        for t in &r.peers {
            match t {
                Target::Workloads(s) => {
                    let _ = write!(k, ";w{}", selector_sets[*s as usize]);
                }
                Target::Cidr(b) => {
                    let _ = write!(k, ";c{b}");
                }
                Target::Dns(p) => {
                    let _ = write!(k, ";d{}", p.0);
                }
                Target::Entity(e) => {
                    let _ = write!(k, ";e{e:?}");
                }
            }
        }
        for p in &r.ports {
            let _ = write!(k, ":{p:?}");
        }
    }
    k
}
