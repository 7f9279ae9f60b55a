//! `lab down`: remove everything a lab made, including what a crashed run left, found
//! by name (`bh-<lab>.` namespaces and containers, `/run/bulkhead/labs/<lab>`) as well
//! as from the state file. Idempotent. The host's own interfaces, routes and nftables
//! tables are never touched: a lab puts nothing in the host's namespace, so deleting
//! its namespaces removes its links, routes and any nftables state an agent made.
//!
//! Order matters: containers and processes first (a namespace lives on while a process
//! is inside), then namespaces, then files; finally check nothing is left.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::container;
use crate::names;
use crate::netns;
use crate::process;
use crate::state;

/// What `lab down` removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DownReport {
    pub lab: String,
    pub processes: usize,
    pub containers: usize,
    pub namespaces: usize,
    pub state_dir: bool,
}

impl DownReport {
    pub fn is_empty(&self) -> bool {
        self.processes == 0 && self.containers == 0 && self.namespaces == 0 && !self.state_dir
    }
}

pub fn down(lab: &str) -> Result<DownReport> {
    names::check_lab(lab)?;
    let prefix = names::prefix(lab);
    let dir = names::lab_dir(lab);
    let mut report = DownReport {
        lab: lab.to_string(),
        ..Default::default()
    };

    let ours: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let inodes: HashSet<u64> = ours.iter().filter_map(|n| netns::inode(n).ok()).collect();

    // Processes: recorded ones still alive (same pid and start time), agents (found by
    // their state directory) and anything running inside our namespaces.
    let mut pids: BTreeSet<i32> = BTreeSet::new();
    if let Ok(Some(st)) = state::load(lab) {
        pids.extend(st.processes.iter().filter(|p| p.alive()).map(|p| p.pid));
    }
    pids.extend(process::with_flag_under("--state-dir", &dir));
    // Containers first: runc's own bookkeeping must go with them.
    let containers = container::list(&prefix);
    for id in &containers {
        container::remove(id);
    }
    report.containers = containers.len();
    pids.extend(process::in_namespaces(&inodes));
    let pids: Vec<i32> = pids.into_iter().collect();
    process::terminate(&pids, Duration::from_secs(2));
    report.processes = pids.len();

    for ns in &ours {
        netns::delete(ns)?;
    }
    report.namespaces = ours.len();
    // The agents' pinned socket-path programs (they outlive the agents by design).
    bulkhead_sockops::unpin_under(&dir)?;

    if dir.exists() {
        fs::remove_dir_all(&dir)?;
        report.state_dir = true;
    }
    // The labs directory goes with the last lab (it fails, harmlessly, while others
    // remain).
    let _ = fs::remove_dir(names::LABS_DIR);

    let left: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        bail!("could not remove network namespaces {}", left.join(", "));
    }
    Ok(report)
}

/// Every lab: those with a state directory and those only leftovers tell of.
pub fn labs_present() -> Result<Vec<String>> {
    let mut labs: BTreeSet<String> = state::labs().into_iter().collect();
    for n in netns::list()? {
        if let Some(lab) = names::lab_of(&n) {
            labs.insert(lab.to_string());
        }
    }
    for id in container::list("bh-") {
        if let Some(lab) = names::lab_of(&id) {
            labs.insert(lab.to_string());
        }
    }
    Ok(labs.into_iter().collect())
}

/// `lab down --all`.
pub fn down_all() -> Result<Vec<DownReport>> {
    labs_present()?.iter().map(|l| down(l)).collect()
}
