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

use std::collections::{BTreeMap, BTreeSet};
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
use client::{Outcome, RawKind};
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
    raise_fd_limit();
    client::seed_tags();
    let ws = &state.plan.workloads;
    let v6 = opts.family == Family::V6;
    let arrivals = Arc::new(Arrivals::default());

    // What every destination must offer.
    let mut tcp = BTreeSet::new();
    let mut udp = BTreeSet::new();
    let mut sniff = BTreeSet::new();
    for p in &opts.probes {
        match *p {
            L4::Port {
                protocol: Protocol::Tcp,
                port,
            } => {
                tcp.insert(port);
            }
            L4::Port {
                protocol: Protocol::Udp,
                port,
            } => {
                udp.insert(port);
            }
            L4::Port {
                protocol: Protocol::Sctp,
                ..
            } => {
                sniff.insert((v6, PROTO_SCTP));
            }
            L4::Port { .. } => {}
            L4::Icmp {
                v6: icmp6,
                icmp_type,
                ..
            } => {
                if !is_echo(icmp6, icmp_type) {
                    sniff.insert((icmp6, if icmp6 { PROTO_ICMPV6 } else { PROTO_ICMP }));
                }
            }
        }
    }
    let mut targets = Vec::new();
    if ws.len() > 1 {
        for (i, w) in ws.iter().enumerate() {
            let spec = TargetSpec {
                index: i,
                netns: w.netns.clone(),
                name: w.key.to_string(),
                v6,
                tcp: tcp.iter().copied().collect(),
                udp: udp.iter().copied().collect(),
                sniff: sniff.iter().copied().collect(),
            };
            targets.push(target::start(spec, arrivals.clone())?);
        }
    }

    // Every source at once, each on its own thread.
    let results: Vec<Result<Vec<(usize, usize, Outcome)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..ws.len())
            .filter(|_| ws.len() > 1)
            .map(|src| {
                let arrivals = arrivals.clone();
                s.spawn(move || probe_from(ws, src, opts, arrivals))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("probe thread panicked"))?)
            .collect()
    });
    for t in targets {
        t.stop();
    }

    let mut outcome: BTreeMap<(usize, usize, usize), Outcome> = BTreeMap::new();
    for r in results {
        for (src, dst_probe, o) in r? {
            let (dst, probe) = (dst_probe / opts.probes.len(), dst_probe % opts.probes.len());
            outcome.insert((src, dst, probe), o);
        }
    }
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

fn is_echo(v6: bool, icmp_type: u8) -> bool {
    icmp_type == if v6 { 128 } else { 8 }
}

/// All probes from workload `src`, concurrently, from a thread inside its namespace.
/// Results are `(src, dst * probes + probe, outcome)`.
fn probe_from(
    ws: &[WorkloadPlan],
    src: usize,
    opts: &ProbeOptions,
    arrivals: Arc<Arrivals>,
) -> Result<Vec<(usize, usize, Outcome)>> {
    netns::join(&ws[src].netns)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("probe runtime")?;
    let limit = Arc::new(Semaphore::new(PER_SOURCE));
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (di, d) in ws.iter().enumerate() {
            if di == src {
                continue;
            }
            for (pi, probe) in opts.probes.iter().enumerate() {
                let limit = limit.clone();
                let arrivals = arrivals.clone();
                let (probe, timeout, family) = (*probe, opts.timeout, opts.family);
                let d = d.clone();
                let id = di * opts.probes.len() + pi;
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    (id, one(&d, di, probe, family, timeout, arrivals).await)
                });
            }
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            let (id, o) = r.map_err(|e| anyhow!("probe task: {e}"))?;
            out.push((src, id, o));
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
