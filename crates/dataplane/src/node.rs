//! One node's data plane between changes: what the kernel holds, the kernel identity
//! numbers, and the index of where each set came from, so that a workload change becomes
//! element changes directly (as Calico Felix's calculation graph does) instead of a full
//! render and diff. That keeps change -> programmed time flat as the cluster grows.
//!
//! The element path handles what workload churn does: addresses appearing, leaving or
//! changing identity, identities appearing and disappearing (selector set memberships),
//! and identities gaining or losing their last workload on this node (dispatch entries).
//! Anything else (policy, namespace or node changes, or a workload whose policy signature
//! has no chain yet) falls back to a full render, which is always correct.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bulkhead_model::Workload;
use bulkhead_policy::Engine;
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::identity::IdentityKey;

use crate::diff::{Transaction, diff};
use crate::ids::KernelIds;
use crate::names::{ID_HOST, SIG_SHIFT};
use crate::netlink::ElemOp;
use crate::render::{
    RenderCache, RenderIndex, RenderOptions, SignatureKey, render_cached, render_policy_patch,
};
use crate::ruleset::{Elem, Ruleset, SetKind};

/// A workload as it was before a change and as it is after (None: absent).
#[derive(Clone, Debug)]
pub struct WorkloadChange {
    pub before: Option<Workload>,
    pub after: Option<Workload>,
}

/// What to send to the kernel, and the state it leads to.
pub enum Update {
    /// Element changes only: one netlink batch.
    Elements {
        ops: Vec<ElemOp>,
        released: Vec<IdentityKey>,
    },
    /// Everything else: one transaction. `complete`: `desired` is exactly a render;
    /// else (a patched policy edit) it may also hold chains and dispatch entries
    /// nothing uses any more, for a later full update to remove.
    Full {
        tx: Transaction,
        desired: Box<Ruleset>,
        index: RenderIndex,
        complete: bool,
    },
}

impl Update {
    pub fn is_empty(&self) -> bool {
        match self {
            Update::Elements { ops, .. } => ops.is_empty(),
            Update::Full { tx, .. } => tx.is_empty(),
        }
    }
}

pub struct NodeState {
    pub opts: RenderOptions,
    pub ids: KernelIds,
    /// What the kernel holds after the last committed update.
    pub applied: Ruleset,
    index: RenderIndex,
    /// A full update was committed: `index` describes `applied`.
    indexed: bool,
    /// Chains of the last render, reused by the next (see [`crate::render::RenderCache`]).
    cache: RenderCache,
}

impl NodeState {
    /// Start from what the kernel holds; identity numbers are learnt from it.
    pub fn adopt(opts: RenderOptions, observed: Ruleset, engine: &Engine) -> NodeState {
        let mut ids = KernelIds::new();
        ids.seed(&observed, engine);
        NodeState {
            opts,
            ids,
            applied: observed,
            index: RenderIndex::default(),
            indexed: false,
            cache: RenderCache::default(),
        }
    }

    fn is_local(&self, w: &Workload) -> bool {
        self.opts
            .node
            .as_deref()
            .is_none_or(|n| w.node.as_deref() == Some(n))
    }

    /// Render everything and diff it against what the kernel holds. `policy_only`: only
    /// the policy changed since the last update, so the kernel's workload-derived sets
    /// can be carried over (a policy edit then costs what it changes, not what the
    /// cluster holds).
    pub fn plan_full(&mut self, engine: &Engine, policy_only: bool) -> Update {
        if policy_only
            && self.indexed
            && let Some(patch) = render_policy_patch(
                engine,
                &self.opts,
                &mut self.ids,
                &mut self.cache,
                &self.applied,
                &self.index,
            )
        {
            return Update::Full {
                tx: patch.transaction(&self.applied),
                desired: Box::new(patch.desired),
                index: patch.index,
                complete: false,
            };
        }
        let carry = (policy_only && self.indexed).then_some(&self.applied);
        let (desired, index) =
            render_cached(engine, &self.opts, &mut self.ids, &mut self.cache, carry);
        Update::Full {
            tx: diff(&self.applied, &desired),
            desired: Box::new(desired),
            index,
            complete: true,
        }
    }

    /// After the engine has absorbed these workload changes: element changes when they
    /// suffice, else a full update.
    pub fn plan_workloads(&mut self, engine: &Engine, changes: &[WorkloadChange]) -> Update {
        match self.element_update(engine, changes) {
            Some(u) => u,
            None => self.plan_full(engine, false),
        }
    }

    /// Quarantine exactly `addrs` (replacing the previous quarantine): element changes
    /// to the quarantine sets, or a full update from a ruleset without them.
    pub fn plan_quarantine(&mut self, engine: &Engine, addrs: BTreeSet<IpAddr>) -> Update {
        self.opts.quarantine = addrs;
        if !self.indexed {
            return self.plan_full(engine, false);
        }
        let mut ops = Vec::new();
        for (name, kind) in crate::render::QUARANTINE {
            let Some(have) = self.elems(name) else {
                return self.plan_full(engine, false);
            };
            let v6 = kind == SetKind::Addrs6;
            let want: BTreeSet<Elem> = self
                .opts
                .quarantine
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| Elem::Addr(*a))
                .collect();
            let op = |add: bool, elem: &Elem| ElemOp {
                set: name.to_string(),
                kind,
                add,
                elem: elem.clone(),
            };
            ops.extend(have.difference(&want).map(|e| op(false, e)));
            ops.extend(want.difference(have).map(|e| op(true, e)));
        }
        Update::Elements {
            ops,
            released: Vec::new(),
        }
    }

    /// The kernel accepted `update`: it is now what the kernel holds. Returns what it
    /// replaced, for the caller to free where the time does not matter (tens of
    /// thousands of elements).
    pub fn commit(&mut self, update: Update) -> Option<Box<Ruleset>> {
        match update {
            Update::Full { desired, index, .. } => {
                let old = std::mem::replace(&mut self.applied, *desired);
                self.index = index;
                self.indexed = true;
                Some(Box::new(old))
            }
            Update::Elements { ops, released } => {
                for op in ops {
                    if let Elem::AddrMark(ip, _) = op.elem {
                        self.cache.dirty_addrs.insert(ip);
                    }
                    if let Some(elems) = self
                        .applied
                        .sets
                        .get_mut(&op.set)
                        .and_then(|s| s.elems.as_mut())
                        .map(std::sync::Arc::make_mut)
                    {
                        if op.add {
                            elems.insert(op.elem);
                        } else {
                            elems.remove(&op.elem);
                        }
                    }
                }
                for k in released {
                    self.ids.release(&k);
                }
                None
            }
        }
    }

    fn elems(&self, set: &str) -> Option<&BTreeSet<Elem>> {
        self.applied.sets.get(set).and_then(|s| s.elems.as_deref())
    }

    /// The signature numbers a local identity's addresses carry, if its signature chains
    /// exist (else a full update must create them).
    fn sigs_of(&self, engine: &Engine, id: u32) -> Option<(u32, u32)> {
        let ep = engine.endpoint_policy(id)?;
        let (e, i) = self.index.signatures.get(&SignatureKey::of(ep))?;
        Some((
            self.ids.egress_sigs.lookup(e)?,
            self.ids.ingress_sigs.lookup(i)?,
        ))
    }

    fn element_update(&mut self, engine: &Engine, changes: &[WorkloadChange]) -> Option<Update> {
        // Only from a state this node rendered itself (the index says where sets come from).
        if !self.indexed {
            return None;
        }
        let mut touched: Vec<IdentityKey> = Vec::new();
        let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
        for c in changes {
            if let Some(b) = &c.before {
                let key = IdentityKey {
                    namespace: b.key.namespace.clone(),
                    labels: b.labels.clone(),
                };
                self.ids.lookup(&key)?;
                ips.extend(&b.ips);
                touched.push(key);
            }
            if let Some(a) = &c.after {
                let id = engine
                    .workload_id(&a.key)
                    .and_then(|w| engine.identity_of(w))?;
                let key = engine.identities().key(id)?.clone();
                self.ids.number(engine, id);
                ips.extend(&a.ips);
                touched.push(key);
            }
        }
        touched.sort_by(|a, b| (&a.namespace, &a.labels).cmp(&(&b.namespace, &b.labels)));
        touched.dedup();

        let (mut dels, mut adds): (Vec<ElemOp>, Vec<ElemOp>) = (Vec::new(), Vec::new());
        let mut sync = |set: &str, kind: SetKind, have: Vec<Elem>, want: Vec<Elem>| {
            for e in have.iter().filter(|e| !want.contains(e)) {
                dels.push(ElemOp {
                    set: set.to_string(),
                    kind,
                    add: false,
                    elem: e.clone(),
                });
            }
            for e in want.iter().filter(|e| !have.contains(e)) {
                adds.push(ElemOp {
                    set: set.to_string(),
                    kind,
                    add: true,
                    elem: e.clone(),
                });
            }
        };

        // Addresses: source and destination marks, named ports, from what the engine says.
        for ip in &ips {
            let v6 = ip.is_ipv6();
            let owner = engine.owner_of(ip);
            let workload = match owner {
                Some(AddrOwner::Workload(w)) => engine.workload(w).map(|x| (w, x)),
                _ => None,
            };
            let marks = match (owner, workload) {
                (Some(AddrOwner::Host), _) => Some((ID_HOST, ID_HOST)),
                (_, Some((w, wl))) => {
                    let id = engine.identity_of(w)?;
                    let n = self.ids.number(engine, id);
                    let (e, i) = if self.is_local(wl) {
                        self.sigs_of(engine, id)?
                    } else {
                        (0, 0)
                    };
                    Some((n | (e << SIG_SHIFT), n | (i << SIG_SHIFT)))
                }
                _ => None,
            };
            let kind = if v6 {
                SetKind::AddrMarks6
            } else {
                SetKind::AddrMarks4
            };
            let (src_map, dst_map) = if v6 { ("id6", "dst6") } else { ("id4", "dst4") };
            for (map, value) in [(src_map, marks.map(|m| m.0)), (dst_map, marks.map(|m| m.1))] {
                let have: Vec<Elem> = self
                    .elems(map)?
                    .range(Elem::AddrMark(*ip, 0)..=Elem::AddrMark(*ip, u32::MAX))
                    .cloned()
                    .collect();
                let want: Vec<Elem> = value.map(|v| Elem::AddrMark(*ip, v)).into_iter().collect();
                sync(map, kind, have, want);
            }

            for (set, name, proto, set_v6) in &self.index.named_port_sets {
                if *set_v6 != v6 {
                    continue;
                }
                let have: Vec<Elem> = self
                    .elems(set)?
                    .range(Elem::AddrPort(*ip, 0)..=Elem::AddrPort(*ip, u16::MAX))
                    .cloned()
                    .collect();
                let want: Vec<Elem> = workload
                    .and_then(|(_, w)| w.named_port(name, *proto))
                    .map(|p| Elem::AddrPort(*ip, p))
                    .into_iter()
                    .collect();
                let kind = if v6 {
                    SetKind::AddrPorts6
                } else {
                    SetKind::AddrPorts4
                };
                sync(set, kind, have, want);
            }
        }

        // Identities that appeared or disappeared: selector memberships.
        let mut released = Vec::new();
        for key in &touched {
            let Some(n) = self.ids.lookup(key) else {
                continue;
            };
            let id = engine.identities().id_of(key);
            for (set, sid) in &self.index.selector_sets {
                let have: Vec<Elem> = self
                    .elems(set)?
                    .get(&Elem::Mark(n))
                    .cloned()
                    .into_iter()
                    .collect();
                let member = id.is_some_and(|i| engine.selected(*sid).contains(i));
                let want: Vec<Elem> = member.then_some(Elem::Mark(n)).into_iter().collect();
                sync(set, SetKind::Marks, have, want);
            }
            if id.is_none() {
                released.push(key.clone());
            }
        }
        dels.extend(adds);
        Some(Update::Elements {
            ops: dels,
            released,
        })
    }
}
