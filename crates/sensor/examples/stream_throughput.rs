//! Throughput of the payload stream scan (`Sensor::stream`: what the proxy runs over
//! response bodies and request bodies past the inspected head) per CPU-second, on
//! benign text: every file under the repository's `docs/` and `examples/` (Markdown and
//! YAML, 0.5-60 KiB, with addresses, numbers and e-mail-like strings), fed in 16 KiB
//! chunks as a proxy reads them, with every DLP kind on.
//!
//! `cargo run --release -p bulkhead-sensor --example stream_throughput [SECONDS]`

#[path = "../benches/workload/mod.rs"]
mod workload;

use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec};
use std::hint::black_box;
use workload::cpu_ns;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let bodies = workload::text_bodies();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let sensor = Sensor::new(&SensorSpec {
        name: "all".into(),
        block: false,
        attacks: Attack::ALL.to_vec(),
        dlp: DlpKind::ALL.to_vec(),
        patterns: vec![],
    })
    .expect("sensor");
    let round = || {
        let mut found = 0;
        for b in &bodies {
            let mut s = sensor.stream(true);
            for chunk in b.chunks(16 * 1024) {
                found += black_box(s.feed(black_box(chunk))).len();
            }
        }
        found
    };
    let found = round();
    let (c0, w0) = (cpu_ns(), std::time::Instant::now());
    let mut rounds = 0u64;
    while w0.elapsed().as_secs_f64() < secs {
        round();
        rounds += 1;
    }
    let cpu = (cpu_ns() - c0) as f64 / 1e9;
    let wall = w0.elapsed().as_secs_f64();
    let mib = (bytes as u64 * rounds) as f64 / (1024.0 * 1024.0);
    println!(
        "stream, {} bodies, {} KiB, {found} findings per round: {:.0} MiB per CPU-second \
         ({:.0} MiB/s wall, on CPU {:.0} % of the time)",
        bodies.len(),
        bytes / 1024,
        mib / cpu,
        mib / wall,
        100.0 * cpu / wall
    );
}
