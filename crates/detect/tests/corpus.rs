//! Detection accuracy on the real captures of shared/corpora/pcap against labels.tsv
//! (ground truth: `expected`), without any port hint. The bar: Debian's nDPI 4.2 with
//! port guessing off agrees on 902 of 960 flows (the corpus README's count).

#[path = "common/corpora.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use bulkhead_detect::capture::{Cut, FlowResult, detect_capture, detect_capture_cut, read_capture};

/// nDPI's master protocol -> the name bulkhead prints. Protocols bulkhead does not name
/// must come out as `unknown`; SMTPS is TLS on the wire.
fn ours(label: &str) -> &'static str {
    match label.split('.').next().unwrap_or("") {
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
        "ICMP" | "ICMPV6" => "icmp",
        _ => "unknown",
    }
}

/// A flow's ends as comparable values: IPv6 written either way (`::25de`, `0:25de`) and
/// with or without brackets is the same address.
type Ends = (String, String, String);

fn ends(l4: &str, a: &str, b: &str) -> Ends {
    let norm = |s: &str| match s.parse::<SocketAddr>() {
        Ok(sa) => sa.to_string(),
        Err(_) => s
            .parse::<IpAddr>()
            .map_or(s.to_string(), |ip| ip.to_string()),
    };
    (l4.to_ascii_uppercase(), norm(a), norm(b))
}

fn joined(ip: &str, port: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port.parse().unwrap_or(0)).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

/// The scored rows of labels.tsv by capture file: rows with both an expected label and
/// an nDPI 4.2 verdict.
struct Labels {
    by_file: BTreeMap<String, Vec<Vec<String>>>,
    l4: usize,
    client: (usize, usize),
    server: (usize, usize),
    ndpi: usize,
    nodguess: usize,
    expected: usize,
    payload_pkts: usize,
}

impl Labels {
    fn read(root: &std::path::Path) -> Labels {
        let text = std::fs::read_to_string(root.join("pcap/labels.tsv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
        assert_eq!(header.first(), Some(&"pcap"));
        let col = |name: &str| {
            header
                .iter()
                .position(|c| *c == name)
                .unwrap_or_else(|| panic!("labels.tsv has no column {name}"))
        };
        let mut l = Labels {
            by_file: BTreeMap::new(),
            l4: col("l4"),
            client: (col("client_ip"), col("client_port")),
            server: (col("server_ip"), col("server_port")),
            ndpi: col("ndpi42_debian"),
            nodguess: col("ndpi42_debian_nodguess"),
            expected: col("expected"),
            payload_pkts: col("payload_pkts"),
        };
        for line in text.lines().skip(1) {
            let f: Vec<String> = line.split('\t').map(str::to_string).collect();
            if f.len() <= l.expected || f[l.expected].is_empty() || f[l.ndpi].is_empty() {
                continue;
            }
            l.by_file.entry(f[0].clone()).or_default().push(f);
        }
        l
    }

    /// A row's flow as detection's results are keyed.
    fn key(&self, r: &[String]) -> Ends {
        let l4 = r[self.l4].as_str();
        let (c, s) = (self.client, self.server);
        if l4.starts_with("ICMP") {
            ends(
                if l4 == "ICMP" { "ICMP" } else { "ICMPv6" },
                &r[c.0],
                &r[s.0],
            )
        } else {
            ends(l4, &joined(&r[c.0], &r[c.1]), &joined(&r[s.0], &r[s.1]))
        }
    }
}

/// Detection's answers by flow; either orientation matches (the labels' client is
/// sometimes the first sender, and mid-connection the client is a guess).
fn answers(flows: &[FlowResult]) -> HashMap<Ends, String> {
    let mut got: HashMap<Ends, String> = HashMap::new();
    for f in flows {
        got.insert(ends(&f.l4, &f.src, &f.dst), f.protocol.clone());
        got.entry(ends(&f.l4, &f.dst, &f.src))
            .or_insert(f.protocol.clone());
    }
    got
}

#[test]
fn detection_beats_ndpi_without_port_hints() {
    let Some(root) = common::corpora() else {
        return;
    };
    let labels = Labels::read(&root);
    let (mut total, mut agree, mut ndpi) = (0, 0, 0);
    let mut misses = Vec::new();
    let mut per_proto: BTreeMap<&str, [u32; 3]> = BTreeMap::new();
    for (file, rows) in &labels.by_file {
        let bytes = std::fs::read(root.join("pcap").join(file)).unwrap();
        let flows = detect_capture(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = answers(&flows);
        for r in rows {
            let l4 = r[labels.l4].as_str();
            let want = ours(&r[labels.expected]);
            let key = labels.key(r);
            let have = got.get(&key).map(String::as_str).unwrap_or("<no flow>");
            total += 1;
            let e = per_proto.entry(want).or_default();
            e[0] += 1;
            if have == want {
                agree += 1;
                e[1] += 1;
            } else {
                misses.push(format!(
                    "{file} {l4} {} -> {}: expected {want} ({}), got {have}",
                    key.1, key.2, r[labels.expected]
                ));
            }
            if ours(&r[labels.nodguess]) == want {
                ndpi += 1;
                e[2] += 1;
            }
        }
    }
    for m in &misses {
        eprintln!("miss: {m}");
    }
    eprintln!("per protocol: flows, bulkhead agrees, nDPI 4.2 without port guessing agrees");
    for (p, [n, ours, theirs]) in &per_proto {
        eprintln!("  {p:<12} {n:>4} {ours:>4} {theirs:>4}");
    }
    eprintln!(
        "bulkhead agrees on {agree}/{total}; nDPI 4.2 without port guessing, mapped the same way: {ndpi}/{total}"
    );
    assert_eq!(total, 960, "scored labels.tsv rows");
    assert!(
        agree >= 902 && agree > ndpi,
        "{agree}/{total} does not beat nDPI ({ndpi})"
    );
    // And no flow lost since it was measured (docs/BENCHMARKS.md: the 10 misses are
    // listed there); a change that costs one fails here, not in a later count.
    assert!(agree >= 950, "{agree}/{total}: fewer than the 950 measured");
}

/// Captures that begin mid-connection, that lost packets, or that kept only the first
/// bytes of each packet: every TCP flow of the corpus cut after its handshake and its
/// first `k` data segments, or with its handshake kept and its first `k` data segments
/// lost, or every packet cut to a snap length, scored on the flows that have bytes left. What is left may be undecidable (encrypted SSH, the middle of a gzip
/// body, one COM_QUIT), so the bar is what was measured (docs/BENCHMARKS.md, "Detection
/// mid-connection"), not all of them.
#[test]
fn detection_mid_connection() {
    let Some(root) = common::corpora() else {
        return;
    };
    let labels = Labels::read(&root);
    // (handshake cut, segments cut, snap length, flows agreeing at least, of)
    let floors = [
        (true, 0, None, 911, 914),
        (true, 1, None, 95, 105),
        (true, 2, None, 41, 52),
        (true, 3, None, 37, 45),
        (true, 5, None, 33, 39),
        (false, 1, None, 95, 105),
        (false, 2, None, 43, 52),
        (false, 3, None, 37, 45),
        (false, 0, Some(96), 891, 914),
        (false, 0, Some(200), 907, 914),
    ];
    let mut short = Vec::new();
    for (handshake, k, snap, floor, of) in floors {
        let cut = Cut {
            handshake,
            segments: k,
            snap,
        };
        let (mut total, mut agree) = (0, 0);
        for (file, rows) in &labels.by_file {
            let rows: Vec<_> = rows
                .iter()
                .filter(|r| r[labels.l4] == "TCP")
                .filter(|r| r[labels.payload_pkts].parse::<usize>().unwrap_or(0) > k)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let bytes = std::fs::read(root.join("pcap").join(file)).unwrap();
            let flows = detect_capture_cut(&bytes, cut).unwrap_or_else(|e| panic!("{file}: {e}"));
            let got = answers(&flows);
            for r in rows {
                let want = ours(&r[labels.expected]);
                let key = labels.key(r);
                let have = got.get(&key).map(String::as_str).unwrap_or("<no flow>");
                total += 1;
                if have == want {
                    agree += 1;
                } else {
                    eprintln!(
                        "{cut:?}: {file} {} -> {}: expected {want}, got {have}",
                        key.1, key.2
                    );
                }
            }
        }
        eprintln!("{cut:?}: {agree}/{total}");
        if total != of || agree < floor {
            short.push(format!("{cut:?}: {agree}/{total}, measured {floor}/{of}"));
        }
    }
    assert!(short.is_empty(), "{short:#?}");
}

/// Where each record of a capture starts and ends: the packet records of a pcap file
/// (after its 24-byte header), the blocks of a pcapng one. Its own walk, so that the
/// reader is checked against the format, not against itself.
fn records(b: &[u8]) -> Vec<(usize, usize)> {
    let u32_at = |at: usize, big: bool| {
        let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
        (if big {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }) as usize
    };
    let mut out = Vec::new();
    if b.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        // The section header's byte-order magic says how lengths are written.
        let big = b[8..12] == [0x1a, 0x2b, 0x3c, 0x4d];
        let mut at = 0;
        while at + 8 <= b.len() {
            let len = u32_at(at + 4, big);
            out.push((at, at + len));
            at += len;
        }
    } else {
        let big = pcap_big_endian(b);
        let mut at = 24;
        while at + 16 <= b.len() {
            let end = at + 16 + u32_at(at + 8, big);
            out.push((at, end));
            at = end;
        }
    }
    out
}

/// A pcap file's magic in big-endian order (microsecond or nanosecond timestamps).
fn pcap_big_endian(b: &[u8]) -> bool {
    matches!(b[..4], [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d])
}

/// A capture cut short in the middle of its last record (a `tcpdump` stopped hard, a
/// file still being written) still gives the flows of the packets before it, and says
/// that it was cut: as Wireshark reads it, where it used to be an error. Every capture
/// of the corpus, cut one byte short and in the middle of its last record.
#[test]
fn a_capture_cut_short_keeps_the_flows_before_the_cut() {
    let Some(root) = common::corpora() else {
        return;
    };
    let mut checked = 0;
    for (file, bytes) in common::captures(&root) {
        let recs = records(&bytes);
        let &(last, end) = recs.last().unwrap();
        assert_eq!(end, bytes.len(), "{file}: the walk of its records");
        let whole = read_capture(&bytes[..last]).unwrap();
        assert!(whole.damage.is_none(), "{file}: {:?}", whole.damage);
        for cut in [bytes.len() - 1, last + (end - last) / 2] {
            let c = read_capture(&bytes[..cut]).unwrap_or_else(|e| panic!("{file}: {e}"));
            let damage = c.damage.unwrap_or_default();
            assert!(
                damage.contains("cut short"),
                "{file} cut at {cut}: {damage:?}"
            );
            assert_eq!(flows(&c.flows), flows(&whole.flows), "{file} cut at {cut}");
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked} captures");
}

/// Gzip'd captures (`.pcap.gz`, `.pcapng.gz`, as Wireshark opens them) give the flows
/// of the capture inside; one cut short gives those before the cut and says why.
#[test]
fn gzipped_captures_are_read() {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let Some(root) = common::corpora() else {
        return;
    };
    let mut checked = 0;
    for (file, bytes) in common::captures(&root) {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(&bytes).unwrap();
        let z = e.finish().unwrap();
        let c = read_capture(&z).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(c.damage.is_none(), "{file}: {:?}", c.damage);
        assert_eq!(
            flows(&c.flows),
            flows(&detect_capture(&bytes).unwrap()),
            "{file}"
        );
        let cut = read_capture(&z[..z.len() - 9]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let why = cut.damage.unwrap_or_default();
        assert!(why.starts_with("gzip stream stopped"), "{file}: {why}");
        checked += 1;
    }
    assert!(checked >= 40, "{checked} captures");
}

/// Records longer than the length they claim the packet had on the wire (some tools
/// write that; Wireshark reads them) are read as captured, not refused.
#[test]
fn records_longer_than_their_wire_length_are_read() {
    let Some(root) = common::corpora() else {
        return;
    };
    let mut checked = 0;
    for (file, bytes) in common::captures(&root) {
        if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            continue;
        }
        let big = pcap_big_endian(&bytes);
        let mut edited = bytes.clone();
        for (at, end) in records(&bytes) {
            let shorter = (end - at - 16).saturating_sub(1) as u32;
            let w = if big {
                shorter.to_be_bytes()
            } else {
                shorter.to_le_bytes()
            };
            edited[at + 12..at + 16].copy_from_slice(&w);
        }
        let c = read_capture(&edited).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(c.damage.is_none(), "{file}: {:?}", c.damage);
        assert_eq!(
            flows(&c.flows),
            flows(&detect_capture(&bytes).unwrap()),
            "{file}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked} pcap files");
}

/// Flows as comparable text.
fn flows(f: &[FlowResult]) -> Vec<String> {
    f.iter()
        .map(|f| serde_json::to_string(f).unwrap())
        .collect()
}

#[path = "common/edit.rs"]
mod edit;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// The corpus's captures (pcap and pcapng, Ethernet, cooked and raw links), damaged a
    /// few times each, read whole and cut: a bad file is an error or fewer flows, never
    /// a panic. Random bytes never get past the file header; edits of real files reach
    /// the block and packet parsers and the per-flow detectors.
    #[test]
    fn damaged_captures_never_panic(k in 0usize..64,
                                    edits in proptest::collection::vec(edit::edit(), 1..8),
                                    handshake in proptest::bool::ANY, segments in 0usize..6,
                                    snap in proptest::option::of(14usize..300)) {
        let Some(root) = common::corpora() else { return Ok(()) };
        // The small captures (most of the corpus): the edits land in every part of them.
        let files: Vec<(String, Vec<u8>)> = common::captures(&root)
            .into_iter()
            .filter(|(_, b)| b.len() < 64 * 1024)
            .collect();
        let (_, bytes) = &files[k % files.len()];
        let mut bytes = bytes.clone();
        for e in &edits {
            edit::apply(&mut bytes, e);
        }
        let _ = detect_capture(&bytes);
        // And read as if it had started later, lost packets or kept only their heads
        // (the gap handling's paths).
        let _ = detect_capture_cut(&bytes, Cut { handshake, segments, snap });
    }
}
