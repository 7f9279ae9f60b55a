//! Against the real kernel (root): render, apply in a scratch network namespace, read
//! back, and check that the agent would find nothing to change (adoption), that small
//! changes make small transactions, and that removal leaves nothing.

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_policy::Engine;

mod common;
use common::{Netns, bundle};

#[test]
fn apply_read_back_adopt_change_and_remove() {
    let Some(ns) = Netns::new("bh-test-dataplane-1") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let mut b = bundle("conformance/scenarios/36-ipblock-except-ingress-with-pod-ips");
    let engine = Engine::new(&b).unwrap();
    let opts = RenderOptions {
        node: None,
        pod_interfaces: Some("bhv*".into()),
        log_allowed: true,
        ..Default::default()
    };
    let mut ids = KernelIds::new();
    let desired = render(&engine, &opts, &mut ids);
    let empty = nft.read().unwrap();
    assert!(!empty.exists);
    let tx = diff(&empty, &desired);
    nft.apply(&tx)
        .unwrap_or_else(|e| panic!("{e}\n{}", tx.to_json()));

    // Adoption: what is in the kernel is what we want; nothing to do.
    let observed = nft.read().unwrap();
    let again = diff(&observed, &desired);
    assert!(
        again.is_empty(),
        "re-applying changes things: {}",
        again.to_json()
    );
    assert_eq!(observed.sets, desired.sets, "sets read back differ");

    // A restarted agent (fresh engine, identity numbers learnt from the kernel) finds
    // nothing to change either.
    let mut restarted = KernelIds::new();
    restarted.seed(&observed, &engine);
    assert!(
        diff(
            &observed,
            &render(&Engine::new(&b).unwrap(), &opts, &mut restarted)
        )
        .is_empty()
    );

    // Remove a workload that shares its identity's policy with others: element
    // deletions only, no chain rewritten.
    let gone = b
        .inventory
        .workloads
        .iter()
        .position(|w| w.key.to_string() == "y/b")
        .unwrap();
    let gone = b.inventory.workloads.remove(gone);
    let mut engine2 = Engine::new(&b).unwrap();
    let mut ids2 = KernelIds::new();
    ids2.seed(&observed, &engine2);
    let desired2 = render(&engine2, &opts, &mut ids2);
    let tx2 = diff(&observed, &desired2);
    assert!(!tx2.is_empty());
    assert!(
        !tx2.to_json().contains("\"flush\""),
        "no chain is rewritten: {}",
        tx2.to_json()
    );
    nft.apply(&tx2)
        .unwrap_or_else(|e| panic!("{e}\n{}", tx2.to_json()));
    let observed2 = nft.read().unwrap();
    assert!(diff(&observed2, &desired2).is_empty());
    let ip = gone.ips[0].to_string();
    assert!(
        !nft.list_raw()
            .unwrap()
            .unwrap()
            .to_string()
            .contains(&format!("\"{ip}\""))
    );

    // And back, incrementally: the engine's incremental path gives the same kernel state.
    engine2.upsert_workload(gone);
    let desired3 = render(&engine2, &opts, &mut ids2);
    nft.apply(&diff(&observed2, &desired3)).unwrap();
    assert!(
        diff(&nft.read().unwrap(), &desired).is_empty(),
        "back where we started"
    );

    nft.delete_table().unwrap();
    assert!(!nft.read().unwrap().exists);
}

#[test]
fn the_example_renders_and_applies() {
    let Some(ns) = Netns::new("bh-test-dataplane-2") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let b = bundle("examples");
    let engine = Engine::new(&b).unwrap();
    let desired = render(&engine, &RenderOptions::default(), &mut KernelIds::new());
    let tx = diff(&nft.read().unwrap(), &desired);
    nft.apply(&tx).unwrap_or_else(|e| panic!("{e}"));
    assert!(diff(&nft.read().unwrap(), &desired).is_empty());
}

/// Element changes sent over netlink land exactly as nft would have put them.
#[test]
fn element_changes_over_netlink_match_nft() {
    let Some(ns) = Netns::new("bh-test-dataplane-3") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let b = bundle("conformance/scenarios/36-ipblock-except-ingress-with-pod-ips");
    let mut engine = Engine::new(&b).unwrap();
    let opts = RenderOptions::default();
    let mut ids = KernelIds::new();
    let before = render(&engine, &opts, &mut ids);
    nft.apply(&diff(&nft.read().unwrap(), &before)).unwrap();

    // A replica of x/a (existing identity, new addresses and named ports), and y/b
    // moved to x/a's labels (its old identity goes away).
    let mut extra = b
        .inventory
        .workloads
        .iter()
        .find(|w| w.key.to_string() == "x/a")
        .unwrap()
        .clone();
    extra.key.name = "a-2".into();
    extra.ips = vec!["10.1.0.9".parse().unwrap(), "fd00::9".parse().unwrap()];
    extra.ports.push(bulkhead_model::ContainerPort {
        name: Some("extra".into()),
        port: 9999,
        protocol: bulkhead_model::Protocol::Tcp,
    });
    engine.upsert_workload(extra);
    let after = render(&engine, &opts, &mut ids);
    let ops = bulkhead_dataplane::diff::element_ops(&before, &after).expect("only elements change");
    assert!(!ops.is_empty());
    bulkhead_dataplane::netlink::apply(Some(&ns.0), &ops).unwrap();
    let observed = nft.read().unwrap();
    assert_eq!(
        observed.sets, after.sets,
        "the kernel holds what nft would have written"
    );
    assert!(diff(&observed, &after).is_empty());

    // Deletes too (the replica goes away again).
    engine.remove_workload(&bulkhead_model::WorkloadKey::new("x", "a-2"));
    let back = render(&engine, &opts, &mut ids);
    let ops = bulkhead_dataplane::diff::element_ops(&after, &back).expect("only elements change");
    bulkhead_dataplane::netlink::apply(Some(&ns.0), &ops).unwrap();
    assert_eq!(nft.read().unwrap().sets, back.sets);
}

/// With an L7 proxy: the divert chain (prerouting, TPROXY, socket match) is accepted by
/// the kernel, reads back as written, and diverts exactly the L4 part of the L7 rules.
#[test]
fn divert_chain_applies_and_adopts() {
    let Some(ns) = Netns::new("bh-test-dataplane-divert") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let b = bundle("examples");
    let engine = Engine::new(&b).unwrap();
    let opts = RenderOptions {
        l7_proxy: Some(15001),
        ..Default::default()
    };
    let desired = render(&engine, &opts, &mut KernelIds::new());
    let divert = &desired.chains["divert"];
    // examples/ has five rules with `app:` (http x4, ldap, redis): one divert rule per
    // subject selector of each, plus the fixed rules around them.
    let tproxy = divert
        .rules
        .iter()
        .filter(|r| serde_json::to_string(r).unwrap().contains("tproxy"))
        .count();
    assert!(tproxy >= 6, "{tproxy} tproxy rules");
    let tx = diff(&nft.read().unwrap(), &desired);
    nft.apply(&tx)
        .unwrap_or_else(|e| panic!("{e}\n{}", tx.to_json()));
    let observed = nft.read().unwrap();
    assert!(
        diff(&observed, &desired).is_empty(),
        "adopting changes things"
    );
    let text = ns.list_chain("divert");
    assert!(text.contains("hook prerouting priority mangle"), "{text}");
    // Diverted connections and the proxy's own flows are known by their conntrack mark
    // (no socket lookup per packet), TCP and UDP: DIVERT_MARK, or PROXY_CT_MARK (the
    // proxy's own), alike under the mask (`/31`).
    assert!(
        text.contains("meta l4proto tcp ct state established,related ct mark 0x00b10000/31 meta mark set 0x00b10000 accept"),
        "{text}"
    );
    assert!(
        text.contains("meta l4proto udp ct state established,related ct direction reply ct mark 0x00b10000/31 meta mark set 0x00b10000 accept"),
        "{text}"
    );
    assert!(
        text.contains(
            "ct state established,related ct mark != 0x00b10000/31 udp dport != 53 accept"
        ),
        "{text}"
    );
    assert!(
        text.contains("tproxy ip to :15001 ct mark set 0x00b10000"),
        "{text}"
    );
    assert!(text.contains("tproxy ip6 to :15001"), "{text}");
    // The proxy's own connections take PROXY_CT_MARK when they begin (the agent records
    // the end of the client's entry only).
    let output = ns.list_chain("output");
    assert!(
        output.contains("meta mark 0x00b20000 ct state new ct mark set 0x00b10001 accept"),
        "{output}"
    );
}

/// Policy edits patched in (the agent's fast path) bring the kernel exactly to the
/// patched state, over netlink; the sweep afterwards removes the leftovers.
#[test]
fn patched_policy_edits_reach_the_kernel() {
    use bulkhead_dataplane::node::{NodeState, Update};

    let Some(ns) = Netns::new("bh-test-dataplane-patch") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let mut engine = Engine::new(&bulkhead_synth::cluster(300, 40, 3)).unwrap();
    let opts = RenderOptions::default();
    let mut st = NodeState::adopt(opts, nft.read().unwrap(), &engine);
    let apply = |u: &Update| match u {
        Update::Full { tx, .. } => bulkhead_dataplane::batch::apply(Some(&ns.0), tx).unwrap(),
        Update::Elements { ops, .. } => {
            bulkhead_dataplane::netlink::apply(Some(&ns.0), ops).unwrap()
        }
    };
    let u = st.plan_full(&engine, false);
    apply(&u);
    let _ = st.commit(u);
    let mut patched = 0;
    for i in 0..8u16 {
        let mut set = engine.policy().clone();
        if !common::set_first_rule_port(&mut set, usize::from(i) * 5, 30_000 + i) {
            continue;
        }
        engine.set_policy(set).unwrap();
        let u = st.plan_full(&engine, true);
        if matches!(
            u,
            Update::Full {
                complete: false,
                ..
            }
        ) {
            patched += 1;
        }
        apply(&u);
        let _ = st.commit(u);
        let left = diff(&nft.read().unwrap(), &st.applied);
        assert!(
            left.is_empty(),
            "edit {i}: kernel != patched state: {}",
            left.to_json()
        );
    }
    assert!(patched > 0, "no edit was patched in");
    // The sweep: a full update leaves exactly a render, in the kernel too.
    let u = st.plan_full(&engine, false);
    apply(&u);
    let _ = st.commit(u);
    let mut ids = st.ids.clone();
    let full = render(&engine, &RenderOptions::default(), &mut ids);
    assert!(diff(&nft.read().unwrap(), &full).is_empty());
    nft.delete_table().unwrap();
}

/// Quarantine is element changes only, over netlink, and lands where a full render
/// with the same quarantine would put it; releasing empties the sets again.
#[test]
fn quarantine_is_element_changes() {
    use bulkhead_dataplane::node::{NodeState, Update};
    let Some(ns) = Netns::new("bh-test-dataplane-q") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let b = bundle("examples");
    let engine = Engine::new(&b).unwrap();
    let mut node = NodeState::adopt(RenderOptions::default(), nft.read().unwrap(), &engine);
    let u = node.plan_full(&engine, false);
    let Update::Full { tx, .. } = &u else {
        panic!("first update is full")
    };
    nft.apply(tx).unwrap();
    let _ = node.commit(u);
    let quarantined = ["10.99.0.7", "fd00:99::7"].map(|a| a.parse().unwrap());
    for addrs in [quarantined.into_iter().collect(), Default::default()] {
        let u = node.plan_quarantine(&engine, addrs);
        let Update::Elements { ops, .. } = &u else {
            panic!("quarantine is element changes")
        };
        assert!(!ops.is_empty());
        bulkhead_dataplane::netlink::apply(Some(&ns.0), ops).unwrap();
        let _ = node.commit(u);
        let want = render(&engine, &node.opts, &mut node.ids.clone());
        assert!(
            diff(&nft.read().unwrap(), &want).is_empty(),
            "the kernel holds what a render with this quarantine gives"
        );
    }
}
