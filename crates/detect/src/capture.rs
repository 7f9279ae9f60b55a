//! Offline detection over a capture (pcap or pcapng, either gzip'd): packets -> flows -> per-direction
//! byte streams (TCP reassembled in sequence order) or datagrams (UDP) -> [`Detector`].
//!
//! Packets are processed as they are read: each TCP direction delivers its in-order bytes
//! to the flow's detector at once, holds at most [`OUT_OF_ORDER_LIMIT`] bytes that arrived
//! ahead of a gap, and drops everything once the detector has decided. Memory is a small
//! record per flow plus bounded buffers for the flows still undecided.
//!
//! Captures lose packets. A gap that [`GAP_SEGMENTS`] later segments have not filled
//! (or that is still open at the end), or a direction none of whose bytes were seen
//! although the other side acknowledged some, is given up for lost: an undecided flow
//! is then read mid-connection from the bytes after the gap, keeping what the other
//! direction sent.
//!
//! The client of a TCP flow is the sender of the SYN (or the receiver of the SYN-ACK).
//! A flow whose handshake is not in the capture is detected in mid-connection mode
//! (either side may speak first, bytes may start inside a message); its client is the
//! side whose bytes were requests if detection says so, else the sender of the first
//! packet. Ports are never used, neither for the protocol nor for the direction (only to
//! find the tunnels overlay networks wrap pods' packets in: VXLAN's and Geneve's UDP
//! ports; see `tunnel`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use pcap_file::DataLink;
use pcap_file::pcap::PcapParser;
use serde::Serialize;

use crate::{Detail, Detection, Detector, Dir};
use packet::{Packet, parse};

mod conversation;
mod gzip;
mod modified;
mod packet;
mod pcapng;

pub use conversation::{Conversation, read_conversations};
mod tunnel;

/// Bytes the detector buffers per direction (detection needs far fewer).
pub const STREAM_LIMIT: usize = 16 * 1024;
/// Bytes of segments held per direction while waiting for a gap before them to fill.
pub const OUT_OF_ORDER_LIMIT: usize = 64 * 1024;
/// Datagrams of each direction of a UDP flow that detection looks at.
const DATAGRAMS: usize = 16;
/// A segment starting further than this past the expected sequence number is not part
/// of this stream (a reused port, garbage).
const WINDOW: u32 = 1 << 24;
/// Segments held after a gap before the bytes it lost are given up for lost (the
/// capture dropped them): captures reorder by a segment or two, not by this many.
const GAP_SEGMENTS: usize = 4;

/// One flow and what it speaks, as `bulkhead dpi detect` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowResult {
    /// `TCP`, `UDP`, `ICMP` or `ICMPv6`.
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

type Endpoint = (IpAddr, u16);

/// A flow by protocol and its two ends (lower end first).
type FlowKey = (L4, Endpoint, Endpoint);

/// One TCP direction, reassembled in sequence order.
#[derive(Debug, Default)]
struct Reassembly {
    /// The next sequence number expected: from the SYN, else the first segment seen.
    next: Option<u32>,
    /// Segments that arrived ahead of a gap.
    pending: Vec<(u32, Vec<u8>)>,
    pending_bytes: usize,
    /// Bytes delivered in order so far.
    delivered: usize,
}

impl Reassembly {
    fn syn(&mut self, seq: u32) {
        self.next.get_or_insert(seq.wrapping_add(1));
    }

    /// Take a segment; append to `out` the bytes that are now in order.
    fn segment(&mut self, seq: u32, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let next = *self.next.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next);
        if ahead == 0 || ahead > u32::MAX / 2 {
            self.deliver(seq, data, out);
            self.drain(out);
        } else if ahead < WINDOW && self.pending_bytes + data.len() <= OUT_OF_ORDER_LIMIT {
            self.pending_bytes += data.len();
            self.pending.push((seq, data.to_vec()));
        }
    }

    /// Deliver what of a segment starting at or before `next` is new (retransmitted and
    /// overlapping bytes are dropped: the first copy wins).
    fn deliver(&mut self, seq: u32, data: &[u8], out: &mut Vec<u8>) {
        let Some(next) = self.next else { return };
        let behind = next.wrapping_sub(seq) as usize;
        if behind < data.len() {
            out.extend_from_slice(&data[behind..]);
            self.delivered += data.len() - behind;
            self.next = Some(next.wrapping_add((data.len() - behind) as u32));
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        while let Some(next) = self.next {
            let Some(i) = self
                .pending
                .iter()
                .position(|(s, _)| next.wrapping_sub(*s) <= u32::MAX / 2)
            else {
                break;
            };
            let (seq, data) = self.pending.swap_remove(i);
            self.pending_bytes -= data.len();
            self.deliver(seq, &data, out);
        }
    }

    /// Give up on the bytes a gap lost: go on from the earliest segment held after it.
    /// False if nothing is held.
    fn skip_gap(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(next) = self.next else {
            return false;
        };
        let Some(first) =
            (self.pending.iter().map(|(s, _)| *s)).min_by_key(|s| s.wrapping_sub(next))
        else {
            return false;
        };
        self.next = Some(first);
        self.drain(out);
        true
    }

    fn clear(&mut self) {
        self.pending = Vec::new();
        self.pending_bytes = 0;
    }
}

#[derive(Debug)]
struct Flow {
    l4: L4,
    /// The side fed to the detector as the client (fixed when the flow is created).
    first: Endpoint,
    other: Endpoint,
    /// The client was seen opening the connection (SYN or SYN-ACK).
    handshake: bool,
    /// A SYN seen after the flow was created said the client is `other`.
    reversed: bool,
    detector: Option<Detector>,
    streams: [Reassembly; 2],
    datagrams: [usize; 2],
    /// The highest acknowledgment each side sent: what it received of the other's.
    acked: [Option<u32>; 2],
    /// A side whose lost bytes ([`Flow::lost`]) were given up already.
    given_up: [bool; 2],
    /// Its bytes in order, when conversations are kept ([`read_conversations`]).
    kept: conversation::Kept,
}

/// Read a capture and detect every flow's protocol, in first-seen order.
/// A file whose packets stop part way (see [`Capture::damage`]) gives the flows of the
/// packets before that.
pub fn detect_capture(bytes: &[u8]) -> Result<Vec<FlowResult>, String> {
    read_capture(bytes).map(|c| c.flows)
}

/// What [`detect_capture_cut`] leaves out of every TCP connection of a capture.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cut {
    /// The handshake (SYN, SYN-ACK): as if the capture had begun after it.
    pub handshake: bool,
    /// The first data segments, either direction: begun later still, or, with the
    /// handshake kept, lost (a capture that dropped packets).
    pub segments: usize,
    /// Every packet (all connections) cut to this many bytes, link header included, as
    /// `tcpdump -s` does.
    pub snap: Option<usize>,
}

/// [`detect_capture`] with part of every TCP connection left out: how detection fares
/// on captures that start mid-connection, lost packets or kept only the first bytes of
/// each (`tests/corpus.rs` scores it).
pub fn detect_capture_cut(bytes: &[u8], cut: Cut) -> Result<Vec<FlowResult>, String> {
    read(
        bytes,
        Flows {
            cut: Some(cut),
            ..Flows::default()
        },
    )
    .map(|c| c.flows)
}

/// A capture read through, as far as it could be.
#[derive(Debug)]
pub struct Capture {
    pub flows: Vec<FlowResult>,
    /// Why reading stopped before the end of the file, if it did: a capture cut short in
    /// the middle of a packet (a `tcpdump` stopped hard, a copy still being written), or
    /// a damaged record. The flows are those of the packets before it, as Wireshark
    /// shows them.
    pub damage: Option<String>,
}

/// [`detect_capture`], also saying whether the file was read to its end.
pub fn read_capture(bytes: &[u8]) -> Result<Capture, String> {
    read(bytes, Flows::default())
}

fn read(bytes: &[u8], mut flows: Flows) -> Result<Capture, String> {
    let damage = read_into(bytes, &mut flows)?;
    Ok(Capture {
        flows: flows.finish(),
        damage,
    })
}

/// Feed every packet of a capture (gzip'd or not) to `flows`; why reading stopped early,
/// if it did.
fn read_into(bytes: &[u8], flows: &mut Flows) -> Result<Option<String>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let (inner, gz_damage) = gzip::gunzip(bytes);
        let damage = read_uncompressed(&inner, flows)?;
        // The decompressor's reason comes first: it is why the capture was cut.
        return Ok(match (gz_damage, damage) {
            (Some(g), Some(d)) => Some(format!("{g}; {d}")),
            (g, d) => g.or(d),
        });
    }
    read_uncompressed(bytes, flows)
}

fn read_uncompressed(bytes: &[u8], flows: &mut Flows) -> Result<Option<String>, String> {
    let mut packets = 0usize;
    let mut damage = None;
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut blocks = pcapng::Blocks::new(bytes).ok_or("not a pcapng file")?;
        // Link types by interface, in the order their description blocks appear.
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = blocks.next() {
            match block {
                Ok(pcapng::Item::Section) => links.clear(),
                Ok(pcapng::Item::Interface(link)) => links.push(link),
                Ok(pcapng::Item::Packet(interface, data)) => {
                    packets += 1;
                    if let Some(&link) = links.get(interface as usize) {
                        flows.packet(link, data);
                    }
                }
                Ok(pcapng::Item::SimplePacket(data)) => {
                    packets += 1;
                    if let Some(&link) = links.first() {
                        flows.packet(link, data);
                    }
                }
                Ok(pcapng::Item::Other) => {}
                Err(pcapng::Stop::Cut) => {
                    damage = Some(format!(
                        "cut short in the middle of a block after {packets} packets"
                    ));
                    break;
                }
                Err(pcapng::Stop::Damaged(what)) => {
                    damage = Some(format!("damaged after {packets} packets: {what}"));
                    break;
                }
            }
        }
    } else if let Some((link, records)) = modified::open(bytes) {
        for record in records {
            match record {
                Ok(data) => {
                    packets += 1;
                    flows.packet(link, data);
                }
                Err(stop) => {
                    damage = Some(match stop {
                        modified::Stop::Cut => {
                            format!("cut short in the middle of a packet after {packets} packets")
                        }
                        modified::Stop::Damaged => {
                            format!("damaged packet after {packets} packets: a record over 256 KiB")
                        }
                    });
                    break;
                }
            }
        }
    } else {
        let (mut rest, parser) =
            PcapParser::new(bytes).map_err(|e| format!("not a pcap or pcapng file: {e}"))?;
        let link = parser.header().datalink;
        // Raw records: a packet longer than the length it claims on the wire (some
        // capture tools write that; Wireshark reads it) is read as captured.
        while !rest.is_empty() {
            match parser.next_raw_packet(rest) {
                Ok((r, p)) => {
                    rest = r;
                    packets += 1;
                    flows.packet(link, &p.data);
                }
                Err(pcap_file::PcapError::IncompleteBuffer) => {
                    damage = Some(format!(
                        "cut short in the middle of a packet after {packets} packets"
                    ));
                    break;
                }
                Err(e) => {
                    damage = Some(format!("damaged packet after {packets} packets: {e}"));
                    break;
                }
            }
        }
    }
    Ok(damage)
}

#[derive(Default)]
struct Flows {
    flows: Vec<Flow>,
    index: HashMap<FlowKey, usize>,
    /// Scratch space for in-order bytes.
    scratch: Vec<u8>,
    /// [`detect_capture_cut`]: what is left out of each TCP connection (data segments
    /// counted in `cut_seen`).
    cut: Option<Cut>,
    cut_seen: HashMap<FlowKey, usize>,
    /// Bytes of each TCP flow kept for its conversation (0: detection only).
    keep: usize,
}

impl Flows {
    fn packet(&mut self, link: DataLink, data: &[u8]) {
        let data = match self.cut.and_then(|c| c.snap) {
            Some(n) => &data[..data.len().min(n)],
            None => data,
        };
        if let Some(p) = parse(link, data) {
            self.add(p);
        }
    }

    fn add(&mut self, p: Packet) {
        let key = if p.src <= p.dst {
            (p.l4, p.src, p.dst)
        } else {
            (p.l4, p.dst, p.src)
        };
        if let Some(cut) = self.cut
            && p.l4 == L4::Tcp
        {
            if p.syn && cut.handshake {
                return;
            }
            let seen = self.cut_seen.entry(key).or_default();
            if !p.payload.is_empty() && *seen < cut.segments {
                *seen += 1;
                return;
            }
        }
        let flows = &mut self.flows;
        let i = *self.index.entry(key).or_insert_with(|| {
            flows.push(new_flow(&p));
            flows.len() - 1
        });
        let f = &mut self.flows[i];
        if p.l4 == L4::Tcp && p.syn && !f.handshake {
            // A late SYN (capture order differs from wire order) still names the client.
            let client = if p.ack { p.dst } else { p.src };
            f.reversed = client != f.first;
        }
        if p.l4 == L4::Tcp && p.ack {
            let side = usize::from(p.src != f.first);
            let a = &mut f.acked[side];
            if a.is_none_or(|a| p.acked.wrapping_sub(a) < WINDOW) {
                *a = Some(p.acked);
            }
            // Everything the other side sent so far was lost: read on mid-connection
            // before this side's bytes fill the buffer of a detector that waits for it.
            if f.lost(1 - side) {
                f.kept.lose();
                f.past_gap(1 - side, &mut self.scratch);
            }
        }
        // A decided flow is fed on while its answer may still be refined (an h2c upgrade
        // request waits for the server's 101), or while its conversation is kept.
        let detecting = (f.detector.as_ref()).is_some_and(|d| d.answer().is_none() || d.refining());
        let keeping = self.keep > 0 && p.l4 == L4::Tcp && f.kept.open();
        if !detecting && !keeping {
            return;
        }
        let dir = if p.src == f.first {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let side = usize::from(dir == Dir::ToClient);
        match (p.l4, f.detector.as_mut()) {
            (L4::Udp, Some(detector)) => {
                if f.datagrams[side] < DATAGRAMS && !p.payload.is_empty() {
                    f.datagrams[side] += 1;
                    detector.feed(dir, p.payload);
                }
            }
            (_, detector) => {
                let stream = &mut f.streams[side];
                let mut seq = p.seq;
                if p.syn {
                    stream.syn(seq);
                    seq = seq.wrapping_add(1);
                }
                self.scratch.clear();
                stream.segment(seq, p.payload, &mut self.scratch);
                if keeping {
                    f.kept.push(dir == Dir::ToServer, &self.scratch, self.keep);
                }
                let decided = match detector.filter(|_| detecting) {
                    Some(d) if !self.scratch.is_empty() => {
                        d.feed(dir, &self.scratch) != Detection::NeedMore
                    }
                    _ => false,
                };
                if decided && !keeping {
                    f.streams.iter_mut().for_each(Reassembly::clear);
                } else if f.streams[side].pending.len() >= GAP_SEGMENTS {
                    // Bytes lost: a conversation kept is cut here.
                    f.kept.lose();
                    if detecting {
                        f.past_gap(side, &mut self.scratch);
                    } else {
                        f.streams.iter_mut().for_each(Reassembly::clear);
                    }
                }
            }
        }
    }

    fn finish(self) -> Vec<FlowResult> {
        self.finished().map(judge).collect()
    }

    /// The flows once the capture ended: gaps that never filled, and a side whose
    /// every byte the capture lost (the other acknowledged them): what is left is read
    /// mid-connection.
    fn finished(mut self) -> impl Iterator<Item = Flow> {
        for f in &mut self.flows {
            for side in 0..2 {
                if f.l4 == L4::Tcp && (!f.streams[side].pending.is_empty() || f.lost(side)) {
                    if !f.streams[side].pending.is_empty() {
                        f.kept.lose();
                    }
                    f.past_gap(side, &mut self.scratch);
                }
            }
        }
        self.flows.into_iter()
    }
}

impl Flow {
    /// Were all the bytes of `side`'s stream lost: none seen, while the other side
    /// acknowledged some (a capture that dropped a lone request)?
    fn lost(&self, side: usize) -> bool {
        if self.streams[side].delivered > 0 || self.given_up[side] {
            return false;
        }
        match (self.streams[side].next, self.acked[1 - side]) {
            (Some(next), Some(acked)) => (1..WINDOW).contains(&acked.wrapping_sub(next)),
            _ => false,
        }
    }

    /// The bytes a gap in `side`'s stream lost are not coming: while undecided, the
    /// bytes before the gap may decide ([`Detector::decide_before_gap`]); failing that,
    /// detect again mid-connection from the segments held after the gap (keeping what
    /// the other side sent), as if the capture had started there.
    fn past_gap(&mut self, side: usize, scratch: &mut Vec<u8>) {
        self.given_up[side] = self.streams[side].delivered == 0;
        let dir = if side == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        if self
            .detector
            .as_mut()
            .is_some_and(Detector::decide_before_gap)
        {
            self.streams.iter_mut().for_each(Reassembly::clear);
            return;
        }
        let Some(mut d) = self.detector.as_ref().and_then(|d| d.after_gap(dir)) else {
            return;
        };
        scratch.clear();
        self.streams[side].skip_gap(scratch);
        if !scratch.is_empty() && d.feed(dir, scratch) != Detection::NeedMore {
            self.streams.iter_mut().for_each(Reassembly::clear);
        }
        self.detector = Some(d);
    }
}

fn new_flow(p: &Packet) -> Flow {
    let opening = p.l4 == L4::Tcp && p.syn;
    // The SYN-ACK's sender is the server.
    let (first, other) = if opening && p.ack {
        (p.dst, p.src)
    } else {
        (p.src, p.dst)
    };
    let detector = match p.l4 {
        L4::Tcp if opening => Some(Detector::new(STREAM_LIMIT)),
        L4::Tcp => Some(Detector::midstream(STREAM_LIMIT)),
        L4::Udp => Some(Detector::datagrams()),
        L4::Icmp | L4::Icmpv6 => None,
    };
    Flow {
        l4: p.l4,
        first,
        other,
        handshake: opening,
        reversed: false,
        detector,
        streams: Default::default(),
        datagrams: [0, 0],
        acked: [None, None],
        given_up: [false, false],
        kept: conversation::Kept::default(),
    }
}

fn judge(f: Flow) -> FlowResult {
    judged(f).0
}

/// A flow's result, whether its client is the side not fed to the detector as the
/// client (`first`), and its kept conversation.
fn judged(mut f: Flow) -> (FlowResult, bool, conversation::Kept) {
    let (l4, detection) = match (f.l4, f.detector.as_mut()) {
        (L4::Icmp, _) => ("ICMP", None),
        (L4::Icmpv6, _) => ("ICMPv6", None),
        (L4::Tcp, Some(d)) => ("TCP", Some(d.finish())),
        (_, d) => ("UDP", d.map(Detector::finish)),
    };
    // Without a handshake, the bytes may say which side made requests.
    let requester = f.detector.as_ref().and_then(Detector::requester);
    let swap = if f.handshake {
        false
    } else if f.reversed {
        true
    } else {
        requester == Some(Dir::ToClient)
    };
    let (client, server) = if swap {
        (f.other, f.first)
    } else {
        (f.first, f.other)
    };
    let addr = |(ip, port): Endpoint| match f.l4 {
        L4::Icmp | L4::Icmpv6 => ip.to_string(),
        _ => SocketAddr::new(ip, port).to_string(),
    };
    let (protocol, detail) = match detection {
        None => ("icmp".to_string(), Detail::new()),
        Some(Detection::Known { app, detail }) => (app.to_string(), detail),
        Some(_) => ("unknown".to_string(), Detail::new()),
    };
    let result = FlowResult {
        l4: l4.to_string(),
        src: addr(client),
        dst: addr(server),
        protocol,
        detail,
    };
    (result, swap, std::mem::take(&mut f.kept))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// A classic pcap file (Ethernet) of these frames.
    pub(crate) fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        pcap_of(1, frames)
    }

    /// A classic pcap file of these frames, of this link type.
    fn pcap_of(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![];
        f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&link.to_le_bytes());
        for (i, fr) in frames.iter().enumerate() {
            f.extend_from_slice(&(i as u32).to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
            f.extend_from_slice(&(fr.len() as u32).to_le_bytes());
            f.extend_from_slice(fr);
        }
        f
    }

    /// A client's TCP segment (10.0.0.1:32323 -> 10.0.0.2:80), or its SYN without data.
    fn client_segment(seq: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(32323, 80, seq, 8192);
        let b = if data.is_empty() { b.syn() } else { b.ack(1) };
        b.write(&mut out, data).unwrap();
        out
    }

    /// Serial and carrier links: PPP with and without HDLC-like framing and with a
    /// compressed protocol field, PPPoE without Ethernet, Cisco HDLC (also where the file
    /// says PPP, as nDPI's `BGP_Cisco_hdlc_slarp.pcap` does), MPLS labels under Ethernet.
    #[test]
    fn ppp_hdlc_and_mpls_links() {
        let mut ip = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(32323, 80, 1, 8192)
            .ack(1)
            .write(&mut ip, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let on = |head: &[u8]| [head, &ip].concat();
        let mpls = [
            &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x47][..],
            &[0, 1, 0x20, 64], // label 18, not the bottom
            &[0, 1, 0x31, 64], // label 19, bottom of stack
        ]
        .concat();
        for (link, frame) in [
            (9, on(&[0xff, 0x03, 0x00, 0x21])),
            (9, on(&[0x21])),
            (9, on(&[0x0f, 0x00, 0x08, 0x00])),
            (50, on(&[0xff, 0x03, 0x00, 0x21])),
            (51, on(&[0x11, 0x00, 0x12, 0x34, 0x00, 0x40, 0x00, 0x21])),
            (104, on(&[0x8f, 0x00, 0x08, 0x00])),
            (1, on(&mpls)),
        ] {
            let flows = detect_capture(&pcap_of(link, &[frame])).unwrap();
            assert_eq!(flows.len(), 1, "link type {link}");
            assert_eq!(flows[0].protocol, "http", "link type {link}");
        }
    }

    /// A DNS response too large for one packet, fragmented by IP: its first fragment
    /// names the flow and holds the question; the second carries no ports.
    #[test]
    fn a_fragmented_datagram_is_read_from_its_first_fragment() {
        let mut answer = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00".to_vec();
        answer.extend_from_slice(b"\x07example\x03org\x00\x00\x10\x00\x01");
        answer.extend_from_slice(b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x07\xd1\xff");
        answer.resize(answer.len() + 2000, b'x');
        let mut whole = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 53], [10, 0, 0, 1], 64)
            .udp(53, 40000)
            .write(&mut whole, &answer)
            .unwrap();
        // Cut after 1,480 bytes of IP payload: more fragments, offset 0; then the rest at
        // offset 185 (x 8 bytes), headers fixed by hand.
        let (eth, ip, body) = (&whole[..14], &whole[14..34], &whole[34..]);
        let frag = |part: &[u8], flags_offset: u16| {
            let mut h = ip.to_vec();
            h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
            h[6..8].copy_from_slice(&flags_offset.to_be_bytes());
            [eth, &h, part].concat()
        };
        let frames = [frag(&body[..1480], 0x2000), frag(&body[1480..], 185)];
        let flows = detect_capture(&pcap(&frames)).unwrap();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].protocol, "dns");
        assert_eq!(flows[0].detail["query"], "example.org");
        // IPv6: a Fragment header (next header UDP, offset 0, more fragments) after a
        // Destination Options header.
        let first = &body[..1232];
        let exts = [&[44, 0, 1, 4, 0, 0, 0, 0][..], &[17, 0, 0, 1, 0, 0, 0, 9]].concat();
        let mut v6 = vec![0x60, 0, 0, 0];
        v6.extend_from_slice(&((exts.len() + first.len()) as u16).to_be_bytes());
        v6.extend_from_slice(&[60, 64]);
        v6.extend_from_slice(
            &"2001:db8::53"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        let frame = [
            &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd][..],
            &v6,
            &exts,
            first,
        ]
        .concat();
        let flows = detect_capture(&pcap(&[frame])).unwrap();
        assert_eq!(flows.len(), 1, "{flows:?}");
        // A response: its receiver is the client.
        assert_eq!(
            (flows[0].protocol.as_str(), flows[0].src.as_str()),
            ("dns", "[2001:db8::1]:40000")
        );
    }

    proptest::proptest! {
        /// The link layers and tunnels read by hand never panic on damaged frames: each
        /// valid frame of the tests above (PPP, HDLC, PPPoE, MPLS, GTP-U, IPv6 with a
        /// Fragment header), with bytes overwritten and cut.
        #[test]
        fn damaged_link_layers_never_panic(
            k in 0usize..16,
            writes in proptest::collection::vec((0usize..128, proptest::num::u8::ANY), 0..6),
            cut in proptest::option::of(0usize..160),
        ) {
            let mut ip = Vec::new();
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(40000, 2152)
                .write(&mut ip, &[0x36, 0xff, 0, 40, 0, 0, 0, 1, 0, 7, 0, 0x85, 1, 0x10, 9, 0,
                    0x60, 0, 0, 0, 0, 16, 44, 64])
                .unwrap();
            let heads: [(u32, &[u8]); 8] = [
                (9, &[0xff, 0x03, 0x00, 0x21]),
                (9, &[0x21]),
                (9, &[0x0f, 0x00, 0x08, 0x00]),
                (9, &[0x57]),
                (51, &[0x11, 0x00, 0x12, 0x34, 0x00, 0x40, 0x00, 0x21]),
                (104, &[0x8f, 0x00, 0x86, 0xdd]),
                (1, &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x47, 0, 1, 0x20, 64, 0, 1, 0x31, 64]),
                (101, &[]),
            ];
            let v6_frag = [
                &[0x60, 0, 0, 0, 0, 24, 60, 64][..], &[0; 32],
                &[44, 0, 1, 4, 0, 0, 0, 0], &[17, 0, 0, 1, 0, 0, 0, 9], &[0, 53, 0x9c, 0x40, 0, 8, 0, 0],
            ].concat();
            let (link, head) = heads[k % heads.len()];
            let body: &[u8] = if k >= heads.len() { &v6_frag } else { &ip };
            let mut frame = [head, body].concat();
            for (at, b) in writes {
                if let Some(x) = frame.get_mut(at) {
                    *x = b;
                }
            }
            if let Some(c) = cut {
                frame.truncate(c);
            }
            let _ = detect_capture(&pcap_of(link, &[frame.clone(), frame]));
        }
    }

    /// A gap that cuts a request's headers (Wireshark's `tcp-badsegments.pcap` does
    /// this): the request line before it says HTTP; what follows the gap is the middle
    /// of a header block, which says nothing.
    #[test]
    fn a_gap_after_the_request_line_keeps_http() {
        let frames = [
            client_segment(0, b""),
            client_segment(1, b"GET /a HTTP/1.1\r\n"),
            client_segment(18, b"Host: localhost\r\n"),
            client_segment(60, b"X-After-The-Gap: 1\r\n\r\n"),
        ];
        let flows = detect_capture(&pcap(&frames)).unwrap();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].protocol, "http", "{:?}", flows[0]);
        assert_eq!(flows[0].detail["path"], "/a");
    }

    fn stream(segments: &[(u32, &[u8])], isn: Option<u32>) -> Vec<u8> {
        let mut r = Reassembly::default();
        if let Some(s) = isn {
            r.syn(s);
        }
        let mut out = Vec::new();
        for (seq, d) in segments {
            r.segment(*seq, d, &mut out);
        }
        out
    }

    #[test]
    fn in_order_out_of_order_and_retransmitted() {
        let segs: &[(u32, &[u8])] = &[
            (101, b"hel"),
            (107, b"world"),
            (104, b"lo "),
            (101, b"hel"),
            (104, b"lo!"),
        ];
        assert_eq!(stream(segs, Some(100)), b"hello world");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let segs: &[(u32, &[u8])] = &[(u32::MAX - 1, b"ab"), (0, b"cd")];
        assert_eq!(stream(segs, None), b"abcd");
    }

    #[test]
    fn a_gap_stops_the_stream() {
        let segs: &[(u32, &[u8])] = &[(1, b"ab"), (10, b"zz")];
        assert_eq!(stream(segs, Some(0)), b"ab");
    }

    #[test]
    fn skipping_a_gap_goes_on_from_the_earliest_held_segment() {
        let mut r = Reassembly::default();
        r.syn(0);
        let mut out = Vec::new();
        for (seq, d) in [(1, &b"ab"[..]), (12, b"cd"), (10, b"xy"), (20, b"zz")] {
            r.segment(seq, d, &mut out);
        }
        assert_eq!(out, b"ab");
        assert!(r.skip_gap(&mut out));
        // 10..14 in order, then the next gap (14..20) stops it again.
        assert_eq!(out, b"abxycd");
        assert_eq!(r.delivered, 6);
        assert!(r.skip_gap(&mut out));
        assert_eq!(out, b"abxycdzz");
        assert!(!r.skip_gap(&mut out));
    }

    #[test]
    fn out_of_order_bytes_are_bounded() {
        let big = vec![0u8; OUT_OF_ORDER_LIMIT];
        let mut r = Reassembly::default();
        r.syn(0);
        let mut out = Vec::new();
        r.segment(100, &big, &mut out);
        r.segment(200_000, b"x", &mut out);
        assert_eq!(r.pending_bytes, OUT_OF_ORDER_LIMIT);
    }

    #[test]
    fn not_a_capture() {
        assert!(detect_capture(b"hello").is_err());
        assert!(detect_capture(&[]).is_err());
    }
}
