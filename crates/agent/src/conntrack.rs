//! Connection tracking through ctnetlink (netlink-packet-netfilter on a netlink-sys
//! socket, in the node namespace): list the live connections, delete those a change
//! forbids, and hear about connections that end (with their packet and byte counters).
//!
//! Why ctnetlink rather than the `conntrack` tool: the agent already speaks
//! NETLINK_NETFILTER for NFLOG; a dump is one request, and deleting N entries is N
//! small messages on one socket instead of N processes; and the ICMP and counter
//! attributes come as data, not as text to parse.
//!
//! Why deleting entries cuts connections: established traffic is accepted by the first
//! rule of the forward chain only while conntrack knows the connection. Once the entry
//! is gone, the next packet is a new connection to the kernel, goes through the
//! identity chains, and a forbidden one is rejected (TCP reset, ICMP unreachable).

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// Multicast group of conntrack DESTROY events.
const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;

/// One tracked connection, by its original direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP / ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
    /// Packets and bytes, both directions (with `nf_conntrack_acct` on).
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    /// The conntrack mark (0 when none).
    pub mark: u32,
    /// The original tuple as the kernel sent it: what a delete names.
    orig: Vec<Tuple>,
}

fn nla_value<T: Nla>(n: &T) -> Vec<u8> {
    let mut v = vec![0u8; n.value_len()];
    n.emit_value(&mut v);
    v
}

/// Nested attributes of a raw value: (kind without flags, value).
fn nested(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[i], buf[i + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[i + 2], buf[i + 3]]) & 0x3fff;
        if len < 4 || i + len > buf.len() {
            break;
        }
        out.push((kind, &buf[i + 4..i + len]));
        i += (len + 3) & !3;
    }
    out
}

fn be_u64(v: &[u8]) -> Option<u64> {
    match v.len() {
        8 => Some(u64::from_be_bytes(v.try_into().ok()?)),
        4 => Some(u64::from(u32::from_be_bytes(v.try_into().ok()?))),
        _ => None,
    }
}

impl Entry {
    fn from_attrs(attrs: &[ConntrackAttribute]) -> Option<Entry> {
        let mut e = Entry {
            src: IpAddr::from([0, 0, 0, 0]),
            dst: IpAddr::from([0, 0, 0, 0]),
            protocol: 0,
            sport: None,
            dport: None,
            icmp: None,
            packets: None,
            bytes: None,
            mark: 0,
            orig: Vec::new(),
        };
        let mut have = (false, false);
        let (mut icmp_type, mut icmp_code) = (None, None);
        for a in attrs {
            match a {
                ConntrackAttribute::CtaTupleOrig(tuples) => {
                    e.orig = tuples.clone();
                    for t in tuples {
                        match t {
                            Tuple::Ip(ips) => {
                                for ip in ips {
                                    match ip {
                                        IPTuple::SourceAddress(a) => {
                                            e.src = *a;
                                            have.0 = true;
                                        }
                                        IPTuple::DestinationAddress(a) => {
                                            e.dst = *a;
                                            have.1 = true;
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            Tuple::Proto(ps) => {
                                for p in ps {
                                    match p {
                                        ProtoTuple::Protocol(p) => e.protocol = (*p).into(),
                                        ProtoTuple::SourcePort(x) => e.sport = Some(*x),
                                        ProtoTuple::DestinationPort(x) => e.dport = Some(*x),
                                        ProtoTuple::Other(n) => {
                                            let v = nla_value(n);
                                            // CTA_PROTO_ICMP{,V6}_{TYPE,CODE}
                                            match n.kind() & 0x3fff {
                                                5 | 8 => icmp_type = v.first().copied(),
                                                6 | 9 => icmp_code = v.first().copied(),
                                                _ => {}
                                            }
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ConntrackAttribute::CtaMark(m) => e.mark = *m,
                ConntrackAttribute::Other(n)
                    if matches!(n.kind() & 0x3fff, CTA_COUNTERS_ORIG | CTA_COUNTERS_REPLY) =>
                {
                    let v = nla_value(n);
                    for (k, val) in nested(&v) {
                        let x = be_u64(val);
                        match k {
                            CTA_COUNTERS_PACKETS => {
                                e.packets = Some(e.packets.unwrap_or(0) + x.unwrap_or(0))
                            }
                            CTA_COUNTERS_BYTES => {
                                e.bytes = Some(e.bytes.unwrap_or(0) + x.unwrap_or(0))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(t), Some(c)) = (icmp_type, icmp_code) {
            e.icmp = Some((t, c));
        }
        (have.0 && have.1).then_some(e)
    }
}

fn family(v6: bool) -> NetfilterProtoFamily {
    if v6 {
        NetfilterProtoFamily::IPv6
    } else {
        NetfilterProtoFamily::IPv4
    }
}

fn send(
    socket: &Socket,
    flags: u16,
    family: NetfilterProtoFamily,
    msg: ConntrackMessage,
) -> io::Result<()> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = flags;
    let mut packet = NetlinkMessage::new(
        hdr,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            msg,
        )),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    Ok(())
}

fn socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

/// Read replies until the dump ends (or, for acked requests, `want_acks` acks came),
/// calling `each` on every conntrack message. Returns the number of error replies.
fn read_replies(
    socket: &Socket,
    want_acks: Option<usize>,
    mut each: impl FnMut(&[ConntrackAttribute]),
) -> io::Result<usize> {
    let mut buf = vec![0u8; 1 << 16];
    let mut errors = 0;
    let mut acks = 0;
    loop {
        if want_acks.is_some_and(|n| acks >= n) {
            return Ok(errors);
        }
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut off = 0;
        while off < n {
            let Ok(msg) = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[off..n]) else {
                // Skip what we cannot parse, by its header length.
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4]));
                if len < 16 {
                    return Ok(errors);
                }
                off += (len as usize + 3) & !3;
                continue;
            };
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(errors),
                NetlinkPayload::Error(e) => {
                    acks += 1;
                    if e.code.is_some() {
                        errors += 1;
                    }
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner:
                        NetfilterMessageInner::Conntrack(
                            ConntrackMessage::New(a)
                            | ConntrackMessage::Get(a)
                            | ConntrackMessage::Delete(a),
                        ),
                    ..
                }) => each(&a),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// Every connection the kernel tracks in this namespace (IPv4 and IPv6).
pub fn list() -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let s = socket()?;
        send(
            &s,
            NLM_F_REQUEST | NLM_F_DUMP,
            family(v6),
            ConntrackMessage::Get(vec![]),
        )?;
        read_replies(&s, None, |attrs| {
            if let Some(e) = Entry::from_attrs(attrs) {
                out.push(e);
            }
        })?;
    }
    Ok(out)
}

/// Delete entries; returns how many the kernel deleted (an entry that already ended is
/// not an error worth reporting).
pub fn delete(entries: &[Entry]) -> io::Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    let s = socket()?;
    for e in entries {
        send(
            &s,
            NLM_F_REQUEST | NLM_F_ACK,
            family(e.src.is_ipv6()),
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(e.orig.clone())]),
        )?;
    }
    let errors = read_replies(&s, Some(entries.len()), |_| {})?;
    Ok(entries.len() - errors)
}

/// Turn on per-connection packet and byte counters in this namespace, so that ended
/// connections report them. Best effort: without it `end` records carry no counters.
pub fn enable_accounting() -> io::Result<()> {
    std::fs::write("/proc/sys/net/netfilter/nf_conntrack_acct", "1")
}

/// Listen for connections that end, calling `each` with every one until it returns
/// false or the socket fails.
pub fn listen_ended(mut each: impl FnMut(Entry) -> bool) -> io::Result<()> {
    let mut s = Socket::new(NETLINK_NETFILTER)?;
    s.bind_auto()?;
    s.add_membership(NFNLGRP_CONNTRACK_DESTROY)?;
    let mut keep = true;
    while keep {
        read_replies(&s, Some(usize::MAX), |attrs| {
            if keep && let Some(e) = Entry::from_attrs(attrs) {
                keep = each(e);
            }
        })?;
    }
    Ok(())
}

/// Should a change cut the entry's connection? When this node's rules now forbid it (as
/// the engine decides a new connection with the same original tuple; protocols without a
/// verdict are kept), and, with the proxy on (`proxied`), when the proxy must now read it
/// but never saw it: opened on the kernel's path before a rule on requests for its port
/// (or a sensor of one of its ends' groups) applied. Cut, such a connection's next packet
/// is a new one to the divert chain: the proxy answers a TCP one with a reset (it holds
/// no such connection), so the client connects again and that connection is read; a UDP
/// flow's next datagram is decided. Never the proxy's own entries nor the socket path's
/// (its programs decide those at every write).
pub fn doomed(
    e: &Entry,
    engine: &bulkhead_policy::Engine,
    scope: &crate::decide::NodeScope,
    proxied: bool,
) -> bool {
    use bulkhead_dataplane::names::{DIVERT_MARK, DIVERTED_MASK, SOCKPATH_MARK};
    let Some(l4) = crate::flows::l4_of(e.protocol, e.dport, e.icmp) else {
        return false;
    };
    let v = scope.decide(engine, e.src, e.dst, l4);
    if !v.allowed {
        return true;
    }
    let kernel_path = e.mark & DIVERTED_MASK != DIVERT_MARK && e.mark != SOCKPATH_MARK;
    proxied
        && kernel_path
        && matches!(e.protocol, 6 | 17)
        && (v.needs_l7() || !scope.sensors(engine, e.src, e.dst).is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DefaultNla;

    #[test]
    fn entries_read_addresses_ports_icmp_and_counters() {
        let counters = {
            // Two nested u64 attributes: packets 3, bytes 180.
            let mut v = Vec::new();
            for (kind, val) in [(CTA_COUNTERS_PACKETS, 3u64), (CTA_COUNTERS_BYTES, 180)] {
                v.extend_from_slice(&12u16.to_ne_bytes());
                v.extend_from_slice(&kind.to_ne_bytes());
                v.extend_from_slice(&val.to_be_bytes());
            }
            v
        };
        let attrs = vec![
            ConntrackAttribute::CtaTupleOrig(vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress("10.0.0.1".parse().unwrap()),
                    IPTuple::DestinationAddress("10.0.0.2".parse().unwrap()),
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(1u8.into()),
                    ProtoTuple::Other(DefaultNla::new(4, vec![0, 7])),
                    ProtoTuple::Other(DefaultNla::new(5, vec![8])),
                    ProtoTuple::Other(DefaultNla::new(6, vec![0])),
                ]),
            ]),
            ConntrackAttribute::Other(DefaultNla::new(
                CTA_COUNTERS_ORIG | 0x8000,
                counters.clone(),
            )),
            ConntrackAttribute::Other(DefaultNla::new(CTA_COUNTERS_REPLY | 0x8000, counters)),
        ];
        let e = Entry::from_attrs(&attrs).unwrap();
        assert_eq!(e.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.protocol, 1);
        assert_eq!(e.icmp, Some((8, 0)));
        assert_eq!((e.packets, e.bytes), (Some(6), Some(360)));
        assert!(Entry::from_attrs(&[]).is_none());
    }
}
