//! `lab add`: workloads added to a running lab, made exactly as `lab up` makes them.
//!
//! The order is what makes a new workload safe (fail-closed, docs/agent.md): its
//! namespace, link, addresses and routes are made, what runs in it is started and it is
//! recorded in `state.json`, and only THEN is it written to the inventory the agents
//! watch. Until its agent has read that, the workload's packets come from an address
//! the node's kernel does not know on a workload interface, and are denied; so it is
//! isolated before it can send its first packet. [`stage`] does everything but the
//! inventory (tests probe the workload in that state), [`Staged::publish`] writes it
//! and waits until every running agent's kernel maps the new addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_model::WorkloadKey;
use bulkhead_policy::spec::{Bundle, PolicySet};

use crate::lock::{self, LabLock};
use crate::plan::{self, Plan, WorkloadPlan};
use crate::remove;
use crate::runner::{self, Helper};
use crate::state::State;
use crate::{enforced, inventory, topology};

/// What `lab add` did.
#[derive(Clone, Debug)]
pub struct AddReport {
    pub lab: String,
    /// The new workloads, as planned (node, addresses, what runs).
    pub added: Vec<WorkloadPlan>,
    /// Servers still not listening, agents not running.
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// Workloads made, running and recorded, but not yet in the inventory: isolated by
/// fail-closed. Holds the lab's lock until [`Staged::publish`]. Dropped unpublished,
/// the workloads stay as they are (isolated); `lab remove` removes them.
pub struct Staged {
    _lock: LabLock,
    state: State,
    added: Vec<WorkloadKey>,
    namespaces_changed: bool,
    warnings: Vec<String>,
    started: Instant,
}

/// Add the workloads of `bundle` to lab `lab` and wait until its agents enforce them.
pub fn add(lab: &str, bundle: &Bundle) -> Result<AddReport> {
    stage(lab, bundle)?.publish()
}

/// Everything [`add`] does except writing the inventory.
pub fn stage(lab: &str, bundle: &Bundle) -> Result<Staged> {
    let started = Instant::now();
    crate::require_root()?;
    check_input(bundle)?;
    let lock = lock::lock(lab)?;
    let mut st = crate::load(lab)?;
    let Some(helper) = st.helper.clone() else {
        bail!(
            "lab {lab} was made by an older bulkhead, which did not record how it runs \
             its responder: make it again with lab up"
        );
    };
    check_nodes(&st.plan, bundle)?;
    let (added, namespaces) = plan::plan_added(&st.plan, bundle, &st.run_rules)?;
    // Before anything exists: a missing program fails here, with nothing to undo.
    runner::check(&Plan {
        workloads: added.clone(),
        ..st.plan.clone()
    })?;
    let namespaces_changed = namespaces != st.plan.namespaces;
    let keys: Vec<WorkloadKey> = added.iter().map(|w| w.key.clone()).collect();
    // Recorded before it is made: a crash part way leaves a record (and `lab down`
    // finds the rest by name anyway).
    st.plan.workloads.extend(added);
    st.plan.workloads.sort_by(|a, b| a.key.cmp(&b.key));
    st.plan.namespaces = namespaces;
    st.save()?;
    let made = make(&mut st, &keys, &helper);
    let warnings = match made {
        Ok(w) => w,
        Err(e) => {
            if let Err(undo) = remove::teardown(&mut st, &keys) {
                return Err(e.context(format!("and removing what was made failed: {undo:#}")));
            }
            return Err(e);
        }
    };
    Ok(Staged {
        _lock: lock,
        state: st,
        added: keys,
        namespaces_changed,
        warnings,
        started,
    })
}

fn make(st: &mut State, keys: &[WorkloadKey], helper: &Helper) -> Result<Vec<String>> {
    topology::add_workloads(&st.plan, &st.plan.workloads_of(keys))?;
    runner::start_some(st, helper, keys)
}

impl Staged {
    /// The lab as it is now (the staged workloads included).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The staged workloads.
    pub fn workloads(&self) -> Vec<&WorkloadPlan> {
        self.state.plan.workloads_of(&self.added)
    }

    /// Write the workloads to the inventory, then wait until every running agent's
    /// kernel maps their addresses: from then on policy, not fail-closed, decides.
    pub fn publish(self) -> Result<AddReport> {
        let added: Vec<WorkloadPlan> = self.workloads().into_iter().cloned().collect();
        let refs: Vec<&WorkloadPlan> = added.iter().collect();
        inventory::publish(&self.state.plan, self.namespaces_changed, &refs, &[])
            .context("writing the inventory")?;
        let addrs: Vec<IpAddr> = added
            .iter()
            .flat_map(|w| [w.ip(false), w.ip(true)])
            .collect();
        let mut warnings = self.warnings;
        warnings.extend(enforced::wait(&self.state, &addrs, &[])?);
        Ok(AddReport {
            lab: self.state.plan.lab.clone(),
            added,
            warnings,
            elapsed: self.started.elapsed(),
        })
    }
}

/// `lab add` takes workloads (and the Namespaces they live in), nothing else: policy is
/// what the agents read from the lab's input files, which they watch.
fn check_input(bundle: &Bundle) -> Result<()> {
    let mut problems = Vec::new();
    if bundle.policy != PolicySet::default() {
        problems.push(
            "the input has policy (Groups, Policies, NetworkPolicies or Settings): lab add \
             adds workloads only; edit the lab's input files instead (its agents watch them)"
                .to_string(),
        );
    }
    if let Some(l) = &bundle.lab
        && (l.pools.ipv4.is_some() || l.pools.ipv6.is_some())
    {
        problems.push("a running lab's address pools cannot change (spec.pools)".into());
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Nodes the input names must be the lab's: a running lab gets no new nodes.
fn check_nodes(plan: &Plan, bundle: &Bundle) -> Result<()> {
    let ours: BTreeSet<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    let named = bundle
        .inventory
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .chain(
            bundle
                .lab
                .iter()
                .flat_map(|l| l.nodes.iter().map(String::as_str)),
        );
    let unknown: BTreeSet<&str> = named.filter(|n| !ours.contains(n)).collect();
    if !unknown.is_empty() {
        bail!(
            "lab {} has no node {} (nodes: {}); a running lab gets no new nodes",
            plan.lab,
            unknown.into_iter().collect::<Vec<_>>().join(", "),
            ours.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
