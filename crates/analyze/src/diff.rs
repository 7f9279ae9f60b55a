//! `analyze diff`: what a policy change opens and closes.

use serde::Serialize;

use crate::matrix::Matrix;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: String,
    pub to: String,
    pub probe: String,
    /// `allowed` (newly allowed) or `denied` (newly denied).
    pub becomes: &'static str,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MatrixDiff {
    pub newly_allowed: Vec<Change>,
    pub newly_denied: Vec<Change>,
    /// Workloads only in the old or only in the new inventory (their pairs are not compared).
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
}

impl MatrixDiff {
    pub fn is_empty(&self) -> bool {
        self.newly_allowed.is_empty() && self.newly_denied.is_empty()
    }
}

/// Compare two matrices over the pairs and probes they share.
pub fn diff(old: &Matrix, new: &Matrix) -> MatrixDiff {
    let old_w = old.workloads();
    let new_w = new.workloads();
    let mut d = MatrixDiff {
        only_old: old_w
            .iter()
            .filter(|w| !new_w.contains(w))
            .cloned()
            .collect(),
        only_new: new_w
            .iter()
            .filter(|w| !old_w.contains(w))
            .cloned()
            .collect(),
        ..MatrixDiff::default()
    };
    for (pair, _) in new.allowed.iter() {
        let Some((from, to)) = pair.split_once(" -> ") else {
            continue;
        };
        if !old.allowed.contains_key(pair) {
            continue;
        }
        for probe in new.probes.iter().filter(|p| old.probes.contains(p)) {
            let (a, b) = (
                old.is_allowed(from, to, probe),
                new.is_allowed(from, to, probe),
            );
            if a == b {
                continue;
            }
            let change = Change {
                from: from.to_string(),
                to: to.to_string(),
                probe: probe.clone(),
                becomes: if b { "allowed" } else { "denied" },
            };
            if b {
                d.newly_allowed.push(change);
            } else {
                d.newly_denied.push(change);
            }
        }
    }
    d
}
