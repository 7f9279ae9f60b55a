//! Detection accuracy on the real captures of shared/corpora/pcap against labels.tsv
//! (ground truth: `expected`), without any port hint. The bar: Debian's nDPI 4.2 with
//! port guessing off agrees on 902 of 960 flows.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bulkhead_detect::capture::detect_capture;

fn corpora() -> Option<PathBuf> {
    let candidates = [
        std::env::var("BULKHEAD_CORPORA").ok().map(PathBuf::from),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpora"
        ))),
        Some(PathBuf::from("/work/shared/corpora")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("pcap/labels.tsv").exists());
    if found.is_none() {
        assert!(
            std::env::var("BULKHEAD_REQUIRE_CORPORA").as_deref() != Ok("1"),
            "corpora not found but BULKHEAD_REQUIRE_CORPORA=1"
        );
        eprintln!("skipped: corpora not found");
    }
    found
}

/// nDPI's master protocol -> the name bulkhead prints. Protocols bulkhead does not name
/// must come out as `unknown`; SMTPS is TLS on the wire.
fn ours(expected: &str) -> &'static str {
    let master = expected.split('.').next().unwrap_or("");
    match master {
        "HTTP" => "http",
        "HTTP2" => "http2",
        "gRPC" => "grpc",
        "TLS" | "SMTPS" => "tls",
        "DNS" => "dns",
        "RESP" | "Redis" => "redis",
        "PostgreSQL" => "postgresql",
        "MySQL" => "mysql",
        "MongoDB" => "mongodb",
        "Kafka" => "kafka",
        "LDAP" => "ldap",
        "SSH" => "ssh",
        "MQTT" => "mqtt",
        "AMQP" => "amqp",
        "Memcached" => "memcached",
        "SMTP" => "smtp",
        "ICMP" => "icmp",
        _ => "unknown",
    }
}

#[test]
fn detection_beats_ndpi_without_port_hints() {
    let Some(root) = corpora() else { return };
    let labels = std::fs::read_to_string(root.join("pcap/labels.tsv")).unwrap();
    let mut by_file: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in labels.lines().skip(1) {
        let f: Vec<String> = line.split('\t').map(str::to_string).collect();
        if f.len() < 13 || f[12].is_empty() {
            continue;
        }
        by_file.entry(f[0].clone()).or_default().push(f);
    }
    let (mut total, mut agree, mut ndpi) = (0, 0, 0);
    let mut misses = Vec::new();
    let mut per_proto: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for (file, rows) in &by_file {
        let bytes = std::fs::read(root.join("pcap").join(file)).unwrap();
        let flows = detect_capture(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut got: HashMap<(String, String, String), String> = HashMap::new();
        for f in &flows {
            let strip = |a: &str| a.trim_start_matches('[').replace("]:", ":");
            got.insert(
                (f.l4.clone(), strip(&f.src), strip(&f.dst)),
                f.protocol.clone(),
            );
            got.entry((f.l4.clone(), strip(&f.dst), strip(&f.src)))
                .or_insert(f.protocol.clone());
        }
        for r in rows {
            let (l4, want) = (&r[1], ours(&r[12]));
            let key = if l4 == "ICMP" {
                (l4.clone(), r[2].clone(), r[4].clone())
            } else {
                (
                    l4.clone(),
                    format!("{}:{}", r[2], r[3]),
                    format!("{}:{}", r[4], r[5]),
                )
            };
            let have = got.get(&key).map(String::as_str).unwrap_or("<no flow>");
            total += 1;
            let e = per_proto.entry(want).or_default();
            e.0 += 1;
            if have == want {
                agree += 1;
                e.1 += 1;
            } else {
                misses.push(format!(
                    "{file} {l4} {} -> {}: expected {want} ({}), got {have}",
                    key.1, key.2, r[12]
                ));
            }
            if ours(&r[11]) == want {
                ndpi += 1;
            }
        }
    }
    for m in &misses {
        eprintln!("miss: {m}");
    }
    eprintln!("per protocol (flows, agree): {per_proto:?}");
    eprintln!("bulkhead agrees on {agree}/{total}; nDPI 4.2 without port guessing {ndpi}/{total}");
    assert!(total >= 960, "labels.tsv rows: {total}");
    assert!(
        agree >= 903.max(ndpi + 1),
        "{agree}/{total} does not beat nDPI ({ndpi})"
    );
}
