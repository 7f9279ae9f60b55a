//! HTTP/1.x sessions: decisions on method/path/host, 403 in pipeline order, bodies of
//! denied requests discarded, responses framed (length, chunked, HEAD, 204, 1xx, 101),
//! the same result however the streams are split.

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{HttpSession, Output, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request, http_path};
use proptest::prelude::*;

/// Deny anything under /admin.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Http { path, .. } = &r.detail else {
        panic!("{r:?}")
    };
    Verdict {
        allowed: !path.starts_with("/admin"),
    }
}

/// (to the server, to the client, decisions, closed)
type Run = (Vec<u8>, Vec<u8>, Vec<(String, bool)>, bool);

fn run(client: &[u8], server: &[u8], cuts: &[usize]) -> Run {
    let mut s = HttpSession::new();
    let mut all = Output::default();
    for (data, from_client) in [(client, true), (server, false)] {
        let mut at = 0;
        let mut k = 0;
        while at < data.len() {
            let n = cuts
                .get(k)
                .copied()
                .unwrap_or(data.len())
                .max(1)
                .min(data.len() - at);
            k += 1;
            let out = if from_client {
                s.client_bytes(&data[at..at + n], &mut policy)
            } else {
                s.server_bytes(&data[at..at + n])
            };
            all.merge(out);
            at += n;
        }
    }
    let decided = all
        .decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed))
        .collect();
    (all.to_server, all.to_client, decided, all.close)
}

const R1: &[u8] = b"GET /a HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n";
const ADMIN: &[u8] =
    b"POST /admin/delete HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 11\r\n\r\nhello world";
const R2: &[u8] = b"GET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n";
const RESP1: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nA!";
const RESP2: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nB!\r\n0\r\n\r\n";

#[test]
fn denied_request_gets_403_in_order_and_its_body_is_dropped() {
    let client = [R1, ADMIN, R2].concat();
    let server = [RESP1, RESP2].concat();
    let (to_server, to_client, decided, close) = run(&client, &server, &[]);
    assert_eq!(
        to_server,
        [R1, R2].concat(),
        "the denied request and its body never reach the server"
    );
    let text = String::from_utf8(to_client).unwrap();
    let first = text.find("A!").unwrap();
    let forbidden = text.find("403 Forbidden").unwrap();
    let second = text.find("B!").unwrap();
    assert!(first < forbidden && forbidden < second, "{text}");
    assert!(!close);
    assert_eq!(
        decided[0],
        (
            "http GET /a host=shop.example header:host=shop.example:8080".into(),
            true
        )
    );
    assert!(!decided[1].1);
    assert_eq!(decided.len(), 3);
}

#[test]
fn the_refusal_is_a_valid_http_response() {
    let (_, to_client, _, _) = run(ADMIN, b"", &[]);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(&to_client).unwrap() else {
        panic!()
    };
    assert_eq!(r.code, Some(403));
    let len: usize = std::str::from_utf8(
        r.headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .unwrap()
            .value,
    )
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(to_client.len(), n + len);
}

#[test]
fn head_204_interim_and_upgrade_responses_are_framed() {
    let client = b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let server = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let (_, to_client, _, _) = run(client, server, &[]);
    let text = String::from_utf8(to_client).unwrap();
    assert!(text.ends_with("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 35\r\nConnection: keep-alive\r\n\r\nbulkhead: request denied by policy\n"), "{text}");

    let client = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello";
    let server = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
    let mut s = HttpSession::new();
    // The client sends its first frame right behind the request: held until the 101.
    let a = s.client_bytes(client, &mut policy);
    assert!(a.to_server.ends_with(b"\r\n\r\n"));
    let b = s.server_bytes(server);
    assert_eq!([a.to_server, b.to_server].concat(), client.to_vec());
    assert_eq!(b.to_client, server.to_vec());
    let c = s.client_bytes(b"\x81\x01!", &mut policy);
    assert_eq!(c.to_server, b"\x81\x01!".to_vec());
}

/// A `101` answering a request that did not ask to upgrade (a backend whose status
/// code the client steers) ends the connection: the client's next bytes are never
/// passed on undecided. A WebSocket upgrade it asked for still switches.
#[test]
fn a_switch_nobody_asked_for_closes_the_connection() {
    let mut s = HttpSession::new();
    let out = s.client_bytes(
        b"GET /status?code=101 HTTP/1.1\r\nHost: a\r\n\r\n",
        &mut policy,
    );
    assert!(!out.to_server.is_empty());
    let out = s.server_bytes(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert!(out.close);
    let out = s.client_bytes(b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", &mut policy);
    assert!(
        out.to_server.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.to_server)
    );

    let ws = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for (answer, switched) in [
        (&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"[..], true),
        (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", false),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", false),
    ] {
        let mut s = HttpSession::new();
        s.client_bytes(ws, &mut policy);
        let out = s.server_bytes(answer);
        assert_eq!(out.close, !switched, "{}", String::from_utf8_lossy(answer));
        let out = s.client_bytes(b"\x81\x05hello", &mut policy);
        assert_eq!(out.to_server.is_empty(), !switched);
    }
}

/// A refused request whose client waits for `100 Continue` gets its 403 and the
/// connection closes: the body it then never sends is not awaited, so its next request
/// is not taken for that body.
#[test]
fn a_refused_request_expecting_continue_closes() {
    let mut s = HttpSession::new();
    let out = s.client_bytes(
        b"POST /admin/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
        &mut policy,
    );
    let text = String::from_utf8_lossy(&out.to_client);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("Connection: close"),
        "{text}"
    );
    assert!(out.close);
    assert!(out.to_server.is_empty());
    // Without Expect the body is read and dropped, and the connection stays.
    let (to_server, _, decided, close) = run(&[ADMIN, R2].concat(), RESP1, &[]);
    assert_eq!(to_server, R2);
    assert_eq!(decided.len(), 2);
    assert!(!close);
}

/// An absolute-form target names the host the server takes (RFC 9112 3.2.2), whatever
/// `Host` says: that host is the one decided.
#[test]
fn an_absolute_form_target_names_the_host() {
    let client = b"GET http://internal.example:8080/x HTTP/1.1\r\nHost: public.example\r\n\r\n";
    let (_, _, decided, _) = run(client, RESP1, &[]);
    assert!(
        decided[0]
            .0
            .starts_with("http GET http://internal.example:8080/x host=internal.example "),
        "{decided:?}"
    );
    let client = b"GET http://user@internal.example?q HTTP/1.1\r\nHost: public.example\r\n\r\n";
    let (_, _, decided, _) = run(client, RESP1, &[]);
    assert!(
        decided[0].0.contains(" host=internal.example "),
        "{decided:?}"
    );
}

/// Request smuggling: a body framing a server behind the proxy could read otherwise
/// (RFC 9112 6.3) gets 400 and the connection closes; nothing after it is decided or
/// reaches the server, so no request rides past the policy inside another's body.
#[test]
fn ambiguous_body_framing_is_refused_with_400() {
    let smuggled = b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
    for fields in [
        &b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n"[..],
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\nContent-Length: 40\r\n",
        b"Content-Length: 5, 40\r\n",
        b"Content-Length: +40\r\n",
        b"Content-Length: 0x28\r\n",
        b"Content-Length: \r\n",
    ] {
        let client = [
            b"POST /ok HTTP/1.1\r\nHost: a\r\n",
            fields,
            b"\r\n",
            smuggled,
            R2,
        ]
        .concat();
        refused(&client, &String::from_utf8_lossy(fields));
    }
    // Two Host fields (RFC 9112 3.2): which one a `host` rule saw would be a guess.
    refused(
        &[
            &b"GET /ok HTTP/1.1\r\nHost: public.example\r\nHost: internal.example\r\n\r\n"[..],
            R2,
        ]
        .concat(),
        "two Host fields",
    );
    // Two Content-Types that differ: servers differ on which counts (Node, Go, Tomcat
    // the first), so the sensors could judge the body as what the server does not.
    refused(
        &[
            &b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Type: multipart/form-data; boundary=z\r\nContent-Length: 3\r\n\r\nq=1"[..],
            R2,
        ]
        .concat(),
        "two Content-Type fields",
    );
    // HTTP/1.0 has no transfer codings (RFC 9112 6.1).
    let http10 = b"POST /ok HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    refused(&[&http10[..], smuggled, R2].concat(), "HTTP/1.0");
    fn refused(client: &[u8], fields: &str) {
        let (to_server, to_client, decided, close) = run(client, RESP1, &[]);
        let text = String::from_utf8_lossy(&to_client);
        assert!(
            to_server.is_empty(),
            "{fields}: {}",
            String::from_utf8_lossy(&to_server)
        );
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{fields}: {text}"
        );
        assert!(close, "{fields}");
        assert_eq!(decided.len(), 1, "{fields}: {decided:?}");
        assert!(!decided[0].1, "{fields}");
    }
    // Framings every server reads alike pass: a repeated equal length, codings ending
    // in chunked.
    for fields in [
        &b"Content-Length: 5\r\nContent-Length: 5\r\n"[..],
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: 5\r\nContent-Type: text/plain\r\nContent-Type: text/plain \r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n",
    ] {
        let body: &[u8] = if fields.starts_with(b"Content") {
            b"hello"
        } else {
            b"5\r\nhello\r\n0\r\n\r\n"
        };
        let client = [
            b"POST /ok HTTP/1.1\r\nHost: a\r\n",
            fields,
            b"\r\n",
            body,
            R2,
        ]
        .concat();
        let (to_server, _, decided, close) = run(&client, [RESP1, RESP1].concat().as_slice(), &[]);
        assert_eq!(to_server, client, "{}", String::from_utf8_lossy(fields));
        assert_eq!(decided.len(), 2);
        assert!(!close);
    }
}

/// Chunked bodies are read exactly as RFC 9112 7.1 writes them: each chunk's data ends
/// in CRLF, size lines end in CRLF and hold hex digits only. A server that reads any of
/// these otherwise (nginx takes a bare LF after the data) would see other chunk sizes
/// than the proxy, and a request hidden in one chunk's bytes would run past the policy.
/// Such a body closes the connection where it goes wrong: nothing after it reaches the
/// server.
#[test]
fn chunked_bodies_are_framed_exactly() {
    let hidden = b"DELETE /admin HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n\r\n";
    // The proxy used to count "\na" as the data's CRLF, read "0" as the last chunk and
    // an allowed GET after it, with the DELETE in that GET's body; nginx reads a chunk
    // of 0xa0 bytes and then the DELETE as a request of its own.
    let smuggling = [
        &b"POST /ok HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\na0\r\n\r\n"[..],
        b"GET /ok HTTP/1.1\r\nHost: app\r\nContent-Length: 170\r\n\r\n",
        &[b'x'; 99],
        b"\r\n0\r\n\r\n",
        hidden,
    ]
    .concat();
    let bad_bodies: [&[u8]; 7] = [
        b"5\r\nhelloXY0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n",
    ];
    let mut cases = vec![smuggling];
    for body in bad_bodies {
        cases.push(
            [
                &b"POST /ok HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                body,
                hidden,
            ]
            .concat(),
        );
    }
    for client in &cases {
        for cuts in [&[][..], &[60, 1, 1, 1, 3]] {
            let (to_server, _, decided, close) = run(client, RESP1, cuts);
            let text = String::from_utf8_lossy(client);
            assert!(close, "{text}");
            assert!(!to_server.windows(6).any(|w| w == b"DELETE"), "{text}");
            assert!(decided.iter().all(|d| !d.0.contains("DELETE")), "{text}");
        }
    }
    // What every server reads alike passes: extensions (with blanks before them), hex
    // in either case, trailers.
    for body in [
        &b"5;name=value\r\nhello\r\n0\r\n\r\n"[..],
        b"5 ;x\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        b"00005\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n",
    ] {
        let client = [
            &b"POST /ok HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            body,
            R2,
        ]
        .concat();
        let (to_server, _, decided, close) = run(&client, [RESP1, RESP1].concat().as_slice(), &[]);
        assert_eq!(to_server, client, "{}", String::from_utf8_lossy(body));
        assert_eq!(decided.len(), 2);
        assert!(!close);
    }
}

/// A path is decided as every server may read it: Tomcat and Jetty drop each segment's
/// `;` parameters (`/admin;x/users` is `/admin/users` to them), so a rule that denies
/// `/admin` must hold for it too; nginx and Express route another scheme's URL
/// (`foo://h/admin`) by its path, so such a target gets 400. (Before, both reached
/// `/admin` past a rule that denies it.)
#[test]
fn paths_are_decided_as_every_server_reads_them() {
    // A rule on the segment `admin` (`/admin` and below), decided as the engine decides
    // (`Engine::verdict`): the path as sent, and without its parameters. The session
    // hands the engine the path as sent and refuses what it refuses.
    let on_path = |r: &L7Request| {
        let L7Detail::Http { path, .. } = &r.detail else {
            panic!("{r:?}")
        };
        let p = path.split('?').next().unwrap_or_default();
        p != "/admin" && !p.starts_with("/admin/")
    };
    let admin = |r: &L7Request| Verdict {
        allowed: on_path(r) && http_path::without_params(r).is_none_or(|o| on_path(&o)),
    };
    for target in ["/admin;x/users", "/admin;jsessionid=1"] {
        let client = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut s = HttpSession::new();
        let out = s.client_bytes(client.as_bytes(), &mut |r: &L7Request| admin(r));
        assert!(out.to_server.is_empty(), "{target}");
        let text = String::from_utf8_lossy(&out.to_client);
        assert!(text.starts_with("HTTP/1.1 403"), "{target}: {text}");
        assert!(!out.decided[0].allowed, "{target}");
    }
    let client = b"GET foo://h/admin HTTP/1.1\r\nHost: a\r\n\r\n";
    let (to_server, to_client, _, close) = run(client, b"", &[]);
    assert!(to_server.is_empty());
    assert!(String::from_utf8_lossy(&to_client).starts_with("HTTP/1.1 400"));
    assert!(close);
    // Parameters elsewhere, `*` and http URLs pass.
    for target in ["/ok;jsessionid=1?a=b", "*", "http://a/ok"] {
        let client = format!("OPTIONS {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let (to_server, _, decided, _) = run(client.as_bytes(), RESP1, &[]);
        assert_eq!(to_server, client.as_bytes(), "{target}");
        assert!(decided[0].1, "{target}");
    }
}

proptest! {
    #[test]
    fn splitting_changes_nothing(cuts in proptest::collection::vec(1usize..25, 0..40)) {
        let client = [R1, ADMIN, R2, b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"].concat();
        let server = [RESP1, RESP2, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"].concat();
        prop_assert_eq!(run(&client, &server, &cuts), run(&client, &server, &[]));
    }

    /// Empty lines before a request line (RFC 9112 2.2) are dropped however the bytes
    /// are split, and the requests after them decided as without them.
    #[test]
    fn empty_lines_before_requests_are_skipped(cuts in proptest::collection::vec(1usize..25, 0..40)) {
        let client = [b"\r\n", R1, b"\r\n\n", ADMIN, b"\r\n", R2].concat();
        let server = [RESP1, RESP2].concat();
        let plain = run(&[R1, ADMIN, R2].concat(), &server, &[]);
        prop_assert_eq!(run(&client, &server, &cuts), plain);
    }

    #[test]
    fn allowed_traffic_passes_byte_identical(cuts in proptest::collection::vec(1usize..25, 0..40)) {
        let client = [R1, R2, b"PUT /d HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"].concat();
        let server = [RESP1, RESP2].concat();
        let (to_server, to_client, _, _) = run(&client, &server, &cuts);
        prop_assert_eq!(to_server, client);
        prop_assert_eq!(to_client, server);
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..600),
                                   s in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = run(&c, &s, &[5, 1, 17]);
        let mut pre = b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n".to_vec();
        pre.extend_from_slice(&c);
        let _ = run(&pre, &s, &[]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cuts in proptest::collection::vec(1usize..25, 0..40)) {
        let mut client = [R1, ADMIN, R2, b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"].concat();
        let mut server = [RESP1, RESP2, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"].concat();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cuts);
    }
}

/// An offer to upgrade to h2c is dropped on the way (a 101 would turn the connection
/// into HTTP/2 this session does not read, and every later request would pass
/// undecided); the server answers in HTTP/1.1 and the next request is decided. A
/// WebSocket offer next to it stays.
#[test]
fn an_h2c_upgrade_offer_is_dropped_and_later_requests_are_still_decided() {
    let client = [
        &b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"[..],
        b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
    .concat();
    let (to_server, to_client, decided, _) = run(&client, RESP1, &[]);
    assert_eq!(
        String::from_utf8(to_server).unwrap(),
        "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert!(
        !decided[1].1,
        "the request after the offer is decided: {decided:?}"
    );
    assert!(String::from_utf8_lossy(&to_client).contains("403 Forbidden"));

    let both = b"GET /ws HTTP/1.1\r\nHost: a\r\nupgrade: websocket, H2C\r\nConnection: keep-alive, Upgrade\r\n\r\n";
    let (to_server, _, _, _) = run(both, b"", &[]);
    assert_eq!(
        String::from_utf8(to_server).unwrap(),
        "GET /ws HTTP/1.1\r\nHost: a\r\nupgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n"
    );
}
