//! WebSocket client frames through the sensors (`bulkhead_l7::websocket::Reader`):
//! messages held until inspected, control frames passing, fragments joined, a blocking
//! finding closing with 1008, oversized messages, frames no client sends, and arbitrary
//! bytes never panicking. The inspector finds a marker: the reader is under test, not
//! detection.

mod common;

use bulkhead_l7::websocket::{MAX_MESSAGE, Payloads, Reader, close_frame};
use bulkhead_l7::{Finding, Inspector, Output, StreamInspector};

/// Finds `EVIL` in a message, and blocks.
struct Marker;
impl Inspector for Marker {
    fn http_request(&self, _: &[u8], _: &[u8]) -> Vec<Finding> {
        Vec::new()
    }
    fn sql(&self, _: &[u8]) -> Vec<Finding> {
        Vec::new()
    }
    fn stream(&self, _: bool) -> Box<dyn StreamInspector> {
        unreachable!()
    }
    fn message(&self, m: &[u8]) -> Vec<Finding> {
        if m.windows(4).any(|w| w == b"EVIL") {
            vec![Finding {
                sensor: "waf".into(),
                class: "marker".into(),
                location: "websocket".into(),
                masked: "EVIL".into(),
                block: true,
            }]
        } else {
            Vec::new()
        }
    }
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, c)| c ^ mask[i % 4]));
    f
}

fn run(input: &[u8], cut: usize) -> Output {
    let mut r = Reader::default();
    let mut out = Output::default();
    for c in input.chunks(cut.max(1)) {
        r.client_bytes(c, &Marker, &mut out);
        if out.close {
            break;
        }
    }
    out
}

#[test]
fn clean_messages_pass_whole_and_a_marked_one_closes() {
    let ok = [
        frame(true, 1, b"hello"),
        frame(false, 1, b"frag"),
        frame(true, 9, b"ping"),
        frame(true, 0, b"mented"),
    ]
    .concat();
    for cut in [1, 3, 7, 1000] {
        let out = run(&ok, cut);
        assert!(!out.close);
        // The ping passed ahead of the fragments held with it.
        let ping = frame(true, 9, b"ping");
        let want = [
            frame(true, 1, b"hello"),
            ping,
            frame(false, 1, b"frag"),
            frame(true, 0, b"mented"),
        ]
        .concat();
        assert_eq!(out.to_server, want, "cut {cut}");
    }
    // The marker split across fragments: nothing of that message reaches the server.
    let bad = [
        frame(true, 1, b"hello"),
        frame(false, 1, b"xx EV"),
        frame(true, 0, b"IL yy"),
    ]
    .concat();
    for cut in [1, 5, 1000] {
        let out = run(&bad, cut);
        assert!(out.close);
        assert_eq!(out.to_server, frame(true, 1, b"hello"));
        assert_eq!(out.to_client, close_frame());
        assert_eq!(out.findings.len(), 1);
    }
}

#[test]
fn long_messages_are_judged_on_their_prefix_then_stream() {
    let mut big = vec![b'a'; MAX_MESSAGE + 5000];
    let out = run(&frame(true, 2, &big), 4096);
    assert!(!out.close);
    assert_eq!(out.to_server, frame(true, 2, &big));
    // A marker past the prefix is not seen; inside it, it is.
    big[100] = b'E';
    big[101..104].copy_from_slice(b"VIL");
    let out = run(&frame(true, 2, &big), 4096);
    assert!(out.close && out.to_server.is_empty());
}

/// A sensor that refuses what it cannot read whole closes on a message too long to
/// hold, before any of it reaches the server.
#[test]
fn an_oversized_message_closes_when_the_sensor_says_so() {
    let mut r = Reader::default();
    let mut out = Output::default();
    let big = frame(true, 2, &vec![b'a'; MAX_MESSAGE + 100]);
    for c in big.chunks(4096) {
        r.client_bytes(c, &common::Whole, &mut out);
    }
    assert!(out.close && out.to_server.is_empty());
    // A message that fits is not affected.
    let mut out = Output::default();
    Reader::default().client_bytes(&frame(true, 1, b"short"), &common::Whole, &mut out);
    assert!(!out.close);
}

#[test]
fn frames_that_are_not_a_clients_close_the_connection() {
    // Unmasked, a reserved bit (compression), a fragmented ping.
    for f in [
        vec![0x81, 0x02, b'h', b'i'],
        [vec![0xc1], frame(true, 1, b"x")[1..].to_vec()].concat(),
        [vec![0x09], frame(true, 9, b"x")[1..].to_vec()].concat(),
    ] {
        assert!(run(&f, 1000).close, "{f:?}");
    }
}

/// An unmasked server frame.
fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(fin, opcode, payload);
    let at = f.len() - payload.len() - 4;
    f[1] &= 0x7f;
    f.drain(at..at + 4);
    f[at..].copy_from_slice(payload);
    f
}

/// The payloads `Payloads` hands on for `input` cut in pieces of `cut` bytes, and
/// whether the bytes were frames throughout.
fn payloads(input: &[u8], cut: usize) -> (Vec<u8>, bool) {
    let mut p = Payloads::default();
    let mut all = Vec::new();
    let ok = input
        .chunks(cut)
        .all(|c| p.feed(c, &mut |b| all.extend_from_slice(b)));
    (all, ok)
}

/// A server's messages reach the response scanner as their payloads, one stream: a
/// card number split over two fragments, with a ping between them, is whole there.
#[test]
fn server_frames_give_their_data_payloads_as_one_stream() {
    let long = vec![b'x'; 300];
    let input = [
        server_frame(false, 1, b"card 4111 1111 "),
        server_frame(true, 9, b"ping"),
        server_frame(true, 0, b"1111 1111"),
        server_frame(true, 2, &long),
        // A masked one (no server sends it, but it reads the same).
        frame(true, 1, b" end"),
    ]
    .concat();
    let mut want = b"card 4111 1111 1111 1111".to_vec();
    want.extend_from_slice(&long);
    want.extend_from_slice(b" end");
    for cut in [1, 2, 3, 7, 64, 10_000] {
        assert_eq!(payloads(&input, cut), (want.clone(), true), "cut {cut}");
    }
    // A reserved bit (an extension nobody negotiated): not frames any more.
    assert!(!payloads(&[0xc1, 0x01, b'x'], 10).1);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                                   cut in 1usize..50) {
        let _ = run(&b, cut);
        let _ = payloads(&b, cut);
    }
}
