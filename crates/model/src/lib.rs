//! The vocabulary every other bulkhead crate speaks: labels, selectors, workloads,
//! namespaces, nodes, layer-4 protocols and ports, CIDR peers.
//!
//! Everything here is plain data plus pure functions; no I/O, no global state, so
//! the policy engine, the analyzer and the data plane agree by construction.
#![forbid(unsafe_code)]

pub mod l4;
pub mod labels;
pub mod net;
pub mod selector;
pub mod workload;

pub use l4::{L4, PortRange, Protocol};
pub use labels::Labels;
pub use net::CidrBlock;
pub use selector::Selector;
pub use workload::{ContainerPort, Inventory, Namespace, Node, Workload, WorkloadKey};

/// The label every namespace carries implicitly (Kubernetes >= 1.21 sets it on
/// every namespace, and NetworkPolicy authors rely on it).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
