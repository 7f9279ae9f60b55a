//! The tables and their indexes. Each record keeps its full JSON (what `-o json` prints)
//! next to the columns the usual questions filter on. Flows are indexed by posting lists
//! per batch (`posting`); events, fewer, by single-column indexes (SQLite appends the
//! rowid, so "the last N matching, newest first" walks an index backwards, no sort). Rowids are AUTOINCREMENT: never reused, even when retention
//! empties a table, so a follower's cursor (the last rowid it saw) stays valid.

use rusqlite::Connection;

const SCHEMA: &str = "
-- A flow is its time and its JSON: every question about its other fields goes through
-- the posting lists, and each column bound costs ingest time.
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
-- The flows' index (see `posting`): term ids, a posting list per term per batch, and
-- each batch's rowid and time range.
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY,
    term TEXT NOT NULL UNIQUE
);
-- Keyed by batch, then term: a batch's lists are appended at the end of the table (a
-- few pages written per batch; keyed by term first, every batch wrote a page per term
-- all over the table). A question finds a term's list of each batch through `spans`.
CREATE TABLE IF NOT EXISTS postings (
    last_id INTEGER NOT NULL,
    term INTEGER NOT NULL,
    ids BLOB NOT NULL,
    PRIMARY KEY (last_id, term)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans (
    last_id INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_min ON spans(min_time);
CREATE INDEX IF NOT EXISTS spans_max ON spans(max_time);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    refusal INTEGER NOT NULL,
    src_workload TEXT NOT NULL,
    dst_workload TEXT NOT NULL,
    src_ns TEXT,
    dst_ns TEXT,
    app TEXT,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);
CREATE INDEX IF NOT EXISTS events_src_workload ON events(src_workload);
CREATE INDEX IF NOT EXISTS events_dst_workload ON events(dst_workload);
CREATE INDEX IF NOT EXISTS events_refusals ON events(time_ms) WHERE refusal = 1;

CREATE TABLE IF NOT EXISTS conversations (
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    protocol TEXT NOT NULL,
    port INTEGER NOT NULL,
    app TEXT NOT NULL,
    connections INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    denied INTEGER NOT NULL,
    violations INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (src, dst, protocol, port, app)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_last ON conversations(last_ms);
";

/// The layout above; a file with another is refused, not mixed, except the older ones
/// [`create`] converts.
pub const VERSION: i64 = 2;

/// Version 1 keyed `postings` by (term, the list's own last rowid), with an index on the
/// latter; version 2 by (the batch's last rowid, term). A batch is a span of rowids: a
/// list's batch is the first span ending at or after the list's last rowid.
const FROM_1: &str = "
CREATE TABLE postings_2 (
    last_id INTEGER NOT NULL,
    term INTEGER NOT NULL,
    ids BLOB NOT NULL,
    PRIMARY KEY (last_id, term)
) WITHOUT ROWID;
INSERT INTO postings_2 (last_id, term, ids)
    SELECT coalesce((SELECT min(s.last_id) FROM spans s WHERE s.last_id >= p.last_id),
                    p.last_id),
           p.term, p.ids
    FROM postings p ORDER BY 1, 2;
DROP TABLE postings;
ALTER TABLE postings_2 RENAME TO postings;
PRAGMA user_version = 2;
";

/// Create the tables in a new file, convert an older layout this version knows (in one
/// transaction: a crash leaves the old one), or refuse another.
pub fn create(conn: &Connection) -> crate::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    if tables > 0 && version == 1 {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {FROM_1} COMMIT;"))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
    } else if tables > 0 && version != VERSION {
        return Err(crate::Error::Layout(format!(
            "the store has layout version {version}, this bulkhead reads and writes version \
             {VERSION} (and converts version 1): move the file aside"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}

/// Check the layout of a store opened for reading (a reader never converts: version 1
/// is converted by its writer, when the agent starts).
pub fn check(conn: &Connection) -> crate::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 1 {
        return Err(crate::Error::Layout(format!(
            "the store has layout version 1 (an older bulkhead's), this bulkhead reads version \
             {VERSION}: it is converted when its agent next starts (or any `Store::open` for \
             writing)"
        )));
    }
    if version != VERSION {
        return Err(crate::Error::Layout(format!(
            "the store has layout version {version}, this bulkhead reads version {VERSION}"
        )));
    }
    Ok(())
}
