//! The embedded store: every flow record (violations are flows denied or let through by a
//! Monitor group), every L7 event and sensor hit, and the conversation graph aggregated
//! from the flows, in one SQLite file in WAL mode. Nothing to install or run: the agent
//! writes it through a [`Sink`] (one transaction per batch, on its own thread, which also
//! prunes by age and size), and `bulkhead flows` / `bulkhead events` read it with
//! [`Store::flows`] and [`Store::events`], which use the indexes for the usual questions.
//!
//! Durability: WAL with `synchronous=NORMAL`. A committed batch is in the WAL file before
//! the commit returns, so it survives a crash (even `kill -9`) of the writing process; it
//! may be lost if the machine loses power before the next checkpoint, which is the trade
//! the agent makes for ingest speed (an fsync per batch would cap it at the disk's rate).

mod conversation;
mod event;
mod flow;
mod identity;
mod ingest;
mod posting;
mod query;
mod retention;
mod schema;
pub mod sink;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use bulkhead_record::{Action, FlowRecord};
pub use conversation::{Conversation, GraphFilter};
pub use event::{EventFilter, workload_of};
pub use flow::{FlowFilter, RuleFilter};
pub use identity::identity;
pub use ingest::Record;
pub use query::Table;
pub use retention::{Pruned, Retention};
pub use sink::{Sink, SinkStats};

/// The store's file in an agent's state directory.
pub const FILE: &str = "store.db";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("store: {0}")]
    Closed(String),
    /// The file was written by a bulkhead with another table layout.
    #[error("store: {0}")]
    Layout(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One store file, open for writing (the agent) or for reading (the CLI).
pub struct Store {
    conn: Connection,
    /// Term ids of the flows' posting lists (the writer's; readers ask the table).
    terms: posting::Terms,
    /// Conversations aggregated by this writer and not yet in the table.
    graph: std::cell::RefCell<conversation::Batch>,
    graph_written: std::cell::Cell<std::time::Instant>,
}

impl Store {
    /// Open (creating if needed) for writing.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        // Must precede the first table: lets retention give freed pages back to the
        // file system (`PRAGMA incremental_vacuum`), so the file shrinks with its content.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL in WAL mode: commits do not fsync; a process crash loses nothing committed.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoint (copy the WAL into the file, with an fsync) every 64 MiB of WAL
        // rather than every 4 MiB: an index page written by many batches is copied once,
        // and the fsyncs are rare. The WAL file is cut back to this size afterwards.
        conn.pragma_update(None, "wal_autocheckpoint", 16384i64)?;
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)?;
        // 64 MiB of page cache: the indexes' hot pages stay in memory while ingesting.
        conn.pragma_update(None, "cache_size", -65536i64)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::create(&conn)?;
        let terms = posting::Terms::load(&conn)?;
        let mut s = Store::with(conn);
        s.terms = terms;
        Ok(s)
    }

    /// Open an existing store for reading (None if there is none yet), while a writer may
    /// be writing it: WAL readers never block the writer.
    pub fn open_read_only(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "cache_size", -65536i64)?;
        schema::check(&conn)?;
        Ok(Some(Store::with(conn)))
    }

    fn with(conn: Connection) -> Store {
        Store {
            conn,
            terms: Default::default(),
            graph: Default::default(),
            graph_written: std::cell::Cell::new(std::time::Instant::now()),
        }
    }

    /// Bytes the content takes (pages in use; free pages are not counted).
    pub fn used_bytes(&self) -> Result<u64> {
        let q = |p: &str| -> Result<i64> {
            Ok(self
                .conn
                .query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))?)
        };
        let used = q("page_count")? - q("freelist_count")?;
        Ok((used.max(0) as u64) * q("page_size")?.max(0) as u64)
    }

    /// Rows in the flow table and the event table.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let n = |t: &str| -> Result<u64> {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
            Ok(n as u64)
        };
        Ok((n("flows")?, n("events")?))
    }

    /// SQLite's plan for a statement, one step per line (to check that a question uses
    /// the index meant for it).
    pub fn explain(&self, sql: &str) -> Result<String> {
        let mut st = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = st.query_map([], |r| r.get::<_, String>(3))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
    }

    /// SQLite's own check of the file (`ok` when intact).
    pub fn integrity(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Update the planner's statistics (worth it after a bulk load).
    pub fn analyze(&self) -> Result<()> {
        Ok(self.conn.execute_batch("ANALYZE")?)
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (0 if it does not parse: such a
/// record is older than any `since`).
pub fn millis(time: &str) -> i64 {
    humantime::parse_rfc3339_weak(time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the epoch of a system time.
pub fn system_millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
