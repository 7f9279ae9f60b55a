//! The policy half of a synthetic cluster: a few Groups, a bounded set of cluster-wide
//! bulkhead Policies, per-namespace default-deny NetworkPolicies, and per-application
//! NetworkPolicies and namespaced bulkhead Policies (see the crate docs for the mix).

use std::collections::BTreeSet;
use std::sync::Arc;

use bulkhead_model::selector::{K8sOperator, K8sRequirement};
use bulkhead_model::{CidrBlock, NAMESPACE_NAME_LABEL, PortRange, Protocol, Selector};
use bulkhead_policy::spec::{
    Action, Entity, Group, Mode, NetworkPolicy, NpPeer, NpRule, Origin, Peer, PeerSpec, Policy,
    PolicySet, PolicyType, PortSel, PortSpec, Rule, Settings, WorkloadSelector,
};

use crate::inventory::{App, Component, INGRESS, KUBE_SYSTEM, Kind, MONITORING, Topology};
use crate::rng::Rng;

/// At most this many cluster-wide Policies: real clusters have a handful of global
/// guard rails and many per-application policies.
pub const MAX_GLOBAL: usize = 12;

/// Generate `count` policies (bulkhead Policies + NetworkPolicies) about `topo`.
pub(crate) fn generate(topo: &Topology, count: usize, rng: &mut Rng) -> PolicySet {
    let mut g = Gen {
        o: Origin::new(Arc::<str>::from("synth"), 0, 0),
        set: PolicySet {
            groups: Vec::new(),
            sensors: Vec::new(),
            policies: Vec::new(),
            network_policies: Vec::new(),
            settings: Settings {
                ungrouped_mode: Mode::Discover,
                discover: Default::default(),
                origin: None,
            },
            responses: Vec::new(),
        },
    };
    g.groups();
    let globals = (count / 10).clamp(1, MAX_GLOBAL).min(count);
    for i in 0..globals {
        g.global(i);
    }
    let mut left = count - globals;
    let default_deny = topo.namespaces.len().min(left / 4);
    for i in 0..default_deny {
        g.default_deny(
            &topo.namespaces[i].name,
            i % 3 == 0 && topo.namespaces[i].env == "prod",
        );
    }
    left -= default_deny;

    // Per-application policies, spread over every application in a shuffled order.
    let mut apps: Vec<(usize, usize)> = topo
        .namespaces
        .iter()
        .enumerate()
        .flat_map(|(ni, ns)| (0..ns.apps.len()).map(move |ai| (ni, ai)))
        .collect();
    for i in (1..apps.len()).rev() {
        apps.swap(i, rng.below(i + 1));
    }
    let mut k = 0;
    while left > 0 && !apps.is_empty() {
        let (ni, ai) = apps[k % apps.len()];
        let ns = &topo.namespaces[ni];
        let app = &ns.apps[ai];
        let other = other_app(topo, ni, rng);
        let name = format!("{}-{k}", app.name);
        // The first policy of half the applications is the everyday "my app may talk
        // to itself" NetworkPolicy; the rest are drawn from every shape.
        let template = if k < apps.len() && rng.chance(0.5) {
            6
        } else {
            rng.below(20)
        };
        if template < 14 {
            g.app_network_policy(template % 7, &ns.name, app, other, &name, rng);
        } else {
            let dev = topo
                .namespaces
                .iter()
                .find(|n| n.env == "dev")
                .map(|n| n.name.as_str());
            g.app_policy(
                template % 4,
                &ns.name,
                app,
                other,
                dev.unwrap_or(KUBE_SYSTEM),
                &name,
                rng,
            );
        }
        left -= 1;
        k += 1;
    }
    g.set
}

/// Another namespace's team and one of its applications, for cross-namespace peers.
fn other_app<'a>(topo: &'a Topology, not: usize, rng: &mut Rng) -> (&'a str, &'a str) {
    for _ in 0..8 {
        let ni = rng.below(topo.namespaces.len());
        let ns = &topo.namespaces[ni];
        if ni != not && !ns.apps.is_empty() {
            return (&ns.team, &rng.pick(&ns.apps).name);
        }
    }
    let ns = &topo.namespaces[not];
    (
        &ns.team,
        ns.apps.first().map_or("none", |a| a.name.as_str()),
    )
}

fn eq(k: &str, v: &str) -> Selector {
    Selector::Eq(k.to_string(), v.to_string())
}

fn in_(k: &str, vs: &[&str]) -> Selector {
    Selector::In(
        k.to_string(),
        vs.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>(),
    )
}

fn req(key: &str, operator: K8sOperator, values: &[&str]) -> K8sRequirement {
    K8sRequirement {
        key: key.to_string(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn sel(selector: Selector) -> WorkloadSelector {
    WorkloadSelector {
        selector: Some(selector),
        namespace_selector: None,
        namespaces: Vec::new(),
    }
}

fn ns_sel(namespace_selector: Selector, selector: Option<Selector>) -> WorkloadSelector {
    WorkloadSelector {
        selector,
        namespace_selector: Some(namespace_selector),
        namespaces: Vec::new(),
    }
}

fn in_namespaces(names: &[&str], selector: Option<Selector>) -> WorkloadSelector {
    WorkloadSelector {
        selector,
        namespace_selector: None,
        namespaces: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn tcp(p: u16) -> PortSpec {
    PortSpec {
        protocol: Some(Protocol::Tcp),
        port: PortSel::Range(PortRange::single(p)),
    }
}

fn udp(p: u16) -> PortSpec {
    PortSpec {
        protocol: Some(Protocol::Udp),
        port: PortSel::Range(PortRange::single(p)),
    }
}

fn tcp_range(lo: u16, hi: u16) -> PortSpec {
    PortSpec {
        protocol: Some(Protocol::Tcp),
        port: PortSel::Range(PortRange { lo, hi }),
    }
}

fn named(name: &str, protocol: Option<Protocol>) -> PortSpec {
    PortSpec {
        protocol,
        port: PortSel::Named(name.to_string()),
    }
}

fn cidr(net: &str, except: &[&str]) -> CidrBlock {
    let mut b = CidrBlock::new(net.parse().expect("valid CIDR"));
    b.except = except
        .iter()
        .map(|e| e.parse().expect("valid CIDR"))
        .collect();
    b
}

/// The component of `app` of one of `kinds` (in preference order), else its first.
fn component<'a>(app: &'a App, kinds: &[Kind]) -> &'a Component {
    kinds
        .iter()
        .find_map(|k| app.components.iter().find(|c| c.kind == *k))
        .unwrap_or(&app.components[0])
}

fn app_component(app: &App, c: &Component) -> Selector {
    Selector::and([eq("app", &app.name), eq("component", c.kind.name())])
}

struct Gen {
    o: Origin,
    set: PolicySet,
}

impl Gen {
    fn peer(&self, spec: PeerSpec) -> Peer {
        Peer {
            spec,
            origin: self.o.clone(),
        }
    }

    fn rule(&self, action: Action, peers: Vec<PeerSpec>, ports: Vec<PortSpec>) -> Rule {
        Rule {
            action,
            name: None,
            peers: peers.into_iter().map(|p| self.peer(p)).collect(),
            ports,
            app: None,
            l7: Vec::new(),
            origin: self.o.clone(),
        }
    }

    fn np_peer(&self, pods: Option<Selector>, namespaces: Option<Selector>) -> NpPeer {
        NpPeer {
            pod_selector: pods,
            namespace_selector: namespaces,
            ip_block: None,
            origin: self.o.clone(),
        }
    }

    fn np_rule(&self, peers: Vec<NpPeer>, ports: Vec<PortSpec>) -> NpRule {
        NpRule {
            peers: Some(peers),
            ports: (!ports.is_empty()).then_some(ports),
            origin: self.o.clone(),
        }
    }

    fn groups(&mut self) {
        let groups = [
            ("prod", ns_sel(eq("env", "prod"), None), Mode::Monitor),
            ("pci", ns_sel(eq("compliance", "pci"), None), Mode::Protect),
            ("frontends", sel(eq("tier", "frontend")), Mode::Monitor),
            ("databases", sel(eq("tier", "data")), Mode::Protect),
            (
                "platform",
                in_namespaces(&[KUBE_SYSTEM, MONITORING, INGRESS], None),
                Mode::Discover,
            ),
        ];
        for (name, members, mode) in groups {
            self.set.groups.push(Group {
                name: name.to_string(),
                members,
                mode,
                sensors: Vec::new(),
                inspect: Default::default(),
                origin: self.o.clone(),
            });
        }
    }

    fn policy(
        &mut self,
        name: &str,
        namespace: Option<&str>,
        priority: i32,
        applies_to: Vec<PeerSpec>,
        ingress: Vec<Rule>,
        egress: Vec<Rule>,
    ) {
        self.set.policies.push(Policy {
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
            priority,
            applies_to,
            ingress,
            egress,
            origin: self.o.clone(),
        });
    }

    /// The `i`th cluster-wide guard rail.
    fn global(&mut self, i: usize) {
        use Action::*;
        use PeerSpec::{Cidr, Entity as E, Group as G, Workloads as W};
        let dns = W(in_namespaces(
            &[KUBE_SYSTEM],
            Some(eq("k8s-app", "kube-dns")),
        ));
        let private = ["10.0.0.0/8", "192.168.0.0/16"];
        match i {
            0 => {
                let r = self.rule(Deny, vec![W(ns_sel(eq("env", "dev"), None))], vec![]);
                self.policy(
                    "deny-dev-to-prod",
                    None,
                    100,
                    vec![G("prod".into())],
                    vec![r],
                    vec![],
                );
            }
            1 => {
                let r = self.rule(Allow, vec![dns], vec![udp(53), tcp(53)]);
                self.policy("allow-dns", None, 50, vec![], vec![], vec![r]);
            }
            2 => {
                let from = W(in_namespaces(&[MONITORING], Some(eq("app", "prometheus"))));
                let r = self.rule(Allow, vec![from], vec![named("metrics", None)]);
                self.policy("allow-prometheus-scrape", None, 60, vec![], vec![r], vec![]);
            }
            3 => {
                let rules = vec![
                    self.rule(Log, vec![E(Entity::World)], vec![]),
                    self.rule(
                        Allow,
                        vec![Cidr(cidr("10.0.0.0/8", &["10.255.0.0/16"]))],
                        vec![],
                    ),
                    self.rule(Deny, vec![E(Entity::World)], vec![]),
                ];
                self.policy(
                    "pci-egress-lockdown",
                    None,
                    10,
                    vec![G("pci".into())],
                    vec![],
                    rules,
                );
            }
            4 => {
                let from = W(in_namespaces(&[INGRESS], None));
                let r = self.rule(Allow, vec![from], vec![named("http", Some(Protocol::Tcp))]);
                let to = vec![W(sel(eq("tier", "frontend")))];
                self.policy("allow-ingress-controller", None, 70, to, vec![r], vec![]);
            }
            5 => {
                let rules = vec![
                    self.rule(Log, vec![E(Entity::Cluster)], vec![]),
                    self.rule(Pass, vec![], vec![]),
                ];
                self.policy(
                    "databases-to-networkpolicy",
                    None,
                    200,
                    vec![G("databases".into())],
                    rules,
                    vec![],
                );
            }
            6 => {
                let r = self.rule(Deny, vec![E(Entity::World)], vec![]);
                let to = vec![W(sel(eq("tier", "backend")))];
                self.policy("deny-world-to-backends", None, 150, to, vec![r], vec![]);
            }
            7 => {
                let r = self.rule(Log, vec![Cidr(cidr("0.0.0.0/0", &private))], vec![]);
                self.policy("log-internet-egress", None, 900, vec![], vec![], vec![r]);
            }
            8 => {
                let r = self.rule(Allow, vec![E(Entity::Host)], vec![tcp_range(8080, 8090)]);
                self.policy(
                    "allow-node-health-checks",
                    None,
                    80,
                    vec![],
                    vec![r],
                    vec![],
                );
            }
            9 => {
                let r = self.rule(Deny, vec![Cidr(cidr("169.254.169.254/32", &[]))], vec![]);
                self.policy("block-cloud-metadata", None, 5, vec![], vec![], vec![r]);
            }
            10 => {
                let from = W(ns_sel(eq("env", "prod"), Some(eq("tier", "backend"))));
                let r = self.rule(Allow, vec![from], vec![named("kafka", Some(Protocol::Tcp))]);
                let to = vec![W(sel(eq("component", "queue")))];
                self.policy("kafka-clients", None, 300, to, vec![r], vec![]);
            }
            _ => {
                let r = self.rule(Deny, vec![W(ns_sel(eq("env", "prod"), None))], vec![]);
                let to = vec![W(ns_sel(eq("env", "stage"), None))];
                self.policy("stage-isolation", None, 120, to, vec![r], vec![]);
            }
        }
    }

    /// `default-deny` for a namespace: every pod isolated for ingress; with `egress`,
    /// also for egress except DNS (the usual "default-deny-all" recipe).
    fn default_deny(&mut self, ns: &str, egress: bool) {
        let dns = self.np_peer(
            Some(eq("k8s-app", "kube-dns")),
            Some(eq(NAMESPACE_NAME_LABEL, KUBE_SYSTEM)),
        );
        let (types, egress_rules) = if egress {
            (
                vec![PolicyType::Ingress, PolicyType::Egress],
                Some(vec![self.np_rule(vec![dns], vec![udp(53), tcp(53)])]),
            )
        } else {
            (vec![PolicyType::Ingress], None)
        };
        self.set.network_policies.push(NetworkPolicy {
            name: if egress {
                "default-deny-all"
            } else {
                "default-deny-ingress"
            }
            .to_string(),
            namespace: ns.to_string(),
            pod_selector: Selector::All,
            policy_types: Some(types),
            ingress: None,
            egress: egress_rules,
            origin: self.o.clone(),
        });
    }

    /// One of seven NetworkPolicy shapes about `app`.
    fn app_network_policy(
        &mut self,
        template: usize,
        ns: &str,
        app: &App,
        (team, other): (&str, &str),
        name: &str,
        rng: &mut Rng,
    ) {
        let a = eq("app", &app.name);
        let mut np = NetworkPolicy {
            name: String::new(),
            namespace: ns.to_string(),
            pod_selector: a.clone(),
            policy_types: None,
            ingress: None,
            egress: None,
            origin: self.o.clone(),
        };
        match template {
            0 => {
                // The data store accepts its own app's api and workers on its named port.
                let c = component(app, &[Kind::Db, Kind::Cache, Kind::Queue]);
                np.name = format!("{name}-{}-access", c.kind.name());
                np.pod_selector = app_component(app, c);
                let clients = Selector::from_k8s(
                    [("app", app.name.as_str())],
                    &[req("component", K8sOperator::In, &["api", "worker"])],
                );
                let port = named(c.kind.ports()[0].0, Some(Protocol::Tcp));
                np.ingress =
                    Some(vec![self.np_rule(
                        vec![self.np_peer(Some(clients), None)],
                        vec![port],
                    )]);
            }
            1 => {
                // The api accepts its frontend, and one app of another team.
                let c = component(app, &[Kind::Api, Kind::Web]);
                np.name = format!("{name}-{}-ingress", c.kind.name());
                np.pod_selector = app_component(app, c);
                np.policy_types = Some(vec![PolicyType::Ingress]);
                let front = Selector::and([a.clone(), eq("tier", "frontend")]);
                np.ingress = Some(vec![
                    self.np_rule(vec![self.np_peer(Some(front), None)], vec![tcp(8080)]),
                    self.np_rule(
                        vec![self.np_peer(Some(eq("app", other)), Some(eq("team", team)))],
                        vec![named("http", Some(Protocol::Tcp))],
                    ),
                ]);
            }
            2 => {
                // Egress lockdown: own app, DNS, HTTPS to the internet.
                np.name = format!("{name}-egress");
                np.policy_types = Some(vec![PolicyType::Egress]);
                let dns = self.np_peer(
                    Some(eq("k8s-app", "kube-dns")),
                    Some(eq(NAMESPACE_NAME_LABEL, KUBE_SYSTEM)),
                );
                let mut internet = self.np_peer(None, None);
                internet.ip_block = Some(cidr("0.0.0.0/0", &["10.0.0.0/8", "192.168.0.0/16"]));
                np.egress = Some(vec![
                    self.np_rule(vec![self.np_peer(Some(a.clone()), None)], vec![]),
                    self.np_rule(vec![dns], vec![udp(53), tcp(53)]),
                    self.np_rule(vec![internet], vec![tcp(443)]),
                ]);
            }
            3 => {
                // matchExpressions on both sides, a port range (endPort).
                np.name = format!("{name}-expressions");
                np.pod_selector = Selector::from_k8s(
                    [("app", app.name.as_str())],
                    &[
                        req("tier", K8sOperator::In, &["frontend", "backend"]),
                        req("canary", K8sOperator::DoesNotExist, &[]),
                    ],
                );
                let from = Selector::from_k8s(
                    [],
                    &[
                        req("env", K8sOperator::NotIn, &["dev"]),
                        req("version", K8sOperator::Exists, &[]),
                    ],
                );
                np.ingress = Some(vec![self.np_rule(
                    vec![self.np_peer(Some(from), None)],
                    vec![tcp_range(8000, 8999)],
                )]);
            }
            4 => {
                // Office and load-balancer ranges by ipBlock, plus the ingress controller.
                let c = component(app, &[Kind::Web, Kind::Api]);
                np.name = format!("{name}-{}-external", c.kind.name());
                np.pod_selector = app_component(app, c);
                let mut office = self.np_peer(None, None);
                office.ip_block = Some(cidr("172.16.0.0/12", &["172.16.5.0/24"]));
                let lb = self.np_peer(None, Some(eq(NAMESPACE_NAME_LABEL, INGRESS)));
                let ports = if rng.chance(0.5) {
                    vec![tcp(8080), tcp(8443)]
                } else {
                    vec![tcp_range(30000, 32767)]
                };
                np.ingress = Some(vec![self.np_rule(vec![office, lb], ports)]);
            }
            6 => {
                // The application's pods may talk to each other, on any port.
                np.name = format!("{name}-internal");
                np.ingress = Some(vec![
                    self.np_rule(vec![self.np_peer(Some(a.clone()), None)], vec![]),
                ]);
            }
            _ => {
                // Prometheus scrapes the app's metrics port.
                np.name = format!("{name}-metrics");
                let prom = self.np_peer(
                    Some(eq("app", "prometheus")),
                    Some(eq(NAMESPACE_NAME_LABEL, MONITORING)),
                );
                np.ingress =
                    Some(vec![self.np_rule(
                        vec![prom],
                        vec![named("metrics", Some(Protocol::Tcp))],
                    )]);
            }
        }
        self.set.network_policies.push(np);
    }

    /// One of four namespaced bulkhead Policy shapes about `app`; each ends in Pass so
    /// that what it does not decide goes on to the NetworkPolicy tier.
    #[allow(clippy::too_many_arguments)]
    fn app_policy(
        &mut self,
        template: usize,
        ns: &str,
        app: &App,
        (team, other): (&str, &str),
        dev_ns: &str,
        name: &str,
        rng: &mut Rng,
    ) {
        use Action::*;
        use PeerSpec::{Cidr, Entity as E, Group as G, Workloads as W};
        let a = eq("app", &app.name);
        let priority = 500 + rng.below(1000) as i32;
        let pass = self.rule(Pass, vec![], vec![]);
        match template {
            0 => {
                let c = component(app, &[Kind::Api, Kind::Web]);
                let rules = vec![
                    self.rule(
                        Allow,
                        vec![G("frontends".into())],
                        vec![tcp_range(8080, 8090)],
                    ),
                    self.rule(Log, vec![W(sel(a.clone()))], vec![]),
                    pass,
                ];
                let to = vec![W(sel(app_component(app, c)))];
                self.policy(
                    &format!("{name}-api"),
                    Some(ns),
                    priority,
                    to,
                    rules,
                    vec![],
                );
            }
            1 => {
                let c = component(app, &[Kind::Db, Kind::Cache, Kind::Queue]);
                let clients = Selector::and([a.clone(), eq("tier", "backend")]);
                let rules = vec![
                    self.rule(
                        Allow,
                        vec![W(sel(clients))],
                        vec![named(c.kind.ports()[0].0, None)],
                    ),
                    self.rule(Deny, vec![W(ns_sel(eq("env", "dev"), None))], vec![]),
                    pass,
                ];
                let to = vec![W(sel(Selector::and([a.clone(), in_("tier", &["data"])])))];
                self.policy(
                    &format!("{name}-data"),
                    Some(ns),
                    priority,
                    to,
                    rules,
                    vec![],
                );
            }
            2 => {
                let rules = vec![
                    self.rule(
                        Allow,
                        vec![Cidr(cidr("203.0.113.0/24", &[]))],
                        vec![tcp(443)],
                    ),
                    self.rule(Allow, vec![W(sel(a.clone()))], vec![]),
                    self.rule(Log, vec![E(Entity::World)], vec![]),
                    pass,
                ];
                self.policy(
                    &format!("{name}-egress"),
                    Some(ns),
                    priority,
                    vec![W(sel(a))],
                    vec![],
                    rules,
                );
            }
            _ => {
                let c = component(app, &[Kind::Api, Kind::Web, Kind::Worker]);
                let partner = W(ns_sel(eq("team", team), Some(eq("app", other))));
                let rules = vec![
                    self.rule(Allow, vec![partner], vec![tcp(8080)]),
                    self.rule(Deny, vec![W(in_namespaces(&[dev_ns], None))], vec![]),
                    pass,
                ];
                let to = vec![W(sel(app_component(app, c)))];
                self.policy(
                    &format!("{name}-partners"),
                    Some(ns),
                    priority,
                    to,
                    rules,
                    vec![],
                );
            }
        }
    }
}
