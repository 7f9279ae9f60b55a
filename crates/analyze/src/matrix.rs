//! Reachability of every ordered pair of distinct workloads for a set of probes.

use std::collections::BTreeMap;

use bulkhead_model::L4;
use bulkhead_policy::{Connection, Endpoint, Engine};
use serde::{Deserialize, Serialize};

/// The probes `analyze matrix` uses when none are given.
pub fn default_probes() -> Vec<L4> {
    ["TCP/80", "TCP/81", "UDP/53", "SCTP/80"]
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Which address family a pod-to-pod connection uses (matters only for CIDR peers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    V4,
    V6,
}

/// `{"probes": [...], "allowed": {"ns/a -> ns/b": ["TCP/80", ...], ...}}`, with every
/// ordered pair of distinct workloads present (an empty list when nothing is allowed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub probes: Vec<String>,
    pub allowed: BTreeMap<String, Vec<String>>,
}

pub fn pair_key(src: &str, dst: &str) -> String {
    format!("{src} -> {dst}")
}

/// Compute the matrix. Cost: one verdict per pair and probe, each a cached
/// per-identity-pair lookup after the first.
pub fn matrix(engine: &Engine, probes: &[L4], family: Family) -> Matrix {
    matrix_with(engine, probes, family, &mut |_, _| {})
}

/// [`matrix`], calling `progress(done, total)` after each source workload.
pub fn matrix_with(
    engine: &Engine,
    probes: &[L4],
    family: Family,
    progress: &mut dyn FnMut(usize, usize),
) -> Matrix {
    let workloads = engine.workloads();
    let ends: Vec<(String, Endpoint)> = workloads
        .iter()
        .map(|(id, w)| {
            let addr = w.ip(family == Family::V6);
            (w.key.to_string(), Endpoint::Workload { id: *id, addr })
        })
        .collect();
    let mut allowed = BTreeMap::new();
    for (done, (sname, src)) in ends.iter().enumerate() {
        for (dname, dst) in &ends {
            if sname == dname {
                continue;
            }
            let ok: Vec<String> = probes
                .iter()
                .filter(|l4| {
                    engine
                        .verdict(&Connection {
                            src,
                            dst,
                            l4: **l4,
                            l7: None,
                        })
                        .allowed
                })
                .map(|l4| l4.to_string())
                .collect();
            allowed.insert(pair_key(sname, dname), ok);
        }
        progress(done + 1, ends.len());
    }
    Matrix {
        probes: probes.iter().map(|p| p.to_string()).collect(),
        allowed,
    }
}

impl Matrix {
    /// Workload names in the matrix, sorted.
    pub fn workloads(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .allowed
            .keys()
            .filter_map(|k| k.split(" -> ").next())
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        // A one-workload matrix has no pairs; nothing is lost.
        names
    }

    pub fn is_allowed(&self, src: &str, dst: &str, probe: &str) -> bool {
        self.allowed
            .get(&pair_key(src, dst))
            .is_some_and(|v| v.iter().any(|p| p == probe))
    }

    /// One grid per probe: rows are sources, columns destinations; `✓` allowed,
    /// `·` denied, `-` the workload itself. Long names get numbered columns.
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let names = self.workloads();
        let mut out = String::new();
        if names.is_empty() {
            return "no pairs of workloads to show\n".into();
        }
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
        for probe in &self.probes {
            let allowed = names
                .iter()
                .flat_map(|s| names.iter().map(move |d| (s, d)))
                .filter(|(s, d)| s != d && self.is_allowed(s, d, probe))
                .count();
            let total = names.len() * (names.len() - 1);
            let _ = writeln!(
                out,
                "{probe}: {allowed} of {total} pairs allowed (rows: from, columns: to)"
            );
            let _ = write!(out, "{:width$}  ", "");
            for i in 0..names.len() {
                let _ = write!(out, "{:>3}", i + 1);
            }
            out.push('\n');
            for (i, s) in names.iter().enumerate() {
                let _ = write!(out, "{s:>width$} {:>2}", i + 1);
                for d in &names {
                    let cell = if s == d {
                        "-"
                    } else if self.is_allowed(s, d, probe) {
                        "✓"
                    } else {
                        "·"
                    };
                    let _ = write!(out, "{cell:>3}");
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }
}
