//! Writing: a batch of records in one transaction, through prepared statements, with the
//! batch's conversations aggregated in memory and added once per edge. One transaction
//! per batch is what makes ingest fast (a commit per record would be bounded by the WAL
//! append and lock work of each commit); the caller decides the batch size. The graph's
//! sums are added about once a second (see `conversation`).

use std::time::{Duration, Instant};

use bulkhead_record::FlowRecord;
use rusqlite::params;
use serde_json::Value;

use crate::{Result, Store};
use crate::{conversation, posting};

/// How often the aggregated conversations are added to the table.
const GRAPH_EVERY: Duration = Duration::from_secs(1);

/// What the agent stores.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Flow(Box<FlowRecord>),
    /// An L7 event as the proxy reported it (a JSON object with `time` and `event`).
    Event(Value),
}

/// A record to store, borrowed.
enum Ref<'a> {
    Flow(&'a FlowRecord),
    Event(&'a Value),
}

impl Store {
    /// Store a batch in one transaction; when this returns Ok the batch is committed
    /// (acknowledged: it survives a crash of this process).
    pub fn write(&mut self, batch: &[Record]) -> Result<()> {
        self.write_refs(batch.iter().map(|r| match r {
            Record::Flow(f) => Ref::Flow(f),
            Record::Event(e) => Ref::Event(e),
        }))
    }

    /// Store flow records (see [`Store::write`]).
    pub fn write_flows(&mut self, batch: &[FlowRecord]) -> Result<()> {
        self.write_refs(batch.iter().map(Ref::Flow))
    }

    fn write_refs<'a>(&mut self, batch: impl Iterator<Item = Ref<'a>>) -> Result<()> {
        let tx = self.conn.transaction()?;
        let mut graph = conversation::Batch::default();
        let mut lists = posting::Batch::default();
        let due = self.graph_written.get().elapsed() >= GRAPH_EVERY;
        {
            let mut rows = FlowRows::new(&tx)?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (time_ms, kind, refusal, src_workload, dst_workload,
                     src_ns, dst_ns, app, event)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            )?;
            let mut json = Vec::with_capacity(1024);
            for rec in batch {
                match rec {
                    Ref::Flow(r) => {
                        let c = crate::flow::columns(r);
                        let id = rows.push(r, c.time_ms)?;
                        graph.add(r, c.time_ms, c.app);
                        lists.add(id, c.time_ms, r);
                    }
                    Ref::Event(e) => {
                        json.clear();
                        serde_json::to_writer(&mut json, e)?;
                        let c = crate::event::columns(e);
                        event.execute(params![
                            c.time_ms,
                            c.kind,
                            c.refusal,
                            c.src,
                            c.dst,
                            c.src_ns,
                            c.dst_ns,
                            c.app,
                            std::str::from_utf8(&json).unwrap_or_default(),
                        ])?;
                    }
                }
            }
            rows.finish()?;
        }
        let new_terms = lists.commit(&tx, &self.terms)?;
        if due {
            self.graph.borrow().commit(&tx)?;
            graph.commit(&tx)?;
        }
        tx.commit()?;
        self.terms.keep(new_terms);
        // Only what was committed counts.
        if due {
            *self.graph.borrow_mut() = conversation::Batch::default();
            self.graph_written.set(Instant::now());
        } else {
            self.graph.borrow_mut().merge(graph);
        }
        Ok(())
    }

    /// Write the conversations aggregated since they were last written.
    pub fn commit_conversations(&self) -> Result<()> {
        if self.graph.borrow().is_empty() {
            return Ok(());
        }
        // The writer's own connection, between its transactions.
        let tx = self.conn.unchecked_transaction()?;
        self.graph.borrow().commit(&tx)?;
        tx.commit()?;
        *self.graph.borrow_mut() = conversation::Batch::default();
        self.graph_written.set(Instant::now());
        Ok(())
    }
}

/// Flow rows inserted [`ROWS_PER_INSERT`] at a time: a statement's fixed cost (its run,
/// its end, the AUTOINCREMENT counter's update) is paid once for them all. Rowids are
/// given, not drawn: the next one AUTOINCREMENT would give (above every rowid ever used,
/// `sqlite_sequence`), counted up, all in one transaction: in WAL mode a transaction that
/// read before another writer committed cannot write (`SQLITE_BUSY_SNAPSHOT`), so no
/// other writer takes one meanwhile (and a taken rowid would fail the insert, not be
/// overwritten).
const ROWS_PER_INSERT: usize = 32;

struct FlowRows<'t> {
    many: rusqlite::CachedStatement<'t>,
    one: rusqlite::CachedStatement<'t>,
    next_id: i64,
    /// The JSON of the pending rows, one after the other.
    json: Vec<u8>,
    /// Per pending row: its time and where its JSON ends.
    pending: Vec<(i64, usize)>,
}

impl<'t> FlowRows<'t> {
    fn new(tx: &'t rusqlite::Transaction) -> rusqlite::Result<FlowRows<'t>> {
        static MANY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = MANY.get_or_init(|| {
            let values: Vec<&str> = vec!["(?,?,?)"; ROWS_PER_INSERT];
            format!(
                "INSERT INTO flows (id, time_ms, record) VALUES {}",
                values.join(",")
            )
        });
        let next_id = tx.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'flows'), 0),
                        coalesce((SELECT max(id) FROM flows), 0)) + 1",
            [],
            |r| r.get(0),
        )?;
        Ok(FlowRows {
            many: tx.prepare_cached(sql)?,
            one: tx
                .prepare_cached("INSERT INTO flows (id, time_ms, record) VALUES (?1, ?2, ?3)")?,
            next_id,
            json: Vec::with_capacity(ROWS_PER_INSERT * 1024),
            pending: Vec::with_capacity(ROWS_PER_INSERT),
        })
    }

    /// Queue a record; returns its rowid.
    fn push(&mut self, r: &FlowRecord, time_ms: i64) -> Result<i64> {
        serde_json::to_writer(&mut self.json, r)?;
        self.pending.push((time_ms, self.json.len()));
        let id = self.next_id + self.pending.len() as i64 - 1;
        if self.pending.len() == ROWS_PER_INSERT {
            self.insert()?;
        }
        Ok(id)
    }

    /// Insert the pending rows.
    fn insert(&mut self) -> rusqlite::Result<()> {
        let st = if self.pending.len() == ROWS_PER_INSERT {
            &mut self.many
        } else {
            &mut self.one
        };
        let mut start = 0;
        let mut param = 1;
        for (i, &(time_ms, end)) in self.pending.iter().enumerate() {
            // serde_json writes UTF-8.
            let text = std::str::from_utf8(&self.json[start..end]).unwrap_or_default();
            st.raw_bind_parameter(param, self.next_id + i as i64)?;
            st.raw_bind_parameter(param + 1, time_ms)?;
            st.raw_bind_parameter(param + 2, text)?;
            param += 3;
            start = end;
            if st.parameter_count() < param {
                // One row at a time (the batch's tail).
                st.raw_execute()?;
                param = 1;
            }
        }
        if param > 1 {
            st.raw_execute()?;
        }
        self.next_id += self.pending.len() as i64;
        self.pending.clear();
        self.json.clear();
        Ok(())
    }

    /// Insert what is still pending.
    fn finish(mut self) -> rusqlite::Result<()> {
        self.insert()
    }
}
