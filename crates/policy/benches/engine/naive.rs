//! The baseline: a naive NetworkPolicy evaluator that re-walks every policy for every
//! question, straight from the Kubernetes documentation. It shares nothing with the
//! engine but the model types (labels, selectors, CIDR blocks), and it only handles
//! what a NetworkPolicy-only cluster needs (no bulkhead tier, every pod in Discover).

use std::collections::HashMap;

use bulkhead_model::{L4, Labels, Protocol, Workload};
use bulkhead_policy::spec::{Bundle, NetworkPolicy, NpPeer, NpRule, PolicyType, PortSel, PortSpec};

pub struct Naive<'a> {
    policies: &'a [NetworkPolicy],
    namespace_labels: HashMap<&'a str, &'a Labels>,
}

#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Ingress,
    Egress,
}

impl<'a> Naive<'a> {
    pub fn new(b: &'a Bundle) -> Naive<'a> {
        assert!(
            b.policy.policies.is_empty() && b.policy.groups.is_empty(),
            "the naive evaluator only knows NetworkPolicy"
        );
        Naive {
            policies: &b.policy.network_policies,
            namespace_labels: b
                .inventory
                .namespaces
                .iter()
                .map(|n| (n.name.as_str(), &n.labels))
                .collect(),
        }
    }

    /// May `src` open `l4` on `dst`? Both directions must allow it.
    pub fn allowed(&self, src: &Workload, dst: &Workload, l4: L4) -> bool {
        src.key == dst.key
            || (self.side(src, Dir::Egress, dst, dst, l4)
                && self.side(dst, Dir::Ingress, src, dst, l4))
    }

    /// One direction of `me`: not isolated by any policy, or some rule of a policy
    /// that isolates it allows `peer` on the port.
    fn side(&self, me: &Workload, dir: Dir, peer: &Workload, dst: &Workload, l4: L4) -> bool {
        let mut isolated = false;
        for np in self.policies {
            if np.namespace != me.key.namespace || !np.pod_selector.matches(&me.labels) {
                continue;
            }
            let (ingress, egress) = policy_types(np);
            let (on, rules) = match dir {
                Dir::Ingress => (ingress, &np.ingress),
                Dir::Egress => (egress, &np.egress),
            };
            if !on {
                continue;
            }
            isolated = true;
            let allows = |r: &NpRule| self.peers_match(r, np, peer) && ports_match(r, dst, l4);
            if rules.iter().flatten().any(allows) {
                return true;
            }
        }
        !isolated
    }

    fn peers_match(&self, r: &NpRule, np: &NetworkPolicy, peer: &Workload) -> bool {
        match &r.peers {
            None => true,
            Some(peers) if peers.is_empty() => true,
            Some(peers) => peers.iter().any(|p| self.peer_matches(p, np, peer)),
        }
    }

    fn peer_matches(&self, p: &NpPeer, np: &NetworkPolicy, peer: &Workload) -> bool {
        if let Some(block) = &p.ip_block {
            return peer.ips.first().is_some_and(|ip| block.contains(ip));
        }
        let namespace_ok = match &p.namespace_selector {
            Some(s) => self
                .namespace_labels
                .get(peer.key.namespace.as_str())
                .is_some_and(|l| s.matches(*l)),
            None => peer.key.namespace == np.namespace,
        };
        namespace_ok
            && p.pod_selector
                .as_ref()
                .is_none_or(|s| s.matches(&peer.labels))
    }
}

/// Kubernetes defaulting: Ingress always; Egress when there are egress rules.
fn policy_types(np: &NetworkPolicy) -> (bool, bool) {
    match &np.policy_types {
        Some(t) if !t.is_empty() => (
            t.contains(&PolicyType::Ingress),
            t.contains(&PolicyType::Egress),
        ),
        _ => (true, np.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

fn ports_match(r: &NpRule, dst: &Workload, l4: L4) -> bool {
    match &r.ports {
        None => true,
        Some(ports) if ports.is_empty() => true,
        Some(ports) => ports.iter().any(|p| port_matches(p, dst, l4)),
    }
}

fn port_matches(p: &PortSpec, dst: &Workload, l4: L4) -> bool {
    let L4::Port { protocol, port } = l4 else {
        return false;
    };
    if p.protocol.unwrap_or(Protocol::Tcp) != protocol {
        return false;
    }
    match &p.port {
        PortSel::Any => true,
        PortSel::Range(r) => r.contains(port),
        PortSel::Named(n) => dst.named_port(n, protocol) == Some(port),
        PortSel::Icmp { .. } => false,
    }
}
