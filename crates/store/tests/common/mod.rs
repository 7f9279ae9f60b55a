//! Records for the tests: flows between a few workloads, built the way the agent does.

#![allow(dead_code)]

use bulkhead_record::{Action, Decided, FlowRecord, Peer, Rule};

pub fn pod(workload: &str, app: &str, ip: &str) -> Peer {
    let (ns, name) = workload.split_once('/').unwrap_or(("default", workload));
    Peer {
        ip: ip.into(),
        workload: Some(workload.into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        labels: [("app", app), ("pod-template-hash", name)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        entity: None,
    }
}

pub fn world(ip: &str) -> Peer {
    Peer {
        ip: ip.into(),
        entity: Some("world".into()),
        ..Peer::default()
    }
}

/// `2026-12-03T00:00:00Z` plus `secs`.
pub fn at(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_256_000 + secs);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn flow(secs: u64, verdict: Action, src: Peer, dst: Peer, dport: u16) -> FlowRecord {
    FlowRecord {
        sport: Some(40000),
        dport: Some(dport),
        consistent: Some(true),
        len: Some(60),
        generation: 1,
        ..FlowRecord::new(at(secs), verdict, "TCP", src, dst)
    }
}

pub fn by_rule(policy: &str, rule: u32) -> Decided {
    Decided {
        side: "ingress".into(),
        tier: "policy".into(),
        rule: Some(Rule {
            kind: "Policy".into(),
            policy: policy.into(),
            direction: "ingress".into(),
            rule,
            name: None,
            action: "Allow".into(),
            origin: "p.yaml:1:1".into(),
        }),
        mode: None,
        group: None,
        isolated_by: Vec::new(),
    }
}

pub fn by_mode(mode: &str, group: &str) -> Decided {
    Decided {
        side: "ingress".into(),
        tier: "mode".into(),
        rule: None,
        mode: Some(mode.into()),
        group: Some(group.into()),
        isolated_by: Vec::new(),
    }
}

/// Flow `n` of a numbered stream (its number in `generation`): x -> y, one a second.
pub fn numbered(n: u64) -> FlowRecord {
    let mut r = flow(
        n,
        Action::Allow,
        pod("a/x", "x", "10.0.0.1"),
        pod("a/y", "y", "10.0.0.2"),
        80,
    );
    r.generation = n;
    r
}
