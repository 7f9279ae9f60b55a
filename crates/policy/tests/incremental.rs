//! The incremental engine must always agree with an engine built from scratch, whatever
//! sequence of workload, namespace and policy changes it went through. And the tier
//! invariants the docs promise must hold on random policy sets.

use std::net::{IpAddr, Ipv4Addr};

use bulkhead_model::selector::parse;
use bulkhead_model::{
    CidrBlock, Inventory, L4, Labels, Namespace, PortRange, Protocol, Selector, Workload,
    WorkloadKey,
};
use bulkhead_policy::spec::*;
use bulkhead_policy::{Connection, Endpoint, Engine};
use proptest::prelude::*;

const SELECTORS: &[&str] = &[
    "all()",
    "app == \"a\"",
    "app == \"b\"",
    "app != \"a\"",
    "has(tier)",
    "!has(tier)",
    "tier in {\"1\", \"2\"}",
    "app == \"a\" && tier == \"1\"",
    "app == \"b\" || tier == \"2\"",
];
const NS_SELECTORS: &[&str] = &["all()", "env == \"prod\"", "env != \"prod\"", "has(env)"];

fn sel(i: usize) -> Selector {
    parse(SELECTORS[i % SELECTORS.len()]).unwrap()
}

fn ns_sel(i: usize) -> Selector {
    parse(NS_SELECTORS[i % NS_SELECTORS.len()]).unwrap()
}

fn origin() -> Origin {
    Origin::new("test", 0, 0)
}

fn arb_labels() -> impl Strategy<Value = Labels> {
    (
        prop::option::of(prop::sample::select(vec!["a", "b", "c"])),
        prop::option::of(prop::sample::select(vec!["1", "2"])),
    )
        .prop_map(|(app, tier)| {
            let mut l = Labels::new();
            if let Some(a) = app {
                l.insert("app", a);
            }
            if let Some(t) = tier {
                l.insert("tier", t);
            }
            l
        })
}

fn arb_workload(i: usize) -> impl Strategy<Value = Workload> {
    (0..3usize, arb_labels(), any::<bool>()).prop_map(move |(ns, labels, named)| {
        let mut w = Workload::new(&format!("ns{ns}"), &format!("w{i}"), labels);
        w.ips = vec![IpAddr::V4(Ipv4Addr::new(10, 0, ns as u8, i as u8 + 1))];
        if named {
            w.ports.push(bulkhead_model::ContainerPort {
                name: Some("web".into()),
                port: 80,
                protocol: Protocol::Tcp,
            });
        }
        w
    })
}

fn arb_ports() -> impl Strategy<Value = Vec<PortSpec>> {
    prop::collection::vec(
        prop_oneof![
            Just(PortSpec {
                protocol: Some(Protocol::Tcp),
                port: PortSel::Range(PortRange::single(80))
            }),
            Just(PortSpec {
                protocol: Some(Protocol::Udp),
                port: PortSel::Any
            }),
            Just(PortSpec {
                protocol: Some(Protocol::Tcp),
                port: PortSel::Named("web".into())
            }),
            Just(PortSpec {
                protocol: Some(Protocol::Tcp),
                port: PortSel::Range(PortRange { lo: 79, hi: 81 })
            }),
        ],
        0..2,
    )
}

fn arb_np(i: usize) -> impl Strategy<Value = NetworkPolicy> {
    let peer = (
        0..SELECTORS.len(),
        prop::option::of(0..NS_SELECTORS.len()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(p, n, pod, cidr)| {
            NpPeer {
                pod_selector: (pod || n.is_none()).then(|| sel(p)),
                namespace_selector: n.map(ns_sel),
                ip_block: None,
                origin: origin(),
            }
            .with_cidr(cidr)
        });
    let rule = (
        prop::option::of(prop::collection::vec(peer, 0..3)),
        prop::option::of(arb_ports()),
    )
        .prop_map(|(peers, ports)| NpRule {
            peers,
            ports,
            origin: origin(),
        })
        .boxed();
    (
        0..3usize,
        0..SELECTORS.len(),
        prop::option::of(prop::collection::vec(rule.clone(), 0..3)),
        prop::option::of(prop::collection::vec(rule, 0..3)),
        prop::option::of(prop::sample::subsequence(
            vec![PolicyType::Ingress, PolicyType::Egress],
            0..=2,
        )),
    )
        .prop_map(move |(ns, s, ingress, egress, types)| NetworkPolicy {
            name: format!("np{i}"),
            namespace: format!("ns{ns}"),
            pod_selector: sel(s),
            policy_types: types,
            ingress,
            egress,
            origin: origin(),
        })
}

trait WithCidr {
    fn with_cidr(self, on: bool) -> Self;
}

impl WithCidr for NpPeer {
    fn with_cidr(mut self, on: bool) -> Self {
        if on {
            self.pod_selector = None;
            self.namespace_selector = None;
            self.ip_block = Some(CidrBlock {
                net: "10.0.0.0/16".parse().unwrap(),
                except: vec!["10.0.1.0/24".parse().unwrap()],
            });
        }
        self
    }
}

fn arb_policy(i: usize) -> impl Strategy<Value = Policy> {
    let peer = prop_oneof![
        (0..SELECTORS.len()).prop_map(|s| PeerSpec::Workloads(WorkloadSelector {
            selector: Some(sel(s)),
            namespace_selector: None,
            namespaces: vec![],
        })),
        Just(PeerSpec::Group("g0".into())),
        Just(PeerSpec::Entity(Entity::Cluster)),
        Just(PeerSpec::Cidr(CidrBlock::new(
            "10.0.2.0/24".parse().unwrap()
        ))),
    ];
    let action = prop::sample::select(vec![Action::Allow, Action::Deny, Action::Pass, Action::Log]);
    let rule = (action, prop::collection::vec(peer, 0..2), arb_ports())
        .prop_map(|(action, peers, ports)| Rule {
            action,
            name: None,
            peers: peers
                .into_iter()
                .map(|spec| Peer {
                    spec,
                    origin: origin(),
                })
                .collect(),
            ports,
            app: None,
            l7: vec![],
            origin: origin(),
        })
        .boxed();
    (
        prop::option::of(0..3usize),
        -5..5i32,
        0..SELECTORS.len(),
        prop::collection::vec(rule.clone(), 0..3),
        prop::collection::vec(rule, 0..3),
    )
        .prop_map(move |(ns, priority, applies, ingress, egress)| Policy {
            name: format!("p{i}"),
            namespace: ns.map(|n| format!("ns{n}")),
            priority,
            applies_to: vec![PeerSpec::Workloads(WorkloadSelector {
                selector: Some(sel(applies)),
                namespace_selector: None,
                namespaces: vec![],
            })],
            ingress,
            egress,
            origin: origin(),
        })
}

fn arb_policy_set() -> impl Strategy<Value = PolicySet> {
    (
        prop::collection::vec(arb_np(0), 0..3),
        prop::collection::vec(arb_policy(0), 0..3),
        0..SELECTORS.len(),
        prop::sample::select(vec![Mode::Discover, Mode::Monitor, Mode::Protect]),
        prop::sample::select(vec![Mode::Discover, Mode::Protect]),
    )
        .prop_map(|(mut nps, mut policies, g, mode, ungrouped)| {
            for (i, n) in nps.iter_mut().enumerate() {
                n.name = format!("np{i}");
            }
            for (i, p) in policies.iter_mut().enumerate() {
                p.name = format!("p{i}");
            }
            PolicySet {
                groups: vec![Group {
                    name: "g0".into(),
                    members: WorkloadSelector {
                        selector: Some(sel(g)),
                        namespace_selector: None,
                        namespaces: vec![],
                    },
                    mode,
                    sensors: Vec::new(),
                    inspect: Default::default(),
                    origin: origin(),
                }],
                sensors: Vec::new(),
                policies,
                network_policies: nps,
                settings: Settings {
                    ungrouped_mode: ungrouped,
                    discover: Default::default(),
                    origin: None,
                },
                responses: Vec::new(),
            }
        })
}

fn namespaces(prod: [bool; 3]) -> Vec<Namespace> {
    (0..3)
        .map(|i| {
            let mut l = Labels::new();
            if prod[i] {
                l.insert("env", "prod");
            }
            Namespace::new(&format!("ns{i}"), l)
        })
        .collect()
}

const PROBES: [&str; 4] = ["TCP/80", "TCP/81", "UDP/53", "ICMP"];

/// Every ordered pair of workloads (and each workload to/from an outside address).
fn verdicts(e: &Engine) -> Vec<(String, String, String, bool)> {
    let mut ends: Vec<(String, Endpoint)> = e
        .workloads()
        .into_iter()
        .map(|(id, w)| (w.key.to_string(), Endpoint::Workload { id, addr: None }))
        .collect();
    ends.push((
        "outside".into(),
        Endpoint::External {
            addr: Some("10.0.2.9".parse().unwrap()),
            names: vec![],
        },
    ));
    let mut out = Vec::new();
    for (sn, s) in &ends {
        for (dn, d) in &ends {
            for p in PROBES {
                let l4: L4 = p.parse().unwrap();
                let v = e.verdict(&Connection {
                    src: s,
                    dst: d,
                    l4,
                    l7: None,
                });
                out.push((sn.clone(), dn.clone(), p.to_string(), v.allowed));
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(Workload),
    Remove(usize),
    Namespace(usize, bool),
    Policy(PolicySet),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize).prop_flat_map(arb_workload).prop_map(Op::Upsert),
        2 => (0..8usize).prop_map(Op::Remove),
        3 => (0..3usize, any::<bool>()).prop_map(|(n, p)| Op::Namespace(n, p)),
        1 => arb_policy_set().prop_map(Op::Policy),
    ]
}

proptest! {
    // About half the generated policy sets are rejected by `adding_a_networkpolicy_allow_only_adds`'s
    // assumptions: room for that at any PROPTEST_CASES.
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 1 << 20, .. ProptestConfig::default() })]

    #[test]
    fn incremental_equals_fresh(
        initial in prop::collection::vec((0..8usize).prop_flat_map(arb_workload), 0..6),
        policy in arb_policy_set(),
        ops in prop::collection::vec(arb_op(), 1..12),
    ) {
        let mut prod = [true, false, false];
        let mut workloads: Vec<Workload> = Vec::new();
        for w in initial {
            workloads.retain(|x| x.key != w.key);
            workloads.push(w);
        }
        let mut bundle = Bundle {
            inventory: Inventory { namespaces: namespaces(prod), workloads: workloads.clone(), nodes: vec![] },
            policy,
            tests: vec![],
            lab: None,
        };
        let mut engine = Engine::new(&bundle).unwrap();
        for op in ops {
            match op {
                Op::Upsert(w) => {
                    workloads.retain(|x| x.key != w.key);
                    workloads.push(w.clone());
                    engine.upsert_workload(w);
                }
                Op::Remove(i) => {
                    let key = WorkloadKey::new("ns0", format!("w{i}"));
                    let keys: Vec<WorkloadKey> = workloads.iter().map(|w| w.key.clone()).filter(|k| k.name == key.name).collect();
                    for k in keys {
                        workloads.retain(|x| x.key != k);
                        engine.remove_workload(&k);
                    }
                }
                Op::Namespace(n, p) => {
                    prod[n] = p;
                    engine.upsert_namespace(namespaces(prod)[n].clone());
                }
                Op::Policy(p) => {
                    bundle.policy = p.clone();
                    engine.set_policy(p).unwrap();
                }
            }
            // Warm the pair cache so later steps exercise stale-entry handling.
            let _ = verdicts(&engine);
        }
        bundle.inventory = Inventory { namespaces: namespaces(prod), workloads, nodes: vec![] };
        let fresh = Engine::new(&bundle).unwrap();
        prop_assert_eq!(verdicts(&engine), verdicts(&fresh));
        prop_assert_eq!(engine.stats().identities, fresh.stats().identities);
    }

    /// Adding an ingress rule to a NetworkPolicy that already isolates ingress never
    /// removes an allowed pair (the NetworkPolicy tier is a union of allows).
    #[test]
    fn adding_a_networkpolicy_allow_only_adds(
        workloads in prop::collection::vec((0..8usize).prop_flat_map(arb_workload), 1..6),
        mut policy in arb_policy_set(),
        extra in arb_np(9),
    ) {
        policy.policies.clear();
        prop_assume!(!policy.network_policies.is_empty());
        let inventory = Inventory { namespaces: namespaces([true, false, false]), workloads, nodes: vec![] };
        let before = Engine::new(&Bundle { inventory: inventory.clone(), policy: policy.clone(), tests: vec![], lab: None }).unwrap();
        let np = &mut policy.network_policies[0];
        let isolates_ingress = bulkhead_policy::compile::effective_policy_types(np).0;
        prop_assume!(isolates_ingress);
        np.ingress.get_or_insert_with(Vec::new).extend(extra.ingress.unwrap_or_default());
        let after = Engine::new(&Bundle { inventory, policy, tests: vec![], lab: None }).unwrap();
        for (b, a) in verdicts(&before).iter().zip(verdicts(&after)) {
            prop_assert!(!b.3 || a.3, "{b:?} was allowed, now denied");
        }
    }

    /// Protect never allows more than Discover; a top-priority Deny-all never allows more.
    #[test]
    fn stricter_modes_and_denies_only_remove(
        workloads in prop::collection::vec((0..8usize).prop_flat_map(arb_workload), 1..6),
        policy in arb_policy_set(),
    ) {
        let inventory = Inventory { namespaces: namespaces([true, false, false]), workloads, nodes: vec![] };
        let mut loose = policy.clone();
        loose.groups[0].mode = Mode::Discover;
        loose.settings.ungrouped_mode = Mode::Discover;
        let mut strict = policy.clone();
        strict.groups[0].mode = Mode::Protect;
        strict.settings.ungrouped_mode = Mode::Protect;
        let mut deny_all = policy.clone();
        deny_all.policies.push(Policy {
            name: "deny-all".into(),
            namespace: None,
            priority: i32::MIN,
            applies_to: vec![],
            ingress: vec![Rule { action: Action::Deny, name: None, peers: vec![], ports: vec![], app: None, l7: vec![], origin: origin() }],
            egress: vec![],
            origin: origin(),
        });
        let run = |p: &PolicySet| verdicts(&Engine::new(&Bundle { inventory: inventory.clone(), policy: p.clone(), tests: vec![], lab: None }).unwrap());
        let (l, s, base, d) = (run(&loose), run(&strict), run(&policy), run(&deny_all));
        for ((l, s), (b, d)) in l.iter().zip(&s).zip(base.iter().zip(&d)) {
            prop_assert!(!s.3 || l.3, "Protect allows {s:?} but Discover does not");
            prop_assert!(!d.3 || b.3, "deny-all allows {d:?}");
            // Only traffic into a workload is denied by an ingress deny-all.
            let into_workload = d.1 != "outside";
            let same = d.0 == d.1;
            prop_assert!(!into_workload || same || !d.3, "deny-all did not deny {d:?}");
        }
    }
}

/// Relabelling a namespace re-resolves namespace selectors for its workloads.
#[test]
fn namespace_relabel_changes_namespace_selector_matches() {
    let mut a = Workload::new("ns0", "server", Labels::new());
    a.ips = vec!["10.0.0.1".parse().unwrap()];
    let mut b = Workload::new("ns1", "client", Labels::new());
    b.ips = vec!["10.0.1.1".parse().unwrap()];
    let np = NetworkPolicy {
        name: "from-prod".into(),
        namespace: "ns0".into(),
        pod_selector: Selector::All,
        policy_types: None,
        ingress: Some(vec![NpRule {
            peers: Some(vec![NpPeer {
                pod_selector: None,
                namespace_selector: Some(parse("env == \"prod\"").unwrap()),
                ip_block: None,
                origin: origin(),
            }]),
            ports: None,
            origin: origin(),
        }]),
        egress: None,
        origin: origin(),
    };
    let bundle = Bundle {
        inventory: Inventory {
            namespaces: namespaces([false, false, false]),
            workloads: vec![a, b],
            nodes: vec![],
        },
        policy: PolicySet {
            network_policies: vec![np],
            ..PolicySet::default()
        },
        tests: vec![],
        lab: None,
    };
    let mut e = Engine::new(&bundle).unwrap();
    let allowed = |e: &Engine| {
        let src = Endpoint::Workload {
            id: e.workload_id(&WorkloadKey::new("ns1", "client")).unwrap(),
            addr: None,
        };
        let dst = Endpoint::Workload {
            id: e.workload_id(&WorkloadKey::new("ns0", "server")).unwrap(),
            addr: None,
        };
        e.verdict(&Connection {
            src: &src,
            dst: &dst,
            l4: L4::tcp(80),
            l7: None,
        })
        .allowed
    };
    assert!(!allowed(&e));
    e.upsert_namespace(namespaces([false, true, false])[1].clone());
    assert!(allowed(&e));
    e.upsert_namespace(namespaces([false, false, false])[1].clone());
    assert!(!allowed(&e));
}
