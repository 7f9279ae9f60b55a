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
            let mut flow =
                tx.prepare_cached("INSERT INTO flows (time_ms, record) VALUES (?1, ?2)")?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (time_ms, kind, refusal, src_workload, dst_workload,
                     src_ns, dst_ns, app, event)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            )?;
            // One buffer for every record's JSON.
            let mut json = Vec::with_capacity(1024);
            for rec in batch {
                json.clear();
                match rec {
                    Ref::Flow(r) => {
                        serde_json::to_writer(&mut json, r)?;
                        let c = crate::flow::columns(r);
                        flow.execute(params![
                            c.time_ms,
                            // serde_json writes UTF-8.
                            std::str::from_utf8(&json).unwrap_or_default(),
                        ])?;
                        graph.add(r, c.time_ms, c.app);
                        lists.add(tx.last_insert_rowid(), c.time_ms, r);
                    }
                    Ref::Event(e) => {
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
