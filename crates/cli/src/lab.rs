//! `bulkhead lab`: flags -> `bulkhead_lab`; the lab crate does the work.
//!
//! Exit codes: 0 success; 1 the lab operation failed (or, for `lab exec`, the command's
//! own code); 2 usage; 3 invalid input files.

use std::time::Duration;

use anyhow::{Result, bail};
use bulkhead_analyze::matrix::Family;
use bulkhead_lab::{AgentLaunch, Helper, ProbeOptions, UpOptions};
use bulkhead_model::L4;
use clap::{Args, Subcommand};

use crate::args::{FamilyArg, Format, Input, Output};
use crate::render::emit;

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Build a lab from YAML (Pods, Namespaces, policies, an optional kind: Lab) and
    /// start what runs in it and one node agent per node. Replaces a lab of that name.
    Up(UpArgs),
    /// Remove a lab: processes, containers, namespaces, files (also after a crash).
    Down(DownArgs),
    /// Add workloads (Pods, or kind: Lab workloads) to a running lab. Each is made,
    /// started and recorded before its agents are told, so it is isolated until they
    /// enforce its policy; returns once they do.
    Add(AddArgs),
    /// Remove workloads from a running lab: agents stop allowing them first, then their
    /// processes and namespaces go.
    Remove(RemoveArgs),
    /// Change a workload's labels: lab label x/a role=client tier- [--overwrite].
    Label(LabelArgs),
    /// Nodes, workloads with their addresses and what runs in them, agents.
    Status(StatusArgs),
    /// Run a command in a workload's network namespace: lab exec x/a -- curl -s 10.244.0.3
    Exec(ExecArgs),
    /// Try every ordered pair of workloads for every probe, for real, and print the
    /// observed matrix (-o json: exactly `bulkhead analyze matrix -o json`).
    Probe(ProbeArgs),
    /// The built-in responder that `lab up` starts in each workload.
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct LabName {
    /// The lab; default: the only lab that is up (for `up`: the Lab document's name,
    /// else `lab`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub input: Input,
    #[command(flatten)]
    pub lab: LabName,
    /// Start no node agent (the lab's traffic is then not filtered at all).
    #[arg(long)]
    pub no_agent: bool,
    /// Run each agent with its transparent L7 proxy (`bulkhead agent --l7-proxy`):
    /// rules with `app:` and L7 conditions are enforced on every request.
    #[arg(long, conflicts_with = "no_agent")]
    pub l7_proxy: bool,
    /// With the proxy, decide Redis commands between workloads of a node at the
    /// client's socket (`bulkhead agent --redis-socket-path`).
    #[arg(long, requires = "l7_proxy")]
    pub redis_socket_path: bool,
    /// With the proxy: its threads keep polling this long after each wake-up
    /// (`bulkhead agent --proxy-busy-poll`).
    #[arg(long, value_name = "DURATION", requires = "l7_proxy", value_parser = crate::agent::busy_poll)]
    pub proxy_busy_poll: Option<std::time::Duration>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// Every lab, and every leftover carrying a lab's prefix.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Pods (or Deployments, ...), Namespaces, or a kind: Lab with workloads: a YAML
    /// file, a directory of them, or - for stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub files: Vec<std::path::PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The lab; default: the input's Lab document's name, else the only lab that is up.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// NAMESPACE/NAME, or a NAME unique in the lab.
    #[arg(required = true, value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LabelArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// NAMESPACE/NAME, or a NAME unique in the lab.
    pub workload: String,
    /// KEY=VALUE to set a label, KEY- to remove one.
    #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
    pub labels: Vec<String>,
    /// Allow changing the value of a label the workload already has.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub lab: LabName,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// NAMESPACE/NAME, or a NAME unique in the lab.
    pub workload: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub lab: LabName,
    /// A probe: TCP/80, UDP/53, SCTP/80, ICMP, ICMPv6, ICMP/8/0. Repeatable.
    /// Default: TCP/80, TCP/81, UDP/53, SCTP/80.
    #[arg(long = "probe", value_name = "PROTO/PORT")]
    pub probes: Vec<String>,
    /// The destination address TCP, UDP and SCTP probes use (ICMP always IPv4,
    /// ICMPv6 always IPv6).
    #[arg(long, value_enum, default_value_t = FamilyArg::Ipv4)]
    pub family: FamilyArg,
    /// How long a probe waits for an answer: 1s, 500ms, 2.5 (seconds).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(sec) = s.strip_suffix('s') {
        (sec, 1.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v * scale <= 3600.0)
        .map(|v| Duration::from_secs_f64(v * scale))
        .ok_or_else(|| format!("{s:?} is not a duration such as 1s, 500ms or 2.5"))
}

/// The lab a command means (see `bulkhead_lab::resolve`), saying so when a choice was made.
fn resolve(name: Option<&str>) -> Result<String> {
    let lab = bulkhead_lab::resolve(name)?;
    let up = bulkhead_lab::state::labs();
    if name.is_none() && up.len() > 1 {
        eprintln!(
            "note: several labs are up ({}); using {lab}, the newest (choose with --name)",
            up.join(", ")
        );
    }
    Ok(lab)
}

pub fn run(cmd: LabCmd) -> Result<u8> {
    match run_lab(cmd) {
        Ok(code) => Ok(code),
        // Bad input files were already reported in full: exit 3 as everywhere.
        Err(e) if e.is::<crate::InvalidInput>() => Err(e),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

fn run_lab(cmd: LabCmd) -> Result<u8> {
    match cmd {
        LabCmd::Up(a) => up(a),
        LabCmd::Down(a) => {
            let reports = if a.all {
                bulkhead_lab::down_all()?
            } else {
                match a.lab.name {
                    Some(n) => vec![bulkhead_lab::down(&n)?],
                    // Nothing up is not an error: down is idempotent.
                    None if bulkhead_lab::state::labs().is_empty() => Vec::new(),
                    // Removing is not guessed: with several labs up, say which.
                    None => match bulkhead_lab::state::labs().as_slice() {
                        [one] => vec![bulkhead_lab::down(one)?],
                        many => bail!(
                            "several labs are up ({}); name one with --name, or use --all",
                            many.join(", ")
                        ),
                    },
                }
            };
            if reports.iter().all(|r| r.is_empty()) {
                eprintln!("nothing to remove");
            }
            for r in reports.iter().filter(|r| !r.is_empty()) {
                eprintln!(
                    "lab {} removed: {} processes, {} containers, {} network namespaces{}",
                    r.lab,
                    r.processes,
                    r.containers,
                    r.namespaces,
                    if r.state_dir { ", its directory" } else { "" }
                );
            }
            Ok(0)
        }
        LabCmd::Add(a) => add(a),
        LabCmd::Remove(a) => {
            let lab = resolve(a.lab.name.as_deref())?;
            let r = bulkhead_lab::remove(&lab, &a.workloads)?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            for k in &r.removed {
                println!("{k} removed");
            }
            eprintln!(
                "lab {}: {} workload(s) removed ({} processes stopped) in {:.2} s",
                r.lab,
                r.removed.len(),
                r.processes,
                r.elapsed.as_secs_f64()
            );
            Ok(0)
        }
        LabCmd::Label(a) => {
            let lab = resolve(a.lab.name.as_deref())?;
            let edits = bulkhead_lab::LabelEdits::parse(&a.labels, a.overwrite)?;
            let r = bulkhead_lab::label(&lab, &a.workload, &edits)?;
            for n in &r.notes {
                eprintln!("{n}.");
            }
            if r.changed {
                println!("{} labeled", r.workload);
            } else {
                println!("{} not labeled", r.workload);
            }
            Ok(0)
        }
        LabCmd::Status(a) => {
            let lab = resolve(a.lab.name.as_deref())?;
            let s = bulkhead_lab::status(&lab)?;
            emit(a.output.format, &s, || s.to_table())?;
            Ok(0)
        }
        LabCmd::Exec(a) => {
            let lab = resolve(a.lab.name.as_deref())?;
            let code = bulkhead_lab::exec(&lab, &a.workload, &a.command)?;
            Ok(code.clamp(0, 255) as u8)
        }
        LabCmd::Probe(a) => probe(a),
        // Runs until killed; returns only when it cannot start.
        LabCmd::Serve(a) => Ok(bulkhead_lab::responder::main(a.args).clamp(0, 255) as u8),
    }
}

/// The node agents' command line: the proxy and its options as `lab up` was given them.
fn agent_args(a: &UpArgs) -> Vec<String> {
    let mut args = vec!["agent".to_string()];
    if a.l7_proxy {
        args.push("--l7-proxy".into());
    }
    if a.redis_socket_path {
        args.push("--redis-socket-path".into());
    }
    if let Some(d) = a.proxy_busy_poll {
        args.push(format!("--proxy-busy-poll={}us", d.as_micros()));
    }
    args
}

fn up(a: UpArgs) -> Result<u8> {
    let sources = bulkhead_manifest::read_paths(&a.input.files, a.input.recursive)
        .and_then(|s| bulkhead_manifest::parse_sources(&s).map(|b| (s, b)));
    let (sources, bundle) = match sources {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{} problem(s) in the input; nothing was started", d.0.len());
            return Err(anyhow::Error::new(crate::InvalidInput));
        }
    };
    let exe = std::env::current_exe()?;
    let agent_args = agent_args(&a);
    let opts = UpOptions {
        name: a.lab.name,
        helper: Helper {
            program: exe.clone(),
            args: vec!["lab".into(), "serve".into()],
        },
        agent: (!a.no_agent).then_some(AgentLaunch {
            program: exe,
            args: agent_args,
        }),
        sources,
    };
    let report = bulkhead_lab::up(&bundle, &opts)?;
    let st = &report.state;
    if let Some(r) = &report.replaced {
        eprintln!(
            "replaced an earlier lab {} ({} processes, {} namespaces removed)",
            r.lab, r.processes, r.namespaces
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(note) = &st.agent_note {
        eprintln!("note: no agent runs: {note}");
    }
    eprintln!(
        "lab {} is up: {} node(s), {} workload(s) in {:.1} s",
        st.plan.lab,
        st.plan.nodes.len(),
        st.plan.workloads.len(),
        report.elapsed.as_secs_f64()
    );
    let s = bulkhead_lab::status::of(st);
    emit(a.output.format, &s, || s.to_table())?;
    Ok(0)
}

fn add(a: AddArgs) -> Result<u8> {
    let sources = bulkhead_manifest::read_paths(&a.files, a.recursive)
        .and_then(|s| bulkhead_manifest::parse_sources(&s));
    let bundle = match sources {
        Ok(b) => b,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("{} problem(s) in the input; nothing was added", d.0.len());
            return Err(anyhow::Error::new(crate::InvalidInput));
        }
    };
    let named = a
        .name
        .clone()
        .or_else(|| bundle.lab.as_ref().map(|l| l.name.clone()));
    let lab = resolve(named.as_deref())?;
    let r = bulkhead_lab::add(&lab, &bundle)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "lab {}: {} workload(s) added and enforced in {:.2} s",
        r.lab,
        r.added.len(),
        r.elapsed.as_secs_f64()
    );
    // The new workloads as `lab status` shows workloads.
    let mut s = bulkhead_lab::status(&lab)?;
    s.workloads
        .retain(|w| r.added.iter().any(|a| a.key.to_string() == w.name));
    emit(a.output.format, &s.workloads, || {
        bulkhead_lab::status::workloads_table(&s.workloads)
    })?;
    Ok(0)
}

fn probe(a: ProbeArgs) -> Result<u8> {
    let lab = resolve(a.lab.name.as_deref())?;
    let probes: Vec<L4> = if a.probes.is_empty() {
        bulkhead_analyze::default_probes()
    } else {
        a.probes
            .iter()
            .map(|s| s.parse::<L4>().map_err(|e| anyhow::anyhow!("--probe: {e}")))
            .collect::<Result<_>>()?
    };
    let family = match a.family {
        FamilyArg::Ipv4 => Family::V4,
        FamilyArg::Ipv6 => Family::V6,
    };
    let opts = ProbeOptions {
        probes,
        family,
        timeout: a.timeout,
    };
    if let Some(note) = bulkhead_lab::load(&lab)?.agent_note {
        eprintln!("note: no agent runs in lab {lab} ({note}): this is the topology without policy");
    }
    let r = bulkhead_lab::probe(&lab, &opts)?;
    let pairs = r.matrix.allowed.len();
    eprintln!(
        "probed {pairs} pairs x {} probes in {:.1} s",
        opts.probes.len(),
        r.elapsed.as_secs_f64()
    );
    if !r.untestable.is_empty() && a.output.format != Format::Table {
        let which: Vec<String> = r
            .untestable
            .iter()
            .map(|u| format!("{}: not testable: {}", u.probe, u.reason))
            .collect();
        bail!("{}", which.join("; "));
    }
    emit(a.output.format, &r.matrix, || {
        let mut t = r.matrix.to_table();
        for u in &r.untestable {
            t.push_str(&format!("{}: NOT TESTABLE here: {}\n", u.probe, u.reason));
        }
        t
    })?;
    Ok(0)
}
