//! `bulkhead`: the command-line entry point. Glue only: every decision is made by the
//! library crates (`bulkhead-manifest` reads, `bulkhead-policy` decides,
//! `bulkhead-analyze` analyzes); this file reads arguments and prints results.

mod agent;
mod args;
mod dpi;
mod events;
mod flows;
mod lab;
mod learn;
mod pci;
mod quarantine;
mod remote;
mod render;
mod serve;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bulkhead_analyze::matrix::{Family, matrix_with};
use bulkhead_analyze::{blast, diff, endpoint, lint, policytest};
use bulkhead_model::{L4, Workload, WorkloadKey};
use bulkhead_policy::spec::Bundle;
use bulkhead_policy::{Connection, Engine};
use clap::Parser;

use args::{Analyze, Cli, Command, FamilyArg, PolicyCmd, Probes};
use render::emit;

/// The agent's proxy allocates per connection and per request on several threads:
/// glibc's allocator spent about 12 % of its CPU under connection-per-request load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, documented in `bulkhead --help` and docs/cli.md.
pub(crate) const NEGATIVE: u8 = 1;
const INVALID_INPUT: u8 = 3;

/// Bad input files: already reported in full, exit 3.
#[derive(Debug)]
struct InvalidInput;

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid input")
    }
}

impl std::error::Error for InvalidInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Agent(_) | Command::Serve(_) | Command::Lab(_)
    ) {
        // `bulkhead flows | head` should stop quietly, as other command-line tools do,
        // not panic on the closed pipe. The long-running commands keep Rust's default
        // (SIGPIPE ignored, EPIPE returned) so a closed socket never kills them.
        // SAFETY: called before any thread starts; SIG_DFL is a valid disposition.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is::<InvalidInput>() => ExitCode::from(INVALID_INPUT),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(INVALID_INPUT)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    if let Some(code) = remote::run(&cli.remote, &cli.command)? {
        return Ok(code);
    }
    match cli.command {
        Command::Analyze(Analyze::Matrix(a)) => {
            let engine = engine(&a.input.load()?)?;
            let (probes, family) = probes(&a.probes)?;
            let bar = render::progress(engine.workloads().len() as u64, "computing matrix");
            let m = matrix_with(&engine, &probes, family, &mut |_, _| bar.inc(1));
            bar.finish_and_clear();
            emit(a.output.format, &m, || m.to_table())?;
            Ok(0)
        }
        Command::Analyze(Analyze::Diff(a)) => {
            let (probes, family) = probes(&a.probes)?;
            let old = matrix_with(
                &engine(&load(&a.old, a.recursive)?)?,
                &probes,
                family,
                &mut |_, _| {},
            );
            let new = matrix_with(
                &engine(&load(&a.new, a.recursive)?)?,
                &probes,
                family,
                &mut |_, _| {},
            );
            let d = diff::diff(&old, &new);
            emit(a.output.format, &d, || render::diff(&d))?;
            Ok(if a.exit_code && !d.is_empty() {
                NEGATIVE
            } else {
                0
            })
        }
        Command::Analyze(Analyze::BlastRadius(a)) => {
            let engine = engine(&a.input.load()?)?;
            let (probes, family) = probes(&a.probes)?;
            let id = match endpoint::resolve(&engine, &a.workload)? {
                bulkhead_policy::Endpoint::Workload { id, .. } => id,
                _ => bail!("{} is not a workload", a.workload),
            };
            let b = blast::blast_radius(&engine, id, &probes, family);
            emit(a.output.format, &b, || render::blast(&b))?;
            Ok(0)
        }
        Command::Analyze(Analyze::Resolve(a)) => {
            let bundle = a.input.load()?;
            let mut rows = Vec::new();
            for &n in &a.scale {
                let scaled = scale(&bundle, n);
                let t = std::time::Instant::now();
                let e = engine(&scaled)?;
                rows.push(render::ResolveRow {
                    replicas_per_workload: n,
                    resolve_ms: t.elapsed().as_secs_f64() * 1e3,
                    stats: e.stats(),
                    resolved_size: e.stats().resolved_size(),
                });
            }
            emit(a.output.format, &rows, || render::resolve(&rows))?;
            Ok(0)
        }
        Command::Explain(a) => {
            let engine = engine(&a.input.load()?)?;
            let src = endpoint::resolve(&engine, &a.src)?;
            if let bulkhead_policy::Endpoint::External { names, .. } = &src
                && !names.is_empty()
            {
                // `dns` peers name destinations: a connection comes from an address.
                bail!(
                    "no workload named {:?}; a DNS name can only be the destination (the source is a workload, a node or an IP address)",
                    a.src
                );
            }
            let dst = endpoint::resolve(&engine, &a.dst)?;
            let l4: L4 = a.service.parse().map_err(anyhow::Error::msg)?;
            let request = a
                .request
                .as_deref()
                .map(bulkhead_policy::l7::parse_request)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--request: {e}"))?;
            let mut x = engine.explain(&Connection {
                src: &src,
                dst: &dst,
                l4,
                l7: request.as_ref(),
            });
            x.enforced_at = socket_path_note(&engine, &src, &dst, l4, x.l7_enforced);
            emit(a.output.format, &x, || x.to_text())?;
            Ok(if a.exit_code && !x.allowed {
                NEGATIVE
            } else {
                0
            })
        }
        Command::Policy(PolicyCmd::Lint(a)) => {
            let bundle = a.input.load()?;
            let findings = match Engine::new(&bundle) {
                Ok(e) => lint::lint(&e),
                Err(errors) => lint::from_compile_errors(&bundle.policy, &errors),
            };
            emit(a.output.format, &findings, || render::lint(&findings))?;
            let errors = findings.iter().any(|f| f.severity == lint::Severity::Error);
            Ok(if errors || (a.strict && !findings.is_empty()) {
                NEGATIVE
            } else {
                0
            })
        }
        Command::Agent(a) => agent::run(a),
        Command::Flows(a) => flows::run(a),
        Command::Lab(c) => lab::run(c),
        Command::Dpi(c) => dpi::run(c),
        Command::Events(a) => events::run(a),
        Command::Learn(a) => learn::learn(a),
        Command::Group(c) => learn::group(c),
        Command::Quarantine(c) => quarantine::run(c),
        Command::Serve(a) => serve::run(a, &cli.remote),
        Command::Analyze(Analyze::Replay(a)) => learn::replay(a),
        Command::Analyze(Analyze::Pci(a)) => pci::run(a),
        Command::Test(a) => {
            let mut paths = a.input.files.clone();
            paths.extend(a.tests.iter().cloned());
            let bundle = load_split(&paths, &a.input.inventory, a.input.recursive)?;
            if bundle.tests.is_empty() {
                bail!("no PolicyTest documents found in {}", show(&paths));
            }
            let engine = engine(&bundle)?;
            let report = policytest::run(&engine, &bundle.tests);
            emit(a.output.format, &report, || render::tests(&report))?;
            Ok(if report.ok() { 0 } else { NEGATIVE })
        }
    }
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Read and decode input files; on any problem print every diagnostic and stop.
fn load(paths: &[PathBuf], recursive: bool) -> Result<Bundle> {
    bulkhead_manifest::load(paths, recursive).map_err(|d| {
        eprintln!("{d}");
        eprintln!(
            "{} problem{} in {}; nothing was analyzed",
            d.0.len(),
            if d.0.len() == 1 { "" } else { "s" },
            show(paths)
        );
        anyhow::Error::new(InvalidInput)
    })
}

/// `-f` inputs, with the inventory taken from `--inventory` instead when it is given.
pub(crate) fn load_split(
    files: &[PathBuf],
    inventory: &[PathBuf],
    recursive: bool,
) -> Result<Bundle> {
    let mut bundle = load(files, recursive)?;
    if !inventory.is_empty() {
        bundle.inventory = load(inventory, recursive)?.inventory;
    }
    Ok(bundle)
}

pub(crate) fn engine(bundle: &Bundle) -> Result<Engine> {
    Engine::new(bundle).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::Error::new(InvalidInput)
    })
}

fn probes(p: &Probes) -> Result<(Vec<L4>, Family)> {
    let probes = if p.probes.is_empty() {
        bulkhead_analyze::default_probes()
    } else {
        let mut probes: Vec<L4> = Vec::new();
        for s in &p.probes {
            let l4 = s
                .parse::<L4>()
                .map_err(anyhow::Error::msg)
                .context("--probe")?;
            // `ICMP` and `ICMP/8/0` are one probe: listed once.
            if !probes.contains(&l4) {
                probes.push(l4);
            }
        }
        probes
    };
    let family = match p.family {
        FamilyArg::Ipv4 => Family::V4,
        FamilyArg::Ipv6 => Family::V6,
    };
    Ok((probes, family))
}

/// Every workload replaced by `n` replicas with the same labels (and no addresses):
/// what `analyze resolve --scale` measures.
fn scale(bundle: &Bundle, n: usize) -> Bundle {
    let mut b = bundle.clone();
    b.inventory.workloads = bundle
        .inventory
        .workloads
        .iter()
        .flat_map(|w| {
            (0..n).map(move |i| Workload {
                key: WorkloadKey::new(&w.key.namespace, format!("{}-r{i}", w.key.name)),
                ips: Vec::new(),
                ..w.clone()
            })
        })
        .collect();
    b
}

/// `explain` of a Redis connection the socket path can decide: where its commands are
/// decided (the same verdicts either way).
fn socket_path_note(
    engine: &Engine,
    src: &bulkhead_policy::Endpoint,
    dst: &bulkhead_policy::Endpoint,
    l4: L4,
    l7_enforced: bool,
) -> Option<String> {
    use bulkhead_policy::Endpoint::Workload;
    let (Workload { id: c, .. }, Workload { id: s, .. }, L4::Port { port, .. }) = (src, dst, l4)
    else {
        return None;
    };
    if !l7_enforced
        || !matches!(
            l4,
            L4::Port {
                protocol: bulkhead_model::Protocol::Tcp,
                ..
            }
        )
    {
        return None;
    }
    let t = bulkhead_agent::sockpath::plan::table_between(engine, *c, *s, port)?;
    use bulkhead_agent::sockpath::plan::Verdict;
    let named = |want: Verdict| -> Vec<&str> {
        (t.named.iter())
            .filter(|(_, v)| **v == want)
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let (allowed, reported) = (named(Verdict::Allow), named(Verdict::Report));
    let mut verdicts = if allowed.is_empty() {
        "none allowed".to_string()
    } else {
        format!("{} allowed", allowed.join(" "))
    };
    if !reported.is_empty() {
        verdicts += &format!("; {} allowed and reported (Monitor)", reported.join(" "));
    }
    verdicts += match t.other {
        Verdict::Allow => ", and any other",
        Verdict::Refuse => "; any other refused",
        Verdict::Report => "; any other allowed and reported (Monitor)",
    };
    Some(format!(
        "each Redis command is decided by the L7 proxy, or, when the agents have \
         --redis-socket-path (and, for two nodes, a --vouch-key they share), by the kernel \
         at the client's socket with the same verdicts ({verdicts})"
    ))
}
