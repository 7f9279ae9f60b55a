//! How many distinct policy signatures (egress, ingress) a synthetic cluster has when
//! every workload is local: the size the per-node signature numbering must allow.
use bulkhead_dataplane::{KernelIds, RenderOptions, render};
use bulkhead_policy::Engine;

fn main() {
    for (w, p) in [(10_000, 1_000), (10_000, 3_000), (100_000, 2_000)] {
        let b = bulkhead_synth::cluster(w, p, 7);
        let e = Engine::new(&b).unwrap();
        let r = render(&e, &RenderOptions::default(), &mut KernelIds::new());
        let n = |p: &str| r.chains.keys().filter(|k| k.starts_with(p)).count();
        println!(
            "{w} workloads, {p} policies: identities {}, egress signatures {}, ingress signatures {}",
            e.stats().identities,
            n("e_s_"),
            n("i_s_")
        );
    }
}
