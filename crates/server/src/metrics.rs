//! Prometheus `/metrics` (text format, prometheus-client).
//!
//! Sources, read at scrape time:
//! - the agents' stores: flow records by verdict and deciding policy/rule/group,
//!   violations, L7 denials, events by kind, sensor hits by sensor and class. These are
//!   true counters: each scrape reads (through `bulkhead-store`, by rowid) only the
//!   records past the last rowid it counted (rowids are never reused), so retention
//!   pruning old rows never makes them go down. The first scrape counts what the store
//!   holds.
//! - `latency.jsonl`: the data-plane programming latency of each change (file or
//!   workload change to the kernel programmed) and the time `nft`/netlink took, as
//!   histograms, read incrementally from the last offset.
//! - `status.json`: the agent's own counters (since it started), object counts, and
//!   health: up (its pid is alive), age of its last status.
//! - store size (pages in use, and the files on disk).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bulkhead_store::{Action, EventFilter, FlowFilter, Store, Table};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::health::agent_health;

type Labels = Vec<(String, String)>;
type Hist = Family<Labels, Histogram, fn() -> Histogram>;
type FGauge = Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// Programming latency buckets, seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Records read from a store per query.
const PAGE: usize = 65_536;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// API latency buckets, seconds: 100 us to 10 s.
const API_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

fn api_histogram() -> Histogram {
    Histogram::new(API_BUCKETS)
}

/// A histogram an agent keeps itself (`status.json`: per-bucket counts, sum and count
/// since it started), exported as it is.
#[derive(Debug, Default)]
struct AgentHistogram(Mutex<Kept>);

/// Per-bucket counts (upper bound, count), sum, count.
#[derive(Debug, Default)]
struct Kept {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl AgentHistogram {
    /// From `{"le": [...], "counts": [...], "sum": S, "count": N}`; the counts have one
    /// more entry than the bounds (above every bound: `+Inf`).
    fn set(&self, v: &Value) -> Option<()> {
        let le: Vec<f64> = v["le"]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let counts: Vec<u64> = (v["counts"].as_array()?.iter())
            .filter_map(Value::as_u64)
            .collect();
        if counts.len() != le.len() + 1 {
            return None;
        }
        let buckets = le.into_iter().chain([f64::INFINITY]).zip(counts).collect();
        *self.0.lock().unwrap() = Kept {
            buckets,
            sum: v["sum"].as_f64()?,
            count: v["count"].as_u64()?,
        };
        Some(())
    }
}

impl prometheus_client::metrics::TypedMetric for AgentHistogram {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for AgentHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let k = self.0.lock().unwrap();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            k.sum, k.count, &k.buckets, None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// Where each source was read up to.
#[derive(Default)]
struct Cursor {
    flow_id: i64,
    event_id: i64,
    latency_offset: u64,
}

/// Counters and histograms that persist across scrapes.
pub struct Metrics {
    cursors: Mutex<HashMap<PathBuf, Cursor>>,
    flows: Family<Labels, Counter>,
    violations: Family<Labels, Counter>,
    l7_denials: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    sensor_hits: Family<Labels, Counter>,
    programming: Hist,
    apply: Hist,
    /// The server's own requests by route, method and status, and their latency.
    api_requests: Family<Labels, Counter>,
    api_latency: Hist,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            cursors: Mutex::default(),
            flows: Family::default(),
            violations: Family::default(),
            l7_denials: Family::default(),
            events: Family::default(),
            sensor_hits: Family::default(),
            programming: Family::new_with_constructor(latency_histogram),
            apply: Family::new_with_constructor(latency_histogram),
            api_requests: Family::default(),
            api_latency: Family::new_with_constructor(api_histogram),
        }
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `agent` label: the state directory's name (`node-1` in a lab).
pub fn agent_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string())
}

impl Metrics {
    /// One request the server answered: `route` is the router's path template.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.api_requests
            .get_or_create(&l(&[
                ("route", route),
                ("method", method),
                ("status", &status.to_string()),
            ]))
            .inc();
        self.api_latency
            .get_or_create(&l(&[("route", route), ("method", method)]))
            .observe(seconds);
    }

    /// Count the store's records added since the last scrape (through the store's own
    /// paging by rowid, so the counts do not depend on its table layout).
    fn count_store(&self, agent: &str, s: &Store, cur: &mut Cursor) -> bulkhead_store::Result<()> {
        // Summed per label set first: one family update per distinct set, not per record.
        let mut flows: HashMap<[String; 5], u64> = HashMap::new();
        let mut violations: HashMap<[String; 3], u64> = HashMap::new();
        let mut l7: HashMap<[String; 4], u64> = HashMap::new();
        let top = s.last_id(Table::Flows)?;
        let filter = FlowFilter::default();
        while cur.flow_id < top {
            let page = s.flows_after(&filter, cur.flow_id, top, PAGE)?;
            let Some((last, _)) = page.last() else { break };
            cur.flow_id = *last;
            for (_, r) in &page {
                let d = r.decided_by.as_ref();
                let rule = d.and_then(|d| d.rule.as_ref());
                let policy = rule.map(|r| r.policy.clone()).unwrap_or_default();
                let n = rule.map(|r| r.rule.to_string()).unwrap_or_default();
                let group = d.and_then(|d| d.group.clone()).unwrap_or_default();
                let verdict = r.verdict.as_str().to_string();
                if r.violation {
                    *violations
                        .entry([policy.clone(), n.clone(), group.clone()])
                        .or_default() += 1;
                }
                if r.event == "l7" && r.verdict == Action::Deny {
                    let app =
                        r.l7.as_ref()
                            .and_then(|v| v["protocol"].as_str())
                            .unwrap_or("")
                            .to_string();
                    *l7.entry([app, policy.clone(), n.clone(), group.clone()])
                        .or_default() += 1;
                }
                *flows
                    .entry([r.event.clone(), verdict, policy, n, group])
                    .or_default() += 1;
            }
        }
        // Rows pruned before they were read are not seen again either.
        cur.flow_id = cur.flow_id.max(top);
        for ([event, verdict, policy, rule, group], n) in flows {
            self.flows
                .get_or_create(&l(&[
                    ("agent", agent),
                    ("event", &event),
                    ("verdict", &verdict),
                    ("policy", &policy),
                    ("rule", &rule),
                    ("group", &group),
                ]))
                .inc_by(n);
        }
        for ([policy, rule, group], n) in violations {
            self.violations
                .get_or_create(&l(&[
                    ("agent", agent),
                    ("policy", &policy),
                    ("rule", &rule),
                    ("group", &group),
                ]))
                .inc_by(n);
        }
        for ([app, policy, rule, group], n) in l7 {
            self.l7_denials
                .get_or_create(&l(&[
                    ("agent", agent),
                    ("app", &app),
                    ("policy", &policy),
                    ("rule", &rule),
                    ("group", &group),
                ]))
                .inc_by(n);
        }

        let top = s.last_id(Table::Events)?;
        let filter = EventFilter::default();
        while cur.event_id < top {
            let page = s.events_after(&filter, cur.event_id, top, PAGE)?;
            let Some((last, _)) = page.last() else { break };
            cur.event_id = *last;
            for (_, e) in &page {
                let kind = e["event"].as_str().unwrap_or("");
                self.events
                    .get_or_create(&l(&[("agent", agent), ("kind", kind)]))
                    .inc();
                if kind != "sensor" {
                    continue;
                }
                let action = if e["blocked"] == true {
                    "block"
                } else {
                    "alert"
                };
                for f in e["findings"].as_array().into_iter().flatten() {
                    self.sensor_hits
                        .get_or_create(&l(&[
                            ("agent", agent),
                            ("sensor", f["sensor"].as_str().unwrap_or("")),
                            ("class", f["class"].as_str().unwrap_or("")),
                            ("action", action),
                        ]))
                        .inc();
                }
            }
        }
        cur.event_id = cur.event_id.max(top);
        Ok(())
    }

    /// Observe the `latency.jsonl` lines written since the last scrape.
    fn read_latency(&self, agent: &str, path: &Path, cur: &mut Cursor) -> std::io::Result<()> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Ok(());
        };
        let len = f.metadata()?.len();
        if len < cur.latency_offset {
            // Replaced by a new file: read it from the start.
            cur.latency_offset = 0;
        }
        f.seek(SeekFrom::Start(cur.latency_offset))?;
        let mut r = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            let n = r.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break; // a line still being written is read next time
            }
            cur.latency_offset += n as u64;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let change = v["change"].as_str().unwrap_or("");
            let labels = l(&[("agent", agent), ("change", change)]);
            if let Some(ms) = v["latency_ms"].as_f64() {
                self.programming.get_or_create(&labels).observe(ms / 1e3);
            }
            if let Some(ms) = v["apply_ms"].as_f64() {
                self.apply.get_or_create(&labels).observe(ms / 1e3);
            }
        }
        Ok(())
    }

    /// Read every source and encode all metrics in the text format.
    pub fn scrape(&self, state: &AppState) -> ApiResult<String> {
        let mut reg = Registry::with_prefix("bulkhead");
        let store_bytes: FGauge = Family::default();
        let store_rows: FGauge = Family::default();
        let up: FGauge = Family::default();
        let age: FGauge = Family::default();
        let status_counters: Family<Labels, Counter> = Family::default();
        let status_gauges: FGauge = Family::default();
        let proxy_latency: Family<Labels, AgentHistogram> = Family::default();
        let mut cursors = self.cursors.lock().unwrap();
        for dir in &state.config.state_dirs {
            let agent = agent_name(dir);
            let cur = cursors.entry(dir.clone()).or_default();
            let db = dir.join(bulkhead_store::FILE);
            if let Some(st) = state.stores.lease(dir)? {
                self.count_store(&agent, &st, cur)
                    .map_err(|e| ApiError::internal(format!("{}: {e}", db.display())))?;
                let (nflows, nevents) = st.counts()?;
                for (kind, n) in [("flows", nflows), ("events", nevents)] {
                    store_rows
                        .get_or_create(&l(&[("agent", &agent), ("table", kind)]))
                        .set(n as f64);
                }
                store_bytes
                    .get_or_create(&l(&[("agent", &agent), ("kind", "used")]))
                    .set(st.used_bytes()? as f64);
            }
            let files: u64 = ["", "-wal", "-shm"]
                .iter()
                .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
                .map(|m| m.len())
                .sum();
            store_bytes
                .get_or_create(&l(&[("agent", &agent), ("kind", "files")]))
                .set(files as f64);
            self.read_latency(&agent, &dir.join("latency.jsonl"), cur)
                .map_err(ApiError::internal)?;
            let h = agent_health(dir);
            up.get_or_create(&l(&[("agent", &agent)]))
                .set(if h.up { 1.0 } else { 0.0 });
            if let Some(a) = h.status_age_seconds {
                age.get_or_create(&l(&[("agent", &agent)])).set(a);
            }
            if let Some(s) = &h.status {
                for hist in s["proxy_latency"].as_array().into_iter().flatten() {
                    let (stage, protocol) = (hist["stage"].as_str(), hist["protocol"].as_str());
                    if let (Some(stage), Some(protocol)) = (stage, protocol) {
                        let labels = [
                            ("agent", agent.as_str()),
                            ("stage", stage),
                            ("protocol", protocol),
                        ];
                        proxy_latency.get_or_create(&l(&labels)).set(hist);
                    }
                }
                for (name, v) in [
                    ("flows", &s["flows"]),
                    ("inconsistent_flows", &s["inconsistent_flows"]),
                    ("connections_cut", &s["connections_cut"]),
                    ("flow_errors", &s["flow_errors"]),
                    ("proxy_connections", &s["proxy"]["connections"]),
                    ("proxy_requests", &s["proxy"]["requests"]),
                    ("proxy_refusals", &s["proxy"]["refusals"]),
                    ("sensor_events", &s["proxy"]["sensor_events"]),
                    ("captures_skipped", &s["proxy"]["captures_skipped"]),
                    ("reconciles", &s["generation"]),
                    // The Redis socket path's programs (since first loaded: pinned).
                    ("socket_allowed", &s["socket_path"]["allowed"]),
                    ("socket_refused", &s["socket_path"]["refused"]),
                    ("socket_reported", &s["socket_path"]["reported"]),
                    ("socket_not_resp", &s["socket_path"]["not_resp"]),
                    ("socket_no_table", &s["socket_path"]["no_table"]),
                    ("socket_reports_lost", &s["socket_path"]["lost"]),
                    ("socket_vouched", &s["socket_path"]["vouched"]),
                    ("socket_verified", &s["socket_path"]["verified"]),
                    ("socket_unverified", &s["socket_path"]["unverified"]),
                    ("socket_replayed", &s["socket_path"]["replayed"]),
                    ("socket_unread", &s["socket_path"]["unread"]),
                ] {
                    if let Some(n) = v.as_u64() {
                        status_counters
                            .get_or_create(&l(&[("agent", &agent), ("counter", name)]))
                            .inc_by(n);
                    }
                }
                for (name, v) in [
                    ("workloads", &s["workloads"]),
                    ("local_workloads", &s["local_workloads"]),
                    ("identities", &s["identities"]),
                    ("input_files", &s["input_files"]),
                    ("nft_chains", &s["objects"]["chains"]),
                    ("nft_rules", &s["objects"]["rules"]),
                    ("nft_sets", &s["objects"]["sets"]),
                    ("nft_set_elements", &s["objects"]["elements"]),
                    ("reconcile_seconds", &s["reconcile_ms"]),
                ] {
                    if let Some(x) = v.as_f64() {
                        let x = if name.ends_with("_seconds") {
                            x / 1e3
                        } else {
                            x
                        };
                        status_gauges
                            .get_or_create(&l(&[("agent", &agent), ("gauge", name)]))
                            .set(x);
                    }
                }
            }
        }
        drop(cursors);
        let policy_ok: Gauge = Gauge::default();
        policy_ok.set(i64::from(state.workspace.current().is_ok()));

        reg.register(
            "flows",
            "Flow records in the agents' stores by event (new, end, l7, log), verdict and deciding policy, rule and group",
            self.flows.clone(),
        );
        reg.register(
            "violations",
            "Flows allowed only because a Monitor group let them through, by deciding policy, rule and group",
            self.violations.clone(),
        );
        reg.register(
            "l7_denials",
            "Requests and protocols the L7 proxy refused, by application protocol and deciding rule",
            self.l7_denials.clone(),
        );
        reg.register(
            "events",
            "Events of the L7 proxy by kind",
            self.events.clone(),
        );
        reg.register(
            "sensor_hits",
            "Sensor findings in allowed traffic by sensor, class and action (block or alert)",
            self.sensor_hits.clone(),
        );
        reg.register_with_unit(
            "dataplane_programming",
            "From a file or workload change to the kernel programmed (latency.jsonl), by change kind",
            Unit::Seconds,
            self.programming.clone(),
        );
        reg.register_with_unit(
            "dataplane_apply",
            "Time the kernel transaction took (nft or netlink), by change kind",
            Unit::Seconds,
            self.apply.clone(),
        );
        reg.register_with_unit(
            "store",
            "Store size: pages in use (kind=used) and store.db with its WAL on disk (kind=files)",
            Unit::Bytes,
            store_bytes,
        );
        reg.register(
            "store_records",
            "Records the store holds now, by table (retention removes old ones)",
            store_rows,
        );
        reg.register(
            "agent_up",
            "1 if the agent's process (pid in status.json) is running",
            up,
        );
        reg.register_with_unit(
            "agent_status_age",
            "Time since the agent last wrote status.json",
            Unit::Seconds,
            age,
        );
        reg.register(
            "agent",
            "The agent's own counters since it started (status.json)",
            status_counters,
        );
        reg.register(
            "agent_state",
            "The agent's state (status.json): workloads, identities, nftables objects, last reconcile time in seconds",
            status_gauges,
        );
        reg.register_with_unit(
            "proxy_latency",
            "Time the L7 proxy held bytes (status.json): to detect a connection's protocol (stage=detect) and to decide the requests of one read (stage=request), by protocol",
            Unit::Seconds,
            proxy_latency,
        );
        reg.register(
            "api_requests",
            "Requests the server answered, by route, method and status",
            self.api_requests.clone(),
        );
        reg.register_with_unit(
            "api_request_duration",
            "Time to answer a request, by route and method (up to the response head)",
            Unit::Seconds,
            self.api_latency.clone(),
        );
        reg.register(
            "policy_ok",
            "1 if the policy files on disk decode and compile",
            policy_ok,
        );
        let mut out = String::new();
        encode(&mut out, &reg).map_err(ApiError::internal)?;
        Ok(out)
    }
}

pub async fn handler(State(s): State<Arc<AppState>>) -> ApiResult<impl IntoResponse> {
    let text = tokio::task::spawn_blocking(move || s.metrics.scrape(&s)).await??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

/// Middleware: count and time every request (outermost: refused ones too).
pub async fn track(
    State(s): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let t = std::time::Instant::now();
    let resp = next.run(req).await;
    s.metrics.observe_request(
        &route,
        &method,
        resp.status().as_u16(),
        t.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent's histogram (as `status.json` has it) is exported with cumulative
    /// buckets, `+Inf`, sum and count.
    #[test]
    fn agent_histograms_are_exported_as_kept() {
        let family: Family<Labels, AgentHistogram> = Family::default();
        let hist = serde_json::json!({
            "stage": "detect", "protocol": "redis",
            "le": [0.001, 0.01], "counts": [2, 1, 1], "count": 4, "sum": 0.5
        });
        let labels = l(&[
            ("agent", "node-1"),
            ("stage", "detect"),
            ("protocol", "redis"),
        ]);
        assert!(family.get_or_create(&labels).set(&hist).is_some());
        // Counts that do not match the bounds are refused.
        let bad = serde_json::json!({"le": [0.001], "counts": [1], "count": 1, "sum": 0.1});
        assert!(AgentHistogram::default().set(&bad).is_none());
        let mut reg = Registry::with_prefix("bulkhead");
        reg.register_with_unit("proxy_latency", "test", Unit::Seconds, family);
        let mut out = String::new();
        encode(&mut out, &reg).unwrap();
        for line in [
            "# TYPE bulkhead_proxy_latency_seconds histogram",
            r#"bulkhead_proxy_latency_seconds_bucket{le="0.001",agent="node-1",stage="detect",protocol="redis"} 2"#,
            r#"bulkhead_proxy_latency_seconds_bucket{le="0.01",agent="node-1",stage="detect",protocol="redis"} 3"#,
            r#"bulkhead_proxy_latency_seconds_bucket{le="+Inf",agent="node-1",stage="detect",protocol="redis"} 4"#,
            r#"bulkhead_proxy_latency_seconds_count{agent="node-1",stage="detect",protocol="redis"} 4"#,
            r#"bulkhead_proxy_latency_seconds_sum{agent="node-1",stage="detect",protocol="redis"} 0.5"#,
        ] {
            assert!(out.contains(line), "{line} missing in:\n{out}");
        }
    }
}
