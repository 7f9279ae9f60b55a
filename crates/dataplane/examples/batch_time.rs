//! Apply the synthetic 10k-workload / 1k-policy ruleset to a scratch network namespace,
//! then time policy edits (a port changed: chains rewritten, sets added and removed)
//! applied by `nft -j -f -` and by one netlink batch (`batch::apply`).
//!
//! `cargo run --release -p bulkhead-dataplane --example batch_time [NETNS]` (root).
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, batch, diff, render};
use bulkhead_policy::Engine;
use bulkhead_policy::spec::PortSel;

fn main() {
    let ns = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bh-batch-time".into());
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success()),
        "cannot create network namespace {ns} (root needed)"
    );
    let result = std::panic::catch_unwind(|| run(&ns));
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn run(ns: &str) {
    let bundle = bulkhead_synth::cluster(10_000, 1_000, 7);
    let mut engine = Engine::new(&bundle).unwrap();
    let opts = RenderOptions::default();
    let mut ids = KernelIds::new();
    let nft = Nft::in_netns(ns);
    let full = render(&engine, &opts, &mut ids);
    let tx = diff(&nft.read().unwrap(), &full);
    let t = Instant::now();
    batch::apply(Some(ns), &tx).unwrap();
    println!(
        "initial ruleset ({} commands, {:?}) via batch: {:?}",
        tx.len(),
        full.object_count(),
        t.elapsed()
    );
    // What the kernel's commit costs by itself: a new chain whose rule jumps (the
    // kernel then re-validates the table's whole jump graph) against one that does not.
    for (what, stmt) in [
        (
            "chain with an accept rule",
            nftables::stmt::Statement::Accept(None),
        ),
        (
            "chain with a jump",
            nftables::stmt::Statement::Jump(nftables::stmt::JumpTarget {
                target: "deny".into(),
            }),
        ),
    ] {
        let mut next = full.clone();
        next.chains.insert(
            format!("zz_{}", what.len()),
            bulkhead_dataplane::ruleset::ChainState {
                hook: None,
                rules: std::sync::Arc::new(vec![vec![stmt]]),
                hash: Some(1),
            },
        );
        let tx = diff(&full, &next);
        let t = Instant::now();
        batch::apply(Some(ns), &tx).unwrap();
        println!(
            "{what}: {} commands via batch in {:?}",
            tx.len(),
            t.elapsed()
        );
        batch::apply(Some(ns), &diff(&next, &full)).unwrap();
    }
    let mut prev = full;
    let (mut via_nft, mut via_batch) = (Vec::new(), Vec::new());
    for i in 0..10u16 {
        // Policy i: its first port range moves (a policy edit).
        let mut policy = engine.policy().clone();
        let Some(port) = policy
            .policies
            .iter_mut()
            .skip(usize::from(i) * 37)
            .flat_map(|p| p.ingress.iter_mut().chain(p.egress.iter_mut()))
            .flat_map(|r| r.ports.iter_mut())
            .find(|p| matches!(p.port, PortSel::Range(_)))
        else {
            continue;
        };
        port.port = PortSel::Range(bulkhead_model::PortRange {
            lo: 20_000 + i,
            hi: 20_000 + i,
        });
        engine.set_policy(policy).unwrap();
        let next = render(&engine, &opts, &mut ids);
        let tx = diff(&prev, &next);
        let t = Instant::now();
        let how = if i % 2 == 0 {
            nft.apply(&tx).unwrap();
            via_nft.push(t.elapsed());
            "nft"
        } else {
            batch::apply(Some(ns), &tx).unwrap();
            via_batch.push(t.elapsed());
            "batch"
        };
        println!(
            "edit {i}: {} commands via {how} in {:?}",
            tx.len(),
            t.elapsed()
        );
        prev = next;
    }
    assert!(
        diff(&nft.read().unwrap(), &prev).is_empty(),
        "the kernel holds the last render"
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    println!(
        "median policy edit: nft {:?}, batch {:?}",
        median(&mut via_nft),
        median(&mut via_batch)
    );
}
