//! `lab remove`: workloads taken out of a running lab.
//!
//! The inventory goes first: the workloads' files are deleted, and every running agent
//! stops allowing anything for them (their addresses become unknown: fail-closed and
//! Protect deny them). Once every agent's kernel has forgotten their addresses, what
//! runs in them is stopped and their namespaces (with their links and routes) deleted;
//! only then does the state stop recording them, so an address is never handed to a
//! new workload while a kernel still takes it for the old one.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bulkhead_model::WorkloadKey;

use crate::state::State;
use crate::{container, enforced, inventory, lock, names, netns, process, topology};

/// What `lab remove` did.
#[derive(Clone, Debug)]
pub struct RemoveReport {
    pub lab: String,
    pub removed: Vec<WorkloadKey>,
    /// Processes stopped (servers, containers, shells opened with `lab exec`).
    pub processes: usize,
    /// Agents not running.
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// Remove the workloads `names` (`NAMESPACE/NAME`, or a `NAME` unique in the lab). Every
/// name is checked before anything changes.
pub fn remove(lab: &str, workloads: &[String]) -> Result<RemoveReport> {
    let started = Instant::now();
    crate::require_root()?;
    let _lock = lock::lock(lab)?;
    let mut st = crate::load(lab)?;
    let mut keys: Vec<WorkloadKey> = Vec::new();
    for name in workloads {
        let key = st.workload(name)?.key.clone();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let addrs: Vec<IpAddr> = st
        .plan
        .workloads_of(&keys)
        .iter()
        .flat_map(|w| [w.ip(false), w.ip(true)])
        .collect();
    let mut after = st.plan.clone();
    after.workloads.retain(|w| !keys.contains(&w.key));
    inventory::publish(&after, false, &[], &keys).context("writing the inventory")?;
    let warnings = enforced::wait(&st, &[], &addrs)?;
    let processes = teardown(&mut st, &keys)?;
    Ok(RemoveReport {
        lab: lab.to_string(),
        removed: keys,
        processes,
        warnings,
        elapsed: started.elapsed(),
    })
}

/// Stop what runs in the workloads `keys`, delete their namespaces, their files
/// (logs stay until `lab down`) and their record in the state. Also undoes a `lab add`
/// that failed part way. Returns how many processes were stopped.
pub fn teardown(st: &mut State, keys: &[WorkloadKey]) -> Result<usize> {
    let lab = st.plan.lab.clone();
    let dir = st.dir();
    let owners: HashSet<String> = keys.iter().map(|k| k.to_string()).collect();
    let gone: Vec<_> = st.plan.workloads_of(keys).into_iter().cloned().collect();
    // Containers first: runc's own bookkeeping must go with them.
    let ids: HashSet<String> = keys.iter().map(|k| names::container_id(&lab, k)).collect();
    for id in st.containers.iter().filter(|c| ids.contains(*c)) {
        container::remove(id);
    }
    let mut pids: Vec<i32> = st
        .processes
        .iter()
        .filter(|p| p.role != "agent" && owners.contains(&p.owner) && p.alive())
        .map(|p| p.pid)
        .collect();
    let inodes: HashSet<u64> = gone
        .iter()
        .filter_map(|w| netns::inode(&w.netns).ok())
        .collect();
    pids.extend(process::in_namespaces(&inodes));
    pids.sort_unstable();
    pids.dedup();
    process::terminate(&pids, Duration::from_secs(2));
    for w in &gone {
        topology::remove_workload(&st.plan, w)?;
        for leftover in [
            dir.join("ready").join(&w.netns),
            dir.join("workloads").join(&w.netns),
            dir.join("containers")
                .join(names::container_id(&lab, &w.key)),
        ] {
            let _ = std::fs::remove_dir_all(&leftover).or_else(|_| std::fs::remove_file(&leftover));
        }
    }
    st.plan.workloads.retain(|w| !keys.contains(&w.key));
    st.processes
        .retain(|p| p.role == "agent" || !owners.contains(&p.owner));
    st.containers.retain(|c| !ids.contains(c));
    st.save()?;
    Ok(pids.len())
}
