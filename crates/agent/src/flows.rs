//! Flow and violation records: what the kernel did to a new connection, who the two
//! ends are, and which rule of which policy decided it. The agent keeps them in its
//! store (`bulkhead-store`), where `bulkhead flows` reads them.

use std::net::IpAddr;
use std::time::SystemTime;

use bulkhead_model::{L4, Protocol};
use bulkhead_policy::explain::SideExplanation;
use bulkhead_policy::l7::L7Request;
use bulkhead_policy::{Connection, Endpoint, Engine};

use crate::decide::NodeScope;

pub use bulkhead_record::{Action, Decided, FlowRecord, Peer, Rule};

/// What the kernel did, from the log prefix (see `bulkhead_dataplane::names`).
/// What the kernel did, from the log prefix (see `bulkhead_dataplane::names`), and
/// whether it was the source check (a forged source address).
pub fn action_from_prefix(prefix: &str) -> Option<(Action, bool)> {
    use bulkhead_dataplane::names::{LOG_ALLOW, LOG_DENY, LOG_RULE, LOG_SPOOF};
    // The kernel may trim the trailing space of a prefix; compare without it.
    let p = prefix.trim_end();
    [
        (LOG_ALLOW, (Action::Allow, false)),
        (LOG_DENY, (Action::Deny, false)),
        (LOG_RULE, (Action::Log, false)),
        (LOG_SPOOF, (Action::Deny, true)),
    ]
    .into_iter()
    .find(|(x, _)| x.trim_end() == p)
    .map(|(_, a)| a)
}

/// A record's time, as records write it.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One packet as the data plane reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub time: SystemTime,
    pub action: Action,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp: Option<(u8, u8)>,
    /// Length of the IP packet.
    pub len: Option<u32>,
    /// Dropped by the source check: the source address is not the sender's own.
    pub forged: Option<Forged>,
}

/// Where a packet with a forged source address came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forged {
    /// The interface it arrived on (NFLOG's input device).
    pub indev: Option<u32>,
    /// Addresses the node routes through that interface: the real sender's.
    pub sender: Vec<IpAddr>,
}

impl Observed {
    /// The connection's layer-4 service, as the engine names it.
    pub fn l4(&self) -> Option<L4> {
        l4_of(self.protocol, self.dport, self.icmp)
    }
}

pub fn l4_of(protocol: u8, dport: Option<u16>, icmp: Option<(u8, u8)>) -> Option<L4> {
    let port = |p| dport.map(|port| L4::Port { protocol: p, port });
    match protocol {
        6 => port(Protocol::Tcp),
        17 => port(Protocol::Udp),
        132 => port(Protocol::Sctp),
        1 | 58 => icmp.map(|(icmp_type, code)| L4::Icmp {
            v6: protocol == 58,
            icmp_type,
            code,
        }),
        _ => None,
    }
}

pub fn protocol_name(p: u8) -> String {
    match p {
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        1 => "ICMP".into(),
        58 => "ICMPv6".into(),
        n => n.to_string(),
    }
}

fn peer(engine: &Engine, scope: &NodeScope, ip: IpAddr) -> Peer {
    let mut p = Peer {
        ip: ip.to_string(),
        ..Peer::default()
    };
    match scope.endpoint(engine, ip) {
        Endpoint::Workload { id, .. } => {
            if let Some(w) = engine.workload(id) {
                p.workload = Some(w.key.to_string());
                p.namespace = Some(w.key.namespace.clone());
                p.name = Some(w.key.name.clone());
                p.labels = w
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
        }
        Endpoint::Host { .. } => p.entity = Some("host".into()),
        Endpoint::External { names, .. } => {
            p.entity = Some("world".into());
            // FQDN egress: the DNS names the address is known by.
            if !names.is_empty() {
                p.name = Some(names.join(","));
            }
        }
    }
    p
}

fn decided(side: &str, x: &SideExplanation) -> Decided {
    Decided {
        side: side.into(),
        tier: x.decided_at.to_string(),
        rule: x.rule.as_ref().map(Rule::from),
        mode: x.mode.map(|m| m.to_string()),
        group: x.group.clone(),
        isolated_by: x.isolated_by.clone(),
    }
}

/// Context for enriching one observation.
pub struct Enrich<'a> {
    pub engine: &'a Engine,
    pub scope: &'a NodeScope,
    pub generation: u64,
    /// The kernel may be behind the engine (a change is being applied): do not judge.
    pub settled: bool,
    /// Fail-closed rules are rendered (`--pod-interfaces`).
    pub fail_closed: bool,
}

/// Turn an observation into a record, with the engine's explanation of the verdict.
pub fn enrich(cx: &Enrich, o: &Observed) -> FlowRecord {
    enrich_l7(cx, o, None)
}

/// [`enrich`] for what the L7 proxy decided, with what it knew at layer 7.
pub fn enrich_l7(cx: &Enrich, o: &Observed, l7: Option<&L7Request>) -> FlowRecord {
    let time = format_time(o.time);
    let (src, dst) = (
        peer(cx.engine, cx.scope, o.src),
        peer(cx.engine, cx.scope, o.dst),
    );
    let mut r = FlowRecord {
        sport: o.sport,
        dport: o.dport,
        icmp_type: o.icmp.map(|i| i.0),
        icmp_code: o.icmp.map(|i| i.1),
        len: o.len,
        generation: cx.generation,
        ..FlowRecord::new(time, o.action, &protocol_name(o.protocol), src, dst)
    };
    if let Some(forged) = &o.forged {
        // Not a policy decision: the address is another workload's, so its identity
        // (and its name in `src`) is not the sender's; the interface tells who sent it.
        let senders: Vec<Peer> = (forged.sender.iter())
            .map(|ip| peer(cx.engine, cx.scope, *ip))
            .collect();
        // A workload's address if the interface has one (it may also route others).
        let named = senders.iter().position(|p| p.workload.is_some());
        r.sender = senders.into_iter().nth(named.unwrap_or(0));
        r.src = Peer {
            ip: o.src.to_string(),
            entity: Some("forged".into()),
            ..Peer::default()
        };
        r.decided_by = Some(Decided {
            side: "egress".into(),
            tier: "source-check".into(),
            rule: None,
            mode: None,
            group: None,
            isolated_by: Vec::new(),
        });
        return r;
    }
    let Some(l4) = o.l4() else {
        return r;
    };
    let nv = cx.scope.decide_l7(cx.engine, o.src, o.dst, l4, l7);
    let s = cx.scope.endpoint(cx.engine, o.src);
    let d = cx.scope.endpoint(cx.engine, o.dst);
    let x = cx.engine.explain_verdict(
        &Connection {
            src: &s,
            dst: &d,
            l4,
            l7,
        },
        &nv.verdict,
    );
    let v = &nv.verdict;
    let egress_counts = nv.egress_here;
    let ingress_counts = nv.ingress_here;
    // The side that decided: the one that denied; for allows, the one a rule decided.
    let use_egress = if !nv.allowed {
        egress_counts && !v.egress.allowed
    } else {
        // A side opened by a rule that looks at requests counts as decided by that rule.
        let by_rule = |x: &SideExplanation, s: &bulkhead_policy::verdict::Side| {
            x.rule.is_some() || (s.allowed && !s.allowed_without_gated)
        };
        if ingress_counts && by_rule(&x.ingress, &v.ingress) {
            false
        } else if egress_counts && by_rule(&x.egress, &v.egress) {
            true
        } else {
            !ingress_counts && egress_counts
        }
    };
    let (name, side, sx) = if use_egress {
        ("egress", &v.egress, &x.egress)
    } else {
        ("ingress", &v.ingress, &x.ingress)
    };
    let mut dec = decided(name, sx);
    if side.allowed && !side.allowed_without_gated {
        // Open because an L7 rule may allow its requests: the proxy decides each one.
        dec.tier = "l7".into();
        dec.rule = sx.l7.first().map(|g| Rule::from(&g.rule));
        dec.mode = None;
        dec.group = None;
    }
    r.decided_by = Some(dec);
    // The mode of the workload on the deciding side.
    let subject = if use_egress { &s } else { &d };
    if let Endpoint::Workload { id, .. } = subject
        && let Some(ep) = cx
            .engine
            .identity_of(*id)
            .and_then(|i| cx.engine.endpoint_policy(i))
    {
        r.mode = Some(ep.mode.to_string());
    }
    r.violation = nv.allowed
        && ((egress_counts && v.egress.is_violation())
            || (ingress_counts && v.ingress.is_violation()));
    r.learned = nv.allowed
        && ((egress_counts && v.egress.is_learned()) || (ingress_counts && v.ingress.is_learned()));
    for (here, sx) in [(egress_counts, &x.egress), (ingress_counts, &x.ingress)] {
        if here {
            r.logged.extend(sx.logged.iter().map(Rule::from));
        }
    }
    let kernel_allowed = match o.action {
        Action::Allow => Some(true),
        Action::Deny => Some(false),
        Action::Log => None,
    };
    if let Some(k) = kernel_allowed {
        if !k && nv.allowed && cx.fail_closed && (nv.unknown_src || nv.unknown_dst) {
            // Denied by the fail-closed rules: an address no workload has, on a
            // workload interface. The engine does not know interfaces; this is right.
            r.decided_by = Some(Decided {
                side: if nv.unknown_src { "egress" } else { "ingress" }.into(),
                tier: "fail-closed".into(),
                rule: None,
                mode: None,
                group: None,
                isolated_by: Vec::new(),
            });
            r.consistent = cx.settled.then_some(true);
        } else if cx.settled {
            r.consistent = Some(k == nv.allowed);
        }
    }
    r
}

// ----- reading back: `bulkhead flows` -----

/// `--since`: a duration back from `now` (`10m`, `1h30m`, `45s`) or an RFC 3339 time.
pub fn parse_since(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return now
            .checked_sub(d)
            .ok_or_else(|| format!("{s}: too far back"));
    }
    humantime::parse_rfc3339_weak(s).map_err(|_| {
        format!(
            "{s}: expected a duration such as 10m or 2h, or a time such as 2025-01-31T12:00:00Z"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_manifest::{Source, parse_sources};
    use std::time::Duration;

    const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: shop, labels: {app: cache}}
spec: {nodeName: n2}
status: {podIPs: [{ip: 10.0.0.3}]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: db}
spec: {selector: app == "db", mode: Protect}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: cache}
spec: {selector: app == "cache", mode: Monitor}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-access}
spec:
  appliesTo: [{group: db}]
  ingress:
    - action: Allow
      name: web-to-db
      from: [{selector: app == "web"}]
      ports: [TCP/5432]
"#;

    fn engine() -> Engine {
        let b = parse_sources(&[Source {
            name: "cluster.yaml".into(),
            text: CLUSTER.into(),
        }])
        .unwrap();
        Engine::new(&b).unwrap()
    }

    fn obs(action: Action, src: &str, dst: &str, port: u16) -> Observed {
        Observed {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            action,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: 6,
            sport: Some(40000),
            dport: Some(port),
            icmp: None,
            len: Some(60),
            forged: None,
        }
    }

    fn cx<'a>(e: &'a Engine, scope: &'a NodeScope) -> Enrich<'a> {
        Enrich {
            engine: e,
            scope,
            generation: 3,
            settled: true,
            fail_closed: true,
        }
    }

    #[test]
    fn a_deny_names_the_mode_and_an_allow_the_rule() {
        let e = engine();
        let scope = NodeScope {
            node: Some("n1".into()),
            ..NodeScope::default()
        };
        let r = enrich(
            &cx(&e, &scope),
            &obs(Action::Deny, "10.0.0.1", "10.0.0.2", 22),
        );
        assert_eq!(r.src.workload.as_deref(), Some("shop/web"));
        assert_eq!(r.src.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(r.consistent, Some(true));
        let d = r.decided_by.as_ref().unwrap();
        assert_eq!((d.side.as_str(), d.tier.as_str()), ("ingress", "mode"));
        assert_eq!(d.mode.as_deref(), Some("Protect"));
        assert_eq!(r.mode.as_deref(), Some("Protect"));
        assert_eq!(r.time, "2023-11-14T22:13:20.000Z");

        let r = enrich(
            &cx(&e, &scope),
            &obs(Action::Allow, "10.0.0.1", "10.0.0.2", 5432),
        );
        let rule = r.decided_by.as_ref().unwrap().rule.as_ref().unwrap();
        assert_eq!(rule.policy, "db-access");
        assert_eq!(rule.name.as_deref(), Some("web-to-db"));
        assert!(rule.origin.starts_with("cluster.yaml:"), "{}", rule.origin);
        assert_eq!(r.consistent, Some(true));

        // The kernel allowing what the engine denies is flagged.
        let r = enrich(
            &cx(&e, &scope),
            &obs(Action::Allow, "10.0.0.1", "10.0.0.2", 22),
        );
        assert_eq!(r.consistent, Some(false));
        // Unless a change is in flight.
        let mut c = cx(&e, &scope);
        c.settled = false;
        assert_eq!(
            enrich(&c, &obs(Action::Allow, "10.0.0.1", "10.0.0.2", 22)).consistent,
            None
        );
    }

    #[test]
    fn monitor_flags_a_violation_only_where_this_node_checks_it() {
        let e = engine();
        // cache is on n2: its ingress is n2's business.
        let n1 = NodeScope {
            node: Some("n1".into()),
            ..NodeScope::default()
        };
        let r = enrich(
            &cx(&e, &n1),
            &obs(Action::Allow, "10.0.0.1", "10.0.0.3", 80),
        );
        assert!(!r.violation);
        assert!(r.learned, "web is ungrouped: Discover");
        let n2 = NodeScope {
            node: Some("n2".into()),
            ..NodeScope::default()
        };
        let r = enrich(
            &cx(&e, &n2),
            &obs(Action::Allow, "10.0.0.1", "10.0.0.3", 80),
        );
        assert!(r.violation);
        assert_eq!(r.mode.as_deref(), Some("Monitor"));
    }

    #[test]
    fn unknown_senders_denied_by_fail_closed_are_consistent() {
        let e = engine();
        let scope = NodeScope::default();
        let r = enrich(
            &cx(&e, &scope),
            &obs(Action::Deny, "10.9.9.9", "10.0.0.1", 80),
        );
        assert_eq!(r.src.entity.as_deref(), Some("world"));
        assert_eq!(r.decided_by.as_ref().unwrap().tier, "fail-closed");
        assert_eq!(r.consistent, Some(true));
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            parse_since("10m", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(9_400)
        );
        assert_eq!(
            parse_since("1h 30m", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(4_600)
        );
        assert_eq!(
            parse_since("1970-01-01T00:00:10Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(10)
        );
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(action_from_prefix("bh:deny "), Some((Action::Deny, false)));
        assert_eq!(action_from_prefix("bh:allow"), Some((Action::Allow, false)));
        assert_eq!(action_from_prefix("bh:log "), Some((Action::Log, false)));
        assert_eq!(action_from_prefix("bh:spoof"), Some((Action::Deny, true)));
        assert_eq!(action_from_prefix("other"), None);
    }
}
