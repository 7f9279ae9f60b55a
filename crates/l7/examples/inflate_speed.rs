//! What inflating a gzip'd response costs the sensors' response path, per CPU-second:
//! the repository's docs/ and examples/ files (text, like HTML and JSON answers) gzip'd
//! at the default level as a server would, then inflated by `coding::Inflater` in 16 KiB
//! reads, as the HTTP session feeds it. Prints decoded MiB per CPU-second.
//!
//! `cargo run --release -p bulkhead-l7 --example inflate_speed [ROUNDS]`

mod common;

use std::io::Write;

use bulkhead_l7::coding::Inflater;

fn texts(dir: &std::path::Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            texts(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend_from_slice(&b);
        }
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut text = Vec::new();
    texts(&repo.join("docs"), &mut text);
    texts(&repo.join("examples"), &mut text);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&text).unwrap();
    let gz = e.finish().unwrap();
    let t0 = common::cpu_ns();
    let mut decoded = 0usize;
    for _ in 0..rounds {
        let mut d = Inflater::for_coding(b"gzip").unwrap();
        for chunk in gz.chunks(16 * 1024) {
            d.feed(chunk, &mut |b| decoded += b.len()).unwrap();
        }
    }
    let secs = (common::cpu_ns() - t0) as f64 / 1e9;
    let mib = decoded as f64 / f64::from(1 << 20);
    println!(
        "{:.1} MiB of text ({:.1} MiB gzip'd, ratio {:.1}) x {rounds}: {:.0} MiB decoded per CPU-second ({:.0} MiB gzip'd in)",
        text.len() as f64 / f64::from(1 << 20),
        gz.len() as f64 / f64::from(1 << 20),
        text.len() as f64 / gz.len() as f64,
        mib / secs,
        gz.len() as f64 * rounds as f64 / f64::from(1 << 20) / secs,
    );
}
