//! The engine: inventory + compiled policy, resolved per identity, kept up to date
//! incrementally. This is the one evaluation core: the analyzer, the nftables renderer
//! and the L7 proxy all ask it (see [`crate::verdict`]).
//!
//! Resolution follows Cilium's policy repository -> selector cache -> endpoint policy:
//! - every distinct [`EndpointSelector`] is resolved once to a bitmap of identities;
//! - every identity gets an [`EndpointPolicy`]: the tier-1 policies and NetworkPolicies
//!   that select it, in evaluation order, and its group mode;
//! - verdicts are computed per identity pair from those and cached.
//!
//! Cost: a workload whose identity already exists changes only the address tables; a
//! new identity is evaluated against every selector once (no re-walk of all workloads);
//! a policy change recompiles the policy set and reuses every unchanged selector's bitmap.

use std::net::IpAddr;
use std::sync::RwLock;

use bulkhead_model::{Inventory, Labels, Namespace, Node, Workload, WorkloadKey};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::compile::{CompileError, Compiled, Direction, SelectorId, compile};
use crate::identity::{Acquired, IdentityId, IdentityTable};
use crate::selectors::EndpointSelector;
use crate::spec::{Bundle, Mode, PolicySet};
use crate::verdict::PairCache;

/// Handle of a workload inside the engine; valid while the workload exists.
pub type WorkloadId = u32;

/// What the engine resolved for one identity.
#[derive(Clone, Debug, Default)]
pub struct EndpointPolicy {
    /// Tier-1 policies that apply, as indices into `PolicySet::policies`, in evaluation order.
    pub policies: SmallVec<[u32; 4]>,
    /// NetworkPolicies that select it, as indices into `PolicySet::network_policies`.
    pub network_policies: SmallVec<[u32; 4]>,
    pub ingress_isolated: bool,
    pub egress_isolated: bool,
    /// Effective mode: the strictest of its groups' modes, or the ungrouped default.
    pub mode: Mode,
    /// The group the mode comes from (index into `PolicySet::groups`), None if ungrouped.
    pub group: Option<u32>,
}

#[derive(Clone, Debug)]
pub(crate) struct WorkloadState {
    pub workload: Workload,
    pub identity: IdentityId,
}

#[derive(Clone, Debug)]
pub(crate) struct NamespaceState {
    pub labels: Labels,
    /// False when the namespace is only known because a workload lives in it.
    pub declared: bool,
}

/// Who owns an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrOwner {
    Workload(WorkloadId),
    Host,
}

/// Size of the resolved state: what the benchmarks report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub workloads: usize,
    pub identities: usize,
    pub namespaces: usize,
    pub policies: usize,
    pub network_policies: usize,
    pub groups: usize,
    pub selectors: usize,
    pub rules: usize,
    /// Sum over selectors of the identities each selects.
    pub selector_members: u64,
    /// Sum over identities of the policies and NetworkPolicies that apply to each.
    pub endpoint_entries: u64,
}

impl Stats {
    /// Everything resolution produced, in entries: the number that must stay flat when
    /// replicas grow and grow linearly with policies + identities.
    pub fn resolved_size(&self) -> u64 {
        self.selectors as u64 + self.rules as u64 + self.selector_members + self.endpoint_entries
    }
}

pub struct Engine {
    pub(crate) spec: PolicySet,
    pub(crate) compiled: Compiled,
    /// Per compiled selector: the identities it selects.
    pub(crate) sel_bits: Vec<RoaringBitmap>,
    /// Per identity id (stale entries for freed ids are never read).
    pub(crate) endpoints: Vec<EndpointPolicy>,
    pub(crate) identities: IdentityTable,
    pub(crate) namespaces: FxHashMap<String, NamespaceState>,
    pub(crate) workloads: Vec<Option<WorkloadState>>,
    free_workloads: Vec<WorkloadId>,
    by_key: FxHashMap<WorkloadKey, WorkloadId>,
    pub(crate) addrs: FxHashMap<IpAddr, AddrOwner>,
    pub(crate) nodes: FxHashMap<String, Node>,
    pub(crate) pairs: RwLock<PairCache>,
}

impl Engine {
    /// Resolve a whole bundle. Fails (changing nothing) on policy errors.
    pub fn new(bundle: &Bundle) -> Result<Engine, Vec<CompileError>> {
        let compiled = compile(&bundle.policy)?;
        let mut e = Engine {
            spec: bundle.policy.clone(),
            compiled,
            sel_bits: Vec::new(),
            endpoints: Vec::new(),
            identities: IdentityTable::default(),
            namespaces: FxHashMap::default(),
            workloads: Vec::new(),
            free_workloads: Vec::new(),
            by_key: FxHashMap::default(),
            addrs: FxHashMap::default(),
            nodes: FxHashMap::default(),
            pairs: RwLock::new(PairCache::default()),
        };
        e.load_inventory(&bundle.inventory);
        e.resolve_all(&FxHashMap::default());
        Ok(e)
    }

    /// Bulk load without per-identity resolution (done once afterwards).
    fn load_inventory(&mut self, inv: &Inventory) {
        for ns in &inv.namespaces {
            self.namespaces.insert(
                ns.name.clone(),
                NamespaceState {
                    labels: ns.labels.clone(),
                    declared: true,
                },
            );
        }
        for n in &inv.nodes {
            for a in &n.addresses {
                self.addrs.insert(*a, AddrOwner::Host);
            }
            self.nodes.insert(n.name.clone(), n.clone());
        }
        for w in &inv.workloads {
            // A repeated key replaces the earlier workload, as an update would.
            if self.by_key.contains_key(&w.key) {
                self.remove_workload(&w.key.clone());
            }
            self.ensure_namespace(&w.key.namespace);
            let id = match self.identities.acquire(&w.key.namespace, &w.labels) {
                Acquired::New(i) | Acquired::Existing(i) => i,
            };
            self.insert_workload(w.clone(), id);
        }
    }

    /// Recompute every selector bitmap (reusing `previous` ones for unchanged selectors)
    /// and every endpoint policy.
    fn resolve_all(&mut self, previous: &FxHashMap<EndpointSelector, RoaringBitmap>) {
        self.sel_bits = self
            .compiled
            .selectors
            .iter()
            .map(|s| match previous.get(s) {
                Some(b) => b.clone(),
                None => self.eval_selector(s),
            })
            .collect();
        self.endpoints = vec![EndpointPolicy::default(); self.identities.capacity()];
        let live = self.identities.live().clone();
        for id in &live {
            self.endpoints[id as usize].mode = self.compiled.ungrouped_mode;
        }
        // Groups: strictest mode wins; ties go to the group defined first.
        for (gi, g) in self.compiled.groups.iter().enumerate() {
            for id in &self.sel_bits[g.members as usize] {
                let ep = &mut self.endpoints[id as usize];
                if ep.group.is_none() || g.mode > ep.mode {
                    ep.mode = g.mode;
                    ep.group = Some(gi as u32);
                }
            }
        }
        for &pi in &self.compiled.policy_order {
            let p = &self.compiled.policies[pi as usize];
            let mut members = RoaringBitmap::new();
            for &s in &p.applies {
                members |= &self.sel_bits[s as usize];
            }
            for id in &members {
                self.endpoints[id as usize].policies.push(pi);
            }
        }
        for (ni, np) in self.compiled.network_policies.iter().enumerate() {
            for id in &self.sel_bits[np.selects as usize] {
                let ep = &mut self.endpoints[id as usize];
                ep.network_policies.push(ni as u32);
                ep.ingress_isolated |= np.ingress.is_some();
                ep.egress_isolated |= np.egress.is_some();
            }
        }
        self.pairs_mut().clear();
    }

    /// Resolve one selector over every identity, with the label index.
    fn eval_selector(&self, s: &EndpointSelector) -> RoaringBitmap {
        let index = self.identities.index();
        let live = self.identities.live();
        let in_namespaces = if s.namespaces.names.is_none() && s.namespaces.labels.is_none() {
            live.clone()
        } else {
            let mut b = RoaringBitmap::new();
            let mut add = |name: &str, st: &NamespaceState| {
                if s.namespaces.matches(name, &st.labels)
                    && let Some(ids) = index.namespace(name)
                {
                    b |= ids;
                }
            };
            match &s.namespaces.names {
                Some(names) => {
                    for n in names {
                        if let Some(st) = self.namespaces.get(n) {
                            add(n, st);
                        }
                    }
                }
                None => {
                    for (n, st) in &self.namespaces {
                        add(n, st);
                    }
                }
            }
            b
        };
        index.eval(&s.labels, &in_namespaces)
    }

    /// Resolve one new identity against every selector and policy (the incremental path).
    fn resolve_identity(&mut self, id: IdentityId) {
        let Some(key) = self.identities.key(id).cloned() else {
            return;
        };
        let ns_labels = self
            .namespaces
            .get(&key.namespace)
            .map(|n| n.labels.clone())
            .unwrap_or_default();
        for (sid, sel) in self.compiled.selectors.iter().enumerate() {
            let bits = &mut self.sel_bits[sid];
            if sel.matches(&key.namespace, &ns_labels, &key.labels) {
                bits.insert(id);
            } else {
                bits.remove(id);
            }
        }
        if self.endpoints.len() <= id as usize {
            self.endpoints
                .resize(id as usize + 1, EndpointPolicy::default());
        }
        self.endpoints[id as usize] = self.compute_endpoint_policy(id);
    }

    fn compute_endpoint_policy(&self, id: IdentityId) -> EndpointPolicy {
        let has = |s: SelectorId| self.sel_bits[s as usize].contains(id);
        let mut ep = EndpointPolicy {
            mode: self.compiled.ungrouped_mode,
            ..EndpointPolicy::default()
        };
        for (gi, g) in self.compiled.groups.iter().enumerate() {
            if has(g.members) && (ep.group.is_none() || g.mode > ep.mode) {
                ep.mode = g.mode;
                ep.group = Some(gi as u32);
            }
        }
        for &pi in &self.compiled.policy_order {
            if self.compiled.policies[pi as usize]
                .applies
                .iter()
                .any(|&s| has(s))
            {
                ep.policies.push(pi);
            }
        }
        for (ni, np) in self.compiled.network_policies.iter().enumerate() {
            if has(np.selects) {
                ep.network_policies.push(ni as u32);
                ep.ingress_isolated |= np.ingress.is_some();
                ep.egress_isolated |= np.egress.is_some();
            }
        }
        ep
    }

    fn forget_identity(&mut self, id: IdentityId) {
        for bits in &mut self.sel_bits {
            bits.remove(id);
        }
        if let Some(ep) = self.endpoints.get_mut(id as usize) {
            *ep = EndpointPolicy::default();
        }
    }

    fn ensure_namespace(&mut self, name: &str) {
        if !self.namespaces.contains_key(name) {
            let ns = Namespace::new(name, Labels::new());
            self.namespaces.insert(
                name.to_string(),
                NamespaceState {
                    labels: ns.labels,
                    declared: false,
                },
            );
        }
    }

    fn insert_workload(&mut self, w: Workload, identity: IdentityId) -> WorkloadId {
        let id = self
            .free_workloads
            .pop()
            .unwrap_or(self.workloads.len() as WorkloadId);
        if id as usize == self.workloads.len() {
            self.workloads.push(None);
        }
        for ip in &w.ips {
            self.addrs.insert(*ip, AddrOwner::Workload(id));
        }
        self.by_key.insert(w.key.clone(), id);
        self.workloads[id as usize] = Some(WorkloadState {
            workload: w,
            identity,
        });
        id
    }

    fn pairs_mut(&mut self) -> &mut PairCache {
        // A poisoned lock only means another thread panicked mid-insert; the cache is
        // just a cache, so start it over rather than propagate.
        match self.pairs.get_mut() {
            Ok(p) => p,
            Err(poisoned) => {
                let p = poisoned.into_inner();
                p.clear();
                p
            }
        }
    }

    // ----- incremental updates -----

    /// Add or replace a workload. Cost: address bookkeeping, plus one pass over the
    /// selectors and policies if its (namespace, labels) is a new identity.
    pub fn upsert_workload(&mut self, w: Workload) -> WorkloadId {
        if let Some(&wid) = self.by_key.get(&w.key) {
            let same_identity = self.workloads[wid as usize]
                .as_ref()
                .is_some_and(|s| s.workload.labels == w.labels);
            if same_identity {
                self.drop_addrs(wid);
                for ip in &w.ips {
                    self.addrs.insert(*ip, AddrOwner::Workload(wid));
                }
                if let Some(s) = self.workloads[wid as usize].as_mut() {
                    s.workload = w;
                }
                return wid;
            }
            self.remove_workload(&w.key.clone());
        }
        self.ensure_namespace(&w.key.namespace);
        let id = match self.identities.acquire(&w.key.namespace, &w.labels) {
            Acquired::Existing(i) => i,
            Acquired::New(i) => {
                self.resolve_identity(i);
                i
            }
        };
        self.insert_workload(w, id)
    }

    /// Remove a workload; returns false if it was unknown.
    pub fn remove_workload(&mut self, key: &WorkloadKey) -> bool {
        let Some(wid) = self.by_key.remove(key) else {
            return false;
        };
        self.drop_addrs(wid);
        if let Some(state) = self.workloads[wid as usize].take()
            && self.identities.release(state.identity)
        {
            self.forget_identity(state.identity);
        }
        self.free_workloads.push(wid);
        true
    }

    fn drop_addrs(&mut self, wid: WorkloadId) {
        if let Some(s) = &self.workloads[wid as usize] {
            for ip in &s.workload.ips {
                if self.addrs.get(ip) == Some(&AddrOwner::Workload(wid)) {
                    self.addrs.remove(ip);
                }
            }
        }
    }

    /// Add or relabel a namespace: its identities are re-resolved (namespace selectors
    /// may now select them or not).
    pub fn upsert_namespace(&mut self, ns: Namespace) {
        let changed = self
            .namespaces
            .get(&ns.name)
            .is_none_or(|old| old.labels != ns.labels);
        self.namespaces.insert(
            ns.name.clone(),
            NamespaceState {
                labels: ns.labels,
                declared: true,
            },
        );
        if changed {
            let ids: Vec<IdentityId> = self
                .identities
                .index()
                .namespace(&ns.name)
                .map(|b| b.iter().collect())
                .unwrap_or_default();
            for id in ids {
                self.resolve_identity(id);
            }
            self.pairs_mut().clear();
        }
    }

    pub fn upsert_node(&mut self, node: Node) {
        self.remove_node(&node.name.clone());
        for a in &node.addresses {
            self.addrs.insert(*a, AddrOwner::Host);
        }
        self.nodes.insert(node.name.clone(), node);
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(old) = self.nodes.remove(name) {
            for a in &old.addresses {
                if self.addrs.get(a) == Some(&AddrOwner::Host) {
                    self.addrs.remove(a);
                }
            }
        }
    }

    /// Replace the whole policy set. On error nothing changes.
    pub fn set_policy(&mut self, policy: PolicySet) -> Result<(), Vec<CompileError>> {
        self.replace_policy(policy).map(drop)
    }

    /// [`Engine::set_policy`], handing back the previous policy set and its compiled
    /// form: freeing thousands of documents takes milliseconds a caller on a latency
    /// budget may prefer to spend on another thread.
    pub fn replace_policy(
        &mut self,
        policy: PolicySet,
    ) -> Result<(PolicySet, Compiled), Vec<CompileError>> {
        let compiled = compile(&policy)?;
        let previous: FxHashMap<EndpointSelector, RoaringBitmap> = self
            .compiled
            .selectors
            .drain(..)
            .zip(std::mem::take(&mut self.sel_bits))
            .collect();
        let old_compiled = std::mem::replace(&mut self.compiled, compiled);
        let old_spec = std::mem::replace(&mut self.spec, policy);
        self.resolve_all(&previous);
        Ok((old_spec, old_compiled))
    }

    // ----- queries -----

    pub fn policy(&self) -> &PolicySet {
        &self.spec
    }

    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    pub fn workload_id(&self, key: &WorkloadKey) -> Option<WorkloadId> {
        self.by_key.get(key).copied()
    }

    pub fn workload(&self, id: WorkloadId) -> Option<&Workload> {
        self.workloads
            .get(id as usize)?
            .as_ref()
            .map(|s| &s.workload)
    }

    pub fn identity_of(&self, id: WorkloadId) -> Option<IdentityId> {
        self.workloads
            .get(id as usize)?
            .as_ref()
            .map(|s| s.identity)
    }

    /// Every workload, ordered by namespace/name.
    pub fn workloads(&self) -> Vec<(WorkloadId, &Workload)> {
        let mut v: Vec<(WorkloadId, &Workload)> = self
            .workloads
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as WorkloadId, &s.workload)))
            .collect();
        v.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        v
    }

    /// Every workload, in no particular order (no sort: for callers that build sets).
    pub fn workloads_unordered(&self) -> impl Iterator<Item = (WorkloadId, &Workload)> {
        self.workloads
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as WorkloadId, &s.workload)))
    }

    /// Every node (its addresses are the `host` entity).
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn owner_of(&self, ip: &IpAddr) -> Option<AddrOwner> {
        self.addrs.get(ip).copied()
    }

    /// Labels of a namespace (with the implicit name label), if known.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns).map(|n| &n.labels)
    }

    /// Names of all known namespaces, sorted.
    pub fn namespace_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        v.sort();
        v
    }

    /// The sensors that read a workload's connections in `dir` (Ingress: those to it,
    /// Egress: those from it): those of every group it is in that inspects that way
    /// (indices into `PolicySet::sensors`, sorted, without repeats).
    pub fn sensors_of(&self, id: WorkloadId, dir: Direction) -> SmallVec<[u32; 2]> {
        let mut out = SmallVec::new();
        let Some(identity) = self.identity_of(id) else {
            return out;
        };
        for g in &self.compiled.groups {
            let reads = match dir {
                Direction::Ingress => g.inspect.ingress,
                Direction::Egress => g.inspect.egress,
            };
            if reads
                && !g.sensors.is_empty()
                && self.sel_bits[g.members as usize].contains(identity)
            {
                out.extend(g.sensors.iter().copied());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn endpoint_policy(&self, id: IdentityId) -> Option<&EndpointPolicy> {
        self.identities.key(id)?;
        self.endpoints.get(id as usize)
    }

    pub fn identities(&self) -> &IdentityTable {
        &self.identities
    }

    /// The identities a compiled selector selects.
    pub fn selected(&self, sel: SelectorId) -> &RoaringBitmap {
        &self.sel_bits[sel as usize]
    }

    /// Workloads of an identity.
    pub fn workloads_of(&self, identity: IdentityId) -> impl Iterator<Item = &Workload> {
        self.workloads
            .iter()
            .flatten()
            .filter(move |s| s.identity == identity)
            .map(|s| &s.workload)
    }

    pub fn stats(&self) -> Stats {
        let live = self.identities.live();
        Stats {
            workloads: self.by_key.len(),
            identities: live.len() as usize,
            namespaces: self.namespaces.len(),
            policies: self.spec.policies.len(),
            network_policies: self.spec.network_policies.len(),
            groups: self.spec.groups.len(),
            selectors: self.compiled.selectors.len(),
            rules: self.compiled.rules.len(),
            selector_members: self.sel_bits.iter().map(|b| b.len()).sum(),
            endpoint_entries: live
                .iter()
                .map(|id| {
                    let ep = &self.endpoints[id as usize];
                    (ep.policies.len() + ep.network_policies.len()) as u64
                })
                .sum(),
        }
    }

    /// True when a namespace was declared by a document (not only implied by a workload).
    pub fn namespace_declared(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|n| n.declared)
    }
}
