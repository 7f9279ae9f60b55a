//! Learning policy from traffic, and replaying recorded traffic against a policy.
//!
//! - [`observe`]: flow records (any iterator of [`bulkhead_record::FlowRecord`], from
//!   `flows.jsonl` or the store) aggregated into distinct conversations;
//! - [`labels`]: which labels identify a workload (replicas and CI runs collapse into one
//!   group) and the shortest selector that picks each group;
//! - [`propose`]: the proposed policy in bulkhead's YAML (Groups and Policies of
//!   group-to-group Allow rules with ports and the application protocol);
//! - [`eval`]: coverage of a proposal and what-if replay, every verdict from the one
//!   policy engine ([`bulkhead_policy::Engine`]);
//! - [`promote`]: mode transitions Discover -> Monitor -> Protect.
//!
//! Pure: no I/O. See `docs/learn.md`.
#![forbid(unsafe_code)]

pub mod diff;
pub mod eval;
pub mod labels;
pub mod observe;
pub mod promote;
pub mod propose;

pub use eval::{Coverage, Replay, coverage, replay};
pub use observe::Observations;
pub use promote::{promote, set_group_mode};
pub use propose::{LearnError, Options, Proposal, learn};
