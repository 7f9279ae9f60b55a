//! SSH: the identification string both sides send first (RFC 4253 4.2), so a server's
//! banner alone is enough; mid-connection, the key exchange's first message (KEXINIT,
//! RFC 4253 7.1), still in the clear, whose algorithm lists are unmistakable.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{be32, detail, first_line, prefix_of, printable, yes};

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

/// SSH_MSG_KEXINIT.
const KEXINIT: u8 = 20;
/// The name-lists of a KEXINIT: key exchange, host key, two ciphers, two MACs, two
/// compressions, two languages.
const NAME_LISTS: usize = 10;
/// OpenSSH refuses packets longer than 256 KiB; a KEXINIT is a few KiB at most.
const MAX_KEXINIT: usize = 35_000;

/// Mid-connection (a capture that missed the banners, or a re-key): a whole binary
/// packet holding KEXINIT, unencrypted: packet length, padding length (4 or more),
/// message 20, a 16-byte cookie, ten name-lists of algorithm names, a boolean and a
/// zero reserved word, and exactly the padding the header announced.
pub(crate) fn kexinit(b: &[u8]) -> Check {
    let Some(len) = be32(b, 0).map(|l| l as usize) else {
        return if b.first().is_none_or(|&c| c == 0) {
            Check::More
        } else {
            Check::No
        };
    };
    if !(64..=MAX_KEXINIT).contains(&len) {
        return Check::No;
    }
    match (b.get(4), b.get(5)) {
        (Some(&pad), _) if pad < 4 || usize::from(pad) >= len => return Check::No,
        (_, Some(&msg)) if msg != KEXINIT => return Check::No,
        (_, None) => return Check::More,
        _ => {}
    }
    let Some(packet) = b.get(4..4 + len) else {
        return Check::More;
    };
    let mut at = 2 + 16;
    let mut kex = None;
    for i in 0..NAME_LISTS {
        let Some(n) = be32(packet, at).map(|n| n as usize) else {
            return Check::No;
        };
        let Some(list) = packet.get(at + 4..at + 4 + n) else {
            return Check::No;
        };
        // Key exchange, host key and cipher lists are never empty.
        if (i < 4 && n == 0) || !list.iter().all(|&c| name_byte(c)) {
            return Check::No;
        }
        if i == 0 {
            kex = list.split(|&c| c == b',').next();
        }
        at += 4 + n;
    }
    // first_kex_packet_follows, reserved (0), then the padding the header announced.
    let padding = usize::from(packet[0]);
    if packet.get(at).is_none_or(|&f| f > 1)
        || be32(packet, at + 1) != Some(0)
        || at + 5 + padding != len
    {
        return Check::No;
    }
    yes(
        AppProtocol::Ssh,
        detail([
            ("message", json!("KEXINIT")),
            (
                "kex",
                json!(String::from_utf8_lossy(kex.unwrap_or_default())),
            ),
        ]),
    )
}

/// Algorithm names: US-ASCII letters, digits and `-.@_+`, lists comma-separated.
fn name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.@_+,".contains(&c)
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
    /// OpenSSH 9's KEXINIT, shortened lists: built the way the wire carries it.
    fn kexinit_packet(lists: &[&str], padding: u8) -> Vec<u8> {
        let mut payload = vec![KEXINIT];
        payload.extend_from_slice(&[7; 16]);
        for l in lists {
            payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
            payload.extend_from_slice(l.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let len = 1 + payload.len() + usize::from(padding);
        let mut p = (len as u32).to_be_bytes().to_vec();
        p.push(padding);
        p.extend_from_slice(&payload);
        p.extend(std::iter::repeat_n(0, usize::from(padding)));
        p
    }

    const LISTS: [&str; 10] = [
        "curve25519-sha256,ext-info-c",
        "ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "umac-64-etm@openssh.com,hmac-sha2-256",
        "umac-64-etm@openssh.com,hmac-sha2-256",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ];

    #[test]
    fn kexinit_mid_connection() {
        let p = kexinit_packet(&LISTS, 6);
        match kexinit(&p) {
            Check::Yes(_, d) => assert_eq!(d["kex"], "curve25519-sha256"),
            c => panic!("{c:?}"),
        }
        for n in 0..p.len() {
            assert_eq!(kexinit(&p[..n]), Check::More, "{n}");
        }
        // The padding must be what the header says; lists must be algorithm names.
        let mut wrong = p.clone();
        wrong[4] = 5;
        assert_eq!(kexinit(&wrong), Check::No);
        let mut lists = LISTS;
        lists[1] = "ssh ed25519";
        assert_eq!(kexinit(&kexinit_packet(&lists, 6)), Check::No);
        lists = LISTS;
        lists[0] = "";
        assert_eq!(kexinit(&kexinit_packet(&lists, 6)), Check::No);
        // Another message type (NEWKEYS is 21).
        let mut other = p;
        other[5] = 21;
        assert_eq!(kexinit(&other), Check::No);
    }
}
