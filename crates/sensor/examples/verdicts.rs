//! Development aid: one line per corpus row with what each sensor class found, for
//! diffing two builds row by row (`verdicts > before.txt`, change, `verdicts >
//! after.txt`, `diff`). Attack files are scored as `tests/corpora.rs` scores them (per
//! parameter value through `Sensor::value`, one sensor per class, CRS rows split
//! ModSecurity-style); the DLP sample through a DLP-only sensor's `Sensor::value`.
//!
//! `cargo run --release -p bulkhead-sensor --example verdicts [CORPORA_DIR]`
use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec, decode::percent_decode};

fn parts(v: &[u8], src: &str) -> Vec<Vec<u8>> {
    let loc = src.rsplit(':').next().unwrap_or("");
    if loc == "QUERY" || loc == "BODY" {
        let mut out = Vec::new();
        for kv in v.split(|&b| b == b'&') {
            let mut it = kv.splitn(2, |&b| b == b'=');
            out.push(it.next().unwrap_or(b"").to_vec());
            if let Some(x) = it.next() {
                out.push(x.to_vec());
            }
        }
        out
    } else {
        vec![v.to_vec()]
    }
}

fn sensor(attacks: Vec<Attack>, dlp: Vec<DlpKind>) -> Sensor {
    Sensor::new(&SensorSpec {
        name: "v".into(),
        block: false,
        attacks,
        dlp,
        patterns: vec![],
    })
    .unwrap()
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/corpora".into());
    let per_class: Vec<(Attack, Sensor)> = Attack::ALL
        .iter()
        .map(|&a| (a, sensor(vec![a], vec![])))
        .collect();
    for file in [
        "attacks/libinjection.tsv",
        "attacks/httpparams.tsv",
        "attacks/crs_942_sqli.tsv",
        "attacks/crs_932_rce.tsv",
        "attacks/crs_930_lfi.tsv",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for (n, line) in text.lines().skip(1).enumerate() {
            let mut f = line.split('\t');
            let (label, payload, src) = (
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
            );
            let ps = parts(&percent_decode(payload.as_bytes()), src);
            let hits: Vec<&str> = per_class
                .iter()
                .filter(|(_, s)| ps.iter().any(|p| !s.value("v", p).is_empty()))
                .map(|(a, _)| a.as_str())
                .collect();
            println!("{file}\t{n}\t{label}\t{}", hits.join(","));
        }
    }
    // Whole requests, as the agent inspects them.
    let all = sensor(Attack::ALL.to_vec(), DlpKind::ALL.to_vec());
    let text = std::fs::read_to_string(format!("{root}/attacks/crs_requests.tsv")).unwrap();
    for (n, line) in text.lines().skip(1).enumerate() {
        let mut f = line.split('\t');
        let (label, payload) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let req = percent_decode(payload.as_bytes());
        let split = memchr_blank(&req);
        let (head, body) = req.split_at(split);
        let mut found: Vec<String> = all
            .http_request(head, body)
            .into_iter()
            .map(|f| format!("{}@{}", f.class, f.location))
            .collect();
        found.sort();
        println!(
            "attacks/crs_requests.tsv\t{n}\t{label}\t{}",
            found.join(",")
        );
    }
    let dlp = sensor(vec![], DlpKind::ALL.to_vec());
    let text = std::fs::read_to_string(format!("{root}/dlp/sample.tsv")).unwrap();
    for (n, line) in text.lines().skip(1).enumerate() {
        let mut f = line.split('\t');
        let (label, payload) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let mut kinds: Vec<String> = dlp
            .value("v", &percent_decode(payload.as_bytes()))
            .into_iter()
            .map(|f| f.class)
            .collect();
        kinds.sort();
        kinds.dedup();
        // The attack classes too: DLP carriers (JSON, SQL, YAML, forms) are benign text.
        for (a, s) in &per_class {
            if !s.value("v", &percent_decode(payload.as_bytes())).is_empty() {
                kinds.push(format!("attack:{a}"));
            }
        }
        println!("dlp/sample.tsv\t{n}\t{label}\t{}", kinds.join(","));
    }
}

/// End of the head (after the blank line), or the whole request.
fn memchr_blank(r: &[u8]) -> usize {
    r.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| r.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(r.len())
}
