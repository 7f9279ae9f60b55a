//! A render that reuses the previous render's chains (the policy-edit fast path) gives
//! exactly what a render from scratch gives, after any sequence of policy and workload
//! changes: the cache can make the agent faster, never different.

use bulkhead_dataplane::render::{RenderCache, render_cached, render_indexed};
use bulkhead_dataplane::{KernelIds, RenderOptions};
use bulkhead_policy::Engine;
use bulkhead_policy::spec::Bundle;
use proptest::prelude::*;

mod common;

fn base() -> Bundle {
    common::examples_on_two_nodes(2)
}

#[derive(Clone, Debug)]
enum Op {
    /// Policy i's first rule (ingress, else egress) gets this TCP port.
    Port(usize, u16),
    RemovePolicy(usize),
    /// Policy i again, under another name and priority.
    CopyPolicy(usize, i32),
    RemoveNetworkPolicy(usize),
    /// Workload i gets workload j's labels, or a label set nobody has.
    Relabel(usize, Option<usize>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..40usize, 1..2000u16).prop_map(|(i, p)| Op::Port(i, p)),
        (0..40usize).prop_map(Op::RemovePolicy),
        (0..40usize, 0..3000i32).prop_map(|(i, p)| Op::CopyPolicy(i, p)),
        (0..40usize).prop_map(Op::RemoveNetworkPolicy),
        (0..200usize, prop::option::of(0..200usize)).prop_map(|(i, j)| Op::Relabel(i, j)),
    ]
}

fn apply(engine: &mut Engine, op: &Op, n: usize) {
    let mut set = engine.policy().clone();
    match op {
        Op::Port(_, _) if set.policies.is_empty() => return,
        Op::Port(i, port) => {
            // A policy without rules recompiles unchanged: still a policy change.
            common::set_first_rule_port(&mut set, *i, *port);
        }
        Op::RemovePolicy(i) if !set.policies.is_empty() => {
            let i = i % set.policies.len();
            set.policies.remove(i);
        }
        Op::CopyPolicy(i, prio) if !set.policies.is_empty() => {
            let mut p = set.policies[i % set.policies.len()].clone();
            p.name = format!("{}-copy-{n}", p.name);
            p.priority = *prio;
            set.policies.push(p);
        }
        Op::RemoveNetworkPolicy(i) if !set.network_policies.is_empty() => {
            let i = i % set.network_policies.len();
            set.network_policies.remove(i);
        }
        Op::Relabel(i, j) => {
            let ws: Vec<_> = engine
                .workloads()
                .iter()
                .map(|(_, w)| (*w).clone())
                .collect();
            let mut w = ws[i % ws.len()].clone();
            w.labels = match j {
                Some(j) => ws[j % ws.len()].labels.clone(),
                None => {
                    let mut l = w.labels.clone();
                    l.insert("relabelled", format!("{n}"));
                    l
                }
            };
            engine.upsert_workload(w);
            return;
        }
        _ => return,
    }
    engine.set_policy(set).expect("the edited policy compiles");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn cached_render_equals_a_render_from_scratch(ops in prop::collection::vec(arb_op(), 1..8)) {
        let mut engine = Engine::new(&base()).unwrap();
        for opts in [
            RenderOptions { node: Some("node-1".into()), ..Default::default() },
            RenderOptions { l7_proxy: Some(15001), pod_interfaces: Some("bh*".into()), ..Default::default() },
        ] {
            let mut ids = KernelIds::new();
            let mut cache = RenderCache::default();
            let (mut prev, _) = render_cached(&engine, &opts, &mut ids, &mut cache, None);
            for (n, op) in ops.iter().enumerate() {
                apply(&mut engine, op, n);
                let mut fresh_ids = ids.clone();
                let (want, want_index) = render_indexed(&engine, &opts, &mut fresh_ids);
                // Only the policy changed: the previous render is what the kernel holds,
                // and its workload-derived sets may be carried over.
                let carry = (!matches!(op, Op::Relabel(..))).then_some(&prev);
                let (got, got_index) = render_cached(&engine, &opts, &mut ids, &mut cache, carry);
                prop_assert_eq!(&got.sets, &want.sets, "sets after {:?}", op);
                prop_assert_eq!(&got.chains, &want.chains, "chains after {:?}", op);
                prop_assert_eq!(&got_index.selector_sets, &want_index.selector_sets);
                prop_assert_eq!(&got_index.named_port_sets, &want_index.named_port_sets);
                prop_assert_eq!(&got_index.signatures, &want_index.signatures);
                prev = got;
            }
        }
    }
}

/// The point of the cache: a policy edit re-renders only that policy's chains and the
/// signature chains that jump to them.
#[test]
fn a_policy_edit_misses_the_cache_only_for_what_it_changed() {
    let mut engine = Engine::new(&bulkhead_synth::cluster(1_000, 100, 7)).unwrap();
    let opts = RenderOptions::default();
    let (mut ids, mut cache) = (KernelIds::new(), RenderCache::default());
    render_cached(&engine, &opts, &mut ids, &mut cache, None);
    let (_, first_misses) = cache.stats();
    render_cached(&engine, &opts, &mut ids, &mut cache, None);
    let (hits, misses) = cache.stats();
    assert_eq!(misses, 0, "nothing changed, nothing re-rendered");
    assert!(hits > 0);
    // Policies no identity uses re-render nothing; the others only a few chains.
    let mut most = 0;
    for i in 0..10 {
        apply(&mut engine, &Op::Port(i, 4242 + i as u16), i);
        render_cached(&engine, &opts, &mut ids, &mut cache, None);
        let (_, misses) = cache.stats();
        assert!(
            misses * 2 < first_misses,
            "one edit re-rendered {misses} of {first_misses} chains"
        );
        most = most.max(misses);
    }
    assert!(
        most > 0,
        "no edit re-rendered anything: the edits changed nothing?"
    );
}
