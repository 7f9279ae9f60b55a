//! `bulkhead flows` and `bulkhead events` read an agent's store (`store.db`): filters,
//! limits, both outputs, `--follow` picking up what is committed after it started, and a
//! state directory with no store yet. No root needed: the store is written here.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulkhead_agent::flows::{Action, FlowRecord, Peer};
use bulkhead_store::{Record, Store};
use serde_json::json;

fn pod(workload: &str, ip: &str) -> Peer {
    let (ns, name) = workload.split_once('/').unwrap();
    Peer {
        ip: ip.into(),
        workload: Some(workload.into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Peer::default()
    }
}

fn flow(n: u64, verdict: Action, dst: &str, dport: u16) -> FlowRecord {
    let time = format!("2026-12-03T01:00:{:02}.000Z", n % 60);
    let (src, dst) = (pod("shop/web-0", "10.0.0.1"), pod(dst, "10.0.0.2"));
    FlowRecord {
        sport: Some(40000),
        dport: Some(dport),
        consistent: Some(true),
        len: Some(60),
        generation: n,
        ..FlowRecord::new(time, verdict, "TCP", src, dst)
    }
}

fn bulkhead(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `bulkhead ARGS --state-dir DIR` left running, and its output lines as they come.
fn follow(dir: &Path, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn generations(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["generation"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn flows_and_events_come_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // No store yet: nothing to show, not an error.
    let (ok, out) = bulkhead(dir.path(), &["flows"]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("TIME"), "{out}");

    let mut s = Store::open(&dir.path().join(bulkhead_store::FILE)).unwrap();
    let recs: Vec<FlowRecord> = (0..6)
        .map(|n| match n % 3 {
            0 => flow(n, Action::Deny, "shop/db-0", 22),
            1 => flow(n, Action::Allow, "shop/db-0", 5432),
            _ => flow(n, Action::Allow, "shop/cache-0", 6379),
        })
        .collect();
    s.write_flows(&recs).unwrap();
    let refused = json!({"time": "2026-12-03T01:00:07.000Z", "event": "request",
        "client": "10.0.0.1:40000", "server": "10.0.0.3:6379", "conn": 1,
        "request": "redis FLUSHALL", "protocol": "redis", "refusal": "-NOPERM",
        "decision": {"allowed": false, "decided_by": "ingress: Policy cache rule 1",
            "detail": {"src": {"workload": "shop/web-0"}, "dst": {"workload": "shop/cache-0"}}}});
    let closed = json!({"time": "2026-12-03T01:00:08.000Z", "event": "closed",
        "client": "10.0.0.1:40000", "server": "10.0.0.3:6379", "conn": 1,
        "bytes_up": 10, "bytes_down": 20, "requests": 1, "duration_ms": 1.5});
    s.write(&[Record::Event(refused.clone()), Record::Event(closed)])
        .unwrap();

    let (ok, out) = bulkhead(dir.path(), &["flows", "-o", "json"]);
    assert!(ok, "{out}");
    assert_eq!(generations(&out), [0, 1, 2, 3, 4, 5]);
    // The stored JSON, as the agent wrote it.
    assert_eq!(
        out.lines().next().unwrap(),
        serde_json::to_string(&recs[0]).unwrap()
    );
    let (_, out) = bulkhead(
        dir.path(),
        &[
            "flows",
            "-o",
            "json",
            "--workload",
            "shop/db-0",
            "--verdict",
            "allow",
        ],
    );
    assert_eq!(generations(&out), [1, 4]);
    let (_, out) = bulkhead(dir.path(), &["flows", "-o", "json", "--limit", "2"]);
    assert_eq!(generations(&out), [4, 5]);
    let (_, out) = bulkhead(
        dir.path(),
        &["flows", "-o", "json", "--since", "2026-12-03T01:00:04Z"],
    );
    assert_eq!(generations(&out), [4, 5]);
    let (_, out) = bulkhead(dir.path(), &["flows", "--verdict", "deny"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().nth(1).unwrap().contains("TCP/22"), "{out}");

    // Events: refusals unless --all.
    let (ok, out) = bulkhead(dir.path(), &["events", "-o", "json"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), serde_json::to_string(&refused).unwrap());
    let (_, out) = bulkhead(dir.path(), &["events", "--all"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.contains("redis FLUSHALL") && out.contains("closed"),
        "{out}"
    );
    let (_, out) = bulkhead(dir.path(), &["events", "--workload", "shop/db-0"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    // By kind and by namespace (the refusal's ends are in shop).
    let (_, out) = bulkhead(dir.path(), &["events", "--all", "--kind", "closed"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("closed: 10 bytes up"), "{out}");
    let (_, out) = bulkhead(dir.path(), &["events", "--kind", "sensor"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (_, out) = bulkhead(dir.path(), &["events", "--namespace", "shop"]);
    assert!(out.contains("redis FLUSHALL"), "{out}");
    let (_, out) = bulkhead(dir.path(), &["events", "--namespace", "prod"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (ok, out) = bulkhead(dir.path(), &["events", "--kind", "sensr"]);
    assert!(!ok && out.contains("possible values"), "{out}");

    // --follow: what was there, then what is committed after.
    let (mut child, rx) = follow(
        dir.path(),
        &["flows", "-o", "json", "--follow", "--verdict", "deny"],
    );
    let next = || rx.recv_timeout(Duration::from_secs(10)).expect("a record");
    let before: Vec<String> = (0..2).map(|_| next()).collect();
    assert_eq!(generations(&before.join("\n")), [0, 3]);
    s.write_flows(&[
        flow(10, Action::Allow, "shop/db-0", 5432),
        flow(11, Action::Deny, "shop/db-0", 22),
    ])
    .unwrap();
    s.write_flows(&[flow(12, Action::Deny, "shop/cache-0", 22)])
        .unwrap();
    let after: Vec<String> = (0..2).map(|_| next()).collect();
    assert_eq!(generations(&after.join("\n")), [11, 12]);
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `events --follow`: the refusals there are, then each one committed after, as it
/// comes (closes and other non-refusals stay out without `--all`).
#[test]
fn events_follow_prints_new_refusals_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join(bulkhead_store::FILE)).unwrap();
    let event = |second: u32, kind: &str, request: &str| {
        Record::Event(json!({"time": format!("2026-12-03T01:00:{second:02}.000Z"),
            "event": kind, "client": "10.0.0.1:40000", "server": "10.0.0.3:6379",
            "conn": second, "request": request, "protocol": "redis",
            "decision": {"allowed": false, "decided_by": "ingress: Policy cache rule 1"}}))
    };
    s.write(&[event(1, "request", "redis FLUSHALL")]).unwrap();
    let (mut child, rx) = follow(dir.path(), &["events", "-o", "json", "--follow"]);
    let next = || rx.recv_timeout(Duration::from_secs(10)).expect("an event");
    let request =
        |l: String| serde_json::from_str::<serde_json::Value>(&l).unwrap()["request"].clone();
    assert_eq!(request(next()), "redis FLUSHALL");
    s.write(&[event(2, "closed", "-"), event(3, "request", "redis CONFIG")])
        .unwrap();
    assert_eq!(request(next()), "redis CONFIG");
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}
