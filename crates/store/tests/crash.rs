//! Acknowledged records survive a crash of the writer: a child process writes batches
//! and prints the last record of each batch once `write` has returned; it is killed with
//! SIGKILL mid-stream; every record it acknowledged must be in the store, which must be
//! intact.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_store::{FlowFilter, Store};
use common::*;

const CHILD: &str = "BULKHEAD_STORE_CRASH_CHILD";

/// The child: run by `acknowledged_records_survive_kill_9` only (ignored otherwise).
#[test]
#[ignore = "the writer process of the crash test"]
fn crash_child_writer() {
    let path = std::env::var(CHILD).expect("run by the crash test");
    let mut s = Store::open(std::path::Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    for k in 0.. {
        let batch: Vec<_> = (k * 200..(k + 1) * 200).map(numbered).collect();
        s.write_flows(&batch).unwrap();
        // Acknowledged: the last record of a committed batch.
        writeln!(out, "{}", (k + 1) * 200 - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child_writer", "--nocapture"])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Option<u64> = None;
    let start = Instant::now();
    // Kill it once it has acknowledged a good number of batches, mid-stream.
    while start.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Ok(n) = line.trim().parse::<u64>() {
            acked = Some(n);
            if n >= 20_000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements printed before it died count too.
    for line in lines.map_while(Result::ok) {
        if let Ok(n) = line.trim().parse::<u64>() {
            acked = Some(n);
        }
    }
    let acked = acked.expect("the child acknowledged nothing");
    assert!(acked >= 20_000 - 1, "{acked}");
    let s = Store::open(&path).unwrap();
    assert_eq!(s.integrity().unwrap(), "ok");
    let got: Vec<u64> = s
        .flows(&FlowFilter::default())
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.generation)
        .collect();
    // Every acknowledged record, in order; perhaps some of a batch it had not yet
    // acknowledged, never a partial batch.
    assert!(got.len() as u64 > acked, "{} <= {acked}", got.len());
    assert_eq!(got.len() % 200, 0);
    assert!(got.iter().copied().eq(0..got.len() as u64));
}
