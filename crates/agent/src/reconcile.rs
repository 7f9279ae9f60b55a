//! From inputs to the kernel: load, resolve with the engine, render, diff against what
//! was last applied, apply as one nft transaction; and the same, incrementally, for
//! every batch of file changes.
//!
//! Invariants:
//! - a bad edit (a file that does not parse, a policy that does not compile) changes
//!   nothing: neither the engine nor the kernel, and the files stay pending so the next
//!   event retries them;
//! - the kernel is only ever changed by one diff transaction, so no packet sees half a
//!   change; at start the diff is computed against what the kernel holds (adoption), so
//!   a restarted agent rewrites nothing that is already right;
//! - if a transaction fails, the kernel is re-read and the diff retried once from what
//!   is really there.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bulkhead_dataplane::Transaction;
use bulkhead_dataplane::batch::BatchError;
use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::node::{NodeState, Update, WorkloadChange};
use bulkhead_dataplane::{RenderOptions, Ruleset};
use bulkhead_policy::Engine;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::decide::{NodeScope, local_addresses};
use crate::respond::QuarantineList;
use crate::sources::{Delta, Role, Sources};
use crate::status::{Counters, Latency, Status, append_latency, now_rfc3339};

/// Apply a transaction as one netlink batch from this process (8-16 ms at 10k
/// workloads, bytecode-identical to nft's in `crates/dataplane/tests/batch.rs`), or
/// through `nft -j -f -` (30-50 ms against a big table) when it holds something the
/// encoder does not lay out. Either way it is one kernel transaction: all or nothing.
///
/// A batch the kernel refuses is retried once through nft, whose answer is final: a
/// refusal nft does not repeat is an encoder bug, logged with the command it hit, and
/// must not leave the node unprogrammed.
fn apply_tx(nft: &Nft, tx: &Transaction) -> Result<&'static str, String> {
    let via_nft = || {
        nft.apply(tx)
            .map(|()| "nft")
            .map_err(|e| format!("nft: {e}"))
    };
    match bulkhead_dataplane::batch::apply(None, tx) {
        Ok(()) => Ok("netlink"),
        Err(BatchError::Unsupported(why)) => {
            debug!(%why, "not expressible as a netlink batch; applying with nft");
            via_nft()
        }
        Err(e) => {
            warn!(error = %e, "netlink batch failed; applying with nft");
            via_nft()
        }
    }
}

/// Free a replaced ruleset (or policy) on another thread: off the change's critical path.
fn retire<T: Send + 'static>(old: T) {
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(old));
}

/// What the reconcile loop shares with the flow and conntrack threads.
pub struct Shared {
    pub engine: RwLock<Engine>,
    pub scope: RwLock<NodeScope>,
    pub generation: AtomicU64,
    /// True from the moment a change starts touching the engine until nft is done.
    pub applying: AtomicBool,
    /// When the kernel last caught up with the engine.
    pub settled_at: Mutex<Instant>,
    pub counters: Counters,
    pub fail_closed: bool,
    /// Response rules of the current policy (see `crate::respond`).
    pub responses: crate::respond::Responses,
    /// FQDN egress: names learnt from DNS answers and the DNS sets' writer.
    pub fqdn: Arc<crate::fqdn::Fqdn>,
}

impl Shared {
    /// May a packet received at `at` be judged against the engine? Not while a change
    /// is being applied, nor shortly after (NFLOG batches packets for up to 10 ms).
    pub fn settled(&self, at: Instant) -> bool {
        if self.applying.load(Ordering::Acquire) {
            return false;
        }
        let t = *self.settled_at.lock().unwrap_or_else(|e| e.into_inner());
        at > t + Duration::from_millis(100)
    }
}

/// Why the agent could not start.
#[derive(Debug)]
pub enum StartError {
    /// Input problems, one line each: nothing was programmed.
    Invalid(Vec<String>),
    Kernel(String),
}

/// The result of one batch of changes.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The kernel changed (so live connections may need cutting).
    pub programmed: bool,
    /// The change was rejected (a bad edit); the paths stay pending.
    pub rejected: bool,
}

pub struct Reconciler {
    cfg: Config,
    nft: Nft,
    opts: RenderOptions,
    /// What the kernel holds, and how to change it incrementally.
    node: NodeState,
    /// Element-only updates and patches since the last full one (a full one then sweeps
    /// chains and sets no identity uses any more).
    since_full: usize,
    /// A patched policy edit left chains behind: sweep soon (see `tidy_soon`).
    patched: bool,
    /// How the last update was planned (elements, patch, render) and how it reached the
    /// kernel (netlink or nft), for the log.
    plan: &'static str,
    via: &'static str,
    sources: Sources,
    pub shared: Arc<Shared>,
    pub status: Status,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Reconciler {
    /// Load everything, adopt the kernel's table and program the difference.
    pub fn start(cfg: &Config, nft: Nft) -> Result<Reconciler, StartError> {
        let t0 = Instant::now();
        let inputs: Vec<(Role, PathBuf)> = cfg
            .inventory
            .iter()
            .map(|p| (Role::Inventory, p.clone()))
            .chain(cfg.policy.iter().map(|p| (Role::Policy, p.clone())))
            .collect();
        let (sources, bundle) = Sources::load(inputs)
            .map_err(|d| StartError::Invalid(d.iter().map(|x| x.to_string()).collect()))?;
        let engine = Engine::new(&bundle)
            .map_err(|errs| StartError::Invalid(errs.iter().map(|e| e.to_string()).collect()))?;
        let opts = RenderOptions {
            node: cfg.node.clone(),
            pod_interfaces: cfg.pod_interfaces.clone(),
            log_allowed: cfg.log_allowed,
            silent_drop: cfg.silent_drop,
            l7_proxy: cfg.l7_proxy.map(|p| p.port),
            // Quarantine survives restarts: programmed with everything else.
            quarantine: QuarantineList::load(&cfg.state_dir).addresses(&engine),
        };
        let observed = nft.read().map_err(|e| StartError::Kernel(e.to_string()))?;
        let adopted = observed.exists;
        let mut node = NodeState::adopt(opts.clone(), observed, &engine);
        let update = node.plan_full(&engine, false);
        let commands = match &update {
            Update::Full { tx, .. } => tx.len(),
            Update::Elements { ops, .. } => ops.len(),
        };
        let ta = Instant::now();
        if let Update::Full { tx, .. } = &update {
            apply_tx(&nft, tx).map_err(StartError::Kernel)?;
        }
        let _ = node.commit(update);
        let apply = ta.elapsed();
        info!(
            commands,
            adopted,
            apply_ms = ms(apply),
            "programmed the kernel"
        );
        let responses = crate::respond::Responses::new(&engine, cfg.node.as_deref());
        let fqdn = crate::fqdn::Fqdn::start(cfg.dns_min_ttl, cfg.dns_resolvers.clone())
            .map_err(|e| StartError::Kernel(format!("cannot start the DNS set writer: {e}")))?;
        // The kernel kept the DNS sets' elements: know why before judging connections.
        fqdn.names.load(&cfg.state_dir);
        let shared = Arc::new(Shared {
            responses,
            scope: RwLock::new(NodeScope {
                node: cfg.node.clone(),
                host_addrs: local_addresses(),
                dns: fqdn.names.clone(),
                dns_remembered: false,
            }),
            fqdn,
            engine: RwLock::new(engine),
            generation: AtomicU64::new(1),
            applying: AtomicBool::new(false),
            settled_at: Mutex::new(Instant::now()),
            counters: Counters::default(),
            fail_closed: cfg.pod_interfaces.is_some(),
        });
        let mut r = Reconciler {
            cfg: cfg.clone(),
            nft,
            opts,
            node,
            since_full: 0,
            patched: false,
            plan: "",
            via: "",
            sources,
            shared,
            status: Status {
                pid: std::process::id(),
                node: cfg.node.clone(),
                netns: cfg.netns.clone(),
                ..Status::default()
            },
        };
        r.status.generation = 1;
        r.status.reconcile_ms = ms(t0.elapsed());
        r.status.last_transaction_commands = commands;
        // With the L7 proxy, status.json (what `lab up` and operators wait for) appears
        // once the proxy listens too (see `run`): before that, connections its rules
        // decide are refused.
        if cfg.l7_proxy.is_none() || cfg.once {
            r.refresh_status();
        }
        Ok(r)
    }

    /// The last applied (desired) ruleset.
    /// The addresses quarantined now.
    pub fn quarantined(&self) -> &std::collections::BTreeSet<std::net::IpAddr> {
        &self.opts.quarantine
    }

    pub fn applied(&self) -> &Ruleset {
        &self.node.applied
    }

    pub fn refresh_status(&mut self) {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let stats = engine.stats();
        let scope = self.shared.scope.read().unwrap_or_else(|e| e.into_inner());
        self.status.workloads = stats.workloads;
        self.status.identities = stats.identities;
        self.status.local_workloads = engine
            .workloads()
            .iter()
            .filter(|(_, w)| scope.node.is_none() || w.node == scope.node)
            .count();
        drop(scope);
        drop(engine);
        self.status.input_files = self.sources.file_count();
        self.status.objects = self.node.applied.object_count().into();
        self.status.time = now_rfc3339();
        self.status.sweep_pending = self.since_full > 0;
        self.status.fill_counters(&self.shared.counters);
        self.status.fqdn = self.shared.fqdn.counters();
        if let Err(e) = self.shared.fqdn.names.save(&self.cfg.state_dir) {
            warn!(error = %e, "cannot write {}", crate::fqdn::NAMES_FILE);
        }
        let (matched, delivered, failed, dropped) = self.shared.responses.counters();
        self.status.responses = crate::status::ResponseCounters {
            matched,
            delivered,
            failed,
            dropped,
        };
        if let Err(e) = self.status.write(&self.cfg.state_dir) {
            warn!(error = %e, "cannot write status.json");
        }
    }

    /// Apply one batch of changed paths. `since` is when the first event of the batch
    /// arrived: the change->programmed latency is measured from there.
    pub fn change(&mut self, paths: &BTreeSet<PathBuf>, rescan: bool, since: Instant) -> Outcome {
        let t0 = Instant::now();
        self.shared.applying.store(true, Ordering::Release);
        let out = self.change_inner(paths, rescan, since, t0);
        *self
            .shared
            .settled_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.shared.applying.store(false, Ordering::Release);
        out
    }

    fn reject(&mut self, what: &str, problems: Vec<String>) -> Outcome {
        for p in &problems {
            warn!("{p}");
        }
        warn!("{what}: nothing changed; the previous state stays programmed");
        self.status.last_error = Some(format!("{what}: {}", problems.join("; ")));
        self.refresh_status();
        Outcome {
            programmed: false,
            rejected: true,
        }
    }

    fn change_inner(
        &mut self,
        paths: &BTreeSet<PathBuf>,
        rescan: bool,
        since: Instant,
        t0: Instant,
    ) -> Outcome {
        let ts = Instant::now();
        let mut delta = match self.sources.stage(paths, rescan) {
            Ok(d) => d,
            Err(d) => {
                return self.reject("bad input", d.iter().map(|x| x.to_string()).collect());
            }
        };
        if delta.is_empty() {
            // Nothing the engine sees changed (a file saved as it was, or a bad edit
            // undone): the inputs are good again.
            self.sources.commit(delta);
            if self.status.last_error.take().is_some() {
                self.refresh_status();
            }
            return Outcome::default();
        }
        let kind = match (delta.touches_inventory(), delta.policy.is_some()) {
            (true, true) => "inventory+policy",
            (true, false) => "inventory",
            _ => "policy",
        };
        let files = delta.files.len();
        let stage = ts.elapsed();
        let te = Instant::now();
        // Pure workload churn can go to the kernel as element changes; anything else
        // (policy, namespaces, nodes) needs a full render.
        let workloads_only = delta.policy.is_none()
            && delta.upsert_namespaces.is_empty()
            && delta.remove_nodes.is_empty()
            && delta.upsert_nodes.is_empty();
        // Only policy: the kernel's workload-derived sets stay as they are.
        let policy_only = delta.policy.is_some() && !delta.touches_inventory();
        let changes = match self.apply_to_engine(&mut delta) {
            Ok(c) => c,
            Err(errs) => return self.reject("policy does not compile", errs),
        };
        let resolve = te.elapsed();
        self.sources.commit(delta);
        {
            let mut scope = self.shared.scope.write().unwrap_or_else(|e| e.into_inner());
            scope.host_addrs = local_addresses();
        }
        let tr = Instant::now();
        let (commands, apply, error) = self.program(workloads_only.then_some(changes), policy_only);
        let render_diff = tr.elapsed().saturating_sub(apply);
        let latency = since.elapsed();
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.status.generation = generation;
        self.status.reconcile_ms = ms(t0.elapsed());
        self.status.last_transaction_commands = commands;
        self.status.last_change_latency_ms = Some(ms(latency));
        self.status.last_error = error.clone();
        info!(
            generation,
            change = kind,
            files,
            commands,
            latency_ms = ms(latency),
            read_parse_ms = ms(stage),
            resolve_ms = ms(resolve),
            render_diff_ms = ms(render_diff),
            apply_ms = ms(apply),
            plan = self.plan,
            via = self.via,
            "applied"
        );
        if let Err(e) = append_latency(
            &self.cfg.state_dir,
            &Latency {
                time: now_rfc3339(),
                generation,
                change: kind.into(),
                latency_ms: ms(latency),
                apply_ms: ms(apply),
                files,
                commands,
            },
        ) {
            warn!(error = %e, "cannot append to latency.jsonl");
        }
        self.refresh_status();
        Outcome {
            programmed: commands > 0 && error.is_none(),
            rejected: false,
        }
    }

    /// Policy first (it may fail, and then nothing changes), then inventory (cannot).
    /// Returns each workload as it was before and is after.
    fn apply_to_engine(&mut self, d: &mut Delta) -> Result<Vec<WorkloadChange>, Vec<String>> {
        let mut engine = self
            .shared
            .engine
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // The engine takes the policy set (no copy: thousands of documents); the
        // sources keep their per-file parses.
        if let Some(p) = d.policy.take() {
            let retired = engine
                .replace_policy(p)
                .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
            retire(retired);
        }
        for ns in &d.upsert_namespaces {
            engine.upsert_namespace(ns.clone());
        }
        for n in &d.remove_nodes {
            engine.remove_node(n);
        }
        for n in &d.upsert_nodes {
            engine.upsert_node(n.clone());
        }
        let mut changes = Vec::new();
        let current = |engine: &Engine, k: &bulkhead_model::WorkloadKey| {
            engine
                .workload_id(k)
                .and_then(|id| engine.workload(id))
                .cloned()
        };
        for k in &d.remove_workloads {
            let before = current(&engine, k);
            engine.remove_workload(k);
            changes.push(WorkloadChange {
                before,
                after: None,
            });
        }
        for w in &d.upsert_workloads {
            let before = current(&engine, &w.key);
            engine.upsert_workload(w.clone());
            changes.push(WorkloadChange {
                before,
                after: Some(w.clone()),
            });
        }
        Ok(changes)
    }

    /// Program the quarantine of `quarantine.json` (after a response rule or the CLI
    /// changed it, and after every change: addresses follow their workloads). Element
    /// changes only; connections of newly quarantined addresses are cut.
    pub fn sync_quarantine(&mut self) {
        let list = QuarantineList::load(&self.cfg.state_dir);
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let addrs = list.addresses(&engine);
        if addrs == self.node.opts.quarantine {
            return;
        }
        let added: Vec<std::net::IpAddr> = addrs
            .difference(&self.node.opts.quarantine)
            .copied()
            .collect();
        self.opts.quarantine = addrs.clone();
        let update = self.node.plan_quarantine(&engine, addrs);
        let result = match &update {
            Update::Elements { ops, .. } => bulkhead_dataplane::netlink::apply(None, ops)
                .map(|()| "netlink")
                .map_err(|e| e.to_string()),
            Update::Full { tx, .. } => apply_tx(&self.nft, tx),
        };
        drop(engine);
        match result {
            Ok(_) => {
                retire(self.node.commit(update));
                info!(
                    quarantined = list.workloads.len(),
                    addresses = self.opts.quarantine.len(),
                    "quarantine programmed"
                );
                if !added.is_empty() {
                    crate::cut_addresses(&self.shared, &added);
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot program the quarantine");
                self.status.last_error = Some(format!("quarantine: {e}"));
            }
        }
        self.status.quarantined = list.workloads.iter().map(|q| q.workload.clone()).collect();
        self.refresh_status();
    }

    /// Leftovers of a patched policy edit are waiting: the main loop sweeps shortly
    /// after the edit rather than after the usual idle period (policy edits are rare;
    /// a restarted agent then finds nothing to change).
    pub fn tidy_soon(&self) -> bool {
        self.patched
    }

    /// Collect chains and sets no identity uses any more, after element-only updates.
    /// Called when the agent is idle; a no-op otherwise.
    pub fn sweep(&mut self) {
        if self.since_full == 0 {
            return;
        }
        self.shared.applying.store(true, Ordering::Release);
        let (commands, _, error) = self.program(None, false);
        self.shared.applying.store(false, Ordering::Release);
        // A failed sweep is retried by the idle sweep, not every TIDY_AFTER.
        self.patched = false;
        if let Some(e) = error {
            warn!(error = %e, "sweep failed");
        } else if commands > 0 {
            info!(
                commands,
                "removed chains and sets no identity uses any more"
            );
        }
    }

    /// Turn the engine's state into the kernel's: element changes over netlink when only
    /// workloads changed (`changes`), else a full render and diff applied by nft. On
    /// failure the kernel is re-read and a full update retried once from what is really
    /// there. Returns (commands, kernel time, error).
    fn program(
        &mut self,
        changes: Option<Vec<WorkloadChange>>,
        policy_only: bool,
    ) -> (usize, Duration, Option<String>) {
        let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
        let update = match &changes {
            Some(c) => self.node.plan_workloads(&engine, c),
            None => self.node.plan_full(&engine, policy_only),
        };
        self.plan = match &update {
            Update::Elements { .. } => "elements",
            Update::Full {
                complete: false, ..
            } => "patch",
            Update::Full { .. } => "render",
        };
        let t = Instant::now();
        let (commands, result) = match &update {
            Update::Elements { ops, .. } => (
                ops.len(),
                bulkhead_dataplane::netlink::apply(None, ops)
                    .map(|()| "netlink")
                    .map_err(|e| e.to_string()),
            ),
            Update::Full { tx, .. } => (tx.len(), apply_tx(&self.nft, tx)),
        };
        match result {
            Ok(via) => {
                self.via = via;
                self.patched = match &update {
                    Update::Full { complete, .. } => !complete,
                    Update::Elements { .. } => self.patched,
                };
                self.since_full = match &update {
                    Update::Elements { .. } => self.since_full + 1,
                    Update::Full { complete: true, .. } => 0,
                    // A patched policy edit left chains for the idle sweep.
                    Update::Full { .. } => self.since_full + 1,
                };
                retire(self.node.commit(update));
                (commands, t.elapsed(), None)
            }
            Err(first) => {
                warn!(error = %first, "kernel update failed; re-reading the kernel and retrying in full");
                let observed = match self.nft.read() {
                    Ok(o) => o,
                    Err(e) => return (commands, t.elapsed(), Some(format!("{first}; then {e}"))),
                };
                self.node = NodeState::adopt(self.opts.clone(), observed, &engine);
                let retry = self.node.plan_full(&engine, false);
                let Update::Full { tx, .. } = &retry else {
                    return (commands, t.elapsed(), Some(first));
                };
                let n = tx.len();
                match apply_tx(&self.nft, tx) {
                    Ok(via) => {
                        self.via = via;
                        let _ = self.node.commit(retry);
                        self.since_full = 0;
                        (n, t.elapsed(), None)
                    }
                    // The kernel holds what it holds: the next change diffs from there.
                    Err(e) => (n, t.elapsed(), Some(e)),
                }
            }
        }
    }
}
