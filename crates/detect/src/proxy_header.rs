//! The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer sends
//! before the client's own bytes, to pass on the client's address (an AWS NLB or
//! HAProxy in front of an ingress controller). It is not the application's protocol:
//! detection reads past it and names what follows, with the header's addresses in the
//! detail; the proxy passes it on to the server unchanged.

use serde_json::{Value, json};

/// Version 1: a text line, at most 107 bytes with its CRLF.
const V1: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
/// Version 2: a 12-byte signature, then version/command, family, length.
const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// What the bytes at a connection's start are.
#[derive(Debug, PartialEq)]
pub(crate) enum Header {
    /// Not a PROXY header (or not a valid one): the application's bytes start at 0.
    None,
    /// A prefix of one: wait for more.
    More,
    /// A header of this many bytes, and what it says.
    Whole(usize, Value),
}

pub(crate) fn header(b: &[u8]) -> Header {
    let prefix_of = |sig: &[u8]| b.len() < sig.len() && sig.starts_with(b);
    if prefix_of(V1) || prefix_of(V2) {
        return Header::More;
    }
    if b.starts_with(V1) {
        return v1(b);
    }
    if b.starts_with(V2) {
        return v2(b);
    }
    Header::None
}

/// `PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n` (or `TCP6`, or `UNKNOWN ...`).
fn v1(b: &[u8]) -> Header {
    let Some(end) = b.iter().take(V1_MAX).position(|&c| c == b'\n') else {
        return if b.len() < V1_MAX
            && b.iter()
                .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\r')
        {
            Header::More
        } else {
            Header::None
        };
    };
    let Some(line) = b[..end].strip_suffix(b"\r") else {
        return Header::None;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Header::None;
    };
    let words: Vec<&str> = line.split(' ').collect();
    let detail = match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => json!({"version": 1, "family": "UNKNOWN"}),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *family == "TCP6";
            let ip = |s: &str| {
                s.parse::<std::net::IpAddr>()
                    .ok()
                    .filter(|a| a.is_ipv6() == v6)
            };
            let port = |s: &str| {
                s.parse::<u16>()
                    .ok()
                    .filter(|_| !s.starts_with('0') || s == "0")
            };
            let (Some(src), Some(dst), Some(sport), Some(dport)) =
                (ip(src), ip(dst), port(sport), port(dport))
            else {
                return Header::None;
            };
            json!({
                "version": 1,
                "family": family,
                "source": std::net::SocketAddr::new(src, sport).to_string(),
                "destination": std::net::SocketAddr::new(dst, dport).to_string(),
            })
        }
        _ => return Header::None,
    };
    Header::Whole(end + 1, detail)
}

/// The binary header: signature, `0x2C` (version 2, command C: 0 LOCAL, 1 PROXY),
/// family and transport, length of what follows (addresses, then TLVs).
fn v2(b: &[u8]) -> Header {
    let Some(fixed) = b.get(..16) else {
        return Header::More;
    };
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let command = match ver_cmd {
        0x20 => "LOCAL",
        0x21 => "PROXY",
        _ => return Header::None,
    };
    // Address lengths by family (RFC-like spec 2.2): INET 12, INET6 36, UNIX 216.
    let need = match fam >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Header::None,
    };
    if fam & 0x0f > 2 || len < need {
        return Header::None;
    }
    let Some(body) = b.get(16..16 + len) else {
        return Header::More;
    };
    let mut detail = json!({"version": 2, "command": command});
    let addr = |ip: std::net::IpAddr, port: &[u8]| {
        Value::String(
            std::net::SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])).to_string(),
        )
    };
    if command == "PROXY" {
        match fam >> 4 {
            1 => {
                let ip = |o: usize| {
                    std::net::IpAddr::from([body[o], body[o + 1], body[o + 2], body[o + 3]])
                };
                detail["source"] = addr(ip(0), &body[8..10]);
                detail["destination"] = addr(ip(4), &body[10..12]);
            }
            2 => {
                let ip = |o: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&body[o..o + 16]);
                    std::net::IpAddr::from(a)
                };
                detail["source"] = addr(ip(0), &body[32..34]);
                detail["destination"] = addr(ip(16), &body[34..36]);
            }
            _ => {}
        }
    }
    Header::Whole(16 + len, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET / HTTP/1.1\r\n";
        match header(h) {
            Header::Whole(n, d) => {
                assert_eq!(&h[n..n + 3], b"GET");
                assert_eq!(d["source"], "192.0.2.1:56324");
                assert_eq!(d["destination"], "198.51.100.7:443");
            }
            other => panic!("{other:?}"),
        }
        let h6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n";
        assert!(matches!(header(h6), Header::Whole(44, _)));
        assert!(matches!(header(b"PROXY UNKNOWN\r\n"), Header::Whole(15, _)));
        for n in 0..h.len().min(45) {
            assert_eq!(header(&h[..n]), Header::More, "{n}");
        }
    }

    #[test]
    fn not_a_header() {
        for b in [
            &b"POST / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0\r\n",
            b"PING\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 99999\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 056324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
        ] {
            assert_eq!(header(b), Header::None, "{}", String::from_utf8_lossy(b));
        }
        let long = [&b"PROXY "[..], &[b'A'; 120]].concat();
        assert_eq!(header(&long), Header::None);
    }

    #[test]
    fn version_2() {
        let mut h = V2.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb,
        ]);
        h.extend_from_slice(b"\x16\x03\x01");
        match header(&h) {
            Header::Whole(28, d) => {
                assert_eq!(d["source"], "192.0.2.1:56324");
                assert_eq!(d["destination"], "198.51.100.7:443");
                assert_eq!(d["command"], "PROXY");
            }
            other => panic!("{other:?}"),
        }
        for n in 0..28 {
            assert_eq!(header(&h[..n]), Header::More, "{n}");
        }
        // A health check (LOCAL, no addresses) is a header too.
        let mut local = V2.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert!(matches!(header(&local), Header::Whole(16, _)));
        // Version 1 in the binary form's byte, or addresses longer than the length.
        let mut bad = V2.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0, 12]);
        assert_eq!(header(&bad), Header::None);
        let mut short = V2.to_vec();
        short.extend_from_slice(&[0x21, 0x21, 0, 12]);
        assert_eq!(header(&short), Header::None);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever follows either signature, reading it never panics, and a whole
        /// header never claims more bytes than there are.
        #[test]
        fn any_bytes_after_a_signature(v2 in any::<bool>(), rest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let b = [if v2 { V2 } else { V1 }, &rest].concat();
            if let Header::Whole(n, _) = header(&b) {
                prop_assert!(n <= b.len());
            }
        }
    }
}
