//! The proposal against the current policy, as reachability: which pairs and services
//! the proposal newly allows or denies (the `analyze diff` of the two matrices), on the
//! services seen most. Shared by `bulkhead learn` and `GET /api/v1/learn`.
//!
//! Rules are compared with rules: the current groups are evaluated in Protect too, since
//! a current policy still in Discover (the usual case when learning) allows everything.
//! Changes on a port the destination does not declare (no `containerPort`) are counted
//! apart: a cluster that declares its ports has nothing listening there, so tightening
//! them changes nothing for the applications. A hand-written rule without ports allows
//! every port and a learned one only those used, and hundreds of such lines would hide
//! the few that matter.

use std::collections::{BTreeMap, HashSet};

use bulkhead_analyze::diff::{Change, MatrixDiff, diff as matrix_diff};
use bulkhead_analyze::matrix::{Family, matrix};
use bulkhead_model::{Inventory, L4};
use bulkhead_policy::spec::{Mode, PolicySet};
use serde::Serialize;

use crate::Observations;
use crate::eval;

/// Above this many workloads the diff is not computed (one verdict per pair and service).
pub const MAX_WORKLOADS: usize = 3000;
/// The services (most observed first) the diff looks at.
pub const MAX_PROBES: usize = 16;

#[derive(Debug, Default, Serialize)]
pub struct LearnDiff {
    /// The services compared, most observed first.
    pub probes: Vec<String>,
    /// None when not computed (more than [`MAX_WORKLOADS`] workloads, or a policy that
    /// does not compile).
    pub diff: Option<MatrixDiff>,
    /// Of the changes, those to a port the destination does not declare.
    pub undeclared: Undeclared,
    /// The changes that matter: on services their destination declares.
    pub on_declared_ports: Changes,
    /// `ns/name` -> the `PROTO/PORT` services it declares.
    #[serde(skip)]
    declared: HashSet<(String, String)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Changes {
    pub newly_allowed: Vec<Change>,
    pub newly_denied: Vec<Change>,
}

#[derive(Debug, Default, Serialize)]
pub struct Undeclared {
    pub newly_allowed: usize,
    pub newly_denied: usize,
}

impl LearnDiff {
    /// Is this change on a service its destination declares (ICMP has no port: always)?
    pub fn on_declared(&self, c: &Change) -> bool {
        c.probe.starts_with("ICMP") || self.declared.contains(&(c.to.clone(), c.probe.clone()))
    }
}

/// The diff of `proposal` (already in Protect: [`crate::Proposal::enforced`]) against
/// `current`, over `inventory` and the services `obs` saw most.
pub fn diff(
    obs: &Observations,
    inventory: &Inventory,
    current: &PolicySet,
    proposal: &PolicySet,
) -> LearnDiff {
    let mut services: BTreeMap<L4, u64> = BTreeMap::new();
    for (k, t) in &obs.flows {
        *services.entry(k.l4).or_default() += t.total();
    }
    let mut probes: Vec<(L4, u64)> = services.into_iter().collect();
    probes.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let probes: Vec<L4> = probes.into_iter().take(MAX_PROBES).map(|p| p.0).collect();
    let mut cur_rules = current.clone();
    for g in &mut cur_rules.groups {
        g.mode = Mode::Protect;
    }
    let diff = if inventory.workloads.len() <= MAX_WORKLOADS {
        eval::engine(inventory, &cur_rules)
            .ok()
            .zip(eval::engine(inventory, proposal).ok())
            .map(|(c, n)| {
                matrix_diff(
                    &matrix(&c, &probes, Family::V4),
                    &matrix(&n, &probes, Family::V4),
                )
            })
    } else {
        None
    };
    let mut out = LearnDiff {
        probes: probes.iter().map(|p| p.to_string()).collect(),
        diff: None,
        undeclared: Undeclared::default(),
        on_declared_ports: Changes::default(),
        declared: inventory
            .workloads
            .iter()
            .flat_map(|w| {
                w.ports
                    .iter()
                    .map(|p| (w.key.to_string(), format!("{}/{}", p.protocol, p.port)))
            })
            .collect(),
    };
    if let Some(d) = &diff {
        let on = |cs: &[Change]| -> Vec<Change> {
            cs.iter().filter(|c| out.on_declared(c)).cloned().collect()
        };
        let changes = Changes {
            newly_allowed: on(&d.newly_allowed),
            newly_denied: on(&d.newly_denied),
        };
        out.undeclared = Undeclared {
            newly_allowed: d.newly_allowed.len() - changes.newly_allowed.len(),
            newly_denied: d.newly_denied.len() - changes.newly_denied.len(),
        };
        out.on_declared_ports = changes;
    }
    out.diff = diff;
    out
}
