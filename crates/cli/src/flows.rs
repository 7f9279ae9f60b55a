//! `bulkhead flows`: the flow records in the agents' stores, filtered there (on the
//! store's indexes), printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use bulkhead_agent::flows::{self, Action, FlowRecord};
use bulkhead_store::{FlowFilter, Store, Table};
use clap::{Args, ValueEnum};

use crate::table::Columns;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FlowFormat {
    #[default]
    Table,
    /// One JSON object a line.
    Json,
    /// One YAML document a record (`---` before each), streamed as they come.
    Yaml,
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

/// The least widths of the table's columns but the last (DECIDED BY).
const LEAST: [usize; 5] = [24, 7, 28, 28, 12];
const HEADER: [&str; 6] = [
    "TIME",
    "VERDICT",
    "SOURCE",
    "DESTINATION",
    "SERVICE",
    "DECIDED BY",
];

/// The table's columns, fitted to the records printed first (followed ones keep them).
pub fn columns(records: &[FlowRecord]) -> Columns {
    let rows: Vec<[String; 6]> = records.iter().map(cells).collect();
    Columns::fit(&LEAST, &rows)
}

/// One record's table cells: time, verdict, source, destination, service, what decided.
fn cells(r: &FlowRecord) -> [String; 6] {
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
    [
        r.time.clone(),
        r.verdict.as_str().to_string(),
        r.source_display(),
        r.dst.display(),
        r.service(),
        decided,
    ]
}

/// One record: a table row in `columns`, or a JSON line.
pub fn print(
    out: &mut impl Write,
    format: FlowFormat,
    columns: &Columns,
    r: &FlowRecord,
) -> std::io::Result<()> {
    match format {
        FlowFormat::Json => writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default()),
        FlowFormat::Yaml => write!(out, "{}", crate::render::yaml_document(r)),
        FlowFormat::Table => writeln!(out, "{}", columns.line(&cells(r))),
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
    let (mut records, mut cursors) = backlog(&dirs, Table::Flows, |st| st.flows(&filter))?;
    records.sort_by(|x, y| x.time.cmp(&y.time));
    if let Some(n) = a.limit {
        records.drain(..records.len().saturating_sub(n));
    }
    let Some(columns) = print_all(a.format, &records)? else {
        return Ok(0);
    };
    if a.follow {
        let filter = FlowFilter {
            limit: None,
            ..filter
        };
        let mut out = std::io::stdout();
        follow(
            &mut cursors,
            |st, last| Ok(st.flows_since(&filter, last, FOLLOW_PAGE)?),
            |r| r.time.as_str(),
            |rs| {
                let mut out = out.lock();
                rs.iter()
                    .all(|r| print(&mut out, a.format, &columns, r).is_ok())
                    && out.flush().is_ok()
            },
        )?;
        let _ = out.flush();
    }
    Ok(0)
}

/// Per agent state directory: its store (once the agent has made it) and the rowid
/// following goes on from.
pub type Cursors = Vec<(PathBuf, Option<Store>, i64)>;

/// Records read from followed stores at once, per store.
pub const FOLLOW_PAGE: usize = 1000;

/// What every store holds now (`read`), and the cursors to follow them from: the
/// newest row each had when it was read, so that a row committed meanwhile is printed
/// once, by the follower.
pub fn backlog<T>(
    dirs: &[PathBuf],
    table: Table,
    read: impl Fn(&Store) -> bulkhead_store::Result<Vec<(i64, T)>>,
) -> Result<(Vec<T>, Cursors)> {
    let mut rows = Vec::new();
    let mut cursors = Vec::new();
    for d in dirs {
        let Some(store) = open_store(d)? else {
            cursors.push((d.clone(), None, 0));
            continue;
        };
        let top = store.last_id(table)?;
        rows.extend(
            read(&store)?
                .into_iter()
                .filter(|(id, _)| *id <= top)
                .map(|(_, r)| r),
        );
        cursors.push((d.clone(), Some(store), top));
    }
    Ok((rows, cursors))
}

/// Hand `print` what every store commits after its cursor (`read`: one page and
/// whether more is waiting), in time order, every 200 ms, until it says the reader went
/// away. Each agent of a lab has its own store; all are followed.
pub fn follow<T>(
    cursors: &mut Cursors,
    mut read: impl FnMut(&Store, &mut i64) -> Result<(Vec<T>, bool)>,
    time: fn(&T) -> &str,
    mut print: impl FnMut(&[T]) -> bool,
) -> Result<()> {
    loop {
        let mut new = Vec::new();
        let mut full = false;
        for (dir, store, last) in cursors.iter_mut() {
            if store.is_none() {
                // The agent may not have created its store yet.
                *store = open_store(dir)?;
            }
            let Some(st) = store else { continue };
            let (rows, more) = read(st, last)?;
            full |= more;
            new.extend(rows);
        }
        new.sort_by(|x, y| time(x).cmp(time(y)));
        if !print(&new) {
            return Ok(());
        }
        if !full {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Print records (a table with its header, its columns fitted to them, or JSON lines):
/// the columns records printed after them should use; none when the reader went away
/// (`| head`), which is not an error.
pub fn print_all(format: FlowFormat, records: &[FlowRecord]) -> Result<Option<Columns>> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let quiet = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    };
    let columns = columns(records);
    if format == FlowFormat::Table && !quiet(writeln!(out, "{}", columns.line(&HEADER)))? {
        return Ok(None);
    }
    for r in records {
        if !quiet(print(&mut out, format, &columns, r))? {
            return Ok(None);
        }
    }
    Ok(quiet(out.flush())?.then_some(columns))
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

#[cfg(test)]
mod tests {
    use super::{FlowFormat, HEADER, columns, print};
    use crate::table::Columns;
    use bulkhead_agent::flows::{Action, FlowRecord};
    use bulkhead_record::Peer;

    fn record(src: Peer, sender: Option<&str>) -> FlowRecord {
        let workload = |w: &str| Peer {
            ip: "10.244.0.9".into(),
            workload: Some(w.into()),
            ..Peer::default()
        };
        FlowRecord {
            dport: Some(389),
            sender: sender.map(workload),
            ..FlowRecord::new(
                "2026-12-05T00:00:00.000Z".into(),
                Action::Deny,
                "TCP",
                src,
                workload("platform/ldap-blue-0"),
            )
        }
    }

    fn table(records: &[FlowRecord]) -> Vec<String> {
        let columns = columns(records);
        let mut out = vec![columns.line(&HEADER)];
        for r in records {
            let mut line = Vec::new();
            print(&mut line, FlowFormat::Table, &columns, r).unwrap();
            out.push(String::from_utf8(line).unwrap().trim_end().to_string());
        }
        out
    }

    /// A long source (a forged address and its sender) widens its column for every row
    /// instead of pushing its own row's later columns out of line.
    #[test]
    fn columns_fit_the_longest_cell() {
        let forged = Peer {
            ip: "10.244.0.22".into(),
            entity: Some("forged".into()),
            ..Peer::default()
        };
        let plain = Peer {
            ip: "10.244.0.5".into(),
            workload: Some("platform/node-api-0".into()),
            ..Peer::default()
        };
        let lines = table(&[
            record(plain, None),
            record(forged, Some("platform/ldap-client-red-0")),
        ]);
        assert!(lines[2].contains("forged 10.244.0.22 from platform/ldap-client-red-0"));
        let at: Vec<usize> = lines
            .iter()
            .map(|l| l.find("TCP/389").unwrap_or(0))
            .collect();
        let dest: Vec<usize> = lines
            .iter()
            .map(|l| {
                l.find("platform/ldap-blue-0")
                    .or(l.find("DESTINATION"))
                    .unwrap()
            })
            .collect();
        assert_eq!(at[1], at[2], "{lines:#?}");
        assert!(dest.iter().all(|&d| d == dest[0]), "{lines:#?}");
        // A cell longer than the cap overflows its column; the others keep theirs.
        let long = Peer {
            ip: "203.0.113.7".into(),
            name: Some("x".repeat(100)),
            ..Peer::default()
        };
        assert_eq!(columns(&[record(long, None)]).widths()[2], Columns::MAX);
    }
}
