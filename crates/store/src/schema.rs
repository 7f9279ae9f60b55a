//! The tables and their indexes. Each record keeps its full JSON (what `-o json` prints)
//! next to the columns the usual questions filter on; every index is a single column
//! (SQLite appends the rowid), so "the last N matching, newest first" walks an index
//! backwards without sorting. Rowids are AUTOINCREMENT: never reused, even when retention
//! empties a table, so a follower's cursor (the last rowid it saw) stays valid.

use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    verdict TEXT NOT NULL,
    violation INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    dport INTEGER,
    src_workload TEXT,
    dst_workload TEXT,
    src_ns TEXT,
    dst_ns TEXT,
    grp TEXT,
    policy TEXT,
    rule INTEGER,
    app TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_time ON flows(time_ms);
CREATE INDEX IF NOT EXISTS flows_src_workload ON flows(src_workload);
CREATE INDEX IF NOT EXISTS flows_dst_workload ON flows(dst_workload);
CREATE INDEX IF NOT EXISTS flows_src_ns ON flows(src_ns);
CREATE INDEX IF NOT EXISTS flows_dst_ns ON flows(dst_ns);
-- Partial: most flows are allowed by a rule or a mode without a group; the index holds
-- only the rows a question about a group, a rule or a violation can want.
CREATE INDEX IF NOT EXISTS flows_group ON flows(grp) WHERE grp IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_policy ON flows(policy, rule) WHERE policy IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_violations ON flows(id)
    WHERE verdict = 'deny' OR violation = 1;

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

pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}
