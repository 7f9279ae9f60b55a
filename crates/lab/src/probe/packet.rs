//! Packets probes craft by hand, for what has no socket in this kernel (SCTP: no
//! module) and for ICMP messages other than echo: an SCTP INIT with its CRC32c, ICMP
//! messages with a tag, and the parsers the destination uses to recognise them.
//!
//! Each probe packet carries a 32-bit tag unique to the probe (the INIT's initiate tag,
//! or the ICMP header's second word), so the destination can say which probe arrived.

/// IP protocol numbers.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_SCTP: u8 = 132;
pub const PROTO_ICMPV6: u8 = 58;

/// CRC32c (Castagnoli), reflected, as SCTP's checksum (RFC 9260 appendix A).
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82f6_3b78;
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An SCTP packet with one INIT chunk (32 bytes): what a client sends first.
pub fn sctp_init(src_port: u16, dst_port: u16, tag: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // verification tag: 0 in an INIT
    p.extend_from_slice(&0u32.to_be_bytes()); // checksum, filled in below
    p.push(1); // chunk type INIT
    p.push(0); // flags
    p.extend_from_slice(&20u16.to_be_bytes()); // chunk length
    p.extend_from_slice(&tag.to_be_bytes()); // initiate tag
    p.extend_from_slice(&65535u32.to_be_bytes()); // advertised receiver window
    p.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    p.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    p.extend_from_slice(&tag.to_be_bytes()); // initial TSN
    // The CRC is stored least significant byte first (as Linux and RFC 9260's sample
    // code do: the reflected CRC's bytes in transmission order).
    let crc = crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

/// `(destination port, initiate tag)` of an SCTP INIT.
pub fn parse_sctp_init(p: &[u8]) -> Option<(u16, u32)> {
    if p.len() < 32 || p[12] != 1 {
        return None;
    }
    let dst_port = u16::from_be_bytes([p[2], p[3]]);
    let tag = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
    Some((dst_port, tag))
}

/// The Internet checksum (RFC 1071), for ICMPv4 (ICMPv6's is the kernel's job).
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP message of any type and code carrying `tag` as its second word.
pub fn icmp(v6: bool, icmp_type: u8, code: u8, tag: u32) -> Vec<u8> {
    let mut p = vec![icmp_type, code, 0, 0];
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(b"bulkhead-lab probe");
    if !v6 {
        let c = inet_checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// `(type, code, tag)` of an ICMP message.
pub fn parse_icmp(p: &[u8]) -> Option<(u8, u8, u32)> {
    (p.len() >= 8).then(|| (p[0], p[1], u32::from_be_bytes([p[4], p[5], p[6], p[7]])))
}

/// What follows the IPv4 header (raw IPv4 sockets receive the header; IPv6 ones do not).
pub fn strip_ipv4_header(p: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(*p.first()? & 0x0f) * 4;
    p.get(ihl..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn an_init_verifies_and_parses_back() {
        let p = sctp_init(40000, 80, 0xdead_beef);
        assert_eq!(p.len(), 32);
        let mut zeroed = p.clone();
        zeroed[8..12].fill(0);
        assert_eq!(
            u32::from_le_bytes([p[8], p[9], p[10], p[11]]),
            crc32c(&zeroed)
        );
        assert_eq!(parse_sctp_init(&p), Some((80, 0xdead_beef)));
        assert_eq!(parse_sctp_init(&p[..20]), None);
    }

    #[test]
    fn icmp_checksums_verify() {
        let p = icmp(false, 3, 4, 7);
        assert_eq!(inet_checksum(&p), 0);
        assert_eq!(parse_icmp(&p), Some((3, 4, 7)));
        let ip = [
            0x45u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        ];
        assert_eq!(strip_ipv4_header(&ip), Some(&[9u8][..]));
    }
}
