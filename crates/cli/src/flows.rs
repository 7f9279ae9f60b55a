//! `bulkhead flows`: the flow records in the agents' stores, filtered there (on the
//! store's indexes), printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use bulkhead_agent::flows::{self, Action, FlowRecord};
use bulkhead_store::{FlowFilter, Store};
use clap::{Args, ValueEnum};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FlowFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    /// The agent's state directory.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The flows of every agent of this lab (`bulkhead lab up --name NAME`).
    #[arg(long, value_name = "NAME", conflicts_with = "state_dir")]
    pub lab: Option<String>,
    /// Only the last N matching records (before --follow).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only flows from or to this workload (NAMESPACE/NAME).
    #[arg(long, value_name = "NS/NAME")]
    pub workload: Option<String>,
    /// Only flows from or to workloads of this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this verdict: allow, deny or log.
    #[arg(long)]
    pub verdict: Option<Action>,
    /// Only records newer than this: a duration back (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "10m|TIME")]
    pub since: Option<String>,
    /// Output format: a table for people, JSON lines for programs.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = FlowFormat::Table)]
    pub format: FlowFormat,
    /// Keep printing new records as the agent writes them.
    #[arg(long)]
    pub follow: bool,
}

fn table_header() -> String {
    format!(
        "{:<24}  {:<7}  {:<28}  {:<28}  {:<12}  {}",
        "TIME", "VERDICT", "SOURCE", "DESTINATION", "SERVICE", "DECIDED BY"
    )
}

fn table_row(r: &FlowRecord) -> String {
    let mut decided = r
        .decided_by
        .as_ref()
        .map(|d| d.display())
        .unwrap_or_else(|| "-".into());
    if r.violation {
        decided.push_str(" [violation]");
    }
    if r.learned {
        decided.push_str(" [learned]");
    }
    // Decided by the L7 proxy: the request (or the protocol) it judged.
    if let Some(l7) = &r.l7 {
        let what = l7["request"]
            .as_str()
            .map(crate::events::short_request)
            .or_else(|| l7["protocol"].as_str().map(|p| format!("protocol {p}")));
        if let Some(w) = what {
            decided.push_str(&format!(" [l7: {w}]"));
        }
    }
    if r.event == "end" {
        decided = format!(
            "ended: {} packets, {} bytes",
            r.packets.map_or("?".into(), |p| p.to_string()),
            r.bytes.map_or("?".into(), |b| b.to_string())
        );
    }
    format!(
        "{:<24}  {:<7}  {:<28}  {:<28}  {:<12}  {}",
        r.time,
        r.verdict.as_str(),
        r.source_display(),
        r.dst.display(),
        r.service(),
        decided
    )
}

pub fn print(out: &mut impl Write, format: FlowFormat, r: &FlowRecord) -> std::io::Result<()> {
    match format {
        FlowFormat::Json => writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default()),
        FlowFormat::Table => writeln!(out, "{}", table_row(r)),
    }
}

/// The store of a state directory, if the agent has created it.
pub fn open_store(dir: &Path) -> Result<Option<Store>> {
    let path = dir.join(bulkhead_store::FILE);
    Store::open_read_only(&path).with_context(|| path.display().to_string())
}

pub fn run(a: FlowsArgs) -> Result<u8> {
    let filter = FlowFilter {
        workload: a.workload,
        namespace: a.namespace,
        verdict: a.verdict,
        since_ms: a
            .since
            .map(|s| flows::parse_since(&s, SystemTime::now()))
            .transpose()
            .map_err(|e| anyhow!(e))?
            .map(bulkhead_store::system_millis),
        limit: a.limit,
        ..FlowFilter::default()
    };
    let dirs = state_dirs(a.state_dir.as_ref(), a.lab.as_deref())?;
    let mut records = Vec::new();
    // Following goes on from the newest record each store had when it was read: a
    // record committed meanwhile is printed once, by the follower.
    let mut cursors: Vec<(PathBuf, Option<Store>, i64)> = Vec::new();
    for d in &dirs {
        let Some(store) = open_store(d)? else {
            cursors.push((d.clone(), None, 0));
            continue;
        };
        let top = store.last_id(bulkhead_store::Table::Flows)?;
        records.extend(
            store
                .flows(&filter)?
                .into_iter()
                .filter(|(id, _)| *id <= top)
                .map(|(_, r)| r),
        );
        cursors.push((d.clone(), Some(store), top));
    }
    if dirs.len() > 1 {
        records.sort_by(|x, y| x.time.cmp(&y.time));
    }
    if let Some(n) = a.limit {
        records.drain(..records.len().saturating_sub(n));
    }
    if !print_all(a.format, &records)? {
        return Ok(0);
    }
    if a.follow {
        let filter = FlowFilter {
            limit: None,
            ..filter
        };
        follow(&filter, &mut cursors, a.format)?;
    }
    Ok(0)
}

/// Print what every store commits after its cursor, every 200 ms, until the reader goes
/// away. Each agent of a lab has its own store; all are followed.
fn follow(
    filter: &FlowFilter,
    cursors: &mut [(PathBuf, Option<Store>, i64)],
    format: FlowFormat,
) -> Result<()> {
    const PAGE: usize = 1000;
    loop {
        let mut new = Vec::new();
        let mut full = false;
        for (dir, store, last) in cursors.iter_mut() {
            if store.is_none() {
                // The agent may not have created its store yet.
                *store = open_store(dir)?;
            }
            let Some(st) = store else { continue };
            let (rows, more) = st.flows_since(filter, last, PAGE)?;
            full |= more;
            new.extend(rows);
        }
        new.sort_by(|x, y| x.time.cmp(&y.time));
        let mut out = std::io::stdout().lock();
        for r in &new {
            if print(&mut out, format, r).is_err() {
                return Ok(());
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
        drop(out);
        if !full {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Print records (a table with its header, or JSON lines); false when the reader went
/// away (`| head`), which is not an error.
pub fn print_all(format: FlowFormat, records: &[FlowRecord]) -> Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let quiet = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    };
    if format == FlowFormat::Table && !quiet(writeln!(out, "{}", table_header()))? {
        return Ok(false);
    }
    for r in records {
        if !quiet(print(&mut out, format, r))? {
            return Ok(false);
        }
    }
    Ok(quiet(out.flush())?)
}

/// The agent state directories to read: one given, or every agent of a lab (a lab's
/// agents keep their state under the lab's directory, one per node).
pub fn state_dirs(state_dir: Option<&PathBuf>, lab: Option<&str>) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = match (state_dir, lab) {
        (Some(d), _) => vec![d.clone()],
        (None, Some(lab)) => {
            let agents = PathBuf::from(format!("/run/bulkhead/labs/{lab}/agents"));
            let mut v: Vec<PathBuf> = std::fs::read_dir(&agents)
                .map_err(|e| anyhow!("{}: {e} (is lab {lab} up?)", agents.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            v.sort();
            v
        }
        (None, None) => return Err(anyhow!("give --state-dir DIR or --lab NAME")),
    };
    for d in &dirs {
        if !d.is_dir() {
            return Err(anyhow!("{}: no such state directory", d.display()));
        }
    }
    Ok(dirs)
}
