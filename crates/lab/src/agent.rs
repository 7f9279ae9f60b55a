//! One node agent per lab node, enforcing the input's policies in that node's namespace:
//! `bulkhead agent --netns NS --node NODE --inventory DIR -f INPUT... --state-dir DIR`,
//! in the foreground, as a background process of ours logging to the lab directory.
//! When the `bulkhead` binary has no `agent` command yet, the lab runs without agents
//! and says so. `lab up` returns once every agent has programmed its node, so a probe
//! right after it sees policy in force.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;

use crate::process::{self, Process};
use crate::state::{self, State};

/// How to run an agent: a program and the arguments before the agent's own
/// (`bulkhead agent`).
#[derive(Clone, Debug)]
pub struct AgentLaunch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl AgentLaunch {
    /// Whether the program knows the agent command (`agent --help` succeeds).
    pub fn available(&self) -> bool {
        Command::new(&self.program)
            .args(&self.args)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// How long agents may take to program their node's kernel the first time.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Start one agent per node and wait until each has programmed its node (its
/// `status.json` shows a first reconcile). An agent that exits or reports an error
/// fails `lab up` with the end of its log; one that is merely slow is a warning.
pub fn start_all(state: &mut State, launch: &AgentLaunch) -> Result<Vec<String>> {
    let dir = state.dir();
    // The directory, one file per workload: a change costs an agent one file's parse.
    let inventory = crate::inventory::dir(&state.plan.lab);
    let mut started = Vec::new();
    for node in state.plan.nodes.clone() {
        let state_dir = dir.join("agents").join(&node.name);
        std::fs::create_dir_all(&state_dir)?;
        let log = dir.join("agents").join(format!("{}.log", node.name));
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .arg("--netns")
            .arg(&node.netns)
            .arg("--node")
            .arg(&node.name)
            .arg("--inventory")
            .arg(&inventory);
        for input in &state.inputs {
            cmd.arg("-f").arg(input);
        }
        cmd.arg("--state-dir").arg(&state_dir);
        cmd.arg("--pod-interfaces")
            .arg(crate::names::pod_link_glob(&state.plan.lab));
        // The nodes of a lab share one key to vouch for socket-path connections
        // between them (`bulkhead agent --vouch-key`).
        if launch.args.iter().any(|a| a == "--redis-socket-path") {
            cmd.arg("--vouch-key").arg(vouch_key(&dir)?);
        }
        // The agent enters the node's namespace itself: it is started from ours.
        let p = process::spawn(None, cmd, &log, "agent", &node.name)?;
        started.push((p.clone(), state_dir));
        state.processes.push(p);
        state.save()?;
    }
    let mut warnings = Vec::new();
    for (p, state_dir) in &started {
        if let Some(w) = wait_programmed(p, state_dir)? {
            warnings.push(w);
        }
    }
    Ok(warnings)
}

/// The lab's vouching key (32 hex digits from the kernel's random source), made once.
fn vouch_key(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("vouch.key");
    if !path.exists() {
        let mut key = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&path, hex + "\n")?;
    }
    Ok(path)
}

fn wait_programmed(p: &Process, state_dir: &Path) -> Result<Option<String>> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let status: Option<Value> = std::fs::read(state_dir.join("status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(s) = status {
            if let Some(e) = s.get("last_error").and_then(Value::as_str) {
                bail!(
                    "the agent of node {} could not program the node: {e}\n(log: {})",
                    p.owner,
                    p.log.display()
                );
            }
            if s.get("generation").and_then(Value::as_u64).unwrap_or(0) >= 1 {
                return Ok(None);
            }
        }
        if !p.alive() {
            bail!(
                "the agent of node {} exited; the end of {}:\n{}",
                p.owner,
                p.log.display(),
                state::tail(&p.log, 15)
            );
        }
        if Instant::now() > deadline {
            return Ok(Some(format!(
                "the agent of node {} has not reported programming the node after {} s; \
                 it keeps running (log: {})",
                p.owner,
                READY_TIMEOUT.as_secs(),
                p.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
