//! The kernel data plane: bulkhead's resolved policy as nftables.
//!
//! [`render`] turns the engine's per-identity resolution into a desired [`Ruleset`] for
//! one node; [`diff`] turns two rulesets into one atomic nftables transaction;
//! [`kernel`] reads what is in the kernel and applies transactions (the only I/O).
//!
//! Layout in the kernel (table `inet bulkhead`), designed so that the ruleset grows with
//! policies and identities, never with workloads or pairs of workloads:
//! - maps `id4`/`id6`: address -> identity number. On a new connection the forward hook
//!   puts the source identity in `meta mark` and the destination identity in `ct mark`;
//! - sets `s_*`: the identity numbers a selector selects; `n4_*`/`n6_*`: (address, port)
//!   pairs of a named port; `c4_*`/`c6_*`: CIDR peers;
//! - verdict maps `e_dispatch`/`i_dispatch`: identity -> the chain of its policy
//!   signature (the ordered policies, NetworkPolicies and mode that apply to it), which
//!   jumps only into the chains of those policies.
//!
//! So a new replica, a removed one, or a relabelled workload changes map and set elements
//! only; a new connection evaluates only the rules of its own identities; established
//! traffic is accepted by conntrack before any of this.
#![forbid(unsafe_code)]

pub mod batch;
pub mod diff;
pub mod ids;
pub mod kernel;
pub mod names;
pub mod netlink;
pub mod node;
pub mod render;
mod rules;
pub mod ruleset;

pub use diff::{Transaction, diff};
pub use ids::KernelIds;
pub use render::{RenderOptions, render};
pub use ruleset::{Elem, Ruleset, SetKind};
