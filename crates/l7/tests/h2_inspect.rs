//! HTTP/2 sessions with sensors: an allowed request's head is inspected before it is
//! forwarded, its body before the DATA frame (or trailers) that ends it is; a blocking
//! finding refuses the stream (403, or gRPC's PERMISSION_DENIED) and the server never
//! gets the end of it. Alert findings pass and are reported. The same result however
//! the streams are split.
//!
//! The inspector here finds a marker in the head or the body it is given: the session's
//! handling is under test, not detection (bulkhead-sensor has its own tests, and
//! `crates/cli/tests/l7_h2_sensors.rs` runs the real sensors between curl and nginx).

mod common;

use std::sync::Arc;

use bulkhead_l7::h2::{PREFACE, frame};
use bulkhead_l7::{Finding, H2Session, Inspector, Output, Session, StreamInspector, Verdict};
use bulkhead_policy::l7::L7Request;
use common::pieces;
use proptest::prelude::*;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// Finds `EVIL` in the head or the body (as the sensors name locations).
struct Marker {
    block: bool,
}

impl Inspector for Marker {
    fn http_request(&self, head: &[u8], body: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        for (loc, hay) in [("head", head), ("body", body)] {
            if hay.windows(4).any(|w| w == b"EVIL") {
                out.push(Finding {
                    sensor: "waf".into(),
                    class: "marker".into(),
                    location: loc.into(),
                    masked: "EVIL".into(),
                    block: self.block,
                });
            }
        }
        out
    }
    fn sql(&self, _: &[u8]) -> Vec<Finding> {
        Vec::new()
    }
    /// `secret` in a response head (lower case: as a header value is spelt below).
    fn response_head(&self, head: &[u8]) -> Vec<Finding> {
        if !head.windows(6).any(|w| w == b"secret") {
            return Vec::new();
        }
        vec![Finding {
            sensor: "dlp".into(),
            class: "secret".into(),
            location: "response head".into(),
            masked: "se****".into(),
            block: self.block,
        }]
    }
    fn stream(&self, _: bool) -> Box<dyn StreamInspector> {
        Box::new(Acc(Vec::new(), self.block))
    }
}

/// A response scanner that finds `SECRET` in all it was fed so far (so across frames).
struct Acc(Vec<u8>, bool);

impl StreamInspector for Acc {
    fn feed(&mut self, data: &[u8]) -> Vec<Finding> {
        let before = self.0.windows(6).any(|w| w == b"SECRET");
        self.0.extend_from_slice(data);
        if !before && self.0.windows(6).any(|w| w == b"SECRET") {
            vec![Finding {
                sensor: "dlp".into(),
                class: "secret".into(),
                location: "response body".into(),
                masked: "SE****".into(),
                block: self.1,
            }]
        } else {
            Vec::new()
        }
    }
}

fn allow(_: &L7Request) -> Verdict {
    Verdict { allowed: true }
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn fields(method: &str, path: &str, extra: &[(&str, &str)]) -> Fields {
    [
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "api:8080"),
    ]
    .iter()
    .chain(extra)
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn block(e: &mut loona_hpack::Encoder<'static>, f: &Fields) -> Vec<u8> {
    e.encode(f.iter().map(|(n, v)| (&n[..], &v[..])))
}

fn run(block: bool, client: &[u8], cuts: &[usize]) -> Output {
    let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block })));
    let mut all = Output::default();
    all.merge(s.server_bytes(&frame(SETTINGS, 0, 0, &[])));
    for p in pieces(client, cuts) {
        all.merge(s.client_bytes(&p, &mut allow));
    }
    all
}

/// The frames of one side's bytes (the client's preface left out).
fn frames(b: &[u8]) -> common::Frames {
    common::frames(b.strip_prefix(PREFACE).unwrap_or(b))
}

/// (kind, stream) of every frame, in order.
fn kinds(b: &[u8]) -> Vec<(u8, u32)> {
    frames(b).iter().map(|f| (f.0, f.2)).collect()
}

fn status(b: &[u8], stream: u32) -> Option<Vec<u8>> {
    let mut d = loona_hpack::Decoder::new();
    frames(b).iter().filter(|f| f.0 == HEADERS).find_map(|f| {
        let fields = d.decode(&f.3).expect("decodes");
        (f.2 == stream).then(|| {
            fields
                .into_iter()
                .find(|(n, _)| n == b":status" || n == b"grpc-status")
                .map(|(_, v)| v)
        })?
    })
}

/// Stream 1: a GET with the marker in its query; stream 3: a clean GET.
fn marked_get() -> Vec<u8> {
    let mut e = loona_hpack::Encoder::new();
    let b1 = block(&mut e, &fields("GET", "/search?q=EVIL", &[]));
    let b3 = block(&mut e, &fields("GET", "/search?q=ok", &[]));
    [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_STREAM | END_HEADERS, 1, &b1),
        frame(HEADERS, END_STREAM | END_HEADERS, 3, &b3),
    ]
    .concat()
}

/// Streams 1 and 3: `GET /a` and `GET /b`, each with the `extra` fields, the second
/// block referring to the dynamic table entries the first made.
fn two_gets(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut e = loona_hpack::Encoder::new();
    let b1 = block(&mut e, &fields("GET", "/a", extra));
    let b3 = block(&mut e, &fields("GET", "/b", extra));
    [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_STREAM | END_HEADERS, 1, &b1),
        frame(HEADERS, END_STREAM | END_HEADERS, 3, &b3),
    ]
    .concat()
}

/// Stream 1: a POST whose body (in `parts`, the last one ending the stream) is judged.
fn post(parts: &[&[u8]], ct: &str) -> Vec<u8> {
    let mut e = loona_hpack::Encoder::new();
    let b1 = block(&mut e, &fields("POST", "/login", &[("content-type", ct)]));
    let mut c = vec![
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &b1),
    ];
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        c.push(frame(DATA, if last { END_STREAM } else { 0 }, 1, p));
    }
    c.concat()
}

#[test]
fn a_marked_head_is_refused_before_it_reaches_the_server() {
    let out = run(true, &marked_get(), &[]);
    assert!(!out.close);
    // Only stream 3's request reached the server; stream 1 got 403.
    assert_eq!(kinds(&out.to_server), [(SETTINGS, 0), (HEADERS, 3)]);
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
    assert_eq!(out.decided.len(), 2);
    assert!(!out.decided[0].allowed);
    assert_eq!(
        out.decided[0].refusal.as_deref(),
        Some("403 Forbidden (blocked by a sensor)")
    );
    assert_eq!(out.decided[0].findings[0].location, "head");
    assert!(out.decided[1].allowed && out.decided[1].findings.is_empty());
    // Alert: both pass, the finding is reported.
    let out = run(false, &marked_get(), &[]);
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (HEADERS, 3)]
    );
    assert!(out.decided[0].allowed && out.decided[0].findings.len() == 1);
}

#[test]
fn a_marked_body_never_reaches_the_server_and_its_stream_is_cancelled() {
    let out = run(
        true,
        &post(&[b"user=EVIL"], "application/x-www-form-urlencoded"),
        &[],
    );
    assert!(!out.close);
    // The server has the request's head, then a reset: not one byte of the body.
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (RST_STREAM, 1)]
    );
    assert_eq!(frames(&out.to_server)[2].3, 8u32.to_be_bytes());
    // The client: its connection window back, and the refusal.
    assert_eq!(
        kinds(&out.to_client),
        [(SETTINGS, 0), (WINDOW_UPDATE, 0), (HEADERS, 1)]
    );
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
    // Decided once, on head and body.
    assert_eq!(out.decided.len(), 1);
    assert!(!out.decided[0].allowed);
    assert_eq!(out.decided[0].findings[0].location, "body");
}

#[test]
fn a_clean_body_passes_and_a_marker_across_frames_is_found() {
    let out = run(true, &post(&[b"user=bo", b"b"], "text/plain"), &[]);
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (DATA, 1), (DATA, 1)]
    );
    assert_eq!(out.decided.len(), 1);
    // Split across frames: the first passed, the one that ends the stream did not.
    let out = run(true, &post(&[b"x=EV", b"IL"], "text/plain"), &[]);
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (DATA, 1), (RST_STREAM, 1)]
    );
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
}

#[test]
fn trailers_that_end_a_marked_body_are_not_forwarded() {
    let mut e = loona_hpack::Encoder::new();
    let head = fields(
        "POST",
        "/pkg.Greeter/SayHello",
        &[("content-type", "application/grpc"), ("te", "trailers")],
    );
    let b1 = block(&mut e, &head);
    let tr = block(&mut e, &vec![(b"x-checksum".to_vec(), b"1".to_vec())]);
    let client = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &b1),
        frame(DATA, 0, 1, b"\0\0\0\0\x06\x0a\x04EVIL"),
        frame(HEADERS, END_STREAM | END_HEADERS, 1, &tr),
    ]
    .concat();
    let out = run(true, &client, &[]);
    assert!(!out.close);
    // The message is judged once whole: the frame that completes it never passes.
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (RST_STREAM, 1)]
    );
    // gRPC's own refusal: PERMISSION_DENIED.
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"200"[..]));
    let client_frames = frames(&out.to_client);
    let h = client_frames.iter().find(|f| f.0 == HEADERS).unwrap();
    let fields = loona_hpack::Decoder::new().decode(&h.3).unwrap();
    assert!(fields.contains(&(b"grpc-status".to_vec(), b"7".to_vec())));
    assert!(fields.contains(&(
        b"grpc-message".to_vec(),
        b"bulkhead: pkg.Greeter/SayHello was blocked by a sensor".to_vec()
    )));
    assert_eq!(
        out.decided[0].refusal.as_deref(),
        Some("grpc-status 7 PERMISSION_DENIED (blocked by a sensor)")
    );
}

/// A session that has seen a POST up to the DATA frame that would end it (`EVIL`), and
/// that frame.
fn all_but_the_last_frame() -> (H2Session, Output, Vec<u8>) {
    let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block: true })));
    let c = post(&[b"x=1", b"EVIL"], "text/plain");
    let last = c.len() - (9 + 4);
    let mut out = s.server_bytes(&frame(SETTINGS, 0, 0, &[]));
    out.merge(s.client_bytes(&c[..last], &mut allow));
    (s, out, c[last..].to_vec())
}

#[test]
fn a_refusal_after_the_server_began_to_answer_is_a_reset() {
    let (mut s, mut out, last) = all_but_the_last_frame();
    // The server answers early (before the request ended).
    let mut se = loona_hpack::Encoder::new();
    let rh = block(&mut se, &vec![(b":status".to_vec(), b"200".to_vec())]);
    out.merge(s.server_bytes(&frame(HEADERS, END_HEADERS, 1, &rh)));
    out.merge(s.client_bytes(&last, &mut allow));
    let to_client = kinds(&out.to_client);
    assert_eq!(to_client.last(), Some(&(RST_STREAM, 1)));
    assert_eq!(to_client.iter().filter(|k| k.0 == HEADERS).count(), 1);
}

/// A stream the server resets is no longer read (the table of streams whose bodies are
/// read does not fill up with them): its request is decided then, on its head.
#[test]
fn a_stream_the_server_resets_is_decided_then() {
    let (mut s, mut out, last) = all_but_the_last_frame();
    assert!(out.decided.is_empty());
    out.merge(s.server_bytes(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 8])));
    assert_eq!(out.decided.len(), 1);
    assert!(out.decided[0].allowed);
    // What the client still sends on it passes as on any stream the proxy does not read.
    out.merge(s.client_bytes(&last, &mut allow));
    assert_eq!(kinds(&out.to_server).last(), Some(&(DATA, 1)));
}

/// With sensors on, a request's `accept-encoding` is not passed on (the server answers
/// uncompressed, which the response scanner reads), and the server's HPACK view stays
/// in sync: the later blocks are re-encoded.
#[test]
fn accept_encoding_is_dropped_and_the_table_stays_in_sync() {
    let client = two_gets(&[("accept-encoding", "gzip, br")]);
    let out = run(true, &client, &[]);
    let mut d = loona_hpack::Decoder::new();
    let seen: Vec<Fields> = frames(&out.to_server)
        .iter()
        .filter(|f| f.0 == HEADERS)
        .map(|f| d.decode(&f.3).expect("the server decodes every block"))
        .collect();
    assert_eq!(seen.len(), 2);
    for (s, path) in seen.iter().zip(["/a", "/b"]) {
        assert!(s.contains(&(b":path".to_vec(), path.as_bytes().to_vec())));
        assert!(!s.iter().any(|(n, _)| n == b"accept-encoding"), "{s:?}");
    }
}

/// A sensor that refuses what it cannot read whole (`oversize: Block`): a body longer
/// than is kept (64 KiB) is refused before the frame that ends it reaches the server.
#[test]
fn an_oversized_body_is_refused_when_the_sensor_says_so() {
    let chunk = vec![b'a'; 16 * 1024];
    for (parts, refused) in [(5, true), (3, false)] {
        let body: Vec<&[u8]> = (0..parts).map(|_| &chunk[..]).collect();
        let mut s = H2Session::new().with_inspector(Some(Arc::new(common::Whole)));
        let mut out = s.server_bytes(&frame(SETTINGS, 0, 0, &[]));
        out.merge(s.client_bytes(&post(&body, "text/plain"), &mut allow));
        let last = kinds(&out.to_server).last().copied();
        if refused {
            assert_eq!(last, Some((RST_STREAM, 1)));
            assert_eq!(out.decided[0].findings[0].class, "oversize");
        } else {
            assert_eq!(last, Some((DATA, 1)));
            assert!(out.decided[0].allowed);
        }
    }
}

/// Response bodies are scanned stream by stream on their DATA payloads: a secret split
/// across two frames of one stream, with another stream's frame between them, is found,
/// and with a blocking sensor the frame that completes it is never written.
#[test]
fn response_bodies_are_scanned_per_stream_across_frames() {
    let client = two_gets(&[]);
    let mut se = loona_hpack::Encoder::new();
    let rh = block(&mut se, &vec![(b":status".to_vec(), b"200".to_vec())]);
    let rh3 = block(&mut se, &vec![(b":status".to_vec(), b"200".to_vec())]);
    let server = [
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &rh),
        frame(HEADERS, END_HEADERS, 3, &rh3),
        frame(DATA, 0, 1, b"token: SEC"),
        frame(DATA, END_STREAM, 3, b"RET is not here"),
        frame(DATA, END_STREAM, 1, b"RET!"),
    ]
    .concat();
    for block in [false, true] {
        let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block })));
        let mut out = Output::default();
        for p in client.chunks(7) {
            out.merge(s.client_bytes(p, &mut allow));
        }
        for p in server.chunks(5) {
            out.merge(s.server_bytes(p));
            if out.close {
                break;
            }
        }
        assert_eq!(out.findings.len(), 1, "block {block}: {:?}", out.findings);
        assert_eq!(out.findings[0].location, "response body");
        let to_client = String::from_utf8_lossy(&out.to_client).into_owned();
        assert_eq!(out.close, block);
        assert_eq!(to_client.contains("RET!"), !block);
        // Stream 3's frame between them is no part of stream 1's body: it passes.
        assert!(to_client.contains("RET is not here"), "block {block}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_split_gives_the_same_result(cuts in proptest::collection::vec(1usize..40, 0..30),
                                      block in any::<bool>(), which in 0usize..4) {
        let client = match which {
            0 => marked_get(),
            1 => post(&[b"user=EVIL"], "application/x-www-form-urlencoded"),
            2 => post(&[b"x=EV", b"IL"], "text/plain"),
            _ => post(&[b"user=bo", b"b"], "text/plain"),
        };
        let whole = run(block, &client, &[]);
        let split = run(block, &client, &cuts);
        prop_assert_eq!(whole, split);
    }

    /// Corrupted frames (lengths, flags such as PADDED on a held frame, stream ids)
    /// never panic, whichever byte is hit and however the bytes arrive.
    #[test]
    fn corrupted_conversations_never_panic(i in 0usize..400, v: u8,
                                          cuts in proptest::collection::vec(1usize..40, 0..10),
                                          which in 0usize..3) {
        let mut client = match which {
            0 => post(&[b"user=EVIL"], "application/x-www-form-urlencoded"),
            1 => post(&[b"x=EV", b"IL"], "text/plain"),
            _ => marked_get(),
        };
        let n = client.len();
        client[i % n] = v;
        let _ = run(true, &client, &cuts);
        let _ = run(false, &client, &cuts);
    }
}

/// `text` Huffman-coded as HPACK codes it (RFC 7541 Appendix B), for the few
/// characters used here: servers send header values so when it is shorter, and then
/// the value is not in the bytes.
fn huffman(text: &str) -> Vec<u8> {
    let code = |c: char| -> (u32, u32) {
        match c {
            'c' => (0b00100, 5),
            'e' => (0b00101, 5),
            's' => (0b01000, 5),
            't' => (0b01001, 5),
            'r' => (0b101100, 6),
            other => panic!("no code for {other:?} here"),
        }
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0u32);
    for c in text.chars() {
        let (v, n) = code(c);
        acc = (acc << n) | u64::from(v);
        bits += n;
        while bits >= 8 {
            out.push((acc >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    if bits > 0 {
        // Padded with the most significant bits of EOS (all ones).
        out.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
    }
    out
}

/// A response header block: `:status 200`, then `x-token` with a Huffman-coded value.
fn token_response(value: &str) -> Vec<u8> {
    let coded = huffman(value);
    let mut b = vec![0x88, 0x00, 7];
    b.extend_from_slice(b"x-token");
    b.push(0x80 | coded.len() as u8);
    b.extend_from_slice(&coded);
    b
}

fn answered(block: bool, server: &[u8], cut: usize) -> Output {
    let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block })));
    let mut out = Output::default();
    for p in marked_free_get().chunks(7) {
        out.merge(s.client_bytes(p, &mut allow));
    }
    for p in server.chunks(cut) {
        out.merge(s.server_bytes(p));
        if out.close {
            break;
        }
    }
    out
}

/// Stream 1: a clean GET.
fn marked_free_get() -> Vec<u8> {
    let mut e = loona_hpack::Encoder::new();
    let b = block(&mut e, &fields("GET", "/status", &[]));
    [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &b),
    ]
    .concat()
}

/// A response header is read decoded (its value Huffman-coded, so not in the bytes):
/// a finding in it is reported, and with a blocking sensor no frame of the block
/// reaches the client. Header blocks in several frames (CONTINUATION) too, however the
/// bytes arrive.
#[test]
fn response_headers_are_read_decoded_before_they_pass() {
    let rh = token_response("secret");
    let mut d = loona_hpack::Decoder::new();
    assert_eq!(d.decode(&rh).unwrap()[1].1, b"secret", "the coding above");
    assert!(!rh.windows(6).any(|w| w == b"secret"));
    let whole = [
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &rh),
        frame(DATA, END_STREAM, 1, b"ok"),
    ]
    .concat();
    let continued = [
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, 0, 1, &rh[..5]),
        frame(9, END_HEADERS, 1, &rh[5..]),
        frame(DATA, END_STREAM, 1, b"ok"),
    ]
    .concat();
    for server in [&whole, &continued] {
        for cut in [1, 4, 9, 100] {
            for block in [false, true] {
                let out = answered(block, server, cut);
                assert_eq!(
                    out.findings.len(),
                    1,
                    "cut {cut} block {block}: {:?}",
                    out.findings
                );
                assert_eq!(out.findings[0].location, "response head");
                assert_eq!(out.close, block);
                let headers = kinds(&out.to_client).contains(&(HEADERS, 1));
                assert_eq!(
                    headers, !block,
                    "cut {cut}: the block passes unless blocked"
                );
                if !block {
                    // Passed byte for byte.
                    assert!(out.to_client.ends_with(&server[9..]), "cut {cut}");
                }
            }
        }
    }
    // A clean response passes, nothing reported.
    let clean = [
        frame(SETTINGS, 0, 0, &[]),
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &token_response("stet"),
        ),
    ]
    .concat();
    let out = answered(true, &clean, 3);
    assert!(out.findings.is_empty() && !out.close);
    assert!(out.to_client.ends_with(&clean[9..]));
}

/// A compressed response body (`content-encoding: gzip`) is read inflated, across frames.
#[test]
fn compressed_response_bodies_are_read_inflated() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"token\": \"SECRET\"}").unwrap();
    let body = gz.finish().unwrap();
    assert!(!body.windows(6).any(|w| w == b"SECRET"));
    let mut e = loona_hpack::Encoder::new();
    let rh = e.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-encoding", b"gzip"),
    ]);
    // Plain, and padded as nghttpd's `--padding` sends it: the padding is no part of
    // what is inflated (before, it broke the inflation and the body was read as sent).
    for pad in [None, Some(5)] {
        let data = |flags: u8, d: &[u8]| match pad {
            Some(p) => padded(flags, 1, d, p),
            None => frame(DATA, flags, 1, d),
        };
        let server = [
            frame(SETTINGS, 0, 0, &[]),
            frame(HEADERS, END_HEADERS, 1, &rh),
            data(0, &body[..10]),
            data(END_STREAM, &body[10..]),
        ]
        .concat();
        for cut in [1, 7, 1000] {
            let out = answered(false, &server, cut);
            assert_eq!(
                out.findings.len(),
                1,
                "cut {cut} pad {pad:?}: {:?}",
                out.findings
            );
            assert_eq!(out.findings[0].location, "response body");
            assert!(out.to_client.ends_with(&server[9..]), "passed as sent");
        }
    }
}

proptest! {
    /// Server bytes the sensors read (header blocks held and decoded, bodies inflated)
    /// never panic: corrupted frames (padding, lengths, flags) or arbitrary bytes.
    #[test]
    fn corrupted_responses_never_panic(i in 0usize..200, v: u8, cut in 1usize..40,
                                       noise in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut e = loona_hpack::Encoder::new();
        let rh = e.encode([(&b":status"[..], &b"200"[..]), (b"content-encoding", b"gzip")]);
        let mut server = [
            frame(SETTINGS, 0, 0, &[]),
            frame(HEADERS, 0x8 | 0x20, 1, &[&[3u8][..], &[0, 0, 0, 3, 16], &rh, &[0, 0, 0]].concat()),
            frame(DATA, 0, 1, b"\x1f\x8b\x08\x00not gzip"),
            frame(5, END_HEADERS, 1, &[&[0u8, 0, 0, 2][..], &token_response("secret")].concat()),
        ]
        .concat();
        let n = server.len();
        server[i % n] ^= v;
        server.extend_from_slice(&noise);
        for block in [false, true] {
            let _ = answered(block, &server, cut);
        }
    }
}

/// Refuses a request a form's `_method` field names DELETE (as policy reads it: the
/// field is among the request's headers), allows anything else.
fn no_delete(r: &L7Request) -> Verdict {
    let bulkhead_policy::l7::L7Detail::Http { headers, .. } = &r.detail else {
        return Verdict { allowed: true };
    };
    let delete = headers
        .iter()
        .any(|(n, v)| n == "_method" && v.eq_ignore_ascii_case("delete"));
    Verdict { allowed: !delete }
}

/// Without any sensor: the session, a POST form in `parts`, cut at `cuts`.
fn run_form(parts: &[&[u8]], ct: &str, cuts: &[usize]) -> Output {
    let mut s = H2Session::new();
    let mut all = Output::default();
    all.merge(s.server_bytes(&frame(SETTINGS, 0, 0, &[])));
    for p in pieces(&post(parts, ct), cuts) {
        all.merge(s.client_bytes(&p, &mut no_delete));
    }
    all
}

/// A POST form's `_method` field is decided on before the frame that ends its body
/// reaches the server, as over HTTP/1: Rails, Laravel and Symfony run such a form as
/// that method, so `methods: [GET, POST]` must not let a DELETE through in a form.
#[test]
fn a_forms_method_field_is_decided_before_its_body_ends() {
    const FORM: &str = "application/x-www-form-urlencoded";
    for cuts in [&[][..], &[20, 50, 61, 75]] {
        let out = run_form(&[b"id=7&_method=DELETE"], FORM, cuts);
        assert_eq!(
            kinds(&out.to_server),
            [(SETTINGS, 0), (HEADERS, 1), (RST_STREAM, 1)]
        );
        assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
        assert_eq!(out.decided.len(), 1);
        assert!(!out.decided[0].allowed);
        assert_eq!(out.decided[0].refusal.as_deref(), Some("403 Forbidden"));
        assert!(
            out.decided[0]
                .request
                .to_string()
                .contains("_method=DELETE")
        );
    }
    // Another method passes, with the field in its request; so does a body that is no
    // form, whatever it says.
    let out = run_form(&[b"id=7&_method=patch"], FORM, &[]);
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (DATA, 1)]
    );
    assert!(out.decided[0].allowed);
    assert!(out.decided[0].request.to_string().contains("_method=patch"));
    let out = run_form(&[b"_method=DELETE"], "text/plain", &[]);
    assert_eq!(
        kinds(&out.to_server),
        [(SETTINGS, 0), (HEADERS, 1), (DATA, 1)]
    );
    // Multipart, and a field past the 64 KiB the session keeps (read as it passes).
    let multipart =
        b"--B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\ndelete\r\n--B--\r\n";
    let out = run_form(&[multipart], "multipart/form-data; boundary=B", &[]);
    assert!(!out.decided[0].allowed);
    let pad = vec![b'a'; 70 * 1024];
    let long = [&b"pad="[..], &pad, &b"&_method=DELETE"[..]].concat();
    let chunks: Vec<&[u8]> = long.chunks(16_000).collect();
    let out = run_form(&chunks, FORM, &[]);
    assert!(!out.decided[0].allowed, "{:?}", out.decided);
    assert_eq!(kinds(&out.to_server).last(), Some(&(RST_STREAM, 1)));
}

/// A server may allow DATA frames up to 16 MiB (Go's net/http offers 1 MiB): a body
/// sent in one frame larger than the session holds (64 KiB) still never reaches the
/// server as a whole request before it is judged. Its bytes go on in a frame that no
/// longer ends the stream, the end follows in an empty frame once nothing refuses it;
/// a refused one gets the refusal, not a reset, and the server a cancelled stream.
#[test]
fn a_final_frame_too_large_to_hold_ends_the_stream_only_once_judged() {
    let big = |tail: &[u8]| [&vec![b'a'; 70 * 1024][..], tail].concat();
    const FORM: &str = "application/x-www-form-urlencoded";
    // (body, judged by the marker sensor (true) or by the `_method` rule, refused?)
    let cases: [(Vec<u8>, bool, bool); 4] = [
        ([&b"x=EVIL&y="[..], &big(b"")].concat(), true, true),
        ([&b"x=ok&y="[..], &big(b"")].concat(), true, false),
        ([&b"y="[..], &big(b"&_method=DELETE")].concat(), false, true),
        ([&b"y="[..], &big(b"&_method=PATCH")].concat(), false, false),
    ];
    for (body, by_sensor, refused) in cases {
        for cuts in [&[][..], &[70, 300, 9_000, 40_000, 71_000]] {
            let out = if by_sensor {
                run(true, &post(&[&body], FORM), cuts)
            } else {
                run_form(&[&body], FORM, cuts)
            };
            let f = frames(&out.to_server);
            // The body's bytes, unchanged, in a DATA frame that does not end the stream.
            assert_eq!((f[2].0, f[2].1, f[2].3.len()), (DATA, 0, body.len()));
            assert!(f[2].3 == body, "the body's bytes changed");
            assert_eq!(out.decided.len(), 1);
            if refused {
                assert_eq!(kinds(&out.to_server)[3..], [(RST_STREAM, 1)]);
                assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
                assert!(!out.decided[0].allowed);
            } else {
                assert_eq!(f.len(), 4);
                assert_eq!(
                    (f[3].0, f[3].1, f[3].2, f[3].3.len()),
                    (DATA, END_STREAM, 1, 0)
                );
                assert!(out.decided[0].allowed);
                assert!(status(&out.to_client, 1).is_none());
            }
        }
    }
}

/// A DATA frame padded with `pad` zeros (its pad length first; RFC 9113 6.1).
fn padded(flags: u8, stream: u32, data: &[u8], pad: u8) -> Vec<u8> {
    let payload = [&[pad][..], data, &vec![0u8; usize::from(pad)]].concat();
    frame(DATA, flags | 0x8, stream, &payload)
}

/// DATA frames may be padded (RFC 9113 6.1): the pad length and the padding are no part
/// of the body the server reads, so they are no part of what the sensors read either.
/// (Before, a padded frame's padding went into the body the sensors read: a marker split
/// across two padded frames had zeros in its middle and passed.)
#[test]
fn padding_is_not_part_of_the_body_the_sensors_read() {
    let mut e = loona_hpack::Encoder::new();
    let b1 = block(
        &mut e,
        &fields("POST", "/login", &[("content-type", "text/plain")]),
    );
    let data = |flags: u8, d: &[u8], pad: bool| {
        if pad {
            padded(flags, 1, d, 3)
        } else {
            frame(DATA, flags, 1, d)
        }
    };
    for (first, last) in [(true, false), (true, true), (false, true)] {
        let client = [
            PREFACE.to_vec(),
            frame(SETTINGS, 0, 0, &[]),
            frame(HEADERS, END_HEADERS, 1, &b1),
            data(0, b"x=EV", first),
            data(END_STREAM, b"IL", last),
        ]
        .concat();
        for cuts in [&[][..], &[60, 75, 80]] {
            let out = run(true, &client, cuts);
            assert_eq!(
                kinds(&out.to_server),
                [(SETTINGS, 0), (HEADERS, 1), (DATA, 1), (RST_STREAM, 1)],
                "padded {first} {last}"
            );
            assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
            assert_eq!(out.decided[0].findings[0].location, "body");
        }
    }
}

/// A request body the client compressed (`content-encoding: gzip` or `deflate`) is
/// judged on what it inflates to, as over HTTP/1. (Before, HTTP/2 bodies were read as
/// sent: a compressed injection passed.)
#[test]
fn a_compressed_request_body_is_judged_inflated() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"name\": \"EVIL\"}").unwrap();
    let body = gz.finish().unwrap();
    assert!(!body.windows(4).any(|w| w == b"EVIL"));
    for (coding, refused) in [("gzip", true), ("br", false)] {
        let mut e = loona_hpack::Encoder::new();
        let extra = [
            ("content-type", "application/json"),
            ("content-encoding", coding),
        ];
        let b1 = block(&mut e, &fields("POST", "/users", &extra));
        let client = [
            PREFACE.to_vec(),
            frame(SETTINGS, 0, 0, &[]),
            frame(HEADERS, END_HEADERS, 1, &b1),
            frame(DATA, 0, 1, &body[..7]),
            frame(DATA, END_STREAM, 1, &body[7..]),
        ]
        .concat();
        let out = run(true, &client, &[]);
        let last = kinds(&out.to_server).last().copied();
        assert_eq!(last == Some((RST_STREAM, 1)), refused, "{coding}");
        assert_eq!(out.decided[0].allowed, !refused, "{coding}");
    }
}

/// A gRPC message (5-byte prefix, then a protobuf with `text` in field 1).
fn grpc_msg(text: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0, (text.len() + 2) as u8, 0x0a, text.len() as u8];
    m.extend_from_slice(text);
    m
}

/// A streaming gRPC call's server acts on each message as it arrives, long before the
/// stream ends: each message is judged once whole, and only the frame that completes
/// it waits for that. Clean messages pass at once; a blocked one never reaches the
/// server, which gets a cancelled stream, and the client gets PERMISSION_DENIED (a
/// reset if the server had answered). (Before, a call's messages were judged when its
/// stream ended: a streaming call's messages all reached the server first.)
#[test]
fn each_message_of_a_streaming_grpc_call_is_judged_once_whole() {
    let mut e = loona_hpack::Encoder::new();
    let head = fields(
        "POST",
        "/chat.Room/Talk",
        &[("content-type", "application/grpc"), ("te", "trailers")],
    );
    let b1 = block(&mut e, &head);
    let (m1, m2) = (grpc_msg(b"hello"), grpc_msg(b"then EVIL"));
    let opening = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &b1),
    ]
    .concat();
    // Message 1 in two frames, message 2 in three; then a third message, never read.
    let rest = [
        frame(DATA, 0, 1, &m1[..3]),
        frame(DATA, 0, 1, &m1[3..]),
        frame(DATA, 0, 1, &m2[..4]),
        frame(DATA, 0, 1, &m2[4..10]),
        frame(DATA, 0, 1, &m2[10..]),
        frame(DATA, END_STREAM, 1, &grpc_msg(b"bye")),
    ];
    for answered in [false, true] {
        let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block: true })));
        let mut out = s.server_bytes(&frame(SETTINGS, 0, 0, &[]));
        out.merge(s.client_bytes(&opening, &mut allow));
        if answered {
            let mut se = loona_hpack::Encoder::new();
            let rh = block(&mut se, &vec![(b":status".to_vec(), b"200".to_vec())]);
            out.merge(s.server_bytes(&frame(HEADERS, END_HEADERS, 1, &rh)));
        }
        // Message 1 reaches the server as soon as it is whole.
        out.merge(s.client_bytes(&rest[0], &mut allow));
        out.merge(s.client_bytes(&rest[1], &mut allow));
        let to_server = frames(&out.to_server);
        let data: Vec<u8> = to_server
            .iter()
            .filter(|f| f.0 == DATA)
            .flat_map(|f| f.3.clone())
            .collect();
        assert_eq!(data, m1, "answered {answered}");
        assert!(out.decided.is_empty());
        // Message 2: its first two frames pass (no whole message in them), the third not.
        for f in &rest[2..] {
            out.merge(s.client_bytes(f, &mut allow));
        }
        assert_eq!(
            kinds(&out.to_server)[2..],
            [(DATA, 1), (DATA, 1), (DATA, 1), (DATA, 1), (RST_STREAM, 1)],
            "answered {answered}"
        );
        assert_eq!(out.decided.len(), 1);
        assert!(!out.decided[0].allowed);
        let to_client = frames(&out.to_client);
        if answered {
            let rst: Vec<_> = to_client.iter().filter(|f| f.0 == RST_STREAM).collect();
            assert_eq!(rst.len(), 1);
            assert_eq!(rst[0].3, 8u32.to_be_bytes());
            assert!(
                !to_client
                    .iter()
                    .any(|f| f.0 == HEADERS && f.1 & END_STREAM != 0)
            );
        } else {
            let h = to_client.iter().find(|f| f.0 == HEADERS).unwrap();
            let fields = loona_hpack::Decoder::new().decode(&h.3).unwrap();
            assert!(fields.contains(&(b"grpc-status".to_vec(), b"7".to_vec())));
            // Then told to stop sending (NO_ERROR: its answer is complete); what it sent
            // after is dropped, its connection window given back.
            let rst = to_client.iter().position(|f| f.0 == RST_STREAM).unwrap();
            assert_eq!(to_client[rst].3, [0; 4]);
            assert!(to_client[..rst].iter().any(|f| f.0 == HEADERS));
            assert_eq!(kinds(&out.to_client).last(), Some(&(WINDOW_UPDATE, 0)));
        }
    }
    // Alert only: every frame passes as it comes, the finding is reported once.
    let all = [opening.clone(), rest.concat()].concat();
    let out = run(false, &all, &[]);
    assert_eq!(kinds(&out.to_server).len(), 2 + rest.len());
    assert_eq!(out.decided.len(), 1);
    assert!(out.decided[0].allowed);
    assert_eq!(
        out.decided[0].findings.len(),
        1,
        "{:?}",
        out.decided[0].findings
    );
}

/// The bodies a connection's streams keep for the sensors have a budget (1 MiB, 64 KiB
/// per stream), and so does the number of streams being read. A stream that would
/// need more is refused (REFUSED_STREAM, which a client may retry) and none of its
/// body reaches the server: before, its body passed unread (16 streams holding 64 KiB
/// each, or 4,096 streams left open, then the attack on one more).
#[test]
fn a_body_the_proxy_cannot_keep_is_refused_not_passed_unread() {
    const REFUSED: [u8; 4] = 7u32.to_be_bytes();
    let chunk = vec![b'a'; 16 * 1024];
    let mut e = loona_hpack::Encoder::new();
    let post = block(
        &mut e,
        &fields("POST", "/up", &[("content-type", "text/plain")]),
    );
    let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block: true })));
    let mut out = s.server_bytes(&frame(SETTINGS, 0, 0, &[]));
    out.merge(s.client_bytes(
        &[PREFACE, &frame(SETTINGS, 0, 0, &[])[..]].concat(),
        &mut allow,
    ));
    // Sixteen uploads keep 64 KiB each, and stay open.
    for k in 0..16u32 {
        let id = 1 + 2 * k;
        out.merge(s.client_bytes(&frame(HEADERS, END_HEADERS, id, &post), &mut allow));
        for _ in 0..4 {
            out.merge(s.client_bytes(&frame(DATA, 0, id, &chunk), &mut allow));
        }
    }
    assert!(out.decided.is_empty());
    let before = out.to_server.len();
    // One more: its body cannot be kept, so it is refused before any of it passes.
    let mut late = Output::default();
    for f in [
        frame(HEADERS, END_HEADERS, 33, &post),
        frame(DATA, 0, 33, b"x=EVIL"),
        frame(DATA, END_STREAM, 33, b"!"),
    ] {
        late.merge(s.client_bytes(&f, &mut allow));
    }
    assert_eq!(kinds(&late.to_server), [(HEADERS, 33), (RST_STREAM, 33)]);
    let to_client = frames(&late.to_client);
    assert!(
        to_client
            .iter()
            .any(|f| f.0 == RST_STREAM && f.2 == 33 && f.3 == REFUSED)
    );
    assert_eq!(late.decided.len(), 1);
    assert!(!late.decided[0].allowed);
    assert!(before > 16 * 64 * 1024);
    // Once an upload ends, its room is free again.
    let mut freed = s.client_bytes(&frame(DATA, END_STREAM, 1, b"."), &mut allow);
    for f in [
        frame(HEADERS, END_HEADERS, 35, &post),
        frame(DATA, 0, 35, b"x=EVIL"),
        frame(DATA, END_STREAM, 35, b"!"),
    ] {
        freed.merge(s.client_bytes(&f, &mut allow));
    }
    let refused_35 = freed
        .decided
        .iter()
        .find(|d| d.request.to_string().contains("/up") && !d.allowed)
        .expect("stream 35 decided");
    assert_eq!(refused_35.findings[0].location, "body");

    // As many streams being read as the session reads at once: one more is refused
    // at its head, not forwarded.
    let mut s = H2Session::new().with_inspector(Some(Arc::new(Marker { block: true })));
    let mut out = s.server_bytes(&frame(SETTINGS, 0, 0, &[]));
    let mut e = loona_hpack::Encoder::new();
    let post = block(
        &mut e,
        &fields("POST", "/up", &[("content-type", "text/plain")]),
    );
    let mut opening = vec![PREFACE.to_vec(), frame(SETTINGS, 0, 0, &[])];
    for k in 0..4096u32 {
        opening.push(frame(HEADERS, END_HEADERS, 1 + 2 * k, &post));
    }
    out.merge(s.client_bytes(&opening.concat(), &mut allow));
    assert!(out.decided.is_empty());
    let last = 1 + 2 * 4096;
    let out = s.client_bytes(
        &[
            frame(HEADERS, END_HEADERS, last, &post),
            frame(DATA, END_STREAM, last, b"x=EVIL"),
        ]
        .concat(),
        &mut allow,
    );
    assert!(out.to_server.is_empty(), "{:?}", kinds(&out.to_server));
    assert!(
        frames(&out.to_client)
            .iter()
            .any(|f| f.0 == RST_STREAM && f.3 == REFUSED)
    );
    assert!(!out.decided[0].allowed);
}

/// A WebSocket on an HTTP/2 stream (extended CONNECT, RFC 8441) sends messages that end
/// no stream, so the sensors would never read them: with sensors on, the server's
/// SETTINGS reach the client with ENABLE_CONNECT_PROTOCOL off (a browser then opens its
/// WebSocket over HTTP/1.1, whose messages are read one by one), and a client that
/// tries anyway is refused. Without sensors, nothing changes.
#[test]
fn websockets_over_http2_are_not_offered_when_sensors_read() {
    let settings = |connect: u8| {
        frame(
            SETTINGS,
            0,
            0,
            &[
                0, 3, 0, 0, 0, 100, 0, 8, 0, 0, 0, connect, 0, 4, 0, 0, 0xff, 0xff,
            ],
        )
    };
    for inspect in [true, false] {
        for cut in [1, 5, 100] {
            let mut s = H2Session::new();
            if inspect {
                s = s.with_inspector(Some(Arc::new(Marker { block: true })));
            }
            let mut out = Output::default();
            for p in settings(1).chunks(cut) {
                out.merge(s.server_bytes(p));
            }
            let want = if inspect { settings(0) } else { settings(1) };
            assert_eq!(out.to_client, want, "inspect {inspect} cut {cut}");
        }
    }
    let mut e = loona_hpack::Encoder::new();
    let b1 = block(
        &mut e,
        &fields(
            "CONNECT",
            "/chat",
            &[(":protocol", "websocket"), ("sec-websocket-version", "13")],
        ),
    );
    let client = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, &b1),
        frame(DATA, 0, 1, b"\x81\x04EVIL"),
    ]
    .concat();
    let out = run(true, &client, &[]);
    assert_eq!(kinds(&out.to_server), [(SETTINGS, 0)]);
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
    assert!(first_refusal(&out).contains("WebSocket over HTTP/2"));
}

/// Two content-type fields that differ: Go and Node read the first (grpc-go takes any
/// that names gRPC), while the sensors read the body by one of them and policy names
/// the request by one: refused, as over HTTP/1. Equal ones pass.
#[test]
fn two_content_types_that_differ_are_refused() {
    let mut e = loona_hpack::Encoder::new();
    let form = "application/x-www-form-urlencoded";
    let two = block(
        &mut e,
        &fields(
            "POST",
            "/admin.Admin/DropAll",
            &[
                ("content-type", "text/plain"),
                ("content-type", "application/grpc"),
            ],
        ),
    );
    let same = block(
        &mut e,
        &fields(
            "POST",
            "/f",
            &[("content-type", form), ("content-type", form)],
        ),
    );
    let client = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, END_HEADERS | END_STREAM, 1, &two),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, &same),
    ]
    .concat();
    let out = run(false, &client, &[]);
    assert_eq!(kinds(&out.to_server), [(SETTINGS, 0), (HEADERS, 3)]);
    assert_eq!(status(&out.to_client, 1).as_deref(), Some(&b"403"[..]));
    assert!(first_refusal(&out).contains("content-type fields that differ"));
    assert!(out.decided[1].allowed);
}

/// Why the first request decided was refused.
fn first_refusal(out: &Output) -> &str {
    out.decided[0].refusal.as_deref().expect("a refusal")
}
