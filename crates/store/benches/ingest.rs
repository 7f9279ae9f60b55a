//! Ingest and query benchmarks of the store.
//!
//! - `ingest/store`: flow records into the store in batches of the writer thread's size
//!   (one transaction each), on one thread, side by side with `ingest/jsonl`: the same
//!   records appended as JSON lines the way the agent's `flows.jsonl` writer did (one
//!   `write` per record).
//! - query latency over ten million flows: a store of 10M generated flows is built once
//!   under /var/tmp (reused while it has them; `BULKHEAD_STORE_BENCH_DB` moves it) and
//!   the usual questions are asked 200 times each; p50 and p99 are printed. Skipped when
//!   the arguments name only the ingest benchmarks.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulkhead_record::{Action, Decided, FlowRecord, Peer, Rule};
use bulkhead_store::{FlowFilter, GraphFilter, RuleFilter, Store};
use criterion::{Criterion, Throughput};

const WORKLOADS: usize = 200;
const NAMESPACES: usize = 20;
const POLICIES: usize = 50;
const GROUPS: usize = 20;
/// Destinations each workload talks to.
const DEPENDENCIES: usize = 5;
/// Ten million flows over a day: about 116 a second.
const ROWS: u64 = 10_000_000;
const SPAN_MS: u64 = 24 * 3600 * 1000;
const START_MS: u64 = 1_796_256_000_000;

/// A small deterministic generator (xorshift), so every run stores the same flows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn workload(i: usize) -> Peer {
    let ns = format!("ns-{}", i % NAMESPACES);
    let app = format!("app-{}", i / 2);
    let name = format!("{app}-{}", i % 2);
    Peer {
        ip: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        workload: Some(format!("{ns}/{name}")),
        namespace: Some(ns),
        name: Some(name),
        labels: [
            ("app".to_string(), app),
            ("tier".to_string(), format!("tier-{}", i % 3)),
            ("pod-template-hash".to_string(), format!("{:x}", i * 7919)),
        ]
        .into_iter()
        .collect(),
        entity: None,
    }
}

/// Flow `n` of the generated day: mostly allowed by a rule, some denied by a mode,
/// some violations, a third of them `end` records with counters.
fn flow(rng: &mut Rng, n: u64, total: u64) -> FlowRecord {
    let t = START_MS + n * SPAN_MS / total;
    let time = std::time::UNIX_EPOCH + Duration::from_millis(t);
    // Each workload talks to a few others (its dependencies), on their port, and now and
    // then to the world: a cluster's graph, not every pair.
    let s = rng.below(WORKLOADS);
    let d = (s * 7 + 13 * (1 + rng.below(DEPENDENCIES))) % WORKLOADS;
    let src = workload(s);
    let dst = if rng.below(20) == 0 {
        Peer {
            ip: format!("192.0.2.{}", rng.below(250)),
            entity: Some("world".into()),
            ..Peer::default()
        }
    } else {
        workload(d)
    };
    let roll = rng.below(100);
    let verdict = match roll {
        0..=7 => Action::Deny,
        8..=9 => Action::Log,
        _ => Action::Allow,
    };
    let decided = if rng.below(10) < 6 {
        let p = rng.below(POLICIES);
        Decided {
            side: "ingress".into(),
            tier: "policy".into(),
            rule: Some(Rule {
                kind: "Policy".into(),
                policy: format!("policy-{p}"),
                direction: "ingress".into(),
                rule: 1 + rng.below(3) as u32,
                name: Some(format!("rule-{p}")),
                action: "Allow".into(),
                origin: format!("/srv/policies/p{p}.yaml:12:7"),
            }),
            mode: None,
            group: None,
            isolated_by: Vec::new(),
        }
    } else {
        Decided {
            side: "ingress".into(),
            tier: "mode".into(),
            rule: None,
            mode: Some("Monitor".into()),
            group: Some(format!("group-{}", rng.below(GROUPS))),
            isolated_by: Vec::new(),
        }
    };
    let ended = rng.below(3) == 0 && verdict == Action::Allow;
    FlowRecord {
        time: humantime::format_rfc3339_millis(time).to_string(),
        event: if ended { "end" } else { "new" }.into(),
        verdict,
        protocol: "TCP".into(),
        src,
        dst,
        sport: Some(32768 + rng.below(28000) as u16),
        dport: Some([80, 443, 5432, 6379, 8080][d % 5]),
        icmp_type: None,
        icmp_code: None,
        decided_by: (!ended).then_some(decided),
        mode: Some("Monitor".into()),
        violation: roll == 10,
        learned: false,
        logged: Vec::new(),
        consistent: Some(true),
        len: (!ended).then_some(60),
        packets: ended.then_some(12),
        bytes: ended.then_some(3400),
        generation: 7,
        l7: None,
        sender: None,
    }
}

fn records(n: u64, seed: u64) -> Vec<FlowRecord> {
    let mut rng = Rng(seed);
    (0..n).map(|i| flow(&mut rng, i, n)).collect()
}

/// The writer thread's batch size.
const BATCH: usize = bulkhead_store::sink::BATCH;

fn ingest(c: &mut Criterion) {
    let recs = records(BATCH as u64 * 16, 0x9e37_79b9_7f4a_7c15);
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(30);
    let mut store = Store::open(&dir.path().join("store.db")).unwrap();
    let mut i = 0;
    g.bench_function("store", |b| {
        b.iter(|| {
            let at = (i % 16) * BATCH;
            i += 1;
            store.write_flows(&recs[at..at + BATCH]).unwrap();
        })
    });
    // What the agent did before the store: serialize, append a line, one write each.
    let path = dir.path().join("flows.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    g.bench_function("jsonl", |b| {
        b.iter(|| {
            let at = (i % 16) * BATCH;
            i += 1;
            for r in &recs[at..at + BATCH] {
                let mut line = serde_json::to_string(r).unwrap();
                line.push('\n');
                file.write_all(line.as_bytes()).unwrap();
            }
        })
    });
    g.finish();
}

/// CPU time of this thread so far (user + system, from /proc: clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the
    // 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

/// Records per CPU-second of the writing thread, store and JSON lines, over `n` records
/// into fresh files: what "per core" means on a machine other processes share.
fn ingest_per_cpu_second(n: u64) {
    let recs = records(n, 0x1234_5678_9abc_def1);
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut store = Store::open(&dir.path().join("store.db")).unwrap();
    let (cpu, wall) = (cpu_time(), Instant::now());
    for b in recs.chunks(BATCH) {
        store.write_flows(b).unwrap();
    }
    let (store_cpu, store_wall) = (cpu_time() - cpu, wall.elapsed());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("flows.jsonl"))
        .unwrap();
    let (cpu, wall) = (cpu_time(), Instant::now());
    for r in &recs {
        let mut line = serde_json::to_string(r).unwrap();
        line.push('\n');
        file.write_all(line.as_bytes()).unwrap();
    }
    let (jsonl_cpu, jsonl_wall) = (cpu_time() - cpu, wall.elapsed());
    println!("ingest of {n} flows, one thread (records per CPU-second; per wall-second):");
    for (name, cpu, wall) in [
        ("store", store_cpu, store_wall),
        ("jsonl (baseline)", jsonl_cpu, jsonl_wall),
    ] {
        println!(
            "  {name:<18} {:>9.0}/s CPU ({:.2} s)   {:>9.0}/s wall ({:.2} s)",
            n as f64 / cpu.as_secs_f64().max(0.01),
            cpu.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}

fn db_path() -> PathBuf {
    std::env::var_os("BULKHEAD_STORE_BENCH_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/bulkhead-store-bench-10m.db"))
}

/// The 10M-flow store: reused when it holds them all, else built (and the build timed:
/// it is also an ingest measurement into a growing store).
fn ten_million() -> Store {
    let path = db_path();
    if let Ok(Some(s)) = Store::open_read_only(&path)
        && s.counts().ok().map(|c| c.0) == Some(ROWS)
    {
        return s;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut s = Store::open(&path).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let start = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_report = Instant::now();
    // The CPU time of the writes alone (generating the records is not ingest).
    let mut cpu = Duration::ZERO;
    let mut reported = (0, Duration::ZERO);
    for n in 0..ROWS {
        batch.push(flow(&mut rng, n, ROWS));
        if batch.len() == BATCH || n == ROWS - 1 {
            let t = cpu_time();
            s.write_flows(&batch).unwrap();
            cpu += cpu_time() - t;
            batch.clear();
            if last_report.elapsed() > Duration::from_secs(10) {
                // The rate of the last stretch: how ingest changes as the store grows.
                let rate = n as f64 / start.elapsed().as_secs_f64();
                let (rows, secs) = (n + 1 - reported.0, (cpu - reported.1).as_secs_f64());
                eprintln!(
                    "building: {n} flows, {rate:.0}/s wall; last {rows}: {:.0} per CPU-second",
                    rows as f64 / secs.max(0.01)
                );
                reported = (n + 1, cpu);
                last_report = Instant::now();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "built {ROWS} flows in {secs:.1} s (with generating them), writes {:.1} s of CPU: \
         {:.0} flows per CPU-second into a store growing to 10M, {} MiB",
        cpu.as_secs_f64(),
        ROWS as f64 / cpu.as_secs_f64().max(0.01),
        s.used_bytes().unwrap() >> 20
    );
    s.analyze().unwrap();
    drop(s);
    Store::open_read_only(&path).unwrap().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn query_latency() {
    let s = ten_million();
    let at = |ms: u64| (START_MS + ms) as i64;
    let end = SPAN_MS;
    let last100 = |f: FlowFilter| FlowFilter {
        limit: Some(100),
        ..f
    };
    let queries: Vec<(&str, FlowFilter)> = vec![
        ("last 100", last100(FlowFilter::default())),
        (
            "--workload W --limit 100",
            last100(FlowFilter {
                workload: Some("ns-7/app-53-1".into()),
                ..FlowFilter::default()
            }),
        ),
        (
            "--namespace NS --limit 100",
            last100(FlowFilter {
                namespace: Some("ns-3".into()),
                ..FlowFilter::default()
            }),
        ),
        (
            "--verdict deny --limit 100",
            last100(FlowFilter {
                verdict: Some(Action::Deny),
                ..FlowFilter::default()
            }),
        ),
        (
            "violations --limit 100",
            last100(FlowFilter {
                violations: true,
                ..FlowFilter::default()
            }),
        ),
        (
            "--rule P#N --limit 100",
            last100(FlowFilter {
                rule: Some(RuleFilter {
                    policy: "policy-17".into(),
                    rule: Some(2),
                }),
                ..FlowFilter::default()
            }),
        ),
        (
            "--group G --limit 100",
            last100(FlowFilter {
                group: Some("group-4".into()),
                ..FlowFilter::default()
            }),
        ),
        (
            "--workload W --verdict deny --limit 100",
            last100(FlowFilter {
                workload: Some("ns-7/app-53-1".into()),
                verdict: Some(Action::Deny),
                ..FlowFilter::default()
            }),
        ),
        (
            "--since 1m (all, ~7k)",
            FlowFilter {
                since_ms: Some(at(end - 60_000)),
                ..FlowFilter::default()
            },
        ),
        (
            "10 s window mid-day (all, ~1.2k)",
            FlowFilter {
                since_ms: Some(at(end / 2)),
                until_ms: Some(at(end / 2 + 10_000)),
                ..FlowFilter::default()
            },
        ),
        (
            "--workload W, 1 h window (all)",
            FlowFilter {
                workload: Some("ns-7/app-53-1".into()),
                since_ms: Some(at(end / 2)),
                until_ms: Some(at(end / 2 + 3_600_000)),
                ..FlowFilter::default()
            },
        ),
    ];
    println!("query latency over {ROWS} flows (200 runs each, warm cache):");
    println!(
        "{:<42} {:>8} {:>10} {:>10}",
        "question", "rows", "p50 ms", "p99 ms"
    );
    for (name, f) in &queries {
        let mut times = Vec::with_capacity(200);
        let mut rows = 0;
        for _ in 0..200 {
            let t = Instant::now();
            rows = s.flows(f).unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{name:<42} {rows:>8} {:>10.2} {:>10.2}",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3
        );
    }
    let mut times = Vec::new();
    let mut edges = 0;
    for _ in 0..50 {
        let t = Instant::now();
        edges = s.conversations(&GraphFilter::default()).unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{:<42} {edges:>8} {:>10.2} {:>10.2}",
        "conversation graph (all edges)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    c.final_summary();
    // `cargo bench -- ingest` asks for the ingest benchmarks only.
    let only_ingest = std::env::args().skip(1).any(|a| a.starts_with("ingest"));
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    ingest_per_cpu_second(1 << 19);
    if !only_ingest {
        query_latency();
    }
}
