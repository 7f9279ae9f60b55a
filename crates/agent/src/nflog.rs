//! NFLOG: the packets the data plane logs (group 1, see `bulkhead_dataplane::names`),
//! read from a NETLINK_NETFILTER socket in the node namespace and turned into
//! [`Observed`] packets: what the kernel did (from the prefix), addresses, protocol,
//! ports or ICMP type.
//!
//! The instance copies only the first 128 bytes of each packet (the rules' snaplen is
//! the same): enough for any IP and L4 header, never user data.

use std::io;
use std::time::{Duration, SystemTime};

use etherparse::LaxIpSlice;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nflog::{
    ConfigCmd, ConfigMode, PacketNla, Timeout, ULogMessage, config_request,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use crate::flows::{self, Action, Observed};

const COPY_RANGE: u32 = 128;

/// A bound NFLOG group.
pub struct Nflog {
    socket: Socket,
    buf: Vec<u8>,
}

fn request(
    socket: &Socket,
    family: NetfilterProtoFamily,
    group: u16,
    nlas: Vec<netlink_packet_netfilter::nflog::ConfigNla>,
) -> io::Result<()> {
    let msg = config_request(family, group, nlas);
    let mut buf = vec![0; msg.header.length as usize];
    msg.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;
    // The acknowledgement: an error code, or none.
    let mut rx = vec![0u8; 4096];
    let n = socket.recv(&mut &mut rx[..], 0)?;
    if let Ok(m) = NetlinkMessage::<NetfilterMessage>::deserialize(&rx[..n])
        && let NetlinkPayload::Error(e) = m.payload
        && let Some(code) = e.code
    {
        return Err(io::Error::from_raw_os_error(-code.get()));
    }
    Ok(())
}

impl Nflog {
    /// Bind `group` in copy-packet mode. Fails if another process holds the group.
    pub fn bind(group: u16) -> io::Result<Nflog> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        // Old kernels need the per-family handler bound; newer ones ignore this.
        for family in [NetfilterProtoFamily::IPv4, NetfilterProtoFamily::IPv6] {
            let _ = request(&socket, family, 0, vec![ConfigCmd::PfBind.into()]);
        }
        request(
            &socket,
            NetfilterProtoFamily::Unspec,
            group,
            vec![
                ConfigCmd::Bind.into(),
                ConfigMode::new_packet(COPY_RANGE).into(),
                // Flush batched packets after 10 ms: records appear promptly.
                Timeout::new(1).into(),
            ],
        )?;
        // A large receive buffer absorbs bursts of denials.
        let _ = socket.set_rx_buf_sz(4 << 20);
        Ok(Nflog {
            socket,
            buf: vec![0u8; 1 << 16],
        })
    }

    /// Block until packets arrive; call `each` for every logged packet bulkhead can read.
    pub fn recv(&mut self, mut each: impl FnMut(Observed)) -> io::Result<()> {
        let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
        let now = SystemTime::now();
        let mut off = 0;
        while off + 16 <= n {
            let len =
                u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
            if len < 16 || off + len > n {
                break;
            }
            if let Ok(msg) =
                NetlinkMessage::<NetfilterMessage>::deserialize(&self.buf[off..off + len])
                && let NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::ULog(ULogMessage::Packet(nlas)),
                    ..
                }) = msg.payload
                && let Some(o) = observe(&nlas, now)
            {
                each(o);
            }
            off += (len + 3) & !3;
        }
        Ok(())
    }
}

/// Read one logged packet.
pub fn observe(nlas: &[PacketNla], now: SystemTime) -> Option<Observed> {
    let mut action = None;
    let mut payload: Option<&[u8]> = None;
    let mut indev = None;
    for nla in nlas {
        match nla {
            PacketNla::Prefix(p) => action = flows::action_from_prefix(&p.to_string_lossy()),
            PacketNla::Payload(p) => payload = Some(p),
            PacketNla::IfIndexInDev(i) => indev = Some(*i),
            _ => {}
        }
    }
    let (action, forged) = action?;
    let mut o = parse_ip(action, payload?, now)?;
    if forged {
        o.forged = Some(flows::Forged {
            indev,
            sender: Vec::new(),
        });
    }
    Some(o)
}

/// Addresses, protocol and ports of an IP packet (possibly truncated).
pub fn parse_ip(action: Action, packet: &[u8], time: SystemTime) -> Option<Observed> {
    let (ip, _) = LaxIpSlice::from_slice(packet).ok()?;
    let len = match &ip {
        LaxIpSlice::Ipv4(v4) => u32::from(v4.header().total_len()),
        LaxIpSlice::Ipv6(v6) => 40 + u32::from(v6.header().payload_length()),
    };
    let p = ip.payload();
    let protocol = p.ip_number.0;
    let l4 = p.payload;
    let ports = || -> Option<(u16, u16)> {
        (l4.len() >= 4 && !p.fragmented).then(|| {
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        })
    };
    let mut o = Observed {
        time,
        action,
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        protocol,
        sport: None,
        dport: None,
        icmp: None,
        len: Some(len),
        forged: None,
    };
    match protocol {
        6 | 17 | 132 => {
            let (s, d) = ports()?;
            o.sport = Some(s);
            o.dport = Some(d);
        }
        1 | 58 if l4.len() >= 2 => o.icmp = Some((l4[0], l4[1])),
        _ => {}
    }
    Some(o)
}

/// Read forever, handing records to `each`; a receive error (e.g. ENOBUFS when the
/// agent falls behind: records were lost) is counted and reading goes on.
pub fn run(mut log: Nflog, mut each: impl FnMut(Observed), mut lost: impl FnMut(io::Error)) {
    loop {
        if let Err(e) = log.recv(&mut each) {
            lost(e);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_tcp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0, 80]); // ports 40000 -> 80
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn ipv4_tcp_truncated() {
        let o = parse_ip(Action::Deny, &v4_tcp(), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(o.src.to_string(), "10.0.0.1");
        assert_eq!((o.protocol, o.sport, o.dport), (6, Some(40000), Some(80)));
        assert_eq!(o.len, Some(60));
    }

    #[test]
    fn ipv6_icmp_echo() {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        let a: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
        let b: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        p.extend_from_slice(&a.octets());
        p.extend_from_slice(&b.octets());
        p.extend_from_slice(&[128, 0, 0, 0, 0, 1, 0, 1]);
        let o = parse_ip(Action::Allow, &p, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(o.dst.to_string(), "fd00::2");
        assert_eq!((o.protocol, o.icmp), (58, Some((128, 0))));
    }

    #[test]
    fn prefix_and_payload_from_nlas() {
        let nlas = vec![
            PacketNla::Prefix(std::ffi::CString::new("bh:deny ").unwrap()),
            PacketNla::Payload(v4_tcp()),
        ];
        let o = observe(&nlas, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(o.action, Action::Deny);
        let other = vec![
            PacketNla::Prefix(std::ffi::CString::new("someone else").unwrap()),
            PacketNla::Payload(v4_tcp()),
        ];
        assert!(observe(&other, SystemTime::UNIX_EPOCH).is_none());
    }
}
