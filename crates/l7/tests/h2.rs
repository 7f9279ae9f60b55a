//! HTTP/2 (h2c) and gRPC sessions on frame sequences built with a real HPACK encoder
//! (dynamic table on, as gRPC clients use it): requests decided per stream, refusals as
//! trailers-only responses, the server's HPACK view kept in sync after a refusal, and the
//! same result however both streams are split.

mod common;
#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::h2::{PREFACE, frame, settings_frames};
use bulkhead_l7::{H2Session, Output, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request};
use common::{Frames, frames, pieces};
use proptest::prelude::*;

/// gRPC: only pkg.Greeter; plain HTTP/2: only GET.
fn policy(r: &L7Request) -> Verdict {
    let allowed = match &r.detail {
        L7Detail::Grpc { service, .. } => service == "pkg.Greeter",
        L7Detail::Http { method, .. } => method == "GET",
        d => panic!("{d:?}"),
    };
    Verdict { allowed }
}

const HEADERS: u8 = 1;
const DATA: u8 = 0;
const SETTINGS: u8 = 4;

fn grpc(path: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "greeter:50051"),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
        (
            "user-agent",
            "grpc-python/1.51.1 grpc-c/29.0.0 (linux; chttp2)",
        ),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn enc(e: &mut loona_hpack::Encoder<'static>, fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    e.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])))
}

/// A gRPC message: compressed flag, length, bytes.
fn message(b: &[u8]) -> Vec<u8> {
    [vec![0], (b.len() as u32).to_be_bytes().to_vec(), b.to_vec()].concat()
}

/// Three calls on streams 1, 3, 5: Greeter (allowed), Admin (denied), Greeter again
/// (its block refers to the dynamic table entries the first one made). Stream 1's
/// block is split into HEADERS + CONTINUATION.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut e = loona_hpack::Encoder::new();
    let b1 = enc(&mut e, &grpc("/pkg.Greeter/SayHello"));
    let b3 = enc(&mut e, &grpc("/pkg.Admin/DropAll"));
    let b5 = enc(&mut e, &grpc("/pkg.Greeter/SayHello"));
    let (x, y) = b1.split_at(10);
    let client = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]),
        frame(HEADERS, 0, 1, x),
        frame(9, 4, 1, y),
        frame(DATA, 1, 1, &message(b"\x0a\x03bob")),
        frame(HEADERS, 4, 3, &b3),
        frame(DATA, 1, 3, &message(b"everything")),
        frame(HEADERS, 4, 5, &b5),
        frame(DATA, 1, 5, &message(b"\x0a\x05alice")),
    ]
    .concat();
    // The server: SETTINGS, SETTINGS ack, then stream 1's response (headers split).
    let mut se = loona_hpack::Encoder::new();
    let rh = enc(
        &mut se,
        &[
            (b":status".to_vec(), b"200".to_vec()),
            (b"content-type".to_vec(), b"application/grpc".to_vec()),
        ],
    );
    let (p, q) = rh.split_at(3);
    let tr = enc(&mut se, &[(b"grpc-status".to_vec(), b"0".to_vec())]);
    let server = [
        frame(SETTINGS, 0, 0, &[]),
        frame(SETTINGS, 1, 0, &[]),
        frame(HEADERS, 0, 1, p),
        frame(9, 4, 1, q),
        frame(DATA, 0, 1, &message(b"\x0a\x09hello bob")),
        frame(HEADERS, 5, 1, &tr),
    ]
    .concat();
    (client, server)
}

/// Feed all of `client`, then all of `server`, cut into pieces of the given sizes.
fn run(client: &[u8], server: &[u8], cc: &[usize], sc: &[usize]) -> Output {
    let mut sess = H2Session::new();
    let mut all = Output::default();
    for p in pieces(client, cc) {
        all.merge(sess.client_bytes(&p, &mut policy));
    }
    for p in pieces(server, sc) {
        all.merge(sess.server_bytes(&p));
    }
    all
}

/// Decode header blocks as a peer would (one decoder, in order): (stream, fields) per
/// block, and DATA payloads by stream.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;
/// Header blocks and DATA payloads, by stream.
type View = (Vec<(u32, Fields)>, Vec<(u32, Vec<u8>)>);

fn peer_view(fs: &Frames) -> View {
    let mut dec = loona_hpack::Decoder::new();
    let (mut blocks, mut data) = (Vec::new(), Vec::new());
    let mut acc: Option<(u32, Vec<u8>)> = None;
    for (kind, flags, stream, p) in fs {
        match kind {
            1 => {
                let mut f = &p[..];
                if flags & 0x20 != 0 {
                    f = &f[5..];
                }
                acc = Some((*stream, f.to_vec()));
            }
            9 => acc.as_mut().unwrap().1.extend_from_slice(p),
            0 => data.push((*stream, p.clone())),
            _ => {}
        }
        if matches!(kind, 1 | 9) && flags & 4 != 0 {
            let (s, b) = acc.take().unwrap();
            blocks.push((s, dec.decode(&b).expect("the peer decodes every block")));
        }
    }
    (blocks, data)
}

#[test]
fn grpc_calls_are_decided_per_stream_and_the_server_table_stays_in_sync() {
    let (client, server) = conversation();
    let out = run(&client, &server, &[], &[]);
    assert!(!out.close);
    let d: Vec<(String, bool, Option<String>)> = out
        .decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed, d.refusal.clone()))
        .collect();
    assert_eq!(
        d,
        [
            ("grpc pkg.Greeter/SayHello".to_string(), true, None),
            (
                "grpc pkg.Admin/DropAll".into(),
                false,
                Some("grpc-status 7 PERMISSION_DENIED".into())
            ),
            ("grpc pkg.Greeter/SayHello".into(), true, None),
        ]
    );
    // The server gets the preface, SETTINGS, streams 1 and 5 (5 re-encoded), and
    // decodes both blocks to exactly what the client sent.
    assert!(out.to_server.starts_with(PREFACE));
    let fs = frames(&out.to_server[PREFACE.len()..]);
    assert!(fs.iter().all(|f| f.2 != 3), "nothing of stream 3: {fs:?}");
    let (blocks, data) = peer_view(&fs);
    assert_eq!(
        blocks,
        [
            (1, grpc("/pkg.Greeter/SayHello")),
            (5, grpc("/pkg.Greeter/SayHello"))
        ]
    );
    assert_eq!(
        data,
        [(1, message(b"\x0a\x03bob")), (5, message(b"\x0a\x05alice"))]
    );
    // Stream 1's frames passed byte for byte (no refusal before them).
    let mut e = loona_hpack::Encoder::new();
    let b1 = enc(&mut e, &grpc("/pkg.Greeter/SayHello"));
    assert_eq!(fs[1].3, b1[..10]);

    // The client gets the server's SETTINGS (its connection preface, 9 bytes), then the
    // refusal for stream 3 and the window its DATA used, then the server's other frames
    // untouched.
    assert_eq!(out.to_client[..9], server[..9]);
    let cf = frames(&out.to_client[9..]);
    let (blocks, _) = peer_view(&cf[..2].to_vec());
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 3);
    let field = |n: &str| {
        blocks[0]
            .1
            .iter()
            .find(|(k, _)| k == n.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(field(":status").as_deref(), Some("200"));
    assert_eq!(field("grpc-status").as_deref(), Some("7"));
    assert_eq!(field("content-type").as_deref(), Some("application/grpc"));
    assert!(field("grpc-message").unwrap().contains("pkg.Admin/DropAll"));
    assert_eq!(cf[0].1, 0x5, "END_STREAM | END_HEADERS");
    // The request was still open: RST_STREAM(NO_ERROR) tells the client to stop.
    assert_eq!(
        (cf[1].0, cf[1].2, &cf[1].3[..]),
        (3, 3, &[0u8, 0, 0, 0][..])
    );
    assert_eq!(cf[2].0, 8, "WINDOW_UPDATE");
    assert_eq!(cf[2].2, 0);
    assert_eq!(
        u32::from_be_bytes(cf[2].3[..4].try_into().unwrap()) as usize,
        message(b"everything").len()
    );
    assert_eq!(out.to_client[9 + cf_len(&cf[..3])..], server[9..]);
}

fn cf_len(fs: &[(u8, u8, u32, Vec<u8>)]) -> usize {
    fs.iter().map(|f| 9 + f.3.len()).sum()
}

#[test]
fn a_refusal_waits_for_the_end_of_a_server_frame_and_header_block() {
    let (client, server) = conversation();
    let mut sess = H2Session::new();
    // The server is inside a header block (HEADERS without END_HEADERS) when the denied
    // call arrives: the refusal goes after the CONTINUATION.
    let mut se = loona_hpack::Encoder::new();
    let rh = enc(&mut se, &[(b":status".to_vec(), b"200".to_vec())]);
    let first = frame(HEADERS, 0, 1, &rh);
    let mut out = sess.server_bytes(&frame(SETTINGS, 0, 0, &[]));
    out.merge(sess.server_bytes(&first));
    let before = out.to_client.len();
    out.merge(sess.client_bytes(&client, &mut policy));
    assert_eq!(
        out.to_client.len(),
        before,
        "nothing inside the header block"
    );
    out.merge(sess.server_bytes(&frame(9, 4, 1, &[])));
    let fs = frames(&out.to_client);
    assert_eq!(fs[2].0, 9);
    assert_eq!((fs[3].0, fs[3].2), (HEADERS, 3), "{fs:?}");
    assert_eq!((fs[4].0, fs[4].2), (3, 3), "{fs:?}");
    let _ = server;
}

#[test]
fn plain_http2_requests_get_403_and_other_streams_go_on() {
    let mut e = loona_hpack::Encoder::new();
    let req = |e: &mut loona_hpack::Encoder<'static>, m: &str, p: &str| {
        enc(
            e,
            &[
                (b":method".to_vec(), m.as_bytes().to_vec()),
                (b":scheme".to_vec(), b"http".to_vec()),
                (b":path".to_vec(), p.as_bytes().to_vec()),
                (b":authority".to_vec(), b"api:8080".to_vec()),
                (b"x-user".to_vec(), b"u1".to_vec()),
            ],
        )
    };
    let b1 = req(&mut e, "DELETE", "/orders/1");
    let b3 = req(&mut e, "GET", "/orders/1");
    // Padded and with priority: the proxy strips neither from what it decodes.
    let mut padded = vec![2u8, 0, 0, 0, 0, 16];
    padded.extend_from_slice(&b3);
    padded.extend_from_slice(&[0, 0]);
    let client = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, 5, 1, &b1),
        frame(HEADERS, 5 | 0x8 | 0x20, 3, &padded),
    ]
    .concat();
    let out = run(&client, &frame(SETTINGS, 0, 0, &[]), &[], &[]);
    assert!(!out.close);
    let d: Vec<String> = out.decided.iter().map(|d| d.request.to_string()).collect();
    assert_eq!(
        d,
        [
            "http2 DELETE /orders/1 host=api header:x-user=u1",
            "http2 GET /orders/1 host=api header:x-user=u1"
        ]
    );
    assert_eq!(out.decided[0].refusal.as_deref(), Some("403 Forbidden"));
    let (blocks, _) = peer_view(&frames(&out.to_server[PREFACE.len()..]));
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 3);
    assert!(
        blocks[0]
            .1
            .contains(&(b":method".to_vec(), b"GET".to_vec()))
    );
    let (blocks, _) = peer_view(&frames(&out.to_client));
    assert_eq!(blocks[0].0, 1);
    assert_eq!(blocks[0].1[0], (b":status".to_vec(), b"403".to_vec()));
    // Priority kept on the re-encoded frame.
    let fs = frames(&out.to_server[PREFACE.len()..]);
    assert_eq!(fs[1].1 & 0x20, 0x20);
    assert_eq!(&fs[1].3[..5], &[0, 0, 0, 0, 16]);
}

#[test]
fn undecodable_or_malformed_header_blocks_close_the_connection() {
    let bad_index = [0x80 | 70]; // a dynamic table entry that does not exist
    for client in [
        [PREFACE.to_vec(), frame(HEADERS, 5, 1, &bad_index)].concat(),
        // HEADERS on an even stream, a frame inside a header block, a bad preface.
        [PREFACE.to_vec(), frame(HEADERS, 5, 2, &[0x82])].concat(),
        [
            PREFACE.to_vec(),
            frame(HEADERS, 0, 1, &[0x82]),
            frame(DATA, 0, 1, b"x"),
        ]
        .concat(),
        b"PRI * HTTP/1.1\r\n\r\n".to_vec(),
        // A client may not push: its header block would reach the server undecided.
        [PREFACE.to_vec(), frame(5, 4, 1, &[0, 0, 0, 2, 0x82])].concat(),
        // Oversized table size update.
        [
            PREFACE.to_vec(),
            frame(HEADERS, 5, 1, &[0x3f, 0xe1, 0xff, 0x07, 0x82]),
        ]
        .concat(),
    ] {
        let out = run(&client, &[], &[], &[]);
        assert!(out.close, "{client:?}");
        assert!(out.decided.is_empty());
        assert!(out.to_server.len() <= PREFACE.len() + 9);
    }
}

#[test]
fn frames_on_a_refused_stream_are_dropped_and_rst_follows_an_open_request() {
    let mut e = loona_hpack::Encoder::new();
    let b = enc(&mut e, &grpc("/pkg.Admin/Stream"));
    let client = [
        PREFACE.to_vec(),
        frame(HEADERS, 4, 1, &b),
        frame(DATA, 0, 1, &message(b"one")),
        frame(8, 0, 1, &[0, 0, 1, 0]),
        frame(3, 0, 1, &[0, 0, 0, 8]),
    ]
    .concat();
    let out = run(&client, &frame(SETTINGS, 0, 0, &[]), &[], &[]);
    assert_eq!(out.to_server, PREFACE);
    let fs = frames(&out.to_client);
    let kinds: Vec<(u8, u32)> = fs.iter().map(|f| (f.0, f.2)).collect();
    assert_eq!(kinds, [(SETTINGS, 0), (1, 1), (3, 1), (8, 0)]);
}

#[test]
fn trailers_pass_only_on_a_stream_the_client_is_still_sending_on() {
    let mut e = loona_hpack::Encoder::new();
    let b3 = enc(&mut e, &grpc("/pkg.Greeter/Stream"));
    let trailers = enc(&mut e, &[(b"x-done".to_vec(), b"1".to_vec())]);
    // Its own table: what it refers to must be there whatever came before.
    let b1 = enc(
        &mut loona_hpack::Encoder::new(),
        &grpc("/pkg.Greeter/Stream"),
    );
    let open = [
        PREFACE.to_vec(),
        frame(HEADERS, 4, 3, &b3),
        frame(DATA, 0, 3, &message(b"a")),
        frame(HEADERS, 5, 3, &trailers),
    ]
    .concat();
    let out = run(&open, &[], &[], &[]);
    assert!(!out.close);
    assert_eq!(out.decided.len(), 1, "trailers are not a request");
    assert_eq!(out.to_server, open);
    // A HEADERS on stream 1, never opened and below 3, would be a request nobody
    // decided; after END_STREAM, HEADERS on 3 too.
    for late in [frame(HEADERS, 5, 1, &b1), frame(HEADERS, 5, 3, &trailers)] {
        let out = run(&[open.clone(), late].concat(), &[], &[], &[]);
        assert!(out.close);
        assert_eq!(out.to_server, open);
    }
}

#[test]
fn after_a_refusal_the_client_table_size_updates_still_reach_the_server() {
    let mut e = loona_hpack::Encoder::new();
    let denied = enc(&mut e, &grpc("/pkg.Admin/DropAll"));
    let fields = grpc("/pkg.Greeter/SayHello");
    let mut b3 = vec![0x20 | 0x1f, 0x01]; // size update to 32, then the fields
    b3.extend(bulkhead_l7::h2::literal_block(
        fields.iter().map(|(n, v)| (&n[..], &v[..])),
    ));
    let client = [
        PREFACE.to_vec(),
        frame(HEADERS, 5, 1, &denied),
        frame(HEADERS, 5, 3, &b3),
    ]
    .concat();
    let out = run(&client, &[], &[], &[]);
    assert!(!out.close);
    let fs = frames(&out.to_server[PREFACE.len()..]);
    assert_eq!(fs.len(), 1);
    assert_eq!(&fs[0].3[..2], &[0x3f, 0x01]);
    let (blocks, _) = peer_view(&fs);
    assert_eq!(blocks, [(3, fields)]);
}

/// A client that sends its first request with its preface (curl) gets the proxy's
/// refusal only after the server's SETTINGS, the first frame a server sends (nghttp2
/// drops a connection that starts otherwise); a client's SETTINGS ACK shows that it has
/// them (relayed by the proxy before the session began).
#[test]
fn a_refusal_waits_for_the_servers_connection_preface() {
    let block = enc(
        &mut loona_hpack::Encoder::new(),
        &grpc("/pkg.Admin/DropAll"),
    );
    let opening = [
        PREFACE.to_vec(),
        frame(SETTINGS, 0, 0, &[]),
        frame(HEADERS, 5, 1, &block),
    ]
    .concat();
    let settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let mut sess = H2Session::new();
    let out = sess.client_bytes(&opening, &mut policy);
    assert!(out.to_client.is_empty());
    assert_eq!(
        out.decided[0].refusal.as_deref(),
        Some("grpc-status 7 PERMISSION_DENIED")
    );
    // Half the server's SETTINGS: still nothing of the proxy's.
    assert_eq!(sess.server_bytes(&settings[..10]).to_client, settings[..10]);
    let out = sess.server_bytes(&settings[10..]);
    assert_eq!(out.to_client[..settings.len() - 10], settings[10..]);
    let fs = frames(&out.to_client[settings.len() - 10..]);
    assert_eq!((fs[0].0, fs[0].2), (HEADERS, 1), "{fs:?}");

    // The server's SETTINGS relayed: the client's ACK lets the refusal out.
    let ack = frame(SETTINGS, 1, 0, &[]);
    let waited = [
        &opening[..PREFACE.len() + 9],
        &ack,
        &opening[PREFACE.len() + 9..],
    ]
    .concat();
    let out = H2Session::new().client_bytes(&waited, &mut policy);
    assert_eq!(out.to_server, waited[..PREFACE.len() + 18]);
    let fs = frames(&out.to_client);
    assert_eq!((fs[0].0, fs[0].1, fs[0].2), (HEADERS, 5, 1), "{fs:?}");
}

#[test]
fn settings_frames_are_the_servers_leading_settings_and_window_updates() {
    let settings = frame(SETTINGS, 0, 0, &[0, 4, 0, 0x3f, 0xff, 0xff]);
    let update = frame(8, 0, 0, &[0, 0, 0x3f, 0]);
    let lead = [settings.clone(), update.clone(), frame(SETTINGS, 1, 0, &[])].concat();
    assert_eq!(settings_frames(&lead), lead.len());
    // A partial frame, a frame on a stream, a header block or a PING end them.
    for tail in [
        settings[..settings.len() - 1].to_vec(),
        frame(8, 0, 1, &[0, 0, 1, 0]),
        frame(HEADERS, 4, 0, &[0x88]),
        frame(6, 0, 0, &[0; 8]),
    ] {
        assert_eq!(settings_frames(&[lead.clone(), tail].concat()), lead.len());
    }
    assert_eq!(settings_frames(&settings[..5]), 0);
    assert_eq!(settings_frames(&[]), 0);
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(
        cc in proptest::collection::vec(1usize..64, 0..80),
        sc in proptest::collection::vec(1usize..64, 0..40),
    ) {
        let (client, server) = conversation();
        let whole = run(&client, &server, &[], &[]);
        let cut = run(&client, &server, &cc, &sc);
        prop_assert_eq!(&cut.to_server, &whole.to_server);
        prop_assert_eq!(&cut.to_client, &whole.to_client);
        prop_assert_eq!(&cut.decided, &whole.decided);
        prop_assert!(!whole.close);
    }

    #[test]
    fn truncations_never_panic_and_decide_a_prefix(at in 0usize..400) {
        let (client, server) = conversation();
        let at = at.min(client.len());
        let whole = run(&client, &server, &[], &[]);
        let part = run(&client[..at], &server, &[7; 100], &[5; 100]);
        prop_assert!(!part.close);
        prop_assert!(whole.decided.starts_with(&part.decided));
        prop_assert!(whole.to_server.starts_with(&part.to_server));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        c in proptest::collection::vec(any::<u8>(), 0..2048),
        sv in proptest::collection::vec(any::<u8>(), 0..2048),
        cut in 1usize..100,
    ) {
        let _ = run(&[PREFACE.to_vec(), c].concat(), &sv, &[cut; 100], &[cut; 100]);
        prop_assert!(settings_frames(&sv) <= sv.len());
    }

    #[test]
    fn a_corrupted_conversation_never_panics(i in 0usize..2000, v: u8, cut in 1usize..64) {
        let (mut client, mut server) = conversation();
        let n = client.len();
        client[i % n] = v;
        let m = server.len();
        server[i % m] ^= v;
        let _ = run(&client, &server, &[cut; 200], &[cut; 200]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(
        edits in edit::edits(),
        cc in proptest::collection::vec(1usize..64, 0..80),
        sc in proptest::collection::vec(1usize..64, 0..40),
    ) {
        let (mut client, mut server) = conversation();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cc, &sc);
    }

    /// The proxy relays a server's leading SETTINGS while it waits for the client's first
    /// request, and starts the session after them: that session writes what one that saw
    /// them would have written after them, whatever the server sends next.
    #[test]
    fn a_session_after_relayed_settings_acts_as_one_that_saw_them(
        values in proptest::collection::vec(any::<[u8; 6]>(), 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
        cut in 1usize..64,
    ) {
        let (client, server) = conversation();
        // A client that waited for the server's SETTINGS acknowledges them first.
        let at = PREFACE.len() + 15;
        let client = [&client[..at], &frame(SETTINGS, 1, 0, &[]), &client[at..]].concat();
        let lead = [frame(SETTINGS, 0, 0, &values.concat()), frame(8, 0, 0, &[0, 0, 1, 0])].concat();
        let first = [lead.clone(), tail].concat();
        let n = settings_frames(&first);
        prop_assert!(n >= lead.len() && n <= first.len());
        let mut saw = H2Session::new();
        let mut all = saw.server_bytes(&first);
        prop_assert_eq!(&all.to_client, &first);
        let mut late = H2Session::new();
        let mut rest = late.server_bytes(&first[n..]);
        for (sess, out) in [(&mut saw, &mut all), (&mut late, &mut rest)] {
            for p in pieces(&client, &[cut; 100]) {
                out.merge(sess.client_bytes(&p, &mut policy));
            }
            out.merge(sess.server_bytes(&server));
        }
        prop_assert_eq!(&all.to_client[n..], &rest.to_client[..]);
        prop_assert_eq!(&all.to_server, &rest.to_server);
        prop_assert_eq!(&all.decided, &rest.decided);
    }
}
