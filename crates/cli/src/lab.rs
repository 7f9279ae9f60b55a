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
    let opts = UpOptions {
        name: a.lab.name,
        helper: Helper {
            program: exe.clone(),
            args: vec!["lab".into(), "serve".into()],
        },
        agent: (!a.no_agent).then(|| AgentLaunch {
            program: exe,
            args: vec!["agent".into()],
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
