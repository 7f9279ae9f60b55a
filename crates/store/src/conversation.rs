//! The conversation graph: flows aggregated by who talks to whom (identities, never
//! addresses), over which protocol, port and application protocol, with counts, bytes
//! and first/last seen. The writer aggregates in memory and adds the sums to the table
//! about once a second (in the transaction of a batch of flows), so a busy conversation
//! costs one upsert a second rather than one per record. The graph is derived data: a
//! crash can lose the last second of it, never a flow record.

use std::collections::hash_map::Entry;

use bulkhead_record::{Action, FlowRecord};
use rusqlite::{Connection, params};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::identity::write_identity;

/// One edge of the graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// Identity of the client: `namespace{labels}`, `host` or `world`.
    pub src: String,
    pub dst: String,
    pub protocol: String,
    /// The destination port (the ICMP type for ICMP), 0 if none.
    pub port: u32,
    /// The application protocol the proxy detected, empty if none.
    pub app: String,
    /// New connections seen (allowed or denied).
    pub connections: u64,
    /// Requests the proxy decided and reported (L7 denials and violations).
    pub requests: u64,
    pub denied: u64,
    pub violations: u64,
    /// From ended connections (conntrack accounting), both directions.
    pub packets: u64,
    pub bytes: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// An edge's key: both identities, the protocol, the port and the application protocol,
/// joined by NULs (none of them holds one), so a record's key is built in a reused buffer
/// and looked up without an allocation.
type Key = String;

/// A batch's conversations, before they are added to the table.
#[derive(Default)]
pub(crate) struct Batch {
    edges: FxHashMap<Key, Conversation>,
    key: String,
}

impl Batch {
    pub fn add(&mut self, r: &FlowRecord, time_ms: i64, app: Option<&str>) {
        // A Log rule's record repeats a connection an allow or deny record also reports.
        if r.verdict == Action::Log {
            return;
        }
        let port = r
            .dport
            .map(u32::from)
            .or(r.icmp_type.map(u32::from))
            .unwrap_or(0);
        let app = app.unwrap_or("");
        let key = &mut self.key;
        key.clear();
        write_identity(&r.src, key);
        let src_end = key.len();
        key.push('\0');
        write_identity(&r.dst, key);
        let dst_end = key.len();
        key.push('\0');
        key.push_str(&r.protocol);
        key.push('\0');
        {
            use std::fmt::Write;
            let _ = write!(key, "{port}");
        }
        key.push('\0');
        key.push_str(app);
        let c = match self.edges.get_mut(key.as_str()) {
            Some(c) => c,
            None => {
                let c = Conversation {
                    src: key[..src_end].to_string(),
                    dst: key[src_end + 1..dst_end].to_string(),
                    protocol: r.protocol.clone(),
                    port,
                    app: app.to_string(),
                    first_ms: time_ms,
                    last_ms: time_ms,
                    ..Conversation::default()
                };
                self.edges.entry(key.clone()).or_insert(c)
            }
        };
        let ended = r.event == "end";
        c.absorb(&Conversation {
            connections: u64::from(r.event == "new"),
            requests: u64::from(r.event == "l7"),
            denied: u64::from(!ended && r.verdict == Action::Deny),
            violations: u64::from(r.violation),
            packets: r.packets.unwrap_or(0),
            bytes: r.bytes.unwrap_or(0),
            first_ms: time_ms,
            last_ms: time_ms,
            ..Conversation::default()
        });
    }

    /// Add another batch's sums to this one.
    pub fn merge(&mut self, other: Batch) {
        for (k, c) in other.edges {
            match self.edges.entry(k) {
                Entry::Occupied(mut e) => e.get_mut().absorb(&c),
                Entry::Vacant(e) => {
                    e.insert(c);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Add the sums to the table (inside the caller's transaction).
    pub fn commit(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut st = conn.prepare_cached(
            "INSERT INTO conversations VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)
             ON CONFLICT(src, dst, protocol, port, app) DO UPDATE SET
               connections = connections + excluded.connections,
               requests = requests + excluded.requests,
               denied = denied + excluded.denied,
               violations = violations + excluded.violations,
               packets = packets + excluded.packets,
               bytes = bytes + excluded.bytes,
               first_ms = min(first_ms, excluded.first_ms),
               last_ms = max(last_ms, excluded.last_ms)",
        )?;
        for c in self.edges.values() {
            // SQLite integers are signed: counters saturate instead of wrapping.
            let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
            st.execute(params![
                c.src,
                c.dst,
                c.protocol,
                c.port,
                c.app,
                n(c.connections),
                n(c.requests),
                n(c.denied),
                n(c.violations),
                n(c.packets),
                n(c.bytes),
                c.first_ms,
                c.last_ms
            ])?;
        }
        Ok(())
    }
}

impl Conversation {
    /// Add another edge's counts and widen the time span to cover it.
    fn absorb(&mut self, o: &Conversation) {
        self.connections += o.connections;
        self.requests += o.requests;
        self.denied += o.denied;
        self.violations += o.violations;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_ms = self.last_ms.max(o.last_ms);
    }
}

/// Which edges of the graph to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphFilter {
    /// Only edges with an end in this namespace.
    pub namespace: Option<String>,
    /// Only edges seen at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only edges with denials or violations.
    pub violations: bool,
}

impl crate::Store {
    /// The conversation graph, busiest edges first (with what this store's writer has
    /// aggregated but not yet written).
    pub fn conversations(&self, f: &GraphFilter) -> crate::Result<Vec<Conversation>> {
        self.commit_conversations()?;
        let mut w = crate::query::Where::default();
        if let Some(ns) = &f.namespace {
            // An identity starts with its namespace and a brace.
            w.bind(
                "(substr(src, 1, length(?) + 1) = ? || '{' OR substr(dst, 1, length(?) + 1) = ? || '{')",
                ns.clone(),
            );
        }
        if let Some(t) = f.since_ms {
            w.bind("last_ms >= ?", t);
        }
        if f.violations {
            w.raw("(denied > 0 OR violations > 0)");
        }
        let (branches, params) = w.finish();
        let clause = branches.join(" OR ");
        let mut st = self.conn.prepare(&format!(
            "SELECT src, dst, protocol, port, app, connections, requests, denied, violations,
                    packets, bytes, first_ms, last_ms
             FROM conversations WHERE {clause}
             ORDER BY connections + requests DESC, src, dst, protocol, port, app"
        ))?;
        let rows = st.query_map(rusqlite::params_from_iter(params), |r| {
            let n = |i| r.get::<_, i64>(i).map(|x| x.max(0) as u64);
            Ok(Conversation {
                src: r.get(0)?,
                dst: r.get(1)?,
                protocol: r.get(2)?,
                port: r.get(3)?,
                app: r.get(4)?,
                connections: n(5)?,
                requests: n(6)?,
                denied: n(7)?,
                violations: n(8)?,
                packets: n(9)?,
                bytes: n(10)?,
                first_ms: r.get(11)?,
                last_ms: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
