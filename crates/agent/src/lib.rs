//! The node agent (`bulkhead agent`): keeps one node's nftables data plane equal to
//! what the policy engine resolves from the inventory and policy files, cuts live
//! connections a change forbids, and records flows from the data plane's log.
//!
//! Threads (created only after the process entered the node's network namespace, so
//! they all live there):
//! - main: the reconcile loop (file events -> batch -> engine -> render -> diff -> nft);
//! - the watcher (`notify`), which only sends events;
//! - NFLOG: reads logged packets and sends enriched flow records to the store;
//! - conntrack: hears ended connections and sends their counters to the store;
//! - store: commits records in batches to `store.db` and prunes it (`bulkhead-store`);
//! - signals: turns SIGTERM/SIGINT into a clean stop (the table stays programmed, so a
//!   restarted agent adopts it and traffic never notices).
#![forbid(unsafe_code)]

pub mod config;
pub mod conntrack;
pub mod decide;
pub mod explained;
pub mod flows;
pub mod fqdn;
pub mod links;
pub mod netns;
pub mod nflog;
pub mod proxy;
pub mod proxy_latency;
pub mod reconcile;
pub mod respond;
pub mod sensors;
pub mod sockpath;
pub mod sources;
pub mod status;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long after a patched policy edit its leftovers are swept (if nothing else comes).
const TIDY_AFTER: Duration = Duration::from_millis(200);

use anyhow::{Context, Result};
use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::names::{DIVERT_MARK, DIVERT_TABLE, PROXY_CT_MARK, PROXY_MARK};
use tracing::{info, warn};

pub use config::Config;
use reconcile::{Reconciler, Shared, StartError};
use watch::{Batch, Event};

/// Exit code for inputs that do not load (as the rest of the CLI).
pub const EXIT_INVALID_INPUT: u8 = 3;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BULKHEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn absolute(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect()
}

/// Run the agent until SIGTERM/SIGINT (or once). Returns the process exit code.
///
/// Must be called before the process creates any thread when `cfg.netns` is set.
pub fn run(mut cfg: Config) -> Result<u8> {
    if let Some(ns) = &cfg.netns {
        netns::enter(ns)?;
    }
    init_logging();
    cfg.inventory = absolute(&cfg.inventory);
    cfg.policy = absolute(&cfg.policy);
    let nft = Nft::local();
    if cfg.uninstall {
        nft.delete_table()
            .context("cannot delete the bulkhead table")?;
        bulkhead_proxy::routing::remove(DIVERT_MARK, DIVERT_TABLE);
        let _ = sockpath::remove_nft();
        bulkhead_sockops::retire(&bulkhead_sockops::pin_dir(&cfg.state_dir))
            .context("cannot remove the socket path's programs")?;
        info!("removed the bulkhead table");
        return Ok(0);
    }
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create {}", cfg.state_dir.display()))?;
    // Bind NFLOG before programming: packets the new rules log from the first instant
    // wait in the socket until the flow thread reads them.
    let nflog = if cfg.once {
        None
    } else {
        match nflog::Nflog::bind(bulkhead_dataplane::names::LOG_GROUP as u16) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "cannot bind NFLOG group 1 (is another logger using it?): no flow records");
                None
            }
        }
    };
    // Watch before loading: an edit made while the agent loads is then an event in
    // the channel, not a change nobody sees.
    let (tx, rx) = mpsc::channel::<Event>();
    let inputs: Vec<PathBuf> = cfg.inventory.iter().chain(&cfg.policy).cloned().collect();
    let _watcher = if cfg.once {
        None
    } else {
        Some(watch::start(&inputs, tx.clone()).context("cannot watch the input files")?)
    };
    let mut rec = match Reconciler::start(&cfg, nft) {
        Ok(r) => r,
        Err(StartError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("error: invalid input; nothing was programmed");
            return Ok(EXIT_INVALID_INPUT);
        }
        Err(StartError::Kernel(e)) => anyhow::bail!("cannot program nftables: {e}"),
    };
    rec.shared.responses.connect(tx.clone());
    if !cfg.keep_connections {
        cut_connections(&rec.shared, cfg.l7_proxy.is_some());
        if cfg.l7_proxy.is_none() {
            rec.refresh_status();
        }
    }
    if cfg.once {
        return Ok(0);
    }
    info!(inputs = inputs.len(), "watching");

    let store = open_store(&cfg);
    let _ = rec.shared.counters.store.set(match &store {
        Ok(s) => Ok(s.stats.clone()),
        Err(e) => Err(e.clone()),
    });
    let store = store.ok();
    if let Some(s) = &store {
        if let Some(log) = nflog {
            start_flows(&rec.shared, log, s.clone());
        }
        start_ended(&rec.shared, s.clone());
    }
    // Evidence of refusals, from the proxy and the socket path, within one budget.
    let captures = Arc::new(bulkhead_proxy::captures::Captures::with_defaults(
        cfg.state_dir.join("captures"),
    ));
    let _ = rec.shared.counters.captures.set(captures.clone());
    let _proxy = match cfg.l7_proxy {
        Some(p) => Some(start_proxy(&cfg, p, &rec.shared, store.clone(), &captures)?),
        None => None,
    };
    if !cfg.redis_socket_path {
        retire_socket_path(&cfg);
    }
    let mut socket_path = match (&_proxy, cfg.redis_socket_path) {
        (Some((_, authority)), true) => {
            let mut sp = sockpath::SocketPath::start(&bulkhead_sockops::pin_dir(&cfg.state_dir))
                .context("cannot start the Redis socket path")?;
            if let Some(key) = cfg.vouch_key {
                sp.vouch_between_nodes(key, cfg.pod_interfaces.clone())
                    .context("cannot vouch for socket-path connections between nodes")?;
            }
            sync_socket_path(&mut sp, &rec);
            sp.report_to(authority.clone(), Some(captures.clone()))?;
            if let Ok(mut slot) = rec.shared.counters.socket_path.lock() {
                *slot = Some(sp.status());
            }
            Some(sp)
        }
        (None, true) => anyhow::bail!("the Redis socket path needs the L7 proxy (--l7-proxy)"),
        _ => None,
    };
    if _proxy.is_some() {
        // Programmed and listening: ready.
        rec.refresh_status();
    }

    {
        let tx = tx.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    let _ = tx.send(Event::Shutdown);
                }
            })?;
    }

    let cutter = Cutter::spawn(rec.shared.clone(), cfg.l7_proxy.is_some())?;
    let mut batch: Option<Batch> = None;
    // Paths of a rejected change: retried with the next batch (a fix to the bad file
    // must not lose the good files' changes that came with it).
    let mut pending: Option<Batch> = None;
    let mut last_status = Instant::now();
    let quarantine_file = cfg.state_dir.join(respond::QUARANTINE_FILE);
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut quarantine_seen = mtime(&quarantine_file);
    loop {
        let timeout = match &batch {
            Some(b) => b
                .due(cfg.debounce)
                .saturating_duration_since(Instant::now()),
            None if rec.tidy_soon() => TIDY_AFTER.saturating_sub(last_status.elapsed()),
            // Short enough that `bulkhead quarantine` is programmed within half a second.
            None => Duration::from_millis(500),
        };
        let mut stop = false;
        let mut actions: Vec<bulkhead_respond::LocalAction> = Vec::new();
        let mut absorb = |ev: Event, batch: &mut Option<Batch>| match ev {
            Event::Changed {
                paths,
                rescan,
                complete,
                at,
            } => {
                batch
                    .get_or_insert_with(|| Batch::new(at))
                    .add(paths, rescan, complete, at);
            }
            Event::Shutdown => stop = true,
            Event::Respond(a) => actions.push(a),
        };
        match rx.recv_timeout(timeout) {
            Ok(ev) => {
                absorb(ev, &mut batch);
                // Take everything already queued into the same batch: under a backlog a
                // batch started from an old event is due at once, and applying events one
                // by one would make every change wait behind all the others.
                while let Ok(ev) = rx.try_recv() {
                    absorb(ev, &mut batch);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stop {
            info!("stopping; the kernel stays programmed");
            break;
        }
        // Response rules first: a quarantine must not wait behind a file change.
        let mut quarantine_changed = false;
        for a in &actions {
            match a {
                bulkhead_respond::LocalAction::Quarantine { .. } => {
                    quarantine_changed |= respond::quarantine(&cfg.state_dir, a);
                }
                bulkhead_respond::LocalAction::Capture { .. } => {
                    let engine = rec.shared.engine.read().unwrap_or_else(|e| e.into_inner());
                    respond::capture(&cfg.state_dir, &engine, a, captures.clone());
                }
            }
        }
        let seen = mtime(&quarantine_file);
        if quarantine_changed || seen != quarantine_seen {
            quarantine_seen = seen;
            rec.sync_quarantine();
            if let Some(sp) = &mut socket_path {
                sync_socket_path(sp, &rec);
            }
        }
        if let Some(sp) = &socket_path
            && let Ok(mut slot) = rec.shared.counters.socket_path.lock()
        {
            *slot = Some(sp.status());
        }
        let now = Instant::now();
        if let Some(b) = batch.take_if(|b| b.due(cfg.debounce) <= now) {
            let mut all = b.clone();
            if let Some(p) = pending.take() {
                all.paths.extend(p.paths);
                all.rescan |= p.rescan;
            }
            let out = rec.change(&all.paths, all.rescan, b.first);
            if out.programmed {
                let engine = rec.shared.engine.read().unwrap_or_else(|e| e.into_inner());
                rec.shared.responses.refresh(&engine);
                // New `dns:` patterns get the addresses of the names they match.
                rec.shared.fqdn.resync(&engine, rec.applied());
                drop(engine);
                // Quarantined workloads keep their quarantine at their new addresses.
                rec.sync_quarantine();
            }
            // Also when the kernel's rules stayed the same: an edit of a Redis rule's
            // command list changes tables only.
            if !out.rejected
                && let Some(sp) = &mut socket_path
            {
                sync_socket_path(sp, &rec);
            }
            if out.rejected {
                pending = Some(all);
            } else if out.programmed && !cfg.keep_connections {
                cutter.request();
            }
            last_status = Instant::now();
        } else if batch.is_none() && rec.tidy_soon() && last_status.elapsed() >= TIDY_AFTER {
            rec.sweep();
            rec.refresh_status();
            last_status = Instant::now();
        } else if last_status.elapsed() >= Duration::from_secs(2) {
            // Idle: sweep what element-only updates left behind; flow counters move
            // between reconciles.
            if batch.is_none() {
                rec.sweep();
            }
            rec.refresh_status();
            last_status = Instant::now();
        }
    }
    rec.refresh_status();
    // What was sent is committed before the process ends.
    if let Some(s) = &store {
        let _ = s.flush();
    }
    Ok(0)
}

/// The store in the state directory, kept within the disk budget of the flow records
/// (`cfg.flows`: what the rotated JSON-lines files used to be allowed) and a week.
fn open_store(cfg: &Config) -> Result<Arc<bulkhead_store::Sink>, String> {
    let path = cfg.state_dir.join(bulkhead_store::FILE);
    let retention = bulkhead_store::Retention {
        max_bytes: Some(
            cfg.flows
                .max_bytes
                .saturating_mul(u64::from(cfg.flows.keep) + 1),
        ),
        ..bulkhead_store::Retention::default()
    };
    match bulkhead_store::Sink::open(&path, retention) {
        Ok(s) => Ok(Arc::new(s)),
        Err(e) => {
            warn!(error = %e, path = %path.display(), "cannot open the store: no flow records or events");
            Err(format!("{}: {e}", path.display()))
        }
    }
}

/// Started without `--redis-socket-path` after a run with it: new connections go to the
/// proxy again (the socket path's nftables table goes), and the connections the pinned
/// programs still hold have their next write refused (their tables are emptied), so
/// their clients reconnect through the proxy instead of going on with stale tables.
fn retire_socket_path(cfg: &Config) {
    if let Err(e) = sockpath::remove_nft() {
        warn!(error = %format!("{e:#}"), "cannot remove the socket path's nftables table");
    }
    match bulkhead_sockops::retire(&bulkhead_sockops::pin_dir(&cfg.state_dir)) {
        Ok(Some(tables)) => info!(tables, "retired the Redis socket path of an earlier run"),
        Ok(None) => {}
        Err(e) => warn!(error = %format!("{e:#}"), "cannot retire the socket path's programs"),
    }
}

/// Bring the socket path up to date with the engine; a failure leaves the kernel's
/// earlier tables (logged: the next change tries again).
fn sync_socket_path(sp: &mut sockpath::SocketPath, rec: &Reconciler) {
    let engine = rec.shared.engine.read().unwrap_or_else(|e| e.into_inner());
    let scope = rec.shared.scope.read().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = sp.sync(&engine, &scope, rec.quarantined()) {
        warn!(error = %format!("{e:#}"), "cannot program the Redis socket path");
    }
}

/// Start the L7 proxy (the divert chain is already programmed: connections wait in the
/// listen backlog of nobody until this returns, and their SYNs are retransmitted).
fn start_proxy(
    cfg: &Config,
    p: config::L7Proxy,
    shared: &Arc<Shared>,
    store: Option<Arc<bulkhead_store::Sink>>,
    captures: &Arc<bulkhead_proxy::captures::Captures>,
) -> Result<(bulkhead_proxy::Handle, Arc<proxy::ProxyAuthority>)> {
    bulkhead_proxy::routing::install(DIVERT_MARK, DIVERT_TABLE)
        .context("cannot install the L7 proxy's policy routes")?;
    let authority = Arc::new(proxy::ProxyAuthority {
        shared: shared.clone(),
        store,
        log_allowed: cfg.log_allowed,
        sensors: Default::default(),
        explained: Default::default(),
    });
    let pcfg = bulkhead_proxy::Config {
        port: p.port,
        upstream_mark: PROXY_MARK,
        captures: Some(captures.clone()),
        busy_poll: p.busy_poll,
        ..bulkhead_proxy::Config::default()
    };
    let h = bulkhead_proxy::start(pcfg, authority.clone(), bulkhead_proxy::builtin_protocols())
        .context("cannot start the L7 proxy")?;
    info!(port = p.port, "L7 proxy listening");
    Ok((h, authority))
}

/// Cuts forbidden connections on its own thread, so that dumping and judging the whole
/// conntrack table never delays the next change. Requests that arrive while a cut runs
/// are coalesced into one more cut with the rules as they are then.
struct Cutter {
    tx: std::sync::mpsc::SyncSender<()>,
}

impl Cutter {
    fn spawn(shared: Arc<Shared>, proxied: bool) -> Result<Cutter> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("conntrack-cut".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    cut_connections(&shared, proxied);
                }
            })?;
        Ok(Cutter { tx })
    }

    fn request(&self) {
        // A full channel means a cut is already queued: it will see these rules too.
        let _ = self.tx.try_send(());
    }
}

/// Delete the conntrack entries of live connections the current rules forbid, and,
/// with the proxy on, of those it must now read but never saw ([`conntrack::doomed`]).
fn cut_connections(shared: &Arc<Shared>, proxied: bool) {
    cut(
        shared,
        |entries| {
            let engine = shared.engine.read().unwrap_or_else(|e| e.into_inner());
            let mut scope = shared
                .scope
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            // FQDN egress: a connection is not cut because its name's TTL ran out.
            scope.dns_remembered = true;
            (entries.into_iter())
                .filter(|e| conntrack::doomed(e, &engine, &scope, proxied))
                .collect()
        },
        "cut connections the change forbids, or whose requests it makes the proxy's",
    );
}

/// Cut every connection from or to these addresses (they were just quarantined).
pub(crate) fn cut_addresses(shared: &Shared, addrs: &[std::net::IpAddr]) {
    cut(
        shared,
        |entries| {
            entries
                .into_iter()
                .filter(|e| addrs.contains(&e.src) || addrs.contains(&e.dst))
                .collect()
        },
        "cut the connections of quarantined workloads",
    );
}

/// Delete the conntrack entries `pick` chooses from the live ones, and count them.
fn cut(
    shared: &Shared,
    pick: impl FnOnce(Vec<conntrack::Entry>) -> Vec<conntrack::Entry>,
    what: &str,
) {
    let doomed = match conntrack::list() {
        Ok(e) => pick(e),
        Err(e) => {
            warn!(error = %e, "cannot list conntrack entries");
            return;
        }
    };
    if doomed.is_empty() {
        return;
    }
    match conntrack::delete(&doomed) {
        Ok(n) => {
            shared
                .counters
                .connections_cut
                .fetch_add(n as u64, Ordering::Relaxed);
            info!(cut = n, "{what}");
        }
        Err(e) => warn!(error = %e, "cannot delete conntrack entries"),
    }
}

/// Enrich an observation with the engine as it is now (from `memo` when the same flow
/// was explained in this generation).
fn enrich(
    shared: &Shared,
    o: &flows::Observed,
    settled: bool,
    memo: &explained::Explained,
) -> flows::FlowRecord {
    let engine = shared.engine.read().unwrap_or_else(|e| e.into_inner());
    let scope = shared.scope.read().unwrap_or_else(|e| e.into_inner());
    memo.enrich_l7(
        &flows::Enrich {
            engine: &engine,
            scope: &scope,
            generation: shared.generation.load(Ordering::Acquire),
            settled,
            fail_closed: shared.fail_closed,
        },
        o,
        None,
    )
}

fn write_record(shared: &Shared, store: &bulkhead_store::Sink, r: flows::FlowRecord) {
    let c = &shared.counters;
    c.flows.fetch_add(1, Ordering::Relaxed);
    if r.consistent == Some(false) {
        c.inconsistent.fetch_add(1, Ordering::Relaxed);
        warn!(
            src = %r.src.ip, dst = %r.dst.ip, service = %r.service(), kernel = r.verdict.as_str(),
            "the kernel and the engine disagree"
        );
    }
    respond::flow(shared, &r);
    if store
        .send(bulkhead_store::Record::Flow(Box::new(r)))
        .is_err()
    {
        c.flow_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The NFLOG reader: every logged packet becomes an enriched flow record.
fn start_flows(shared: &Arc<Shared>, log: nflog::Nflog, store: Arc<bulkhead_store::Sink>) {
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("nflog".into())
        .spawn(move || {
            let s2 = shared.clone();
            let memo = explained::Explained::default();
            let mut senders = links::Senders::default();
            nflog::run(
                log,
                |mut o| {
                    // A forged source: who really sent it, from the interface's routes.
                    if let Some(f) = o.forged.as_mut()
                        && let Some(i) = f.indev
                    {
                        f.sender = senders.of(i);
                    }
                    let r = enrich(&shared, &o, shared.settled(Instant::now()), &memo);
                    write_record(&shared, &store, r);
                },
                |e| {
                    s2.counters.flow_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "NFLOG receive error (records lost)");
                },
            );
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the NFLOG thread");
    }
}

/// Conntrack DESTROY events: `end` records with packet and byte counters.
fn start_ended(shared: &Arc<Shared>, store: Arc<bulkhead_store::Sink>) {
    if let Err(e) = conntrack::enable_accounting() {
        warn!(error = %e, "cannot enable nf_conntrack_acct: end records carry no counters");
    }
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("conntrack".into())
        .spawn(move || {
            let memo = explained::Explained::default();
            let res = conntrack::listen_ended(|e| {
                // The proxy's own connection to the server: the client's (diverted)
                // entry of the same connection has its end record.
                if e.mark == PROXY_CT_MARK {
                    return true;
                }
                let o = flows::Observed {
                    time: std::time::SystemTime::now(),
                    action: flows::Action::Allow,
                    src: e.src,
                    dst: e.dst,
                    protocol: e.protocol,
                    sport: e.sport,
                    dport: e.dport,
                    icmp: e.icmp,
                    len: None,
                    forged: None,
                };
                let mut r = enrich(&shared, &o, false, &memo);
                // The connection was allowed when it opened; today's rules may say
                // otherwise, so an end record names the two ends, not a decision.
                r.event = "end".into();
                r.decided_by = None;
                r.mode = None;
                r.violation = false;
                r.learned = false;
                r.logged.clear();
                r.packets = e.packets;
                r.bytes = e.bytes;
                write_record(&shared, &store, r);
                true
            });
            if let Err(e) = res {
                warn!(error = %e, "conntrack events stopped");
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the conntrack thread");
    }
}
