//! Reading: the flows and events that pass a filter, oldest first, the last `limit` of
//! them when a limit is given (found newest first on an index, so `--limit 20` over ten
//! million rows reads twenty), and following new rows by polling past the last rowid.

use std::time::Duration;

use bulkhead_record::FlowRecord;
use rusqlite::types::Value;
use serde_json::Value as Json;

use rusqlite::OptionalExtension;

use crate::{EventFilter, FlowFilter, Result, Store, posting};

/// A WHERE clause under construction: conditions joined by AND, `?` numbered as bound.
/// A condition on either end (`src_x = ? OR dst_x = ?`) makes branches, one per end, so
/// that each branch can walk one index in rowid order and the branches can be merged
/// (an OR over two indexes would collect and sort every matching row).
#[derive(Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    either: Vec<[String; 2]>,
    params: Vec<Value>,
}

impl Where {
    fn number(&mut self, clause: &str, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        clause.replace('?', &format!("?{}", self.params.len()))
    }

    /// A condition with one parameter (every `?` in it is that parameter).
    pub fn bind(&mut self, clause: &str, v: impl Into<Value>) {
        let c = self.number(clause, v);
        self.clauses.push(c);
    }

    /// `src_{column} = ? OR dst_{column} = ?`, as two branches.
    pub fn either_end(&mut self, column: &str, v: impl Into<Value>) {
        let src = self.number(&format!("src_{column} = ?"), v);
        let n = self.params.len();
        self.either.push([src, format!("dst_{column} = ?{n}")]);
    }

    pub fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_string());
    }

    /// The branches (their union is the answer; one when no condition is on either end)
    /// and the parameters.
    pub fn finish(self) -> (Vec<String>, Vec<Value>) {
        let mut branches = vec![self.clauses];
        for pair in &self.either {
            branches = branches
                .iter()
                .flat_map(|b| {
                    pair.iter().map(move |c| {
                        let mut b = b.clone();
                        b.push(c.clone());
                        b
                    })
                })
                .collect();
        }
        let branches = branches
            .into_iter()
            .map(|b| {
                if b.is_empty() {
                    "1".to_string()
                } else {
                    b.join(" AND ")
                }
            })
            .collect();
        (branches, self.params)
    }
}

/// Where to start and how many: the last `limit` (newest first in SQL, returned oldest
/// first), or at most `max` rows with rowids in `(after, upto]`.
enum Window {
    Last(Option<usize>),
    After { after: i64, upto: i64, max: usize },
}

impl Store {
    /// Flow records that pass the filter with their rowids, oldest first.
    pub fn flows(&self, f: &FlowFilter) -> Result<Vec<(i64, FlowRecord)>> {
        self.flow_rows(f, Window::Last(f.limit))
    }

    /// At most `max` flow records with rowids in `(after, upto]` that pass the filter
    /// (its limit aside), oldest first.
    pub fn flows_after(
        &self,
        f: &FlowFilter,
        after: i64,
        upto: i64,
        max: usize,
    ) -> Result<Vec<(i64, FlowRecord)>> {
        self.flow_rows(f, Window::After { after, upto, max })
    }

    /// Events that pass the filter with their rowids, in time order.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<(i64, Json)>> {
        self.event_rows(f, Window::Last(f.limit))
    }

    pub fn events_after(
        &self,
        f: &EventFilter,
        after: i64,
        upto: i64,
        max: usize,
    ) -> Result<Vec<(i64, Json)>> {
        self.event_rows(f, Window::After { after, upto, max })
    }

    /// The newest rowid of a table (0 when empty): where following starts.
    pub fn last_id(&self, table: Table) -> Result<i64> {
        let sql = format!("SELECT coalesce(max(id), 0) FROM {}", table.name());
        Ok(self.conn.query_row(&sql, [], |r| r.get(0))?)
    }

    fn flow_rows(&self, f: &FlowFilter, win: Window) -> Result<Vec<(i64, FlowRecord)>> {
        let (mut lo, mut hi, want) = match win {
            Window::Last(n) => (0, i64::MAX, n),
            Window::After { after, upto, max } => (after, upto, Some(max)),
        };
        let oldest_first = matches!(win, Window::After { .. });
        // Time bounds narrow the rowids to the batches that can hold such records.
        let (tlo, thi) = posting::id_range(&self.conn, f.since_ms, f.until_ms)?;
        (lo, hi) = (lo.max(tlo), hi.min(thi));
        if lo >= hi || want == Some(0) {
            return Ok(Vec::new());
        }
        let mut terms = Vec::new();
        for t in posting::required(f) {
            match posting::term_id(&self.conn, &t)? {
                Some(id) => terms.push(id),
                // No record ever carried it.
                None => return Ok(Vec::new()),
            }
        }
        if terms.is_empty() {
            return self.flow_range(f, lo, hi, want, oldest_first);
        }
        // Walk the lightest term's lists; the row itself answers the rest of the filter.
        let mut driver = terms[0];
        let mut lightest = i64::MAX;
        for t in terms {
            let w = posting::weight(&self.conn, t, lo, hi)?;
            if w < lightest {
                (driver, lightest) = (t, w);
            }
        }
        let mut ids = posting::Newest::new(&self.conn, driver, lo, hi)?;
        let mut fetch = self
            .conn
            .prepare_cached("SELECT record FROM flows WHERE id = ?1")?;
        let mut out = Vec::new();
        while let Some(id) = ids.next_id()? {
            let text: Option<String> = fetch.query_row([id], |r| r.get(0)).optional()?;
            // Gone (retention) or unreadable: not an answer.
            let Some(r) = text.and_then(|t| serde_json::from_str::<FlowRecord>(&t).ok()) else {
                continue;
            };
            if f.matches(&r) {
                out.push((id, r));
                if !oldest_first && want.is_some_and(|n| out.len() >= n) {
                    break;
                }
            }
        }
        out.reverse();
        if let Some(n) = want.filter(|_| oldest_first) {
            out.truncate(n);
        }
        Ok(out)
    }

    /// Every record with a rowid in `(lo, hi]` and a time in the filter's bounds (a filter
    /// with no indexed term): a walk of the table by rowid.
    fn flow_range(
        &self,
        f: &FlowFilter,
        lo: i64,
        hi: i64,
        want: Option<usize>,
        oldest_first: bool,
    ) -> Result<Vec<(i64, FlowRecord)>> {
        let mut w = Where::default();
        w.bind("id > ?", lo);
        w.bind("id <= ?", hi);
        if let Some(x) = f.since_ms {
            w.bind("time_ms >= ?", x);
        }
        if let Some(x) = f.until_ms {
            w.bind("time_ms < ?", x);
        }
        let win = match want {
            Some(max) if oldest_first => Window::After {
                after: lo,
                upto: hi,
                max,
            },
            n => Window::Last(n),
        };
        let rows = self.select("flows", "record", "id", w.finish(), &win)?;
        Ok(parsed(rows))
    }

    fn event_rows(&self, f: &EventFilter, win: Window) -> Result<Vec<(i64, Json)>> {
        // Events come from many proxy threads: time order, as the proxy reported them.
        let rows = self.select("events", "event", "time_ms, id", f.sql(), &win)?;
        Ok(parsed(rows))
    }

    /// `(id, column)` of the rows in the window that pass the filter's branches.
    fn select(
        &self,
        table: &str,
        column: &str,
        order: &str,
        (branches, mut params): (Vec<String>, Vec<Value>),
        win: &Window,
    ) -> Result<Vec<(i64, String)>> {
        let desc = order.replace(',', " DESC,") + " DESC";
        let mut bind = |v: i64| {
            params.push(Value::Integer(v));
            format!("?{}", params.len())
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        // What the window adds to each branch, how it orders and limits, and whether the
        // rows come newest first.
        let (extra, sort, limit, reverse) = match *win {
            Window::Last(None) => (String::new(), order, String::new(), false),
            Window::Last(Some(n)) => (
                String::new(),
                desc.as_str(),
                format!(" LIMIT {}", bind(count(n))),
                true,
            ),
            Window::After { after, upto, max } => (
                format!(" AND id > {} AND id <= {}", bind(after), bind(upto)),
                "id",
                format!(" LIMIT {}", bind(count(max))),
                false,
            ),
        };
        let sql = if let [only] = branches.as_slice() {
            format!("SELECT id, {column} FROM {table} WHERE ({only}){extra} ORDER BY {sort}{limit}")
        } else {
            // The window's keys of each branch, merged (UNION drops a row both ends
            // matched), then the rows themselves.
            let keys = order.replace(' ', "");
            let union: Vec<String> = branches
                .iter()
                .map(|b| format!("SELECT {keys} FROM {table} WHERE ({b}){extra}"))
                .collect();
            format!(
                "SELECT id, {column} FROM {table} WHERE id IN
                   (SELECT id FROM ({} ORDER BY {sort}{limit}))
                 ORDER BY {sort}",
                union.join(" UNION ")
            )
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut out: Vec<(i64, String)> = st
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// One step of following: the records committed after `*last` that pass the filter
    /// (at most `max`), moving `*last` past every row read, also the ones the filter
    /// skips. Rowids only grow and a reader sees whole commits, so the rows in
    /// `(last, top]` are read once. Returns whether the page was full (more waiting).
    pub fn flows_since(
        &self,
        f: &FlowFilter,
        last: &mut i64,
        max: usize,
    ) -> Result<(Vec<FlowRecord>, bool)> {
        self.since(Table::Flows, last, max, |after, top| {
            self.flows_after(f, after, top, max)
        })
    }

    /// [`Store::flows_since`] for events: what `bulkhead events --follow` prints next.
    pub fn events_since(
        &self,
        f: &EventFilter,
        last: &mut i64,
        max: usize,
    ) -> Result<(Vec<Json>, bool)> {
        self.since(Table::Events, last, max, |after, top| {
            self.events_after(f, after, top, max)
        })
    }

    /// The cursor step both follow: the rows of `(last, top]` that `read` returns, and
    /// `*last` moved past them (past `top` unless the page was full).
    fn since<T>(
        &self,
        table: Table,
        last: &mut i64,
        max: usize,
        read: impl FnOnce(i64, i64) -> Result<Vec<(i64, T)>>,
    ) -> Result<(Vec<T>, bool)> {
        let top = self.last_id(table)?;
        let rows = read(*last, top)?;
        let full = rows.len() == max;
        *last = match rows.last() {
            Some((id, _)) if full => *id,
            _ => top.max(*last),
        };
        Ok((rows.into_iter().map(|(_, r)| r).collect(), full))
    }

    /// Call `each` with every flow record after rowid `after` (see [`Store::last_id`])
    /// that passes the filter (its limit aside), as the writer commits them, until it
    /// returns false. Polls every `every`.
    pub fn follow_flows(
        &self,
        f: &FlowFilter,
        after: i64,
        every: Duration,
        mut each: impl FnMut(&FlowRecord) -> bool,
    ) -> Result<()> {
        const PAGE: usize = 1000;
        let mut last = after;
        loop {
            let (rows, full) = self.flows_since(f, &mut last, PAGE)?;
            for r in &rows {
                if !each(r) {
                    return Ok(());
                }
            }
            if !full {
                std::thread::sleep(every);
            }
        }
    }
}

/// Rows' JSON parsed. A row that does not parse (written by a newer agent) is skipped,
/// not fatal.
fn parsed<T: serde::de::DeserializeOwned>(rows: Vec<(i64, String)>) -> Vec<(i64, T)> {
    rows.into_iter()
        .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
        .collect()
}

/// A table with rowids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Flows,
    Events,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Flows => "flows",
            Table::Events => "events",
        }
    }
}
