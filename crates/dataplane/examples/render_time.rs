//! Where a render's time goes at 10k workloads / 1k policies (a profiling aid): from
//! scratch, with the previous render's chains cached, and after a policy edit.
use std::time::Instant;

use bulkhead_dataplane::render::{RenderCache, render_cached};
use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_model::PortRange;
use bulkhead_policy::Engine;
use bulkhead_policy::spec::{PortSel, PortSpec};

fn main() {
    // Input directories (e.g. the latency bench's), or a synthetic cluster.
    let dirs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let b = if dirs.is_empty() {
        bulkhead_synth::cluster(10_000, 1_000, 7)
    } else {
        bulkhead_manifest::load(&dirs, false).unwrap()
    };
    let mut e = Engine::new(&b).unwrap();
    let mut ids = KernelIds::new();
    let opts = RenderOptions::default();
    let r0 = render(&e, &opts, &mut ids);
    // BULKHEAD_EDITS=N: only the cached renders after N edits (for a profiler).
    let edits: usize = std::env::var("BULKHEAD_EDITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let scratch = if std::env::var("BULKHEAD_EDITS").is_ok() {
        0
    } else {
        3
    };
    for _ in 0..scratch {
        let t = Instant::now();
        let r = render(&e, &opts, &mut ids);
        let t1 = t.elapsed();
        let t = Instant::now();
        let d = diff(&r0, &r);
        println!(
            "from scratch: render {t1:?} ({} chains, {} sets), diff {:?} (empty: {})",
            r.chains.len(),
            r.sets.len(),
            t.elapsed(),
            d.is_empty()
        );
    }
    if std::env::var("BULKHEAD_PATCH").is_ok() {
        // The agent's path: NodeState, a policy-only change planned (patched when it can).
        let mut st =
            bulkhead_dataplane::node::NodeState::adopt(opts.clone(), Default::default(), &e);
        let u = st.plan_full(&e, false);
        let _ = st.commit(u);
        for i in 0..edits {
            e.set_policy(port_edit(&e, i)).unwrap();
            let t = Instant::now();
            let u = st.plan_full(&e, true);
            let plan = t.elapsed();
            let patched = matches!(
                u,
                bulkhead_dataplane::node::Update::Full {
                    complete: false,
                    ..
                }
            );
            let _ = st.commit(u);
            println!("policy edit: plan {plan:?} (patched: {patched})");
        }
        return;
    }
    let mut cache = RenderCache::default();
    let (mut prev, _) = render_cached(&e, &opts, &mut ids, &mut cache, None);
    for i in 0..edits {
        // One policy's first rule gets another port.
        let set = port_edit(&e, i);
        let t = Instant::now();
        e.set_policy(set).unwrap();
        let resolve = t.elapsed();
        let t = Instant::now();
        let (r, _) = render_cached(&e, &opts, &mut ids, &mut cache, Some(&prev));
        let t1 = t.elapsed();
        let t = Instant::now();
        let d = diff(&prev, &r);
        println!(
            "policy edit: resolve {resolve:?}, cached render {t1:?} (hits/misses {:?}), diff {:?} ({} commands)",
            cache.stats(),
            t.elapsed(),
            d.len()
        );
        prev = r;
    }
}

/// Edit `i`: policy `7 i`'s first rule gets another TCP port.
fn port_edit(e: &Engine, i: usize) -> bulkhead_policy::spec::PolicySet {
    let mut set = e.policy().clone();
    let n = set.policies.len();
    let p = &mut set.policies[(i * 7) % n];
    if let Some(r) = p.ingress.first_mut().or(p.egress.first_mut()) {
        let port = 9100 + (i % 50000) as u16;
        r.ports = vec![PortSpec {
            protocol: Some(bulkhead_model::Protocol::Tcp),
            port: PortSel::Range(PortRange { lo: port, hi: port }),
        }];
    }
    set
}
