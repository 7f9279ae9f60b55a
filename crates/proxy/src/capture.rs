//! Packet captures of proxied connections, for events.
//!
//! The proxy sees byte streams, not packets, so it records what each side sent (bounded:
//! the most recent bytes per direction) and, when an event needs evidence, writes them as
//! the TCP packets that carried them: a three-way handshake, one segment per write with
//! consistent sequence and acknowledgement numbers, and a closing reset or FIN. Wireshark
//! and tshark read the file as a normal capture of that connection. Synthesising beats
//! capturing here: the bytes are exactly what the proxy inspected, and no capture socket
//! per connection is needed.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

/// Who sent a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

#[derive(Clone, Debug)]
struct Segment {
    side: Side,
    time: SystemTime,
    /// Stream offset of the first byte, in the sender's direction.
    offset: u64,
    data: Vec<u8>,
}

/// The recent segments of one connection.
#[derive(Clone, Debug)]
pub struct Recorder {
    started: SystemTime,
    segments: VecDeque<Segment>,
    kept: usize,
    limit: usize,
    sent: [u64; 2],
}

const MSS: usize = 1400;

impl Recorder {
    /// Keep at most `limit` bytes (oldest segments are forgotten first).
    pub fn new(limit: usize) -> Recorder {
        Recorder {
            started: SystemTime::now(),
            segments: VecDeque::new(),
            kept: 0,
            limit,
            sent: [0, 0],
        }
    }

    pub fn record(&mut self, side: Side, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let i = side as usize;
        self.sent[i] += data.len() as u64;
        // A write larger than the whole budget keeps its tail.
        let data = &data[data.len().saturating_sub(self.limit)..];
        self.kept += data.len();
        self.segments.push_back(Segment {
            side,
            time: SystemTime::now(),
            offset: self.sent[i] - data.len() as u64,
            data: data.to_vec(),
        });
        while self.kept > self.limit {
            match self.segments.pop_front() {
                Some(s) => self.kept -= s.data.len(),
                None => break,
            }
        }
    }

    /// Write the capture: handshake, the kept segments, and a reset from `closer` (None: a
    /// connection still open).
    pub fn write_pcap(
        &self,
        path: &Path,
        client: SocketAddr,
        server: SocketAddr,
        closer: Option<Side>,
    ) -> io::Result<()> {
        let mut w = PcapWriter::new(File::create(path)?).map_err(io::Error::other)?;
        // Initial sequence numbers: arbitrary but fixed, so offsets map to sequence numbers.
        let isn = [0x1000_0000u32, 0x2000_0000u32];
        let seq = |side: Side, offset: u64| {
            isn[side as usize]
                .wrapping_add(1)
                .wrapping_add(offset as u32)
        };
        let t0 = self.started;
        let mut out = |time: SystemTime,
                       from: Side,
                       flags: Flags,
                       seqn: u32,
                       ack: u32,
                       data: &[u8]|
         -> io::Result<()> {
            let (src, dst) = ends(from, client, server);
            write_frame(&mut w, time, &tcp_frame(src, dst, flags, seqn, ack, data)?)
        };
        let first = self.segments.front();
        let (c0, s0) = (
            first.map_or(0, |s| if s.side == Side::Client { s.offset } else { 0 }),
            first.map_or(0, |s| if s.side == Side::Server { s.offset } else { 0 }),
        );
        // The handshake, placed where the kept bytes begin (older bytes were forgotten).
        out(
            t0,
            Side::Client,
            Flags::Syn,
            seq(Side::Client, c0).wrapping_sub(1),
            0,
            &[],
        )?;
        out(
            t0,
            Side::Server,
            Flags::SynAck,
            seq(Side::Server, s0).wrapping_sub(1),
            seq(Side::Client, c0),
            &[],
        )?;
        out(
            t0,
            Side::Client,
            Flags::Ack,
            seq(Side::Client, c0),
            seq(Side::Server, s0),
            &[],
        )?;
        let mut next = [c0, s0];
        for s in &self.segments {
            let i = s.side as usize;
            let other = match s.side {
                Side::Client => Side::Server,
                Side::Server => Side::Client,
            };
            for (k, chunk) in s.data.chunks(MSS).enumerate() {
                let off = s.offset + (k * MSS) as u64;
                out(
                    s.time,
                    s.side,
                    Flags::PshAck,
                    seq(s.side, off),
                    seq(other, next[1 - i]),
                    chunk,
                )?;
            }
            next[i] = s.offset + s.data.len() as u64;
        }
        if let Some(side) = closer {
            let i = side as usize;
            out(
                SystemTime::now(),
                side,
                Flags::Rst,
                seq(side, next[i]),
                0,
                &[],
            )?;
        }
        Ok(())
    }
}

/// A capture of datagrams between `client` and `server` (a refused DNS query and the
/// REFUSED answer): one UDP packet each, as they were sent.
pub fn write_datagrams(
    path: &Path,
    client: SocketAddr,
    server: SocketAddr,
    datagrams: &[(Side, SystemTime, &[u8])],
) -> io::Result<()> {
    let mut w = PcapWriter::new(File::create(path)?).map_err(io::Error::other)?;
    for (side, time, data) in datagrams {
        let (src, dst) = ends(*side, client, server);
        write_frame(&mut w, *time, &udp_frame(src, dst, data)?)?;
    }
    Ok(())
}

/// (source, destination) of what `from` sent.
fn ends(from: Side, client: SocketAddr, server: SocketAddr) -> (SocketAddr, SocketAddr) {
    match from {
        Side::Client => (client, server),
        Side::Server => (server, client),
    }
}

fn write_frame(w: &mut PcapWriter<File>, time: SystemTime, frame: &[u8]) -> io::Result<()> {
    let ts = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
        .map_err(io::Error::other)?;
    Ok(())
}

fn udp_frame(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let udp = match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => return Err(io::Error::other("mixed address families")),
    }
    .udp(src.port(), dst.port());
    let mut v = Vec::with_capacity(udp.size(data.len()));
    udp.write(&mut v, data).map_err(io::Error::other)?;
    Ok(v)
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    Rst,
}

/// An Ethernet frame carrying one TCP segment (MAC addresses are placeholders: the
/// connection never had an Ethernet hop inside the proxy).
fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    flags: Flags,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> io::Result<Vec<u8>> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
        (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
        _ => return Err(io::Error::other("mixed address families")),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, 65535);
    tcp = match flags {
        Flags::Syn => tcp.syn(),
        Flags::SynAck => tcp.syn().ack(ack),
        Flags::Ack => tcp.ack(ack),
        Flags::PshAck => tcp.psh().ack(ack),
        Flags::Rst => tcp.rst(),
    };
    let mut v = Vec::with_capacity(tcp.size(data.len()));
    tcp.write(&mut v, data).map_err(io::Error::other)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_are_written_as_udp_packets_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pcap");
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5353".parse().unwrap(),
            "10.0.0.2:53".parse().unwrap(),
        );
        let now = SystemTime::now();
        write_datagrams(
            &path,
            c,
            s,
            &[
                (Side::Client, now, b"query"),
                (Side::Server, now, b"answer!"),
            ],
        )
        .unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        let mut seen = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            let e = etherparse::SlicedPacket::from_ethernet(&p.data).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = e.transport else {
                panic!("not UDP")
            };
            seen.push((u.source_port(), u.destination_port(), u.payload().to_vec()));
        }
        assert_eq!(
            seen,
            vec![
                (5353, 53, b"query".to_vec()),
                (53, 5353, b"answer!".to_vec())
            ]
        );
    }

    #[test]
    fn segments_are_bounded_and_offsets_kept() {
        let mut r = Recorder::new(10);
        r.record(Side::Client, b"hello");
        r.record(Side::Server, b"world!");
        r.record(Side::Client, b"again");
        assert!(r.kept <= 10);
        let last = r.segments.back().unwrap();
        assert_eq!(last.offset, 5);
        assert_eq!(last.data, b"again");
        r.record(Side::Client, b"0123456789abcdef");
        assert_eq!(r.segments.back().unwrap().data, b"6789abcdef");
        assert_eq!(r.segments.back().unwrap().offset, 16);
    }
}
