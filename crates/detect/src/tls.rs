//! TLS: the ClientHello (SNI, ALPN, offered versions), the ServerHello, and the record
//! layer's structure for connections seen mid-way.
//!
//! Messages are decoded by `tls-parser`; what is ours is the framing a stream needs
//! (records arriving in pieces, a handshake message split over records) and the
//! plausibility rules that keep other binary protocols from passing for TLS.

use bulkhead_policy::l7::AppProtocol;
use serde::Serialize;
use serde_json::{Value, json};
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake, parse_tls_server_hello_extensions,
};

use crate::wire::{be16, be24, detail, yes};
use crate::{Check, ParseError};

/// What a ClientHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension, as sent.
    pub sni: Option<String>,
    /// ALPN protocol names in the client's order (`h2`, `http/1.1`, ...).
    pub alpn: Vec<String>,
    /// The highest version offered (`TLS1.3`, `TLS1.2`, ...): from supported_versions
    /// when present, else the legacy version field.
    pub version: String,
}

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
/// Record payloads are at most 2^14 bytes, plus 2048 of expansion for protected records.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// A ClientHello larger than this is not one (post-quantum key shares make them ~2 KiB).
const MAX_HELLO: usize = 1 << 16;

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

/// Known versions only: GREASE and drafts are left out when picking the highest.
fn real_version(v: u16) -> bool {
    (0x0300..=0x0304).contains(&v)
}

/// A record header at the start of `b`: (content type, version, length). `Incomplete`
/// while fewer than 5 bytes are there and those fit a header.
fn record_header(b: &[u8]) -> Result<(u8, u16, usize), ParseError> {
    let plausible_type = |t: u8| (CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&t);
    if b.len() < 5 {
        let ok = b.first().is_none_or(|&t| plausible_type(t))
            && b.get(1).is_none_or(|&m| m == 3)
            && b.get(2).is_none_or(|&n| n <= 4);
        return Err(if ok {
            ParseError::Incomplete
        } else {
            ParseError::Invalid
        });
    }
    let (kind, version, len) = (
        b[0],
        be16(b, 1).unwrap_or(0),
        usize::from(be16(b, 3).unwrap_or(0)),
    );
    if plausible_type(kind) && real_version(version) && len > 0 && len <= MAX_RECORD {
        Ok((kind, version, len))
    } else {
        Err(ParseError::Invalid)
    }
}

/// The first handshake message of a stream of handshake records, reassembled across
/// records (a ClientHello with large key shares may be split).
fn first_handshake(b: &[u8], max: usize) -> Result<Vec<u8>, ParseError> {
    let mut msg = Vec::new();
    let mut at = 0;
    loop {
        let (kind, _, len) = record_header(&b[at.min(b.len())..])?;
        if kind != HANDSHAKE {
            return Err(ParseError::Invalid);
        }
        let body = b.get(at + 5..at + 5 + len).ok_or(ParseError::Incomplete)?;
        msg.extend_from_slice(body);
        at += 5 + len;
        if let Some(n) = be24(&msg, 1) {
            let total = 4 + n;
            if total > max {
                return Err(ParseError::Invalid);
            }
            if msg.len() >= total {
                msg.truncate(total);
                return Ok(msg);
            }
        }
    }
}

/// Parse the ClientHello that opens a TLS connection: the first bytes a TLS client
/// sends, as they arrive (one or more handshake records).
///
/// `Err(Incomplete)` while the bytes so far are a valid beginning of one (wait for
/// more), `Err(Invalid)` if they are not a ClientHello. Used for detection and for SNI
/// rules. An SSL 2.0-compatible CLIENT-HELLO is one too, with no SNI or ALPN (it has no
/// extensions): detection names it `tls`, so the rules decide it as one.
pub fn client_hello(b: &[u8]) -> Result<ClientHello, ParseError> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        return sslv2_hello(b).map(|version| ClientHello {
            version,
            ..ClientHello::default()
        });
    }
    if b.len() > 5 && b.get(5) != Some(&CLIENT_HELLO) {
        return Err(ParseError::Invalid);
    }
    let msg = first_handshake(b, MAX_HELLO)?;
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        parse_tls_message_handshake(&msg)
    else {
        return Err(ParseError::Invalid);
    };
    let legacy = u16::from(ch.version);
    // The fields must fill the message exactly: tls-parser ignores what follows them,
    // and drops an extension block that is cut short.
    let fields = 2
        + ch.random.len()
        + 1
        + ch.session_id.map_or(0, <[u8]>::len)
        + 2
        + 2 * ch.ciphers.len()
        + 1
        + ch.comp.len()
        + ch.ext.map_or(0, |e| 2 + e.len());
    if !real_version(legacy) || fields != msg.len() - 4 {
        return Err(ParseError::Invalid);
    }
    let mut hello = ClientHello {
        version: version_name(legacy),
        ..ClientHello::default()
    };
    let exts = match ch.ext {
        None => Vec::new(),
        Some(e) => match parse_tls_client_hello_extensions(e) {
            Ok((_, exts)) => exts,
            Err(_) => return Err(ParseError::Invalid),
        },
    };
    for ext in exts {
        match ext {
            TlsExtension::SNI(names) => {
                hello.sni = names
                    .iter()
                    .find(|(kind, _)| kind.0 == 0)
                    .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
            }
            TlsExtension::ALPN(names) => {
                hello.alpn = names
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect();
            }
            TlsExtension::SupportedVersions(vs) => {
                if let Some(best) = vs
                    .iter()
                    .map(|v| u16::from(*v))
                    .filter(|&v| real_version(v))
                    .max()
                {
                    hello.version = version_name(best);
                }
            }
            _ => {}
        }
    }
    Ok(hello)
}

/// The version a ServerHello chose (supported_versions for TLS 1.3, else the legacy
/// field), if `b` starts with a whole one.
fn server_hello_version(b: &[u8]) -> Option<String> {
    let msg = first_handshake(b, MAX_RECORD).ok()?;
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) =
        parse_tls_message_handshake(&msg)
    else {
        return None;
    };
    let chosen = sh
        .ext
        .and_then(|e| parse_tls_server_hello_extensions(e).ok())
        .and_then(|(_, exts)| {
            exts.into_iter().find_map(|x| match x {
                TlsExtension::SupportedVersions(v) => v.first().copied(),
                _ => None,
            })
        })
        .unwrap_or(sh.version);
    Some(version_name(u16::from(chosen)))
}

/// An SSL 2.0-compatible CLIENT-HELLO (a two-byte record header with its top bit set,
/// message type 1, the highest version offered, then the lengths of the cipher specs,
/// session id and challenge, which must add up to the record): what SSL 2/3 and TLS 1.0
/// clients of old, and scanners still (`sslscan`, `nmap`), open with. It has no
/// extensions, so no SNI or ALPN. The version if it is one, `Err(Incomplete)` while
/// fewer than its 11 fixed bytes are in and they fit.
fn sslv2_hello(b: &[u8]) -> Result<String, ParseError> {
    let fits = |i: usize, ok: &dyn Fn(u8) -> bool| b.get(i).is_none_or(|&c| ok(c));
    if b.len() < 11 {
        let ok = fits(0, &|c| c & 0x80 != 0)
            && fits(2, &|c| c == 1)
            && fits(3, &|c| c <= 3)
            && fits(4, &|c| c <= 4);
        return Err(if ok && !b.is_empty() {
            ParseError::Incomplete
        } else {
            ParseError::Invalid
        });
    }
    let len = usize::from(be16(b, 0).unwrap_or(0) & 0x7fff);
    let version = be16(b, 3).unwrap_or(0);
    let field = |i| usize::from(be16(b, i).unwrap_or(0));
    let (ciphers, session, challenge) = (field(5), field(7), field(9));
    let hello = b[0] & 0x80 != 0
        && b[2] == 1
        && (version == 0x0002 || real_version(version))
        && ciphers > 0
        && ciphers % 3 == 0
        && (session == 0 || session == 16)
        && (16..=32).contains(&challenge)
        && len == 9 + ciphers + session + challenge;
    if !hello {
        return Err(ParseError::Invalid);
    }
    Ok(if version == 0x0002 {
        "SSL2.0".into()
    } else {
        version_name(version)
    })
}

/// A client opening with a ClientHello.
/// A handshake record that opens a ClientHello: its header, the handshake header
/// (ClientHello, a length no shorter than its fixed fields), the client version.
fn hello_start(b: &[u8]) -> bool {
    let Ok((HANDSHAKE, _, _)) = record_header(b) else {
        return false;
    };
    b.get(5) == Some(&CLIENT_HELLO)
        && be24(b, 6).is_some_and(|n| (38..=MAX_HELLO).contains(&n))
        && be16(b, 9).is_some_and(real_version)
}

pub(crate) fn client_check(b: &[u8]) -> Check {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        return match sslv2_hello(b) {
            Ok(version) => yes(
                AppProtocol::Tls,
                detail([("version", json!(version)), ("sslv2_hello", json!(true))]),
            ),
            Err(ParseError::Incomplete) => Check::More,
            Err(ParseError::Invalid) => Check::No,
        };
    }
    match client_hello(b) {
        Ok(h) => yes(
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
        // The record and handshake headers and the client version are in: likely TLS,
        // the answer if no more comes (a capture cut short by its snap length).
        Err(ParseError::Incomplete) if hello_start(b) => Check::Likely(
            AppProtocol::Tls,
            detail([(
                "version",
                json!(version_name(be16(b, 9).unwrap_or_default())),
            )]),
        ),
        Err(ParseError::Incomplete) => Check::More,
        Err(ParseError::Invalid) => Check::No,
    }
}

/// A server opening with a ServerHello (or refusing with an alert).
pub(crate) fn server_check(b: &[u8]) -> Check {
    let (kind, _, len) = match record_header(b) {
        Ok(h) => h,
        Err(ParseError::Incomplete) => return Check::More,
        Err(ParseError::Invalid) => return Check::No,
    };
    match kind {
        HANDSHAKE if b.len() > 5 && b[5] != SERVER_HELLO => Check::No,
        HANDSHAKE => match first_handshake(b, MAX_RECORD) {
            Err(ParseError::Incomplete) => Check::More,
            Err(ParseError::Invalid) => Check::No,
            Ok(_) => match server_hello_version(b) {
                Some(v) => yes(AppProtocol::Tls, detail([("version", json!(v))])),
                None => Check::No,
            },
        },
        // level (warning 1, fatal 2) and description.
        ALERT if len == 2 => match b.get(5) {
            None => Check::More,
            Some(1 | 2) => yes(AppProtocol::Tls, detail([("alert", json!(true))])),
            Some(_) => Check::No,
        },
        _ => Check::No,
    }
}

/// Mid-connection: a whole record, then a valid header right after it (two headers that
/// agree on where the first record ends). One whole record that ends exactly where the
/// side's bytes do (a short exchange: one application data record each way, an alert)
/// is likely TLS.
pub(crate) fn records(b: &[u8]) -> Check {
    let d = |version| detail([("record_version", json!(version_name(version)))]);
    match chain_at(b, 0) {
        Chain::Proven(version) => yes(AppProtocol::Tls, d(version)),
        Chain::Whole(version) => Check::Likely(AppProtocol::Tls, d(version)),
        Chain::Waiting => Check::More,
        Chain::Broken => Check::No,
    }
}

enum Chain {
    Proven(u16),
    /// One whole record and nothing after it (yet).
    Whole(u16),
    Waiting,
    Broken,
}

/// Is there a record at `at` followed by another record's header?
fn chain_at(b: &[u8], at: usize) -> Chain {
    let rest = &b[at.min(b.len())..];
    let (_, version, len) = match record_header(rest) {
        Ok(h) => h,
        Err(ParseError::Incomplete) => return Chain::Waiting,
        Err(ParseError::Invalid) => return Chain::Broken,
    };
    match rest.get(5 + len..).map(record_header) {
        Some(_) if rest.len() == 5 + len => Chain::Whole(version),
        None | Some(Err(ParseError::Incomplete)) => Chain::Waiting,
        Some(Err(ParseError::Invalid)) => Chain::Broken,
        Some(Ok((_, next_version, _))) if next_version == version => Chain::Proven(version),
        Some(Ok(_)) => Chain::Broken,
    }
}

/// Mid-connection, starting inside a record (a capture that began mid-transfer): the
/// first offset where two consecutive record headers agree. The leading bytes are the
/// end of a record whose header was not seen, so at most one record's worth is skipped.
pub(crate) fn resync(b: &[u8]) -> Check {
    let mut waiting = false;
    for at in 1..b.len().min(MAX_RECORD + 5) {
        if !matches!(
            b[at],
            HANDSHAKE | APPLICATION_DATA | ALERT | CHANGE_CIPHER_SPEC
        ) {
            continue;
        }
        match chain_at(b, at) {
            Chain::Proven(version) => {
                return yes(
                    AppProtocol::Tls,
                    detail([
                        ("record_version", json!(version_name(version))),
                        ("resynchronised_at", json!(at)),
                    ]),
                );
            }
            Chain::Waiting | Chain::Whole(_) => waiting = true,
            Chain::Broken => {}
        }
    }
    if waiting || b.len() < MAX_RECORD + 5 {
        Check::More
    } else {
        Check::No
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello as curl sends it: SNI, ALPN h2 + http/1.1, TLS 1.3 and 1.2 offered.
    pub(crate) fn hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let n = name.len() as u16;
        // server_name
        ext.extend_from_slice(&[0, 0]);
        ext.extend_from_slice(&(n + 5).to_be_bytes());
        ext.extend_from_slice(&(n + 3).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&n.to_be_bytes());
        ext.extend_from_slice(name);
        // ALPN
        ext.extend_from_slice(&[0, 16, 0, 14, 0, 12, 2, b'h', b'2', 8]);
        ext.extend_from_slice(b"http/1.1");
        // supported_versions: GREASE, 1.3, 1.2
        ext.extend_from_slice(&[0, 43, 0, 7, 6, 0x7a, 0x7a, 3, 4, 3, 3]);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(32);
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![CLIENT_HELLO, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    /// An SSL 2.0-compatible CLIENT-HELLO offering `version`, as RFC 6101 (appendix
    /// E.2) lays it out: three cipher specs, no session id, a 16-byte challenge.
    fn sslv2(version: u16) -> Vec<u8> {
        let mut body = vec![1];
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&[0, 9, 0, 0, 0, 16]);
        body.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x01, 0x00, 0x80]);
        body.extend_from_slice(&[0x5a; 16]);
        let mut rec = (0x8000 | body.len() as u16).to_be_bytes().to_vec();
        rec.extend_from_slice(&body);
        rec
    }

    #[test]
    fn a_client_hello_cut_short_is_likely() {
        let h = hello("example.com");
        for n in 0..11 {
            assert_eq!(client_check(&h[..n]), Check::More, "{n}");
        }
        for n in 11..h.len() {
            assert!(
                matches!(client_check(&h[..n]), Check::Likely(AppProtocol::Tls, _)),
                "{n}"
            );
        }
        assert!(matches!(client_check(&h), Check::Yes(..)));
        // A handshake of another type, or a length too short for a ClientHello.
        let mut other = h.clone();
        other[5] = 2;
        assert_eq!(client_check(&other[..20]), Check::No);
        let mut short = h[..20].to_vec();
        short[6..9].copy_from_slice(&[0, 0, 10]);
        assert_eq!(client_check(&short), Check::More);
    }

    #[test]
    fn sslv2_compatible_hellos() {
        for (v, name) in [(0x0002, "SSL2.0"), (0x0300, "SSL3.0"), (0x0301, "TLS1.0")] {
            let b = sslv2(v);
            match client_check(&b) {
                Check::Yes(AppProtocol::Tls, d) => assert_eq!(d["version"], name),
                other => panic!("{name}: {other:?}"),
            }
            for n in 1..11 {
                assert!(matches!(client_check(&b[..n]), Check::More), "{name} {n}");
            }
            // The lengths must add up to the record.
            let mut bad = b.clone();
            bad[1] += 1;
            assert!(matches!(client_check(&bad), Check::No));
        }
        // A memcached binary request (magic 0x80) is none.
        let get = [0x80, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0];
        assert!(matches!(client_check(&get), Check::No));
    }

    #[test]
    fn client_hello_gives_sni_alpn_and_the_highest_version() {
        let h = client_hello(&hello("www.ntop.org")).unwrap();
        assert_eq!(h.sni.as_deref(), Some("www.ntop.org"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.version, "TLS1.3");
    }

    #[test]
    fn every_prefix_of_a_client_hello_is_incomplete() {
        let h = hello("a.example");
        for n in 0..h.len() {
            assert_eq!(client_hello(&h[..n]), Err(ParseError::Incomplete), "{n}");
        }
    }

    #[test]
    fn a_client_hello_split_over_two_records_is_reassembled() {
        let h = hello("split.example");
        let hs = &h[5..];
        let (a, b) = hs.split_at(40);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[HANDSHAKE, 3, 1]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        assert_eq!(
            client_hello(&two).unwrap().sni.as_deref(),
            Some("split.example")
        );
    }

    #[test]
    fn not_tls() {
        // SMPP-like binary: a length and a command id, no record header.
        assert_eq!(
            client_hello(b"\x00\x00\x00\x2f\x00\x00\x00\x09\x00\x00\x00\x00"),
            Err(ParseError::Invalid)
        );
        // A handshake record that is not a ClientHello.
        assert_eq!(
            client_check(b"\x16\x03\x01\x00\x04\x0b\x00\x00\x00"),
            Check::No
        );
        // Record version out of range.
        assert_eq!(
            client_check(b"\x16\x03\x07\x00\x04\x01\x00\x00\x00"),
            Check::No
        );
        // A ClientHello whose declared length disagrees with its content.
        let mut h = hello("x");
        h[8] = h[8].wrapping_sub(3);
        assert_eq!(client_check(&h), Check::No);
    }

    #[test]
    fn server_alert_and_records() {
        assert!(matches!(
            server_check(b"\x15\x03\x03\x00\x02\x02\x28"),
            Check::Yes(..)
        ));
        assert_eq!(server_check(b"\x15\x03\x03\x00\x02\x07\x28"), Check::No);
        let mut recs = b"\x17\x03\x03\x00\x03abc".to_vec();
        // One whole record: likely; cut short: a prefix.
        assert!(matches!(records(&recs), Check::Likely(..)));
        assert_eq!(records(&recs[..7]), Check::More);
        recs.extend_from_slice(b"\x17\x03\x03\x00\x10");
        assert!(matches!(records(&recs), Check::Yes(..)));
    }

    #[test]
    fn resync_finds_records_after_a_partial_one() {
        let mut b = vec![0x42; 9];
        b.extend_from_slice(b"\x17\x03\x03\x00\x04abcd\x17\x03\x03\x01\x00");
        match resync(&b) {
            Check::Yes(_, d) => assert_eq!(d["resynchronised_at"], 9),
            c => panic!("{c:?}"),
        }
        // Random-looking bytes with one header-shaped run but no second header.
        let mut noise = vec![0x42; 9];
        noise.extend_from_slice(b"\x17\x03\x03\x00\x04abcd\x99\x99\x99\x99\x99");
        assert_eq!(resync(&noise), Check::More);
    }
}
