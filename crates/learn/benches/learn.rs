//! Learning time over 1M flows: a synthetic cluster (`bulkhead_synth::cluster(10_000,
//! 100, 1)`: 10,000 pods in ~1,000 identities) where every identity talks to three
//! others on their first container port; 1,000,000 flow records between random replicas,
//! with the labels a real cluster stamps on pods (`pod-template-hash` per Deployment,
//! `statefulset.kubernetes.io/pod-name` per pod for a third of them).
//!
//! Measured: aggregating the records ([`Observations::from_records`]), proposing the
//! policy ([`learn`]), and its coverage over the same flows ([`coverage`]), each alone
//! and together.

use std::collections::BTreeMap;
use std::hint::black_box;

use bulkhead_learn::{Observations, Options, coverage, learn};
use bulkhead_model::{Inventory, Workload};
use bulkhead_record::{FlowRecord, Peer};

#[path = "../tests/common/mod.rs"]
mod common;
use bulkhead_synth::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FLOWS: usize = 1_000_000;

fn peer(w: &Workload, ident: usize, stateful: bool) -> Peer {
    let mut labels: BTreeMap<String, String> = w
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert(
        "pod-template-hash".into(),
        format!("{:x}", 0x5f00_0000_u32 + ident as u32),
    );
    if stateful {
        labels.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            w.key.name.clone(),
        );
    }
    Peer {
        ip: w.ips.first().map(|i| i.to_string()).unwrap_or_default(),
        workload: Some(w.key.to_string()),
        namespace: Some(w.key.namespace.clone()),
        name: Some(w.key.name.clone()),
        labels,
        entity: None,
    }
}

/// The inventory and 1M records.
pub fn flows() -> (Inventory, Vec<FlowRecord>) {
    let bundle = bulkhead_synth::cluster(10_000, 100, 1);
    let inv = bundle.inventory;
    // Identities: (namespace, labels) -> member indices.
    type Identity = (String, Vec<(String, String)>);
    let mut ids: BTreeMap<Identity, Vec<usize>> = BTreeMap::new();
    for (i, w) in inv.workloads.iter().enumerate() {
        let l = w
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ids.entry((w.key.namespace.clone(), l)).or_default().push(i);
    }
    let ids: Vec<Vec<usize>> = ids.into_values().collect();
    let mut rng = Rng::new(7);
    let talks: Vec<[usize; 3]> = (0..ids.len())
        .map(|_| [0; 3].map(|_| rng.below(ids.len())))
        .collect();
    let peers: Vec<Peer> = inv
        .workloads
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ident = ids.iter().position(|m| m.contains(&i)).unwrap_or(0);
            peer(w, ident, ident % 3 == 0)
        })
        .collect();
    let mut out = Vec::with_capacity(FLOWS);
    for n in 0..FLOWS {
        let si = rng.below(ids.len());
        let di = talks[si][n % 3];
        let s = ids[si][rng.below(ids[si].len())];
        let d = ids[di][rng.below(ids[di].len())];
        let port = inv.workloads[d].ports.first().map_or(8080, |p| p.port);
        let time = format!(
            "2026-12-03T03:{:02}:{:02}.000Z",
            (n / 60_000) % 60,
            (n / 1000) % 60
        );
        let (src, dst) = (peers[s].clone(), peers[d].clone());
        out.push(common::allowed(time, src, dst, "TCP", port, None));
    }
    (inv, out)
}

fn bench(c: &mut Criterion) {
    let (inv, records) = flows();
    let obs = Observations::from_records(&records);
    let opts = Options::default();
    let p = learn(&obs, &inv, &opts).expect("learn");
    eprintln!(
        "1M flows: {} conversations, {} workloads, {} groups, {} rules",
        obs.flows.len(),
        obs.workloads.len(),
        p.groups.len(),
        p.rules
    );
    let mut g = c.benchmark_group("learn-1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FLOWS as u64));
    g.bench_function("aggregate", |b| {
        b.iter(|| black_box(Observations::from_records(&records)))
    });
    g.bench_function("propose", |b| {
        b.iter(|| black_box(learn(&obs, &inv, &opts).unwrap()))
    });
    g.bench_function("coverage", |b| {
        b.iter(|| black_box(coverage(&obs, &p.inventory, &p.enforced()).unwrap()))
    });
    g.bench_function("total", |b| {
        b.iter(|| {
            let obs = Observations::from_records(&records);
            let p = learn(&obs, &inv, &opts).unwrap();
            black_box(coverage(&obs, &p.inventory, &p.enforced()).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
