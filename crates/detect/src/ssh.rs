//! SSH: the identification string both sides send first (RFC 4253 4.2), so a server's
//! banner alone is enough.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{detail, first_line, prefix_of, printable, yes};

/// The identification line is at most 255 bytes with its CR LF.
const MAX_LINE: usize = 255;

/// `SSH-2.0-software [comments]` (or 1.99 / 1.5), from either side.
pub(crate) fn banner(b: &[u8]) -> Check {
    const VERSIONS: &[&[u8]] = &[b"SSH-2.0-", b"SSH-1.99-", b"SSH-1.5-"];
    let Some(v) = VERSIONS.iter().find(|v| b.starts_with(v)) else {
        return if VERSIONS.iter().any(|v| prefix_of(b, v) == Check::More) {
            Check::More
        } else {
            Check::No
        };
    };
    match first_line(b) {
        Some(l) if l.len() <= MAX_LINE && l.len() > v.len() && printable(l) => yes(
            AppProtocol::Ssh,
            detail([("banner", json!(String::from_utf8_lossy(l)))]),
        ),
        Some(_) => Check::No,
        None if b.len() <= MAX_LINE && printable(b) => Check::More,
        None => Check::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        match banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x05\xdc") {
            Check::Yes(_, d) => assert_eq!(d["banner"], "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
            c => panic!("{c:?}"),
        }
        assert!(matches!(banner(b"SSH-1.99-Cisco-1.25\n"), Check::Yes(..)));
        for n in 0..12 {
            assert_eq!(banner(&b"SSH-2.0-dropbear\r\n"[..n]), Check::More, "{n}");
        }
    }

    #[test]
    fn not_ssh() {
        assert_eq!(banner(b"SSH-3.0-x\r\n"), Check::No);
        assert_eq!(banner(b"SSH-2.0-\r\n"), Check::No);
        assert_eq!(banner(b"SSH-2.0-a\x01b\r\n"), Check::No);
        assert_eq!(
            banner(&[b'S', b'S', b'H', b'-', b'2', b'.', b'0', b'-'].repeat(40)),
            Check::No
        );
    }
}
