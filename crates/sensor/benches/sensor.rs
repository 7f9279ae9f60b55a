//! Throughput of the sensors, per core: `Sensor::http_request` with every attack class
//! and every DLP kind on, over benign requests built from httpparams benign values and
//! over attack requests; and a DLP payload stream over a benign 1 MiB response body.
//!
//! `cargo bench -p bulkhead-sensor --bench sensor` (needs the shared corpora).

mod workload;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use workload::{common, requests};

fn bench(c: &mut Criterion) {
    let Some(root) = common::corpora() else {
        return;
    };
    let sensor = workload::sensor();
    let mut g = c.benchmark_group("http_request");
    for (name, label) in [("benign", "benign"), ("sqli", "sqli"), ("xss", "xss")] {
        let reqs = requests(&root, label);
        let bytes: usize = reqs.iter().map(Vec::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for r in &reqs {
                    n += sensor.http_request(black_box(r), b"").len();
                }
                n
            })
        });
    }
    g.finish();

    // A benign response: the DLP sample's benign rows (decoys built to look like
    // secrets, so every validator runs) repeated to 1 MiB.
    let mut body = Vec::with_capacity(1 << 20);
    let benign: Vec<Vec<u8>> = common::rows(&root, "dlp/sample.tsv")
        .into_iter()
        .filter(|r| r.label == "benign")
        .map(|r| r.payload)
        .collect();
    'fill: loop {
        for p in &benign {
            if body.len() + p.len() + 1 > 1 << 20 {
                break 'fill;
            }
            body.extend_from_slice(p);
            body.push(b'\n');
        }
    }
    // A plainer response: JSON records of httpparams benign values, 1 MiB.
    let vals: Vec<Vec<u8>> = common::rows(&root, "attacks/httpparams.tsv")
        .into_iter()
        .filter(|r| r.label == "benign")
        .map(|r| r.payload)
        .collect();
    let mut json = Vec::with_capacity(1 << 20);
    'json: for i in 0.. {
        for v in &vals {
            let name = serde_json::Value::String(String::from_utf8_lossy(v).into_owned());
            let rec =
                format!("{{\"id\":{i},\"name\":{name},\"updated\":\"2024-05-01T10:00:00Z\"}},\n");
            if json.len() + rec.len() > 1 << 20 {
                break 'json;
            }
            json.extend_from_slice(rec.as_bytes());
        }
    }
    let mut g = c.benchmark_group("dlp_stream");
    for (name, data) in [("dlp_decoys_1MiB", &body), ("json_records_1MiB", &json)] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut st = sensor.stream(true);
                data.chunks(16 * 1024)
                    .map(|ch| st.feed(ch).len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
