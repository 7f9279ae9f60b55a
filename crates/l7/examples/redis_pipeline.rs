//! CPU per command of the Redis session on pipelined GETs, as redis-benchmark -P 16
//! sends them (one read holds 16 commands), every command allowed, and the server's
//! 16 replies fed back.
//!
//! `cargo run --release -p bulkhead-l7 --example redis_pipeline [ROUNDS]`

mod common;

use bulkhead_l7::{RedisSession, Session, Verdict};
use std::hint::black_box;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut batch = Vec::new();
    let mut replies = Vec::new();
    for k in 0..16 {
        let key = format!("key:{k:012}");
        batch.extend_from_slice(
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
        );
        replies.extend_from_slice(b"$3\r\nxxx\r\n");
    }
    let mut s = RedisSession::new();
    let mut allow = |_: &bulkhead_policy::l7::L7Request| Verdict { allowed: true };
    let t0 = common::cpu_ns();
    for _ in 0..rounds {
        let out = s.client_bytes(black_box(&batch), &mut allow);
        black_box(&out);
        black_box(s.server_bytes(black_box(&replies)));
    }
    let ns = (common::cpu_ns() - t0) as f64 / (rounds * 16) as f64;
    println!("{ns:.1} ns of CPU per pipelined GET (request and reply)");
}
