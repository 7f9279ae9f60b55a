//! From the engine's resolution to the desired `bulkhead` table of one node.
//!
//! The chains mirror the verdict function tier by tier (see `bulkhead_policy::verdict`),
//! so the kernel decides new connections exactly as `explain` says:
//!
//! ```text
//! forward:  established/related -> accept; invalid -> drop
//!           meta mark <- identity of saddr; ct mark <- identity of daddr
//!           from a local workload -> goto egress, else goto ingress
//! egress:   meta mark -> vmap e_dispatch -> e_s_<signature>:
//!              jump e_p_<policy>... (first matching rule: Allow -> goto ingress,
//!              Deny -> goto deny, Pass -> flag + return, Log -> log and continue)
//!              goto e_t_<...>: NetworkPolicies (union; none -> deny) or the mode
//! ingress:  to a local workload -> ct mark -> vmap i_dispatch -> i_s_<signature> (same
//!           shape; Allow -> goto allowed); to anything else -> goto allowed
//! allowed:  log, accept        deny: log, TCP reset / ICMP admin-prohibited
//! ```
//!
//! Chains and sets are named after a hash of their content, so an unchanged policy keeps
//! its kernel objects across renders and agent restarts, and identical content is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_model::Protocol;
use bulkhead_policy::Engine;
use bulkhead_policy::compile::{Direction, RuleId};
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::spec::Mode;
use nftables::expr::Expression;
use rustc_hash::FxHashMap;

use crate::ids::KernelIds;
use crate::names::*;
use crate::rules::*;
use crate::ruleset::{ChainState, Elem, Hook, Ruleset, SetKind, SetState};

mod cache;
mod divert;
mod marks;
mod patch;
mod rule;

pub use cache::RenderCache;
use cache::{Rendered, SetUse, SigChains, rules_key};
use marks::MAPS;
pub use patch::{Patch, render_policy_patch};

/// What to render for which node.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// The node whose workloads this ruleset protects. None: every workload is local
    /// (one node, or analysis).
    pub node: Option<String>,
    /// Interface-name glob of the node's workload interfaces (e.g. `bh*`): packets from
    /// or to such an interface whose workload the agent does not know are denied, so a
    /// workload is isolated before it can send its first packet.
    pub pod_interfaces: Option<String>,
    /// Log every allowed new connection (flow records), not only denials.
    pub log_allowed: bool,
    /// Drop denied packets silently instead of answering with a TCP reset or an ICMP
    /// administratively-prohibited (which let clients fail fast, the default).
    pub silent_drop: bool,
    /// The L7 proxy's port on this node: connections a rule with `app:` or L7 conditions
    /// may allow are diverted to it (TPROXY) instead of being decided here. None: no
    /// proxy, such rules let connections open at layer 4 (the analyzer's kernel view).
    pub l7_proxy: Option<u16>,
    /// Quarantined addresses (a response rule or `bulkhead quarantine`): nothing in or
    /// out, whatever policy says. Element changes only (see `NodeState::plan_quarantine`).
    pub quarantine: BTreeSet<IpAddr>,
}

/// The sets of quarantined addresses, by family.
pub const QUARANTINE: [(&str, SetKind); 2] = [
    ("quarantine4", SetKind::Addrs4),
    ("quarantine6", SetKind::Addrs6),
];

pub const CHAIN_FORWARD: &str = "forward";
pub const CHAIN_INPUT: &str = "input";
pub const CHAIN_OUTPUT: &str = "output";
pub const CHAIN_EGRESS: &str = "egress";
pub const CHAIN_INGRESS: &str = "ingress";
pub const CHAIN_ALLOWED: &str = "allowed";
pub const CHAIN_DENY: &str = "deny";
pub const CHAIN_DIVERT: &str = "divert";
pub const CHAIN_SOURCE_CHECK: &str = "source_check";

/// Render the desired ruleset. Pure, apart from allocating kernel identity numbers in
/// `ids` (which the caller keeps from one render to the next).
pub fn render(engine: &Engine, opts: &RenderOptions, ids: &mut KernelIds) -> Ruleset {
    render_indexed(engine, opts, ids).0
}

/// Where the sets and chains of a render come from: what turns later workload changes
/// into element changes without rendering again (see [`crate::node`]).
#[derive(Clone, Debug, Default)]
pub struct RenderIndex {
    /// Set name -> the compiled selector whose identities it holds.
    pub selector_sets: Vec<(String, u32)>,
    /// Set name -> (port name, protocol, IPv6?) whose (address, port) pairs it holds.
    pub named_port_sets: Vec<(String, String, Protocol, bool)>,
    /// An identity's resolution -> its egress and ingress signature chains.
    pub signatures: FxHashMap<SignatureKey, (String, String)>,
}

/// Everything a signature chain depends on: identities with equal keys share chains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignatureKey {
    pub policies: Vec<u32>,
    pub network_policies: Vec<u32>,
    pub ingress_isolated: bool,
    pub egress_isolated: bool,
    pub mode: Mode,
}

impl SignatureKey {
    pub fn of(ep: &bulkhead_policy::EndpointPolicy) -> SignatureKey {
        SignatureKey {
            policies: ep.policies.to_vec(),
            network_policies: ep.network_policies.to_vec(),
            ingress_isolated: ep.ingress_isolated,
            egress_isolated: ep.egress_isolated,
            mode: ep.mode,
        }
    }
}

/// [`render`], and the index of what it rendered.
pub fn render_indexed(
    engine: &Engine,
    opts: &RenderOptions,
    ids: &mut KernelIds,
) -> (Ruleset, RenderIndex) {
    render_cached(engine, opts, ids, &mut RenderCache::default(), None)
}

/// [`render_indexed`], reusing the chains of the previous render that `cache` kept
/// (same result as without it, in a fraction of the time when little changed).
///
/// `carry`: what the kernel holds, when it was rendered by this node (with this cache)
/// and only the policy changed since (workload churn kept it current through the
/// element path). Its workload-derived sets are then taken as they are instead of being
/// rebuilt from every workload: a policy edit's cost stops growing with the cluster.
pub fn render_cached(
    engine: &Engine,
    opts: &RenderOptions,
    ids: &mut KernelIds,
    cache: &mut RenderCache,
    carry: Option<&Ruleset>,
) -> (Ruleset, RenderIndex) {
    let mut r = Renderer::new(engine, opts, ids, cache, carry);
    r.dispatch();
    r.identity_maps();
    r.base_chains();
    if let Some(port) = opts.l7_proxy {
        r.divert_chain(port);
    }
    r.ids.retain_live(engine);
    r.cache.finish();
    (r.out, r.index)
}

impl<'a> Renderer<'a> {
    /// A render begins: what every part of it looks up.
    fn new(
        engine: &'a Engine,
        opts: &'a RenderOptions,
        ids: &'a mut KernelIds,
        cache: &'a mut RenderCache,
        carry: Option<&'a Ruleset>,
    ) -> Renderer<'a> {
        cache.start();
        let workloads: Vec<_> = engine.workloads_unordered().collect();
        // Kernel numbers of every live identity, looked up once (keys are label maps).
        let mut numbers = vec![ID_WORLD; engine.identities().capacity()];
        for id in engine.identities().live() {
            numbers[id as usize] = ids.number(engine, id);
        }
        // Every selector's set name, and back: cached chains name selectors by set.
        let sel_sets: Vec<String> = cache.selector_sets(&engine.compiled().selectors);
        let sel_by_name = sel_sets
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Renderer {
            engine,
            numbers,
            cache,
            sel_sets,
            sel_by_name,
            uses: Vec::new(),
            touched: None,
            workloads,
            named_ports: None,
            carry,
            opts,
            ids,
            out: Ruleset {
                exists: true,
                ..Ruleset::default()
            },
            policy_chains: FxHashMap::default(),
            np_chains: FxHashMap::default(),
            index: RenderIndex::default(),
            local_sigs: FxHashMap::default(),
        }
    }
}

/// A policy's chain in one direction, and whether it has Pass rules.
type PolicyChain = (Arc<str>, bool);

/// (port name, protocol) -> (address, port) of every workload that names it.
type NamedPorts<'a> = FxHashMap<(&'a str, Protocol), Vec<(IpAddr, u16)>>;

struct Renderer<'a> {
    engine: &'a Engine,
    cache: &'a mut RenderCache,
    /// Set name of each compiled selector, and the selector of each name.
    sel_sets: Vec<String>,
    sel_by_name: FxHashMap<String, u32>,
    /// Sets the rules being rendered use (what a cache hit replays).
    uses: Vec<SetUse>,
    /// Set and chain names added or changed (only recorded by a patch).
    touched: Option<rustc_hash::FxHashSet<String>>,
    /// Kernel number per engine identity id.
    numbers: Vec<u32>,
    /// Every workload, once per render (the engine sorts them on every call).
    workloads: Vec<(bulkhead_policy::WorkloadId, &'a bulkhead_model::Workload)>,
    /// (port name, protocol) -> (address, port) of every workload that names it; built
    /// when first needed.
    named_ports: Option<NamedPorts<'a>>,
    /// See [`render_cached`].
    carry: Option<&'a Ruleset>,
    opts: &'a RenderOptions,
    ids: &'a mut KernelIds,
    out: Ruleset,
    /// (policy index, direction) -> (chain, has Pass rules), None if it renders nothing.
    policy_chains: FxHashMap<(u32, Direction), Option<PolicyChain>>,
    index: RenderIndex,
    /// Egress and ingress signature numbers of each local identity.
    local_sigs: FxHashMap<u32, (u32, u32)>,
    np_chains: FxHashMap<(u32, Direction), Option<Arc<str>>>,
}

/// The rules as JSON bytes that do not change from one render to the next, for chain
/// hashes and content-addressed names: `fib` flags are a `HashSet`, which serializes
/// in a random order, so every array under a `flags` key is sorted (only in the rare
/// chains that have a `fib` match: the others serialize as they are, faster).
fn canonical_json(rules: &[Stmts]) -> Vec<u8> {
    use nftables::expr::NamedExpression;
    use nftables::stmt::Statement;
    let has_fib = rules.iter().flatten().any(|s| {
        matches!(s, Statement::Match(m) if matches!(m.left, Expression::Named(NamedExpression::Fib(_))))
    });
    if !has_fib {
        return serde_json::to_vec(rules).unwrap_or_default();
    }
    fn sort_flags(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if let (true, serde_json::Value::Array(a)) = (k == "flags", &mut *x) {
                        a.sort_by_key(|f| f.to_string());
                    }
                    sort_flags(x);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(sort_flags),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(rules).unwrap_or_default();
    sort_flags(&mut v);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Quarantined addresses send and receive nothing (established connections were cut
/// by the agent when it quarantined them, so their next packet comes here).
fn quarantined() -> Vec<Stmts> {
    let mut out = Vec::new();
    for (name, kind) in QUARANTINE {
        let v6 = kind == SetKind::Addrs6;
        for field in ["saddr", "daddr"] {
            out.push(vec![eq(addr_field(v6, field), set_ref(name)), drop()]);
        }
    }
    out
}

/// One way a rule's peer can match, as nft statements (and the address family they need).
struct Alt {
    v6: Option<bool>,
    stmts: Stmts,
}

impl Alt {
    /// No condition: what a rule without peers (or ports) matches.
    fn any() -> Alt {
        Alt {
            v6: None,
            stmts: vec![],
        }
    }

    /// The address family of a peer alternative and a port alternative together:
    /// `None` when they need different ones (an IPv4 peer, an IPv6-only named port).
    fn family(peer: &Alt, port: &Alt) -> Option<Option<bool>> {
        match (peer.v6, port.v6) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => Some(a.or(b)),
        }
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
        Protocol::Icmp => 1,
        Protocol::Icmpv6 => 58,
    }
}

const PORT_PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

impl<'a> Renderer<'a> {
    /// A patch records the names of the sets and chains it adds or changes.
    fn touch(&mut self, name: &str) {
        if let Some(t) = &mut self.touched {
            t.insert(name.to_string());
        }
    }

    fn set(&mut self, name: &str, kind: SetKind) -> &mut std::collections::BTreeSet<Elem> {
        self.touch(name);
        let elems = self
            .out
            .sets
            .entry(name.to_string())
            .or_insert_with(|| SetState {
                kind,
                elems: Some(Default::default()),
            })
            .elems
            .get_or_insert_with(Default::default);
        Arc::make_mut(elems)
    }

    /// Fill a set: a new one takes `elems` whole (no element-by-element insertion:
    /// address sets hold tens of thousands).
    fn fill(&mut self, name: &str, kind: SetKind, elems: BTreeSet<Elem>) {
        self.fill_shared(name, kind, Arc::new(elems));
    }

    /// [`Renderer::fill`] with a shared set: a new set shares it (a set carried over
    /// from what the kernel holds costs nothing, and diffs as unchanged at once).
    fn fill_shared(&mut self, name: &str, kind: SetKind, elems: Arc<BTreeSet<Elem>>) {
        self.touch(name);
        match self.out.sets.get_mut(name) {
            Some(SetState {
                elems: Some(have), ..
            }) if !have.is_empty() => {
                Arc::make_mut(have).extend(elems.iter().cloned());
            }
            _ => {
                self.out.sets.insert(
                    name.to_string(),
                    SetState {
                        kind,
                        elems: Some(elems),
                    },
                );
            }
        }
    }

    fn chain(&mut self, name: &str, hook: Option<Hook>, rules: Vec<Stmts>) {
        self.touch(name);
        let hash = stable_hash(&canonical_json(&rules));
        self.out.chains.insert(
            name.to_string(),
            ChainState {
                hook,
                rules: Arc::new(rules),
                hash: Some(hash),
            },
        );
    }

    /// A content-addressed chain: named after its rules.
    fn content_chain(&mut self, prefix: &str, rules: Vec<Stmts>) -> String {
        let name = content_name(prefix, &canonical_json(&rules));
        if !self.out.chains.contains_key(&name) {
            self.chain(&name, None, rules);
        }
        name
    }

    fn is_local(&self, node: Option<&str>) -> bool {
        match &self.opts.node {
            None => true,
            Some(n) => node == Some(n.as_str()),
        }
    }

    /// Address -> identity for every workload (peers may be anywhere) and node; the
    /// local workloads' addresses.
    fn identity_maps(&mut self) {
        // The patch path starts from these numbers next time.
        let before = std::mem::replace(&mut self.cache.local_sigs, self.local_sigs.clone());
        let carried: Option<Vec<Arc<BTreeSet<Elem>>>> = MAPS
            .iter()
            .map(|(name, kind)| self.carried(name, *kind))
            .collect();
        if let Some(maps) = carried {
            self.remark_carried(maps, &before);
            return;
        }
        // Everything is marked again: nothing is left for a later carried render.
        self.cache.dirty_addrs.clear();
        // Collected first and then built in bulk: tens of thousands of elements.
        let mut maps: [Vec<Elem>; 4] = Default::default();
        let mut put = |ip: IpAddr, src: u32, dst: u32| {
            let v6 = usize::from(ip.is_ipv6());
            maps[v6].push(Elem::AddrMark(ip, src));
            maps[2 + v6].push(Elem::AddrMark(ip, dst));
        };
        for &(wid, w) in &self.workloads {
            let Some(identity) = self.engine.identity_of(wid) else {
                continue;
            };
            let (src, dst) = self.marks(identity, self.is_local(w.node.as_deref()));
            for ip in &w.ips {
                // An address two workloads claim belongs to the one the engine says.
                if self.engine.owner_of(ip) != Some(AddrOwner::Workload(wid)) {
                    continue;
                }
                put(*ip, src, dst);
            }
        }
        for n in self.engine.nodes() {
            for ip in &n.addresses {
                if self.engine.owner_of(ip) == Some(AddrOwner::Host) {
                    put(*ip, ID_HOST, ID_HOST);
                }
            }
        }
        for ((name, kind), elems) in MAPS.iter().zip(maps) {
            *self.set(name, *kind) = elems.into_iter().collect();
        }
    }

    /// The source and destination marks of an identity's addresses: its number, and
    /// for workloads of this node its signature numbers (others carry none).
    fn marks(&self, identity: u32, local: bool) -> (u32, u32) {
        let number = self.numbers[identity as usize];
        let (e, i) = match local {
            true => self
                .local_sigs
                .get(&identity)
                .copied()
                .unwrap_or((SIG_OVERFLOW, SIG_OVERFLOW)),
            false => (0, 0),
        };
        (number | (e << SIG_SHIFT), number | (i << SIG_SHIFT))
    }

    /// Signature number -> signature chain, for the signatures of this node's identities;
    /// identities beyond the node's capacity of signatures dispatch to `deny`.
    fn dispatch(&mut self) {
        self.set("e_dispatch", SetKind::MarkVerdicts);
        self.set("i_dispatch", SetKind::MarkVerdicts);
        let mut local: BTreeSet<u32> = BTreeSet::new();
        for &(wid, w) in &self.workloads {
            if self.is_local(w.node.as_deref())
                && let Some(id) = self.engine.identity_of(wid)
            {
                local.insert(id);
            }
        }
        let (mut e_used, mut i_used) = (BTreeSet::new(), BTreeSet::new());
        self.cache.local_keys.clear();
        for id in local {
            // Identities with the same resolution share their signature chains.
            let key = self.engine.endpoint_policy(id).map(SignatureKey::of);
            if let Some(k) = &key {
                self.cache.local_keys.insert(id, k.clone());
            }
            let (e, i) = match key.as_ref().and_then(|k| self.index.signatures.get(k)) {
                Some(chains) => chains.clone(),
                None => {
                    let e = self.signature_chain(id, Direction::Egress);
                    let i = self.signature_chain(id, Direction::Ingress);
                    if let Some(k) = key {
                        self.index.signatures.insert(k, (e.clone(), i.clone()));
                    }
                    (e, i)
                }
            };
            let es = self.ids.egress_sigs.number(&e).unwrap_or(SIG_OVERFLOW);
            let is = self.ids.ingress_sigs.number(&i).unwrap_or(SIG_OVERFLOW);
            self.local_sigs.insert(id, (es, is));
            let e = if es == SIG_OVERFLOW {
                CHAIN_DENY.to_string()
            } else {
                e
            };
            let i = if is == SIG_OVERFLOW {
                CHAIN_DENY.to_string()
            } else {
                i
            };
            self.set("e_dispatch", SetKind::MarkVerdicts)
                .insert(Elem::MarkGoto(es << SIG_SHIFT, e.clone()));
            self.set("i_dispatch", SetKind::MarkVerdicts)
                .insert(Elem::MarkGoto(is << SIG_SHIFT, i.clone()));
            e_used.insert(e);
            i_used.insert(i);
        }
        self.ids.egress_sigs.retain(&e_used);
        self.ids.ingress_sigs.retain(&i_used);
    }

    fn allow_target(dir: Direction) -> &'static str {
        match dir {
            Direction::Egress => CHAIN_INGRESS,
            Direction::Ingress => CHAIN_ALLOWED,
        }
    }

    fn pass_flag(dir: Direction) -> u32 {
        match dir {
            Direction::Egress => PASS_EGRESS,
            Direction::Ingress => PASS_INGRESS,
        }
    }

    fn prefix(dir: Direction) -> &'static str {
        match dir {
            Direction::Egress => "e_",
            Direction::Ingress => "i_",
        }
    }

    /// Tier 1 (the identity's policies in order), then tiers 2 and 3.
    fn signature_chain(&mut self, id: u32, dir: Direction) -> String {
        let engine = self.engine;
        let Some(ep) = engine.endpoint_policy(id) else {
            return CHAIN_DENY.to_string();
        };
        let jumps: Vec<(Arc<str>, bool)> = ep
            .policies
            .iter()
            .filter_map(|&pi| self.policy_chain(pi, dir))
            .collect();
        let isolated = match dir {
            Direction::Ingress => ep.ingress_isolated,
            Direction::Egress => ep.egress_isolated,
        };
        let nps: Vec<Arc<str>> = if isolated {
            ep.network_policies
                .iter()
                .filter_map(|&ni| self.np_chain(ni, dir))
                .collect()
        } else {
            Vec::new()
        };
        // The same resolution over the same chains as last time: the same two chains.
        let skey = (SignatureKey::of(ep), dir);
        if let Some(hit) = self.cache.get_sig(&skey, &jumps, &nps) {
            for (name, chain) in [&hit.tail, &hit.sig] {
                if !self.out.chains.contains_key(name) {
                    self.touch(name);
                    self.out.chains.insert(name.clone(), chain.clone());
                }
            }
            return hit.sig.0.clone();
        }
        let (tail, tail_key) = self.tail_chain(ep, dir, &nps);
        let prefix = format!("{}s_", Self::prefix(dir));
        let mut key = format!("{prefix}|{tail}");
        for (chain, has_pass) in &jumps {
            let _ = write!(key, "|{chain}{}", u8::from(*has_pass));
        }
        let sig_key = key.clone();
        let name = self.keyed_chain(key, &prefix, || {
            let mut rules: Vec<Stmts> = Vec::new();
            for (chain, has_pass) in &jumps {
                rules.push(vec![jump(chain)]);
                if *has_pass {
                    let flag = Self::pass_flag(dir);
                    rules.push(vec![
                        eq(
                            and(meta(nftables::expr::MetaKey::Mark), flag),
                            Expression::Number(flag),
                        ),
                        goto(&tail),
                    ]);
                }
            }
            rules.push(vec![goto(&tail)]);
            rules
        });
        let entry = SigChains {
            jumps,
            nps,
            tail: (tail.clone(), self.out.chains[&tail].clone()),
            sig: (name.clone(), self.out.chains[&name].clone()),
            keys: [tail_key, sig_key],
        };
        self.cache.put_sig(skey, entry);
        name
    }

    /// A chain made of jumps to other chains (signature and tail chains), cached under
    /// a key naming everything its rules are made of.
    fn keyed_chain(
        &mut self,
        key: String,
        prefix: &str,
        build: impl FnOnce() -> Vec<Stmts>,
    ) -> String {
        if let Some(r) = self.cache.get(&key) {
            if !self.out.chains.contains_key(&*r.name) {
                self.touch(&r.name);
                self.out.chains.insert(r.name.to_string(), r.chain.clone());
            }
            return r.name.to_string();
        }
        let name = self.content_chain(prefix, build());
        let chain = self.out.chains[&name].clone();
        self.cache.put(
            key,
            Arc::new(Rendered {
                name: name.as_str().into(),
                chain,
                has_pass: false,
                uses: Vec::new(),
            }),
        );
        name
    }

    /// Tier 2 (NetworkPolicy isolation: the union of allows, else deny) or tier 3 (mode).
    fn tail_chain(
        &mut self,
        ep: &bulkhead_policy::EndpointPolicy,
        dir: Direction,
        nps: &[Arc<str>],
    ) -> (String, String) {
        let isolated = match dir {
            Direction::Ingress => ep.ingress_isolated,
            Direction::Egress => ep.egress_isolated,
        };
        // A node on either end: Kubernetes always lets a pod's node reach it, so only
        // bulkhead rules (tier 1, already evaluated) decide host traffic.
        let peer = match dir {
            Direction::Egress => dst_id(),
            Direction::Ingress => src_id(),
        };
        let prefix = format!("{}t_", Self::prefix(dir));
        let mut key = format!("{prefix}|{isolated}|{:?}", ep.mode);
        for c in nps {
            let _ = write!(key, "|{c}");
        }
        let name = self.keyed_chain(key.clone(), &prefix, || {
            let mut rules: Vec<Stmts> = vec![vec![
                eq(peer, Expression::Number(ID_HOST)),
                goto(Self::allow_target(dir)),
            ]];
            if isolated {
                for chain in nps {
                    rules.push(vec![jump(chain)]);
                }
                rules.push(vec![goto(CHAIN_DENY)]);
            } else if ep.mode == Mode::Protect {
                rules.push(vec![goto(CHAIN_DENY)]);
            } else {
                // Monitor and Discover allow; the agent tells violations and learning
                // apart from the flow record, with the engine.
                rules.push(vec![goto(Self::allow_target(dir))]);
            }
            rules
        });
        (name, key)
    }

    fn policy_chain(&mut self, pi: u32, dir: Direction) -> Option<(Arc<str>, bool)> {
        if let Some(c) = self.policy_chains.get(&(pi, dir)) {
            return c.clone();
        }
        let cp = &self.engine.compiled().policies[pi as usize];
        let range = match dir {
            Direction::Ingress => cp.ingress.clone(),
            Direction::Egress => cp.egress.clone(),
        };
        let chain = self.rules_chain((false, pi, dir), range);
        self.policy_chains.insert((pi, dir), chain.clone());
        chain
    }

    /// A chain of compiled rules (a policy's or a NetworkPolicy's, one direction), from
    /// the cache when these rules were rendered before. None: it renders to nothing.
    fn rules_chain(
        &mut self,
        doc: cache::DocKey,
        range: std::ops::Range<RuleId>,
    ) -> Option<(Arc<str>, bool)> {
        let (np, _, dir) = doc;
        let engine = self.engine;
        let crules = &engine.compiled().rules[range.start as usize..range.end as usize];
        // The same document with the same rules as last time (the usual case), else the
        // same rules anywhere (a document moved), else render.
        let cached = match self.cache.get_doc(doc, crules, &self.sel_sets) {
            Some(r) => Some(r),
            None => {
                let prefix = format!("{}{}_", Self::prefix(dir), if np { "n" } else { "p" });
                let key = rules_key(&prefix, dir, crules, &self.sel_sets);
                match self.cache.get(&key) {
                    Some(r) => Some(r),
                    None => {
                        let r = self.render_rules(&prefix, range, dir);
                        self.cache.put(key, r.clone());
                        self.cache.put_doc(doc, crules, &self.sel_sets, r.clone());
                        return (!r.name.is_empty()).then(|| (r.name.clone(), r.has_pass));
                    }
                }
                .inspect(|r| self.cache.put_doc(doc, crules, &self.sel_sets, r.clone()))
            }
        };
        let r = cached?;
        self.replay(&r.uses);
        if !r.name.is_empty() && !self.out.chains.contains_key(&*r.name) {
            self.touch(&r.name);
            self.out.chains.insert(r.name.to_string(), r.chain.clone());
        }
        (!r.name.is_empty()).then(|| (r.name.clone(), r.has_pass))
    }

    /// Render compiled rules into a chain, recording the sets they use.
    fn render_rules(
        &mut self,
        prefix: &str,
        range: std::ops::Range<RuleId>,
        dir: Direction,
    ) -> Arc<Rendered> {
        let mark = self.uses.len();
        let (rules, has_pass) = self.rules(range, dir);
        let uses = self.uses.split_off(mark);
        let name = if rules.is_empty() {
            String::new()
        } else {
            self.content_chain(prefix, rules)
        };
        let chain = self.out.chains.get(&name).cloned().unwrap_or_default();
        Arc::new(Rendered {
            name: name.into(),
            chain,
            has_pass,
            uses,
        })
    }

    /// Make the sets a cached chain's rules use exist, filled from the current state.
    /// Sets are named after what fills them, so one that exists is already right.
    fn replay(&mut self, uses: &[SetUse]) {
        for u in uses {
            match u {
                SetUse::Selector(name) if !self.out.sets.contains_key(name) => {
                    if let Some(&sid) = self.sel_by_name.get(name) {
                        self.fill_selector_set(sid, name);
                    }
                }
                SetUse::Fixed { name, kind, elems } if !self.out.sets.contains_key(name) => {
                    self.set(name, *kind).extend(elems.iter().cloned());
                }
                SetUse::NamedPort {
                    set,
                    port,
                    proto,
                    v6,
                } if !self.out.sets.contains_key(set) => {
                    self.named_port_set(port, *proto, *v6);
                }
                _ => {}
            }
        }
    }

    fn np_chain(&mut self, ni: u32, dir: Direction) -> Option<Arc<str>> {
        if let Some(c) = self.np_chains.get(&(ni, dir)) {
            return c.clone();
        }
        let np = &self.engine.compiled().network_policies[ni as usize];
        let range = match dir {
            Direction::Ingress => np.ingress.clone(),
            Direction::Egress => np.egress.clone(),
        };
        let chain = self
            .rules_chain((true, ni, dir), range.unwrap_or(0..0))
            .map(|(name, _)| name);
        self.np_chains.insert((ni, dir), chain.clone());
        chain
    }

    fn base_chains(&mut self) {
        let sig = |ct_mark: bool| {
            and(
                if ct_mark {
                    ct("mark")
                } else {
                    meta(nftables::expr::MetaKey::Mark)
                },
                SIG_MASK,
            )
        };
        let mut forward: Vec<Stmts> = vec![
            vec![ct_state(&["established", "related"]), accept()],
            icmpv6_link_plumbing(),
            vec![ct_state(&["invalid"]), drop()],
        ];
        forward.extend(quarantined());
        if self.opts.l7_proxy.is_some() {
            // A Redis connection the socket path decides (its L7 rules are not in the
            // filter chains: they would deny what no proxy saw; see SOCKPATH_MARK).
            forward.push(vec![
                eq(
                    meta(nftables::expr::MetaKey::Mark),
                    Expression::Number(SOCKPATH_MARK),
                ),
                goto(CHAIN_ALLOWED),
            ]);
        }
        forward.extend([
            vec![set_mark_from_map(false, false, "saddr", "id4")],
            vec![set_mark_from_map(false, true, "saddr", "id6")],
            vec![set_mark_from_map(true, false, "daddr", "dst4")],
            vec![set_mark_from_map(true, true, "daddr", "dst6")],
        ]);
        if let Some(glob) = self.opts.pod_interfaces.clone() {
            // Identity comes from the source address, so a workload must not send with
            // another's: that would take the other's identity (an LDAP client of the
            // red group reaching the blue servers as the blue client). Checked on every
            // packet, before conntrack, so forged packets neither join another
            // workload's connections nor fill the connection table.
            self.chain(
                CHAIN_SOURCE_CHECK,
                Some(Hook::Raw),
                vec![vec![
                    iifname(&glob),
                    no_route_back_to_source(),
                    log(LOG_SPOOF, LOG_GROUP),
                    drop(),
                ]],
            );
        }
        if let Some(glob) = &self.opts.pod_interfaces {
            // Fail closed: a workload the agent does not know yet sends nothing.
            forward.push(vec![
                iifname(glob),
                eq(src_id(), Expression::Number(ID_WORLD)),
                goto(CHAIN_DENY),
            ]);
        }
        // From a workload of this node (it has a signature): its egress first.
        forward.push(vec![
            ne(sig(false), Expression::Number(0)),
            goto(CHAIN_EGRESS),
        ]);
        forward.push(vec![goto(CHAIN_INGRESS)]);
        self.chain(CHAIN_FORWARD, Some(Hook::Forward), forward);

        // This node's own traffic: to a local workload it is host -> workload (ingress
        // of the workload); from a local workload to the node it is that workload's
        // egress to the host. Both go through the same chains as forwarded traffic.
        let mut output: Vec<Stmts> = vec![vec![ct_state(&["established", "related"]), accept()]];
        // Not even the L7 proxy reaches a quarantined workload.
        output.extend(quarantined());
        output.extend([
            // The L7 proxy's own connections to servers: it has decided already. Their
            // conntrack mark tells prerouting to hand the answers to the proxy's
            // socket (see the divert chain), and the agent which entry of a proxied
            // connection is the proxy's (PROXY_CT_MARK). Set when the connection
            // begins: the answers the proxy sends a UDP client travel in the reply
            // direction of the client's own (diverted) flow, whose mark stays.
            vec![
                eq(
                    meta(nftables::expr::MetaKey::Mark),
                    Expression::Number(PROXY_MARK),
                ),
                ct_state(&["new"]),
                set_mark(true, PROXY_CT_MARK),
                accept(),
            ],
            vec![
                eq(
                    meta(nftables::expr::MetaKey::Mark),
                    Expression::Number(PROXY_MARK),
                ),
                accept(),
            ],
            icmpv6_link_plumbing(),
            vec![set_mark(false, ID_HOST)],
            vec![set_mark_from_map(true, false, "daddr", "dst4")],
            vec![set_mark_from_map(true, true, "daddr", "dst6")],
            vec![ne(sig(true), Expression::Number(0)), goto(CHAIN_INGRESS)],
        ]);
        self.chain(CHAIN_OUTPUT, Some(Hook::Output), output);
        let mut input: Vec<Stmts> = vec![vec![ct_state(&["established", "related"]), accept()]];
        // Before the divert: a quarantined client reaches no proxy either.
        input.extend(quarantined());
        input.extend([
            // Diverted to the L7 proxy, which decides (with the same engine).
            vec![
                eq(
                    meta(nftables::expr::MetaKey::Mark),
                    Expression::Number(DIVERT_MARK),
                ),
                accept(),
            ],
            icmpv6_link_plumbing(),
            vec![ct_state(&["invalid"]), drop()],
            vec![set_mark_from_map(false, false, "saddr", "id4")],
            vec![set_mark_from_map(false, true, "saddr", "id6")],
            vec![set_mark(true, ID_HOST)],
            vec![ne(sig(false), Expression::Number(0)), goto(CHAIN_EGRESS)],
        ]);
        self.chain(CHAIN_INPUT, Some(Hook::Input), input);
        for (name, kind) in QUARANTINE {
            let v6 = kind == SetKind::Addrs6;
            let elems = self
                .opts
                .quarantine
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| Elem::Addr(*a))
                .collect();
            self.fill(name, kind, elems);
        }

        // Signature number -> that signature's chain. Signature numbers exist only for
        // this node's workloads, so the maps are small and only change when a new
        // combination of policies appears; a workload's change is a change of marks.
        self.chain(
            CHAIN_EGRESS,
            None,
            vec![vec![vmap(sig(false), "e_dispatch")], vec![goto(CHAIN_DENY)]],
        );
        let mut ingress: Vec<Stmts> = vec![vec![vmap(sig(true), "i_dispatch")]];
        if let Some(glob) = &self.opts.pod_interfaces {
            // To a local workload interface but not dispatched: a workload we do not know.
            ingress.push(vec![oifname(glob), goto(CHAIN_DENY)]);
        }
        ingress.push(vec![goto(CHAIN_ALLOWED)]);
        self.chain(CHAIN_INGRESS, None, ingress);

        let mut allowed = Vec::new();
        if self.opts.log_allowed {
            allowed.push(vec![log(LOG_ALLOW, LOG_GROUP)]);
        }
        allowed.push(vec![accept()]);
        self.chain(CHAIN_ALLOWED, None, allowed);

        let deny = if self.opts.silent_drop {
            vec![vec![log(LOG_DENY, LOG_GROUP)], vec![drop()]]
        } else {
            vec![
                vec![log(LOG_DENY, LOG_GROUP)],
                vec![l4proto(6), reject_tcp_reset()],
                vec![reject_icmpx()],
            ]
        };
        self.chain(CHAIN_DENY, None, deny);
    }
}

/// Sorted addresses of a map: for tests and reports.
pub fn addresses_in(rs: &Ruleset, set: &str) -> BTreeMap<IpAddr, u32> {
    rs.sets
        .get(set)
        .and_then(|s| s.elems.as_ref())
        .map(|e| {
            e.iter()
                .filter_map(|x| match x {
                    Elem::AddrMark(a, m) => Some((*a, *m)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
