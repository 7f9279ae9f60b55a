//! bulkhead's policy engine: the one evaluation core.
//!
//! - [`spec`]: policy documents as written (bulkhead kinds and Kubernetes NetworkPolicy);
//! - [`compile`]: every semantic rule of the language, applied once;
//! - [`identity`] and [`engine`]: resolution per identity, kept up to date incrementally;
//! - [`verdict`]: the verdict function the analyzer, the data plane and the proxy share;
//! - [`l7`]: application protocols and layer-7 conditions.
#![forbid(unsafe_code)]

pub mod compile;
pub mod engine;
pub mod explain;
pub mod identity;
pub mod l7;
pub mod response;
pub mod selectors;
pub mod sensor;
pub mod spec;
pub mod verdict;

pub use compile::{CompileError, Direction, RuleId, Tier};
pub use engine::{EndpointPolicy, Engine, Stats, WorkloadId};
pub use verdict::{Connection, Decision, Endpoint, Side, Verdict};
