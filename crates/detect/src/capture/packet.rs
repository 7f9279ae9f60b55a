//! One captured frame -> the packet detection reads: its link layer (Ethernet, raw IP,
//! Linux cooked, BSD loopback, PPP, PPPoE, Cisco HDLC), MPLS labels, the tunnels
//! overlay networks and mobile cores wrap packets in (`tunnel`), and a UDP datagram's
//! first IP fragment.

use std::net::IpAddr;

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice, UdpSlice};
use pcap_file::DataLink;

use super::{Endpoint, L4, tunnel};

/// What detection needs of one packet.
pub(super) struct Packet<'a> {
    pub(super) l4: L4,
    pub(super) src: Endpoint,
    pub(super) dst: Endpoint,
    pub(super) syn: bool,
    pub(super) ack: bool,
    /// The acknowledgment number (with `ack`).
    pub(super) acked: u32,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// Label stack entries read before giving up on finding the bottom one.
const MAX_MPLS_LABELS: usize = 8;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// Layers etherparse does not parse: PPPoE session frames carry PPP, then IP (6-byte
/// PPPoE header, 2-byte PPP protocol).
fn pppoe(ether_type: EtherType, payload: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    if ether_type.0 != ETHERTYPE_PPPOE_SESSION {
        return None;
    }
    ppp(payload.get(6..)?)
}

/// The packet under an MPLS label stack (RFC 3032), as carriers' links carry it: IP by
/// its version nibble after the entry marked bottom of stack (a pseudowire's Ethernet
/// frame or control word is no flow here).
fn mpls(ether_type: EtherType, payload: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    if ether_type.0 != ETHERTYPE_MPLS && ether_type.0 != ETHERTYPE_MPLS_MULTICAST {
        return None;
    }
    let mut at = 0;
    for _ in 0..MAX_MPLS_LABELS {
        let bottom = payload.get(at + 2)? & 1 == 1;
        at += 4;
        if bottom {
            return match payload.get(at)? >> 4 {
                4 | 6 => LaxSlicedPacket::from_ip(&payload[at..]).ok(),
                _ => None,
            };
        }
    }
    None
}

/// Cisco HDLC: address (`0f` unicast, `8f` broadcast), control (`00`), then an
/// Ethernet type.
fn chdlc(data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    let et = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
    Some(LaxSlicedPacket::from_ether_type(
        EtherType(et),
        data.get(4..)?,
    ))
}

/// A PPP frame (RFC 1661) with or without RFC 1662's HDLC-like address and control
/// bytes (`ff 03`), its protocol field compressed to one byte or not: the IP packet
/// inside, else nothing (link control, authentication).
fn ppp(data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    // Links captured as PPP may carry Cisco HDLC (Wireshark reads them so too).
    if let [0x0f | 0x8f, 0x00, ..] = data {
        return chdlc(data);
    }
    let data = data.strip_prefix(&[0xff, 0x03]).unwrap_or(data);
    // A protocol number's first byte is even, its last odd: an odd first byte is a
    // compressed one-byte field.
    let (proto, rest) = match *data.first()? {
        b if b & 1 == 1 => (u16::from(b), &data[1..]),
        b => (u16::from_be_bytes([b, *data.get(1)?]), &data[2..]),
    };
    match proto {
        PPP_IPV4 | PPP_IPV6 => LaxSlicedPacket::from_ip(rest).ok(),
        _ => None,
    }
}

pub(super) fn parse(link: DataLink, data: &[u8]) -> Option<Packet<'_>> {
    parse_in(link, data, 0)
}

fn parse_in(link: DataLink, data: &[u8], depth: u8) -> Option<Packet<'_>> {
    let mut p = match link {
        DataLink::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => LaxSlicedPacket::from_ip(data).ok()?,
        // Linux cooked v1: 16-byte header, protocol in the last two bytes.
        DataLink::LINUX_SLL => {
            let et = u16::from_be_bytes([*data.get(14)?, *data.get(15)?]);
            LaxSlicedPacket::from_ether_type(EtherType(et), data.get(16..)?)
        }
        // Linux cooked v2: 20-byte header, protocol first.
        DataLink::LINUX_SLL2 => {
            let et = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
            LaxSlicedPacket::from_ether_type(EtherType(et), data.get(20..)?)
        }
        // BSD loopback: a 4-byte address family (host byte order), then IP.
        DataLink::NULL | DataLink::LOOP => LaxSlicedPacket::from_ip(data.get(4..)?).ok()?,
        // Serial links and dial-up: PPP (RFC 1661/1662), PPPoE without its Ethernet
        // header, and Cisco HDLC (address, control, then an Ethernet type).
        DataLink::PPP | DataLink::PPP_HDLC => ppp(data)?,
        DataLink::PPP_ETHER => ppp(data.get(6..)?)?,
        DataLink::C_HDLC => chdlc(data)?,
        _ => return None,
    };
    if p.net.is_none()
        && let Some(inner) = p
            .ether_payload()
            .and_then(|e| pppoe(e.ether_type, e.payload).or_else(|| mpls(e.ether_type, e.payload)))
    {
        p = inner;
    }
    if depth < tunnel::MAX_TUNNELS
        && let Some((inner_link, inner)) = tunnel::tunnelled(&p)
    {
        // (What a tunnel carries besides IP, ARP say, is no flow.)
        return parse_in(inner_link, inner, depth + 1);
    }
    let (src, dst) = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        LaxNetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let bare = |l4| Packet {
        l4,
        src: (src, 0),
        dst: (dst, 0),
        syn: false,
        ack: false,
        acked: 0,
        seq: 0,
        payload: &[],
    };
    let transport = match p.transport {
        Some(t) => t,
        None => first_fragment(&p)?,
    };
    Some(match transport {
        TransportSlice::Tcp(t) => Packet {
            l4: L4::Tcp,
            src: (src, t.source_port()),
            dst: (dst, t.destination_port()),
            syn: t.syn(),
            ack: t.ack(),
            acked: t.acknowledgment_number(),
            seq: t.sequence_number(),
            payload: t.payload(),
        },
        TransportSlice::Udp(u) => Packet {
            src: (src, u.source_port()),
            dst: (dst, u.destination_port()),
            payload: u.payload(),
            ..bare(L4::Udp)
        },
        TransportSlice::Icmpv4(_) => bare(L4::Icmp),
        TransportSlice::Icmpv6(_) => bare(L4::Icmpv6),
        _ => return None,
    })
}

/// The UDP header of a datagram's first IP fragment: it names the flow, and the start
/// of the datagram is what detection reads (a DNS header and question), as if a snap
/// length had cut it. Later fragments carry no ports and are passed over; so is a TCP
/// segment's first fragment (its stream would seem to lose the rest).
fn first_fragment<'a>(p: &LaxSlicedPacket<'a>) -> Option<TransportSlice<'a>> {
    let (payload, first) = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (ip.payload(), ip.header().fragments_offset().value() == 0),
        LaxNetSlice::Ipv6(ip) => (
            ip.payload(),
            ipv6_fragment_offset(ip.header().next_header().0, ip.extensions().slice()) == Some(0),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    (payload.fragmented && first && payload.ip_number == IpNumber::UDP)
        .then(|| UdpSlice::from_slice_lax(payload.payload).ok())
        .flatten()
        .map(TransportSlice::Udp)
}

/// The offset of an IPv6 packet's Fragment header, walking its extension headers
/// (RFC 8200 4). By hand: etherparse's iterator over extension headers trusts their
/// lengths, which a lax parse of a damaged packet has not checked, and reads past them.
fn ipv6_fragment_offset(mut next: u8, mut ext: &[u8]) -> Option<u16> {
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => (usize::from(*ext.get(1)?) + 1) * 8,
            44 => return Some(u16::from_be_bytes([*ext.get(2)?, *ext.get(3)?]) >> 3),
            51 => (usize::from(*ext.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *ext.first()?;
        ext = ext.get(len..)?;
    }
    None
}
