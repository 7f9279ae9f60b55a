//! The inventory: workloads (pods, containers), namespaces and nodes.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Labels, NAMESPACE_NAME_LABEL, Protocol};

/// `namespace/name`: how users and the matrix name a workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub namespace: String,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A named (or unnamed) port a workload's containers listen on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// One schedulable unit with one network identity: a Kubernetes pod, or a container.
/// Many workloads share one policy identity when their namespace and labels are equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub key: WorkloadKey,
    pub labels: Labels,
    /// Pod IPs, IPv4 and/or IPv6. Empty when not (yet) known: such a workload
    /// matches no CIDR peer.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Workload {
    pub fn new(namespace: &str, name: &str, labels: Labels) -> Self {
        Workload {
            key: WorkloadKey::new(namespace, name),
            labels,
            ips: Vec::new(),
            ports: Vec::new(),
            node: None,
        }
    }

    /// Resolve a named port for one protocol, as Kubernetes does for NetworkPolicy
    /// ports: the container port with that name AND that protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
            .map(|p| p.port)
    }

    /// The address a connection to "the workload" uses in the given family
    /// (`v6 == false`: IPv4), as Kubernetes' `status.podIPs` order does.
    pub fn ip(&self, v6: bool) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| ip.is_ipv6() == v6)
    }
}

/// A namespace and its labels; `kubernetes.io/metadata.name` is always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

impl Namespace {
    /// A namespace with the given labels plus the implicit name label, which
    /// Kubernetes sets and users cannot override.
    pub fn new(name: &str, mut labels: Labels) -> Self {
        labels.insert(NAMESPACE_NAME_LABEL, name);
        Namespace {
            name: name.to_string(),
            labels,
        }
    }
}

/// A node (host): its addresses are the `host` entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    pub addresses: Vec<IpAddr>,
}

/// Everything bulkhead knows about what runs where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub namespaces: Vec<Namespace>,
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub nodes: Vec<Node>,
}
