//! HTTP/1.x sessions with sensors: an allowed request is held until its body has been
//! inspected, then forwarded whole or refused with 403 (the body never reaches the
//! server, keep-alive continues); response payloads are scanned and a blocking finding
//! closes the connection before its bytes are written. Alert findings pass and are
//! reported. The same result however the streams are split.
//!
//! The inspector here finds a marker substring: the session's handling is under test,
//! not detection (bulkhead-sensor has its own tests on the corpora).

mod common;
#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use std::sync::Arc;

use bulkhead_l7::{Finding, HttpSession, Inspector, Output, Session, StreamInspector, Verdict};
use bulkhead_policy::l7::L7Request;
use proptest::prelude::*;

struct Marker {
    block: bool,
}

fn find(sensor: &str, hay: &[u8], needle: &[u8], location: &str, block: bool) -> Vec<Finding> {
    if hay.windows(needle.len()).any(|w| w == needle) {
        vec![Finding {
            sensor: sensor.into(),
            class: "marker".into(),
            location: location.into(),
            masked: String::from_utf8_lossy(needle).into_owned(),
            block,
        }]
    } else {
        Vec::new()
    }
}

/// Scans a stream for "4111" across chunk boundaries (keeps the last 3 bytes).
struct Tail {
    carry: Vec<u8>,
    block: bool,
}

impl StreamInspector for Tail {
    fn feed(&mut self, data: &[u8]) -> Vec<Finding> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let f = find("dlp", &buf, b"4111", "response body", self.block);
        self.carry = buf[buf.len().saturating_sub(3)..].to_vec();
        if !f.is_empty() {
            self.carry.clear();
        }
        f
    }
}

impl Inspector for Marker {
    fn http_request(&self, head: &[u8], body: &[u8]) -> Vec<Finding> {
        let mut f = find("waf", head, b"EVIL", "head", self.block);
        f.extend(find("waf", body, b"EVIL", "body", self.block));
        f
    }
    fn sql(&self, _: &[u8]) -> Vec<Finding> {
        Vec::new()
    }
    fn message(&self, payload: &[u8]) -> Vec<Finding> {
        find("waf", payload, b"EVIL", "websocket", self.block)
    }
    fn response_head(&self, head: &[u8]) -> Vec<Finding> {
        find("dlp", head, b"4111", "response header", self.block)
    }
    fn stream(&self, _from_server: bool) -> Box<dyn StreamInspector> {
        Box::new(Tail {
            carry: Vec::new(),
            block: self.block,
        })
    }
}

fn allow(_: &L7Request) -> Verdict {
    Verdict { allowed: true }
}

fn run(block: bool, client: &[u8], server: &[u8], cut: usize) -> Output {
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block })));
    let mut all = Output::default();
    for c in client.chunks(cut.max(1)) {
        all.merge(s.client_bytes(c, &mut allow));
    }
    for c in server.chunks(cut.max(1)) {
        all.merge(s.server_bytes(c));
        if all.close {
            break;
        }
    }
    all
}

const BAD_POST: &[u8] =
    b"POST /search HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nEVI\r\n2\r\nL!\r\n0\r\n\r\n";
const GOOD: &[u8] = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
const RESP_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const RESP_CARD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"pan\": \"4111 1111\"}";

#[test]
fn a_blocked_body_never_reaches_the_server_and_the_connection_goes_on() {
    let client = [BAD_POST, GOOD].concat();
    for cut in [1, 3, 7, client.len()] {
        let out = run(true, &client, RESP_OK, cut);
        assert_eq!(out.to_server, GOOD, "cut {cut}");
        assert!(out.to_client.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
        assert!(out.to_client.ends_with(RESP_OK));
        assert_eq!(out.decided.len(), 2);
        assert!(!out.decided[0].allowed);
        assert_eq!(out.decided[0].findings[0].location, "body");
        assert!(out.decided[1].allowed && out.decided[1].findings.is_empty());
        assert!(!out.close);
    }
}

/// A request held for its body's inspection whose client waits for `100 Continue` gets
/// it from the proxy (the server has not seen the request yet), then is decided on its
/// body as any other.
#[test]
fn a_held_request_expecting_continue_is_told_to_continue() {
    let head =
        b"PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n";
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: true })));
    let out = s.client_bytes(head, &mut allow);
    assert_eq!(out.to_client, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(out.to_server.is_empty());
    let out = s.client_bytes(b"some EVIL", &mut allow);
    assert!(String::from_utf8_lossy(&out.to_client).starts_with("HTTP/1.1 403"));
    assert!(out.to_server.is_empty());
    // Clean, it goes on whole.
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: true })));
    s.client_bytes(head, &mut allow);
    let out = s.client_bytes(b"some data", &mut allow);
    assert_eq!(out.to_server, [&head[..], b"some data"].concat());
}

#[test]
fn an_alert_finding_passes_and_is_reported() {
    let out = run(false, BAD_POST, RESP_OK, 5);
    assert_eq!(out.to_server, BAD_POST);
    assert_eq!(out.to_client, RESP_OK);
    assert!(out.decided[0].allowed);
    assert_eq!(out.decided[0].findings.len(), 1);
}

#[test]
fn a_request_without_body_is_inspected_on_its_head() {
    let bad = b"GET /q?x=EVIL HTTP/1.1\r\nHost: a\r\n\r\n";
    let out = run(true, bad, b"", 4);
    assert!(out.to_server.is_empty());
    assert!(out.to_client.starts_with(b"HTTP/1.1 403"));
    assert_eq!(out.decided[0].findings[0].location, "head");
}

#[test]
fn a_blocking_response_finding_closes_before_the_bytes_are_written() {
    for cut in [1, 2, 5, RESP_CARD.len()] {
        let out = run(true, GOOD, RESP_CARD, cut);
        assert!(out.close, "cut {cut}");
        let shown = String::from_utf8_lossy(&out.to_client).into_owned();
        assert!(!shown.contains("4111"), "cut {cut}: {shown}");
        assert_eq!(out.findings.len(), 1);
    }
    let out = run(false, GOOD, RESP_CARD, 3);
    assert!(!out.close);
    assert_eq!(out.to_client, RESP_CARD);
    assert_eq!(out.findings.len(), 1);
}

proptest! {
    /// However the client's bytes are cut, the server sees the same bytes and the
    /// client the same answers.
    #[test]
    fn split_invariance(cut in 1usize..64, block: bool) {
        let client = [GOOD, BAD_POST, GOOD].concat();
        let server = [RESP_OK, RESP_OK].concat();
        let whole = run(block, &client, &server, client.len());
        let split = run(block, &client, &server, cut);
        prop_assert_eq!(whole.to_server, split.to_server);
        prop_assert_eq!(whole.to_client, split.to_client);
        prop_assert_eq!(whole.decided.len(), split.decided.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..512),
                                   s in proptest::collection::vec(any::<u8>(), 0..512),
                                   cut in 1usize..64) {
        let _ = run(true, &c, &s, cut);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cut in 1usize..64, block: bool) {
        let mut client = [GOOD, BAD_POST, GOOD].concat();
        let mut server = [RESP_OK, RESP_CARD].concat();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(block, &client, &server, cut);
    }
}

/// A masked WebSocket text frame, as a client sends it.
fn ws_text(payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, c)| c ^ mask[i % 4]));
    f
}

/// With sensors on, a WebSocket upgrade loses its offer of extensions on the way (the
/// server then compresses nothing), and after the switch each client message is
/// inspected: a clean one passes, a blocked one gets a Close frame (1008) and the
/// connection ends without it reaching the server.
#[test]
fn websocket_messages_are_inspected_after_the_switch() {
    let upgrade = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    let switched = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    for block in [true, false] {
        let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block })));
        let mut out = s.client_bytes(upgrade, &mut allow);
        let forwarded = String::from_utf8_lossy(&out.to_server).into_owned();
        assert!(
            forwarded.starts_with("GET /chat HTTP/1.1\r\n"),
            "{forwarded}"
        );
        assert!(forwarded.contains("Sec-WebSocket-Key"), "{forwarded}");
        assert!(!forwarded.contains("Extensions"), "{forwarded}");
        // A message sent right behind the upgrade request waits for the switch.
        out = s.client_bytes(&ws_text(b"hello"), &mut allow);
        assert!(out.to_server.is_empty());
        out = s.server_bytes(switched);
        assert_eq!(out.to_server, ws_text(b"hello"));
        out = s.client_bytes(&ws_text(b"an EVIL one"), &mut allow);
        assert_eq!(out.findings.len(), 1);
        if block {
            assert!(out.close && out.to_server.is_empty());
            assert_eq!(&out.to_client[..4], &[0x88, 21, 0x03, 0xf0]);
        } else {
            assert!(!out.close);
            assert_eq!(out.to_server, ws_text(b"an EVIL one"));
        }
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// With sensors on, servers are offered only the codings the proxy reads, a gzip'd
/// response is inflated for the scanners (the card number is found where the raw bytes
/// hide it), and a gzip'd request body is judged on what it inflates to.
#[test]
fn compressed_bodies_are_read_through() {
    // Accept-Encoding keeps gzip and deflate only.
    let get = b"GET /card HTTP/1.1\r\nHost: a\r\nAccept-Encoding: deflate, gzip, br, zstd\r\n\r\n";
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: false })));
    let out = s.client_bytes(get, &mut allow);
    assert_eq!(
        out.to_server,
        b"GET /card HTTP/1.1\r\nHost: a\r\nAccept-Encoding: deflate, gzip\r\n\r\n"
    );
    let body = gzip(b"{\"pan\": \"4111 1111 1111 1111\"}");
    assert!(!body.windows(4).any(|w| w == b"4111"));
    let resp = [
        format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body,
    ]
    .concat();
    for cut in [1, 5, resp.len()] {
        let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: true })));
        s.client_bytes(get, &mut allow);
        let mut out = Output::default();
        for c in resp.chunks(cut) {
            out.merge(s.server_bytes(c));
        }
        assert_eq!(out.findings.len(), 1, "cut {cut}");
        assert!(out.close && out.to_client.len() < resp.len());
    }
    // Only br on offer: the header goes, the server answers uncompressed.
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: false })));
    let out = s.client_bytes(
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\n\r\n",
        &mut allow,
    );
    assert_eq!(out.to_server, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    // A gzip'd request body.
    let evil = gzip(b"q=EVIL");
    let post = [
        format!(
            "POST /s HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            evil.len()
        )
        .into_bytes(),
        evil,
    ]
    .concat();
    let out = run(true, &post, b"", post.len());
    assert!(out.to_server.is_empty());
    assert!(out.to_client.starts_with(b"HTTP/1.1 403"));
    // Without sensors nothing is rewritten.
    let mut s = HttpSession::new();
    assert_eq!(s.client_bytes(get, &mut allow).to_server, get);
}

/// A body longer than is held is judged on its prefix: with a sensor that refuses what
/// it cannot read whole it gets 403 and nothing of it reaches the server (the rest is
/// discarded, the connection goes on); otherwise it passes, as before.
#[test]
fn a_body_longer_than_is_held_passes_or_is_refused_as_the_sensor_says() {
    // (http.rs holds 64 KiB of a body for the sensors.)
    let big = vec![b'a'; 64 * 1024 + 10];
    let post = [
        format!(
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .into_bytes(),
        big,
        GOOD.to_vec(),
    ]
    .concat();
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(common::Whole)));
    let out = s.client_bytes(&post, &mut allow);
    assert_eq!(out.to_server, GOOD);
    assert!(out.to_client.starts_with(b"HTTP/1.1 403"));
    assert_eq!(out.decided[0].findings[0].class, "oversize");
    assert!(!out.decided[0].allowed);
    // Partial (the default): the prefix is judged clean and all of it passes.
    let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: true })));
    let out = s.client_bytes(&post, &mut allow);
    assert_eq!(out.to_server, post);
}

/// A response in a coding the proxy does not inflate (`br`, which the client was not
/// offered, or codings stacked) cannot be read whole: under `oversize: Block` nothing of
/// it is written and the connection closes; under `Partial` it passes as sent. A coding
/// the proxy reads passes either way.
#[test]
fn a_response_in_a_coding_not_read_follows_oversize() {
    let get = b"GET /export HTTP/1.1\r\nHost: a\r\n\r\n";
    for (coding, unread) in [
        ("br", true),
        ("gzip, gzip", true),
        ("gzip", false),
        ("identity", false),
    ] {
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: 3\r\n\r\nabc"
        );
        let mut s = HttpSession::new().with_inspector(Some(Arc::new(common::Whole)));
        let _ = s.client_bytes(get, &mut allow);
        let out = s.server_bytes(resp.as_bytes());
        assert_eq!(out.close, unread, "{coding}");
        assert_eq!(out.to_client.is_empty(), unread, "{coding}");
        let mut s = HttpSession::new().with_inspector(Some(Arc::new(Marker { block: true })));
        let _ = s.client_bytes(get, &mut allow);
        let out = s.server_bytes(resp.as_bytes());
        assert!(
            !out.close && out.to_client.starts_with(b"HTTP/1.1 200"),
            "{coding}"
        );
    }
}

proptest! {
    /// Edits of an upgrade to WebSocket with messages after it, and of gzip'd bodies
    /// both ways, reach the frame reader and the inflater: never a panic.
    #[test]
    fn edited_websocket_and_gzip_traffic_never_panics(edits in edit::edits(),
                                                      cut in 1usize..64, block: bool) {
        let upgrade = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let switched = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let mut client = [&upgrade[..], &ws_text(b"hello"), &ws_text(b"an EVIL one")].concat();
        let mut server = switched.to_vec();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(block, &client, &server, cut);

        let evil = gzip(b"q=EVIL");
        let card = gzip(b"{\"pan\": \"4111 1111\"}");
        let mut client = [
            format!("POST /s HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", evil.len()).into_bytes(),
            evil,
            GOOD.to_vec(),
        ].concat();
        let mut server = [
            format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", card.len()).into_bytes(),
            card,
        ].concat();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(block, &client, &server, cut);
    }
}

/// A response's head goes to the sensors before any byte of it is written: a blocking
/// finding closes the connection with nothing of that response sent.
#[test]
fn response_heads_are_inspected_before_they_are_written() {
    let resp = b"HTTP/1.1 200 OK\r\nX-Card: 4111 1111 1111 1111\r\nContent-Length: 2\r\n\r\nok";
    for cut in [1, 9, resp.len()] {
        let out = run(true, GOOD, resp, cut);
        assert!(out.close, "cut {cut}");
        assert!(out.to_client.is_empty());
        assert_eq!(out.findings[0].location, "response header");
        let out = run(false, GOOD, resp, cut);
        assert!(!out.close);
        assert_eq!(out.to_client, resp);
        assert_eq!(out.findings.len(), 1);
    }
}
