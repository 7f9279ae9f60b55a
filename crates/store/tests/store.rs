//! The store end to end: ingest, the filters, events, the conversation graph, retention,
//! following, the writer thread, and bad input.

mod common;

use std::time::{Duration, SystemTime};

use bulkhead_record::Action;
use bulkhead_store::{
    EventFilter, FlowFilter, GraphFilter, Record, Retention, RuleFilter, Sink, Store,
};
use common::*;
use serde_json::json;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("store.db")).unwrap();
    (dir, s)
}

fn ids(v: &[(i64, bulkhead_record::FlowRecord)]) -> Vec<u64> {
    v.iter().map(|(_, r)| r.generation).collect()
}

/// Ten flows: web -> db allowed by rule 1 of db-access, a denial by the db group's
/// Protect mode, a Monitor violation, one from the world.
fn sample() -> Vec<bulkhead_record::FlowRecord> {
    let web = pod("shop/web-1", "web", "10.0.0.1");
    let db = pod("shop/db-0", "db", "10.0.0.2");
    let cache = pod("infra/cache-0", "cache", "10.0.1.3");
    let mut v = Vec::new();
    for i in 0..10u64 {
        let mut r = match i % 4 {
            0 | 1 => {
                let mut r = flow(i, Action::Allow, web.clone(), db.clone(), 5432);
                r.decided_by = Some(by_rule("db-access", 1));
                r
            }
            2 => {
                let mut r = flow(i, Action::Deny, web.clone(), db.clone(), 22);
                r.decided_by = Some(by_mode("Protect", "db"));
                r
            }
            _ => {
                let mut r = flow(i, Action::Allow, world("192.0.2.7"), cache.clone(), 6379);
                r.decided_by = Some(by_mode("Monitor", "cache"));
                r.violation = true;
                r
            }
        };
        r.generation = i;
        v.push(r);
    }
    v
}

#[test]
fn every_filter_uses_its_column() {
    let (_d, mut s) = store();
    let all = sample();
    s.write_flows(&all).unwrap();
    let q = |f: FlowFilter| ids(&s.flows(&f).unwrap());
    assert_eq!(q(FlowFilter::default()), (0..10).collect::<Vec<_>>());
    // Stored and read back unchanged.
    assert_eq!(
        s.flows(&FlowFilter::default())
            .unwrap()
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        all
    );
    let wl = |w: &str| FlowFilter {
        workload: Some(w.into()),
        ..FlowFilter::default()
    };
    assert_eq!(q(wl("shop/db-0")), [0, 1, 2, 4, 5, 6, 8, 9]);
    assert_eq!(q(wl("infra/cache-0")), [3, 7]);
    assert_eq!(q(wl("nobody/x")), Vec::<u64>::new());
    let ns = FlowFilter {
        namespace: Some("infra".into()),
        ..FlowFilter::default()
    };
    assert_eq!(q(ns), [3, 7]);
    let g = FlowFilter {
        group: Some("db".into()),
        ..FlowFilter::default()
    };
    assert_eq!(q(g), [2, 6]);
    let deny = FlowFilter {
        verdict: Some(Action::Deny),
        ..FlowFilter::default()
    };
    assert_eq!(q(deny), [2, 6]);
    let violations = FlowFilter {
        violations: true,
        ..FlowFilter::default()
    };
    assert_eq!(q(violations), [2, 3, 6, 7]);
    let rule = FlowFilter {
        rule: Some("db-access#1".parse().unwrap()),
        ..FlowFilter::default()
    };
    assert_eq!(q(rule), [0, 1, 4, 5, 8, 9]);
    let other_rule = FlowFilter {
        rule: Some(RuleFilter {
            policy: "db-access".into(),
            rule: Some(2),
        }),
        ..FlowFilter::default()
    };
    assert_eq!(q(other_rule), Vec::<u64>::new());
    let window = FlowFilter {
        since_ms: Some(bulkhead_store::millis(&at(3))),
        until_ms: Some(bulkhead_store::millis(&at(6))),
        ..FlowFilter::default()
    };
    assert_eq!(q(window), [3, 4, 5]);
    // The last N, oldest first.
    let last = FlowFilter {
        workload: Some("shop/db-0".into()),
        limit: Some(3),
        ..FlowFilter::default()
    };
    assert_eq!(q(last), [6, 8, 9]);
    assert!("db-access#x".parse::<RuleFilter>().is_err());
}

#[test]
fn event_questions_use_the_indexes() {
    let (d, mut s) = store();
    s.write(&[Record::Event(event(1, "request", false, "a/x", "a/y"))])
        .unwrap();
    drop(s);
    let reader = Store::open_read_only(&d.path().join("store.db"))
        .unwrap()
        .unwrap();
    for (q, index) in [
        ("src_workload = 'a'", "events_src_workload"),
        ("dst_workload = 'a'", "events_dst_workload"),
        ("refusal = 1", "events_refusals"),
    ] {
        let plan = reader
            .explain(&format!(
                "SELECT id FROM events WHERE {q} ORDER BY time_ms DESC, id DESC LIMIT 20"
            ))
            .unwrap();
        assert!(plan.contains(index), "{q}: {plan}");
    }
}

fn event(secs: u64, kind: &str, allowed: bool, src: &str, dst: &str) -> serde_json::Value {
    json!({
        "time": at(secs), "conn": secs, "client": "10.0.0.1:40000", "server": "10.0.0.2:6379",
        "event": kind, "protocol": "redis", "request": "redis FLUSHALL",
        "decision": {"allowed": allowed, "decided_by": "ingress: Policy p ingress rule 1",
            "detail": {"src": {"workload": src, "namespace": src.split('/').next().unwrap()},
                       "dst": {"workload": dst, "namespace": dst.split('/').next().unwrap()}}}
    })
}

#[test]
fn events_filter_by_refusal_workload_and_time() {
    let (_d, mut s) = store();
    let sensor = json!({
        "time": at(5), "conn": 9, "client": "10.0.0.9:1234", "server": "10.0.0.2:80",
        "event": "sensor", "protocol": "http", "findings": [{"sensor": "sqli"}], "blocked": true,
        "src": {"workload": "shop/web-1"}
    });
    let batch = vec![
        Record::Event(event(1, "connection", true, "shop/web-1", "shop/db-0")),
        Record::Event(event(2, "request", false, "shop/web-1", "shop/db-0")),
        Record::Event(event(3, "closed", true, "infra/x", "shop/db-0")),
        Record::Event(sensor.clone()),
        // Written late, but earlier: events come back in time order.
        Record::Event(event(0, "request", false, "infra/x", "infra/y")),
    ];
    s.write(&batch).unwrap();
    let q = |f: EventFilter| -> Vec<String> {
        s.events(&f)
            .unwrap()
            .into_iter()
            .map(|(_, e)| format!("{}@{}", e["event"].as_str().unwrap(), e["conn"]))
            .collect()
    };
    assert_eq!(
        q(EventFilter::default()),
        [
            "request@0",
            "connection@1",
            "request@2",
            "closed@3",
            "sensor@9"
        ]
    );
    let refusals = EventFilter {
        refusals: true,
        ..EventFilter::default()
    };
    assert_eq!(q(refusals.clone()), ["request@0", "request@2", "sensor@9"]);
    let web = EventFilter {
        workload: Some("shop/web-1".into()),
        ..refusals.clone()
    };
    assert_eq!(q(web), ["request@2", "sensor@9"]);
    // A sensor event's namespace comes from its workload.
    let shop = EventFilter {
        namespace: Some("shop".into()),
        refusals: true,
        since_ms: Some(bulkhead_store::millis(&at(3))),
        ..EventFilter::default()
    };
    assert_eq!(q(shop), ["sensor@9"]);
    let last = EventFilter {
        limit: Some(2),
        ..refusals
    };
    assert_eq!(q(last), ["request@2", "sensor@9"]);
    // Events are kept as written.
    let back = s.events(&EventFilter {
        kind: Some("sensor".into()),
        ..EventFilter::default()
    });
    assert_eq!(back.unwrap()[0].1, sensor);
}

#[test]
fn conversations_aggregate_replicas_and_count_bytes() {
    let (_d, mut s) = store();
    let web1 = pod("shop/web-1", "web", "10.0.0.1");
    let web2 = pod("shop/web-2", "web", "10.0.0.5");
    let db = pod("shop/db-0", "db", "10.0.0.2");
    let mut recs = vec![
        flow(10, Action::Allow, web1.clone(), db.clone(), 5432),
        flow(20, Action::Allow, web2.clone(), db.clone(), 5432),
        flow(5, Action::Deny, web2.clone(), db.clone(), 5432),
        flow(30, Action::Log, web2.clone(), db.clone(), 5432),
    ];
    let mut end = flow(40, Action::Allow, web1.clone(), db.clone(), 5432);
    end.event = "end".into();
    end.packets = Some(12);
    end.bytes = Some(3400);
    recs.push(end);
    let mut l7 = flow(15, Action::Deny, web1, db.clone(), 6379);
    l7.event = "l7".into();
    l7.l7 = Some(json!({"protocol": "redis", "request": "redis FLUSHALL"}));
    recs.push(l7);
    // Two batches: the second adds to the first's edges.
    s.write_flows(&recs[..2]).unwrap();
    s.write_flows(&recs[2..]).unwrap();
    let g = s.conversations(&GraphFilter::default()).unwrap();
    assert_eq!(g.len(), 2, "{g:#?}");
    let pg = &g[0];
    assert_eq!(
        (pg.src.as_str(), pg.dst.as_str(), pg.protocol.as_str()),
        ("shop{app=web}", "shop{app=db}", "TCP")
    );
    assert_eq!((pg.port, pg.app.as_str()), (5432, ""));
    assert_eq!((pg.connections, pg.denied, pg.requests), (3, 1, 0));
    assert_eq!((pg.packets, pg.bytes), (12, 3400));
    assert_eq!(pg.first_ms, bulkhead_store::millis(&at(5)));
    assert_eq!(pg.last_ms, bulkhead_store::millis(&at(40)));
    let redis = &g[1];
    assert_eq!((redis.port, redis.app.as_str()), (6379, "redis"));
    assert_eq!((redis.connections, redis.requests, redis.denied), (0, 1, 1));
    // No address anywhere in the graph.
    let text = serde_json::to_string(&g).unwrap();
    assert!(!text.contains("10.0.0."), "{text}");
    let other = GraphFilter {
        namespace: Some("sho".into()),
        ..GraphFilter::default()
    };
    assert!(s.conversations(&other).unwrap().is_empty());
    let shop = GraphFilter {
        namespace: Some("shop".into()),
        violations: true,
        since_ms: Some(bulkhead_store::millis(&at(35))),
    };
    assert_eq!(s.conversations(&shop).unwrap().len(), 1);
}

#[test]
fn retention_by_age_drops_old_records_in_batches() {
    let (_d, mut s) = store();
    let recs: Vec<_> = (0..50u64)
        .map(|i| {
            let mut r = numbered(i);
            r.time = at(i * 60);
            r.dport = Some(80 + (i % 2) as u16);
            r
        })
        .collect();
    // One batch each (as the writer thread commits them at this rate): flows are pruned
    // by whole batches.
    for r in &recs {
        s.write_flows(std::slice::from_ref(r)).unwrap();
    }
    s.write(&[Record::Event(event(0, "request", false, "a/x", "a/y"))])
        .unwrap();
    // Now is minute 60: keep the last 20 minutes (records of minutes 40..49).
    let now = humantime::parse_rfc3339(&at(3600)).unwrap();
    let r = Retention {
        max_age: Some(Duration::from_secs(20 * 60)),
        max_bytes: None,
        batch: 15,
    };
    let mut steps = 0;
    loop {
        let p = s.prune(&r, now).unwrap();
        steps += 1;
        if !p.more {
            break;
        }
    }
    assert!(steps >= 3, "steps of 15: {steps}");
    assert_eq!(
        ids(&s.flows(&FlowFilter::default()).unwrap()),
        (40..50).collect::<Vec<_>>()
    );
    assert_eq!(s.counts().unwrap(), (10, 0));
    // Both edges were last seen within the window.
    assert_eq!(s.conversations(&GraphFilter::default()).unwrap().len(), 2);
    let later = now + Duration::from_secs(3600);
    while s.prune(&r, later).unwrap().more {}
    assert_eq!(s.counts().unwrap(), (0, 0));
    assert!(s.conversations(&GraphFilter::default()).unwrap().is_empty());
    // Rowids are never reused, even once the table is empty (a follower's cursor).
    s.write_flows(&recs[..40]).unwrap();
    let rows = s.flows(&FlowFilter::default()).unwrap();
    assert_eq!(
        rows.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (51..91).collect::<Vec<_>>()
    );
    let x = FlowFilter {
        workload: Some("a/x".into()),
        limit: Some(3),
        ..FlowFilter::default()
    };
    assert_eq!(ids(&s.flows(&x).unwrap()), [37, 38, 39]);
}

#[test]
fn retention_by_size_keeps_the_newest_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut s = Store::open(&path).unwrap();
    let n = 20_000u64;
    for k in 0..20 {
        let batch: Vec<_> = (k * 1000..(k + 1) * 1000).map(numbered).collect();
        s.write_flows(&batch).unwrap();
    }
    let full = s.used_bytes().unwrap();
    let max = full / 4;
    let r = Retention {
        max_age: None,
        max_bytes: Some(max),
        batch: 1000,
    };
    while s.prune(&r, SystemTime::now()).unwrap().more {}
    assert!(s.used_bytes().unwrap() <= max);
    let left = s.flows(&FlowFilter::default()).unwrap();
    assert!(left.len() > 1000 && left.len() < 6000, "{}", left.len());
    // The newest survive, contiguous.
    assert_eq!(left.last().unwrap().1.generation, n - 1);
    assert_eq!(left[0].1.generation, n - left.len() as u64);
    drop(s);
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(file < full / 2, "file {file} of {full} in use before");
}

#[test]
fn follow_sees_every_new_matching_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut w = Store::open(&path).unwrap();
    w.write_flows(&sample()).unwrap();
    let reader = Store::open_read_only(&path).unwrap().unwrap();
    let after = reader.last_id(bulkhead_store::Table::Flows).unwrap();
    let writer = std::thread::spawn(move || {
        for round in 0..5u64 {
            std::thread::sleep(Duration::from_millis(30));
            let mut b = sample();
            for r in &mut b {
                r.generation += 100 * (round + 1);
            }
            w.write_flows(&b).unwrap();
        }
    });
    let mut seen = Vec::new();
    let f = FlowFilter {
        verdict: Some(Action::Deny),
        ..FlowFilter::default()
    };
    reader
        .follow_flows(&f, after, Duration::from_millis(5), |r| {
            seen.push(r.generation);
            seen.len() < 10
        })
        .unwrap();
    writer.join().unwrap();
    let want: Vec<u64> = (1..=5).flat_map(|k| [100 * k + 2, 100 * k + 6]).collect();
    assert_eq!(seen, want);
}

#[test]
fn the_sink_commits_before_flush_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let sink = Sink::open(&path, Retention::default()).unwrap();
    for r in sample() {
        sink.send(Record::Flow(Box::new(r))).unwrap();
    }
    sink.send(Record::Event(event(1, "request", false, "a/x", "a/y")))
        .unwrap();
    sink.flush().unwrap();
    let reader = Store::open_read_only(&path).unwrap().unwrap();
    assert_eq!(reader.counts().unwrap(), (10, 1));
    // The graph's sums are written by a flush too (web -> db, world -> cache).
    assert_eq!(
        reader.conversations(&GraphFilter::default()).unwrap().len(),
        3
    );
    drop(sink);
    assert_eq!(reader.counts().unwrap(), (10, 1));
}

#[test]
fn bad_input_is_stored_or_refused_never_a_panic() {
    let (d, mut s) = store();
    // An event without a time, with odd types: kept, older than any `since`.
    let odd = json!({"event": 7, "decision": "x", "src": [1]});
    s.write(&[Record::Event(odd.clone()), Record::Event(json!(null))])
        .unwrap();
    let all = s.events(&EventFilter::default()).unwrap();
    assert_eq!(all.len(), 2);
    let recent = EventFilter {
        since_ms: Some(0),
        ..EventFilter::default()
    };
    assert_eq!(s.events(&recent).unwrap().len(), 2);
    let after = EventFilter {
        since_ms: Some(1),
        ..EventFilter::default()
    };
    assert!(s.events(&after).unwrap().is_empty());
    // A flow with a time that does not parse.
    let mut r = flow(0, Action::Allow, world("1.2.3.4"), world("5.6.7.8"), 1);
    r.time = "yesterday".into();
    s.write_flows(&[r]).unwrap();
    let since = FlowFilter {
        since_ms: Some(1),
        ..FlowFilter::default()
    };
    assert!(s.flows(&since).unwrap().is_empty());
    // No store yet is no records, not an error; a file that is not a store is an error.
    assert!(
        Store::open_read_only(&d.path().join("none.db"))
            .unwrap()
            .is_none()
    );
    // A store of another layout (an older bulkhead's) is refused, for writing and reading.
    let old = d.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch("CREATE TABLE flows (id INTEGER PRIMARY KEY, event TEXT NOT NULL)")
        .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&old),
        Err(bulkhead_store::Error::Layout(_))
    ));
    assert!(matches!(
        Store::open_read_only(&old),
        Err(bulkhead_store::Error::Layout(_))
    ));
    // Reopening its own layout is fine.
    drop(s);
    assert!(Store::open(&d.path().join("store.db")).is_ok());
    let junk = d.path().join("junk.db");
    std::fs::write(&junk, b"not a database, just some bytes ........").unwrap();
    let bad = Store::open_read_only(&junk).and_then(|s| s.map(|s| s.counts()).transpose());
    assert!(bad.is_err());
}

/// A store of layout version 1 (posting lists keyed by term, then the list's own last
/// rowid): a reader refuses it with a clear error, and opening it for writing converts it.
#[test]
fn a_version_1_store_is_converted_when_opened_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut s = Store::open(&path).unwrap();
    let all = sample();
    // Several batches, so the lists of a term span batches; lists that end before their
    // batch does (the batch's last record does not carry the term).
    for chunk in all.chunks(3) {
        s.write_flows(chunk).unwrap();
    }
    drop(s);
    // Rewritten as version 1 wrote it: each list under its own last rowid.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(i64, i64, Vec<u8>)> = conn
        .prepare("SELECT term, last_id, ids FROM postings")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    conn.execute_batch(
        "BEGIN;
         DROP TABLE postings;
         CREATE TABLE postings (term INTEGER NOT NULL, last_id INTEGER NOT NULL,
             ids BLOB NOT NULL, PRIMARY KEY (term, last_id)) WITHOUT ROWID;
         CREATE INDEX postings_age ON postings(last_id);",
    )
    .unwrap();
    let mut own_end = 0;
    for (term, batch_end, ids) in rows {
        // Varint deltas: the sum is the list's last rowid.
        let (mut last, mut d, mut shift) = (0i64, 0i64, 0);
        for b in &ids {
            d |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                (last, d, shift) = (last + d, 0, 0);
            }
        }
        own_end += i64::from(last != batch_end);
        conn.execute(
            "INSERT INTO postings VALUES (?1, ?2, ?3)",
            rusqlite::params![term, last, ids],
        )
        .unwrap();
    }
    assert!(own_end > 0, "no list ends before its batch");
    conn.execute_batch("PRAGMA user_version = 1; COMMIT;")
        .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open_read_only(&path),
        Err(bulkhead_store::Error::Layout(e)) if e.contains("converted")
    ));
    let questions = [
        FlowFilter::default(),
        FlowFilter {
            workload: Some("shop/web-1".into()),
            ..FlowFilter::default()
        },
        FlowFilter {
            group: Some("cache".into()),
            limit: Some(1),
            ..FlowFilter::default()
        },
        FlowFilter {
            rule: Some("db-access#1".parse::<RuleFilter>().unwrap()),
            verdict: Some(Action::Allow),
            ..FlowFilter::default()
        },
    ];
    // Every match, oldest first; the last `limit` of them.
    let want: Vec<Vec<u64>> = questions
        .iter()
        .map(|f| {
            let v: Vec<u64> = all
                .iter()
                .filter(|r| f.matches(r))
                .map(|r| r.generation)
                .collect();
            let keep = f.limit.unwrap_or(v.len()).min(v.len());
            v[v.len() - keep..].to_vec()
        })
        .collect();
    let answers = |s: &Store| -> Vec<Vec<u64>> {
        questions
            .iter()
            .map(|f| ids(&s.flows(f).unwrap()))
            .collect()
    };
    let mut s = Store::open(&path).unwrap();
    assert_eq!(answers(&s), want);
    let reader = Store::open_read_only(&path).unwrap().unwrap();
    assert_eq!(answers(&reader), want);
    drop(reader);
    assert_eq!(s.integrity().unwrap(), "ok");
    let plan = s
        .explain("SELECT 1 FROM postings WHERE last_id = 1 AND term = 1")
        .unwrap();
    assert!(plan.contains("PRIMARY KEY"), "{plan}");
    assert!(
        !s.explain("SELECT 1 FROM postings WHERE term = 1")
            .unwrap()
            .contains("postings_age")
    );
    // Written to after the conversion, the old lists and the new ones answer together.
    s.write_flows(&all).unwrap();
    let doubled = ids(&s.flows(&questions[1]).unwrap());
    assert_eq!(doubled.len(), 2 * want[1].len());
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}
