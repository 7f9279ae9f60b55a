//! What a running lab is: its plan, the processes it started and where their logs are,
//! kept in `/run/bulkhead/labs/<lab>/state.json` (on tmpfs: a reboot, which also takes
//! the namespaces away, takes it too). Written as things are made, so a crash part way
//! through `lab up` still leaves a record; `lab down` does not depend on it, though:
//! it also finds leftovers by name.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use bulkhead_policy::spec::LabRunRule;

use crate::names;
use crate::plan::Plan;
use crate::process::Process;
use crate::runner::Helper;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub plan: Plan,
    /// Seconds since the epoch when `lab up` started.
    pub created: u64,
    /// The input files, as the agents get them.
    pub inputs: Vec<PathBuf>,
    /// Responders, real servers, containers' first processes, agents.
    pub processes: Vec<Process>,
    /// runc container ids.
    pub containers: Vec<String>,
    /// Why no agent runs, when none does.
    pub agent_note: Option<String>,
    /// The Lab document's `run` rules: `lab add` applies them to the Pods it adds.
    #[serde(default)]
    pub run_rules: Vec<LabRunRule>,
    /// How `lab up` ran the responder: `lab add` starts new ones the same way.
    #[serde(default)]
    pub helper: Option<Helper>,
}

impl State {
    pub fn new(plan: Plan, inputs: Vec<PathBuf>) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        State {
            plan,
            created,
            inputs,
            processes: Vec::new(),
            containers: Vec::new(),
            agent_note: None,
            run_rules: Vec::new(),
            helper: None,
        }
    }

    pub fn dir(&self) -> PathBuf {
        names::lab_dir(&self.plan.lab)
    }

    /// Written to a temporary file, then renamed: a reader never sees half a file.
    pub fn save(&self) -> Result<()> {
        let dir = self.dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join("state.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, file(&self.plan.lab)).context("saving state.json")
    }

    /// The workload named `NAMESPACE/NAME`, or `NAME` when unique.
    pub fn workload(&self, name: &str) -> Result<&crate::plan::WorkloadPlan> {
        let ws = &self.plan.workloads;
        if let Some(w) = ws.iter().find(|w| w.key.to_string() == name) {
            return Ok(w);
        }
        let by_name: Vec<_> = ws.iter().filter(|w| w.key.name == name).collect();
        match by_name.as_slice() {
            [w] => Ok(w),
            [] => {
                let all: Vec<String> = ws.iter().map(|w| w.key.to_string()).collect();
                anyhow::bail!(
                    "no workload {name:?} in lab {}; workloads: {}",
                    self.plan.lab,
                    all.join(", ")
                )
            }
            many => {
                let all: Vec<String> = many.iter().map(|w| w.key.to_string()).collect();
                anyhow::bail!("{name:?} is ambiguous: {}", all.join(", "))
            }
        }
    }
}

pub fn file(lab: &str) -> PathBuf {
    names::lab_dir(lab).join("state.json")
}

/// The state of lab `lab`, `None` when it is not up (no state file).
pub fn load(lab: &str) -> Result<Option<State>> {
    let path = file(lab);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Labs with a state directory, sorted.
pub fn labs() -> Vec<String> {
    let mut labs: Vec<String> = fs::read_dir(names::LABS_DIR)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| names::check_lab(n).is_ok())
        .collect();
    labs.sort();
    labs
}

/// The last lines of a log, to show why something did not start.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
