//! Offline analysis, all of it asking the one verdict function of `bulkhead-policy`:
//! reachability matrix, diff between policy versions, blast radius, lint, and policy
//! tests. Pure: inputs are an [`Engine`](bulkhead_policy::Engine); outputs are data the
//! CLI renders.
#![forbid(unsafe_code)]

pub mod blast;
pub mod diff;
pub mod endpoint;
pub mod lint;
pub mod matrix;
pub mod pci;
pub mod policytest;

pub use matrix::{Family, Matrix, default_probes, matrix};
