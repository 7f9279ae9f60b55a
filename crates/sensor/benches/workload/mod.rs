//! The requests the sensor benchmarks run (shared by `benches/sensor.rs` and
//! `examples/throughput.rs`).
#![allow(dead_code)]

#[path = "../../tests/common/mod.rs"]
pub mod common;

/// The benchmarked sensor: every attack class and every DLP kind.
pub fn sensor() -> bulkhead_sensor::Sensor {
    use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec};
    Sensor::new(&SensorSpec {
        name: "bench".into(),
        block: true,
        attacks: Attack::ALL.to_vec(),
        dlp: DlpKind::ALL.to_vec(),
        patterns: vec![],
    })
    .unwrap()
}

fn form_escape(v: &[u8]) -> String {
    let mut s = String::new();
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            s.push(b as char);
        } else if b == b' ' {
            s.push('+');
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Browser-like GET requests, three parameters each, from httparams rows with `label`.
pub fn requests(root: &std::path::Path, label: &str) -> Vec<Vec<u8>> {
    let vals: Vec<Vec<u8>> = common::rows(root, "attacks/httpparams.tsv")
        .into_iter()
        .filter(|r| r.label == label)
        .map(|r| r.payload)
        .collect();
    vals.chunks(3)
        .enumerate()
        .map(|(i, c)| {
            let q: Vec<String> = c
                .iter()
                .enumerate()
                .map(|(k, v)| format!("p{k}={}", form_escape(v)))
                .collect();
            format!(
                "GET /shop/items/{i}?{} HTTP/1.1\r\nHost: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\nReferer: https://shop.example.com/shop/items?page={i}\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; cart=3\r\nConnection: keep-alive\r\n\r\n",
                q.join("&")
            )
            .into_bytes()
        })
        .map(|r| match std::env::var("WORKLOAD_SHAPE").as_deref() {
            // The request line and `Host` only: what the headers cost is the difference.
            Ok("bare") => {
                let end = r.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
                [&r[..end], &b"Host: shop.example.com\r\n\r\n"[..]].concat()
            }
            // The same `Referer` on every request.
            Ok("same-referer") => {
                let s = String::from_utf8(r).unwrap();
                let at = s.find("?page=").unwrap() + 6;
                let end = at + s[at..].find('\r').unwrap();
                format!("{}0{}", &s[..at], &s[end..]).into_bytes()
            }
            _ => r,
        })
        .collect()
}

/// This thread's CPU time so far, ns (`/proc/thread-self/schedstat`): rates per
/// CPU-second hold up on a shared machine where wall-clock rates swing with the load.
pub fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Benign text bodies: every file under the repository's `docs/` and `examples/`.
pub fn text_bodies() -> Vec<Vec<u8>> {
    fn files(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    files(&repo.join("docs"), &mut out);
    files(&repo.join("examples"), &mut out);
    out
}
