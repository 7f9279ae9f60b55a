//! bulkhead's policy engine.
//!
//! - [`spec`]: the policy documents as written (bulkhead kinds and Kubernetes NetworkPolicy).
//! - [`l7`]: application protocols and layer-7 conditions.
#![forbid(unsafe_code)]

pub mod l7;
pub mod spec;
