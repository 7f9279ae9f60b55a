//! Tunnels a capture reader looks through. Overlay networks carry the pods' packets
//! inside the nodes' (Flannel's and Calico's VXLAN, Cilium's VXLAN or Geneve, Calico's
//! IP-in-IP, GRE tunnels): a capture on a node's uplink holds the pods' flows inside
//! these, and they are what a reader of it wants named. Mobile cores carry the
//! subscribers' packets in GTP-U, and containerised 5G user planes run in clusters;
//! broadband and VPN gateways carry theirs in L2TP.

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::DataLink;

/// Tunnels inside tunnels are unwrapped up to this many levels.
pub(super) const MAX_TUNNELS: u8 = 3;
/// VXLAN's IANA port and Linux's default (`ip link add type vxlan` without `dstport`,
/// Flannel's).
const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const GENEVE_PORT: u16 = 6081;
/// L2TP's port (RFC 2661), both ways.
const L2TP_PORT: u16 = 1701;
/// GTP-U's port (3GPP TS 29.281), both ways.
const GTP_U_PORT: u16 = 2152;
/// GTP-U extension headers read at most.
const MAX_GTP_EXTENSIONS: usize = 8;
/// Transparent Ethernet bridging: an Ethernet frame inside GRE or Geneve.
const ETHERTYPE_TEB: u16 = 0x6558;

/// The packet inside a tunnel packet: its link type and bytes.
pub(super) fn tunnelled<'a>(p: &LaxSlicedPacket<'a>) -> Option<(DataLink, &'a [u8])> {
    let ip = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => ip.payload(),
        LaxNetSlice::Ipv6(ip) => ip.payload(),
        LaxNetSlice::Arp(_) => return None,
    };
    match ip.ip_number.0 {
        // IP-in-IP, IPv6-in-IP.
        4 | 41 => Some((DataLink::RAW, ip.payload)),
        // GRE (RFC 2784, 2890): flags and version, protocol, then the optional checksum,
        // key and sequence words the flags announce.
        47 => {
            let g = ip.payload;
            let flags = u16::from_be_bytes([*g.first()?, *g.get(1)?]);
            let proto = u16::from_be_bytes([*g.get(2)?, *g.get(3)?]);
            let words = [0x8000u16, 0x2000, 0x1000]
                .iter()
                .filter(|&&f| flags & f != 0)
                .count();
            by_ethertype(proto, g.get(4 + 4 * words..)?)
        }
        _ => {
            let Some(TransportSlice::Udp(u)) = &p.transport else {
                return None;
            };
            let (port, b) = (u.destination_port(), u.payload());
            if VXLAN_PORTS.contains(&port) {
                // Flags (the I bit: a VNI follows), reserved, VNI, reserved.
                (b.len() > 8 && b[0] & 0x08 != 0).then(|| (DataLink::ETHERNET, &b[8..]))
            } else if port == GENEVE_PORT {
                // Version and options' length (4-byte words), flags, protocol type.
                let first = *b.first()?;
                let proto = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
                let inner = b.get(8 + 4 * usize::from(first & 0x3f)..)?;
                (first >> 6 == 0)
                    .then_some(())
                    .and(by_ethertype(proto, inner))
            } else if port == GTP_U_PORT {
                gtp_u(b)
            } else if port == L2TP_PORT {
                l2tp(b)
            } else {
                None
            }
        }
    }
}

/// A GTP-U G-PDU (version 1, protocol type GTP, message type 255): an 8-byte header,
/// 4 more bytes when any of the E, S and PN flags is set, then the extension headers
/// the E flag announces (each a length in 4-byte words, content, and the next one's
/// type), then the subscriber's IP packet.
fn gtp_u(b: &[u8]) -> Option<(DataLink, &[u8])> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *b.get(1)? != 0xff {
        return None;
    }
    let mut at = 8;
    if flags & 0x07 != 0 {
        at = 12;
        let mut next = *b.get(11)?;
        for _ in 0..MAX_GTP_EXTENSIONS {
            if flags & 0x04 == 0 || next == 0 {
                break;
            }
            let words = usize::from(*b.get(at)?);
            if words == 0 {
                return None;
            }
            at += 4 * words;
            next = *b.get(at - 1)?;
        }
        if flags & 0x04 != 0 && next != 0 {
            return None;
        }
    }
    let inner = b.get(at..)?;
    matches!(inner.first()? >> 4, 4 | 6).then_some((DataLink::RAW, inner))
}

/// An L2TPv2 data message (RFC 2661 3.1): flags and version 2, then the optional
/// length, the tunnel and session ids, the optional sequence numbers and offset, then a
/// PPP frame (a broadband subscriber's or a VPN client's packets).
fn l2tp(b: &[u8]) -> Option<(DataLink, &[u8])> {
    let flags = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    // T: a control message; version in the low 4 bits.
    if flags & 0x8000 != 0 || flags & 0x000f != 2 {
        return None;
    }
    let mut at = 2 + 4;
    if flags & 0x4000 != 0 {
        at += 2; // length
    }
    if flags & 0x0800 != 0 {
        at += 4; // Ns, Nr
    }
    if flags & 0x0200 != 0 {
        let pad = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
        at += 2 + usize::from(pad);
    }
    Some((DataLink::PPP, b.get(at..)?))
}

fn by_ethertype(proto: u16, inner: &[u8]) -> Option<(DataLink, &[u8])> {
    match proto {
        0x0800 | 0x86dd => Some((DataLink::RAW, inner)),
        ETHERTYPE_TEB => Some((DataLink::ETHERNET, inner)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::capture::detect_capture;
    use crate::capture::tests::pcap;
    use etherparse::PacketBuilder;

    /// A pod's HTTP request (10.244.1.5 -> 10.244.2.7:8080) as an IPv4 packet.
    fn pod_request() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 244, 1, 5], [10, 244, 2, 7], 64)
            .tcp(40000, 8080, 1000, 64240)
            .ack(1)
            .psh()
            .write(&mut out, b"GET /v1/x HTTP/1.1\r\nHost: api\r\n\r\n")
            .unwrap();
        out
    }

    fn ethernet(ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
        [
            &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1][..],
            &ethertype,
            payload,
        ]
        .concat()
    }

    /// The nodes' packet (192.168.0.1 -> .2) carrying `inner` as IP protocol `proto`.
    fn outer_ip(proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let ip = etherparse::Ipv4Header::new(
            inner.len() as u16,
            64,
            etherparse::IpNumber(proto),
            [192, 168, 0, 1],
            [192, 168, 0, 2],
        )
        .unwrap();
        ip.write(&mut out).unwrap();
        out.extend_from_slice(inner);
        ethernet([0x08, 0x00], &out)
    }

    fn outer_udp(port: u16, inner: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
            .udp(51234, port)
            .write(&mut out, inner)
            .unwrap();
        out
    }

    #[test]
    fn flows_inside_tunnels_are_the_pods() {
        let pod = pod_request();
        let in_ethernet = ethernet([0x08, 0x00], &pod);
        let vxlan = [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], &in_ethernet].concat();
        let geneve = [&[0, 0, 0x65, 0x58, 0, 0, 7, 0][..], &in_ethernet].concat();
        let gre_key = [&[0x20, 0, 0x08, 0x00, 0, 0, 0, 9][..], &pod].concat();
        let len = |n: usize| (n as u16).to_be_bytes();
        let l2tp = [
            &[0x48, 0x02][..],
            &len(pod.len() + 16),
            &[0, 7, 0, 9, 0, 1, 0, 1, 0xff, 0x03, 0x00, 0x21],
            &pod,
        ]
        .concat();
        let gtp = [&[0x30, 0xff][..], &len(pod.len()), &[0, 0, 0, 1], &pod].concat();
        // With a sequence number and a PDU session container (5G: type 0x85, one word).
        let gtp_ext = [
            &[0x36, 0xff][..],
            &len(pod.len() + 8),
            &[0, 0, 0, 1, 0, 7, 0, 0x85],
            &[1, 0x10, 9, 0],
            &pod,
        ]
        .concat();
        let cases = [
            ("vxlan", outer_udp(4789, &vxlan)),
            ("vxlan, Linux's port", outer_udp(8472, &vxlan)),
            ("geneve", outer_udp(6081, &geneve)),
            ("gre with a key", outer_ip(47, &gre_key)),
            ("ip-in-ip", outer_ip(4, &pod)),
            ("gtp-u", outer_udp(2152, &gtp)),
            (
                "l2tp with length, sequence numbers and PPP",
                outer_udp(1701, &l2tp),
            ),
            ("gtp-u with extension headers", outer_udp(2152, &gtp_ext)),
            (
                "vxlan in ip-in-ip",
                outer_ip(4, &outer_udp(4789, &vxlan)[14..]),
            ),
        ];
        for (name, frame) in cases {
            let flows = detect_capture(&pcap(&[frame])).unwrap();
            assert_eq!(flows.len(), 1, "{name}: {flows:?}");
            let f = &flows[0];
            assert_eq!(
                (f.src.as_str(), f.dst.as_str(), f.protocol.as_str()),
                ("10.244.1.5:40000", "10.244.2.7:8080", "http"),
                "{name}"
            );
        }
        // Not a tunnel's port: the nodes' own flow.
        let flows = detect_capture(&pcap(&[outer_udp(4788, &vxlan)])).unwrap();
        assert_eq!(flows[0].dst, "192.168.0.2:4788");
    }
}
