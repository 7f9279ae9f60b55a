//! MySQL / MariaDB: the server's greeting (protocol 10, server speaks first), the client's
//! handshake response, and mid-connection commands.
//!
//! Hand-written: the Rust MySQL crates are clients; none parses a greeting from a prefix.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{detail, le24, le32, printable, text_like, yes};

/// Packet header: 3-byte little-endian length, sequence number.
fn packet(b: &[u8]) -> Option<(usize, u8)> {
    Some((le24(b, 0)?, *b.get(3)?))
}

const CLIENT_MYSQL: u32 = 0x1;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const COM_QUERY: u8 = 0x03;

/// The server greeting (HandshakeV10), or an error packet sent instead of one (host not
/// allowed, too many connections).
pub(crate) fn greeting(b: &[u8]) -> Check {
    let Some((len, seq)) = packet(b) else {
        // A greeting is short (< 64 KiB: third length byte 0) and has sequence 0.
        return if b.get(2).is_none_or(|&c| c == 0) {
            Check::More
        } else {
            Check::No
        };
    };
    if seq != 0 || !(10..=1024).contains(&len) {
        return Check::No;
    }
    let Some(p) = b.get(4..4 + len) else {
        return match b.get(4) {
            None | Some(0x0a | 0xff) => Check::More,
            Some(_) => Check::No,
        };
    };
    match p[0] {
        0x0a => {
            let Some(end) = p[1..].iter().position(|&c| c == 0) else {
                return Check::No;
            };
            let version = &p[1..1 + end];
            // Then: thread id (4), auth data part 1 (8), a zero filler.
            if version.is_empty()
                || version.len() > 64
                || !version[0].is_ascii_digit()
                || !printable(version)
                || p.get(1 + end + 1 + 4 + 8) != Some(&0)
            {
                return Check::No;
            }
            yes(
                AppProtocol::Mysql,
                detail([("server_version", json!(String::from_utf8_lossy(version)))]),
            )
        }
        // 0xff, error code (2 bytes LE, 1000-2999 for server errors), message.
        0xff if len >= 9 => {
            let code = u16::from_le_bytes([p[1], p[2]]);
            if (1000..3000).contains(&code) && printable(&p[3..]) {
                yes(
                    AppProtocol::Mysql,
                    detail([
                        ("error", json!(code)),
                        ("message", json!(String::from_utf8_lossy(&p[3..]))),
                    ]),
                )
            } else {
                Check::No
            }
        }
        _ => Check::No,
    }
}

/// The client's HandshakeResponse41: sequence 1, capabilities with CLIENT_PROTOCOL_41,
/// max packet size, charset, then 23 zero bytes of filler.
pub(crate) fn handshake_response(b: &[u8]) -> Check {
    let Some((len, seq)) = packet(b) else {
        return Check::More;
    };
    if seq != 1 || !(32..=1 << 16).contains(&len) {
        return Check::No;
    }
    let Some(p) = b.get(4..36) else {
        return Check::More;
    };
    let caps = le32(p, 0).unwrap_or(0);
    // MariaDB clients talking to a MariaDB server (no CLIENT_MYSQL bit) put their
    // extended capabilities in the filler's last four bytes.
    let filler = if caps & CLIENT_MYSQL == 0 {
        &p[9..28]
    } else {
        &p[9..32]
    };
    if caps & CLIENT_PROTOCOL_41 == 0 || !filler.iter().all(|&c| c == 0) {
        return Check::No;
    }
    // The user name, a NUL-terminated string, follows the filler.
    let user = b
        .get(36..(4 + len).min(b.len()))
        .and_then(|u| u.iter().position(|&c| c == 0).map(|i| &u[..i]))
        .filter(|u| printable(u))
        .map(|u| json!(String::from_utf8_lossy(u)));
    yes(
        AppProtocol::Mysql,
        detail([
            ("message", json!("HandshakeResponse")),
            ("user", user.unwrap_or_default()),
        ]),
    )
}

/// Mid-connection: a COM_QUERY (sequence 0) holding SQL text.
pub(crate) fn command(b: &[u8]) -> Check {
    let Some((len, seq)) = packet(b) else {
        return Check::More;
    };
    if seq != 0 || len < 2 || b.get(4).is_some_and(|&c| c != COM_QUERY) {
        return Check::No;
    }
    let Some(p) = b.get(4..4 + len) else {
        return if text_like(&b[5.min(b.len())..]) {
            Check::More
        } else {
            Check::No
        };
    };
    if text_like(&p[1..]) && p[1..].iter().any(u8::is_ascii_alphabetic) {
        yes(
            AppProtocol::Mysql,
            detail([("message", json!("COM_QUERY"))]),
        )
    } else {
        Check::No
    }
}

/// A column definition (ColumnDefinition41) starts with its catalog, which is always `def`.
const CATALOG: &[u8] = b"\x03def";

/// Mid-connection, from the server: the start of a result set, answering a query the
/// capture did not see: the column count (sequence 1, a length-encoded integer, perhaps
/// with MariaDB's metadata flag), then a column definition (sequence 2) whose catalog is
/// `def`.
pub(crate) fn replies(b: &[u8]) -> Check {
    let Some((len, seq)) = packet(b) else {
        return Check::More;
    };
    let count_ok = match b.get(4) {
        None => true,
        Some(1..=0xfa) => matches!(len, 1 | 2),
        Some(0xfc) => matches!(len, 3 | 4),
        Some(_) => false,
    };
    if seq != 1 || !count_ok {
        return Check::No;
    }
    let at = 4 + len;
    let Some((def_len, def_seq)) = b.get(at..).and_then(packet) else {
        return Check::More;
    };
    if def_seq != 2 || def_len < CATALOG.len() {
        return Check::No;
    }
    let got = &b[(at + 4).min(b.len())..(at + 4 + CATALOG.len()).min(b.len())];
    if !CATALOG.starts_with(got) {
        return Check::No;
    }
    if got.len() < CATALOG.len() {
        return Check::More;
    }
    let columns = match b[4] {
        0xfc => u64::from(u16::from_le_bytes([b[5], b[6]])),
        n => u64::from(n),
    };
    yes(
        AppProtocol::Mysql,
        detail([("message", json!("ResultSet")), ("columns", json!(columns))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB 10.6's greeting.
    const MARIADB: &[u8] = b"\x5b\x00\x00\x00\x0a5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1\x00\x05\x00\x00\x00\x4f\x2f\x3c\x27\x6b\x32\x47\x5a\x00\xfe\xf7\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00\x2a\x4d\x64\x6e\x4b\x2b\x73\x4e\x4a\x3b\x5e\x49\x00mysql_native_password\x00";

    #[test]
    fn greeting_gives_the_server_version() {
        match greeting(MARIADB) {
            Check::Yes(AppProtocol::Mysql, d) => {
                assert_eq!(
                    d["server_version"],
                    "5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1"
                );
            }
            c => panic!("{c:?}"),
        }
        for n in 0..40 {
            assert_eq!(greeting(&MARIADB[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn error_instead_of_a_greeting() {
        let msg = b"Host '10.0.0.9' is not allowed to connect to this MySQL server";
        let mut e = vec![(msg.len() + 3) as u8, 0, 0, 0, 0xff, 0x6a, 0x04];
        e.extend_from_slice(msg);
        assert!(matches!(greeting(&e), Check::Yes(..)));
    }

    #[test]
    fn handshake_response_and_query() {
        let mut r = b"\x2e\x00\x00\x01\x85\xa6\xff\x01\x00\x00\x00\x01\x21".to_vec();
        r.extend_from_slice(&[0; 23]);
        r.extend_from_slice(b"root\x00\x00mysql_native_password\x00");
        r[0] = (r.len() - 4) as u8;
        match handshake_response(&r) {
            Check::Yes(_, d) => assert_eq!(d["user"], "root"),
            c => panic!("{c:?}"),
        }
        // libmariadb to MariaDB: extended capabilities in the filler's last 4 bytes.
        let mut m = r.clone();
        m[4] &= !0x01;
        m[32..36].copy_from_slice(&[0x1d, 0, 0, 0]);
        assert!(matches!(handshake_response(&m), Check::Yes(..)));
        m[4] |= 0x01;
        assert_eq!(handshake_response(&m), Check::No);
        assert!(matches!(
            command(b"\x09\x00\x00\x00\x03SELECT 1"),
            Check::Yes(..)
        ));
    }

    #[test]
    fn a_result_set_mid_connection() {
        // MariaDB answering `SELECT 1`: one column, its definition, ...
        let rs = b"\x01\x00\x00\x01\x01\x18\x00\x00\x02\x03def\x00\x00\x00\x011\x00\x0c?\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00";
        match replies(rs) {
            Check::Yes(AppProtocol::Mysql, d) => assert_eq!(d["columns"], 1),
            c => panic!("{c:?}"),
        }
        for n in 0..13 {
            assert_eq!(replies(&rs[..n]), Check::More, "{n}");
        }
        // Another catalog, sequence or count is no result set.
        let mut other = rs.to_vec();
        other[10] = b'x';
        assert_eq!(replies(&other), Check::No);
        let mut seq = rs.to_vec();
        seq[8] = 3;
        assert_eq!(replies(&seq), Check::No);
        let mut count = rs.to_vec();
        count[4] = 0;
        assert_eq!(replies(&count), Check::No);
    }

    #[test]
    fn not_mysql() {
        // Protocol 10 with a non-numeric version.
        let mut g = MARIADB.to_vec();
        g[5] = b'x';
        assert_eq!(greeting(&g), Check::No);
        // Sequence 1 is not a greeting.
        let mut s = MARIADB.to_vec();
        s[3] = 1;
        assert_eq!(greeting(&s), Check::No);
        assert_eq!(greeting(b"SSH-2.0-x\r\n"), Check::No);
        assert_eq!(command(b"\x05\x00\x00\x00\x03\x00\x01\x02\x03"), Check::No);
    }
}
