//! Apply the synthetic 10k-workload ruleset to a scratch namespace and time small
//! element-only transactions against it (what nft costs with a big table in place).
use std::time::Instant;

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_policy::Engine;

fn main() {
    let ns = std::env::args().nth(1).expect("usage: apply_big NETNS");
    let bundle = bulkhead_synth::cluster(10_000, 1_000, 7);
    let mut engine = Engine::new(&bundle).unwrap();
    let opts = RenderOptions::default();
    let mut ids = KernelIds::new();
    let nft = Nft::in_netns(&ns);
    let full = render(&engine, &opts, &mut ids);
    let t = Instant::now();
    nft.apply(&diff(&nft.read().unwrap(), &full)).unwrap();
    println!(
        "initial apply: {:?}; objects {:?}",
        t.elapsed(),
        full.object_count()
    );
    let mut prev = full;
    if std::env::args().nth(2).as_deref() == Some("--keep") {
        return;
    }
    for i in 0..10 {
        let mut w = bundle.inventory.workloads[100 + i].clone();
        w.labels.insert("relabel", format!("{i}"));
        engine.upsert_workload(w);
        let next = render(&engine, &opts, &mut ids);
        let t = Instant::now();
        match bulkhead_dataplane::diff::element_ops(&prev, &next) {
            Some(ops) => {
                bulkhead_dataplane::netlink::apply(Some(&ns), &ops).unwrap();
                println!(
                    "{} element ops over netlink in {:?}",
                    ops.len(),
                    t.elapsed()
                );
            }
            None => {
                let tx = diff(&prev, &next);
                nft.apply(&tx).unwrap();
                println!("{} commands through nft in {:?}", tx.len(), t.elapsed());
            }
        }
        prev = next;
    }
}
