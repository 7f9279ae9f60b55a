//! What users wrote, validated for syntax but with no semantics applied yet.
//!
//! These types mirror the documents one to one (bulkhead `Group`, `Policy`, `Settings`
//! and Kubernetes `NetworkPolicy`) so that the YAML decoder stays a pure decoder.
//! Every semantic rule (namespace scoping of bare selectors, policyTypes defaulting,
//! what an empty list means) is applied in one place: [`crate::compile`].

use std::fmt;
use std::sync::Arc;

use bulkhead_model::{CidrBlock, Inventory, PortRange, Protocol, Selector};
use serde::{Deserialize, Serialize};

use crate::l7::{AppProtocol, L7Match};

/// Where something was written: shown by `explain`, `lint` and error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub file: Arc<str>,
    /// 1-based; 0 when unknown (built in code rather than read from a file).
    pub line: u32,
    pub column: u32,
}

impl Origin {
    pub fn new(file: impl Into<Arc<str>>, line: u32, column: u32) -> Self {
        Origin {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A group's enforcement mode: what happens to traffic no rule decided.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Mode {
    /// Allow and record, to learn policy from.
    #[default]
    Discover,
    /// Allow and raise a violation.
    Monitor,
    /// Deny.
    Protect,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Discover => "Discover",
            Mode::Monitor => "Monitor",
            Mode::Protect => "Protect",
        })
    }
}

/// Workload selection as written: label selector plus optional namespace scoping.
/// Which namespaces a missing `namespaces`/`namespaceSelector` means depends on where
/// it is used (see [`crate::compile`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkloadSelector {
    /// `selector:` (None when not written).
    pub selector: Option<Selector>,
    /// `namespaceSelector:` over namespace labels (None when not written).
    pub namespace_selector: Option<Selector>,
    /// `namespaces: [a, b]` (empty when not written).
    pub namespaces: Vec<String>,
}

/// `kind: Group`: a named set of workloads with an enforcement mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub members: WorkloadSelector,
    pub mode: Mode,
    /// Names of `Sensor`s that inspect the members' connections.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Which of the members' connections the sensors read (`spec.inspect`).
    #[serde(default)]
    pub inspect: Inspect,
    pub origin: Origin,
}

/// `spec.inspect` of a Group: the members' connections its sensors read, those *to* them
/// (`Ingress`, the default: a server's requests and responses) and/or those *from* them
/// (`Egress`: what a member sends out, such as data leaving for a host no sensor
/// watches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Inspect {
    pub ingress: bool,
    pub egress: bool,
}

impl Default for Inspect {
    fn default() -> Self {
        Inspect {
            ingress: true,
            egress: false,
        }
    }
}

/// What a tier-1 rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Allow; final for this direction.
    Allow,
    /// Deny; final for this direction.
    Deny,
    /// Skip the rest of the bulkhead tier and continue with Kubernetes NetworkPolicy.
    Pass,
    /// Record the connection and keep evaluating.
    Log,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
            Action::Log => "Log",
        })
    }
}

/// Special peers that are not workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entity {
    /// Any address that is neither a known workload nor a node.
    World,
    /// The nodes' own addresses.
    Host,
    /// Every known workload and node.
    Cluster,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::World => "world",
            Entity::Host => "host",
            Entity::Cluster => "cluster",
        })
    }
}

/// A DNS name pattern: `api.example.com`, `*.example.com` (one label),
/// `**.example.com` (any number of labels), `*` (any name). Case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NamePattern(pub String);

/// The other side of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerSpec {
    /// `group: NAME`
    Group(String),
    /// `selector:` / `namespaceSelector:` / `namespaces:`
    Workloads(WorkloadSelector),
    /// `cidr:` with `except:`
    Cidr(CidrBlock),
    /// `dns: PATTERN` (egress only)
    Dns(NamePattern),
    /// `entity: world|host|cluster`
    Entity(Entity),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub spec: PeerSpec,
    pub origin: Origin,
}

/// Which ports a rule covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortSel {
    /// Every port (or every ICMP type) of the protocol.
    Any,
    /// A port or an inclusive range (Kubernetes `port` + `endPort`).
    Range(PortRange),
    /// A named container port, resolved on the destination workload for the protocol.
    Named(String),
    /// ICMP/ICMPv6 type and optional code.
    Icmp { icmp_type: u8, code: Option<u8> },
}

/// One entry of a rule's `ports:` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// None only in bulkhead rules that wrote a named port without a protocol
    /// (the name is then resolved for whichever protocol the connection uses).
    pub protocol: Option<Protocol>,
    pub port: PortSel,
}

/// A bulkhead rule (tier 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub action: Action,
    /// Optional name, shown by explain and flows.
    pub name: Option<String>,
    /// `from:` (ingress) or `to:` (egress). Empty: any peer.
    pub peers: Vec<Peer>,
    /// Empty: any protocol and port.
    pub ports: Vec<PortSpec>,
    /// `app:` the application protocol the connection must speak.
    pub app: Option<AppProtocol>,
    /// Layer-7 conditions (any of them must match); require `app`.
    pub l7: Vec<L7Match>,
    pub origin: Origin,
}

/// `kind: Policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    /// A namespaced policy applies only to workloads in its namespace, and its bare
    /// selectors select in that namespace (like Calico's namespaced NetworkPolicy).
    pub namespace: Option<String>,
    /// Lower runs first. Default 1000.
    pub priority: i32,
    /// `appliesTo:` the workloads whose traffic these rules govern: any of these.
    /// Empty: every workload (in the namespace, when namespaced).
    pub applies_to: Vec<PeerSpec>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub origin: Origin,
}

pub const DEFAULT_PRIORITY: i32 = 1000;

/// Kubernetes `spec.policyTypes` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

/// One Kubernetes `NetworkPolicyPeer`, as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NpPeer {
    pub pod_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    pub ip_block: Option<CidrBlock>,
    pub origin: Origin,
}

/// One Kubernetes ingress or egress rule, as written. `None` = the field was absent
/// (or null); `Some(vec![])` = an empty list. Both mean "all" for peers and ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NpRule {
    pub peers: Option<Vec<NpPeer>>,
    pub ports: Option<Vec<PortSpec>>,
    pub origin: Origin,
}

/// `networking.k8s.io/v1` `NetworkPolicy`, as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub name: String,
    pub namespace: String,
    pub pod_selector: Selector,
    pub policy_types: Option<Vec<PolicyType>>,
    pub ingress: Option<Vec<NpRule>>,
    pub egress: Option<Vec<NpRule>>,
    pub origin: Origin,
}

/// `kind: Settings`: cluster-wide defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The mode of workloads that no group selects.
    pub ungrouped_mode: Mode,
    /// `spec.discover`: what is recorded about workloads in Discover mode.
    #[serde(default)]
    pub discover: DiscoverSettings,
    pub origin: Option<Origin>,
}

/// `Settings.spec.discover`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoverSettings {
    /// `detectProtocols` (default true): when the node agents run the L7 proxy, new TCP
    /// connections to and from workloads in Discover mode go through it to have their
    /// application protocol detected (then spliced unchanged), so flow records, and the
    /// rules `bulkhead learn` proposes, carry it (`app: redis`).
    pub detect_protocols: bool,
}

impl Default for DiscoverSettings {
    fn default() -> Self {
        DiscoverSettings {
            detect_protocols: true,
        }
    }
}

/// Every policy document that was loaded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySet {
    pub groups: Vec<Group>,
    #[serde(default)]
    pub sensors: Vec<crate::sensor::Sensor>,
    pub policies: Vec<Policy>,
    pub network_policies: Vec<NetworkPolicy>,
    pub settings: Settings,
    /// What to do about events (see [`crate::response`]); no effect on verdicts.
    #[serde(default)]
    pub responses: Vec<crate::response::ResponseRule>,
}

/// What a test case expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    Allow,
    Deny,
}

/// One end of a test case: a named endpoint (`ns/pod`, a unique pod name, an IP
/// address, a DNS name) or every workload a selector selects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TestEndpoint {
    Named(String),
    Workloads(WorkloadSelector),
}

/// One assertion: `from` may (or may not) open `port` on `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: Option<String>,
    pub from: TestEndpoint,
    pub to: TestEndpoint,
    pub service: bulkhead_model::L4,
    pub expect: Expect,
    /// An L7 request in the syntax of [`crate::l7::parse_request`], e.g. `redis FLUSHALL`.
    pub request: Option<String>,
    pub origin: Origin,
}

/// `kind: PolicyTest`: assertions about what policy allows, run by `bulkhead test`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyTest {
    pub name: String,
    pub cases: Vec<TestCase>,
    pub origin: Origin,
}

/// Inventory plus policy: everything the engine needs (and the tests to run on it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub inventory: Inventory,
    pub policy: PolicySet,
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
    /// The `kind: Lab` document, if any (only `bulkhead lab` reads it).
    #[serde(default)]
    pub lab: Option<LabSpec>,
}

/// `kind: Lab` (`bulkhead.io/v1`): a test topology for `bulkhead lab`: its nodes, its
/// address pools, workloads declared without Pod YAML, and what runs in each workload.
/// The engine ignores it; the workloads it declares also join the inventory, so
/// `analyze matrix` and `lab probe` speak about the same workloads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabSpec {
    pub name: String,
    /// Node names as written; empty when not written (the lab then uses the nodes the
    /// inventory names, or one `node-1`).
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub pools: LabPools,
    /// Workloads declared in the lab file itself.
    #[serde(default)]
    pub workloads: Vec<LabWorkload>,
    /// What runs in workloads given as Pod YAML, by selector: the first match wins.
    #[serde(default)]
    pub run: Vec<LabRunRule>,
    pub origin: Origin,
}

/// Address pools of a lab; `None` takes the lab's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPools {
    pub ipv4: Option<ipnet::Ipv4Net>,
    pub ipv6: Option<ipnet::Ipv6Net>,
}

/// A workload declared in a Lab document (name, namespace, labels, ports, node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabWorkload {
    pub workload: bulkhead_model::Workload,
    /// `None`: the lab's `run` rules decide, else the built-in responder.
    pub run: Option<LabRun>,
    pub origin: Origin,
}

/// `run: [{selector, namespaces, run}]`: what runs in the workloads a selector picks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabRunRule {
    pub selector: Selector,
    /// Empty: every namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    pub run: LabRun,
    pub origin: Origin,
}

/// What runs inside a lab workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabRun {
    /// bulkhead's responder: a banner or an HTTP answer on TCP, an echo on UDP.
    #[default]
    Builtin,
    /// The responder speaking HTTP/1.1 only on TCP ports (keep-alive, any path).
    Http,
    /// A real program (`[redis-server, --port, "6379"]`), run only if installed.
    Command(Vec<String>),
    /// An OCI container run with runc on a busybox root file system.
    Container { image: String, args: Vec<String> },
}
