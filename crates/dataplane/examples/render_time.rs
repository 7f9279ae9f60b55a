//! Where a full render's time goes at 10k workloads / 1k policies (a profiling aid).
use std::time::Instant;

use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_policy::Engine;

fn main() {
    let b = bulkhead_synth::cluster(10_000, 1_000, 7);
    let e = Engine::new(&b).unwrap();
    let mut ids = KernelIds::new();
    let opts = RenderOptions::default();
    let r0 = render(&e, &opts, &mut ids);
    for _ in 0..3 {
        let t = Instant::now();
        let r = render(&e, &opts, &mut ids);
        let t1 = t.elapsed();
        let t = Instant::now();
        let d = diff(&r0, &r);
        let t2 = t.elapsed();
        println!(
            "render {t1:?} ({} chains, {} sets), diff {t2:?} (empty: {})",
            r.chains.len(),
            r.sets.len(),
            d.is_empty()
        );
    }
}
