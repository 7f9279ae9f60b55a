//! What a decoded HTTP/2 request header list is to the policy (an HTTP or a gRPC request)
//! and to the sensors (an HTTP/1 head), and the refusal the proxy answers a denied one with.

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::form::{Form, form_of_post};
use crate::h2::Field;
use crate::h2_wire::{header_frames, literal_block};

/// `/pkg.Service/Method` -> (`pkg.Service`, `Method`).
pub fn grpc_path(path: &str) -> (String, String) {
    let p = path.strip_prefix('/').unwrap_or(path);
    match p.split_once('/') {
        Some((s, m)) => (s.to_string(), m.to_string()),
        None => (p.to_string(), String::new()),
    }
}

/// What a decoded request header list asks for.
pub fn request_of(fields: &[Field]) -> L7Request {
    let get = |n: &[u8]| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let path = get(b":path").unwrap_or_default();
    let grpc = get(b"content-type").is_some_and(|c| c.starts_with("application/grpc"));
    if grpc {
        let (service, method) = grpc_path(&path);
        return L7Request {
            app: AppProtocol::Grpc,
            detail: L7Detail::Grpc { service, method },
        };
    }
    let host = get(b":authority")
        .or_else(|| get(b"host"))
        .map(|h| crate::http::host_name(&h));
    L7Request {
        app: AppProtocol::Http2,
        detail: L7Detail::Http {
            method: get(b":method").unwrap_or_default(),
            path,
            host,
            headers: fields
                .iter()
                .filter(|(k, _)| !k.starts_with(b":"))
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
        },
    }
}

/// A request's header list as an HTTP/1 head (request line, `host` from `:authority`,
/// every other field on its own line), the form the sensors cut requests from. HTTP/2
/// forbids blanks in `:path` and line breaks in values (RFC 9113 8.2.1, 8.3.1): a
/// request that has them anyway is shown with them escaped or blanked, so no value
/// can hide past a line or word boundary of this head.
pub fn http1_head(fields: &[Field]) -> Vec<u8> {
    let get = |n: &[u8]| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map_or(&b""[..], |(_, v)| &v[..])
    };
    let mut h = Vec::with_capacity(256);
    h.extend_from_slice(get(b":method"));
    h.push(b' ');
    for &c in get(b":path") {
        match c {
            b' ' => h.extend_from_slice(b"%20"),
            b'\r' | b'\n' => h.extend_from_slice(b"%0A"),
            c => h.push(c),
        }
    }
    h.extend_from_slice(b" HTTP/2\r\n");
    let line = |h: &mut Vec<u8>, k: &[u8], v: &[u8]| {
        h.extend_from_slice(k);
        h.extend_from_slice(b": ");
        h.extend(
            v.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
        h.extend_from_slice(b"\r\n");
    };
    let authority = get(b":authority");
    if !authority.is_empty() {
        line(&mut h, b"host", authority);
    }
    for (k, v) in fields.iter().filter(|(k, _)| !k.starts_with(b":")) {
        line(&mut h, k, v);
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// The head the sensors cut a request's body with: only its type (the head itself was
/// judged when the request was decided, and is not judged twice).
pub(crate) fn body_head(fields: &[Field]) -> Vec<u8> {
    let mut head: Vec<Field> = vec![
        (b":method".to_vec(), b"POST".to_vec()),
        (b":path".to_vec(), b"/".to_vec()),
    ];
    head.extend(fields.iter().filter(|(k, _)| k == b"content-type").cloned());
    http1_head(&head)
}

/// A POST's form encoding (its `_method` fields name the method frameworks run it as).
pub(crate) fn post_form(fields: &[Field]) -> Option<Form> {
    let get = |name: &[u8]| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    if get(b":method").is_none_or(|m| m != b"POST") {
        return None;
    }
    form_of_post(get(b"content-type").map(|v| &v[..]))
}

/// A gRPC status message: printable ASCII, `%` escaped (the grpc-message encoding).
fn grpc_message(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The proxy's answer to a refused request on `stream`: a trailers-only response
/// (`by_sensor`: a sensor blocked it, not the policy).
pub fn refusal(stream: u32, request: &L7Request, by_sensor: bool) -> (Vec<u8>, &'static str) {
    match &request.detail {
        L7Detail::Grpc { service, method } => {
            let why = if by_sensor {
                "was blocked by a sensor"
            } else {
                "is not allowed by policy"
            };
            let msg = grpc_message(&format!("bulkhead: {service}/{method} {why}"));
            let block = literal_block([
                (&b":status"[..], &b"200"[..]),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", b"7"),
                (b"grpc-message", &msg),
            ]);
            (
                header_frames(stream, true, None, &block),
                "grpc-status 7 PERMISSION_DENIED",
            )
        }
        _ => {
            let block = literal_block([(&b":status"[..], &b"403"[..]), (b"content-length", b"0")]);
            (header_frames(stream, true, None, &block), "403 Forbidden")
        }
    }
}
