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

use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, Ruleset, diff, render};
use bulkhead_policy::Engine;
use tracing::{info, warn};

use crate::config::Config;
use crate::decide::{NodeScope, local_addresses};
use crate::sources::{Delta, Role, Sources};
use crate::status::{Counters, Latency, Status, append_latency, now_rfc3339};

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
    ids: KernelIds,
    applied: Ruleset,
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
        };
        let observed = nft.read().map_err(|e| StartError::Kernel(e.to_string()))?;
        let mut ids = KernelIds::new();
        ids.seed(&observed, &engine);
        let desired = render(&engine, &opts, &mut ids);
        let tx = diff(&observed, &desired);
        let ta = Instant::now();
        nft.apply(&tx)
            .map_err(|e| StartError::Kernel(e.to_string()))?;
        let apply = ta.elapsed();
        info!(
            commands = tx.len(),
            adopted = observed.exists,
            apply_ms = ms(apply),
            "programmed the kernel"
        );
        let shared = Arc::new(Shared {
            engine: RwLock::new(engine),
            scope: RwLock::new(NodeScope {
                node: cfg.node.clone(),
                host_addrs: local_addresses(),
            }),
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
            ids,
            applied: desired,
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
        r.status.last_transaction_commands = tx.len();
        r.refresh_status();
        Ok(r)
    }

    /// The last applied (desired) ruleset.
    pub fn applied(&self) -> &Ruleset {
        &self.applied
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
        self.status.objects = self.applied.object_count().into();
        self.status.time = now_rfc3339();
        self.status.fill_counters(&self.shared.counters);
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
        let delta = match self.sources.stage(paths, rescan) {
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
        if let Err(errs) = self.apply_to_engine(&delta) {
            return self.reject("policy does not compile", errs);
        }
        let resolve = te.elapsed();
        self.sources.commit(delta);
        {
            let mut scope = self.shared.scope.write().unwrap_or_else(|e| e.into_inner());
            scope.host_addrs = local_addresses();
        }
        let tr = Instant::now();
        let (commands, apply, error) = self.program();
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
    fn apply_to_engine(&mut self, d: &Delta) -> Result<(), Vec<String>> {
        let mut engine = self
            .shared
            .engine
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &d.policy {
            engine
                .set_policy(p.clone())
                .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
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
        for k in &d.remove_workloads {
            engine.remove_workload(k);
        }
        for w in &d.upsert_workloads {
            engine.upsert_workload(w.clone());
        }
        Ok(())
    }

    /// Render, diff against the last applied state, apply; on failure re-read the kernel
    /// and retry once. Returns (commands, nft time, error).
    fn program(&mut self) -> (usize, Duration, Option<String>) {
        let desired = {
            let engine = self.shared.engine.read().unwrap_or_else(|e| e.into_inner());
            render(&engine, &self.opts, &mut self.ids)
        };
        let tx = diff(&self.applied, &desired);
        let t = Instant::now();
        match self.nft.apply(&tx) {
            Ok(()) => {
                self.applied = desired;
                (tx.len(), t.elapsed(), None)
            }
            Err(first) => {
                warn!(error = %first, "nft transaction failed; re-reading the kernel and retrying");
                let observed = match self.nft.read() {
                    Ok(o) => o,
                    Err(e) => return (tx.len(), t.elapsed(), Some(format!("{first}; then {e}"))),
                };
                let retry = diff(&observed, &desired);
                match self.nft.apply(&retry) {
                    Ok(()) => {
                        self.applied = desired;
                        (retry.len(), t.elapsed(), None)
                    }
                    Err(e) => {
                        // The kernel holds what it holds; diff from there next time.
                        self.applied = observed;
                        (retry.len(), t.elapsed(), Some(format!("nft: {e}")))
                    }
                }
            }
        }
    }
}
