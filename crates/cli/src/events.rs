//! `bulkhead events`: what the L7 proxy reported (the events in each agent's store):
//! refused protocols and requests with the deciding rule and the capture, sensor hits,
//! and, on request, every connection and how it ended.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Result, anyhow};
use bulkhead_agent::flows::parse_since;
use bulkhead_store::{EventFilter, Table, workload_of};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::flows::{FOLLOW_PAGE, backlog, follow, state_dirs};
use crate::table::Columns;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    #[default]
    Table,
    /// One JSON object a line.
    Json,
    /// One YAML document an event (`---` before each).
    Yaml,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The agent's state directory.
    #[arg(long, value_name = "DIR")]
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
    /// Only events of connections with an end in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only events of this kind: `sensor` (findings), `request` (refused requests and
    /// protocols), or with --all `connection`, `protocol`, `flow`, `closed`.
    #[arg(long, value_parser = ["sensor", "request", "connection", "protocol", "flow", "closed"])]
    pub kind: Option<String>,
    /// Only events newer than this: a duration back (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "10m|TIME")]
    pub since: Option<String>,
    /// Only the last N matching events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = EventFormat::Table)]
    pub format: EventFormat,
    /// After the events there are, print each new one as an agent commits it, until
    /// interrupted (a live tail of refusals and sensor hits).
    #[arg(long)]
    pub follow: bool,
}

/// A request for a table cell: HTTP headers left out (`-o json` has them all).
pub fn short_request(r: &str) -> String {
    r.split(" header:").next().unwrap_or(r).to_string()
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

/// One event's table cells: time, verdict, source, destination, what happened, what
/// decided it (and where its capture is).
fn row(e: &Value) -> [String; 6] {
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
    [
        e["time"].as_str().unwrap_or("").to_string(),
        verdict.to_string(),
        workload_of(e, "src"),
        workload_of(e, "dst"),
        what,
        format!(
            "{decided_by}{}",
            e["pcap"]
                .as_str()
                .map(|p| format!("  pcap: {p}"))
                .unwrap_or_default()
        ),
    ]
}

pub fn run(a: EventsArgs) -> Result<u8> {
    let dirs = state_dirs(a.state_dir.as_ref(), a.lab.as_deref())?;
    let since = a
        .since
        .map(|s| parse_since(&s, SystemTime::now()))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let filter = EventFilter {
        refusals: !a.all,
        workload: a.workload,
        namespace: a.namespace,
        kind: a.kind,
        since_ms: since.map(bulkhead_store::system_millis),
        limit: a.limit,
        ..EventFilter::default()
    };
    let (mut events, mut cursors) = backlog(&dirs, Table::Events, |st| st.events(&filter))?;
    events.sort_by(|x, y| time(x).cmp(time(y)));
    if let Some(n) = a.limit {
        events.drain(..events.len().saturating_sub(n));
    }
    let Some(columns) = print_all(a.format, &events)? else {
        return Ok(0);
    };
    if a.follow {
        let filter = EventFilter {
            limit: None,
            ..filter
        };
        follow(
            &mut cursors,
            |st, last| Ok(st.events_since(&filter, last, FOLLOW_PAGE)?),
            time,
            |new| print_each(a.format, &columns, new),
        )?;
    }
    Ok(0)
}

fn time(e: &Value) -> &str {
    e["time"].as_str().unwrap_or_default()
}

/// The table's columns, fitted to the events printed first (followed ones keep them).
fn columns(events: &[Value]) -> Columns {
    let rows: Vec<[String; 6]> = events.iter().map(row).collect();
    Columns::fit(&[24, 7, 26, 26, 32], &rows)
}

/// Print events without a header, flushed; false once the reader went away.
pub fn print_each(format: EventFormat, columns: &Columns, events: &[Value]) -> bool {
    let mut out = std::io::stdout().lock();
    for e in events {
        let r = match format {
            EventFormat::Json => writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default()),
            EventFormat::Yaml => write!(out, "{}", crate::render::yaml_document(e)),
            EventFormat::Table => writeln!(out, "{}", columns.line(&row(e))),
        };
        if r.is_err() {
            return false;
        }
    }
    out.flush().is_ok()
}

/// Print events (a table with its header, JSON lines, or YAML documents): the columns
/// events printed after them should use; none when the reader went away (`| head`).
pub fn print_all(format: EventFormat, events: &[Value]) -> Result<Option<Columns>> {
    let columns = columns(events);
    if format == EventFormat::Table {
        let header = columns.line(&[
            "TIME",
            "VERDICT",
            "SOURCE",
            "DESTINATION",
            "EVENT",
            "DECIDED BY",
        ]);
        if writeln!(std::io::stdout().lock(), "{header}").is_err() {
            return Ok(None);
        }
    }
    Ok(print_each(format, &columns, events).then_some(columns))
}
