//! `explain`: a verdict in plain words, derived from the same evaluation that decided it.
//!
//! Nothing here decides anything: it re-reads the rules the verdict names and says
//! which peer matched which labels and which port entry matched, so what `explain`
//! says is what the engine (and therefore the data plane) does.

use std::fmt::Write;

use bulkhead_model::{Labels, Selector, Workload};
use serde::Serialize;

use crate::compile::{CRule, Direction, RuleId, Target, Tier};
use crate::engine::Engine;
use crate::selectors::EndpointSelector;
use crate::spec::{Action, Mode, Origin, PeerSpec, PortSel, PortSpec};
use crate::verdict::{
    Class, Connection, Decision, Endpoint, PeerView, Side, Verdict, matching_port,
};

/// A reference to one rule, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub tier: Tier,
    /// `Policy` or `NetworkPolicy`.
    pub kind: &'static str,
    /// `name` or `namespace/name`.
    pub policy: String,
    pub direction: Direction,
    /// 1-based, as people count.
    pub rule: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    pub origin: Origin,
}

/// One side of an explanation.
#[derive(Clone, Debug, Serialize)]
pub struct SideExplanation {
    /// `egress of shop/web-1` or `ingress of ...`.
    pub subject: String,
    pub allowed: bool,
    /// `policy`, `network-policy`, `mode`, `host`, `unmanaged`, `same-workload`.
    pub decided_at: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub isolated_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed: Option<RuleRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logged: Vec<RuleRef>,
    /// Rules the L7 proxy must decide per request, with their conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub l7: Vec<GatedRule>,
    /// The explanation in words, one line each.
    pub text: Vec<String>,
    /// Where in `text` the decision starts (after the rules skipped, logged or passed
    /// on the way): the line that says what decided.
    #[serde(skip)]
    pub decision_line: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct GatedRule {
    pub rule: RuleRef,
    pub requires: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub src: String,
    pub dst: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub allowed: bool,
    /// Allowed only because a Monitor group lets it through.
    pub violation: bool,
    /// Must the L7 proxy see the requests?
    pub l7_enforced: bool,
    /// Where the requests are decided, when the caller knows more than "the L7 proxy"
    /// (the Redis socket path: `bulkhead explain` fills it in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced_at: Option<String>,
    /// Sensors that inspect the connection if it opens (those of the destination's
    /// groups), as `name (Action): detectors`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<String>,
    pub egress: SideExplanation,
    pub ingress: SideExplanation,
}

impl Explanation {
    /// The whole explanation as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verdict = match (self.allowed, self.violation) {
            (false, _) => "DENIED",
            (true, true) => "ALLOWED (violation: Monitor mode)",
            (true, false) => "ALLOWED",
        };
        let _ = writeln!(
            s,
            "{verdict}: {} -> {} {}",
            self.src, self.dst, self.service
        );
        if let Some(r) = &self.request {
            let _ = writeln!(s, "request: {r}");
        }
        if self.l7_enforced {
            let _ = writeln!(
                s,
                "the connection opens at layer 4; {} (rules below)",
                self.enforced_at
                    .as_deref()
                    .unwrap_or("the L7 proxy decides each request")
            );
        }
        if self.allowed {
            for sensor in &self.sensors {
                let _ = writeln!(s, "inspected by sensor {sensor}");
            }
        }
        for side in [&self.egress, &self.ingress] {
            let _ = writeln!(
                s,
                "\n{} ({}):",
                capitalise(&side.subject),
                yes_no(side.allowed)
            );
            for line in &side.text {
                let _ = writeln!(s, "  {line}");
            }
        }
        s
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "allows" } else { "denies" }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

impl Engine {
    /// Decide a connection and explain the decision.
    pub fn explain(&self, c: &Connection) -> Explanation {
        let v = self.verdict(c);
        self.explain_verdict(c, &v)
    }

    pub fn explain_verdict(&self, c: &Connection, v: &Verdict) -> Explanation {
        let src = self.view(c.src);
        let dst = self.view(c.dst);
        Explanation {
            src: self.describe(c.src, &src),
            dst: self.describe(c.dst, &dst),
            service: c.l4.to_string(),
            request: c.l7.map(|r| r.to_string()),
            allowed: v.allowed,
            violation: v.is_violation(),
            l7_enforced: v.needs_l7(),
            enforced_at: None,
            sensors: self.sensors_text(c.src, c.dst),
            egress: self.explain_side(&v.egress, Direction::Egress, c, &src, &dst),
            ingress: self.explain_side(&v.ingress, Direction::Ingress, c, &dst, &src),
        }
    }

    /// The sensors of the server's groups that read connections to it, and of the
    /// client's that read connections from it.
    fn sensors_text(&self, src: &Endpoint, dst: &Endpoint) -> Vec<String> {
        let mut ids: Vec<u32> = Vec::new();
        for (end, dir) in [(dst, Direction::Ingress), (src, Direction::Egress)] {
            if let Endpoint::Workload { id, .. } = end {
                ids.extend(self.sensors_of(*id, dir));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let docs = &self.policy().sensors;
        ids.iter()
            .filter_map(|&i| docs.get(i as usize))
            .map(|d| {
                let mut what: Vec<String> = d.detect.iter().map(|c| c.to_string()).collect();
                what.extend(d.patterns.iter().map(|p| format!("pattern {}", p.name)));
                // (Only a refusing oversize is worth saying: Partial is the default.)
                let oversize = match d.oversize {
                    crate::sensor::Oversize::Block => ", oversize Block",
                    crate::sensor::Oversize::Partial => "",
                };
                format!(
                    "{} ({:?}{oversize}): {} at {}",
                    d.name,
                    d.action,
                    what.join(", "),
                    d.origin
                )
            })
            .collect()
    }

    /// `shop/web-1` for workloads, the address (and names) otherwise.
    fn describe(&self, e: &Endpoint, v: &PeerView) -> String {
        if let Some(w) = v.workload {
            return w.key.to_string();
        }
        let addr = v.addr.map(|a| a.to_string());
        match (e, v.class) {
            (_, Class::Host) => format!("host {}", addr.unwrap_or_default()),
            (Endpoint::External { names, .. }, _) if !names.is_empty() => match addr {
                Some(a) => format!("{} ({a})", names.join(", ")),
                None => names.join(", "),
            },
            _ => addr.unwrap_or_else(|| "an unknown address".into()),
        }
    }

    pub fn rule_ref(&self, rid: RuleId) -> RuleRef {
        let r = &self.compiled.rules[rid as usize];
        let at = r.at;
        match at.tier {
            Tier::NetworkPolicy => {
                let np = &self.spec.network_policies[at.doc as usize];
                let rules = match at.direction {
                    Direction::Ingress => &np.ingress,
                    Direction::Egress => &np.egress,
                };
                let origin = rules
                    .as_ref()
                    .and_then(|rs| rs.get(at.index as usize))
                    .map_or_else(|| np.origin.clone(), |r| r.origin.clone());
                RuleRef {
                    tier: at.tier,
                    kind: "NetworkPolicy",
                    policy: format!("{}/{}", np.namespace, np.name),
                    direction: at.direction,
                    rule: at.index + 1,
                    rule_name: None,
                    action: "Allow".into(),
                    priority: None,
                    origin,
                }
            }
            _ => {
                let p = &self.spec.policies[at.doc as usize];
                let rules = match at.direction {
                    Direction::Ingress => &p.ingress,
                    Direction::Egress => &p.egress,
                };
                let rule = rules.get(at.index as usize);
                RuleRef {
                    tier: at.tier,
                    kind: "Policy",
                    policy: match &p.namespace {
                        Some(ns) => format!("{ns}/{}", p.name),
                        None => p.name.clone(),
                    },
                    direction: at.direction,
                    rule: at.index + 1,
                    rule_name: rule.and_then(|r| r.name.clone()),
                    action: r.action.to_string(),
                    priority: Some(p.priority),
                    origin: rule.map_or_else(|| p.origin.clone(), |r| r.origin.clone()),
                }
            }
        }
    }

    fn explain_side(
        &self,
        side: &Side,
        dir: Direction,
        c: &Connection,
        me: &PeerView,
        other: &PeerView,
    ) -> SideExplanation {
        let subject_name = me
            .workload
            .map(|w| w.key.to_string())
            .or_else(|| me.addr.map(|a| a.to_string()))
            .unwrap_or_else(|| "the other end".into());
        let mut x = SideExplanation {
            subject: format!("{dir} of {subject_name}"),
            allowed: side.allowed,
            decided_at: "mode",
            rule: None,
            peer: None,
            port: None,
            mode: None,
            group: None,
            isolated_by: Vec::new(),
            passed: side.passed.map(|r| self.rule_ref(r)),
            logged: side.logged.iter().map(|&r| self.rule_ref(r)).collect(),
            l7: side
                .gated
                .iter()
                .map(|&r| GatedRule {
                    rule: self.rule_ref(r),
                    requires: describe_l7(&self.compiled.rules[r as usize]),
                })
                .collect(),
            text: Vec::new(),
            decision_line: 0,
        };
        let mut text = self.skipped_rules(side, dir, c, me, other);
        for l in &x.logged {
            text.push(format!("logged by {}", rule_words(l)));
        }
        if let Some(p) = &x.passed {
            text.push(format!(
                "{} passed evaluation on to the Kubernetes NetworkPolicy tier",
                rule_words(p)
            ));
        }
        let mut decision: Vec<String> = Vec::new();
        match side.decision {
            Decision::Unmanaged => {
                x.decided_at = "unmanaged";
                decision.push(format!(
                    "{subject_name} is not a workload bulkhead manages: no {dir} policy applies"
                ));
            }
            Decision::SameWorkload => {
                x.decided_at = "same-workload";
                decision.push("traffic of a workload to itself is never policed".into());
            }
            Decision::Rule(rid) | Decision::NetworkPolicy(rid) => {
                let r = &self.compiled.rules[rid as usize];
                let rr = self.rule_ref(rid);
                x.decided_at = if r.at.tier == Tier::Policy {
                    "policy"
                } else {
                    "network-policy"
                };
                let verb = if r.action == Action::Deny {
                    "denied"
                } else {
                    "allowed"
                };
                decision.push(format!("{verb} by {}", rule_words(&rr)));
                x.peer = Some(self.peer_words(r, other, rid));
                x.port = Some(port_words(&r.ports, c, other_dst(me, other, dir)));
                decision.push(format!("  peer: {}", x.peer.as_deref().unwrap_or_default()));
                decision.push(format!("  port: {}", x.port.as_deref().unwrap_or_default()));
                x.rule = Some(rr);
            }
            Decision::Host => {
                x.decided_at = "host";
                decision.push(
                    "no bulkhead rule decided; traffic between a workload and a node is allowed (NetworkPolicy and modes do not apply to it, as Kubernetes lets a pod's node reach it)".into(),
                );
            }
            Decision::NetworkPolicyIsolation => {
                x.decided_at = "network-policy";
                let names = self.isolating_policies(me, dir);
                decision.push(format!(
                    "{dir} is isolated by NetworkPolicy {} and none of their rules allows this",
                    names.join(", ")
                ));
                x.isolated_by = names;
            }
            Decision::Mode { mode, group } => {
                x.decided_at = "mode";
                x.mode = Some(mode);
                let g = group.map(|g| self.spec.groups[g as usize].name.clone());
                let whose = match &g {
                    Some(name) => format!("group {name} is in {mode} mode"),
                    None => format!(
                        "{subject_name} is in no group; ungrouped workloads are in {mode} mode"
                    ),
                };
                let what = match mode {
                    Mode::Protect => "denies what no rule allowed",
                    Mode::Monitor => "allows it and reports a violation",
                    Mode::Discover => "allows it and records it for learning",
                };
                decision.push(format!("no rule decided; {whose}, which {what}"));
                x.group = g;
            }
        }
        x.decision_line = text.len();
        if x.l7.is_empty() {
            text.extend(decision);
        } else {
            // Gated rules come before the decision in evaluation order: list them, then
            // what happens to requests none of them matches.
            for g in &x.l7 {
                let verb = if g.rule.action == "Deny" {
                    "denies"
                } else {
                    "allows"
                };
                text.push(format!(
                    "L7: {} {verb} requests that match: {}",
                    rule_words(&g.rule),
                    g.requires
                ));
            }
            let mut rest = decision.into_iter();
            if let Some(first) = rest.next() {
                text.push(format!("requests no L7 rule matches: {first}"));
            }
            text.extend(rest);
        }
        x.text = text;
        x
    }

    fn isolating_policies(&self, me: &PeerView, dir: Direction) -> Vec<String> {
        let Class::Workload(id) = me.class else {
            return Vec::new();
        };
        let Some(ep) = self.endpoint_policy(id) else {
            return Vec::new();
        };
        ep.network_policies
            .iter()
            .filter(|&&ni| {
                let np = &self.compiled.network_policies[ni as usize];
                match dir {
                    Direction::Ingress => np.ingress.is_some(),
                    Direction::Egress => np.egress.is_some(),
                }
            })
            .map(|&ni| {
                let np = &self.spec.network_policies[ni as usize];
                format!("{}/{}", np.namespace, np.name)
            })
            .collect()
    }

    /// Which peer of the rule matched, and on which labels or address.
    fn peer_words(&self, r: &CRule, other: &PeerView, rid: RuleId) -> String {
        let Some(Some(i)) = self.matching_peer(r, other) else {
            return "any (the rule names no peers)".into();
        };

        match &r.peers[i] {
            Target::Workloads(s) => {
                let sel = &self.compiled.selectors[*s as usize];
                let group = self.peer_group_name(rid, i);
                let prefix = group.map(|g| format!("group {g}: ")).unwrap_or_default();
                format!("{prefix}{sel}{}", self.matched_labels(sel, other.workload))
            }
            Target::Cidr(c) => format!(
                "CIDR {c} contains {}",
                other.addr.map(|a| a.to_string()).unwrap_or_default()
            ),
            Target::Dns(p) => format!("DNS name {} matches {}", p.0, other.names.join(", ")),
            Target::Entity(e) => format!("entity {e}"),
        }
    }

    /// The group name a peer was written as, if it was written as a group.
    fn peer_group_name(&self, rid: RuleId, peer_index: usize) -> Option<String> {
        let at = self.compiled.rules[rid as usize].at;
        if at.tier != Tier::Policy {
            return None;
        }
        let p = &self.spec.policies[at.doc as usize];
        let rules = match at.direction {
            Direction::Ingress => &p.ingress,
            Direction::Egress => &p.egress,
        };
        // Peers that failed to compile are skipped, so count only compiled kinds.
        match &rules.get(at.index as usize)?.peers.get(peer_index)?.spec {
            PeerSpec::Group(g) => Some(g.clone()),
            _ => None,
        }
    }

    /// ` (matched {app=web} in namespace shop {team=blue})`: the labels that decided.
    fn matched_labels(&self, sel: &EndpointSelector, w: Option<&Workload>) -> String {
        let Some(w) = w else {
            return String::new();
        };
        let mut s = format!(", matched {} {}", w.key, pick(&w.labels, &sel.labels));
        if let Some(ns_sel) = &sel.namespaces.labels
            && let Some(nl) = self.namespace_labels(&w.key.namespace)
        {
            let _ = write!(s, " in namespace {} {}", w.key.namespace, pick(nl, ns_sel));
        }
        s
    }
}

impl Engine {
    /// The rules evaluated before the decision that did not match, each with the reason,
    /// so that "why was this dropped?" has an answer. At most [`MAX_SKIPPED`] are listed.
    fn skipped_rules(
        &self,
        side: &Side,
        dir: Direction,
        c: &Connection,
        me: &PeerView,
        other: &PeerView,
    ) -> Vec<String> {
        const MAX_SKIPPED: usize = 8;
        let Class::Workload(id) = me.class else {
            return Vec::new();
        };
        let Some(ep) = self.endpoint_policy(id) else {
            return Vec::new();
        };
        let stop = match side.decision {
            Decision::Rule(r) => Some(r),
            _ => side.passed,
        };
        let dst = other_dst(me, other, dir);
        let mut candidates: Vec<RuleId> = Vec::new();
        for &pi in &ep.policies {
            let p = &self.compiled.policies[pi as usize];
            candidates.extend(if dir == Direction::Ingress {
                p.ingress.clone()
            } else {
                p.egress.clone()
            });
        }
        if stop.is_none() || matches!(side.decision, Decision::NetworkPolicy(_)) {
            for &ni in &ep.network_policies {
                let np = &self.compiled.network_policies[ni as usize];
                let range = if dir == Direction::Ingress {
                    np.ingress.clone()
                } else {
                    np.egress.clone()
                };
                candidates.extend(range.into_iter().flatten());
            }
        }
        let mut out = Vec::new();
        let mut skipped = 0usize;
        for rid in candidates {
            if Some(rid) == stop {
                break;
            }
            if let Decision::NetworkPolicy(r) = side.decision
                && r == rid
            {
                break;
            }
            let r = &self.compiled.rules[rid as usize];
            let reason = if self.matching_peer(r, other).is_none() {
                let peers: Vec<String> = r.peers.iter().map(|t| self.target_words(t)).collect();
                let who = self.other_words(other, r);
                format!("peer {} does not match {who}", peers.join(" or "))
            } else if matching_port(&r.ports, &c.l4, dst).is_none() {
                let ports: Vec<String> = r.ports.iter().map(port_spec_words).collect();
                format!("{} is not {}", c.l4, ports.join(" or "))
            } else if r.app.is_some() && c.l7.is_some() && !side.gated.contains(&rid) {
                format!(
                    "requires {}, the request is {}{}",
                    describe_l7(r),
                    c.l7.map(|q| q.to_string()).unwrap_or_default(),
                    c.l7.map(lands).unwrap_or_default()
                )
            } else {
                continue;
            };
            skipped += 1;
            if out.len() < MAX_SKIPPED {
                out.push(format!(
                    "skipped {}: {reason}",
                    rule_words(&self.rule_ref(rid))
                ));
            }
        }
        if skipped > out.len() {
            out.push(format!(
                "... and {} more rules that did not match",
                skipped - out.len()
            ));
        }
        out
    }

    fn target_words(&self, t: &Target) -> String {
        match t {
            Target::Workloads(s) => format!("`{}`", self.compiled.selectors[*s as usize]),
            Target::Cidr(c) => format!("CIDR {c}"),
            Target::Dns(p) => format!("DNS {}", p.0),
            Target::Entity(e) => format!("entity {e}"),
        }
    }

    /// The other end with the labels the rule's selectors look at.
    fn other_words(&self, other: &PeerView, r: &CRule) -> String {
        let Some(w) = other.workload else {
            return match other.class {
                Class::Host => format!(
                    "host {}",
                    other.addr.map(|a| a.to_string()).unwrap_or_default()
                ),
                _ => format!(
                    "outside address {}",
                    other
                        .addr
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| other.names.join(", "))
                ),
            };
        };
        let mut keys: Vec<&str> = Vec::new();
        for t in &r.peers {
            if let Target::Workloads(s) = t {
                for k in self.compiled.selectors[*s as usize].labels.keys() {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        let shown: Vec<String> = keys
            .iter()
            .map(|k| match w.labels.get(k) {
                Some(v) => format!("{k}={v}"),
                None => format!("{k} absent"),
            })
            .collect();
        format!("{} {{{}}}", w.key, shown.join(", "))
    }
}

fn port_spec_words(p: &PortSpec) -> String {
    let proto = p
        .protocol
        .map(|x| x.to_string())
        .unwrap_or_else(|| "any".into());
    match &p.port {
        PortSel::Any => format!("{proto}/any"),
        PortSel::Range(r) => format!("{proto}/{r}"),
        PortSel::Named(n) => format!("{proto}/{n} (named)"),
        PortSel::Icmp { icmp_type, code } => match code {
            Some(c) => format!("{proto} type {icmp_type} code {c}"),
            None => format!("{proto} type {icmp_type}"),
        },
    }
}

/// The labels a selector looks at, with the values the workload has for them.
fn pick(labels: &Labels, sel: &Selector) -> String {
    let keys = sel.keys();
    if keys.is_empty() {
        return "(any labels)".into();
    }
    let parts: Vec<String> = keys
        .iter()
        .map(|k| match labels.get(k) {
            Some(v) => format!("{k}={v}"),
            None => format!("{k} absent"),
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The destination workload, whose named ports resolve the rule's port names.
fn other_dst<'a>(
    me: &'a PeerView<'a>,
    other: &'a PeerView<'a>,
    dir: Direction,
) -> Option<&'a Workload> {
    match dir {
        Direction::Ingress => me.workload,
        Direction::Egress => other.workload,
    }
}

fn port_words(ports: &[PortSpec], c: &Connection, dst: Option<&Workload>) -> String {
    match matching_port(ports, &c.l4, dst) {
        Some(None) | None => format!("{} (the rule names no ports: any port)", c.l4),
        Some(Some(i)) => {
            let p = &ports[i];
            let proto = p
                .protocol
                .map(|x| x.to_string())
                .unwrap_or_else(|| "any protocol".into());
            match &p.port {
                PortSel::Any => format!("{} matches {proto}, any port", c.l4),
                PortSel::Range(r) => format!("{} matches {proto}/{r}", c.l4),
                PortSel::Named(n) => format!(
                    "{} matches named port {n:?}, which is {} on {}",
                    c.l4,
                    c.l4.port().unwrap_or_default(),
                    dst.map(|w| w.key.to_string()).unwrap_or_default()
                ),
                PortSel::Icmp { icmp_type, code } => match code {
                    Some(code) => format!("{} matches {proto} type {icmp_type} code {code}", c.l4),
                    None => format!("{} matches {proto} type {icmp_type}", c.l4),
                },
            }
        }
    }
}

fn rule_words(r: &RuleRef) -> String {
    let name = r
        .rule_name
        .as_ref()
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();
    let prio = r
        .priority
        .map(|p| format!(", priority {p}"))
        .unwrap_or_default();
    format!(
        "{} {} {} rule {}{name} ({}{prio}) at {}",
        r.kind, r.policy, r.direction, r.rule, r.action, r.origin
    )
}

/// `app redis; redis commands GET, SET`.
fn describe_l7(r: &CRule) -> String {
    let mut s = match r.app {
        Some(a) => format!("app {a}"),
        None => String::new(),
    };
    if !r.l7.is_empty() {
        let conditions: Vec<String> = r.l7.iter().map(|m| m.to_string()).collect();
        let _ = write!(s, " with {}", conditions.join(" or "));
    }
    s
}

/// Where an HTTP request's path lands when that is not what it says (`/a/../b` is
/// `/b` to the server, and matched so): ` (path /b once normalized)`, else nothing.
fn lands(q: &crate::l7::L7Request) -> String {
    match &q.detail {
        crate::l7::L7Detail::Http { path, .. } => {
            let raw = path.split(['?', '#']).next().unwrap_or_default();
            let n = crate::l7::http_path::normalize(path);
            if n != raw {
                format!(" (path {n} once normalized)")
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}
