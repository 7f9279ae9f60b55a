//! HTTP/2 with prior knowledge (the connection preface), and gRPC: the first request's
//! HEADERS block, decoded with HPACK (`loona-hpack`), carries `content-type:
//! application/grpc`. Values are usually Huffman-coded, so no byte search can see it.
//! Mid-connection: a run of frames that each follow their type's rules.

use std::borrow::Cow;

use bulkhead_policy::l7::AppProtocol;
use serde_json::{Value, json};

use crate::Check;
use crate::wire::{be24, be32, detail, lossy, prefix_of, yes};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const CONTINUATION: u8 = 9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The HPACK dynamic table a peer may ask for; larger updates are an error.
const MAX_TABLE: usize = 64 * 1024;

/// A frame header at `at`: (payload length, type, flags, stream id with its reserved
/// bit). None if not all there.
fn header(b: &[u8], at: usize) -> Option<(usize, u8, u8, u32)> {
    Some((
        be24(b, at)?,
        *b.get(at + 3)?,
        *b.get(at + 4)?,
        be32(b, at + 5)?,
    ))
}

/// One frame at `at`: (type, flags, stream id, payload). None if not all there.
fn frame(b: &[u8], at: usize) -> Option<(u8, u8, u32, &[u8])> {
    let (len, kind, flags, stream) = header(b, at)?;
    Some((
        kind,
        flags,
        stream & 0x7fff_ffff,
        b.get(at + 9..at + 9 + len)?,
    ))
}

enum Block {
    /// The header block of the first request, reassembled from HEADERS + CONTINUATION.
    Headers(Vec<u8>),
    /// Frames are still arriving.
    More,
    /// The frames do not follow the protocol.
    Broken,
}

/// The first request's header block, after the preface.
fn first_request(b: &[u8]) -> Block {
    let mut at = 0;
    // The client's preface continues with a SETTINGS frame on stream 0 (RFC 9113 3.4).
    match frame(b, 0) {
        None => return Block::More,
        Some((SETTINGS, _, 0, p)) if p.len() % 6 == 0 => {}
        Some(_) => return Block::Broken,
    }
    let mut block: Option<(u32, Vec<u8>)> = None;
    while let Some((kind, flags, stream, payload)) = frame(b, at) {
        at += 9 + payload.len();
        match (kind, &mut block) {
            (HEADERS, None) if stream % 2 == 1 => {
                let Some(fragment) = fragment(flags, payload) else {
                    return Block::Broken;
                };
                if flags & END_HEADERS != 0 {
                    return Block::Headers(fragment.to_vec());
                }
                block = Some((stream, fragment.to_vec()));
            }
            (CONTINUATION, Some((s, acc))) if *s == stream => {
                acc.extend_from_slice(payload);
                if flags & END_HEADERS != 0 {
                    return Block::Headers(std::mem::take(acc));
                }
            }
            // Nothing but CONTINUATION may interleave with an open header block.
            (_, Some(_)) => return Block::Broken,
            (DATA | HEADERS, None) if stream == 0 => return Block::Broken,
            _ => {}
        }
    }
    Block::More
}

/// A HEADERS frame's header block fragment: its payload without padding and priority.
fn fragment(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p.split_first()?;
        (pad, p) = (usize::from(n), rest);
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// Decode a header block with HPACK (`loona-hpack`), each field to `field` as it comes;
/// false if the block is broken or refers to a table entry this decoder never saw.
fn decode_block(block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> bool {
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(MAX_TABLE);
    decoder
        .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| {
            field(&name, &value)
        })
        .is_ok()
}

/// A header block's `content-type`, if it is sent before any reference to the dynamic
/// table. Mid-connection that table is unknown, but a connection's first request of a
/// kind carries its fields as literals or static entries (later ones refer to the
/// table: those stay unknown, and decoding stops at the first such reference).
fn literal_content_type(block: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    decode_block(block, |name, value| {
        if found.is_none() && name == b"content-type" {
            found = Some(value.to_vec());
        }
    });
    found
}

/// The preface, then frames until the first request shows whether it is gRPC.
pub(crate) fn preface(b: &[u8]) -> Check {
    if b.len() < PREFACE.len() {
        return prefix_of(b, PREFACE);
    }
    if !b.starts_with(PREFACE) {
        return Check::No;
    }
    let plain = || detail([("prior_knowledge", Value::Bool(true))]);
    let block = match first_request(&b[PREFACE.len()..]) {
        Block::Headers(block) => block,
        Block::More => return Check::Likely(AppProtocol::Http2, plain()),
        // The 24-byte preface alone is proof enough of HTTP/2.
        Block::Broken => return yes(AppProtocol::Http2, plain()),
    };
    let mut fields: Vec<(&str, Value)> = Vec::new();
    let mut grpc = false;
    let decoded = decode_block(&block, |name, value| {
        let key = match name {
            b":method" => "method",
            b":path" => "path",
            b":authority" => "authority",
            b"user-agent" => "user_agent",
            b"content-type" => {
                grpc = value.starts_with(b"application/grpc");
                "content_type"
            }
            _ => return,
        };
        fields.push((key, lossy(value)));
    });
    if !decoded {
        return yes(AppProtocol::Http2, plain());
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == k)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    if grpc {
        // `/package.Service/Method`
        let path = get("path");
        let (service, method) = path
            .as_str()
            .and_then(|p| p.strip_prefix('/'))
            .and_then(|p| p.split_once('/'))
            .map_or((Value::Null, Value::Null), |(s, m)| (json!(s), json!(m)));
        return yes(
            AppProtocol::Grpc,
            detail([
                ("service", service),
                ("method", method),
                ("authority", get("authority")),
                ("user_agent", get("user_agent")),
                ("content_type", get("content_type")),
            ]),
        );
    }
    yes(
        AppProtocol::Http2,
        detail([
            ("prior_knowledge", Value::Bool(true)),
            ("method", get("method")),
            ("path", get("path")),
            ("authority", get("authority")),
            ("user_agent", get("user_agent")),
        ]),
    )
}

/// The largest frame a peer sends unless told otherwise (SETTINGS_MAX_FRAME_SIZE's
/// initial value); mid-connection this also keeps other protocols' length fields out.
const MAX_FRAME: usize = 16_384;
const PUSH_PROMISE: u8 = 5;
const ACK: u8 = 0x1;

/// Whether a frame header follows the rules of its type (RFC 9113 section 6; ALTSVC,
/// ORIGIN and PRIORITY_UPDATE from RFCs 7838, 8336 and 9218): the flags the type
/// defines, the stream it may be on, its length.
fn valid_header(kind: u8, flags: u8, stream: u32, len: usize) -> bool {
    let allowed = match kind {
        DATA => ACK | PADDED,
        HEADERS => ACK | END_HEADERS | PADDED | PRIORITY,
        SETTINGS | 6 => ACK,
        PUSH_PROMISE => END_HEADERS | PADDED,
        CONTINUATION => END_HEADERS,
        2 | 3 | 7 | 8 | 0xa | 0xc | 0x10 => 0,
        _ => return false,
    };
    // Senders leave undefined flags and the stream id's reserved bit unset.
    if flags & !allowed != 0 || stream & 0x8000_0000 != 0 || len > MAX_FRAME {
        return false;
    }
    match kind {
        DATA | HEADERS | PUSH_PROMISE | CONTINUATION => stream != 0,
        2 => stream != 0 && len == 5,
        3 => stream != 0 && len == 4,
        SETTINGS => stream == 0 && len.is_multiple_of(6) && (flags & ACK == 0 || len == 0),
        6 => stream == 0 && len == 8,
        7 => stream == 0 && len >= 8,
        8 => len == 4,
        0xa => len >= 2,
        _ => stream == 0,
    }
}

/// A DATA payload that is exactly one gRPC length-prefixed message (compressed flag,
/// 4-byte length).
fn grpc_message(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(0 | 1))
        && be32(payload, 1).is_some_and(|n| n as usize + 5 == payload.len())
}

/// Mid-connection (a capture that began after the preface): a run of frames, each
/// following its type's rules, from the first byte. gRPC if a DATA frame holds one whole
/// gRPC message or a header block sends `content-type: application/grpc` as a literal.
pub(crate) fn frames(b: &[u8]) -> Check {
    let (mut at, mut whole, mut grpc, mut streams) = (0, 0usize, false, false);
    while let Some((len, kind, flags, stream)) = header(b, at) {
        if !valid_header(kind, flags, stream, len) {
            return Check::No;
        }
        let Some(payload) = b.get(at + 9..at + 9 + len) else {
            break;
        };
        if kind == 8 && be32(payload, 0).is_some_and(|n| n & 0x7fff_ffff == 0) {
            return Check::No;
        }
        grpc |= kind == DATA && flags & PADDED == 0 && grpc_message(payload)
            || kind == HEADERS
                && fragment(flags, payload)
                    .and_then(literal_content_type)
                    .is_some_and(|t| t.starts_with(b"application/grpc"));
        streams |= stream & 0x7fff_ffff != 0;
        whole += 1;
        at += 9 + len;
    }
    if at < b.len() && whole == 0 {
        // The first header is not all there: plausible while its length can be.
        let short = usize::from(b[0]) << 16 | usize::from(b.get(1).copied().unwrap_or(0)) << 8;
        return if short <= MAX_FRAME {
            Check::More
        } else {
            Check::No
        };
    }
    let app = if grpc {
        AppProtocol::Grpc
    } else {
        AppProtocol::Http2
    };
    let d = detail([("midstream", Value::Bool(true)), ("frames", json!(whole))]);
    // Two whole frames prove it if one belongs to a stream; one, or only connection
    // control (SETTINGS, its ACK, WINDOW_UPDATE on stream 0: a server's first frames),
    // is HTTP/2 unless the other side proves more (the client's preface and first
    // request show whether it is gRPC).
    if whole >= 2 && (grpc || streams) {
        yes(app, d)
    } else if whole >= 1 {
        Check::Likely(app, d)
    } else {
        Check::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A client opening: preface, SETTINGS, WINDOW_UPDATE, then HEADERS (HPACK-encoded,
    /// Huffman on) for `headers`, possibly split into a CONTINUATION.
    fn opening(headers: &[(&[u8], &[u8])], split: bool) -> Vec<u8> {
        let mut enc = loona_hpack::Encoder::new();
        let block = enc.encode(headers.iter().copied());
        let mut b = PREFACE.to_vec();
        b.extend(frame_bytes(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        b.extend(frame_bytes(8, 0, 0, &[0, 0, 0xff, 0]));
        if split {
            let (x, y) = block.split_at(block.len() / 2);
            b.extend(frame_bytes(HEADERS, 0, 1, x));
            b.extend(frame_bytes(CONTINUATION, END_HEADERS, 1, y));
        } else {
            b.extend(frame_bytes(HEADERS, END_HEADERS, 1, &block));
        }
        b
    }

    const GRPC: &[(&[u8], &[u8])] = &[
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/greet.GreetService/Greet"),
        (b":authority", b"[::1]:50051"),
        (b"content-type", b"application/grpc"),
        (b"user-agent", b"grpc-go/1.64.0"),
        (b"te", b"trailers"),
    ];

    #[test]
    fn grpc_from_the_decoded_headers() {
        for split in [false, true] {
            match preface(&opening(GRPC, split)) {
                Check::Yes(AppProtocol::Grpc, d) => {
                    assert_eq!(d["service"], "greet.GreetService");
                    assert_eq!(d["method"], "Greet");
                    assert_eq!(d["authority"], "[::1]:50051");
                }
                c => panic!("{c:?}"),
            }
        }
    }

    #[test]
    fn plain_http2_request() {
        let h: &[(&[u8], &[u8])] = &[
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/index.html"),
            (b":authority", b"example.com"),
        ];
        match preface(&opening(h, false)) {
            Check::Yes(AppProtocol::Http2, d) => assert_eq!(d["path"], "/index.html"),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn before_the_first_request_it_is_likely_http2() {
        let b = opening(GRPC, false);
        let settings_end = PREFACE.len() + 15;
        assert!(matches!(
            preface(&b[..settings_end]),
            Check::Likely(AppProtocol::Http2, _)
        ));
        assert_eq!(preface(&b[..10]), Check::More);
    }

    #[test]
    fn not_http2() {
        assert_eq!(preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"), Check::No);
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), Check::No);
        // Garbage HPACK after a valid preface is still HTTP/2, never gRPC.
        let mut b = PREFACE.to_vec();
        b.extend(frame_bytes(SETTINGS, 0, 0, &[]));
        b.extend(frame_bytes(
            HEADERS,
            END_HEADERS,
            1,
            &[0xff, 0xff, 0xff, 0xff, 0xff],
        ));
        assert!(matches!(preface(&b), Check::Yes(AppProtocol::Http2, _)));
    }
    #[test]
    fn content_type_literals_without_the_dynamic_table() {
        // `:method GET`, `:scheme http` indexed, a table size update, then a literal
        // content-type (Huffman-coded, as grpc-go sends it) after a literal name.
        let block = b"\x82\x86\x3f\xe1\x1f\x40\x01x\x01y\x5f\x8b\x1d\x75\xd0\x62\x0d\x26\x3d\x4c\x4d\x65\x64";
        assert_eq!(
            literal_content_type(block).as_deref(),
            Some(&b"application/grpc"[..])
        );
        assert_eq!(
            literal_content_type(b"\x0f\x10\x09text/html").as_deref(),
            Some(&b"text/html"[..])
        );
        // A dynamic table reference says nothing; a cut literal neither.
        assert_eq!(literal_content_type(b"\x82\xbe"), None);
        assert_eq!(literal_content_type(b"\x5f\x8b\x1d\x75"), None);
    }

    proptest::proptest! {
        #[test]
        fn header_blocks_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = literal_content_type(&b);
            let _ = frames(&frame_bytes(HEADERS, END_HEADERS, 1, &b));
        }
    }
}
