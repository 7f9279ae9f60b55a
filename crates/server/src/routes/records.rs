//! What the agents recorded, from their stores: flows, events, the conversation graph,
//! and the packet captures the proxy wrote for events. Same filters as `bulkhead flows`
//! and `bulkhead events`; several agents' records are merged by time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use bulkhead_store::{
    Action, Conversation, EventFilter, FlowFilter, FlowRecord, GraphFilter, RuleFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blocking;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// At most this many records per answer (a `limit` above it is lowered).
pub const MAX_LIMIT: usize = 100_000;
/// Records per answer when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 1_000;

/// `10m`, `2h` (back from now) or an RFC 3339 time, as milliseconds since the epoch.
pub fn parse_time(s: &str, now: SystemTime) -> ApiResult<i64> {
    let t = match humantime::parse_duration(s) {
        Ok(d) => now
            .checked_sub(d)
            .ok_or_else(|| ApiError::bad_request(format!("{s}: too far back")))?,
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            ApiError::bad_request(format!(
                "{s}: expected a duration such as 10m or 2h, or a time such as 2025-01-31T12:00:00Z"
            ))
        })?,
    };
    Ok(bulkhead_store::system_millis(t))
}

fn opt_time(s: &Option<String>) -> ApiResult<Option<i64>> {
    s.as_deref()
        .map(|s| parse_time(s, SystemTime::now()))
        .transpose()
}

fn limit(l: Option<usize>) -> usize {
    l.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
}

#[derive(Deserialize, Default, Debug)]
pub struct FlowQuery {
    /// From or to this workload (`NAMESPACE/NAME`).
    pub workload: Option<String>,
    /// From or to workloads of this namespace.
    pub namespace: Option<String>,
    /// allow, deny or log.
    pub verdict: Option<String>,
    /// Decided by this group's mode.
    pub group: Option<String>,
    /// Decided by this rule: `POLICY` or `POLICY#N`.
    pub rule: Option<String>,
    /// Only violations (denied, or allowed only by a Monitor group).
    #[serde(default)]
    pub violations: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The last N matching records (default 1000, at most 100000).
    pub limit: Option<usize>,
}

impl FlowQuery {
    pub fn filter(&self) -> ApiResult<FlowFilter> {
        let verdict: Option<Action> = self
            .verdict
            .as_deref()
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("verdict {v:?}: allow, deny or log"))
                })
            })
            .transpose()?;
        let rule: Option<RuleFilter> = self
            .rule
            .as_deref()
            .map(|r| {
                r.parse()
                    .map_err(|e| ApiError::bad_request(format!("rule {r:?}: {e}")))
            })
            .transpose()?;
        Ok(FlowFilter {
            workload: self.workload.clone(),
            namespace: self.namespace.clone(),
            group: self.group.clone(),
            verdict,
            rule,
            violations: self.violations,
            since_ms: opt_time(&self.since)?,
            until_ms: opt_time(&self.until)?,
            limit: Some(limit(self.limit)),
        })
    }
}

/// The matching flow records of every store, oldest first.
pub fn query_flows(s: &AppState, q: &FlowQuery) -> ApiResult<Vec<FlowRecord>> {
    let filter = q.filter()?;
    let stores = s.stores.lease_all(&s.config.state_dirs)?;
    let mut records = Vec::new();
    for st in &stores {
        records.extend(st.flows(&filter)?.into_iter().map(|(_, r)| r));
    }
    if stores.len() > 1 {
        records.sort_by(|x, y| x.time.cmp(&y.time));
        let n = limit(q.limit);
        records.drain(..records.len().saturating_sub(n));
    }
    Ok(records)
}

pub async fn flows(
    State(s): State<Arc<AppState>>,
    Query(q): Query<FlowQuery>,
) -> ApiResult<Json<Vec<FlowRecord>>> {
    blocking(move || query_flows(&s, &q).map(Json)).await
}

#[derive(Deserialize, Default, Debug)]
pub struct EventQuery {
    /// Every event, not only refusals and sensor hits.
    #[serde(default)]
    pub all: bool,
    /// connection, protocol, request, sensor, closed.
    pub kind: Option<String>,
    pub workload: Option<String>,
    pub namespace: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
}

impl EventQuery {
    pub fn filter(&self) -> ApiResult<EventFilter> {
        Ok(EventFilter {
            refusals: !self.all,
            kind: self.kind.clone(),
            workload: self.workload.clone(),
            namespace: self.namespace.clone(),
            since_ms: opt_time(&self.since)?,
            until_ms: opt_time(&self.until)?,
            limit: Some(limit(self.limit)),
        })
    }
}

pub async fn events(
    State(s): State<Arc<AppState>>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    blocking(move || {
        let filter = q.filter()?;
        let stores = s.stores.lease_all(&s.config.state_dirs)?;
        let mut events = Vec::new();
        for st in &stores {
            events.extend(st.events(&filter)?.into_iter().map(|(_, e)| e));
        }
        if stores.len() > 1 {
            events.sort_by(|x, y| x["time"].as_str().cmp(&y["time"].as_str()));
            let n = limit(q.limit);
            events.drain(..events.len().saturating_sub(n));
        }
        Ok(Json(events))
    })
    .await
}

#[derive(Deserialize, Default, Debug)]
pub struct GraphQuery {
    /// Conversations with an end in this namespace.
    pub namespace: Option<String>,
    pub since: Option<String>,
    /// Only conversations with violations or denials.
    #[serde(default)]
    pub violations: bool,
    pub limit: Option<usize>,
}

pub async fn graph(
    State(s): State<Arc<AppState>>,
    Query(q): Query<GraphQuery>,
) -> ApiResult<Json<Vec<Conversation>>> {
    blocking(move || {
        let f = GraphFilter {
            namespace: q.namespace.clone(),
            since_ms: opt_time(&q.since)?,
            violations: q.violations,
        };
        let mut all: Vec<Conversation> = Vec::new();
        for st in s.stores.lease_all(&s.config.state_dirs)? {
            all.extend(st.conversations(&f)?);
        }
        all.sort_by_key(|c| std::cmp::Reverse(c.connections));
        all.truncate(limit(q.limit));
        Ok(Json(all))
    })
    .await
}

#[derive(Serialize)]
pub struct CaptureOut {
    pub name: String,
    pub state_dir: String,
    pub bytes: u64,
    pub modified: Option<String>,
}

fn capture_dirs(dirs: &[PathBuf]) -> impl Iterator<Item = (PathBuf, PathBuf)> + '_ {
    dirs.iter().map(|d| (d.clone(), d.join("captures")))
}

fn is_capture_name(n: &str) -> bool {
    !n.starts_with('.')
        && n.ends_with(".pcap")
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub async fn captures(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<CaptureOut>>> {
    blocking(move || {
        let mut out = Vec::new();
        for (state, dir) in capture_dirs(&s.config.state_dirs) {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Ok(m) = e.metadata() else { continue };
                if !m.is_file() || !is_capture_name(&name) {
                    continue;
                }
                out.push(CaptureOut {
                    name,
                    state_dir: state.display().to_string(),
                    bytes: m.len(),
                    modified: m
                        .modified()
                        .ok()
                        .map(|t| humantime::format_rfc3339_millis(t).to_string()),
                });
            }
        }
        out.sort_by(|a, b| a.modified.cmp(&b.modified).then(a.name.cmp(&b.name)));
        Ok(Json(out))
    })
    .await
}

fn find_capture(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    capture_dirs(dirs)
        .map(|(_, d)| d.join(name))
        .find(|p| Path::new(p).is_file())
}

/// One capture, as a pcap file.
pub async fn capture(
    State(s): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<impl IntoResponse> {
    if !is_capture_name(&name) {
        return Err(ApiError::bad_request(format!(
            "{name:?}: not a capture name"
        )));
    }
    let bytes = blocking(move || {
        let p = find_capture(&s.config.state_dirs, &name)
            .ok_or_else(|| ApiError::not_found(format!("no capture {name}")))?;
        std::fs::read(&p).map_err(|e| ApiError::internal(format!("{}: {e}", p.display())))
    })
    .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.tcpdump.pcap")],
        bytes,
    ))
}
