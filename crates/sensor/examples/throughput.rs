//! Throughput of `Sensor::http_request` per CPU-second, for a shared machine where
//! wall-clock rates swing with the load: the same requests as `benches/sensor.rs`
//! (browser-like GETs, three httparams values each), every attack class and DLP kind
//! on, timed by this thread's CPU time (`/proc/thread-self/schedstat`, ns).
//!
//! `exchange` is benign HTTP as a proxy relays it: each benign request head, then a
//! response: its head (nginx's fields for a static file) through
//! `Sensor::response_head`, its body streamed through `Sensor::stream` in 16 KiB chunks
//! (the files under the repository's `docs/` and `examples/`, 0.5-60 KiB, in turn); its
//! rate counts both directions' bytes. `THROUGHPUT_NO_RESPONSE_HEAD=1` leaves the
//! response head out (neither scanned nor counted), as before the proxy scanned it.
//!
//! `cargo run --release -p bulkhead-sensor --example throughput [SECONDS [benign|sqli|xss|exchange]]`
//! prints one line per workload: MiB per CPU-second, CPU us per request, and the
//! wall-clock rate with the share of the wall time this thread was on a CPU.

#[path = "../benches/workload/mod.rs"]
mod workload;

use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec};
use std::hint::black_box;
use workload::cpu_ns;

fn part(attacks: Vec<Attack>, dlp: Vec<DlpKind>) -> Sensor {
    Sensor::new(&SensorSpec {
        name: "part".into(),
        block: true,
        attacks,
        dlp,
        patterns: vec![],
    })
    .unwrap()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let Some(root) = workload::common::corpora() else {
        return;
    };
    // `THROUGHPUT_PART=attacks|dlp`: one half of the sensor, to see which costs what.
    let sensor = match std::env::var("THROUGHPUT_PART").as_deref() {
        Ok("attacks") => part(Attack::ALL.to_vec(), vec![]),
        Ok("dlp") => part(vec![], DlpKind::ALL.to_vec()),
        _ => workload::sensor(),
    };
    let only = std::env::args().nth(2);
    let bodies = workload::text_bodies();
    for label in ["benign", "sqli", "xss", "exchange"] {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let exchange = label == "exchange";
        if exchange && bodies.is_empty() {
            eprintln!("exchange: no files under the repository's docs/");
            continue;
        }
        let reqs = workload::requests(&root, if exchange { "benign" } else { label });
        // Request i's response is body i (mod their number), or nothing.
        let response = |i: usize| -> &[u8] {
            if exchange {
                &bodies[i % bodies.len()]
            } else {
                b""
            }
        };
        let with_head = std::env::var_os("THROUGHPUT_NO_RESPONSE_HEAD").is_none();
        let heads: Vec<Vec<u8>> = (0..reqs.len())
            .map(|i| {
                let body = response(i);
                if body.is_empty() || !with_head {
                    return Vec::new();
                }
                format!(
                    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 08:00:{:02} GMT\r\n\
Content-Type: text/html\r\nContent-Length: {}\r\nLast-Modified: Sat, 05 Dec 2026 21:14:07 GMT\r\n\
Connection: keep-alive\r\nETag: \"6751f6ef-{:x}\"\r\nAccept-Ranges: bytes\r\n\r\n",
                    i % 60,
                    body.len(),
                    body.len()
                )
                .into_bytes()
            })
            .collect();
        let one = |i: usize, r: &[u8]| {
            let mut n = sensor.http_request(black_box(r), b"").len();
            let body = response(i);
            if !heads[i].is_empty() {
                n += sensor.response_head(black_box(&heads[i])).len();
            }
            if !body.is_empty() {
                let mut s = sensor.stream(true);
                for chunk in body.chunks(16 * 1024) {
                    n += s.feed(black_box(chunk)).len();
                }
            }
            n
        };
        let bytes: usize = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| r.len() + heads[i].len() + response(i).len())
            .sum();
        // Warm-up round (caches, lazily built automata).
        for (i, r) in reqs.iter().enumerate() {
            black_box(one(i, r));
        }
        let (c0, w0) = (cpu_ns(), std::time::Instant::now());
        let mut rounds = 0u64;
        let mut findings = 0usize;
        // `THROUGHPUT_ROUNDS=N`: exactly N rounds (for `perf stat` instruction counts).
        let fixed: Option<u64> = std::env::var("THROUGHPUT_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok());
        while fixed.map_or(cpu_ns() - c0 < (secs * 1e9) as u64, |n| rounds < n) {
            for (i, r) in reqs.iter().enumerate() {
                findings += one(i, r);
            }
            rounds += 1;
        }
        let cpu = (cpu_ns() - c0) as f64 / 1e9;
        let wall = w0.elapsed().as_secs_f64();
        let total = bytes as f64 * rounds as f64;
        println!(
            "{label:7} {:8.1} MiB/cpu-s {:7.2} us/req  wall {:7.1} MiB/s  on-cpu {:3.0}%  ({} req x {rounds}, {} B/req, {findings} findings)",
            total / cpu / (1 << 20) as f64,
            cpu * 1e6 / (reqs.len() as f64 * rounds as f64),
            total / wall / (1 << 20) as f64,
            100.0 * cpu / wall,
            reqs.len(),
            bytes / reqs.len(),
        );
    }
}
