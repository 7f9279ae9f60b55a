//! Workload churn through the element path leaves exactly the ruleset a full render
//! would: the incremental data plane never drifts from the one evaluation core.

use bulkhead_dataplane::names::SIG_MASK;
use bulkhead_dataplane::node::{NodeState, Update, WorkloadChange};
use bulkhead_dataplane::render::render_indexed;
use bulkhead_dataplane::ruleset::Elem;
use bulkhead_dataplane::{RenderOptions, Ruleset};
use bulkhead_model::{ContainerPort, Protocol, Workload, WorkloadKey};
use bulkhead_policy::Engine;
use proptest::prelude::*;
use std::collections::BTreeSet;

type Rule = Vec<nftables::stmt::Statement<'static>>;

mod common;

fn base() -> bulkhead_policy::spec::Bundle {
    common::examples_on_two_nodes(1)
}

#[derive(Clone, Debug)]
enum Op {
    /// Another replica of workload i (same labels), on a node.
    Replica(usize, bool),
    /// Workload i gets a label set nobody has (a new identity) or i's labels become j's.
    Relabel(usize, Option<usize>),
    Remove(usize),
    /// Workload i moves to the other node.
    Move(usize),
    /// Workload i's named port `http` becomes another number.
    Port(usize, u16),
    /// Policy i's first rule gets this TCP port (a policy-only change: the full
    /// update carries the kernel's workload-derived sets over).
    PolicyPort(usize, u16),
    /// Policy i goes away.
    DropPolicy(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..60usize, any::<bool>()).prop_map(|(i, n)| Op::Replica(i, n)),
        (0..60usize, prop::option::of(0..60usize)).prop_map(|(i, j)| Op::Relabel(i, j)),
        (0..60usize).prop_map(Op::Remove),
        (0..60usize).prop_map(Op::Move),
        (0..60usize, 8000..8100u16).prop_map(|(i, p)| Op::Port(i, p)),
        (0..60usize, 1..9000u16).prop_map(|(i, p)| Op::PolicyPort(i, p)),
        (0..60usize).prop_map(Op::DropPolicy),
    ]
}

/// A policy-only change, as the agent makes it: engine, then a full update.
fn policy_change(engine: &mut Engine, op: &Op) -> bool {
    let mut set = engine.policy().clone();
    if set.policies.is_empty() {
        return false;
    }
    match op {
        Op::PolicyPort(i, port) => {
            if !common::set_first_rule_port(&mut set, *i, *port) {
                return false;
            }
        }
        Op::DropPolicy(i) => {
            let k = i % set.policies.len();
            set.policies.remove(k);
        }
        _ => return false,
    }
    engine.set_policy(set).expect("the edited policy compiles");
    true
}

/// `inc` (incremental) holds everything `full` holds, identically; it may also hold
/// chains and sets no dispatch entry reaches any more (left for the next full update).
fn same(inc: &Ruleset, full: &Ruleset) -> Result<(), String> {
    for (n, s) in &full.sets {
        if n.ends_with("_dispatch") {
            continue;
        }
        if inc.sets.get(n) != Some(s) {
            return Err(format!(
                "set {n} differs: incremental {:?} vs full {:?}",
                inc.sets.get(n).map(|x| &x.elems),
                s.elems
            ));
        }
    }
    for (n, c) in &full.chains {
        if inc.chains.get(n).map(|x| x.hash) == Some(c.hash) {
            continue;
        }
        match inc.chains.get(n) {
            Some(have) if n == "divert" => only_unreachable_extra(inc, &have.rules, &c.rules)?,
            _ => return Err(format!("chain {n} differs or is missing")),
        }
    }
    // Dispatch maps change only in full updates: the incremental state may still have
    // entries for signatures no workload carries any more, but every entry the full
    // render has must be there (the address maps, equal above, refer to them).
    for map in ["e_dispatch", "i_dispatch"] {
        let have = inc.sets[map].elems.as_ref().unwrap();
        let want = full.sets[map].elems.as_ref().unwrap();
        if !want.is_subset(have) {
            return Err(format!(
                "{map} lacks {:?}",
                want.difference(have).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// The divert chain changes only in full updates: after the last local member of a
/// Discover resolution goes, the incremental chain still diverts that resolution's
/// signature. That is harmless only while no address carries the signature any more:
/// `have` must be `want` plus such rules, in order.
fn only_unreachable_extra(inc: &Ruleset, have: &[Rule], want: &[Rule]) -> Result<(), String> {
    let carried: BTreeSet<u32> = ["id4", "id6", "dst4", "dst6"]
        .iter()
        .flat_map(|m| inc.sets[*m].elems.as_deref().into_iter().flatten())
        .filter_map(|e| match e {
            Elem::AddrMark(_, m) => Some(m & SIG_MASK),
            _ => None,
        })
        .collect();
    let mut rest = want.iter().peekable();
    for rule in have {
        if rest.peek() == Some(&rule) {
            rest.next();
            continue;
        }
        // The rule's signature matches (`mark & SIG_MASK == v`, v not 0).
        let sigs: Vec<u64> = serde_json::to_value(rule)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|st| {
                let m = st.get("match")?;
                let and = m.get("left")?.get("&")?.as_array()?;
                (and.get(1)?.as_u64()? == u64::from(SIG_MASK)).then_some(())?;
                m.get("right")?.as_u64().filter(|v| *v != 0)
            })
            .collect();
        let dead = sigs.iter().any(|v| !carried.contains(&(*v as u32)));
        if !dead {
            return Err(format!(
                "divert has a rule the full render lacks and an address may reach: {}",
                serde_json::to_string(rule).unwrap()
            ));
        }
    }
    if rest.peek().is_some() {
        return Err("divert lacks rules of the full render".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn element_path_equals_full_render(ops in prop::collection::vec(arb_op(), 1..40)) {
        let b = base();
        let mut engine = Engine::new(&b).unwrap();
        let opts = RenderOptions { node: Some("node-1".into()), log_allowed: true, l7_proxy: Some(15001), ..Default::default() };
        let mut st = NodeState::adopt(opts.clone(), Ruleset::default(), &engine);
        let u = st.plan_full(&engine, false);
        let _ = st.commit(u);
        let mut next_ip = 1u32;
        let (mut elements, mut fulls, mut patches) = (0, 0, 0);
        for op in ops {
            let all = engine.workloads();
            if all.is_empty() {
                break;
            }
            if matches!(op, Op::PolicyPort(..) | Op::DropPolicy(..)) {
                if policy_change(&mut engine, &op) {
                    // Patched in when every resolution stays, else rendered in full.
                    let u = st.plan_full(&engine, true);
                    if matches!(u, Update::Full { complete: false, .. }) {
                        patches += 1;
                    }
                    let _ = st.commit(u);
                    let mut ids = st.ids.clone();
                    let (full, _) = render_indexed(&engine, &opts, &mut ids);
                    same(&st.applied, &full).map_err(TestCaseError::fail)?;
                }
                continue;
            }
            let pick = |i: usize| all[i % all.len()].1.clone();
            next_ip += 1;
            let fresh_ip = std::net::IpAddr::from([10, 99, (next_ip >> 8) as u8, next_ip as u8]);
            let (before, after): (Option<Workload>, Option<Workload>) = match op {
                Op::Replica(i, n1) => {
                    let mut w = pick(i);
                    w.key = WorkloadKey::new(&w.key.namespace, format!("{}-x{next_ip}", w.key.name));
                    w.ips = vec![fresh_ip];
                    w.node = Some(if n1 { "node-1" } else { "node-2" }.into());
                    (None, Some(w))
                }
                Op::Relabel(i, j) => {
                    let old = pick(i);
                    let mut w = old.clone();
                    match j {
                        Some(j) => w.labels = pick(j).labels,
                        None => {
                            w.labels.insert("unique", format!("u{next_ip}"));
                            next_ip += 1;
                        }
                    }
                    (Some(old), Some(w))
                }
                Op::Remove(i) => (Some(pick(i)), None),
                Op::Move(i) => {
                    let old = pick(i);
                    let mut w = old.clone();
                    w.node = Some(if old.node.as_deref() == Some("node-1") { "node-2" } else { "node-1" }.into());
                    (Some(old), Some(w))
                }
                Op::PolicyPort(..) | Op::DropPolicy(..) => unreachable!("handled above"),
                Op::Port(i, p) => {
                    let old = pick(i);
                    let mut w = old.clone();
                    w.ports.retain(|x| x.name.as_deref() != Some("http"));
                    w.ports.push(ContainerPort { name: Some("http".into()), port: p, protocol: Protocol::Tcp });
                    (Some(old), Some(w))
                }
            };
            match &after {
                Some(w) => { engine.upsert_workload(w.clone()); }
                None => { engine.remove_workload(&before.as_ref().unwrap().key); }
            }
            let u = st.plan_workloads(&engine, &[WorkloadChange { before, after }]);
            match &u {
                Update::Elements { .. } => elements += 1,
                Update::Full { .. } => fulls += 1,
            }
            let _ = st.commit(u);
            let mut ids = st.ids.clone();
            let (full, _) = render_indexed(&engine, &opts, &mut ids);
            same(&st.applied, &full).map_err(TestCaseError::fail)?;
        }
        // The idle sweep (a full update) leaves exactly a render: no leftovers.
        let u = st.plan_full(&engine, false);
        let _ = st.commit(u);
        let mut ids = st.ids.clone();
        let (full, _) = render_indexed(&engine, &opts, &mut ids);
        prop_assert_eq!(&st.applied, &full, "after the sweep ({} patches)", patches);
        // Most workload churn must take the element path (a few changes may need a
        // chain no local workload had yet: those are full updates).
        if elements + fulls >= 10 {
            prop_assert!(elements >= fulls, "{elements} element updates, {fulls} full ones");
        }
    }
}

/// A port edit leaves every resolution as it was: it is patched in, not rendered, and
/// the patched state holds everything a render holds.
#[test]
fn a_port_edit_is_patched_in() {
    let mut engine = Engine::new(&base()).unwrap();
    let opts = RenderOptions {
        node: Some("node-1".into()),
        ..Default::default()
    };
    let mut st = NodeState::adopt(opts.clone(), Ruleset::default(), &engine);
    let u = st.plan_full(&engine, false);
    let _ = st.commit(u);
    let mut patched = 0;
    for (i, port) in [(0, 7001), (1, 7002), (2, 7003), (0, 7004)] {
        assert!(policy_change(&mut engine, &Op::PolicyPort(i, port)));
        let u = st.plan_full(&engine, true);
        if let Update::Full {
            complete: false,
            tx,
            ..
        } = &u
        {
            patched += 1;
            assert!(!tx.is_empty(), "a port edit changes a chain");
        }
        let _ = st.commit(u);
        let mut ids = st.ids.clone();
        let (full, _) = render_indexed(&engine, &opts, &mut ids);
        same(&st.applied, &full).unwrap();
    }
    assert!(patched >= 3, "{patched} of 4 port edits were patched in");
}
