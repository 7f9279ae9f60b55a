//! `bulkhead events`: what the L7 proxy reported (`events.jsonl` of each agent): refused
//! protocols and requests with the deciding rule and the capture, and, on request, every
//! connection and how it ended.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Result, anyhow};
use bulkhead_agent::flows::parse_since;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::flows::state_dirs;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The agent's state directory.
    #[arg(long, value_name = "DIR", required_unless_present = "lab")]
    pub state_dir: Option<PathBuf>,
    /// The events of every agent of this lab.
    #[arg(long, value_name = "NAME", conflicts_with = "state_dir")]
    pub lab: Option<String>,
    /// Every event (connections, detected protocols, closes), not only refusals.
    #[arg(long)]
    pub all: bool,
    /// Only events of connections from or to this workload (NAMESPACE/NAME).
    #[arg(long, value_name = "NS/NAME")]
    pub workload: Option<String>,
    /// Only events newer than this: a duration back (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "10m|TIME")]
    pub since: Option<String>,
    /// Only the last N matching events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = EventFormat::Table)]
    pub format: EventFormat,
}

/// events.jsonl and its rotations, oldest first.
fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix("events.jsonl")?;
            let n = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('.')?.parse().ok()?
            };
            Some((n, e.path()))
        })
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, p)| p).collect()
}

fn workload_of(e: &Value, side: &str) -> String {
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

/// A request for a table cell: HTTP headers left out (`-o json` has them all).
pub fn short_request(r: &str) -> String {
    r.split(" header:").next().unwrap_or(r).to_string()
}

/// Refusals and sensor findings: what `bulkhead events` shows without `--all`.
fn is_refusal(e: &Value) -> bool {
    e["event"] == "sensor"
        || matches!(
            e["event"].as_str(),
            Some("protocol" | "request" | "connection")
        ) && e["decision"]["allowed"] == false
}

/// A sensor event's findings for a table cell: `sqli in query:id: 1' OR '1'='1`.
fn findings(e: &Value) -> String {
    let all: Vec<String> = e["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} in {}: {}",
                f["class"].as_str().unwrap_or("?"),
                f["location"].as_str().unwrap_or("?"),
                f["masked"].as_str().unwrap_or("")
            )
        })
        .collect();
    all.join("; ")
}

fn sensors(e: &Value) -> String {
    let mut names: Vec<&str> = e["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["sensor"].as_str())
        .collect();
    names.dedup();
    format!("Sensor {}", names.join(", "))
}

fn row(e: &Value) -> String {
    let what = match e["event"].as_str() {
        Some("sensor") => match e["request"].as_str() {
            Some(r) => format!("{} [{}]", short_request(r), findings(e)),
            None => format!(
                "{} [{}]",
                e["protocol"].as_str().unwrap_or("?"),
                findings(e)
            ),
        },
        Some("request") => short_request(e["request"].as_str().unwrap_or("")),
        Some("protocol") => format!("protocol {}", e["protocol"].as_str().unwrap_or("?")),
        Some("closed") => format!(
            "closed: {} bytes up, {} down",
            e["bytes_up"], e["bytes_down"]
        ),
        _ => e["event"].as_str().unwrap_or("?").to_string(),
    };
    let verdict = match (e["event"].as_str(), e["decision"]["allowed"].as_bool()) {
        (Some("sensor"), _) if e["blocked"] == true => "block",
        (Some("sensor"), _) => "alert",
        (_, Some(true)) => "allow",
        (_, Some(false)) => "deny",
        _ => "-",
    };
    let decided_by = if e["event"] == "sensor" {
        sensors(e)
    } else {
        e["decision"]["decided_by"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    format!(
        "{:<24}  {:<7}  {:<26}  {:<26}  {:<32}  {}{}",
        e["time"].as_str().unwrap_or(""),
        verdict,
        workload_of(e, "src"),
        workload_of(e, "dst"),
        what,
        decided_by,
        e["pcap"]
            .as_str()
            .map(|p| format!("  pcap: {p}"))
            .unwrap_or_default()
    )
}

pub fn run(a: EventsArgs) -> Result<u8> {
    let dirs = state_dirs(a.state_dir.as_ref(), a.lab.as_deref())?;
    let since = a
        .since
        .map(|s| parse_since(&s, SystemTime::now()))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let mut events: Vec<Value> = Vec::new();
    for d in &dirs {
        for f in files(d) {
            let text = std::fs::read_to_string(&f).map_err(|e| anyhow!("{}: {e}", f.display()))?;
            events.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
            );
        }
    }
    events.retain(|e| {
        (a.all || is_refusal(e))
            && a.workload
                .as_ref()
                .is_none_or(|w| workload_of(e, "src") == *w || workload_of(e, "dst") == *w)
            && since.is_none_or(|t| {
                e["time"]
                    .as_str()
                    .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                    .is_some_and(|et| et >= t)
            })
    });
    events.sort_by(|x, y| x["time"].as_str().cmp(&y["time"].as_str()));
    if let Some(n) = a.limit {
        events.drain(..events.len().saturating_sub(n));
    }
    match a.format {
        EventFormat::Json => {
            for e in &events {
                println!("{}", serde_json::to_string(e)?);
            }
        }
        EventFormat::Table => {
            println!(
                "{:<24}  {:<7}  {:<26}  {:<26}  {:<32}  DECIDED BY",
                "TIME", "VERDICT", "SOURCE", "DESTINATION", "EVENT"
            );
            for e in &events {
                println!("{}", row(e));
            }
        }
    }
    Ok(0)
}
