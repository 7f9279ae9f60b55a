//! Properties of learning on random clusters and traffic: the proposal allows every
//! observed allowed flow (coverage 100% on its input), never writes a workload's address,
//! and puts all replicas of one controller in one group.

use std::collections::BTreeMap;

use bulkhead_learn::{Observations, Options, coverage, learn};
use bulkhead_model::Inventory;
use bulkhead_record::{FlowRecord, Peer};

mod common;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Family {
    ns: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    replicas: usize,
}

fn family() -> impl Strategy<Value = Family> {
    (
        prop::sample::select(vec!["a", "b"]),
        prop::sample::select(vec!["web", "api", "db"]),
        prop::option::of(prop::sample::select(vec!["front", "back"])),
        prop::option::of(prop::sample::select(vec!["yes", "no"])),
        1usize..4,
    )
        .prop_map(|(ns, app, tier, canary, replicas)| {
            let mut labels = vec![("app", app)];
            if let Some(t) = tier {
                labels.push(("tier", t));
            }
            if let Some(c) = canary {
                labels.push(("canary", c));
            }
            Family {
                ns,
                labels,
                replicas,
            }
        })
}

#[derive(Clone, Debug)]
struct Flow {
    src: (usize, usize),
    /// None: an outside address.
    dst: Option<(usize, usize)>,
    world: u8,
    port: u16,
    udp: bool,
    app: Option<&'static str>,
    /// With an outside `dst`: it is the client. With a workload `dst`: the record gives
    /// only its address.
    inbound: bool,
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        (0usize..8, 0usize..4),
        prop::option::weighted(0.85, (0usize..8, 0usize..4)),
        0u8..4,
        prop::sample::select(vec![80u16, 81, 82, 443, 5432, 8080]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["http", "redis"])),
        any::<bool>(),
    )
        .prop_map(|(src, dst, world, port, udp, app, inbound)| Flow {
            src,
            dst,
            world,
            port,
            udp,
            app,
            inbound,
        })
}

fn peer(fams: &[Family], (f, r): (usize, usize)) -> Peer {
    let f = f % fams.len();
    let fam = &fams[f];
    let r = r % fam.replicas;
    let name = format!("fam{f}-{r}");
    let mut labels: BTreeMap<String, String> = fam
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("pod-template-hash".into(), format!("7f{f}c{}", r % 2));
    labels.insert("instance".into(), name.clone());
    Peer {
        ip: format!("10.9.{f}.{}", r + 1),
        workload: Some(format!("{}/{name}", fam.ns)),
        namespace: Some(fam.ns.to_string()),
        name: Some(name),
        labels,
        entity: None,
    }
}

fn record(fams: &[Family], f: &Flow) -> FlowRecord {
    let a = peer(fams, f.src);
    let b = match f.dst {
        Some(d) => peer(fams, d),
        None => Peer {
            ip: format!("203.0.113.{}", f.world + 1),
            entity: Some("world".into()),
            ..Peer::default()
        },
    };
    let (src, dst) = match (f.inbound, f.dst) {
        (true, None) => (b, a),
        // A destination the record names by address only (an agent that did not know
        // it yet): still a workload when another record names its address.
        (true, Some(_)) => (
            a,
            Peer {
                ip: b.ip,
                ..Peer::default()
            },
        ),
        _ => (a, b),
    };
    let l7 = f.app.map(|a| serde_json::json!({ "protocol": a }));
    let protocol = if f.udp { "UDP" } else { "TCP" };
    common::allowed(
        "2026-12-03T01:00:00.000Z".into(),
        src,
        dst,
        protocol,
        f.port,
        l7,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn learned_policy_covers_its_input(
        fams in prop::collection::vec(family(), 1..8),
        flows in prop::collection::vec(flow(), 1..60),
    ) {
        let records: Vec<FlowRecord> = flows.iter().map(|f| record(&fams, f)).collect();
        let obs = Observations::from_records(&records);
        let p = learn(&obs, &Inventory::default(), &Options::default()).unwrap();
        let c = coverage(&obs, &p.inventory, &p.enforced()).unwrap();
        prop_assert_eq!(c.covered_flows, records.len() as u64, "{:?}\n{}", c.uncovered, p.yaml);

        // Never a workload's address.
        for r in &records {
            for e in [&r.src, &r.dst] {
                if e.workload.is_some() {
                    prop_assert!(!p.yaml.contains(&format!("{}/", e.ip)), "{} in\n{}", e.ip, p.yaml);
                }
            }
        }
        // Replicas of one family are in one group.
        for g in &p.groups {
            for w in &g.workloads {
                let fam = w.split('/').nth(1).unwrap().split('-').next().unwrap();
                for other in &p.groups {
                    if other.name != g.name {
                        prop_assert!(
                            !other.workloads.iter().any(|o| o.split('/').nth(1).unwrap().starts_with(&format!("{fam}-")) && o.split('/').next() == w.split('/').next()),
                            "{} split over {} and {}", fam, g.name, other.name
                        );
                    }
                }
            }
        }
    }
}
