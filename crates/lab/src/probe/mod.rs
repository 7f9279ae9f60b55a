//! `lab probe`: every ordered pair of distinct workloads, every probe, for real, and the
//! observed matrix in exactly the shape of `bulkhead analyze matrix` (its [`Matrix`]).
//!
//! Destinations first ([`target`]): each gets a thread in its namespace that makes sure
//! something answers on every probed port and watches for raw probes. Then sources
//! ([`client`]): one thread per workload enters its namespace once and runs all of its
//! probes at the same time on a single-threaded runtime (sockets are created on that
//! thread, so inside the namespace). A denied probe costs at most the timeout, and all
//! of them wait in parallel: a run takes about one timeout plus set-up.

pub mod client;
pub mod packet;
pub mod target;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bulkhead_analyze::matrix::{Family, Matrix, pair_key};
use bulkhead_model::{L4, Protocol};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::netns;
use crate::plan::WorkloadPlan;
use crate::state::State;
pub use client::Outcome;
use client::RawKind;
use packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP};
use target::{Arrivals, TargetSpec};

/// The default wait for an answer: refusals (resets, ICMP errors) come back at once,
/// only silent drops wait this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes in flight at once from one source (bounded for file descriptors).
const PER_SOURCE: usize = 128;

#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub probes: Vec<L4>,
    /// Which address TCP, UDP and SCTP probes use (ICMP uses IPv4, ICMPv6 IPv6).
    pub family: Family,
    pub timeout: Duration,
}

/// A probe that could not be made at all (it is left out of the matrix).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Untestable {
    pub probe: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The observed matrix, in `analyze matrix`'s shape, over the testable probes.
    pub matrix: Matrix,
    pub untestable: Vec<Untestable>,
    pub elapsed: Duration,
}

pub fn run(state: &State, opts: &ProbeOptions) -> Result<ProbeReport> {
    let started = Instant::now();
    let ws = &state.plan.workloads;
    let mut jobs = Vec::new();
    if ws.len() > 1 {
        for src in 0..ws.len() {
            for dst in (0..ws.len()).filter(|&d| d != src) {
                for probe in 0..opts.probes.len() {
                    jobs.push(Job { src, dst, probe });
                }
            }
        }
    }
    let outcomes = execute(ws, &jobs, opts, false)?;
    let outcome: BTreeMap<(usize, usize, usize), Outcome> = jobs
        .iter()
        .zip(outcomes)
        .map(|(j, o)| ((j.src, j.dst, j.probe), o))
        .collect();
    let mut untestable: BTreeMap<usize, String> = BTreeMap::new();
    for ((_, _, probe), o) in &outcome {
        if let Outcome::Untestable(reason) = o {
            untestable.entry(*probe).or_insert_with(|| reason.clone());
        }
    }
    let testable: Vec<usize> = (0..opts.probes.len())
        .filter(|p| !untestable.contains_key(p))
        .collect();
    let mut allowed = BTreeMap::new();
    for (si, s) in ws.iter().enumerate() {
        for (di, d) in ws.iter().enumerate() {
            if si == di {
                continue;
            }
            let ok: Vec<String> = testable
                .iter()
                .filter(|&&p| outcome.get(&(si, di, p)) == Some(&Outcome::Allowed))
                .map(|&p| opts.probes[p].to_string())
                .collect();
            allowed.insert(pair_key(&s.key.to_string(), &d.key.to_string()), ok);
        }
    }
    Ok(ProbeReport {
        matrix: Matrix {
            probes: testable
                .iter()
                .map(|&p| opts.probes[p].to_string())
                .collect(),
            allowed,
        },
        untestable: untestable
            .into_iter()
            .map(|(p, reason)| Untestable {
                probe: opts.probes[p].to_string(),
                reason,
            })
            .collect(),
        elapsed: started.elapsed(),
    })
}

/// One probe of a chosen pair ([`probe_pairs`]): workloads named as `lab exec` takes
/// them (`NAMESPACE/NAME`, or a `NAME` unique in the lab).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairProbe {
    pub src: String,
    pub dst: String,
    pub probe: L4,
}

/// What one [`PairProbe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairResult {
    pub pair: PairProbe,
    pub outcome: Outcome,
}

/// Try exactly these probes, all at once, the way [`run`] tries every pair. Meant to
/// be called over and over while the lab changes (`lab add`, `lab remove`): a workload
/// that is not in the lab, or whose namespace goes away while it is probed, makes its
/// probes [`Outcome::Untestable`] with the reason, not an error. `opts.probes` is not
/// used (each pair names its probe).
pub fn probe_pairs(state: &State, pairs: &[PairProbe], opts: &ProbeOptions) -> Vec<PairResult> {
    let ws = &state.plan.workloads;
    let index = |name: &str| -> std::result::Result<usize, String> {
        let w = state.workload(name).map_err(|e| e.to_string())?;
        Ok(ws.iter().position(|x| x.key == w.key).unwrap_or(0))
    };
    let mut probes: Vec<L4> = Vec::new();
    let mut jobs = Vec::new();
    let mut results: Vec<Option<Outcome>> = Vec::with_capacity(pairs.len());
    let mut slots = Vec::new();
    for p in pairs {
        match (index(&p.src), index(&p.dst)) {
            (Ok(src), Ok(dst)) if src != dst => {
                let probe = probes
                    .iter()
                    .position(|x| *x == p.probe)
                    .unwrap_or_else(|| {
                        probes.push(p.probe);
                        probes.len() - 1
                    });
                slots.push(results.len());
                jobs.push(Job { src, dst, probe });
                results.push(None);
            }
            (Ok(_), Ok(_)) => results.push(Some(Outcome::Untestable(
                "a workload's traffic to itself is not probed".into(),
            ))),
            (Err(e), _) | (_, Err(e)) => results.push(Some(Outcome::Untestable(e))),
        }
    }
    let opts = ProbeOptions {
        probes,
        ..opts.clone()
    };
    let outcomes = execute(ws, &jobs, &opts, true).unwrap_or_else(|e| {
        let why = format!("{e:#}");
        jobs.iter()
            .map(|_| Outcome::Untestable(why.clone()))
            .collect()
    });
    for (slot, o) in slots.into_iter().zip(outcomes) {
        results[slot] = Some(o);
    }
    pairs
        .iter()
        .zip(results)
        .map(|(p, o)| PairResult {
            pair: p.clone(),
            outcome: o.unwrap_or(Outcome::Untestable("not probed".into())),
        })
        .collect()
}

/// One probe: indices into the workloads and into `opts.probes`.
#[derive(Clone, Copy, Debug)]
struct Job {
    src: usize,
    dst: usize,
    probe: usize,
}

/// Run `jobs`; their outcomes, in order. Destinations first (each gets what its jobs
/// need), then every source at once, each on its own thread. `tolerant`: a namespace
/// that cannot be entered makes its jobs untestable instead of failing the run.
fn execute(
    ws: &[WorkloadPlan],
    jobs: &[Job],
    opts: &ProbeOptions,
    tolerant: bool,
) -> Result<Vec<Outcome>> {
    raise_fd_limit();
    client::seed_tags();
    let v6 = opts.family == Family::V6;
    let arrivals = Arc::new(Arrivals::default());

    // What every destination must offer.
    let mut specs: BTreeMap<usize, TargetSpec> = BTreeMap::new();
    for j in jobs {
        let w = &ws[j.dst];
        let spec = specs.entry(j.dst).or_insert_with(|| TargetSpec {
            index: j.dst,
            netns: w.netns.clone(),
            name: w.key.to_string(),
            v6,
            ..TargetSpec::default()
        });
        match opts.probes[j.probe] {
            L4::Port {
                protocol: Protocol::Tcp,
                port,
            } => spec.tcp.push(port),
            L4::Port {
                protocol: Protocol::Udp,
                port,
            } => spec.udp.push(port),
            L4::Port {
                protocol: Protocol::Sctp,
                ..
            } => spec.sniff.push((v6, PROTO_SCTP)),
            L4::Port { .. } => {}
            L4::Icmp {
                v6: icmp6,
                icmp_type,
                ..
            } => {
                if !is_echo(icmp6, icmp_type) {
                    spec.sniff
                        .push((icmp6, if icmp6 { PROTO_ICMPV6 } else { PROTO_ICMP }));
                }
            }
        }
    }
    let mut targets = Vec::new();
    let mut unreachable: BTreeMap<usize, String> = BTreeMap::new();
    for (dst, mut spec) in specs {
        for v in [&mut spec.tcp, &mut spec.udp] {
            v.sort_unstable();
            v.dedup();
        }
        spec.sniff.sort_unstable();
        spec.sniff.dedup();
        match target::start(spec, arrivals.clone()) {
            Ok(t) => targets.push(t),
            Err(e) if tolerant => {
                unreachable.insert(dst, format!("{e:#}"));
            }
            Err(e) => return Err(e),
        }
    }

    // Every source at once, each on its own thread.
    let mut by_src: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if !unreachable.contains_key(&j.dst) {
            by_src.entry(j.src).or_default().push(i);
        }
    }
    let results: Vec<(Vec<usize>, SourceResult)> = std::thread::scope(|s| {
        let handles: Vec<_> = by_src
            .into_iter()
            .map(|(src, mine)| {
                let arrivals = arrivals.clone();
                let h = s.spawn({
                    let mine = mine.clone();
                    move || probe_from(ws, src, jobs, &mine, opts, arrivals)
                });
                (mine, h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(mine, h)| {
                let r = h.join().map_err(|_| anyhow!("probe thread panicked"));
                (mine, r.and_then(|r| r))
            })
            .collect()
    });
    for t in targets {
        t.stop();
    }

    let mut out: Vec<Option<Outcome>> = vec![None; jobs.len()];
    for (mine, r) in results {
        match r {
            Ok(done) => {
                for (i, o) in done {
                    out[i] = Some(o);
                }
            }
            Err(e) if tolerant => {
                for i in mine {
                    out[i] = Some(Outcome::Untestable(format!("{e:#}")));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(jobs
        .iter()
        .zip(out)
        .map(|(j, o)| match (o, unreachable.get(&j.dst)) {
            (Some(o), _) => o,
            (None, Some(why)) => Outcome::Untestable(why.clone()),
            (None, None) => Outcome::Untestable("not probed".into()),
        })
        .collect())
}

fn is_echo(v6: bool, icmp_type: u8) -> bool {
    icmp_type == if v6 { 128 } else { 8 }
}

/// What one source's thread found: `(job index, outcome)` for each of its jobs.
type SourceResult = Result<Vec<(usize, Outcome)>>;

/// The jobs `mine` (all from workload `src`), concurrently, from a thread inside its
/// namespace. Results are `(job index, outcome)`.
fn probe_from(
    ws: &[WorkloadPlan],
    src: usize,
    jobs: &[Job],
    mine: &[usize],
    opts: &ProbeOptions,
    arrivals: Arc<Arrivals>,
) -> SourceResult {
    netns::join(&ws[src].netns)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("probe runtime")?;
    let limit = Arc::new(Semaphore::new(PER_SOURCE));
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for &i in mine {
            let j = jobs[i];
            let limit = limit.clone();
            let arrivals = arrivals.clone();
            let (probe, timeout, family) = (opts.probes[j.probe], opts.timeout, opts.family);
            let d = ws[j.dst].clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (i, one(&d, j.dst, probe, family, timeout, arrivals).await)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| anyhow!("probe task: {e}"))?);
        }
        Ok(out)
    })
}

async fn one(
    d: &WorkloadPlan,
    di: usize,
    probe: L4,
    family: Family,
    timeout: Duration,
    arrivals: Arc<Arrivals>,
) -> Outcome {
    let v6 = family == Family::V6;
    match probe {
        L4::Port { protocol, port } => {
            let addr = SocketAddr::new(d.ip(v6), port);
            match protocol {
                Protocol::Tcp => client::tcp(addr, timeout).await,
                Protocol::Udp => client::udp(addr, timeout).await,
                Protocol::Sctp => {
                    let kind = RawKind::SctpInit { port };
                    client::arrival(d.ip(v6), di, kind, arrivals, timeout).await
                }
                other => Outcome::Untestable(format!("{other} has no ports")),
            }
        }
        L4::Icmp {
            v6: icmp6,
            icmp_type,
            code,
        } => {
            let dst = d.ip(icmp6);
            if is_echo(icmp6, icmp_type) && code == 0 {
                client::echo(dst, timeout).await
            } else {
                let kind = RawKind::Icmp { icmp_type, code };
                client::arrival(dst, di, kind, arrivals, timeout).await
            }
        }
    }
}

/// Each concurrent probe holds a socket or two: lift the soft descriptor limit to the
/// hard one (1024 by default would cap a lab at a few dozen workloads).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
