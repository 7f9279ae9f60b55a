//! With the L7 proxy, new TCP connections of this node's Discover workloads are diverted
//! to it (protocol detection for learning), by the signature number their marks carry;
//! Protect workloads are not, nor is anything when
//! `Settings.spec.discover.detectProtocols` is false. The rules are accepted by the
//! kernel (netlink batch), read back as written, and survive a patched policy edit.

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::node::{NodeState, Update};
use bulkhead_dataplane::{RenderOptions, Ruleset};
use bulkhead_manifest::{Source, parse_sources};
use bulkhead_policy::Engine;
use bulkhead_policy::spec::Bundle;

mod common;
use common::Netns;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: learner, namespace: shop, labels: {app: learner}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: shop, labels: {app: cache}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.3}]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: db}
spec: {selector: app == "db", mode: Protect}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: cache}
spec: {selector: app == "cache", mode: Monitor}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-access}
spec:
  appliesTo: [{group: db}]
  ingress:
    - action: Allow
      from: [{selector: app == "learner"}]
      ports: [TCP/5432]
"#;

fn bundle(extra: &str) -> Bundle {
    parse_sources(&[Source {
        name: "t.yaml".into(),
        text: format!("{CLUSTER}{extra}"),
    }])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn opts() -> RenderOptions {
    RenderOptions {
        node: Some("n1".into()),
        log_allowed: true,
        l7_proxy: Some(15001),
        ..Default::default()
    }
}

/// The divert rules that match a signature (the Discover ones): their text.
fn discover_rules(r: &Ruleset) -> Vec<String> {
    r.chains["divert"]
        .rules
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .filter(|s| s.contains("tproxy") && s.contains(&0x3ffc_0000u32.to_string()))
        .collect()
}

fn full(st: &mut NodeState, engine: &Engine) -> Ruleset {
    match st.plan_full(engine, false) {
        Update::Full { desired, .. } => *desired,
        Update::Elements { .. } => unreachable!(),
    }
}

#[test]
fn discover_workloads_are_diverted_by_signature() {
    let engine = Engine::new(&bundle("")).unwrap();
    let mut st = NodeState::adopt(opts(), Ruleset::default(), &engine);
    let desired = full(&mut st, &engine);
    // One signature (the learner: ungrouped, Discover): as a client of an end that is
    // not local or allows like Discover (its own ingress signature), and as a server of
    // a client from elsewhere; two families each.
    let rules = discover_rules(&desired);
    assert_eq!(rules.len(), 6, "{rules:#?}");
    let sig_of = |map: &str, ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        desired.sets[map]
            .elems
            .as_ref()
            .unwrap()
            .iter()
            .find_map(|e| match e {
                bulkhead_dataplane::Elem::AddrMark(a, m) if *a == ip => Some(*m),
                _ => None,
            })
            .unwrap()
            & 0x3ffc_0000
    };
    // `meta mark` (the source's egress signature) or `ct mark` (the destination's
    // ingress one) compared with a value, in some rule.
    let has = |side: &str, v: u32| {
        let m = format!(r#"{{"&":[{{"{side}":{{"key":"mark"}}}},1073479680]}},"right":{v},"#);
        rules.iter().any(|r| r.contains(&m))
    };
    let (e, i) = (sig_of("id4", "10.0.0.1"), sig_of("dst4", "10.0.0.1"));
    assert!(has("meta", e) && has("ct", i), "{rules:#?}");
    assert!(has("ct", 0) && has("meta", 0), "ends not of this node");
    // Never the Protect workload, either way: a connection it may refuse would be
    // accepted by the proxy first.
    let (pe, pi) = (sig_of("id4", "10.0.0.2"), sig_of("dst4", "10.0.0.2"));
    assert!(!has("meta", pe) && !has("ct", pi), "{rules:#?}");
    // The Monitor workload, resolved like the learner but for the mode, shares its
    // chains (the kernel treats Monitor and Discover alike) and so its signature: it is
    // diverted too, and the proxy decides it as the kernel would.
    assert_eq!(sig_of("id4", "10.0.0.3"), e);

    // Turned off: no rule diverts by signature.
    let off = "---\napiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec: {discover: {detectProtocols: false}}\n";
    let engine_off = Engine::new(&bundle(off)).unwrap();
    let mut st_off = NodeState::adopt(opts(), Ruleset::default(), &engine_off);
    assert!(discover_rules(&full(&mut st_off, &engine_off)).is_empty());

    // Without the proxy there is no divert chain at all.
    let mut st_none = NodeState::adopt(RenderOptions::default(), Ruleset::default(), &engine);
    assert!(!full(&mut st_none, &engine).chains.contains_key("divert"));
}

#[test]
fn discover_divert_applies_adopts_and_survives_a_patch() {
    let Some(ns) = Netns::new("bh-test-dataplane-discover") else {
        return;
    };
    let nft = Nft::in_netns(&ns.0);
    let mut engine = Engine::new(&bundle("")).unwrap();
    let mut st = NodeState::adopt(opts(), nft.read().unwrap(), &engine);
    let apply = |u: &Update| match u {
        Update::Full { tx, .. } => bulkhead_dataplane::batch::apply(Some(&ns.0), tx).unwrap(),
        Update::Elements { ops, .. } => {
            bulkhead_dataplane::netlink::apply(Some(&ns.0), ops).unwrap()
        }
    };
    let u = st.plan_full(&engine, false);
    apply(&u);
    st.commit(u);
    assert!(
        bulkhead_dataplane::diff(&nft.read().unwrap(), &st.applied).is_empty(),
        "adopting changes things"
    );
    let text = ns.list_chain("divert");
    assert!(
        text.contains("meta mark & 0x3ffc0000 == "),
        "no egress signature rule:\n{text}"
    );
    assert!(
        text.contains("ct mark & 0x3ffc0000 == "),
        "no ingress signature rule:\n{text}"
    );
    let before = discover_rules(&st.applied);
    assert_eq!(before.len(), 6);

    // A policy edit the agent patches in (a port): the Discover rules stay.
    let mut b = bundle("");
    assert!(common::set_first_rule_port(&mut b.policy, 0, 5433));
    engine.set_policy(b.policy).unwrap();
    let u = st.plan_full(&engine, true);
    apply(&u);
    st.commit(u);
    assert_eq!(discover_rules(&st.applied), before);
    assert!(bulkhead_dataplane::diff(&nft.read().unwrap(), &st.applied).is_empty());
}
