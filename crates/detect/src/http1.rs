//! HTTP/1.x: a request line and its headers, or a status line from a server.
//!
//! A request asking to upgrade to HTTP/2 (`Upgrade: h2c`, RFC 7540 3.2, deprecated by
//! RFC 9113 3.1) is still an HTTP/1.1 request, and the server may ignore the header and
//! answer in HTTP/1.1 (RFC 9110 7.8): the connection is HTTP/2 only once the server has
//! answered `101 Switching Protocols` naming h2c ([`switched_to_h2c`]).

use bulkhead_policy::l7::AppProtocol;
use serde_json::Value;

use crate::Check;
use crate::wire::{detail, lossy, prefix_of, yes};

/// The longest method we wait for before calling a request line garbage.
const MAX_METHOD: usize = 24;
/// Headers read to find Host, User-Agent and Upgrade.
const MAX_HEADERS: usize = 96;
/// Methods of RFC 9110 and WebDAV that a request for a path starts with.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
];

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// Empty lines a server ignores before a request line (RFC 9112 2.2 says at least one;
/// a client that ends a body with an extra CRLF sends one): a few, as the proxy's HTTP
/// session skips them too.
pub const LEADING_EMPTY_LINES: usize = 4;

/// `METHOD SP TARGET SP HTTP/1.x` (or a prefix of one), then headers, after at most
/// [`LEADING_EMPTY_LINES`] empty lines.
pub(crate) fn request(mut b: &[u8]) -> Check {
    for _ in 0..LEADING_EMPTY_LINES {
        match b {
            [b'\r'] => return Check::More,
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => b = rest,
            _ => break,
        }
    }
    if b.is_empty() {
        return Check::More;
    }
    request_line(b)
}

fn request_line(b: &[u8]) -> Check {
    let Some(sp) = b.iter().position(|&c| c == b' ') else {
        return if b.len() <= MAX_METHOD && b.iter().all(|&c| is_tchar(c)) {
            Check::More
        } else {
            Check::No
        };
    };
    if sp == 0 || sp > MAX_METHOD || !b[..sp].iter().all(|&c| is_tchar(c)) {
        return Check::No;
    }
    let Some(eol) = b.iter().position(|&c| c == b'\n') else {
        // The target may be long; it must stay free of control bytes (a last `\r` is the
        // line's end arriving before its `\n`).
        let rest = &b[sp + 1..];
        let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
        if rest.iter().any(|&c| control(c)) {
            return Check::No;
        }
        // A registered method and the start of a path or URL: likely HTTP, the answer
        // if the line never ends (a capture cut short by its snap length, a request
        // line longer than the detector reads).
        let origin = rest.first() == Some(&b'/')
            || [&b"http://"[..], b"https://"]
                .iter()
                .any(|p| rest.len() > p.len() && rest[..p.len()].eq_ignore_ascii_case(p));
        return if origin && METHODS.contains(&&b[..sp]) {
            Check::Likely(
                AppProtocol::Http,
                detail([("method", lossy(&b[..sp])), ("path", lossy(rest))]),
            )
        } else {
            Check::More
        };
    };
    let line = b[..eol].strip_suffix(b"\r").unwrap_or(&b[..eol]);
    // The target is what lies between the first and the last space: attack traffic puts
    // spaces in it, and servers accept it, so a strict parser would miss those requests.
    let (first, last) = (sp, line.iter().rposition(|&c| c == b' ').unwrap_or(sp));
    if first == last {
        return Check::No;
    }
    let (method, target, version) = (&line[..first], &line[first + 1..last], &line[last + 1..]);
    if target.is_empty() || target.iter().any(|&c| control(c)) {
        return Check::No;
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Check::No;
    }
    // The request line is checked above (more leniently than httparse would); httparse
    // reads the header block after it.
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = matches!(
        httparse::parse_headers(&b[eol + 1..], &mut headers),
        Ok(httparse::Status::Complete(_))
    );
    let header = |name: &str| {
        if !parsed {
            return Value::Null;
        }
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map_or(Value::Null, |h| lossy(h.value))
    };
    let d = detail([
        ("method", lossy(method)),
        ("path", lossy(target)),
        ("version", lossy(version)),
        ("host", header("host")),
        ("user_agent", header("user-agent")),
        ("upgrade", header("upgrade")),
    ]);
    // The request line proves HTTP; the headers (still coming) hold the details.
    if parsed {
        yes(AppProtocol::Http, d)
    } else {
        Check::Likely(AppProtocol::Http, d)
    }
}

/// Does an `Upgrade` header value name h2c?
pub(crate) fn names_h2c(upgrade: &str) -> bool {
    upgrade
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("h2c"))
}

/// Interim responses (`100 Continue`, `103 Early Hints`) read before the answer.
const MAX_INTERIM: usize = 8;

/// The server's answer to a request asking to upgrade to h2c: `Some(true)` when it is
/// `101 Switching Protocols` with `Upgrade: h2c` (the connection goes on in HTTP/2),
/// `Some(false)` for any other final answer or bytes that are no HTTP/1 response, `None`
/// while the answer is incomplete. Interim 1xx responses before it are skipped.
pub(crate) fn switched_to_h2c(b: &[u8]) -> Option<bool> {
    let mut at = 0;
    for _ in 0..MAX_INTERIM {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(&b[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => return Some(false),
        };
        match r.code {
            Some(101) => {
                return Some(r.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("upgrade")
                        && std::str::from_utf8(h.value).is_ok_and(names_h2c)
                }));
            }
            Some(100..=199) => at += n,
            _ => return Some(false),
        }
    }
    Some(false)
}

/// `HTTP/1.x DDD ` from a server.
pub(crate) fn response(b: &[u8]) -> Check {
    const P: &[u8] = b"HTTP/1.";
    if b.len() < 13 {
        return prefix_of(&b[..b.len().min(P.len())], P);
    }
    if !b.starts_with(P)
        || !matches!(b[7], b'0' | b'1')
        || b[8] != b' '
        || !b[9..12].iter().all(u8::is_ascii_digit)
        || b[12] != b' ' && b[12] != b'\r'
    {
        return Check::No;
    }
    yes(AppProtocol::Http, detail([("status", lossy(&b[9..12]))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail_of(c: Check) -> (AppProtocol, crate::Detail) {
        match c {
            Check::Yes(a, d) => (a, d),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn empty_lines_before_the_request_line() {
        let r = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(request(r), Check::Yes(AppProtocol::Http, _)));
        assert!(matches!(request(&r[1..]), Check::Yes(AppProtocol::Http, _)));
        for n in 0..5 {
            assert_eq!(request(&r[..n]), Check::More, "{n}");
        }
        // More than a few, or a line that is not empty, is not HTTP.
        assert_eq!(
            request(b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
            Check::No
        );
        assert_eq!(request(b"\r\n \r\nGET / HTTP/1.1\r\n\r\n"), Check::No);
    }

    #[test]
    fn request_with_headers() {
        let (app, d) = detail_of(request(
            b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        ));
        assert_eq!(app, AppProtocol::Http);
        assert_eq!(d["method"], "GET");
        assert_eq!(d["path"], "/index.html?q=1");
        assert_eq!(d["host"], "example.com");
        assert_eq!(d["user_agent"], "curl/7.88.1");
        assert_eq!(d["version"], "HTTP/1.1");
    }

    #[test]
    fn an_h2c_upgrade_request_is_http_until_the_server_switches() {
        let (app, d) = detail_of(request(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        ));
        assert_eq!(app, AppProtocol::Http);
        assert_eq!(d["upgrade"], "h2c");
        // Apache's answer (mod_http2, `Protocols h2c http/1.1`), then its SETTINGS.
        let switched = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n\x00\x00\x06\x04";
        assert_eq!(switched_to_h2c(switched), Some(true));
        for n in 0..switched.len() - 6 {
            assert_eq!(switched_to_h2c(&switched[..n]), None, "{n}");
        }
        // nginx ignores the header and answers in HTTP/1.1.
        assert_eq!(
            switched_to_h2c(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nh1\n"),
            Some(false)
        );
        // An interim 100 Continue comes first; a switch to another protocol is not h2c.
        assert_eq!(
            switched_to_h2c(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: H2C\r\n\r\n"
            ),
            Some(true)
        );
        assert_eq!(
            switched_to_h2c(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            Some(false)
        );
        // HTTP/2 frames instead of a status line: not an answer to the upgrade.
        assert_eq!(
            switched_to_h2c(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00"),
            Some(false)
        );
    }

    #[test]
    fn attack_targets_with_spaces_are_still_http() {
        let (_, d) = detail_of(request(
            b"GET /vulnerabilities/sqli/?id=1' or 1=1 -- &Submit=Submit HTTP/1.1\r\nHost: v\r\n\r\n",
        ));
        assert_eq!(
            d["path"],
            "/vulnerabilities/sqli/?id=1' or 1=1 -- &Submit=Submit"
        );
    }

    #[test]
    fn a_request_line_alone_is_likely_until_the_headers_end() {
        assert!(matches!(
            request(b"POST /a HTTP/1.0\r\nHost: x\r\n"),
            Check::Likely(..)
        ));
        assert_eq!(request(b"POS"), Check::More);
    }

    #[test]
    fn a_request_line_cut_short_is_likely() {
        // A capture's snap length cut it, or it is longer than the detector reads.
        let (app, d) = match request(b"GET /index.php?name=Forums&file=viewtopic&t=2&rush=%64") {
            Check::Likely(app, d) => (app, d),
            c => panic!("{c:?}"),
        };
        assert_eq!(app, AppProtocol::Http);
        assert_eq!(d["method"], "GET");
        assert!(matches!(
            request(b"POST http://example.com/a"),
            Check::Likely(..)
        ));
        // An unregistered method, another scheme, or no target yet: only a prefix.
        assert_eq!(request(b"FOO /index"), Check::More);
        assert_eq!(request(b"DESCRIBE rtsp://cam/stream"), Check::More);
        assert_eq!(request(b"OPTIONS sip:bob@example.com"), Check::More);
        assert_eq!(request(b"GET "), Check::More);
        assert_eq!(request(b"GET http"), Check::More);
    }

    #[test]
    fn not_http() {
        assert_eq!(request(b"GET / HTTP/2.0\r\n\r\n"), Check::No);
        assert_eq!(request(b"GET /\x01 HTTP/1.1\r\n"), Check::No);
        assert_eq!(request(b"\x16\x03\x01\x02\x00"), Check::No);
        assert_eq!(request(b"SSH-2.0-OpenSSH\r\n"), Check::No);
        assert_eq!(request(b"hello world\n"), Check::No);
        assert_eq!(response(b"HTTP/1.1 2x0 OK\r\n"), Check::No);
    }

    #[test]
    fn status_line() {
        let (_, d) = detail_of(response(b"HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(d["status"], "404");
        assert_eq!(response(b"HTTP/1"), Check::More);
    }
}
