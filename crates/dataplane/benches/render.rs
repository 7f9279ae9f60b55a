//! Rendering the node ruleset and diffing it after one workload change: the agent's
//! work between a watcher event and the nft transaction.

use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_policy::Engine;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    for (workloads, policies) in [(1_000, 100), (10_000, 1_000)] {
        let bundle = bulkhead_synth::cluster(workloads, policies, 7);
        let mut engine = Engine::new(&bundle).unwrap();
        let opts = RenderOptions::default();
        let mut ids = KernelIds::new();
        let before = render(&engine, &opts, &mut ids);
        let mut g = c.benchmark_group(format!("{}k-{}", workloads / 1000, policies));
        g.sample_size(20);
        g.bench_function("render", |b| b.iter(|| render(&engine, &opts, &mut ids)));
        // One relabel: a workload gets a label set no one has.
        let mut w = bundle.inventory.workloads[workloads / 2].clone();
        w.labels.insert("bench-relabel", "yes");
        engine.upsert_workload(w);
        let after = render(&engine, &opts, &mut ids);
        g.bench_function("diff after one relabel", |b| {
            b.iter(|| diff(&before, &after))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
