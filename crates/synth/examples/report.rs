//! Size, time and memory of policy resolution on synthetic clusters, as Markdown.
//!
//! ```text
//! cargo run --release -p bulkhead-synth --example report [-- --quick]
//! ```
//!
//! Memory is measured with a counting global allocator: "live" is what the engine
//! holds after `Engine::new` returns, "peak" the high-water mark during it (both above
//! what was allocated before the call, i.e. excluding the input bundle).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bulkhead_policy::spec::{Bundle, PolicySet};
use bulkhead_policy::{Engine, Stats};
use bulkhead_synth::{cluster, endpoints, questions, scaled};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters
// only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            CURRENT.fetch_sub(l.size(), Relaxed);
            grew(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SEED: u64 = 1;
/// Questions per verdict measurement.
const QUESTIONS: usize = 20_000;

/// One resolution, measured.
struct Run {
    stats: Stats,
    time: Duration,
    live: usize,
    peak: usize,
}

fn resolve(b: &Bundle) -> Run {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let e = Engine::new(b).expect("synthetic policy compiles");
    let time = t.elapsed();
    let live = CURRENT.load(Relaxed).saturating_sub(base);
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    let stats = e.stats();
    drop(e);
    Run {
        stats,
        time,
        live,
        peak,
    }
}

/// The run of median time.
fn median_run(mut all: Vec<Run>) -> Run {
    all.sort_by_key(|r| r.time);
    let mid = all.len() / 2;
    all.swap_remove(mid)
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn policies(s: &Stats) -> usize {
    s.policies + s.network_policies
}

fn per_input(s: &Stats) -> f64 {
    s.resolved_size() as f64 / (policies(s) + s.identities) as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let configs: &[(usize, usize, usize)] = if quick {
        &[(1_000, 100, 3), (10_000, 1_000, 3)]
    } else {
        &[(1_000, 100, 15), (10_000, 1_000, 9), (100_000, 2_000, 7)]
    };

    println!("## Resolution (Engine::new), seed {SEED}\n");
    println!(
        "| workloads | policies (Policy + NP) | identities | selectors | rules | selector members | endpoint entries | resolved_size | resolved / (policies + identities) | policies x identities | resolve median (ms) | of which inventory (ms) | runs | live MiB | peak MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &(w, p, runs) in configs {
        let b = cluster(w, p, SEED);
        // The same inventory with no policy: what loading the workloads costs alone.
        // Runs alternate between the two so that both see the same allocator state.
        let bare = Bundle {
            policy: PolicySet::default(),
            ..b.clone()
        };
        let (mut full, mut inventory) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            full.push(resolve(&b));
            inventory.push(resolve(&bare).time);
        }
        let r = median_run(full);
        inventory.sort();
        let inventory_only = inventory[runs / 2];
        let s = &r.stats;
        println!(
            "| {} | {} ({} + {}) | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            s.workloads,
            policies(s),
            s.policies,
            s.network_policies,
            s.identities,
            s.selectors,
            s.rules,
            s.selector_members,
            s.endpoint_entries,
            s.resolved_size(),
            per_input(s),
            policies(s) * s.identities,
            ms(r.time),
            ms(inventory_only),
            runs,
            mib(r.live),
            mib(r.peak),
        );
    }

    println!("\n## Verdicts: first question about a pair (cold) and again (warm)\n");
    println!(
        "| workloads | policies | questions | cold (lookups/s) | warm (lookups/s) | allowed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &(w, p, _) in configs {
        let b = cluster(w, p, SEED);
        let e = Engine::new(&b).expect("compiles");
        let ends = endpoints(&e, &b);
        let qs = questions(&b, QUESTIONS, SEED);
        let pass = || {
            let t = Instant::now();
            let allowed = qs
                .iter()
                .filter(|q| e.verdict(&q.connection(&ends)).allowed)
                .count();
            (qs.len() as f64 / t.elapsed().as_secs_f64(), allowed)
        };
        let (cold, allowed) = pass();
        let (warm, _) = pass();
        println!(
            "| {w} | {p} | {} | {:.0} | {:.0} | {:.0}% |",
            qs.len(),
            cold,
            warm,
            100.0 * allowed as f64 / qs.len() as f64
        );
    }

    println!("\n## Replicas: same policies, every workload scaled\n");
    println!(
        "| base | replicas | workloads | identities | resolved_size | resolve (ms) | live MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let demos: &[(usize, usize, &[usize])] = if quick {
        &[(1_000, 100, &[1, 10, 100])]
    } else {
        &[(1_000, 100, &[1, 10, 100]), (10_000, 1_000, &[1, 10, 100])]
    };
    for &(w, p, factors) in demos {
        let base = cluster(w, p, SEED);
        let mut first: Option<Stats> = None;
        for &n in factors {
            let b = scaled(&base, n);
            let r = resolve(&b);
            let s = r.stats;
            println!(
                "| {w} x {p} | {n}x | {} | {} | {} | {} | {} |",
                s.workloads,
                s.identities,
                s.resolved_size(),
                ms(r.time),
                mib(r.live)
            );
            if let Some(f) = &first {
                assert_eq!(
                    (f.identities, f.resolved_size()),
                    (s.identities, s.resolved_size()),
                    "scaling replicas changed the resolution"
                );
            } else {
                first = Some(s);
            }
        }
    }

    let fixed_w = if quick { 10_000 } else { 100_000 };
    let fixed_p = 1_000;
    let (ps, ws): (&[usize], &[usize]) = if quick {
        (&[250, 500, 1_000], &[12_500, 25_000, 50_000])
    } else {
        (
            &[500, 1_000, 2_000, 4_000, 8_000],
            &[12_500, 25_000, 50_000, 100_000, 200_000],
        )
    };
    println!("\n## Linearity in policies ({fixed_w} workloads)\n");
    linearity(ps.iter().map(|&p| cluster(fixed_w, p, SEED)), policies);
    println!("\n## Linearity in identities ({fixed_p} policies)\n");
    linearity(ws.iter().map(|&w| cluster(w, fixed_p, SEED)), |s| {
        s.identities
    });
}

/// A table of resolved_size as one input grows: the marginal cost per added unit of
/// the input stays flat when growth is linear.
fn linearity(bundles: impl Iterator<Item = Bundle>, input: fn(&Stats) -> usize) {
    println!(
        "| workloads | policies | identities | selectors + rules | selector members | endpoint entries | resolved_size | resolved / (policies + identities) | Δ resolved / Δ input |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut prev: Option<Stats> = None;
    for b in bundles {
        let s = Engine::new(&b).expect("compiles").stats();
        let marginal = prev.as_ref().map_or("".to_string(), |p| {
            let dr = s.resolved_size() as f64 - p.resolved_size() as f64;
            let di = input(&s) as f64 - input(p) as f64;
            format!("{:.1}", dr / di)
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            s.workloads,
            policies(&s),
            s.identities,
            s.selectors + s.rules,
            s.selector_members,
            s.endpoint_entries,
            s.resolved_size(),
            per_input(&s),
            marginal
        );
        prev = Some(s);
    }
}
