//! Response rules carried out (`kind: ResponseRule`, see `bulkhead_policy::response`).
//!
//! The agent hands every flow record and proxy event to a [`Responder`]. Each one that
//! is an incident (a denial, a Monitor violation, an L7 refusal, a sensor hit) becomes an
//! [`Alert`], which is matched against the rules:
//! - webhook and syslog deliveries go to one worker thread through a bounded queue (a
//!   burst of alerts never blocks the data path; what does not fit is counted, not
//!   queued without bound), with retries and backoff for webhooks;
//! - quarantine and capture are returned to the caller: they act on the data plane
//!   and the node's interfaces, which the agent owns.
//!
//! The same incident repeated (one scanner, thousands of denials) is delivered once per
//! rule and suppression window, with the number suppressed in the next delivery.

mod alert;
mod deliver;
pub mod syslog;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use bulkhead_policy::response::{ResponseAction, ResponseRule};

pub use alert::{Alert, Ends};
use deliver::Delivery;

/// How long the same incident (rule, type, source, destination) stays suppressed.
pub const SUPPRESS: Duration = Duration::from_secs(10);
/// Deliveries waiting for the worker, at most.
const QUEUE: usize = 1024;

/// What the agent must do itself.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalAction {
    /// Isolate this workload (`namespace/name`) now.
    Quarantine {
        workload: String,
        rule: String,
        reason: String,
    },
    /// Record this workload's packets.
    Capture {
        workload: String,
        rule: String,
        filter: Option<String>,
        seconds: u32,
        max_bytes: u64,
    },
}

/// Delivery counters, for status and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub matched: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub suppressed: AtomicU64,
}

pub struct Responder {
    rules: Vec<ResponseRule>,
    tx: Option<SyncSender<Delivery>>,
    /// (rule, incident key) -> (last delivery, suppressed since).
    recent: Mutex<HashMap<(usize, String), (Instant, u64)>>,
    pub counters: std::sync::Arc<Counters>,
    /// The node (the `hostname` of syslog messages, `node` of webhook bodies).
    node: String,
}

impl Responder {
    /// Rules are taken as given (the policy compile checked them).
    pub fn new(rules: Vec<ResponseRule>, node: &str) -> Responder {
        let counters = std::sync::Arc::new(Counters::default());
        let remote = rules.iter().any(|r| {
            r.actions.iter().any(|a| {
                matches!(
                    a,
                    ResponseAction::Webhook { .. } | ResponseAction::Syslog { .. }
                )
            })
        });
        let tx = remote.then(|| {
            let (tx, rx) = sync_channel(QUEUE);
            let c = counters.clone();
            let _ = std::thread::Builder::new()
                .name("respond".into())
                .spawn(move || deliver::worker(rx, c));
            tx
        });
        Responder {
            rules,
            tx,
            recent: Mutex::new(HashMap::new()),
            counters,
            node: node.to_string(),
        }
    }

    pub fn rules(&self) -> &[ResponseRule] {
        &self.rules
    }

    /// Match one alert; queue its deliveries; return what the caller must do.
    pub fn observe(&self, alert: &Alert) -> Vec<LocalAction> {
        let mut local = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.on.matches(&alert.incident) {
                continue;
            }
            self.counters.matched.fetch_add(1, Ordering::Relaxed);
            let Some(suppressed) = self.admit(i, alert) else {
                self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            for action in &rule.actions {
                match action {
                    ResponseAction::Quarantine => {
                        if let Some(w) = &alert.ends.src_workload {
                            local.push(LocalAction::Quarantine {
                                workload: w.clone(),
                                rule: rule.name.clone(),
                                reason: alert.summary.clone(),
                            });
                        }
                    }
                    ResponseAction::Capture {
                        filter,
                        seconds,
                        max_bytes,
                    } => {
                        if let Some(w) = &alert.ends.src_workload {
                            local.push(LocalAction::Capture {
                                workload: w.clone(),
                                rule: rule.name.clone(),
                                filter: filter.clone(),
                                seconds: *seconds,
                                max_bytes: *max_bytes,
                            });
                        }
                    }
                    remote => {
                        let d = Delivery {
                            action: remote.clone(),
                            rule: rule.name.clone(),
                            body: alert.body(&rule.name, &self.node, suppressed),
                            syslog: syslog::message(alert, &rule.name, &self.node, remote),
                        };
                        self.enqueue(d);
                    }
                }
            }
        }
        local
    }

    fn enqueue(&self, d: Delivery) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Deliver this incident for rule `i` now? Some(n suppressed since the last one).
    fn admit(&self, i: usize, alert: &Alert) -> Option<u64> {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Forget old entries now and then, so the map stays small.
        if recent.len() > 4096 {
            recent.retain(|_, (t, _)| now.duration_since(*t) < SUPPRESS);
        }
        match recent.get_mut(&(i, alert.key())) {
            Some((t, n)) if now.duration_since(*t) < SUPPRESS => {
                *n += 1;
                None
            }
            Some(entry) => {
                let n = entry.1;
                *entry = (now, 0);
                Some(n)
            }
            None => {
                recent.insert((i, alert.key()), (now, 0));
                Some(0)
            }
        }
    }
}
