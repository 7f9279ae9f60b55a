//! `bulkhead lab`: real test topologies from YAML, to try policy on real traffic.
//!
//! From plain Kubernetes YAML (Namespaces, Pods, NetworkPolicies), bulkhead's kinds and
//! an optional `kind: Lab` document, [`up`] builds a routed topology of network
//! namespaces (one per node, one per pod, a router between nodes), gives every workload
//! an IPv4 and an IPv6 address, starts what runs in it (the built-in responder, a real
//! server, a runc container) and one node agent per node. [`probe`] then tries every
//! ordered pair of workloads for every probe, for real, and reports the observed matrix
//! in the exact shape of `bulkhead analyze matrix`; [`down`] removes everything.
//!
//! A running lab changes like a cluster does: [`add`] makes new workloads (isolated
//! until their agents know them), [`remove`] takes them out, [`label`] and [`relabel`]
//! change their labels; [`probe_pairs`] probes chosen pairs while that happens.
//!
//! Everything needs root (network namespaces). Nothing is put in the host's namespace.
#![forbid(unsafe_code)]

pub use privileged::privileged;
pub mod add;
pub mod addressing;
pub mod agent;
pub mod cleanup;
pub mod container;
pub mod enforced;
pub mod inventory;
pub mod label;
pub mod lock;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod plan;
mod privileged;
pub mod probe;
pub mod process;
pub mod remove;
pub mod responder;
pub mod runner;
pub mod state;
pub mod status;
pub mod topology;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_manifest::Source;
use bulkhead_policy::spec::Bundle;

pub use add::{AddReport, Staged, add};
pub use agent::AgentLaunch;
pub use cleanup::DownReport;
pub use label::{LabelEdits, LabelReport, label, relabel};
pub use probe::{Outcome, PairProbe, PairResult, ProbeOptions, ProbeReport};
pub use remove::{RemoveReport, remove};
pub use runner::Helper;
pub use state::State;
pub use status::Status;

/// What `lab up` needs besides the decoded input.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The lab's name; default: the Lab document's, else `lab`.
    pub name: Option<String>,
    /// How to run the built-in responder.
    pub helper: Helper,
    /// How to run node agents; `None`: no agents (`--no-agent`).
    pub agent: Option<AgentLaunch>,
    /// The input files as read (agents get the same files; standard input is saved).
    pub sources: Vec<Source>,
}

#[derive(Clone, Debug)]
pub struct UpReport {
    pub state: State,
    /// A lab of the same name (or its leftovers) that was removed first.
    pub replaced: Option<DownReport>,
    /// Servers that run but did not listen in time.
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("bulkhead lab needs root: it creates network namespaces");
    }
    Ok(())
}

/// Build the lab. A lab of the same name is replaced. On any failure everything made
/// so far is removed again.
pub fn up(bundle: &Bundle, opts: &UpOptions) -> Result<UpReport> {
    let started = Instant::now();
    require_root()?;
    let lab = plan::lab_name(bundle, opts.name.as_deref())?;
    let plan = plan::plan(bundle, &lab)?;
    // Before anything exists: a missing program fails here, with nothing to undo.
    runner::check(&plan)?;
    socket_path_alone(&lab, opts)?;
    let replaced = cleanup::down(&lab)?;
    let replaced = (!replaced.is_empty()).then_some(replaced);
    let dir = names::lab_dir(&lab);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let inputs = save_inputs(&dir, &opts.sources)?;
    let mut st = State::new(plan, inputs);
    st.run_rules = bundle
        .lab
        .as_ref()
        .map(|l| l.run.clone())
        .unwrap_or_default();
    st.helper = Some(opts.helper.clone());
    let built = build(&mut st, opts);
    match built {
        Ok(warnings) => Ok(UpReport {
            state: st,
            replaced,
            warnings,
            elapsed: started.elapsed(),
        }),
        Err(e) => {
            if let Err(cleanup) = cleanup::down(&lab) {
                return Err(e.context(format!(
                    "and removing the half-built lab failed: {cleanup:#}"
                )));
            }
            Err(e)
        }
    }
}

/// The socket path's programs attach to the machine's root cgroup: they see every
/// socket, and a second lab's (same addresses, another vouching key) would take the
/// first one's connections. One such lab at a time (its directory holds `vouch.key`).
fn socket_path_alone(lab: &str, opts: &UpOptions) -> Result<()> {
    let wants = opts
        .agent
        .as_ref()
        .is_some_and(|a| a.args.iter().any(|x| x == "--redis-socket-path"));
    let Ok(labs) = std::fs::read_dir(names::LABS_DIR) else {
        return Ok(());
    };
    for other in labs.flatten().filter(|_| wants) {
        let name = other.file_name().to_string_lossy().into_owned();
        if name != lab && other.path().join("vouch.key").exists() {
            anyhow::bail!(
                "lab {name} is up with the Redis socket path, whose programs see every \
                 socket of this machine and would take this lab's connections too; take \
                 it down first (bulkhead lab down --name {name})"
            );
        }
    }
    Ok(())
}

fn build(st: &mut State, opts: &UpOptions) -> Result<Vec<String>> {
    st.save()?;
    inventory::write_all(&st.plan)?;
    topology::build(&st.plan)?;
    let mut warnings = runner::start_all(st, &opts.helper)?;
    match &opts.agent {
        None => st.agent_note = Some("started with --no-agent; policy is not enforced".into()),
        Some(a) if !a.available() => {
            st.agent_note =
                Some("this bulkhead has no `agent` command yet; policy is not enforced".into())
        }
        Some(a) => warnings.extend(agent::start_all(st, a)?),
    }
    st.save()?;
    Ok(warnings)
}

/// Input files as agents will read them: real files by absolute path, standard input
/// saved in the lab directory.
fn save_inputs(dir: &std::path::Path, sources: &[Source]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for s in sources {
        if s.name == "-" {
            let p = dir.join("stdin.yaml");
            std::fs::write(&p, &s.text)?;
            out.push(p);
        } else {
            out.push(std::path::absolute(&s.name)?);
        }
    }
    Ok(out)
}

/// Remove lab `lab` (idempotent; also leftovers of a crashed run).
pub fn down(lab: &str) -> Result<DownReport> {
    require_root()?;
    cleanup::down(lab)
}

/// Remove every lab, and every leftover that carries a lab's prefix.
pub fn down_all() -> Result<Vec<DownReport>> {
    require_root()?;
    cleanup::down_all()
}

/// The lab a command means: the one named, else the only one up, else the newest.
pub fn resolve(name: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        names::check_lab(n)?;
        return Ok(n.to_string());
    }
    let labs = state::labs();
    if labs.is_empty() {
        bail!("no lab is up (bulkhead lab up -f FILE|DIR)");
    }
    let newest = labs
        .iter()
        .max_by_key(|l| {
            let created = state::load(l).ok().flatten().map_or(0, |s| s.created);
            (created, (*l).clone())
        })
        .cloned();
    newest.context("no lab is up")
}

/// The state of a lab that is up.
pub fn load(lab: &str) -> Result<State> {
    state::load(lab)?.with_context(|| format!("lab {lab} is not up"))
}

pub fn status(lab: &str) -> Result<Status> {
    Ok(status::of(&load(lab)?))
}

/// Run `argv` in a workload's network namespace; its exit code.
pub fn exec(lab: &str, workload: &str, argv: &[String]) -> Result<i32> {
    require_root()?;
    let st = load(lab)?;
    let w = st.workload(workload)?;
    process::exec(&w.netns, argv)
}

pub fn probe(lab: &str, opts: &ProbeOptions) -> Result<ProbeReport> {
    require_root()?;
    probe::run(&load(lab)?, opts)
}

/// Try exactly the given (source, destination, probe) triples, all at once, against the
/// lab as it is now (see [`probe::probe_pairs`]): for tests that probe continuously
/// while the lab changes.
pub fn probe_pairs(lab: &str, pairs: &[PairProbe], opts: &ProbeOptions) -> Result<Vec<PairResult>> {
    require_root()?;
    Ok(probe::probe_pairs(&load(lab)?, pairs, opts))
}
