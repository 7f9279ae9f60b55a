//! The broker's own answer to a request none of whose topics may be touched, in the
//! request's version (`*Response.json`): every topic and partition it names fails with
//! TOPIC_AUTHORIZATION_FAILED (29), as a broker answers for topics its ACLs deny.

use super::metadata::Cluster;
use super::request::{Request, Topic};
use super::wire::Wr;

/// TOPIC_AUTHORIZATION_FAILED.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const DENIED: i16 = TOPIC_AUTHORIZATION_FAILED;
/// Authorized operations not asked for (INT32_MIN, as brokers write it).
const NO_OPERATIONS: i32 = i32::MIN;

fn message(t: &Topic) -> String {
    format!("bulkhead: topic {} is not allowed by policy", t.label())
}

/// A topic as the response names it: by name, or (`by_id`) by its ID.
fn topic(w: &mut Wr, t: &Topic, by_id: bool) {
    if by_id {
        w.raw(&t.id.unwrap_or_default());
    } else {
        w.string(t.name.as_deref().unwrap_or_default());
    }
}

/// The answer to a refused request (size included), and what it says; None when the
/// request gets no answer (Produce with acks=0). `cluster` is what the broker's last
/// Metadata response on the connection described (a Metadata answer lists it).
pub fn refusal(q: &Request, cluster: &Cluster) -> Option<(Vec<u8>, &'static str)> {
    let v = q.version;
    let mut w = Wr::response(q.correlation, q.flexible());
    let topics = q.topics.as_deref().unwrap_or_default();
    let named = !topics.is_empty() || q.groups.iter().any(|g| g.topics.is_some());
    match q.key {
        0 if q.acks == 0 => return None,
        0 => produce(&mut w, v, topics),
        1 => fetch(&mut w, v, topics),
        2 => list_offsets(&mut w, v, topics),
        3 => metadata(&mut w, v, topics, cluster),
        8 => offset_commit(&mut w, v, topics),
        9 => offset_fetch(&mut w, q),
        19 => create_topics(&mut w, v, topics),
        _ => delete_topics(&mut w, v, topics),
    }
    w.tagged();
    let said = if named {
        "TOPIC_AUTHORIZATION_FAILED (29)"
    } else {
        "answered with no topic"
    };
    Some((w.finish(), said))
}

/// The array of topics (by name, or by ID) with their partitions: each its index, what
/// `rest` writes, and its tagged fields.
fn partitions(w: &mut Wr, topics: &[Topic], by_id: bool, rest: impl Fn(&mut Wr, &Topic)) {
    w.count(topics.len());
    for t in topics {
        topic(w, t, by_id);
        w.count(t.parts.len());
        for p in &t.parts {
            w.i32(*p);
            rest(w, t);
            w.tagged();
        }
        w.tagged();
    }
}

fn produce(w: &mut Wr, v: i16, topics: &[Topic]) {
    partitions(w, topics, v >= 13, |w, t| {
        w.i16(DENIED);
        w.i64(-1); // base offset
        if v >= 2 {
            w.i64(-1); // log append time
        }
        if v >= 5 {
            w.i64(-1); // log start offset
        }
        if v >= 8 {
            w.count(0); // record errors
            w.string(message(t).as_bytes());
        }
    });
    if v >= 1 {
        w.i32(0); // throttle time
    }
}

fn fetch(w: &mut Wr, v: i16, topics: &[Topic]) {
    if v >= 1 {
        w.i32(0); // throttle time
    }
    if v >= 7 {
        // A fetch naming no topic (a session's incremental fetch) fails as a whole;
        // session id 0 closes the session (the client starts a new one).
        w.i16(if topics.is_empty() { DENIED } else { 0 });
        w.i32(0);
    }
    partitions(w, topics, v >= 13, |w, _| {
        w.i16(DENIED);
        w.i64(-1); // high watermark
        if v >= 4 {
            w.i64(-1); // last stable offset
        }
        if v >= 5 {
            w.i64(-1); // log start offset
        }
        if v >= 4 {
            w.count(0); // aborted transactions
        }
        if v >= 11 {
            w.i32(-1); // preferred read replica
        }
        w.no_bytes(); // records
    });
}

fn list_offsets(w: &mut Wr, v: i16, topics: &[Topic]) {
    if v >= 2 {
        w.i32(0); // throttle time
    }
    partitions(w, topics, false, |w, _| {
        w.i16(DENIED);
        if v == 0 {
            w.count(0); // old-style offsets
        } else {
            w.i64(-1); // timestamp
            w.i64(-1); // offset
        }
        if v >= 4 {
            w.i32(-1); // leader epoch
        }
    });
}

/// Metadata: the cluster as the broker last described it, each topic denied (none
/// listed when the request asked for all of them, as a broker lists only the topics
/// a client may describe).
fn metadata(w: &mut Wr, v: i16, topics: &[Topic], cluster: &Cluster) {
    if v >= 3 {
        w.i32(0); // throttle time
    }
    w.count(cluster.brokers.len());
    for b in &cluster.brokers {
        w.i32(b.node);
        w.string(&b.host);
        w.i32(b.port);
        if v >= 1 {
            w.opt_string(b.rack.as_deref());
        }
        w.tagged();
    }
    if v >= 2 {
        w.opt_string(cluster.cluster_id.as_deref());
    }
    if v >= 1 {
        w.i32(cluster.controller);
    }
    w.count(topics.len());
    for t in topics {
        w.i16(DENIED);
        if v >= 12 {
            w.opt_string(t.name.as_deref());
        } else {
            topic(w, t, false);
        }
        if v >= 10 {
            w.raw(&t.id.unwrap_or_default());
        }
        if v >= 1 {
            w.i8(0); // internal
        }
        w.count(0); // partitions
        if v >= 8 {
            w.i32(NO_OPERATIONS);
        }
        w.tagged();
    }
    if (8..=10).contains(&v) {
        w.i32(NO_OPERATIONS); // cluster authorized operations
    }
    if v >= 13 {
        w.i16(0);
    }
}

fn offset_commit(w: &mut Wr, v: i16, topics: &[Topic]) {
    if v >= 3 {
        w.i32(0); // throttle time
    }
    partitions(w, topics, v >= 10, |w, _| {
        w.i16(DENIED);
    });
}

/// OffsetFetch topics, each partition denied with no committed offset.
fn fetched(w: &mut Wr, v: i16, topics: &[Topic]) {
    partitions(w, topics, v >= 10, |w, _| {
        w.i64(-1); // committed offset
        if v >= 5 {
            w.i32(-1); // leader epoch
        }
        w.string(b""); // metadata
        w.i16(DENIED);
    });
}

/// OffsetFetch: a request for all topics (or none) fails as a whole (the error of the
/// response from v2, of each group from v8); v0-1 have no such error: no topic listed.
fn offset_fetch(w: &mut Wr, q: &Request) {
    let v = q.version;
    if v >= 3 {
        w.i32(0); // throttle time
    }
    if v <= 7 {
        let topics = q.topics.as_deref().unwrap_or_default();
        fetched(w, v, topics);
        if v >= 2 {
            w.i16(if topics.is_empty() { DENIED } else { 0 });
        }
        return;
    }
    w.count(q.groups.len());
    for g in &q.groups {
        w.string(&g.id);
        let topics = g.topics.as_deref().unwrap_or_default();
        fetched(w, v, topics);
        w.i16(if topics.is_empty() { DENIED } else { 0 });
        w.tagged();
    }
}

fn create_topics(w: &mut Wr, v: i16, topics: &[Topic]) {
    if v >= 2 {
        w.i32(0); // throttle time
    }
    w.count(topics.len());
    for t in topics {
        topic(w, t, false);
        if v >= 7 {
            w.raw(&[0; 16]); // topic id
        }
        w.i16(DENIED);
        if v >= 1 {
            w.string(message(t).as_bytes());
        }
        if v >= 5 {
            w.i32(-1); // partitions
            w.i16(-1); // replication factor
            w.count(0); // configs
        }
        w.tagged();
    }
}

fn delete_topics(w: &mut Wr, v: i16, topics: &[Topic]) {
    if v >= 1 {
        w.i32(0); // throttle time
    }
    w.count(topics.len());
    for t in topics {
        if v >= 6 {
            w.opt_string(t.name.as_deref());
            w.raw(&t.id.unwrap_or_default());
        } else {
            topic(w, t, false);
        }
        w.i16(DENIED);
        if v >= 5 {
            w.string(message(t).as_bytes());
        }
        w.tagged();
    }
}
