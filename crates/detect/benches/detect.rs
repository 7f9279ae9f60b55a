//! Detection throughput over the pcap corpus: whole captures (pcap parsing, flow table,
//! TCP reassembly, detection) in MB/s of capture and flows/s, and the detector alone on
//! connection openings.

#[path = "../tests/common/corpora.rs"]
mod common;

use bulkhead_detect::capture::detect_capture;
use bulkhead_detect::{Detector, Dir};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn corpus(c: &mut Criterion) {
    let Some(root) = common::corpora() else {
        return;
    };
    let files = common::captures(&root);
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let flows: usize = files
        .iter()
        .map(|(_, b)| detect_capture(b).map_or(0, |f| f.len()))
        .sum();
    eprintln!(
        "corpus: {} captures, {bytes} bytes, {flows} flows",
        files.len()
    );
    let run = || {
        for (_, b) in &files {
            black_box(detect_capture(black_box(b)).ok());
        }
    };
    let mut g = c.benchmark_group("corpus");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("captures (bytes)", |b| b.iter(run));
    g.throughput(Throughput::Elements(flows as u64));
    g.bench_function("captures (flows)", |b| b.iter(run));
    g.finish();
}

/// Openings as a proxy sees them: the first client bytes, or a server greeting.
const OPENINGS: &[(Dir, &[u8])] = &[
    (Dir::ToServer, b"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
    (Dir::ToServer, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"),
    (Dir::ToServer, b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (Dir::ToClient, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
    (Dir::ToClient, b"220 mx.example.org ESMTP Postfix\r\n"),
    (Dir::ToServer, b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x3c\x00\x0emosquitto_pub1"),
    (Dir::ToServer, b"\x00\x00\x00\x28\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka\x00\x00\x00\x01\x00\x11LB_MAIN_LOG_INPUT"),
];

fn openings(c: &mut Criterion) {
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(OPENINGS.len() as u64));
    g.bench_function("openings", |b| {
        b.iter(|| {
            for (dir, bytes) in OPENINGS {
                let mut d = Detector::new(16 * 1024);
                black_box(d.feed(*dir, black_box(bytes)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, corpus, openings);
criterion_main!(benches);
