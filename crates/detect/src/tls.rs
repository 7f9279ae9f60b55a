//! TLS: the ClientHello (SNI, ALPN, offered versions) and record-layer structure.

use bulkhead_policy::l7::AppProtocol;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Check, be16, detail, yes};

/// What a ClientHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// The highest version offered (`TLS1.3`, `TLS1.2`, ...).
    pub version: String,
}

const HANDSHAKE: u8 = 22;
/// Record payloads are at most 2^14 bytes, plus expansion for protected records.
const MAX_RECORD: usize = (1 << 14) + 2048;

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        _ => format!("{v:#06x}"),
    }
}

fn record_header(b: &[u8]) -> Option<(u8, u16, usize)> {
    let (kind, version, len) = (*b.first()?, be16(b, 1)?, be16(b, 3)? as usize);
    ((20..=23).contains(&kind)
        && (0x0300..=0x0304).contains(&version)
        && len > 0
        && len <= MAX_RECORD)
        .then_some((kind, version, len))
}

/// Parse a ClientHello from the start of a connection (a TLS record holding a
/// handshake message of type 1). None if the bytes are not one, or not all there yet.
pub fn client_hello(b: &[u8]) -> Option<ClientHello> {
    let (kind, _, len) = record_header(b)?;
    if kind != HANDSHAKE {
        return None;
    }
    // The ClientHello may span records; what we need is almost always in the first.
    let body = b.get(5..5 + len)?;
    if *body.first()? != 1 {
        return None;
    }
    let hs_len = (usize::from(body[1]) << 16) | usize::from(be16(body, 2)?);
    let h = body.get(4..(4 + hs_len).min(body.len()))?;
    let legacy = be16(h, 0)?;
    let mut at = 2 + 32;
    at += 1 + usize::from(*h.get(at)?); // session id
    at += 2 + usize::from(be16(h, at)?); // cipher suites
    at += 1 + usize::from(*h.get(at)?); // compression methods
    let mut hello = ClientHello {
        version: version_name(legacy),
        ..ClientHello::default()
    };
    let Some(ext_len) = be16(h, at) else {
        return Some(hello);
    };
    let exts = h.get(at + 2..at + 2 + usize::from(ext_len))?;
    let mut e = 0;
    while e + 4 <= exts.len() {
        let (ty, n) = (be16(exts, e)?, usize::from(be16(exts, e + 2)?));
        let data = exts.get(e + 4..e + 4 + n)?;
        match ty {
            0 => hello.sni = server_name(data),
            16 => hello.alpn = alpn(data),
            43 => {
                if let Some(best) = data
                    .get(1..)?
                    .chunks_exact(2)
                    .map(|v| u16::from_be_bytes([v[0], v[1]]))
                    .filter(|v| (0x0300..=0x0304).contains(v))
                    .max()
                {
                    hello.version = version_name(best);
                }
            }
            _ => {}
        }
        e += 4 + n;
    }
    Some(hello)
}

fn server_name(d: &[u8]) -> Option<String> {
    let list = d.get(2..2 + usize::from(be16(d, 0)?))?;
    let mut i = 0;
    while i + 3 <= list.len() {
        let n = usize::from(be16(list, i + 1)?);
        let name = list.get(i + 3..i + 3 + n)?;
        if list[i] == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        i += 3 + n;
    }
    None
}

fn alpn(d: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list) = be16(d, 0).and_then(|n| d.get(2..2 + usize::from(n))) else {
        return out;
    };
    let mut i = 0;
    while let Some(&n) = list.get(i) {
        let Some(p) = list.get(i + 1..i + 1 + usize::from(n)) else {
            break;
        };
        out.push(String::from_utf8_lossy(p).into_owned());
        i += 1 + usize::from(n);
    }
    out
}

/// A ClientHello, or (offline, mid-connection) whole TLS records.
pub fn client_check(b: &[u8]) -> Check {
    if b.len() < 5 {
        return prefix_check(b);
    }
    let Some((kind, _, len)) = record_header(b) else {
        return Check::No;
    };
    if kind == HANDSHAKE && b[5..].first() == Some(&1) {
        if b.len() < 5 + len {
            return Check::More;
        }
        return match client_hello(b) {
            Some(h) => yes(
                AppProtocol::Tls,
                detail([
                    ("sni", json!(h.sni)),
                    (
                        "alpn",
                        if h.alpn.is_empty() {
                            Value::Null
                        } else {
                            json!(h.alpn)
                        },
                    ),
                    ("version", json!(h.version)),
                ]),
            ),
            None => Check::No,
        };
    }
    records(b)
}

/// Records from a server (ServerHello, or anything protected).
pub fn server_check(b: &[u8]) -> Check {
    if b.len() < 5 {
        return prefix_check(b);
    }
    records(b)
}

/// One whole record, and a valid header after it if more bytes follow.
fn records(b: &[u8]) -> Check {
    let Some((_, version, len)) = record_header(b) else {
        return Check::No;
    };
    if b.len() < 5 + len {
        return Check::More;
    }
    let rest = &b[5 + len..];
    if !rest.is_empty() {
        if rest.len() < 5 {
            return Check::More;
        }
        if record_header(rest).is_none() {
            return Check::No;
        }
    }
    yes(
        AppProtocol::Tls,
        detail([("version", json!(version_name(version)))]),
    )
}

fn prefix_check(b: &[u8]) -> Check {
    let ok = match b.len() {
        0 => true,
        1 => (20..=23).contains(&b[0]),
        2 => (20..=23).contains(&b[0]) && b[1] == 3,
        _ => (20..=23).contains(&b[0]) && b[1] == 3 && b[2] <= 4,
    };
    if ok { Check::More } else { Check::No }
}
