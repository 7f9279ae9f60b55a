//! Address marks after a policy-only change, carried over from the kernel.
//!
//! A policy edit leaves every identity's number and every address's owner as they
//! were; only the signature numbers of local identities can move (their signature
//! chain changed). So the kernel's four address maps are right except for:
//! - the local addresses of identities whose signature numbers moved, and
//! - addresses the element path wrote since the last render (it marks them with the
//!   numbers of its moment; they are recorded in [`RenderCache::dirty_addrs`]).
//!
//! Only those are looked at; a map is copied only if one of its entries changes. At
//! 10k workloads this is ~0.5 ms instead of ~11 ms for re-marking every local address.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_policy::engine::AddrOwner;
use rustc_hash::FxHashSet;

use super::Renderer;
use crate::names::ID_HOST;
use crate::ruleset::{Elem, SetKind};

/// The address maps: source marks and destination marks, by family.
pub(super) const MAPS: [(&str, SetKind); 4] = [
    ("id4", SetKind::AddrMarks4),
    ("id6", SetKind::AddrMarks6),
    ("dst4", SetKind::AddrMarks4),
    ("dst6", SetKind::AddrMarks6),
];

impl Renderer<'_> {
    /// Re-mark what may have changed in the carried maps (see the module docs).
    /// `before`: each local identity's signature numbers when the kernel's maps were
    /// last rendered.
    pub(super) fn remark_carried(
        &mut self,
        mut maps: Vec<Arc<BTreeSet<Elem>>>,
        before: &rustc_hash::FxHashMap<u32, (u32, u32)>,
    ) {
        let moved: FxHashSet<u32> = self
            .local_sigs
            .iter()
            .filter(|(id, sigs)| before.get(id) != Some(sigs))
            .map(|(id, _)| *id)
            .collect();
        let mut addrs: Vec<IpAddr> = std::mem::take(&mut self.cache.dirty_addrs)
            .into_iter()
            .collect();
        if !moved.is_empty() {
            for &(wid, w) in &self.workloads {
                if self
                    .engine
                    .identity_of(wid)
                    .is_some_and(|id| moved.contains(&id))
                {
                    addrs.extend(&w.ips);
                }
            }
        }
        for ip in addrs {
            let want = self.addr_marks(ip);
            let v6 = usize::from(ip.is_ipv6());
            for (m, value) in [(v6, want.map(|w| w.0)), (2 + v6, want.map(|w| w.1))] {
                let range = Elem::AddrMark(ip, 0)..=Elem::AddrMark(ip, u32::MAX);
                let want = value.map(|v| Elem::AddrMark(ip, v));
                let mut have = maps[m].range(range.clone());
                let right = match (have.next(), have.next(), &want) {
                    (Some(h), None, Some(w)) => h == w,
                    (None, _, None) => true,
                    _ => false,
                };
                if right {
                    continue;
                }
                // Copied on the first change only (the kernel's ruleset shares it).
                let map = Arc::make_mut(&mut maps[m]);
                let stale: Vec<Elem> = map.range(range).cloned().collect();
                for e in stale {
                    map.remove(&e);
                }
                map.extend(want);
            }
        }
        for ((name, kind), elems) in MAPS.iter().zip(maps) {
            // A patch starts from the kernel's ruleset: replace what it holds.
            self.out.sets.remove(*name);
            self.fill_shared(name, *kind, elems);
        }
    }

    /// The source and destination marks an address carries now; None for an address
    /// nobody owns.
    fn addr_marks(&self, ip: IpAddr) -> Option<(u32, u32)> {
        match self.engine.owner_of(&ip)? {
            AddrOwner::Host => Some((ID_HOST, ID_HOST)),
            AddrOwner::Workload(wid) => {
                let w = self.engine.workload(wid)?;
                let id = self.engine.identity_of(wid)?;
                Some(self.marks(id, self.is_local(w.node.as_deref())))
            }
        }
    }
}
