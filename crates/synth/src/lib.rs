//! Deterministic synthetic clusters for benchmarks and scale tests.
//!
//! [`cluster`]`(workloads, policies, seed)` returns a [`Bundle`] (inventory + policy)
//! that looks like a real multi-tenant Kubernetes cluster, in the spirit of Calico's
//! and Cilium's scale tests. The same arguments always give the same bundle (a seeded
//! xorshift generator, no global RNG), on every platform.
//!
//! # The model
//!
//! Inventory ([`inventory`]):
//! - **Namespaces**: one per ~300 workloads, named `team-NNN-ENV-I`, labelled `team`
//!   (three namespaces per team) and `env` (`prod` 1/2, `stage` 1/4, `dev` 1/4); a
//!   fifth of the `prod` ones are `compliance=pci`. Plus the platform namespaces
//!   `kube-system` (kube-dns), `monitoring` (Prometheus) and `ingress-nginx`.
//! - **Applications** of 2 to 5 components (web, api, worker, db, cache, queue), each
//!   placed in a random namespace, until the workload budget is spent.
//! - **Deployments**: one per component, 1 to 30 replicas (mean 10, skewed to small);
//!   15% of the versioned ones also run a 1-2 replica `v2` canary. All replicas of a
//!   Deployment share one label set, so **identities ≈ workloads / 10**.
//! - **Pods** carry 3 to 6 labels: `app`, `component`, `tier` always; `env` (80%),
//!   `team` (50%), `version` (70% of Deployments). Named container ports by component
//!   (`http` 8080, `grpc` 9090, `metrics`, `postgres` 5432, `redis` 6379, `kafka` 9092);
//!   one IPv4 address each from 10.0.0.0/8 ([`inventory::pod_ip`]), and a node (one per
//!   50 pods, addresses in 192.168.0.0/16).
//!
//! Policy ([`policies`]); `policies` counts bulkhead Policies plus NetworkPolicies:
//! - five **Groups** (`prod` Monitor, `pci` Protect, `frontends` Monitor, `databases`
//!   Protect, `platform` Discover) by namespaceSelector, selector or namespace list;
//!   ungrouped workloads are in Discover;
//! - up to [`policies::MAX_GLOBAL`] **cluster-wide Policies** (one per ten policies):
//!   allow DNS, allow Prometheus scrapes (a named port without protocol), deny dev ->
//!   prod, PCI egress lockdown (Log / Allow CIDR with except / Deny world), ingress
//!   controller -> frontends, Pass for databases, deny world -> backends, log internet
//!   egress, node health checks on a port range, block cloud metadata, kafka clients,
//!   stage isolation; priorities, all four actions, peers by group, selector,
//!   namespaceSelector, namespace list, CIDR and entity. Their number is bounded, as
//!   in real clusters: they are the guard rails; the bulk is per application;
//! - per-namespace **default-deny** NetworkPolicies (ingress; a third of `prod` ones
//!   also egress except DNS), for up to a quarter of the budget;
//! - the rest **per application**, over every application in a shuffled order. The
//!   first policy of half the applications is the everyday "the app's pods may talk to
//!   each other" NetworkPolicy; otherwise 70% are NetworkPolicies of seven shapes
//!   (that one, data-store access on a named port with
//!   matchExpressions, api ingress from its frontend and from another team's app by
//!   namespaceSelector + podSelector, egress lockdown with DNS and an ipBlock with
//!   excepts, matchExpressions with `In`/`NotIn`/`Exists`/`DoesNotExist` and an
//!   `endPort` range, ipBlock + ingress-controller namespace, Prometheus on the named
//!   `metrics` port), and 30% namespaced bulkhead Policies of four shapes (group peer
//!   with a port range, named port without protocol, CIDR egress, cross-team peers and
//!   a namespace-list Deny), each ending in Pass so the NetworkPolicy tier still counts.
//!
//! Every per-application policy selects a bounded number of identities (its
//! application's, or one other application's), so the resolved state grows linearly in
//! policies + identities; only the bounded set of cluster-wide policies selects a share
//! of the whole cluster.
//!
//! [`scaled`] multiplies every workload into N replicas with the same labels: the
//! identities, and so the resolved policy, must not change. [`questions`] draws
//! verdict questions with a realistic share of allowed traffic (about a fifth).
#![forbid(unsafe_code)]

pub mod inventory;
pub mod policies;
pub mod rng;

use std::collections::BTreeMap;

use bulkhead_model::{Inventory, L4};
use bulkhead_policy::spec::Bundle;
use bulkhead_policy::{Connection, Endpoint, Engine};

pub use rng::Rng;

/// A synthetic cluster of `workloads` workloads and `policies` policies (bulkhead
/// Policies + Kubernetes NetworkPolicies), fully determined by `seed`.
pub fn cluster(workloads: usize, policies: usize, seed: u64) -> Bundle {
    let mut rng = Rng::new(seed);
    let (topo, namespaces, workloads, nodes) = inventory::generate(workloads, &mut rng);
    let policy = policies::generate(&topo, policies, &mut rng);
    Bundle {
        inventory: Inventory {
            namespaces,
            workloads,
            nodes,
        },
        policy,
        tests: Vec::new(),
        lab: None,
    }
}

/// Every workload of `bundle` becomes `replicas` workloads with the same namespace,
/// labels and ports (names `NAME-rI`, fresh pod addresses). Policy is unchanged.
pub fn scaled(bundle: &Bundle, replicas: usize) -> Bundle {
    let mut workloads = Vec::with_capacity(bundle.inventory.workloads.len() * replicas);
    for w in &bundle.inventory.workloads {
        for r in 0..replicas {
            let mut c = w.clone();
            if replicas > 1 {
                c.key.name = format!("{}-r{r}", w.key.name);
            }
            c.ips = vec![inventory::pod_ip(workloads.len())];
            workloads.push(c);
        }
    }
    Bundle {
        inventory: Inventory {
            namespaces: bundle.inventory.namespaces.clone(),
            workloads,
            nodes: bundle.inventory.nodes.clone(),
        },
        policy: bundle.policy.clone(),
        tests: bundle.tests.clone(),
        lab: None,
    }
}

/// One question for the verdict function: may workload `src` open `l4` on `dst`
/// (indices into `bundle.inventory.workloads`)?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub src: usize,
    pub dst: usize,
    pub l4: L4,
}

impl Question {
    /// The connection this question asks about, given [`endpoints`] of the engine.
    pub fn connection<'a>(&self, ends: &'a [Endpoint]) -> Connection<'a> {
        Connection {
            src: &ends[self.src],
            dst: &ends[self.dst],
            l4: self.l4,
            l7: None,
        }
    }
}

/// The engine's endpoint for each workload of `bundle`, in the bundle's order (so that
/// [`Question`] indices work). Panics if the engine does not know one of them.
pub fn endpoints(engine: &Engine, bundle: &Bundle) -> Vec<Endpoint> {
    bundle
        .inventory
        .workloads
        .iter()
        .map(|w| Endpoint::Workload {
            id: engine
                .workload_id(&w.key)
                .expect("the engine holds the bundle's workloads"),
            addr: None,
        })
        .collect()
}

/// The services questions ask about: the synthetic clusters' ports, and one nobody opens.
pub const SERVICES: [&str; 7] = [
    "TCP/8080", "TCP/5432", "UDP/53", "TCP/443", "TCP/9100", "TCP/6379", "TCP/22",
];

/// `n` questions about random pod pairs, in three equal parts: two pods of one
/// application on one of the destination's container ports (the traffic clusters
/// mostly carry), two pods of one namespace, and any two pods, the last two on a
/// service from [`SERVICES`]. Determined by `seed`.
pub fn questions(bundle: &Bundle, n: usize, seed: u64) -> Vec<Question> {
    let ws = &bundle.inventory.workloads;
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_app: BTreeMap<(&str, Option<&str>), Vec<usize>> = BTreeMap::new();
    for (i, w) in ws.iter().enumerate() {
        by_ns.entry(w.key.namespace.as_str()).or_default().push(i);
        by_app
            .entry((w.key.namespace.as_str(), w.labels.get("app")))
            .or_default()
            .push(i);
    }
    let services: Vec<L4> = SERVICES
        .iter()
        .map(|s| s.parse().expect("valid probe"))
        .collect();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let src = rng.below(ws.len());
            let (ns, app) = (ws[src].key.namespace.as_str(), ws[src].labels.get("app"));
            let (dst, l4) = match i % 3 {
                0 => {
                    let dst = *rng.pick(&by_app[&(ns, app)]);
                    let l4 = match ws[dst].ports.as_slice() {
                        [] => *rng.pick(&services),
                        ports => {
                            let p = rng.pick(ports);
                            L4::Port {
                                protocol: p.protocol,
                                port: p.port,
                            }
                        }
                    };
                    (dst, l4)
                }
                1 => (*rng.pick(&by_ns[ns]), *rng.pick(&services)),
                _ => (rng.below(ws.len()), *rng.pick(&services)),
            };
            Question { src, dst, l4 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_and_sized() {
        let a = cluster(3000, 200, 42);
        assert_eq!(a, cluster(3000, 200, 42));
        assert_ne!(a, cluster(3000, 200, 43));
        assert_eq!(a.inventory.workloads.len(), 3000);
        let p = &a.policy;
        assert_eq!(p.policies.len() + p.network_policies.len(), 200);
        let keys: HashSet<_> = a.inventory.workloads.iter().map(|w| &w.key).collect();
        assert_eq!(keys.len(), 3000, "workload names are unique");
        let ips: HashSet<_> = a.inventory.workloads.iter().map(|w| w.ips[0]).collect();
        assert_eq!(ips.len(), 3000, "addresses are unique");
        for w in &a.inventory.workloads {
            assert!((2..=6).contains(&w.labels.len()), "{}", w.labels);
        }
    }

    #[test]
    fn compiles_with_about_ten_replicas_per_identity() {
        let b = cluster(20_000, 500, 1);
        let s = Engine::new(&b).expect("synthetic policy compiles").stats();
        assert_eq!(s.workloads, 20_000);
        let per = s.workloads as f64 / s.identities as f64;
        assert!((6.0..14.0).contains(&per), "{per} workloads per identity");
    }

    #[test]
    fn scaling_replicas_keeps_identities_and_resolution() {
        let b = cluster(1000, 100, 7);
        let one = Engine::new(&b).unwrap().stats();
        let ten = Engine::new(&scaled(&b, 10)).unwrap().stats();
        assert_eq!(ten.workloads, 10 * one.workloads);
        assert_eq!(ten.identities, one.identities);
        assert_eq!(ten.resolved_size(), one.resolved_size());
        assert_eq!(scaled(&b, 1), b);
    }
}
