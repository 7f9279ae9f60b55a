//! Retention: records older than `max_age` go, and while the content is larger than
//! `max_bytes` the oldest records go. Pruning deletes a bounded batch per call, so the
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
            let old = |table: &str| -> rusqlite::Result<u64> {
                let n = tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE id IN
                         (SELECT id FROM {table} WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)"
                    ),
                    (cutoff, batch),
                )?;
                Ok(n as u64)
            };
            out.flows = old("flows")?;
            out.events = old("events")?;
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
            let head = |t: &str| -> rusqlite::Result<Option<i64>> {
                self.conn
                    .query_row(&format!("SELECT min(time_ms) FROM {t}"), [], |x| x.get(0))
            };
            let table = match (head("flows")?, head("events")?) {
                (Some(f), Some(e)) if e < f => "events",
                (None, Some(_)) => "events",
                _ => "flows",
            };
            let n = self.conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?1)"
                ),
                [batch],
            )? as u64;
            if table == "flows" {
                out.flows += n;
            } else {
                out.events += n;
            }
            out.more = n > 0 && self.used_bytes()? > max;
        }
        out.more |= aged >= r.batch as u64;
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
