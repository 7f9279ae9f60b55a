//! The flows' index: per batch, one posting list per term (`w:ns/name` for a workload at
//! either end or the sender of a forged source, `n:ns`, `g:group`, `p:policy`, `r:policy#n`, `d:verdict`, `v` for a
//! violation) holding the rowids of the batch's records that carry it, delta-encoded in
//! one blob. A batch of 4096 flows adds a few hundred posting rows instead of seven index
//! entries per flow, which is what lets ingest run at the speed of the table itself; a
//! question walks one term's lists newest first and checks the rest on the rows it reads.
//! `spans` holds each batch's rowid and time range: time filters and retention by age
//! work on whole batches through it.

use bulkhead_record::{Action, FlowRecord};
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

use crate::FlowFilter;

/// Call `each` with every term a record is found under (the same term may come twice:
/// both ends in one workload).
fn each_term(r: &FlowRecord, scratch: &mut String, mut each: impl FnMut(&str)) {
    let mut term = |kind: &str, a: &str, b: Option<u32>| {
        use std::fmt::Write;
        scratch.clear();
        scratch.push_str(kind);
        scratch.push_str(a);
        if let Some(n) = b {
            let _ = write!(scratch, "#{n}");
        }
        each(scratch);
    };
    // A forged source's sender counts as an end: asking for its flows finds its forgeries.
    for p in [&r.src, &r.dst].into_iter().chain(r.sender.as_ref()) {
        if let Some(w) = &p.workload {
            term("w:", w, None);
        }
        if let Some(n) = &p.namespace {
            term("n:", n, None);
        }
    }
    if let Some(d) = &r.decided_by {
        if let Some(g) = &d.group {
            term("g:", g, None);
        }
        if let Some(x) = &d.rule {
            term("p:", &x.policy, None);
            term("r:", &x.policy, Some(x.rule));
        }
    }
    term("d:", r.verdict.as_str(), None);
    if r.verdict == Action::Deny || r.violation {
        term("v", "", None);
    }
}

/// The terms a filter requires, the most selective kinds first (a rule before a
/// workload before a namespace; `allow`, most flows, only when nothing else is asked).
pub(crate) fn required(f: &FlowFilter) -> Vec<String> {
    let mut t = Vec::new();
    if let Some(x) = &f.rule {
        t.push(match x.rule {
            Some(n) => format!("r:{}#{n}", x.policy),
            None => format!("p:{}", x.policy),
        });
    }
    if let Some(g) = &f.group {
        t.push(format!("g:{g}"));
    }
    if let Some(w) = &f.workload {
        t.push(format!("w:{w}"));
    }
    if let Some(n) = &f.namespace {
        t.push(format!("n:{n}"));
    }
    if f.violations {
        t.push("v".into());
    }
    if let Some(v) = f.verdict {
        t.push(format!("d:{}", v.as_str()));
    }
    t
}

/// Term ids, interned once per store (the writer keeps them in memory).
#[derive(Default)]
pub(crate) struct Terms {
    ids: FxHashMap<String, i64>,
}

impl Terms {
    pub fn load(conn: &Connection) -> rusqlite::Result<Terms> {
        let mut st = conn.prepare("SELECT term, id FROM terms")?;
        let ids = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Terms { ids })
    }

    /// The id of a term, added to the table if new (inside the caller's transaction).
    /// New ids are remembered only by [`Terms::keep`], once the transaction commits.
    fn id(
        &self,
        conn: &Connection,
        term: &str,
        new: &mut Vec<(String, i64)>,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = self.ids.get(term) {
            return Ok(*id);
        }
        if let Some((_, id)) = new.iter().find(|(t, _)| t == term) {
            return Ok(*id);
        }
        conn.prepare_cached("INSERT INTO terms (term) VALUES (?1)")?
            .execute([term])?;
        let id = conn.last_insert_rowid();
        new.push((term.to_string(), id));
        Ok(id)
    }

    pub fn keep(&mut self, new: Vec<(String, i64)>) {
        self.ids.extend(new);
    }
}

/// One batch's posting lists under construction.
#[derive(Default)]
pub(crate) struct Batch {
    lists: FxHashMap<String, Vec<i64>>,
    scratch: String,
    first: Option<i64>,
    last: i64,
    min_time: i64,
    max_time: i64,
}

impl Batch {
    /// File a stored record under its terms.
    pub fn add(&mut self, id: i64, time_ms: i64, r: &FlowRecord) {
        if self.first.is_none() {
            self.first = Some(id);
            (self.min_time, self.max_time) = (time_ms, time_ms);
        }
        self.last = id;
        self.min_time = self.min_time.min(time_ms);
        self.max_time = self.max_time.max(time_ms);
        let mut scratch = std::mem::take(&mut self.scratch);
        each_term(r, &mut scratch, |t| match self.lists.get_mut(t) {
            // Once per record, even if both ends carry the term.
            Some(v) if v.last() == Some(&id) => {}
            Some(v) => v.push(id),
            None => {
                self.lists.insert(t.to_string(), vec![id]);
            }
        });
        self.scratch = scratch;
    }

    /// Write the lists and the span (inside the batch's transaction). Returns the terms
    /// added to the term table.
    pub fn commit(self, conn: &Connection, terms: &Terms) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut new = Vec::new();
        let Some(first) = self.first else {
            return Ok(new);
        };
        // Keyed by (batch, term): the batch's lists are appended at the end of the table,
        // in key order (a few pages), not filed into one page per term across it.
        let mut rows = Vec::with_capacity(self.lists.len());
        for (t, ids) in &self.lists {
            rows.push((terms.id(conn, t, &mut new)?, ids));
        }
        rows.sort_unstable_by_key(|r| r.0);
        let mut st =
            conn.prepare_cached("INSERT INTO postings (last_id, term, ids) VALUES (?1, ?2, ?3)")?;
        let mut blob = Vec::new();
        for (term, ids) in rows {
            blob.clear();
            encode(ids, &mut blob);
            st.execute(params![self.last, term, blob])?;
        }
        conn.prepare_cached(
            "INSERT INTO spans (last_id, first_id, min_time, max_time) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![self.last, first, self.min_time, self.max_time])?;
        Ok(new)
    }
}

/// Ascending rowids as varint deltas (the first from 0), appended to `out`.
fn encode(ids: &[i64], out: &mut Vec<u8>) {
    let mut prev = 0i64;
    for &id in ids {
        let mut d = (id - prev) as u64;
        prev = id;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
}

/// The rowids of a list (a blob that does not decode ends where it stops making sense).
fn decode(blob: &[u8], out: &mut Vec<i64>) {
    let (mut prev, mut d, mut shift) = (0i64, 0u64, 0u32);
    for &b in blob {
        if shift > 63 {
            return;
        }
        d |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            prev = prev.wrapping_add(d as i64);
            out.push(prev);
            (d, shift) = (0, 0);
        } else {
            shift += 7;
        }
    }
}

/// The id of a term, if any record ever carried it.
pub(crate) fn term_id(conn: &Connection, term: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM terms WHERE term = ?1")?
        .query_row([term], |r| r.get(0))
        .optional()
}

/// Lists read to weigh a term (see [`weight`]).
const WEIGHED_LISTS: i64 = 16;

/// The rowid of the last record of the batch holding rowid `hi` (or of the first batch
/// after it): lists of batches up to it may hold rowids up to `hi`.
fn batch_end(conn: &Connection, hi: i64) -> rusqlite::Result<i64> {
    let end: Option<i64> = conn
        .prepare_cached("SELECT min(last_id) FROM spans WHERE last_id >= ?1")?
        .query_row([hi], |r| r.get(0))?;
    Ok(end.unwrap_or(i64::MAX))
}

/// Roughly how dense a term is where a question starts reading (newest first, rowids in
/// `(lo, hi]`): its lists' bytes in the newest batches there (read from the record
/// headers, not the blobs). The lightest term is the one to walk.
pub(crate) fn weight(conn: &Connection, term: i64, lo: i64, hi: i64) -> rusqlite::Result<i64> {
    let end = batch_end(conn, hi)?;
    conn.prepare_cached(
        "SELECT coalesce(sum(length(p.ids)), 0)
         FROM (SELECT last_id FROM spans WHERE last_id > ?2 AND last_id <= ?3
               ORDER BY last_id DESC LIMIT ?4) s
         CROSS JOIN postings p ON p.last_id = s.last_id AND p.term = ?1",
    )?
    .query_row(params![term, lo, end, WEIGHED_LISTS], |r| r.get(0))
}

/// A term's rowids in `(lo, hi]`, newest first, a batch at a time.
pub(crate) struct Newest<'c> {
    conn: &'c Connection,
    term: i64,
    lo: i64,
    /// Lists of batches ending before this are still to read.
    before: i64,
    hi: i64,
    buf: Vec<i64>,
}

impl<'c> Newest<'c> {
    pub fn new(conn: &'c Connection, term: i64, lo: i64, hi: i64) -> rusqlite::Result<Newest<'c>> {
        // Start at the batch that reaches `hi`: the ones after it hold only newer ids.
        let end = batch_end(conn, hi)?;
        Ok(Newest {
            conn,
            term,
            lo,
            before: end.saturating_add(1),
            hi,
            buf: Vec::new(),
        })
    }

    pub fn next_id(&mut self) -> rusqlite::Result<Option<i64>> {
        loop {
            if let Some(id) = self.buf.pop() {
                if id > self.hi {
                    continue;
                }
                if id <= self.lo {
                    self.buf.clear();
                    self.before = i64::MIN;
                    return Ok(None);
                }
                return Ok(Some(id));
            }
            if self.before == i64::MIN {
                return Ok(None);
            }
            // The term's list in the next batch back that has one: batches newest first
            // (spans), a lookup of (batch, term) in each.
            let row: Option<(i64, Vec<u8>)> = self
                .conn
                .prepare_cached(
                    "SELECT p.last_id, p.ids FROM spans s
                     CROSS JOIN postings p ON p.last_id = s.last_id AND p.term = ?1
                     WHERE s.last_id < ?2 AND s.last_id > ?3
                     ORDER BY s.last_id DESC LIMIT 1",
                )?
                .query_row(params![self.term, self.before, self.lo], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            match row {
                Some((last, blob)) => {
                    self.before = last;
                    decode(&blob, &mut self.buf);
                }
                None => {
                    self.before = i64::MIN;
                    return Ok(None);
                }
            }
        }
    }
}

/// The rowid range `(lo, hi]` that can hold records with times in `[since, until)`.
pub(crate) fn id_range(
    conn: &Connection,
    since: Option<i64>,
    until: Option<i64>,
) -> rusqlite::Result<(i64, i64)> {
    let lo = match since {
        Some(s) => conn
            .prepare_cached("SELECT min(first_id) - 1 FROM spans WHERE max_time >= ?1")?
            .query_row([s], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(i64::MAX),
        None => 0,
    };
    let hi = match until {
        Some(u) => conn
            .prepare_cached("SELECT max(last_id) FROM spans WHERE min_time < ?1")?
            .query_row([u], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0),
        None => i64::MAX,
    };
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_junk_stops_decoding() {
        let ids = [1i64, 2, 3, 130, 20_000, 1 << 40];
        let mut out = Vec::new();
        let mut blob = Vec::new();
        encode(&ids, &mut blob);
        decode(&blob, &mut out);
        assert_eq!(out, ids);
        let mut out = Vec::new();
        decode(&[0xff; 20], &mut out);
        assert!(out.is_empty());
    }
}
