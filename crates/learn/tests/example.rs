//! End to end on the bundled example (`examples/`): the flows its hand-written policy
//! allows (its analyze matrix, one record per allowed pair and probe, with the labels a
//! real cluster puts on replicas) are learned back into a policy whose matrix on the
//! example's workloads is exactly the observed one, with one group per Deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use bulkhead_analyze::matrix::{Family, Matrix, matrix};
use bulkhead_learn::eval::engine;
use bulkhead_learn::labels::stem;
use bulkhead_learn::{Observations, Options, coverage, learn, replay};
use bulkhead_model::{Inventory, L4, Workload};
use bulkhead_policy::spec::{Bundle, Mode};
use bulkhead_record::{FlowRecord, Peer};

mod common;

const PROBES: &[&str] = &[
    "TCP/8080", "TCP/5432", "TCP/389", "TCP/3000", "TCP/6379", "TCP/8443", "UDP/53",
];

fn example() -> Bundle {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    bulkhead_manifest::load(&[dir], false).expect("examples/ loads")
}

fn probes() -> Vec<L4> {
    PROBES.iter().map(|p| p.parse().unwrap()).collect()
}

/// A replica as the agent names it: its labels plus what controllers add per pod and per
/// rollout (replica 1 of each Deployment is mid-rollout: another pod-template-hash).
fn peer(w: &Workload, index: usize) -> Peer {
    let mut labels: BTreeMap<String, String> = w
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let replica: usize = w.key.name.rsplit('-').next().unwrap().parse().unwrap();
    let family = stem(&w.key.name);
    let hash = format!(
        "{:x}",
        0x6b4f_9c00_u32 + family.len() as u32 * 7 + replica as u32
    );
    labels.insert("pod-template-hash".into(), hash);
    labels.insert("instance".into(), w.key.name.clone());
    labels.insert("rollout".into(), format!("r{replica}"));
    Peer {
        ip: format!("10.7.{}.{}", index / 200, index % 200 + 10),
        workload: Some(w.key.to_string()),
        namespace: Some(w.key.namespace.clone()),
        name: Some(w.key.name.clone()),
        labels,
        entity: None,
    }
}

fn record(src: Peer, dst: Peer, l4: L4, l7: Option<serde_json::Value>, n: usize) -> FlowRecord {
    let time = format!("2026-12-03T02:{:02}:{:02}.000Z", n / 60 % 60, n % 60);
    common::allowed(
        time,
        src,
        dst,
        l4.protocol().as_str(),
        l4.port().unwrap(),
        l7,
    )
}

/// One record per allowed pair and probe of the example's matrix (two for the first
/// pairs), HTTP and Redis seen by the L7 proxy where the policy asks for them.
fn observed(bundle: &Bundle, m: &Matrix) -> Vec<FlowRecord> {
    let index: BTreeMap<String, (usize, &Workload)> = bundle
        .inventory
        .workloads
        .iter()
        .enumerate()
        .map(|(i, w)| (w.key.to_string(), (i, w)))
        .collect();
    let peer_of = |k: &str| {
        let (i, w) = index[k];
        peer(w, i)
    };
    let mut out = Vec::new();
    for (pair, allowed) in &m.allowed {
        let (s, d) = pair.split_once(" -> ").unwrap();
        for p in allowed {
            let l4: L4 = p.parse().unwrap();
            let dst_app = index[d].1.labels.get("app").unwrap_or_default();
            let l7 = match (dst_app, l4.port()) {
                ("custRecord", Some(8080)) | ("geoLocation", Some(8080)) => {
                    Some(serde_json::json!({"protocol": "http"}))
                }
                ("redis", Some(6379)) => {
                    Some(serde_json::json!({"protocol": "redis", "request": "redis GET"}))
                }
                _ => None,
            };
            let n = out.len();
            out.push(record(peer_of(s), peer_of(d), l4, l7, n));
        }
    }
    out
}

/// The example, its matrix, and the records of every flow it allows.
fn setup() -> (Bundle, Matrix, Vec<FlowRecord>) {
    let bundle = example();
    let truth = matrix(
        &bulkhead_policy::Engine::new(&bundle).unwrap(),
        &probes(),
        Family::V4,
    );
    let records = observed(&bundle, &truth);
    (bundle, truth, records)
}

fn matrix_of(inv: &Inventory, policy: &bulkhead_policy::spec::PolicySet) -> Matrix {
    matrix(&engine(inv, policy).unwrap(), &probes(), Family::V4)
}

#[test]
fn learned_policy_allows_exactly_what_was_observed() {
    let (_, truth, records) = setup();
    assert!(records.len() > 500, "{}", records.len());
    let obs = Observations::from_records(&records);

    // From the flows alone: no inventory.
    let p = learn(&obs, &Inventory::default(), &Options::default()).unwrap();
    for k in ["pod-template-hash", "instance", "rollout"] {
        assert!(
            p.volatile.contains_key(k),
            "{k} not found volatile: {:?}",
            p.volatile
        );
    }
    // One group per Deployment (the example's 25 identities), never one per pod.
    assert_eq!(p.groups.len(), 25, "{:#?}", p.groups);
    let mut families: BTreeSet<(String, String)> = BTreeSet::new();
    for g in &p.groups {
        let f: BTreeSet<(String, String)> = g
            .workloads
            .iter()
            .map(|w| {
                let (ns, n) = w.split_once('/').unwrap();
                (ns.to_string(), stem(n).to_string())
            })
            .collect();
        assert_eq!(
            f.len(),
            1,
            "group {} mixes controllers: {:?}",
            g.name,
            g.workloads
        );
        families.extend(f);
    }
    assert_eq!(families.len(), 25);
    // No pod address anywhere in the YAML.
    for r in &records {
        assert!(!p.yaml.contains(&r.src.ip), "{} in\n{}", r.src.ip, p.yaml);
    }
    // The groups are written in the chosen mode; the rules alone give the observed matrix.
    assert!(p.policy.groups.iter().all(|g| g.mode == Mode::Monitor));
    let learned = matrix_of(&p.inventory, &p.enforced());
    assert_eq!(learned.allowed.len(), truth.allowed.len());
    let diff = bulkhead_analyze::diff::diff(&truth, &learned);
    assert!(
        diff.is_empty() && diff.only_new.is_empty() && diff.only_old.is_empty(),
        "{diff:#?}\n{}",
        p.yaml
    );
    let c = coverage(&obs, &p.inventory, &p.enforced()).unwrap();
    assert_eq!(c.covered_flows, records.len() as u64);
    assert_eq!(c.percent, 100.0);
    // Readable: a rule per group pair at most, peers with the same ports share one.
    let pairs: BTreeSet<(String, String)> = records
        .iter()
        .map(|r| {
            let g = |w: &str| {
                p.groups
                    .iter()
                    .find(|g| g.workloads.iter().any(|x| x == w))
                    .unwrap()
                    .name
                    .clone()
            };
            (
                g(r.src.workload.as_ref().unwrap()),
                g(r.dst.workload.as_ref().unwrap()),
            )
        })
        .collect();
    assert!(
        p.rules <= 2 * pairs.len(),
        "{} rules for {} pairs",
        p.rules,
        pairs.len()
    );
    assert!(
        p.rules <= 2 * p.groups.len() * 3,
        "{} rules:\n{}",
        p.rules,
        p.yaml
    );
    // The protocol the proxy saw is in the rules.
    assert!(
        p.yaml.contains("app: http") && p.yaml.contains("app: redis"),
        "{}",
        p.yaml
    );

    // Deterministic.
    let again = learn(
        &Observations::from_records(records.iter().rev()),
        &Inventory::default(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(again.yaml, p.yaml);
}

#[test]
fn with_the_inventory_selectors_are_exact_and_ports_named() {
    let (bundle, truth, records) = setup();
    let obs = Observations::from_records(&records);
    let p = learn(&obs, &bundle.inventory, &Options::default()).unwrap();
    let cc = p
        .groups
        .iter()
        .find(|g| g.workloads.contains(&"eu/credit-check-0".to_string()))
        .unwrap();
    assert_eq!(
        cc.selector,
        r#"app == "orderInput" && component == "creditCheck" && !has(geo)"#
    );
    assert_eq!(cc.name, "eu-order-input-credit-check");
    assert!(p.yaml.contains("TCP/http"), "{}", p.yaml);
    let learned = matrix_of(&p.inventory, &p.enforced());
    assert!(bulkhead_analyze::diff::diff(&truth, &learned).is_empty());
}

#[test]
fn replay_reports_what_a_change_denies_by_rule_and_workload() {
    let (bundle, _, records) = setup();
    let obs = Observations::from_records(&records);
    let inv = bulkhead_learn::propose::inventory(&obs, &bundle.inventory);
    // The same policy: nothing changes.
    let same = replay(&obs, &inv, &bundle.policy, &bundle.policy).unwrap();
    assert!(same.is_empty());
    assert_eq!(same.unchanged_flows, same.flows);
    // Without the rule that lets node pods reach redis: exactly those flows are denied.
    let mut new = bundle.policy.clone();
    new.policies.retain(|p| p.name != "redis-from-node");
    let r = replay(&obs, &inv, &bundle.policy, &new).unwrap();
    assert!(r.newly_allowed.is_empty());
    assert_eq!(r.newly_denied.len(), 2, "{r:#?}"); // node-api-0 and -1 -> redis-0
    assert!(
        r.newly_denied
            .iter()
            .all(|c| c.seen.dst == "platform/redis-0" && c.seen.service == "TCP/6379")
    );
    assert_eq!(r.by_rule.len(), 1);
    assert_eq!(r.by_rule[0].key, "Protect mode (group redis)");
    assert_eq!(r.by_workload[0].key, "platform/redis-0");
    assert_eq!(r.by_workload[0].newly_denied, 2);
    assert!(
        r.newly_denied[0].was.contains("redis-from-node"),
        "{}",
        r.newly_denied[0].was
    );
}

#[test]
fn across_namespaces_one_group_per_label_set_and_still_exact_here() {
    let (bundle, truth, records) = setup();
    let obs = Observations::from_records(&records);
    let opts = Options {
        across_namespaces: true,
        ..Options::default()
    };
    let p = learn(&obs, &bundle.inventory, &opts).unwrap();
    // eu and us run the same seven components: 25 identities, 18 label sets.
    assert_eq!(p.groups.len(), 18, "{:#?}", p.groups);
    let cc = p
        .groups
        .iter()
        .find(|g| g.workloads.contains(&"us/credit-check-1".to_string()))
        .unwrap();
    assert_eq!(cc.namespaces, ["eu", "us"]);
    assert!(cc.workloads.contains(&"eu/credit-check-0".to_string()));
    assert_eq!(cc.name, "order-input-credit-check");
    assert!(p.yaml.contains("namespaces: [eu, us]"), "{}", p.yaml);
    // The example's own policy is label-based across namespaces, so nothing is added.
    let learned = matrix_of(&p.inventory, &p.enforced());
    assert!(bulkhead_analyze::diff::diff(&truth, &learned).is_empty());
    let per_ns = learn(&obs, &bundle.inventory, &Options::default()).unwrap();
    assert!(p.rules < per_ns.rules, "{} vs {}", p.rules, per_ns.rules);
}
