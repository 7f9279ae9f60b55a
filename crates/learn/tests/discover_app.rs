//! Learning the application protocol from Discover-mode records: the L7 proxy reports a
//! detected connection as a `new` record with `l7.protocol`; the kernel's `new` records
//! (connections not diverted, or recorded before the proxy ran), conntrack's `end`
//! records and detections that named nothing (`unknown`) of the same conversation carry
//! none. Whatever their mix and order, the learned rules say `app: PROTO` for the port,
//! and no second rule without `app:` appears for it.

use std::collections::BTreeMap;

use bulkhead_learn::{Observations, Options, learn};
use bulkhead_model::Inventory;
use bulkhead_policy::l7::AppProtocol;
use bulkhead_policy::spec::{PolicySet, Rule};
use bulkhead_record::{FlowRecord, Peer};
use proptest::prelude::*;
use serde_json::json;

mod common;

fn pod(name: &str, app: &str, ip: &str) -> Peer {
    Peer {
        ip: ip.into(),
        workload: Some(format!("shop/{name}")),
        namespace: Some("shop".into()),
        name: Some(name.into()),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        entity: None,
    }
}

/// What one record of the conversation is.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The kernel's `new` record: no protocol.
    Kernel,
    /// Conntrack's `end` record.
    End,
    /// The proxy's record with the detected protocol.
    Proxy,
    /// The proxy's record of a connection whose protocol it could not name.
    Unknown,
}

fn record(kind: Kind, i: usize, client: &Peer, server: &Peer, port: u16, app: &str) -> FlowRecord {
    let time = format!("2026-12-03T06:{:02}:{:02}.000Z", i / 60 % 60, i % 60);
    let l7 = match kind {
        Kind::Proxy => Some(json!({"protocol": app, "proxy_conn": i})),
        Kind::Unknown => Some(json!({"protocol": "unknown", "proxy_conn": i})),
        _ => None,
    };
    let mut r = common::allowed(time, client.clone(), server.clone(), "TCP", port, l7);
    if matches!(kind, Kind::End) {
        r.event = "end".into();
        r.packets = Some(10);
        r.bytes = Some(900);
    }
    r
}

/// Every Allow rule of the proposal, with the direction.
fn rules(p: &PolicySet) -> Vec<(&'static str, &Rule)> {
    let mut v = Vec::new();
    for pol in &p.policies {
        v.extend(pol.ingress.iter().map(|r| ("ingress", r)));
        v.extend(pol.egress.iter().map(|r| ("egress", r)));
    }
    v
}

#[test]
fn unknown_is_not_a_protocol() {
    assert!("unknown".parse::<AppProtocol>().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_detected_protocol_names_the_rule(
        kinds in prop::collection::vec(
            prop::sample::select(vec![Kind::Kernel, Kind::End, Kind::Proxy, Kind::Unknown]),
            0..12,
        ),
        at in 0usize..12,
        redis in any::<bool>(),
    ) {
        let (app, port) = if redis { ("redis", 6379) } else { ("http", 8080) };
        let client = pod("web-0", "web", "10.1.0.1");
        let server = pod("store-0", "store", "10.1.0.2");
        // At least one record the proxy named the protocol in, anywhere in the sequence.
        let mut kinds = kinds;
        let at = at.min(kinds.len());
        kinds.insert(at, Kind::Proxy);
        let records: Vec<FlowRecord> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| record(*k, i, &client, &server, port, app))
            .collect();
        let obs = Observations::from_records(&records);
        let p = learn(&obs, &Inventory::default(), &Options::default()).unwrap();
        let rules = rules(&p.policy);
        // One rule each way (the client's egress, the server's ingress), both with the app.
        prop_assert_eq!(rules.len(), 2, "{}", p.yaml);
        let want: AppProtocol = app.parse().unwrap();
        for (dir, r) in &rules {
            prop_assert_eq!(r.app, Some(want), "{} rule without app:\n{}", dir, p.yaml);
            prop_assert_eq!(r.ports.len(), 1);
        }
        prop_assert!(p.yaml.contains(&format!("app: {app}")), "{}", p.yaml);
        // `end` records are not counted; every other record is.
        let ends = kinds.iter().filter(|k| matches!(k, Kind::End)).count() as u64;
        prop_assert_eq!(obs.records, kinds.len() as u64 - ends);
    }
}

/// Two protocols seen on one port stay apart (no `app:` claims what is not true).
#[test]
fn two_protocols_on_a_port_are_not_merged() {
    let client = pod("web-0", "web", "10.1.0.1");
    let server = pod("store-0", "store", "10.1.0.2");
    let records = vec![
        record(Kind::Proxy, 0, &client, &server, 7000, "redis"),
        record(Kind::Proxy, 1, &client, &server, 7000, "http"),
        record(Kind::Kernel, 2, &client, &server, 7000, ""),
    ];
    let obs = Observations::from_records(&records);
    let p = learn(&obs, &Inventory::default(), &Options::default()).unwrap();
    for (_, r) in rules(&p.policy) {
        assert_eq!(r.app, None, "{}", p.yaml);
    }
}
