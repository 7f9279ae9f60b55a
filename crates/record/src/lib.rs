//! What the data plane and the proxy report, as plain types: one [`FlowRecord`] per new
//! connection (from the kernel's log) or ended connection (from conntrack), with both
//! ends named, the verdict and the rule that decided it. The agent writes them, the
//! store keeps them, `bulkhead flows` shows them and the learner turns them into policy.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bulkhead_policy::explain::RuleRef;
use serde::{Deserialize, Serialize};

/// What the kernel did to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    /// A bulkhead `Log` rule matched (evaluation went on).
    Log,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Log => "log",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            "log" => Ok(Action::Log),
            _ => Err(format!("{s}: expected allow, deny or log")),
        }
    }
}

/// One end of a flow: a workload, the node, or an address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub ip: String,
    /// `namespace/name` of the workload that owns the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workload's name; for a `world` address, the DNS names (comma-separated) the
    /// node knew it by (FQDN egress: answers the proxy relayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `host` (a node's address) or `world` (nobody bulkhead knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

impl Peer {
    /// `ns/name`, `host 10.0.0.1`, `api.example.com (203.0.113.10)`, `forged
    /// 10.0.0.2` (a source address its sender does not own) or the address.
    pub fn display(&self) -> String {
        match (&self.workload, &self.entity, &self.name) {
            (Some(w), _, _) => w.clone(),
            (None, Some(e), _) if e == "host" || e == "forged" => format!("{e} {}", self.ip),
            (None, _, Some(names)) => format!("{names} ({})", self.ip),
            _ => self.ip.clone(),
        }
    }
}

/// A rule, for people and programs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `Policy` or `NetworkPolicy`.
    pub kind: String,
    pub policy: String,
    pub direction: String,
    /// 1-based.
    pub rule: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    /// `file:line:column`.
    pub origin: String,
}

impl From<&RuleRef> for Rule {
    fn from(r: &RuleRef) -> Rule {
        Rule {
            kind: r.kind.to_string(),
            policy: r.policy.clone(),
            direction: r.direction.to_string(),
            rule: r.rule,
            name: r.rule_name.clone(),
            action: r.action.clone(),
            origin: r.origin.to_string(),
        }
    }
}

impl Rule {
    /// `Policy web-ingress ingress rule 2 (deny-db)`.
    pub fn display(&self) -> String {
        let name = self
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "{} {} {} rule {}{name}",
            self.kind, self.policy, self.direction, self.rule
        )
    }
}

/// What decided: the side (egress of the source, ingress of the destination), the
/// tier, and the rule or mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// `egress` or `ingress`.
    pub side: String,
    /// `policy`, `network-policy`, `mode`, `host`, `unmanaged`, `same-workload`, or
    /// `fail-closed` (an address the agent does not know, on a workload interface).
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// NetworkPolicies that isolate the side (when isolation denied it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<String>,
}

impl Decided {
    pub fn display(&self) -> String {
        match (&self.rule, self.tier.as_str()) {
            (Some(r), _) => format!("{}: {}", self.side, r.display()),
            (None, "mode") => format!(
                "{}: {} mode{}",
                self.side,
                self.mode.as_deref().unwrap_or("?"),
                self.group
                    .as_ref()
                    .map(|g| format!(" (group {g})"))
                    .unwrap_or_default()
            ),
            (None, "network-policy") => format!(
                "{}: isolated by NetworkPolicy {}",
                self.side,
                self.isolated_by.join(", ")
            ),
            (None, t) => format!("{}: {t}", self.side),
        }
    }
}

/// One line of `flows.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `new` (a new connection's first packet, from NFLOG) or `end` (a connection
    /// conntrack destroyed, with its counters).
    pub event: String,
    /// What the kernel did: allow, deny or log.
    pub verdict: Action,
    pub protocol: String,
    pub src: Peer,
    pub dst: Peer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Decided>,
    /// The mode of the workload whose side decided (Protect, Monitor, Discover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Allowed only because a Monitor group lets it through.
    #[serde(default)]
    pub violation: bool,
    /// Allowed because a Discover group is learning.
    #[serde(default)]
    pub learned: bool,
    /// Log rules that matched on the way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logged: Vec<Rule>,
    /// Does the engine agree with the kernel? None when it cannot tell (the packet
    /// raced a policy change, or the protocol has no verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
    /// IP length of the logged packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// Both directions, from conntrack accounting (`end` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The agent's reconcile generation the record was enriched with.
    pub generation: u64,
    /// Decided by the L7 proxy: the protocol, the request, the refusal, the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l7: Option<serde_json::Value>,
    /// A forged source address (`decided_by.tier: source-check`): the workload whose
    /// interface the packet came from, when the node routes a workload's address there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Peer>,
}

impl FlowRecord {
    /// A new connection's record (`event: new`) with only what every record has; the
    /// rest (ports, rule, counters...) is filled in with struct update syntax.
    pub fn new(time: String, verdict: Action, protocol: &str, src: Peer, dst: Peer) -> Self {
        FlowRecord {
            time,
            event: "new".into(),
            verdict,
            protocol: protocol.into(),
            src,
            dst,
            sport: None,
            dport: None,
            icmp_type: None,
            icmp_code: None,
            decided_by: None,
            mode: None,
            violation: false,
            learned: false,
            logged: Vec::new(),
            consistent: None,
            len: None,
            packets: None,
            bytes: None,
            generation: 0,
            l7: None,
            sender: None,
        }
    }

    /// The source as people read it: for a forged address, with the workload that
    /// really sent it (`forged 10.0.0.2 from ns/attacker`).
    pub fn source_display(&self) -> String {
        match &self.sender {
            Some(s) => format!("{} from {}", self.src.display(), s.display()),
            None => self.src.display(),
        }
    }

    pub fn service(&self) -> String {
        match (self.dport, self.icmp_type) {
            (Some(p), _) => format!("{}/{p}", self.protocol),
            (None, Some(t)) => format!("{}/{t}/{}", self.protocol, self.icmp_code.unwrap_or(0)),
            _ => self.protocol.clone(),
        }
    }

    pub fn system_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.time).ok()
    }
}
