//! Retention: records older than `max_age` go, and while the content is larger than
//! `max_bytes` the oldest records go. Flows go by whole batches (a batch goes once its
//! newest record is too old), with their posting lists. Pruning deletes a bounded batch per call, so the
//! writer thread can interleave it with ingest (one long DELETE would hold the write
//! lock, and the records waiting behind it, for seconds).

use std::time::{Duration, SystemTime};

use crate::{Result, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
    /// Rows deleted per step.
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_bytes: Some(1 << 30),
            batch: 10_000,
        }
    }
}

/// Delete the flows of the oldest batches (spans) that pass `cond` (with `?1` bound to
/// `value`), about `rows` records' worth, with their posting lists. Returns the records
/// deleted.
fn drop_spans(
    tx: &rusqlite::Transaction,
    cond: &str,
    value: i64,
    rows: i64,
) -> rusqlite::Result<u64> {
    let mut st = tx.prepare(&format!(
        "SELECT first_id, last_id FROM spans {cond} ORDER BY last_id LIMIT 1024"
    ))?;
    let spans: Vec<(i64, i64)> = st
        .query_map([value], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0u64;
    for (first, last) in spans {
        deleted += tx.execute(
            "DELETE FROM flows WHERE id BETWEEN ?1 AND ?2",
            (first, last),
        )? as u64;
        tx.execute(
            "DELETE FROM postings WHERE last_id BETWEEN ?1 AND ?2",
            (first, last),
        )?;
        tx.execute("DELETE FROM spans WHERE last_id = ?1", [last])?;
        if deleted >= rows as u64 {
            break;
        }
    }
    Ok(deleted)
}

/// What one step deleted, and whether more is due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub flows: u64,
    pub events: u64,
    pub conversations: u64,
    pub more: bool,
}

impl Store {
    /// One bounded step of retention at time `now`.
    pub fn prune(&mut self, r: &Retention, now: SystemTime) -> Result<Pruned> {
        let mut out = Pruned::default();
        let batch = i64::try_from(r.batch.max(1)).unwrap_or(i64::MAX);
        let tx = self.conn.transaction()?;
        if let Some(age) = r.max_age {
            let cutoff = crate::system_millis(now).saturating_sub(age.as_millis() as i64);
            out.flows = drop_spans(&tx, "WHERE max_time < ?1", cutoff, batch)?;
            out.events = tx.execute(
                "DELETE FROM events WHERE id IN
                 (SELECT id FROM events WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)",
                (cutoff, batch),
            )? as u64;
            // One row per edge: few, and all of them at once.
            out.conversations =
                tx.execute("DELETE FROM conversations WHERE last_ms < ?1", [cutoff])? as u64;
        }
        tx.commit()?;
        let aged = out.flows.max(out.events);
        if let Some(max) = r.max_bytes
            && self.used_bytes()? > max
        {
            // The oldest rows of whichever table holds the oldest record.
            let head = |sql: &str| -> rusqlite::Result<Option<i64>> {
                self.conn.query_row(sql, [], |x| x.get(0))
            };
            let flows = head("SELECT min(min_time) FROM spans")?;
            let events = head("SELECT min(time_ms) FROM events")?;
            let tx = self.conn.transaction()?;
            if matches!((flows, events), (Some(f), Some(e)) if e < f)
                || (flows.is_none() && events.is_some())
            {
                out.events += tx.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?1)",
                    [batch],
                )? as u64;
            } else {
                out.flows += drop_spans(&tx, "WHERE ?1 = ?1", 0, batch)?;
            }
            tx.commit()?;
            out.more = self.used_bytes()? > max && (flows.is_some() || events.is_some());
        }
        // Until a step finds nothing old left.
        out.more |= aged > 0;
        if out.flows + out.events > 0 {
            self.release_free_pages()?;
        }
        Ok(out)
    }

    /// Give free pages back to the file system once they are a tenth of the file: the
    /// size limit is about the disk, and SQLite otherwise keeps freed pages for reuse.
    fn release_free_pages(&self) -> Result<()> {
        let q = |p: &str| -> rusqlite::Result<i64> {
            self.conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
        };
        let (free, total) = (q("freelist_count")?, q("page_count")?);
        if free * 10 > total {
            // Frees a page per step: step to the end.
            let mut st = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
        }
        Ok(())
    }
}
