//! An independent Kubernetes NetworkPolicy conformance suite.
//!
//! - `conformance/scenarios/<NN-name>/` (at the top of the repository) holds plain
//!   Kubernetes YAML — `namespaces.yaml`, `pods.yaml`, `policies.yaml` — and a
//!   hand-written `expected.yaml` saying which connections must be allowed.
//! - [`oracle_matrix`] is a naive evaluator written straight from the Kubernetes
//!   documentation; the `oracle_vs_expected` test holds it to the hand-written
//!   expectations.
//! - [`random_scenario`] makes small random scenarios for differential testing of
//!   the real engine against the oracle.
//!
//! This crate shares no code with the policy engine on purpose: a bug copied into
//! both would agree with itself.
//!
//! ```no_run
//! use bulkhead_conformance::{diff, expected_matrix, load_scenario, oracle_matrix, scenario_dirs};
//!
//! for dir in scenario_dirs() {
//!     let expected = expected_matrix(&dir).unwrap();
//!     let scenario = load_scenario(&dir).unwrap();
//!     let probes = bulkhead_conformance::parse_probes(&expected.probes).unwrap();
//!     assert!(diff(&expected, &oracle_matrix(&scenario, &probes)).is_empty());
//! }
//! ```
#![forbid(unsafe_code)]

pub mod expect;
pub mod matrix;
pub mod oracle;
pub mod random;
pub mod scenario;

use std::path::{Path, PathBuf};

pub use expect::{Expectation, expected_matrix};
pub use matrix::{DEFAULT_PROBES, Matrix, Probe, Protocol, diff, pair_key, parse_probes};
pub use oracle::oracle_matrix;
pub use random::{RANDOM_PROBES, random_scenario};
pub use scenario::{Error, Scenario, load_scenario};

/// The directory holding every scenario: `<repo>/conformance/scenarios`.
pub fn scenarios_root() -> PathBuf {
    // The running test's package first (cargo sets CARGO_MANIFEST_DIR when it runs a
    // test, and every package sits two levels below the root): a shared target
    // directory may hold this crate as built from another checkout, whose path
    // `env!` baked in.
    let at_run_time = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|dir| Path::new(&dir).join("../../conformance/scenarios"))
        .filter(|p| p.is_dir());
    at_run_time.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/scenarios")
    })
}

/// Every scenario directory, sorted by name (so by their `NN-` prefix).
pub fn scenario_dirs() -> Vec<PathBuf> {
    let root = scenarios_root();
    let entries = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list scenarios in {}: {e}", root.display()));
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}
