//! Response rules on this node: every flow record and proxy event the agent keeps is
//! also offered to the [`Responder`] of the current policy. Webhooks and syslog go out
//! from its worker thread; quarantine and capture come back to the main loop
//! ([`Event::Respond`]) because they change the kernel and the node.
//!
//! Quarantine is kept in `quarantine.json` in the state directory (by workload, so it
//! follows the workload's addresses and survives agent restarts);
//! `bulkhead quarantine add|release|list` edit the same file.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bulkhead_model::WorkloadKey;
use bulkhead_policy::Engine;
use bulkhead_respond::{Alert, LocalAction, Responder};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::flows::FlowRecord;
use crate::reconcile::Shared;
use crate::watch::Event;

pub const QUARANTINE_FILE: &str = "quarantine.json";
pub const CAPTURES_DIR: &str = "captures";

/// One quarantined workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// `namespace/name`.
    pub workload: String,
    /// The response rule that quarantined it (None: by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub reason: String,
    /// RFC 3339.
    pub since: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuarantineList {
    pub workloads: Vec<Quarantined>,
}

impl QuarantineList {
    /// The list in `dir` (empty when there is none; a damaged file is reported and
    /// read as empty rather than stopping the agent).
    pub fn load(dir: &Path) -> QuarantineList {
        match std::fs::read_to_string(dir.join(QUARANTINE_FILE)) {
            Ok(t) => serde_json::from_str(&t).unwrap_or_else(|e| {
                warn!(error = %e, "cannot read {QUARANTINE_FILE}; treating it as empty");
                QuarantineList::default()
            }),
            Err(_) => QuarantineList::default(),
        }
    }

    /// Write through a temporary file and a rename (readers never see half of it).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{QUARANTINE_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(QUARANTINE_FILE))
    }

    /// Add a workload; false if it was quarantined already.
    pub fn add(&mut self, q: Quarantined) -> bool {
        if self.workloads.iter().any(|w| w.workload == q.workload) {
            return false;
        }
        self.workloads.push(q);
        true
    }

    /// Release a workload; false if it was not quarantined.
    pub fn release(&mut self, workload: &str) -> bool {
        let before = self.workloads.len();
        self.workloads.retain(|w| w.workload != workload);
        self.workloads.len() != before
    }

    /// The addresses of the quarantined workloads the engine knows.
    pub fn addresses(&self, engine: &Engine) -> BTreeSet<IpAddr> {
        addresses(engine, self.workloads.iter().map(|q| q.workload.as_str()))
    }
}

/// The addresses of these workloads (`namespace/name`) the engine knows.
fn addresses<'a>(engine: &Engine, workloads: impl Iterator<Item = &'a str>) -> BTreeSet<IpAddr> {
    workloads
        .filter_map(key)
        .filter_map(|k| engine.workload_id(&k))
        .filter_map(|id| engine.workload(id))
        .flat_map(|w| w.ips.iter().copied())
        .collect()
}

/// The responder of the current policy, and the way back to the main loop.
pub struct Responses {
    responder: RwLock<Arc<Responder>>,
    main: Mutex<Option<Sender<Event>>>,
    node: String,
}

impl Responses {
    pub fn new(engine: &Engine, node: Option<&str>) -> Responses {
        let node = node.map(str::to_string).unwrap_or_else(hostname);
        Responses {
            responder: RwLock::new(Arc::new(Responder::new(
                engine.policy().responses.clone(),
                &node,
            ))),
            main: Mutex::new(None),
            node,
        }
    }

    /// Where quarantine and capture requests go (the main loop's channel).
    pub fn connect(&self, tx: Sender<Event>) {
        *self.main.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    }

    /// After a policy change: a new responder if the rules changed.
    pub fn refresh(&self, engine: &Engine) {
        let rules = &engine.policy().responses;
        let mut r = self.responder.write().unwrap_or_else(|e| e.into_inner());
        if r.rules() != rules.as_slice() {
            *r = Arc::new(Responder::new(rules.clone(), &self.node));
            info!(rules = rules.len(), "response rules loaded");
        }
    }

    fn current(&self) -> Option<Arc<Responder>> {
        let r = self.responder.read().unwrap_or_else(|e| e.into_inner());
        (!r.rules().is_empty()).then(|| r.clone())
    }

    fn dispatch(&self, responder: &Responder, alerts: Vec<Alert>) {
        for a in alerts {
            for action in responder.observe(&a) {
                if let Some(tx) = &*self.main.lock().unwrap_or_else(|e| e.into_inner()) {
                    let _ = tx.send(Event::Respond(action));
                }
            }
        }
    }

    /// Counters of the current responder: (matched, delivered, failed, dropped).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let r = self.responder.read().unwrap_or_else(|e| e.into_inner());
        let c = &r.counters;
        (
            c.matched.load(Ordering::Relaxed),
            c.delivered.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
        )
    }
}

/// The group that governs a workload (`ns/name`), from the engine.
fn group_of(engine: &Engine, workload: &str) -> Option<String> {
    let id = engine.identity_of(engine.workload_id(&key(workload)?)?)?;
    let g = engine.endpoint_policy(id)?.group?;
    Some(engine.policy().groups.get(g as usize)?.name.clone())
}

/// A flow record the agent keeps: an incident for the response rules?
pub fn flow(shared: &Shared, r: &FlowRecord) {
    let Some(responder) = shared.responses.current() else {
        return;
    };
    let alert = {
        let engine = shared.engine.read().unwrap_or_else(|e| e.into_inner());
        Alert::from_flow(r, &|w| group_of(&engine, w))
    };
    shared
        .responses
        .dispatch(&responder, alert.into_iter().collect());
}

/// A proxy event the agent keeps (sensor findings become alerts).
pub fn event(shared: &Shared, v: &serde_json::Value) {
    let Some(responder) = shared.responses.current() else {
        return;
    };
    let alerts = {
        let engine = shared.engine.read().unwrap_or_else(|e| e.into_inner());
        Alert::from_event(v, &|w| group_of(&engine, w))
    };
    shared.responses.dispatch(&responder, alerts);
}

/// Carry out a quarantine request: recorded in the list (the caller programs it).
/// True if the list changed.
pub fn quarantine(state_dir: &Path, a: &LocalAction) -> bool {
    let LocalAction::Quarantine {
        workload,
        rule,
        reason,
    } = a
    else {
        return false;
    };
    let mut list = QuarantineList::load(state_dir);
    let added = list.add(Quarantined {
        workload: workload.clone(),
        rule: Some(rule.clone()),
        reason: reason.clone(),
        since: crate::status::now_rfc3339(),
    });
    if added {
        if let Err(e) = list.save(state_dir) {
            warn!(error = %e, "cannot write {QUARANTINE_FILE}");
            return false;
        }
        warn!(%workload, %rule, %reason, "quarantined");
    }
    added
}

/// Record a workload's packets with tcpdump in the node's namespace, on a thread:
/// for `seconds`, or until the file holds `max_bytes`.
pub fn capture(
    state_dir: &Path,
    engine: &Engine,
    a: &LocalAction,
    budget: Arc<bulkhead_proxy::captures::Captures>,
) {
    let LocalAction::Capture {
        workload,
        rule,
        filter,
        seconds,
        max_bytes,
    } = a
    else {
        return;
    };
    let hosts: Vec<String> = addresses(engine, std::iter::once(workload.as_str()))
        .iter()
        .map(|a| format!("host {a}"))
        .collect();
    if hosts.is_empty() {
        return;
    }
    let mut bpf = format!("({})", hosts.join(" or "));
    if let Some(f) = filter {
        bpf = format!("{bpf} and ({f})");
    }
    let dir = state_dir.join(CAPTURES_DIR);
    let _ = std::fs::create_dir_all(&dir);
    let stamp = crate::status::now_rfc3339().replace([':', '.'], "-");
    let file = dir.join(format!("{stamp}-{}.pcap", workload.replace('/', "_")));
    let (seconds, max_bytes, rule) = (*seconds, *max_bytes, rule.clone());
    let _ = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            run_capture(&file, &bpf, seconds, max_bytes, &rule);
            // Kept within the captures' budget with the proxy's.
            budget.adopt(&file);
        });
}

fn run_capture(file: &PathBuf, bpf: &str, seconds: u32, max_bytes: u64, rule: &str) {
    let child = Command::new("tcpdump")
        .args(["-i", "any", "-U", "-s", "0", "-w"])
        .arg(file)
        .arg(bpf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot start tcpdump for a capture");
            return;
        }
    };
    info!(file = %file.display(), filter = bpf, rule, "capture started");
    let end = Instant::now() + Duration::from_secs(u64::from(seconds));
    while Instant::now() < end {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        if size >= max_bytes || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGINT lets tcpdump flush and close the file properly.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    info!(file = %file.display(), "capture written");
}

/// `namespace/name` -> the workload's key.
pub fn key(s: &str) -> Option<WorkloadKey> {
    let (ns, name) = s.split_once('/')?;
    (!ns.is_empty() && !name.is_empty()).then(|| WorkloadKey::new(ns, name))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "-".into())
}
