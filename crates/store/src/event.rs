//! L7 events in the store (the proxy's connections, detected protocols, requests, sensor
//! hits and closes, as JSON objects): the columns they are filed under and their filter.

use serde_json::Value;

/// Which events to return. Every given condition must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only refusals and sensor hits (what `bulkhead events` shows without `--all`).
    pub refusals: bool,
    /// `connection`, `protocol`, `request`, `sensor` or `closed`.
    pub kind: Option<String>,
    /// `namespace/name` (or the address of an end no workload owns): either end.
    pub workload: Option<String>,
    /// Either end in this namespace.
    pub namespace: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only the last N matching events.
    pub limit: Option<usize>,
}

/// The workload at one end (`src` or `dst`) as the decision or the event names it, else
/// the end's address.
pub fn workload_of(e: &Value, side: &str) -> String {
    e["decision"]["detail"][side]["workload"]
        .as_str()
        .or_else(|| e[side]["workload"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            e[if side == "src" { "client" } else { "server" }]
                .as_str()
                .unwrap_or("-")
                .to_string()
        })
}

fn namespace_of(e: &Value, side: &str) -> Option<String> {
    if let Some(ns) = e["decision"]["detail"][side]["namespace"].as_str() {
        return Some(ns.to_string());
    }
    // Sensor events (and terse decisions) name the workload only (`ns/name`).
    (e["decision"]["detail"][side]["workload"].as_str())
        .or_else(|| e[side]["workload"].as_str())
        .and_then(|w| w.split_once('/'))
        .map(|(ns, _)| ns.to_string())
}

/// A refused connection, protocol or request, or a sensor hit.
pub fn is_refusal(e: &Value) -> bool {
    e["event"] == "sensor"
        || matches!(
            e["event"].as_str(),
            Some("protocol" | "request" | "connection")
        ) && e["decision"]["allowed"] == false
}

pub(crate) struct Columns {
    pub time_ms: i64,
    pub kind: String,
    pub refusal: bool,
    pub src: String,
    pub dst: String,
    pub src_ns: Option<String>,
    pub dst_ns: Option<String>,
    pub app: Option<String>,
}

pub(crate) fn columns(e: &Value) -> Columns {
    Columns {
        time_ms: e["time"].as_str().map_or(0, crate::millis),
        kind: e["event"].as_str().unwrap_or("").to_string(),
        refusal: is_refusal(e),
        src: workload_of(e, "src"),
        dst: workload_of(e, "dst"),
        src_ns: namespace_of(e, "src"),
        dst_ns: namespace_of(e, "dst"),
        app: e["protocol"].as_str().map(str::to_string),
    }
}

impl EventFilter {
    /// The same question asked of an event in memory.
    pub fn matches(&self, e: &Value) -> bool {
        let c = columns(e);
        (!self.refusals || c.refusal)
            && self.kind.as_ref().is_none_or(|k| *k == c.kind)
            && self
                .workload
                .as_ref()
                .is_none_or(|w| *w == c.src || *w == c.dst)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| c.src_ns.as_ref() == Some(n) || c.dst_ns.as_ref() == Some(n))
            && self.since_ms.is_none_or(|s| c.time_ms >= s)
            && self.until_ms.is_none_or(|u| c.time_ms < u)
    }

    pub(crate) fn sql(&self) -> (Vec<String>, Vec<rusqlite::types::Value>) {
        let mut w = crate::query::Where::default();
        if self.refusals {
            w.raw("refusal = 1");
        }
        if let Some(x) = &self.kind {
            w.bind("kind = ?", x.to_string());
        }
        if let Some(x) = &self.workload {
            w.either_end("workload", x.to_string());
        }
        if let Some(x) = &self.namespace {
            w.either_end("ns", x.to_string());
        }
        if let Some(x) = self.since_ms {
            w.bind("time_ms >= ?", x);
        }
        if let Some(x) = self.until_ms {
            w.bind("time_ms < ?", x);
        }
        w.finish()
    }
}
