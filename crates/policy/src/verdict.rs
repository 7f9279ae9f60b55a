//! The one verdict function.
//!
//! A connection needs the source's egress AND the destination's ingress. Each side is
//! evaluated through three tiers, stopping at the first that decides:
//! 1. bulkhead Policies that apply to the workload, in priority order; the first rule
//!    that matches decides (Allow, Deny), hands over to tier 2 (Pass) or is noted and
//!    skipped (Log);
//! 2. Kubernetes NetworkPolicy: if any selects the workload for this direction, the
//!    union of their rules is what is allowed, everything else is denied;
//! 3. the workload's mode: Protect denies, Monitor allows and flags a violation,
//!    Discover allows and records.
//!
//! Rules with `app:` or L7 conditions cannot be decided without the request. When none
//! is given (the kernel's view of a new connection) they are collected in
//! [`Side::gated`]: the connection opens at layer 4 if any gated Allow rule or the
//! fall-through decision allows it, and the L7 proxy decides each request.

use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_model::{L4, Workload};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::compile::{CRule, Direction, RuleId, Target};
use crate::engine::{AddrOwner, Engine, WorkloadId};
use crate::identity::IdentityId;
use crate::l7::{L7Outcome, L7Request, match_rule, name_matches};
use crate::spec::{Action, Entity, Mode, PortSel, PortSpec};

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A known workload; `addr` is the address used (None: its first address, if any).
    Workload {
        id: WorkloadId,
        addr: Option<IpAddr>,
    },
    /// A node's own address.
    Host { addr: IpAddr },
    /// Anything else: an address, and DNS names it is known by (for `dns` peers).
    External {
        addr: Option<IpAddr>,
        names: Vec<String>,
    },
}

/// The question: may `src` open this connection to `dst`?
#[derive(Clone, Copy, Debug)]
pub struct Connection<'a> {
    pub src: &'a Endpoint,
    pub dst: &'a Endpoint,
    pub l4: L4,
    /// What is known at layer 7; None for a new connection seen by the kernel.
    pub l7: Option<&'a L7Request>,
}

/// What decided one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This end is not a workload: no policy applies on this side.
    Unmanaged,
    /// Traffic of a workload to itself is never policed.
    SameWorkload,
    /// A bulkhead rule (Allow or Deny).
    Rule(RuleId),
    /// A NetworkPolicy rule allowed it.
    NetworkPolicy(RuleId),
    /// Traffic between a workload and a node: no bulkhead rule decided, and neither
    /// NetworkPolicy nor modes apply to it (Kubernetes always lets a pod's node reach it,
    /// for probes).
    Host,
    /// NetworkPolicies isolate this side and none of their rules allows it.
    NetworkPolicyIsolation,
    /// Nothing decided: the mode of the workload's group (None: ungrouped default).
    Mode { mode: Mode, group: Option<u32> },
}

/// The verdict for one direction (the source's egress or the destination's ingress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// May the connection open, as far as this side is concerned?
    pub allowed: bool,
    pub decision: Decision,
    /// The Pass rule that sent evaluation to the NetworkPolicy tier.
    pub passed: Option<RuleId>,
    /// Log rules that matched on the way.
    pub logged: SmallVec<[RuleId; 2]>,
    /// Rules that depend on the request (see the module docs), in order.
    pub gated: SmallVec<[RuleId; 2]>,
    /// The answer if none of the gated rules matches: what a connection gets whose
    /// protocol no rule can name (the L7 proxy detected nothing it knows).
    pub allowed_without_gated: bool,
}

impl Side {
    fn decided(allowed: bool, decision: Decision) -> Side {
        Side {
            allowed,
            decision,
            passed: None,
            logged: SmallVec::new(),
            gated: SmallVec::new(),
            allowed_without_gated: allowed,
        }
    }

    /// Allowed only because the group is in Monitor mode: a violation to report.
    pub fn is_violation(&self) -> bool {
        matches!(
            self.decision,
            Decision::Mode {
                mode: Mode::Monitor,
                ..
            }
        )
    }

    /// Allowed because the group is learning (Discover mode).
    pub fn is_learned(&self) -> bool {
        matches!(
            self.decision,
            Decision::Mode {
                mode: Mode::Discover,
                ..
            }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The source's egress.
    pub egress: Side,
    /// The destination's ingress.
    pub ingress: Side,
}

impl Verdict {
    pub fn is_violation(&self) -> bool {
        self.allowed && (self.egress.is_violation() || self.ingress.is_violation())
    }

    /// Must the L7 proxy see this connection's requests?
    pub fn needs_l7(&self) -> bool {
        self.allowed && !(self.egress.gated.is_empty() && self.ingress.gated.is_empty())
    }
}

/// How the other end looks to a side's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Workload(IdentityId),
    Host,
    World,
}

pub(crate) struct PeerView<'a> {
    pub class: Class,
    pub addr: Option<IpAddr>,
    pub names: &'a [String],
    pub workload: Option<&'a Workload>,
}

/// Per identity pair: the rules of each side that can possibly match the other end.
#[derive(Debug)]
pub(crate) struct PairRules {
    egress: Option<SideRules>,
    ingress: Option<SideRules>,
}

#[derive(Debug)]
struct SideRules {
    tier1: SmallVec<[RuleId; 8]>,
    /// Some when NetworkPolicies isolate this side.
    network: Option<SmallVec<[RuleId; 4]>>,
    mode: Mode,
    group: Option<u32>,
}

/// Cache of [`PairRules`] keyed by (source class, destination class), where a workload
/// class includes its identity's generation so that reused ids never hit stale entries.
#[derive(Debug, Default)]
pub struct PairCache {
    map: FxHashMap<(u64, u64), Arc<PairRules>>,
}

impl PairCache {
    /// Entries beyond this are dropped wholesale: a cache, not a second copy of policy.
    const LIMIT: usize = 1 << 20;

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

const HOST_KEY: u64 = u64::MAX;
const WORLD_KEY: u64 = u64::MAX - 1;

impl Engine {
    /// Decide a connection. Cheap after the first question about an identity pair.
    ///
    /// An HTTP request whose path has `;` parameters is decided as sent and as Tomcat
    /// and Jetty route it, each segment's parameters removed (`/admin;x/users` is
    /// `/admin/users` to them, a segment `admin;x` to nginx): allowed only if both are,
    /// so a rule on `/admin` holds on either server (the refusing reading's verdict).
    pub fn verdict(&self, c: &Connection) -> Verdict {
        let v = self.verdict_as_sent(c);
        if v.allowed
            && let Some(other) = c.l7.and_then(crate::l7::http_path::without_params)
        {
            let w = self.verdict_as_sent(&Connection {
                l7: Some(&other),
                ..*c
            });
            if !w.allowed {
                return w;
            }
        }
        v
    }

    fn verdict_as_sent(&self, c: &Connection) -> Verdict {
        let src = self.view(c.src);
        let dst = self.view(c.dst);
        if let (Endpoint::Workload { id: a, .. }, Endpoint::Workload { id: b, .. }) = (c.src, c.dst)
            && a == b
        {
            let s = Side::decided(true, Decision::SameWorkload);
            return Verdict {
                allowed: true,
                egress: s.clone(),
                ingress: s,
            };
        }
        let pair = self.pair_rules(&src, &dst);
        let egress = match &pair.egress {
            Some(r) => self.eval_side(r, &dst, c, dst.workload),
            None => Side::decided(true, Decision::Unmanaged),
        };
        let ingress = match &pair.ingress {
            Some(r) => self.eval_side(r, &src, c, dst.workload),
            None => Side::decided(true, Decision::Unmanaged),
        };
        Verdict {
            allowed: egress.allowed && ingress.allowed,
            egress,
            ingress,
        }
    }

    /// Resolve what an endpoint is. An address that belongs to a workload or a node is
    /// treated as that workload or node, whatever the caller called it.
    pub(crate) fn view<'a>(&'a self, e: &'a Endpoint) -> PeerView<'a> {
        let (addr, names) = match e {
            Endpoint::Workload { id, addr } => {
                if let Some(s) = self.workloads.get(*id as usize).and_then(Option::as_ref) {
                    return PeerView {
                        class: Class::Workload(s.identity),
                        addr: addr.or_else(|| s.workload.ips.first().copied()),
                        names: &[],
                        workload: Some(&s.workload),
                    };
                }
                (*addr, &[][..])
            }
            Endpoint::Host { addr } => (Some(*addr), &[][..]),
            Endpoint::External { addr, names } => (*addr, names.as_slice()),
        };
        let owner = addr.and_then(|a| self.addrs.get(&a).copied());
        match owner {
            Some(AddrOwner::Workload(id)) => {
                let s = self.workloads[id as usize].as_ref();
                PeerView {
                    class: s.map_or(Class::World, |s| Class::Workload(s.identity)),
                    addr,
                    names,
                    workload: s.map(|s| &s.workload),
                }
            }
            Some(AddrOwner::Host) => PeerView {
                class: Class::Host,
                addr,
                names,
                workload: None,
            },
            None if matches!(e, Endpoint::Host { .. }) => PeerView {
                class: Class::Host,
                addr,
                names,
                workload: None,
            },
            None => PeerView {
                class: Class::World,
                addr,
                names,
                workload: None,
            },
        }
    }

    fn class_key(&self, c: Class) -> u64 {
        match c {
            Class::Workload(id) => {
                (u64::from(self.identities.generation(id)) << 32) | u64::from(id)
            }
            Class::Host => HOST_KEY,
            Class::World => WORLD_KEY,
        }
    }

    fn pair_rules(&self, src: &PeerView, dst: &PeerView) -> Arc<PairRules> {
        let key = (self.class_key(src.class), self.class_key(dst.class));
        if let Ok(cache) = self.pairs.read()
            && let Some(p) = cache.map.get(&key)
        {
            return p.clone();
        }
        let rules = Arc::new(PairRules {
            egress: match src.class {
                Class::Workload(id) => Some(self.side_rules(id, Direction::Egress, dst.class)),
                _ => None,
            },
            ingress: match dst.class {
                Class::Workload(id) => Some(self.side_rules(id, Direction::Ingress, src.class)),
                _ => None,
            },
        });
        if let Ok(mut cache) = self.pairs.write() {
            if cache.map.len() >= PairCache::LIMIT {
                cache.map.clear();
            }
            cache.map.insert(key, rules.clone());
        }
        rules
    }

    fn side_rules(&self, me: IdentityId, dir: Direction, other: Class) -> SideRules {
        let ep = &self.endpoints[me as usize];
        let keep = |rid: &RuleId| self.rule_could_match(&self.compiled.rules[*rid as usize], other);
        let tier1 = ep
            .policies
            .iter()
            .flat_map(|&pi| {
                let p = &self.compiled.policies[pi as usize];
                match dir {
                    Direction::Ingress => p.ingress.clone(),
                    Direction::Egress => p.egress.clone(),
                }
            })
            .filter(keep)
            .collect();
        let isolated = match dir {
            Direction::Ingress => ep.ingress_isolated,
            Direction::Egress => ep.egress_isolated,
        };
        let network = isolated.then(|| {
            ep.network_policies
                .iter()
                .filter_map(|&ni| {
                    let np = &self.compiled.network_policies[ni as usize];
                    match dir {
                        Direction::Ingress => np.ingress.clone(),
                        Direction::Egress => np.egress.clone(),
                    }
                })
                .flatten()
                .filter(keep)
                .collect()
        });
        SideRules {
            tier1,
            network,
            mode: ep.mode,
            group: ep.group,
        }
    }

    /// Could this rule's peers match an end of this class, whatever its address?
    fn rule_could_match(&self, r: &CRule, other: Class) -> bool {
        r.peers.is_empty()
            || r.peers.iter().any(|t| match t {
                Target::Workloads(s) => {
                    matches!(other, Class::Workload(id) if self.sel_bits[*s as usize].contains(id))
                }
                Target::Cidr(_) => true,
                Target::Dns(_) => other == Class::World,
                Target::Entity(e) => entity_matches(*e, other),
            })
    }

    /// Does one peer of a rule match the other end exactly?
    pub(crate) fn target_matches(&self, t: &Target, other: &PeerView) -> bool {
        match t {
            Target::Workloads(s) => {
                matches!(other.class, Class::Workload(id) if self.sel_bits[*s as usize].contains(id))
            }
            Target::Cidr(c) => other.addr.is_some_and(|a| c.contains(&a)),
            Target::Dns(p) => {
                other.class == Class::World && other.names.iter().any(|n| name_matches(p, n))
            }
            Target::Entity(e) => entity_matches(*e, other.class),
        }
    }

    /// The first peer of `r` that matches, if any (`Some(None)`: the rule has no peers).
    pub(crate) fn matching_peer(&self, r: &CRule, other: &PeerView) -> Option<Option<usize>> {
        if r.peers.is_empty() {
            return Some(None);
        }
        r.peers
            .iter()
            .position(|t| self.target_matches(t, other))
            .map(Some)
    }

    fn eval_side(
        &self,
        rules: &SideRules,
        other: &PeerView,
        c: &Connection,
        dst: Option<&Workload>,
    ) -> Side {
        let mut side = Side::decided(false, Decision::NetworkPolicyIsolation);
        let l4_matches = |rid: RuleId| -> Option<&CRule> {
            let r = &self.compiled.rules[rid as usize];
            (self.matching_peer(r, other).is_some()
                && matching_port(&r.ports, &c.l4, dst).is_some())
            .then_some(r)
        };
        let mut tier1_done = false;
        for &rid in &rules.tier1 {
            let Some(r) = l4_matches(rid) else { continue };
            match match_rule(r.app, &r.l7, c.l7) {
                L7Outcome::NoMatch => continue,
                L7Outcome::Undecided => {
                    side.gated.push(rid);
                    continue;
                }
                L7Outcome::Match => {}
            }
            match r.action {
                Action::Allow | Action::Deny => {
                    side.allowed = r.action == Action::Allow;
                    side.decision = Decision::Rule(rid);
                    tier1_done = true;
                    break;
                }
                Action::Pass => {
                    side.passed = Some(rid);
                    break;
                }
                Action::Log => side.logged.push(rid),
            }
        }
        if !tier1_done {
            if other.class == Class::Host {
                side.allowed = true;
                side.decision = Decision::Host;
            } else if let Some(network) = &rules.network {
                // Isolated: allowed iff some rule allows (rules are all Allow).
                side.allowed = false;
                side.decision = Decision::NetworkPolicyIsolation;
                if let Some(&rid) = network.iter().find(|&&rid| l4_matches(rid).is_some()) {
                    side.allowed = true;
                    side.decision = Decision::NetworkPolicy(rid);
                }
            } else {
                side.allowed = rules.mode != Mode::Protect;
                side.decision = Decision::Mode {
                    mode: rules.mode,
                    group: rules.group,
                };
            }
        }
        side.allowed_without_gated = side.allowed;
        if !side.allowed {
            side.allowed = side
                .gated
                .iter()
                .any(|&g| self.compiled.rules[g as usize].action == Action::Allow);
        }
        side
    }
}

fn entity_matches(e: Entity, c: Class) -> bool {
    match e {
        Entity::World => c == Class::World,
        Entity::Host => c == Class::Host,
        Entity::Cluster => matches!(c, Class::Workload(_) | Class::Host),
    }
}

/// Index of the first port entry that matches (`Some(None)`: the rule has no ports).
/// Named ports resolve on the destination workload for the connection's protocol.
pub(crate) fn matching_port(
    ports: &[PortSpec],
    l4: &L4,
    dst: Option<&Workload>,
) -> Option<Option<usize>> {
    if ports.is_empty() {
        return Some(None);
    }
    ports
        .iter()
        .position(|p| port_matches(p, l4, dst))
        .map(Some)
}

fn port_matches(p: &PortSpec, l4: &L4, dst: Option<&Workload>) -> bool {
    if p.protocol.is_some_and(|proto| proto != l4.protocol()) {
        return false;
    }
    match (&p.port, l4) {
        (PortSel::Any, _) => true,
        (PortSel::Range(r), L4::Port { port, .. }) => r.contains(*port),
        (PortSel::Named(name), L4::Port { protocol, port }) => {
            dst.and_then(|w| w.named_port(name, *protocol)) == Some(*port)
        }
        (
            PortSel::Icmp { icmp_type, code },
            L4::Icmp {
                icmp_type: t,
                code: c,
                ..
            },
        ) => icmp_type == t && code.is_none_or(|x| x == *c),
        _ => false,
    }
}
