//! Kernel identity numbers, stable across renders and agent restarts.
//!
//! The engine numbers identities in the order it meets them, so a restarted agent would
//! number them differently and rewrite every set. Instead kernel numbers are kept per
//! identity key (namespace, labels) here, and a starting agent seeds this table from the
//! address -> number maps it finds in the kernel: the same identity keeps its number, and
//! adopting a running data plane changes nothing.

use std::collections::BTreeSet;

use bulkhead_policy::Engine;
use bulkhead_policy::identity::{IdentityId, IdentityKey};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::names::{ID_BASE, ID_MASK, SIG_MAX, SIG_SHIFT};
use crate::ruleset::{Elem, Ruleset};

#[derive(Clone, Debug, Default)]
pub struct KernelIds {
    /// Egress and ingress signature numbers of this node.
    pub egress_sigs: SigIds,
    pub ingress_sigs: SigIds,
    by_key: FxHashMap<IdentityKey, u32>,
    used: FxHashSet<u32>,
    /// Numbers below `next` that are free again.
    free: BTreeSet<u32>,
    next: u32,
}

impl KernelIds {
    pub fn new() -> Self {
        KernelIds {
            next: ID_BASE,
            egress_sigs: SigIds::new(),
            ingress_sigs: SigIds::new(),
            ..KernelIds::default()
        }
    }

    /// Learn the numbers a previous agent gave: for every address the kernel maps to a
    /// number, the identity the engine gives that address now keeps that number (unless
    /// two identities claim one number: then only the first does).
    pub fn seed(&mut self, observed: &Ruleset, engine: &Engine) {
        self.egress_sigs.seed(observed, "e_dispatch");
        self.ingress_sigs.seed(observed, "i_dispatch");
        for map in ["id4", "id6"] {
            let Some(elems) = observed.sets.get(map).and_then(|s| s.elems.as_deref()) else {
                continue;
            };
            for e in elems {
                let Elem::AddrMark(addr, mark) = e else {
                    continue;
                };
                // The low bits are the identity; the rest is this node's signature.
                let number = &(mark & ID_MASK);
                if *number < ID_BASE || self.used.contains(number) {
                    continue;
                }
                let Some(bulkhead_policy::engine::AddrOwner::Workload(w)) = engine.owner_of(addr)
                else {
                    continue;
                };
                let Some(key) = engine
                    .identity_of(w)
                    .and_then(|i| engine.identities().key(i))
                else {
                    continue;
                };
                if !self.by_key.contains_key(key) {
                    self.by_key.insert(key.clone(), *number);
                    self.used.insert(*number);
                    self.next = self.next.max(number + 1);
                }
            }
        }
        self.free = (ID_BASE..self.next)
            .filter(|n| !self.used.contains(n))
            .collect();
    }

    /// The number of an engine identity, allocating one the first time.
    pub fn number(&mut self, engine: &Engine, id: IdentityId) -> u32 {
        let Some(key) = engine.identities().key(id) else {
            return crate::names::ID_WORLD;
        };
        if let Some(n) = self.by_key.get(key) {
            return *n;
        }
        let n = match self.free.pop_first() {
            Some(n) => n,
            None => {
                self.next += 1;
                self.next - 1
            }
        };
        self.by_key.insert(key.clone(), n);
        self.used.insert(n);
        n
    }

    /// The number of an identity key, if it has one (no allocation).
    pub fn lookup(&self, key: &IdentityKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    /// Forget one identity; its number can be reused.
    pub fn release(&mut self, key: &IdentityKey) {
        if let Some(n) = self.by_key.remove(key) {
            self.used.remove(&n);
            self.free.insert(n);
        }
    }

    /// Forget identities the engine no longer has; their numbers can be reused.
    pub fn retain_live(&mut self, engine: &Engine) {
        let live: FxHashSet<&IdentityKey> = engine
            .identities()
            .live()
            .iter()
            .filter_map(|i| engine.identities().key(i))
            .collect();
        let gone: Vec<IdentityKey> = self
            .by_key
            .keys()
            .filter(|k| !live.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(n) = self.by_key.remove(&k) {
                self.used.remove(&n);
                self.free.insert(n);
            }
        }
    }

    /// Identity key of a kernel number (flow records).
    pub fn key_of(&self, number: u32) -> Option<&IdentityKey> {
        self.by_key
            .iter()
            .find(|(_, n)| **n == number)
            .map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Per-node signature numbers, one table per direction, kept per signature chain (chains
/// are named after their content) and learnt back from the dispatch maps at start, so
/// that a restarted agent keeps every number and changes nothing.
#[derive(Clone, Debug, Default)]
pub struct SigIds {
    by_chain: FxHashMap<String, u32>,
    free: BTreeSet<u32>,
    next: u32,
}

impl SigIds {
    pub fn new() -> Self {
        SigIds {
            next: 1,
            ..SigIds::default()
        }
    }

    /// Learn numbers from a dispatch map as the kernel holds it.
    pub fn seed(&mut self, observed: &Ruleset, map: &str) {
        let Some(elems) = observed.sets.get(map).and_then(|s| s.elems.as_deref()) else {
            return;
        };
        for e in elems {
            let Elem::MarkGoto(key, chain) = e else {
                continue;
            };
            let n = key >> SIG_SHIFT;
            if (1..SIG_MAX).contains(&n) && !self.by_chain.values().any(|x| *x == n) {
                self.by_chain.insert(chain.clone(), n);
                self.next = self.next.max(n + 1);
            }
        }
        let used: FxHashSet<u32> = self.by_chain.values().copied().collect();
        self.free = (1..self.next).filter(|n| !used.contains(n)).collect();
    }

    /// The number of a signature chain, allocating one; None when the node's signature
    /// numbers are exhausted (the caller fails closed).
    pub fn number(&mut self, chain: &str) -> Option<u32> {
        if let Some(n) = self.by_chain.get(chain) {
            return Some(*n);
        }
        let n = match self.free.pop_first() {
            Some(n) => n,
            None if self.next < SIG_MAX => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.by_chain.insert(chain.to_string(), n);
        Some(n)
    }

    pub fn lookup(&self, chain: &str) -> Option<u32> {
        self.by_chain.get(chain).copied()
    }

    /// Keep only these chains' numbers.
    pub fn retain(&mut self, chains: &std::collections::BTreeSet<String>) {
        let gone: Vec<String> = self
            .by_chain
            .keys()
            .filter(|c| !chains.contains(*c))
            .cloned()
            .collect();
        for c in gone {
            if let Some(n) = self.by_chain.remove(&c) {
                self.free.insert(n);
            }
        }
    }
}
