//! The inventory half of a synthetic cluster: namespaces, applications, Deployments
//! and their pods, nodes. Also remembers the structure (which app has which
//! components) so that [`crate::policies`] can write policies about real things.

use std::net::{IpAddr, Ipv4Addr};

use bulkhead_model::{ContainerPort, Labels, Namespace, Node, Protocol, Workload};

use crate::rng::Rng;

/// What a component does; decides its tier, its ports and who talks to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Web,
    Api,
    Worker,
    Db,
    Cache,
    Queue,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Web => "web",
            Kind::Api => "api",
            Kind::Worker => "worker",
            Kind::Db => "db",
            Kind::Cache => "cache",
            Kind::Queue => "queue",
        }
    }

    pub(crate) fn tier(self) -> &'static str {
        match self {
            Kind::Web => "frontend",
            Kind::Api | Kind::Worker => "backend",
            Kind::Db | Kind::Cache | Kind::Queue => "data",
        }
    }

    /// Container ports, named as Helm charts usually name them.
    pub(crate) fn ports(self) -> &'static [(&'static str, u16)] {
        match self {
            Kind::Web => &[("http", 8080), ("metrics", 9100)],
            Kind::Api => &[("http", 8080), ("grpc", 9090), ("metrics", 9100)],
            Kind::Worker => &[("metrics", 9100)],
            Kind::Db => &[("postgres", 5432), ("metrics", 9187)],
            Kind::Cache => &[("redis", 6379), ("metrics", 9121)],
            Kind::Queue => &[("kafka", 9092), ("metrics", 9308)],
        }
    }
}

/// The component shapes applications are drawn from (each is a list of kinds).
const SHAPES: &[&[Kind]] = &[
    &[Kind::Web, Kind::Api, Kind::Db],
    &[Kind::Api, Kind::Db],
    &[Kind::Web, Kind::Api, Kind::Cache, Kind::Db],
    &[Kind::Api, Kind::Worker, Kind::Queue],
    &[Kind::Web, Kind::Api, Kind::Worker, Kind::Cache, Kind::Db],
    &[Kind::Api, Kind::Cache],
    &[Kind::Worker, Kind::Queue, Kind::Db],
];

/// Replica counts of Deployments (mean 10, skewed to small, as in real clusters).
const REPLICAS: &[usize] = &[1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 28, 30];

const WORDS: &[&str] = &[
    "checkout",
    "cart",
    "catalog",
    "payments",
    "ledger",
    "search",
    "reviews",
    "shipping",
    "accounts",
    "billing",
    "notify",
    "media",
    "profile",
    "orders",
    "pricing",
    "inventory",
    "auth",
    "reports",
    "export",
    "gateway",
];

pub(crate) struct Component {
    pub kind: Kind,
}

pub(crate) struct App {
    pub name: String,
    pub components: Vec<Component>,
}

pub(crate) struct Ns {
    pub name: String,
    pub team: String,
    pub env: &'static str,
    pub apps: Vec<App>,
}

/// The cluster's structure, for the policy generator.
pub(crate) struct Topology {
    pub namespaces: Vec<Ns>,
}

/// The fixed platform namespaces (DNS, monitoring, ingress), present in every cluster.
pub(crate) const KUBE_SYSTEM: &str = "kube-system";
pub(crate) const MONITORING: &str = "monitoring";
pub(crate) const INGRESS: &str = "ingress-nginx";

/// Pod `k` (0-based, cluster-wide) gets `10.x.y.z`: the pod CIDR is 10.0.0.0/8.
pub fn pod_ip(k: usize) -> IpAddr {
    let k = k as u32 + 1;
    IpAddr::V4(Ipv4Addr::new(10, (k >> 16) as u8, (k >> 8) as u8, k as u8))
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// Build namespaces, workloads and nodes for `total` workloads.
pub(crate) fn generate(
    total: usize,
    rng: &mut Rng,
) -> (Topology, Vec<Namespace>, Vec<Workload>, Vec<Node>) {
    let user_ns = (total / 300).max(1);
    let nodes: Vec<Node> = (0..(total / 50).max(1))
        .map(|i| Node {
            name: node_name(i),
            labels: [("kubernetes.io/hostname", node_name(i))]
                .into_iter()
                .collect(),
            addresses: vec![IpAddr::V4(Ipv4Addr::new(
                192,
                168,
                (i / 250) as u8,
                (i % 250) as u8 + 1,
            ))],
        })
        .collect();
    let mut b = Builder {
        rng,
        workloads: Vec::with_capacity(total),
        node_count: nodes.len(),
        total,
    };

    let mut topo = Topology {
        namespaces: Vec::new(),
    };
    let mut namespaces = Vec::new();
    for i in 0..user_ns {
        let env = *b.rng.pick(&["prod", "prod", "stage", "dev"]);
        let team = format!("team-{:03}", i / 3);
        let mut labels: Labels = [("team", team.as_str()), ("env", env)]
            .into_iter()
            .collect();
        if env == "prod" && b.rng.chance(0.2) {
            labels.insert("compliance", "pci");
        }
        let name = format!("{team}-{env}-{i}");
        namespaces.push(Namespace::new(&name, labels));
        topo.namespaces.push(Ns {
            name,
            team,
            env,
            apps: Vec::new(),
        });
    }

    // Platform pods first, so every cluster has DNS, Prometheus and an ingress controller.
    let platform = [
        (
            KUBE_SYSTEM,
            "kube-dns",
            (total / 5000).max(2),
            &[("dns", 53u16)][..],
        ),
        (MONITORING, "prometheus", 2, &[("web", 9090)][..]),
        (
            INGRESS,
            "ingress-nginx",
            (total / 2000).max(2),
            &[("http", 80), ("https", 443)][..],
        ),
    ];
    for (ns, app, replicas, ports) in platform {
        namespaces.push(Namespace::new(
            ns,
            [("team", "platform")].into_iter().collect(),
        ));
        let key = if ns == KUBE_SYSTEM { "k8s-app" } else { "app" };
        let labels: Labels = [(key, app), ("tier", "platform")].into_iter().collect();
        for r in 0..replicas.min(total.saturating_sub(b.workloads.len())) {
            let mut ps: Vec<ContainerPort> = ports
                .iter()
                .map(|&(n, p)| port(n, p, Protocol::Tcp))
                .collect();
            if ns == KUBE_SYSTEM {
                ps.push(port("dns-udp", 53, Protocol::Udp));
            }
            b.pod(ns, &format!("{app}-{r}"), labels.clone(), ps);
        }
    }

    // Applications, each in a random namespace, until the budget is spent.
    let mut app_index = 0;
    while b.workloads.len() < total {
        let ni = b.rng.below(user_ns);
        let (ns_name, env, team) = {
            let n = &topo.namespaces[ni];
            (n.name.clone(), n.env, n.team.clone())
        };
        let name = format!("{}-{app_index}", b.rng.pick(WORDS));
        app_index += 1;
        let shape = *b.rng.pick(SHAPES);
        let mut app = App {
            name: name.clone(),
            components: Vec::new(),
        };
        for &kind in shape {
            if b.workloads.len() >= total {
                break;
            }
            // 3 to 6 labels: app, component, tier always; env, team, version often.
            let mut labels: Labels = [
                ("app", name.as_str()),
                ("component", kind.name()),
                ("tier", kind.tier()),
            ]
            .into_iter()
            .collect();
            if b.rng.chance(0.8) {
                labels.insert("env", env);
            }
            if b.rng.chance(0.5) {
                labels.insert("team", team.as_str());
            }
            let versioned = b.rng.chance(0.7);
            let mut versions = vec![("v1", *b.rng.pick(REPLICAS))];
            // A canary: a second, small Deployment of the next version (a second identity).
            if versioned && b.rng.chance(0.15) {
                versions.push(("v2", 1 + b.rng.below(2)));
            }
            for (version, replicas) in versions {
                let mut l = labels.clone();
                if versioned {
                    l.insert("version", version);
                }
                let ports: Vec<ContainerPort> = kind
                    .ports()
                    .iter()
                    .map(|&(n, p)| port(n, p, Protocol::Tcp))
                    .collect();
                for r in 0..replicas {
                    if b.workloads.len() >= total {
                        break;
                    }
                    let pod = format!("{name}-{}-{version}-{r}", kind.name());
                    b.pod(&ns_name, &pod, l.clone(), ports.clone());
                }
            }
            app.components.push(Component { kind });
        }
        topo.namespaces[ni].apps.push(app);
    }
    (topo, namespaces, b.workloads, nodes)
}

fn port(name: &str, port: u16, protocol: Protocol) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        port,
        protocol,
    }
}

struct Builder<'a> {
    rng: &'a mut Rng,
    workloads: Vec<Workload>,
    node_count: usize,
    total: usize,
}

impl Builder<'_> {
    fn pod(&mut self, ns: &str, name: &str, labels: Labels, ports: Vec<ContainerPort>) {
        debug_assert!(self.workloads.len() < self.total);
        let k = self.workloads.len();
        let mut w = Workload::new(ns, name, labels);
        w.ips = vec![pod_ip(k)];
        w.ports = ports;
        w.node = Some(node_name(k % self.node_count));
        self.workloads.push(w);
    }
}
