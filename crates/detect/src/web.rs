//! HTTP/1.x, HTTP/2 (prior knowledge and h2c upgrade) and gRPC.

use bulkhead_policy::l7::AppProtocol;
use serde_json::Value;

use crate::{Check, be32, detail, yes};

/// The longest method we wait for before calling a request line garbage.
const MAX_METHOD: usize = 24;

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `METHOD SP TARGET SP HTTP/1.x` (or a prefix of one).
pub fn http1_request(b: &[u8]) -> Check {
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
        // The target may be long; it must stay free of control bytes.
        return if b[sp + 1..].iter().any(|&c| c < 0x20 || c == 0x7f) {
            Check::No
        } else {
            Check::More
        };
    };
    let line = b[..eol].strip_suffix(b"\r").unwrap_or(&b[..eol]);
    // METHOD SP target SP version: the target is what lies between the first and the
    // last space (attack traffic puts spaces in it, and servers accept it).
    let (Some(first), Some(last)) = (
        line.iter().position(|&c| c == b' '),
        line.iter().rposition(|&c| c == b' '),
    ) else {
        return Check::No;
    };
    if first == last {
        return Check::No;
    }
    let (method, target, version) = (&line[..first], &line[first + 1..last], &line[last + 1..]);
    if target.is_empty() || target.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Check::No;
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Check::No;
    }
    let text = |s: &[u8]| Value::String(String::from_utf8_lossy(s).into_owned());
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = matches!(req.parse(b), Ok(httparse::Status::Complete(_)));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| text(h.value))
    };
    let (host, agent, upgrade) = if parsed {
        (header("host"), header("user-agent"), header("upgrade"))
    } else {
        (None, None, None)
    };
    let app = match &upgrade {
        Some(Value::String(u)) if u.eq_ignore_ascii_case("h2c") => AppProtocol::Http2,
        _ => AppProtocol::Http,
    };
    let d = detail([
        ("method", text(method)),
        ("path", text(target)),
        ("version", text(version)),
        ("host", host.unwrap_or(Value::Null)),
        ("user_agent", agent.unwrap_or(Value::Null)),
    ]);
    // The request line proves HTTP; the headers (still coming) may make it h2c.
    if parsed {
        yes(app, d)
    } else {
        Check::Likely(app, d)
    }
}

/// `HTTP/1.x DDD ` from a server.
pub fn http1_response(b: &[u8]) -> Check {
    const P: &[u8] = b"HTTP/1.";
    if b.len() < 13 {
        let n = b.len().min(P.len());
        return if b[..n] == P[..n] {
            Check::More
        } else {
            Check::No
        };
    }
    if !b.starts_with(P)
        || !matches!(b[7], b'0' | b'1')
        || b[8] != b' '
        || !b[9..12].iter().all(u8::is_ascii_digit)
        || b[12] != b' ' && b[12] != b'\r'
    {
        return Check::No;
    }
    yes(
        AppProtocol::Http,
        detail([(
            "status",
            Value::String(String::from_utf8_lossy(&b[9..12]).into_owned()),
        )]),
    )
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP/2 connection preface, then frames until a request shows whether it is gRPC.
pub fn http2_preface(b: &[u8]) -> Check {
    if b.len() < PREFACE.len() {
        return if PREFACE.starts_with(b) {
            Check::More
        } else {
            Check::No
        };
    }
    if !b.starts_with(PREFACE) {
        return Check::No;
    }
    let h2 = |grpc: bool| {
        let app = if grpc {
            AppProtocol::Grpc
        } else {
            AppProtocol::Http2
        };
        (app, detail([("prior_knowledge", Value::Bool(true))]))
    };
    let mut at = PREFACE.len();
    // Frames: length (24 bits), type, flags, stream id (31 bits), payload.
    while let Some(word) = be32(b, at) {
        let len = (word >> 8) as usize;
        let kind = (word & 0xff) as u8;
        let flags = *b.get(at + 4).unwrap_or(&0);
        let Some(payload) = b.get(at + 9..at + 9 + len) else {
            break;
        };
        match kind {
            // HEADERS: a gRPC request says so in content-type (when not Huffman-coded);
            // a request without a body (END_STREAM) is plain HTTP/2.
            1 => {
                if find(payload, b"application/grpc") {
                    let (a, d) = h2(true);
                    return yes(a, d);
                }
                if flags & 0x1 != 0 {
                    let (a, d) = h2(false);
                    return yes(a, d);
                }
            }
            // DATA: gRPC frames every message as flag (0|1) + 32-bit length.
            0 if !payload.is_empty() => {
                let grpc = payload.len() >= 5
                    && payload[0] <= 1
                    && be32(payload, 1).is_some_and(|n| n as usize + 5 == payload.len());
                let (a, d) = h2(grpc);
                return yes(a, d);
            }
            _ => {}
        }
        at += 9 + len;
    }
    let (a, d) = h2(false);
    Check::Likely(a, d)
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
