//! Policy engine benchmarks on synthetic clusters (see `docs/BENCHMARKS.md`).
//!
//! ```text
//! cargo bench -p bulkhead-policy --bench engine            # everything, < 10 min on 2 cores
//! cargo bench -p bulkhead-policy --bench engine -- 100k    # one size
//! ```
//!
//! For 1k/100, 10k/1k and 100k/2k (workloads/policies): full resolution, the
//! incremental updates, and verdict lookups, with a naive re-walk-every-policy
//! evaluator timed side by side on the NetworkPolicy-only version of each cluster.
//! Heavy cases (resolution, policy change) use 10 flat samples.

mod naive;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bulkhead_model::Workload;
use bulkhead_policy::spec::{Bundle, PolicySet, PortSel, PortSpec};
use bulkhead_policy::{Endpoint, Engine};
use bulkhead_synth::{Question, cluster, endpoints, questions};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

use naive::Naive;

const SEED: u64 = 1;
const SIZES: [(usize, usize, &str); 3] = [
    (1_000, 100, "1k-100"),
    (10_000, 1_000, "10k-1k"),
    (100_000, 2_000, "100k-2k"),
];
/// Pod pairs per verdict sample.
const PAIRS: usize = 4096;

fn benches(c: &mut Criterion) {
    for (w, p, label) in SIZES {
        let bundle = cluster(w, p, SEED);
        resolve(c, &bundle, label);
        incremental(c, &bundle, label);
        verdicts(c, &bundle, label);
    }
}

fn resolve(c: &mut Criterion, bundle: &Bundle, label: &str) {
    let mut g = c.benchmark_group("resolve");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let e = Engine::new(black_box(bundle)).expect("compiles");
                total += t.elapsed();
                drop(e); // dropping is not part of resolution
            }
            total
        })
    });
    g.finish();
}

/// Time `op` only; `undo` (untimed) puts the engine back as it was.
fn timed<T>(
    engine: &mut Engine,
    iters: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut op: impl FnMut(&mut Engine, T),
    mut undo: impl FnMut(&mut Engine),
) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let input = prepare(i);
        let t = Instant::now();
        op(engine, input);
        total += t.elapsed();
        undo(engine);
    }
    total
}

/// A copy of `w` with a new name and address, and optionally an extra label.
fn sibling(w: &Workload, name: &str, extra: Option<(&str, &str)>) -> Workload {
    let mut s = w.clone();
    s.key.name = name.to_string();
    s.ips = vec!["10.254.254.254".parse().expect("ip")];
    if let Some((k, v)) = extra {
        s.labels.insert(k, v);
    }
    s
}

fn incremental(c: &mut Criterion, bundle: &Bundle, label: &str) {
    let mut engine = Engine::new(bundle).expect("compiles");
    // A replica of a Deployment with several replicas: its identity outlives it.
    let replica = bundle
        .inventory
        .workloads
        .iter()
        .find(|w| {
            w.labels.get("component") == Some("api")
                && engine.identities().refs(identity(&engine, w)) > 3
        })
        .expect("an api with replicas")
        .clone();
    let mut g = c.benchmark_group(format!("incremental/{label}"));
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let same = sibling(&replica, "bench-same", None);
    g.bench_function("add workload (existing identity)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |_| same.clone(),
                |e, w| {
                    e.upsert_workload(w);
                },
                |e| {
                    e.remove_workload(&same.key);
                },
            )
        })
    });
    let fresh = sibling(&replica, "bench-new", Some(("rollout", "bench")));
    g.bench_function("add workload (new identity)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |_| fresh.clone(),
                |e, w| {
                    e.upsert_workload(w);
                },
                |e| {
                    e.remove_workload(&fresh.key);
                },
            )
        })
    });
    g.bench_function("remove workload (identity stays)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |_| (),
                |e, ()| {
                    assert!(e.remove_workload(&replica.key));
                },
                |e| {
                    e.upsert_workload(replica.clone());
                },
            )
        })
    });
    engine.upsert_workload(fresh.clone());
    g.bench_function("remove workload (last of its identity)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |_| (),
                |e, ()| {
                    assert!(e.remove_workload(&fresh.key));
                },
                |e| {
                    e.upsert_workload(fresh.clone());
                },
            )
        })
    });
    // `fresh` is still in: take it out again.
    engine.remove_workload(&fresh.key);
    let mut relabelled = replica.clone();
    relabelled.labels.insert("version", "v3");
    g.bench_function("relabel workload (to a new identity)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |_| relabelled.clone(),
                |e, w| {
                    e.upsert_workload(w);
                },
                |e| {
                    e.upsert_workload(replica.clone());
                },
            )
        })
    });

    g.finish();

    let (a, b_set) = one_policy_changed(&bundle.policy);
    let mut g = c.benchmark_group(format!("policy-change/{label}"));
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function("change one NetworkPolicy port (set_policy)", |b| {
        b.iter_custom(|n| {
            timed(
                &mut engine,
                n,
                |i| if i % 2 == 0 { b_set.clone() } else { a.clone() },
                |e, p| e.set_policy(p).expect("compiles"),
                |_| {},
            )
        })
    });
    g.finish();
}

fn identity(e: &Engine, w: &Workload) -> u32 {
    let id = e.workload_id(&w.key).expect("known workload");
    e.identity_of(id).expect("live")
}

/// The policy set, and a copy where one NetworkPolicy allows one more port.
fn one_policy_changed(p: &PolicySet) -> (PolicySet, PolicySet) {
    let mut changed = p.clone();
    let np = changed
        .network_policies
        .iter_mut()
        .find(|n| n.ingress.as_ref().is_some_and(|r| !r.is_empty()))
        .expect("a NetworkPolicy with ingress rules");
    let rules = np.ingress.as_mut().expect("ingress");
    rules[0].ports.get_or_insert_with(Vec::new).push(PortSpec {
        protocol: Some(bulkhead_model::Protocol::Tcp),
        port: PortSel::Range(bulkhead_model::PortRange::single(8081)),
    });
    (p.clone(), changed)
}

/// The same cluster with only its NetworkPolicies (what the naive baseline evaluates).
fn network_policy_only(b: &Bundle) -> Bundle {
    let mut np = b.clone();
    np.policy.policies.clear();
    np.policy.groups.clear();
    np
}

fn ask(e: &Engine, ends: &[Endpoint], q: Question) -> bool {
    e.verdict(&q.connection(ends)).allowed
}

fn verdicts(c: &mut Criterion, bundle: &Bundle, label: &str) {
    let full = Engine::new(bundle).expect("compiles");
    let full_ends = endpoints(&full, bundle);
    let np_bundle = network_policy_only(bundle);
    let np = Engine::new(&np_bundle).expect("compiles");
    let np_ends = endpoints(&np, &np_bundle);
    let naive = Naive::new(&np_bundle);
    let ws = &np_bundle.inventory.workloads;

    // The baseline must be right before it is timed: agree with the engine on a sample
    // that has both answers in it.
    let sample = questions(&np_bundle, 4 * PAIRS, SEED + 100);
    let mut allowed = 0;
    for &q in &sample {
        let (s, d, l4) = (q.src, q.dst, q.l4);
        let want = naive.allowed(&ws[s], &ws[d], l4);
        assert_eq!(
            ask(&np, &np_ends, q),
            want,
            "engine and naive disagree on {} -> {} {l4}",
            ws[s].key,
            ws[d].key
        );
        allowed += usize::from(want);
    }
    assert!(
        allowed > 0 && allowed < sample.len(),
        "{allowed} of {} allowed: a useless sample",
        sample.len()
    );

    let qs = questions(bundle, PAIRS, SEED + 200);
    // Warm the pair caches: these are lookups of pairs already asked about.
    for &q in &qs {
        black_box(ask(&full, &full_ends, q));
        black_box(ask(&np, &np_ends, q));
    }
    let mut g = c.benchmark_group(format!("verdict/{label}"));
    g.throughput(Throughput::Elements(PAIRS as u64))
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function(BenchmarkId::new("engine", "full policy, warm"), |b| {
        b.iter(|| qs.iter().filter(|&&q| ask(&full, &full_ends, q)).count())
    });
    g.bench_function(
        BenchmarkId::new("engine", "NetworkPolicy only, warm"),
        |b| b.iter(|| qs.iter().filter(|&&q| ask(&np, &np_ends, q)).count()),
    );
    g.bench_function(BenchmarkId::new("naive", "NetworkPolicy only"), |b| {
        b.iter(|| {
            qs.iter()
                .filter(|q| naive.allowed(&ws[q.src], &ws[q.dst], q.l4))
                .count()
        })
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
