//! `status.json` (rewritten after every reconcile, atomically) and `latency.jsonl`
//! (one line per applied change: how long from the file event to the end of `nft`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub const STATUS_FILE: &str = "status.json";
pub const LATENCY_FILE: &str = "latency.jsonl";

/// Counters the flow and conntrack threads update between reconciles.
#[derive(Debug, Default)]
pub struct Counters {
    pub flows: AtomicU64,
    /// Records where the engine's verdict disagreed with the kernel's (must stay 0).
    pub inconsistent: AtomicU64,
    pub connections_cut: AtomicU64,
    pub flow_errors: AtomicU64,
    /// The L7 proxy: connections it took, requests it decided, refusals (connections,
    /// protocols and requests).
    pub proxy_connections: AtomicU64,
    pub proxy_requests: AtomicU64,
    pub proxy_refusals: AtomicU64,
    /// Sensor events (each with one or more findings).
    pub sensor_findings: AtomicU64,
    /// The proxy's added latency, by stage and protocol.
    pub proxy_latency: crate::proxy_latency::ProxyLatency,
    /// The store's writer, once opened; its error when it could not be.
    pub store: std::sync::OnceLock<Result<Arc<bulkhead_store::SinkStats>, String>>,
    /// The socket path's, as last read (the main loop reads the programs' counters).
    pub socket_path: std::sync::Mutex<Option<SocketPathStatus>>,
    /// The evidence captures' budget, once the agent made it.
    pub captures: std::sync::OnceLock<Arc<bulkhead_proxy::captures::Captures>>,
}

/// The flow store (`store.db`): whether it is open, what its writer committed, lost and
/// pruned, and its last error, so a full disk or a broken file shows in `status.json`
/// (and `/api/v1/health`) instead of only in the log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub open: bool,
    pub written: u64,
    pub failed: u64,
    pub pruned: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl StoreStatus {
    fn of(s: Option<&Result<Arc<bulkhead_store::SinkStats>, String>>) -> StoreStatus {
        match s {
            Some(Ok(st)) => StoreStatus {
                open: true,
                written: st.written.load(Ordering::Relaxed),
                failed: st.failed.load(Ordering::Relaxed),
                pruned: st.pruned.load(Ordering::Relaxed),
                last_error: st.last_error.lock().unwrap().clone(),
            },
            Some(Err(e)) => StoreStatus {
                last_error: Some(e.clone()),
                ..StoreStatus::default()
            },
            None => StoreStatus::default(),
        }
    }
}

/// What the L7 proxy did since the agent started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyCounters {
    pub connections: u64,
    pub requests: u64,
    pub refusals: u64,
    /// Sensor events: findings in traffic that policy allowed.
    #[serde(default)]
    pub sensor_events: u64,
    /// Captures not written because refusals came faster than their budget's rate,
    /// and the bytes the captures directory holds.
    #[serde(default)]
    pub captures_skipped: u64,
    #[serde(default)]
    pub captures_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// Incremented by every reconcile that programmed the kernel (or tried to).
    pub generation: u64,
    /// RFC 3339.
    pub time: String,
    pub node: Option<String>,
    pub netns: Option<String>,
    /// How long the last reconcile took (parse, resolve, render, diff, apply), ms.
    pub reconcile_ms: f64,
    /// From the watcher event to the end of `nft` for the last change, ms.
    pub last_change_latency_ms: Option<f64>,
    /// nft commands in the last transaction.
    pub last_transaction_commands: usize,
    pub workloads: usize,
    pub local_workloads: usize,
    pub identities: usize,
    pub input_files: usize,
    /// Chains, rules, sets and elements of the programmed table.
    pub objects: Objects,
    pub flows: u64,
    pub inconsistent_flows: u64,
    pub connections_cut: u64,
    pub flow_errors: u64,
    #[serde(default)]
    pub proxy: ProxyCounters,
    /// The L7 proxy's added latency: histograms by stage (`detect`, `request`) and
    /// protocol, since the agent started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_latency: Vec<crate::proxy_latency::LatencyHistogram>,
    /// The last error (a bad edit, an nft failure); None once a reconcile succeeds.
    pub last_error: Option<String>,
    /// The kernel holds chains or sets nothing uses any more (left by element updates
    /// or patched policy edits) until the next idle sweep.
    #[serde(default)]
    pub sweep_pending: bool,
    /// Quarantined workloads (`quarantine.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
    /// Response rules: alerts matched, deliveries made, failed, dropped (queue full).
    #[serde(default)]
    pub responses: ResponseCounters,
    /// FQDN egress: answers learnt from, elements written, answers relayed late, and
    /// answer -> programmed latency.
    #[serde(default)]
    pub fqdn: crate::fqdn::FqdnCounters,
    #[serde(default)]
    pub store: StoreStatus,
    /// The Redis socket path (`--redis-socket-path`): what its programs counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<SocketPathStatus>,
}

/// The socket path's pairs and the programs' counters (since they were first loaded:
/// pinned programs keep counting across agent restarts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketPathStatus {
    /// (server address, client class, port) pairs whose connections take it.
    pub pairs: usize,
    /// Commands allowed and refused; replies passed back; streams refused as not RESP;
    /// writes refused for want of a table.
    pub allowed: u64,
    pub refused: u64,
    pub replies: u64,
    pub not_resp: u64,
    pub no_table: u64,
    /// Commands allowed and reported (a Monitor group's violations), and reports the
    /// programs could not hand over (the agent was behind).
    #[serde(default)]
    pub reported: u64,
    #[serde(default)]
    pub lost: u64,
    /// Between nodes (`--vouch-key`): SYNs this node vouched for; SYNs from other nodes
    /// verified (let past the proxy where the plan says), not verified, seen already.
    #[serde(default)]
    pub vouched: u64,
    #[serde(default)]
    pub verified: u64,
    #[serde(default)]
    pub unverified: u64,
    #[serde(default)]
    pub replayed: u64,
    /// Segments dropped and writes refused because a connection's socket queued bytes
    /// the programs never read (written while it was being set up).
    #[serde(default)]
    pub unread: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseCounters {
    pub matched: u64,
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
}

impl Status {
    pub fn fill_counters(&mut self, c: &Counters) {
        self.flows = c.flows.load(Ordering::Relaxed);
        self.inconsistent_flows = c.inconsistent.load(Ordering::Relaxed);
        self.connections_cut = c.connections_cut.load(Ordering::Relaxed);
        self.flow_errors = c.flow_errors.load(Ordering::Relaxed);
        self.store = StoreStatus::of(c.store.get());
        self.socket_path = c.socket_path.lock().map(|s| s.clone()).unwrap_or_default();
        self.proxy = ProxyCounters {
            connections: c.proxy_connections.load(Ordering::Relaxed),
            requests: c.proxy_requests.load(Ordering::Relaxed),
            refusals: c.proxy_refusals.load(Ordering::Relaxed),
            sensor_events: c.sensor_findings.load(Ordering::Relaxed),
            captures_skipped: c.captures.get().map_or(0, |x| x.skipped()),
            captures_bytes: c.captures.get().map_or(0, |x| x.bytes()),
        };
        self.proxy_latency = c.proxy_latency.snapshot();
    }

    /// Write `status.json` through a temporary file and a rename, so readers never
    /// see half of it.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{STATUS_FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(STATUS_FILE))
    }

    pub fn read(dir: &Path) -> std::io::Result<Status> {
        let text = std::fs::read_to_string(dir.join(STATUS_FILE))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

/// The size of the programmed table: chains, rules and sets grow with policies and
/// identities; elements with workloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objects {
    pub chains: usize,
    pub rules: usize,
    pub sets: usize,
    pub elements: usize,
}

impl From<bulkhead_dataplane::ruleset::ObjectCount> for Objects {
    fn from(o: bulkhead_dataplane::ruleset::ObjectCount) -> Objects {
        Objects {
            chains: o.chains,
            rules: o.rules,
            sets: o.sets,
            elements: o.elements,
        }
    }
}

/// One line of `latency.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub time: String,
    pub generation: u64,
    /// `inventory`, `policy` or `inventory+policy`.
    pub change: String,
    /// From the first watcher event of the batch to the end of `nft`.
    pub latency_ms: f64,
    /// Of which: the nft run.
    pub apply_ms: f64,
    pub files: usize,
    pub commands: usize,
}

pub fn append_latency(dir: &Path, l: &Latency) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LATENCY_FILE))?;
    let mut line = serde_json::to_string(l).map_err(std::io::Error::other)?;
    line.push('\n');
    f.write_all(line.as_bytes())
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_shows_open_with_its_counters_or_why_not() {
        let c = Counters::default();
        let mut s = Status::default();
        s.fill_counters(&c);
        assert_eq!(s.store, StoreStatus::default());
        let stats = Arc::new(bulkhead_store::SinkStats::default());
        stats.written.store(7, Ordering::Relaxed);
        *stats.last_error.lock().unwrap() = Some("disk full".into());
        c.store.set(Ok(stats)).unwrap();
        s.fill_counters(&c);
        assert_eq!((s.store.open, s.store.written), (true, 7));
        assert_eq!(s.store.last_error.as_deref(), Some("disk full"));
        let c = Counters::default();
        c.store.set(Err("store.db: not a database".into())).unwrap();
        s.fill_counters(&c);
        assert!(!s.store.open);
        assert_eq!(
            s.store.last_error.as_deref(),
            Some("store.db: not a database")
        );
    }

    #[test]
    fn status_round_trips_and_latency_appends() {
        let dir = tempfile::tempdir().unwrap();
        let s = Status {
            generation: 4,
            last_error: Some("bad".into()),
            ..Status::default()
        };
        s.write(dir.path()).unwrap();
        assert_eq!(Status::read(dir.path()).unwrap(), s);
        for g in 0..3 {
            append_latency(
                dir.path(),
                &Latency {
                    time: now_rfc3339(),
                    generation: g,
                    change: "policy".into(),
                    latency_ms: 12.5,
                    apply_ms: 7.0,
                    files: 1,
                    commands: 3,
                },
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(LATENCY_FILE)).unwrap();
        assert_eq!(text.lines().count(), 3);
    }
}
