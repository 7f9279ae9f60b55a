//! From documents as written ([`crate::spec`]) to the form the engine evaluates.
//!
//! Every semantic rule of the policy language lives here, once:
//! - namespace scoping: bare selectors in a namespaced Policy or in a NetworkPolicy select
//!   in that namespace; in a cluster-scoped Policy or a Group, in every namespace;
//! - Kubernetes policyTypes defaulting (Ingress always; Egress only when `egress` has
//!   at least one rule, exactly as the API server's defaulting does);
//! - per-direction isolation: a NetworkPolicy isolates the pods it selects only in the
//!   directions of its policyTypes, and its rules for other directions are ignored;
//! - empty or absent `from`/`to`/`ports` lists mean "any";
//! - tier-1 evaluation order: priority ascending, then name, then document order.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use bulkhead_model::{CidrBlock, Selector};
use rustc_hash::FxHashMap;

use crate::l7::{AppProtocol, L7Match};
use crate::selectors::{EndpointSelector, NsMatch};
use crate::spec::{
    Action, Entity, Mode, NamePattern, NetworkPolicy, NpPeer, Origin, PeerSpec, PolicySet,
    PolicyType, PortSpec, WorkloadSelector,
};

/// Index into [`Compiled::selectors`].
pub type SelectorId = u32;
/// Index into [`Compiled::rules`].
pub type RuleId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// The evaluation tiers, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Tier {
    /// bulkhead `Policy` documents, by priority.
    Policy,
    /// Kubernetes `NetworkPolicy`.
    NetworkPolicy,
    /// The group's mode (or the ungrouped default).
    Mode,
}

/// Where a compiled rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleAt {
    pub tier: Tier,
    /// Index into `PolicySet::policies` or `PolicySet::network_policies`.
    pub doc: u32,
    pub direction: Direction,
    /// Index of the rule within its direction's list.
    pub index: u32,
}

/// A compiled rule peer.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Workloads(SelectorId),
    Cidr(CidrBlock),
    Dns(NamePattern),
    Entity(Entity),
}

#[derive(Clone, Debug)]
pub struct CRule {
    pub action: Action,
    /// Empty: any peer.
    pub peers: Vec<Target>,
    /// Empty: any protocol and port.
    pub ports: Vec<PortSpec>,
    pub app: Option<AppProtocol>,
    pub l7: Vec<L7Match>,
    pub at: RuleAt,
}

#[derive(Clone, Debug)]
pub struct CGroup {
    pub members: SelectorId,
    pub mode: Mode,
    /// Indices into `PolicySet::sensors`.
    pub sensors: Vec<u32>,
    /// Which of the members' connections they read.
    pub inspect: crate::spec::Inspect,
}

#[derive(Clone, Debug)]
pub struct CPolicy {
    /// The workloads it governs: any of these selectors.
    pub applies: Vec<SelectorId>,
    pub ingress: Range<RuleId>,
    pub egress: Range<RuleId>,
}

#[derive(Clone, Debug)]
pub struct CNetPol {
    pub selects: SelectorId,
    /// Some: isolates the selected pods for ingress, allowing what these rules allow.
    pub ingress: Option<Range<RuleId>>,
    pub egress: Option<Range<RuleId>>,
}

/// A policy set ready for resolution.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    pub selectors: Vec<EndpointSelector>,
    pub rules: Vec<CRule>,
    pub groups: Vec<CGroup>,
    /// Indexed like `PolicySet::policies`.
    pub policies: Vec<CPolicy>,
    /// Indices into `policies` in tier-1 evaluation order.
    pub policy_order: Vec<u32>,
    /// Indexed like `PolicySet::network_policies`.
    pub network_policies: Vec<CNetPol>,
    pub ungrouped_mode: Mode,
    /// `Settings.spec.discover.detectProtocols`: connections of Discover workloads go
    /// through the L7 proxy (when it runs) to have their protocol detected.
    pub discover_detect_protocols: bool,
}

/// A semantic error that only shows across documents (a reference to a group that
/// does not exist, two groups with one name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for CompileError {}

struct Compiler<'a> {
    set: &'a PolicySet,
    out: Compiled,
    interned: FxHashMap<EndpointSelector, SelectorId>,
    group_by_name: FxHashMap<&'a str, usize>,
    errors: Vec<CompileError>,
}

/// Compile a policy set. All errors are reported, not just the first.
pub fn compile(set: &PolicySet) -> Result<Compiled, Vec<CompileError>> {
    let mut c = Compiler {
        set,
        out: Compiled {
            ungrouped_mode: set.settings.ungrouped_mode,
            discover_detect_protocols: set.settings.discover.detect_protocols,
            ..Compiled::default()
        },
        interned: FxHashMap::default(),
        group_by_name: FxHashMap::default(),
        errors: Vec::new(),
    };
    c.sensors();
    c.groups();
    c.policies();
    c.network_policies();
    c.responses();
    if c.errors.is_empty() {
        Ok(c.out)
    } else {
        Err(c.errors)
    }
}

impl<'a> Compiler<'a> {
    fn intern(&mut self, sel: EndpointSelector) -> SelectorId {
        if let Some(id) = self.interned.get(&sel) {
            return *id;
        }
        let id = self.out.selectors.len() as SelectorId;
        self.out.selectors.push(sel.clone());
        self.interned.insert(sel, id);
        id
    }

    fn groups(&mut self) {
        for (i, g) in self.set.groups.iter().enumerate() {
            if let Some(&first) = self.group_by_name.get(g.name.as_str()) {
                self.errors.push(CompileError {
                    origin: g.origin.clone(),
                    message: format!(
                        "a group named {:?} is already defined at {}",
                        g.name, self.set.groups[first].origin
                    ),
                });
                continue;
            }
            self.group_by_name.insert(&g.name, i);
            let members = self.intern(workload_selector(&g.members, None));
            let sensors = g
                .sensors
                .iter()
                .filter_map(|name| self.sensor(name, &g.origin))
                .collect();
            self.out.groups.push(CGroup {
                members,
                mode: g.mode,
                sensors,
                inspect: g.inspect,
            });
        }
    }

    fn sensors(&mut self) {
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, s) in self.set.sensors.iter().enumerate() {
            if let Some(&first) = seen.get(s.name.as_str()) {
                self.errors.push(CompileError {
                    origin: s.origin.clone(),
                    message: format!(
                        "a sensor named {:?} is already defined at {}",
                        s.name, self.set.sensors[first].origin
                    ),
                });
            }
            seen.insert(&s.name, i);
        }
    }

    /// Response rules: unique names, and the groups, sensors and policies they name exist
    /// (a typo would silently never match).
    fn responses(&mut self) {
        let set = self.set;
        let mut seen: FxHashMap<&str, &Origin> = FxHashMap::default();
        for r in &set.responses {
            if let Some(first) = seen.insert(&r.name, &r.origin) {
                self.errors.push(CompileError {
                    origin: r.origin.clone(),
                    message: format!(
                        "a response rule named {:?} is already defined at {first}",
                        r.name
                    ),
                });
            }
            for g in &r.on.groups {
                self.group_selector(g, &r.origin);
            }
            for s in &r.on.sensors {
                self.sensor(s, &r.origin);
            }
            for p in &r.on.policies {
                let known: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
                if !known.contains(&p.as_str()) {
                    let hint = closest(p, &known)
                        .map(|c| format!("; did you mean {c:?}?"))
                        .unwrap_or_default();
                    self.errors.push(CompileError {
                        origin: r.origin.clone(),
                        message: format!("no Policy named {p:?}{hint}"),
                    });
                }
            }
        }
    }

    /// The index of sensor `name`, or an error at `origin`.
    fn sensor(&mut self, name: &str, origin: &Origin) -> Option<u32> {
        if let Some(i) = self.set.sensors.iter().position(|s| s.name == name) {
            return Some(i as u32);
        }
        let known: Vec<&str> = self.set.sensors.iter().map(|s| s.name.as_str()).collect();
        let hint = closest(name, &known)
            .map(|c| format!("; did you mean {c:?}?"))
            .unwrap_or_default();
        self.errors.push(CompileError {
            origin: origin.clone(),
            message: format!("no Sensor named {name:?}{hint}"),
        });
        None
    }

    /// The selector of group `name`, or an error at `origin`.
    fn group_selector(&mut self, name: &str, origin: &Origin) -> Option<SelectorId> {
        match self.group_by_name.get(name) {
            Some(&i) => Some(self.out.groups[i].members),
            None => {
                let known: Vec<&str> = self.set.groups.iter().map(|g| g.name.as_str()).collect();
                let hint = closest(name, &known)
                    .map(|c| format!("; did you mean {c:?}?"))
                    .unwrap_or_default();
                self.errors.push(CompileError {
                    origin: origin.clone(),
                    message: format!("no group named {name:?} is defined{hint}"),
                });
                None
            }
        }
    }

    fn policies(&mut self) {
        let set = self.set;
        for (pi, p) in set.policies.iter().enumerate() {
            let scope = p.namespace.as_deref();
            let mut applies = Vec::new();
            if p.applies_to.is_empty() {
                let all = EndpointSelector {
                    namespaces: scope.map(NsMatch::named).unwrap_or_default(),
                    labels: Selector::All,
                };
                applies.push(self.intern(all));
            }
            for target in &p.applies_to {
                let sel = match target {
                    PeerSpec::Group(name) => {
                        let Some(id) = self.group_selector(name, &p.origin) else {
                            continue;
                        };
                        let mut sel = self.out.selectors[id as usize].clone();
                        // A namespaced policy governs only its own namespace's workloads.
                        if let Some(ns) = scope {
                            sel.namespaces = sel.namespaces.and(NsMatch::named(ns));
                        }
                        sel
                    }
                    PeerSpec::Workloads(ws) => {
                        let mut sel = workload_selector(ws, scope);
                        if let Some(ns) = scope {
                            sel.namespaces = sel.namespaces.and(NsMatch::named(ns));
                        }
                        sel
                    }
                    other => {
                        self.errors.push(CompileError {
                            origin: p.origin.clone(),
                            message: format!(
                                "appliesTo selects workloads (group, selector, namespaceSelector, namespaces), not {}",
                                peer_kind(other)
                            ),
                        });
                        continue;
                    }
                };
                applies.push(self.intern(sel));
            }
            let ingress = self.rules(&p.ingress, scope, pi as u32, Direction::Ingress);
            let egress = self.rules(&p.egress, scope, pi as u32, Direction::Egress);
            self.out.policies.push(CPolicy {
                applies,
                ingress,
                egress,
            });
        }
        let mut order: Vec<u32> = (0..set.policies.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&set.policies[a as usize], &set.policies[b as usize]);
            (pa.priority, &pa.name, a).cmp(&(pb.priority, &pb.name, b))
        });
        self.out.policy_order = order;
    }

    fn rules(
        &mut self,
        rules: &[crate::spec::Rule],
        scope: Option<&str>,
        doc: u32,
        direction: Direction,
    ) -> Range<RuleId> {
        let start = self.out.rules.len() as RuleId;
        for (i, r) in rules.iter().enumerate() {
            let mut peers = Vec::new();
            for peer in &r.peers {
                let target = match &peer.spec {
                    PeerSpec::Group(name) => match self.group_selector(name, &peer.origin) {
                        Some(id) => Target::Workloads(id),
                        None => continue,
                    },
                    PeerSpec::Workloads(ws) => {
                        Target::Workloads(self.intern(workload_selector(ws, scope)))
                    }
                    PeerSpec::Cidr(c) => Target::Cidr(c.clone()),
                    PeerSpec::Dns(d) => {
                        if direction == Direction::Ingress {
                            self.errors.push(CompileError {
                                origin: peer.origin.clone(),
                                message: "dns peers select destinations: use them in egress `to`, not in ingress `from`".into(),
                            });
                            continue;
                        }
                        Target::Dns(d.clone())
                    }
                    PeerSpec::Entity(e) => Target::Entity(*e),
                };
                peers.push(target);
            }
            // A rule whose every peer failed to compile must not turn into "any peer".
            if !r.peers.is_empty() && peers.is_empty() {
                continue;
            }
            self.out.rules.push(CRule {
                action: r.action,
                peers,
                ports: r.ports.clone(),
                app: r.app,
                l7: r.l7.clone(),
                at: RuleAt {
                    tier: Tier::Policy,
                    doc,
                    direction,
                    index: i as u32,
                },
            });
        }
        start..self.out.rules.len() as RuleId
    }

    fn network_policies(&mut self) {
        for (ni, np) in self.set.network_policies.iter().enumerate() {
            let selects = self.intern(EndpointSelector {
                namespaces: NsMatch::named(&np.namespace),
                labels: np.pod_selector.clone(),
            });
            let (ingress_on, egress_on) = effective_policy_types(np);
            let ingress = ingress_on.then(|| self.np_rules(np, ni as u32, Direction::Ingress));
            let egress = egress_on.then(|| self.np_rules(np, ni as u32, Direction::Egress));
            self.out.network_policies.push(CNetPol {
                selects,
                ingress,
                egress,
            });
        }
    }

    fn np_rules(&mut self, np: &NetworkPolicy, doc: u32, direction: Direction) -> Range<RuleId> {
        let start = self.out.rules.len() as RuleId;
        let rules = match direction {
            Direction::Ingress => &np.ingress,
            Direction::Egress => &np.egress,
        };
        for (i, r) in rules.iter().flatten().enumerate() {
            let peers = r
                .peers
                .iter()
                .flatten()
                .map(|p| self.np_peer(p, &np.namespace))
                .collect();
            self.out.rules.push(CRule {
                action: Action::Allow,
                peers,
                ports: r.ports.clone().unwrap_or_default(),
                app: None,
                l7: Vec::new(),
                at: RuleAt {
                    tier: Tier::NetworkPolicy,
                    doc,
                    direction,
                    index: i as u32,
                },
            });
        }
        start..self.out.rules.len() as RuleId
    }

    /// Kubernetes peer semantics: podSelector alone selects in the policy's namespace;
    /// namespaceSelector alone selects every pod of the matching namespaces; both in one
    /// peer select the matching pods of the matching namespaces.
    fn np_peer(&mut self, p: &NpPeer, policy_ns: &str) -> Target {
        if let Some(block) = &p.ip_block {
            return Target::Cidr(block.clone());
        }
        let namespaces = match &p.namespace_selector {
            Some(ns_sel) => NsMatch {
                names: None,
                labels: Some(ns_sel.clone()).filter(|s| !s.is_all()),
            },
            None => NsMatch::named(policy_ns),
        };
        let labels = p.pod_selector.clone().unwrap_or(Selector::All);
        Target::Workloads(self.intern(EndpointSelector { namespaces, labels }))
    }
}

/// The directions a NetworkPolicy isolates, after Kubernetes' defaulting: with no
/// (or an empty) policyTypes, Ingress always, plus Egress if it has egress rules.
pub fn effective_policy_types(np: &NetworkPolicy) -> (bool, bool) {
    match np.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.contains(&PolicyType::Ingress),
            types.contains(&PolicyType::Egress),
        ),
        _ => (true, np.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// A bulkhead workload selector. Without `namespaces`/`namespaceSelector` it selects in
/// `scope` (a namespaced policy's namespace) or in every namespace.
pub fn workload_selector(ws: &WorkloadSelector, scope: Option<&str>) -> EndpointSelector {
    let namespaces = if !ws.namespaces.is_empty() {
        NsMatch {
            names: Some(ws.namespaces.iter().cloned().collect::<BTreeSet<_>>()),
            labels: None,
        }
    } else if let Some(sel) = &ws.namespace_selector {
        NsMatch {
            names: None,
            labels: Some(sel.clone()).filter(|s| !s.is_all()),
        }
    } else {
        scope.map(NsMatch::named).unwrap_or_default()
    };
    EndpointSelector {
        namespaces,
        labels: ws.selector.clone().unwrap_or(Selector::All),
    }
}

fn peer_kind(p: &PeerSpec) -> &'static str {
    match p {
        PeerSpec::Group(_) => "a group",
        PeerSpec::Workloads(_) => "workloads",
        PeerSpec::Cidr(_) => "a CIDR",
        PeerSpec::Dns(_) => "a DNS name",
        PeerSpec::Entity(_) => "an entity",
    }
}

/// The closest known name, for "did you mean" hints.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::osa_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
