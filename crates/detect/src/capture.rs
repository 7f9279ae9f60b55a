//! Offline detection over a capture (pcap or pcapng): packets -> flows -> per-direction
//! byte streams (TCP reassembled in sequence order) or datagrams (UDP) -> [`Detector`].
//!
//! The client of a TCP flow is the sender of the SYN without ACK; without one (the
//! capture started mid-connection), the sender of the first packet. Memory is bounded:
//! each direction keeps at most [`STREAM_LIMIT`] bytes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use serde::Serialize;

use crate::{Detail, Detection, Detector, Dir};

/// Bytes kept per direction of a flow (detection needs far fewer).
pub const STREAM_LIMIT: usize = 16 * 1024;
/// Datagrams of a UDP flow that detection looks at.
const DATAGRAMS: usize = 16;

/// One flow and what it speaks, as `bulkhead dpi detect` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowResult {
    pub l4: String,
    /// `ip:port` (TCP, UDP) or `ip` (ICMP) of the side that opened the flow.
    pub src: String,
    pub dst: String,
    pub protocol: String,
    pub detail: Detail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

/// A flow by protocol and its two ends (lower end first).
type FlowKey = (L4, (IpAddr, u16), (IpAddr, u16));

#[derive(Debug)]
struct Flow {
    l4: L4,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    /// The client was decided by a SYN (it cannot change later).
    by_syn: bool,
    /// Per direction (0: from the client): (sequence number, payload) of TCP segments, or
    /// datagrams.
    segments: [Vec<(u32, Vec<u8>)>; 2],
    kept: [usize; 2],
    /// Initial sequence number + 1 of each direction, when its SYN was seen.
    isn: [Option<u32>; 2],
}

/// Read a capture and detect every flow's protocol, in first-seen order.
pub fn detect_capture(bytes: &[u8]) -> Result<Vec<FlowResult>, String> {
    let mut flows: Vec<Flow> = Vec::new();
    let mut index: HashMap<FlowKey, usize> = HashMap::new();
    let mut add = |link: DataLink, data: &[u8]| {
        if let Some(p) = parse(link, data) {
            packet(&mut flows, &mut index, p);
        }
    };
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = PcapNgReader::new(bytes).map_err(|e| format!("not a pcapng file: {e}"))?;
        // Link types by interface, in the order their description blocks appear.
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = r.next_block() {
            let block = block.map_err(|e| format!("corrupt pcapng block: {e}"))?;
            match block {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(p) => {
                    let link = links
                        .get(p.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    add(link, &p.data);
                }
                Block::SimplePacket(p) => {
                    add(
                        links.first().copied().unwrap_or(DataLink::ETHERNET),
                        &p.data,
                    );
                }
                _ => {}
            }
        }
    } else {
        let mut r =
            PcapReader::new(bytes).map_err(|e| format!("not a pcap or pcapng file: {e}"))?;
        let link = r.header().datalink;
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| format!("corrupt pcap packet: {e}"))?;
            add(link, &p.data);
        }
    }
    Ok(flows.iter().map(judge).collect())
}

struct Packet<'a> {
    l4: L4,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    syn: bool,
    ack: bool,
    seq: u32,
    payload: &'a [u8],
}

fn parse(link: DataLink, data: &[u8]) -> Option<Packet<'_>> {
    let p = match link {
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
        // BSD loopback: a 4-byte address family, then IP.
        DataLink::NULL | DataLink::LOOP => LaxSlicedPacket::from_ip(data.get(4..)?).ok()?,
        _ => return None,
    };
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
    let none = |l4| Packet {
        l4,
        src: (src, 0),
        dst: (dst, 0),
        syn: false,
        ack: false,
        seq: 0,
        payload: &[],
    };
    Some(match p.transport? {
        TransportSlice::Tcp(t) => Packet {
            l4: L4::Tcp,
            src: (src, t.source_port()),
            dst: (dst, t.destination_port()),
            syn: t.syn(),
            ack: t.ack(),
            seq: t.sequence_number(),
            payload: t.payload(),
        },
        TransportSlice::Udp(u) => Packet {
            src: (src, u.source_port()),
            dst: (dst, u.destination_port()),
            payload: u.payload(),
            ..none(L4::Udp)
        },
        TransportSlice::Icmpv4(_) => none(L4::Icmp),
        TransportSlice::Icmpv6(_) => none(L4::Icmpv6),
        _ => return None,
    })
}

fn packet(flows: &mut Vec<Flow>, index: &mut HashMap<FlowKey, usize>, p: Packet) {
    let key = if p.src <= p.dst {
        (p.l4, p.src, p.dst)
    } else {
        (p.l4, p.dst, p.src)
    };
    let i = *index.entry(key).or_insert_with(|| {
        flows.push(Flow {
            l4: p.l4,
            client: p.src,
            server: p.dst,
            by_syn: false,
            segments: [Vec::new(), Vec::new()],
            kept: [0, 0],
            isn: [None, None],
        });
        flows.len() - 1
    });
    let f = &mut flows[i];
    if p.l4 == L4::Tcp && p.syn && !p.ack && !f.by_syn {
        // The SYN names the client, even if other packets came first.
        if f.client != p.src {
            std::mem::swap(&mut f.client, &mut f.server);
            f.segments.swap(0, 1);
            f.kept.swap(0, 1);
            f.isn.swap(0, 1);
        }
        f.by_syn = true;
    }
    let dir = usize::from(p.src != f.client);
    if p.syn {
        f.isn[dir] = Some(p.seq.wrapping_add(1));
    }
    let room = if p.l4 == L4::Udp {
        if f.segments[dir].len() >= DATAGRAMS {
            0
        } else {
            p.payload.len()
        }
    } else {
        STREAM_LIMIT
            .saturating_sub(f.kept[dir])
            .min(p.payload.len())
    };
    if room > 0 {
        f.kept[dir] += room;
        f.segments[dir].push((p.seq, p.payload[..room].to_vec()));
    }
}

/// A direction's bytes in sequence order, duplicates dropped, stopping at a gap.
fn stream(segments: &[(u32, Vec<u8>)], isn: Option<u32>) -> Vec<u8> {
    let Some(start) = isn.or_else(|| {
        segments
            .iter()
            .map(|s| s.0)
            .min_by_key(|&s| s.wrapping_sub(segments[0].0) as i32)
    }) else {
        return Vec::new();
    };
    let mut sorted: Vec<(u32, &[u8])> = segments
        .iter()
        .map(|(seq, d)| (seq.wrapping_sub(start), d.as_slice()))
        .filter(|(off, _)| (*off as i32) >= 0)
        .collect();
    sorted.sort_by_key(|s| s.0);
    let mut out: Vec<u8> = Vec::new();
    for (off, data) in sorted {
        let off = off as usize;
        if off > out.len() {
            break;
        }
        let skip = out.len() - off;
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
        }
    }
    out
}

fn judge(f: &Flow) -> FlowResult {
    let addr = |(ip, port): (IpAddr, u16)| match f.l4 {
        L4::Icmp | L4::Icmpv6 => ip.to_string(),
        _ => SocketAddr::new(ip, port).to_string(),
    };
    let (l4, detection) = match f.l4 {
        L4::Icmp => ("ICMP", Some("icmp")),
        L4::Icmpv6 => ("ICMPv6", Some("icmp")),
        L4::Tcp => ("TCP", None),
        L4::Udp => ("UDP", None),
    };
    let d = match (f.l4, detection) {
        (_, Some(_)) => Detection::Unknown,
        (L4::Udp, _) => {
            let mut d = Detector::datagrams(STREAM_LIMIT);
            for (dir, segs) in [
                (Dir::ToServer, &f.segments[0]),
                (Dir::ToClient, &f.segments[1]),
            ] {
                for (_, dg) in segs {
                    d.feed(dir, dg);
                }
            }
            d.finish()
        }
        _ => crate::detect(
            &stream(&f.segments[0], f.isn[0]),
            &stream(&f.segments[1], f.isn[1]),
        ),
    };
    let (protocol, detail) = match (detection, d) {
        (Some(name), _) => (name.to_string(), Detail::new()),
        (None, Detection::Known { app, detail }) => (app.to_string(), detail),
        (None, _) => ("unknown".to_string(), Detail::new()),
    };
    FlowResult {
        l4: l4.to_string(),
        src: addr(f.client),
        dst: addr(f.server),
        protocol,
        detail,
    }
}
