//! A small synchronous rtnetlink client: links, addresses and routes of the calling
//! thread's network namespace. Messages are built with `rtnetlink`'s builders and sent
//! on a plain netlink socket, one request at a time, each acknowledged; the socket is
//! opened inside a namespace (see [`crate::netns::enter`]) and stays bound to it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage, State,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{
    AddressMessageBuilder, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

/// MAC of the end of a veth pair created where [`Netlink::add_veth`] runs (a node's side
/// of a workload link).
pub const NEAR_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
/// MAC of the end created in the other namespace (a workload's `eth0`).
pub const FAR_MAC: [u8; 6] = [0x02, 0x62, 0x68, 0x00, 0x00, 0x02];

pub struct Netlink {
    socket: Socket,
    seq: u32,
}

/// Where a route sends packets.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// Straight out of the link (`ip route add X dev L`).
    Link,
    /// Through a gateway on the link (`via G dev L`); `onlink` when the gateway is in no
    /// subnet of the link (a /32 address on a neighbour's loopback).
    Gateway { addr: IpAddr, onlink: bool },
}

impl Via {
    pub fn gateway(addr: impl Into<IpAddr>) -> Self {
        Via::Gateway {
            addr: addr.into(),
            onlink: false,
        }
    }

    pub fn onlink(addr: impl Into<IpAddr>) -> Self {
        Via::Gateway {
            addr: addr.into(),
            onlink: true,
        }
    }
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
        socket.bind_auto().context("netlink bind")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("netlink connect")?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Send one request and wait for its acknowledgement; returns the messages that came
    /// before it (the answer of a GET).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        let mut rx = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut rx[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[offset..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(_) => Err(e.to_io()),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(m) => answers.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    fn create(&mut self, msg: RouteNetlinkMessage) -> io::Result<()> {
        self.request(msg, NLM_F_CREATE | NLM_F_EXCL).map(drop)
    }

    /// The link called `name`, as `ip link show NAME` asks for it (one link, not a dump).
    fn link(&mut self, name: &str) -> Result<LinkMessage> {
        let q = LinkUnspec::new_with_name(name).build();
        let answers = self
            .request(RouteNetlinkMessage::GetLink(q), 0)
            .with_context(|| format!("looking up link {name}"))?;
        answers
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| anyhow!("no link {name}"))
    }

    /// The index of the link called `name`.
    pub fn index(&mut self, name: &str) -> Result<u32> {
        Ok(self.link(name)?.header.index)
    }

    /// Wait until link `name` is operationally up (`state UP` in `ip link`), at most
    /// `timeout`. A veth end that was up before its peer gets its carrier when the peer
    /// comes up, but the kernel finishes that (operational state, and the transmit queue:
    /// until then the no-op qdisc, which drops every packet) in its link-watch work,
    /// later, in the background. Asking for the one link makes the kernel do pending
    /// link-watch work at once (Linux 6.8 and later, as for `ip link show NAME`); on
    /// older kernels the state turns UP when the work has run. Either way, once it reads
    /// UP the link carries packets both ways.
    pub fn wait_up(&mut self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self.link(name)?;
            let state = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::OperState(s) => Some(*s),
                _ => None,
            });
            if state == Some(State::Up) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let state = state.map_or("unknown".into(), |s| s.to_string());
                return Err(anyhow!(
                    "link {name} is not up after {timeout:?} (its state: {state})"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A veth pair: `name` here (up), `peer` created directly in the namespace open as
    /// `peer_ns`, so it never exists anywhere else, not even for a moment. The two ends
    /// get the fixed MACs [`NEAR_MAC`] and [`FAR_MAC`]: every pair is a link of its own, so
    /// fixed addresses are unique where it matters (Calico gives every host-side veth
    /// `ee:ee:ee:ee:ee:ee`), and they let both sides have permanent neighbour entries.
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_ns: &impl AsRawFd) -> Result<()> {
        let peer_msg: LinkMessage = LinkUnspec::new_with_name(peer)
            .setns_by_fd(peer_ns.as_raw_fd())
            .address(FAR_MAC.to_vec())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .address(NEAR_MAC.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .up()
            .build();
        self.create(RouteNetlinkMessage::NewLink(msg))
            .with_context(|| format!("creating veth {name} (peer {peer})"))
    }

    /// `ip link del NAME`: a veth takes its peer, and every route and neighbour entry
    /// over it, along at once. Nothing to do when there is no such link.
    pub fn del_link(&mut self, name: &str) -> Result<()> {
        let index = match self.index(name) {
            Ok(i) => i,
            Err(_) => return Ok(()),
        };
        let msg = LinkUnspec::new_with_index(index).build();
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
            .map(drop)
            .with_context(|| format!("deleting link {name}"))
    }

    /// `ip neigh replace ADDR lladdr MAC dev INDEX nud permanent`: no ARP or neighbour
    /// discovery on the link, so the first packets of a burst are never held in (or
    /// dropped from) the queue of an unresolved neighbour. Replace, not add: a packet
    /// sent on the link before (a workload added to a running lab can be probed while it
    /// is wired) leaves an incomplete entry that this one must take over.
    pub fn add_neighbour(&mut self, index: u32, addr: IpAddr, mac: [u8; 6]) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        let (family, dest) = match addr {
            IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
        };
        msg.header.family = family;
        msg.attributes.push(NeighbourAttribute::Destination(dest));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
        .with_context(|| format!("adding neighbour {addr}"))
    }

    /// `ip link set NAME up`.
    pub fn up(&mut self, name: &str) -> Result<u32> {
        let index = self.index(name)?;
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .with_context(|| format!("setting {name} up"))?;
        Ok(index)
    }

    /// `ip addr add ADDR/PREFIX dev INDEX nodad`: duplicate address detection would keep
    /// IPv6 addresses tentative (unusable) for a second or two, and every address in a
    /// lab is unique by construction.
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        let mut msg = match addr {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
        };
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        self.create(RouteNetlinkMessage::NewAddress(msg))
            .with_context(|| format!("adding address {addr}/{prefix}"))
    }

    /// `ip route add DEST/PREFIX [via GW [onlink]] dev INDEX`.
    pub fn add_route(&mut self, dest: IpAddr, prefix: u8, index: u32, via: Via) -> Result<()> {
        let what = || format!("adding route {dest}/{prefix}");
        let b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dest, prefix)
            .map_err(|e| anyhow!("{e:?}"))
            .with_context(what)?
            .output_interface(index);
        let msg = match via {
            // `ip route add X dev L` makes IPv4 link routes link-scoped.
            Via::Link if dest.is_ipv4() => b.scope(RouteScope::Link).build(),
            Via::Link => b.build(),
            Via::Gateway { addr, onlink } => {
                if addr.is_ipv4() != dest.is_ipv4() {
                    return Err(anyhow!("a route to {dest} cannot go via {addr}"));
                }
                let b = b
                    .gateway(addr)
                    .map_err(|e| anyhow!("{e:?}"))
                    .with_context(what)?;
                if onlink { b.onlink() } else { b }.build()
            }
        };
        self.create(RouteNetlinkMessage::NewRoute(msg))
            .with_context(what)
    }

    /// `ip route del DEST/PREFIX` (main table); nothing to do when there is none.
    pub fn del_route(&mut self, dest: IpAddr, prefix: u8) -> Result<()> {
        let what = || format!("deleting route {dest}/{prefix}");
        let msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dest, prefix)
            .map_err(|e| anyhow!("{e:?}"))
            .with_context(what)?
            .build();
        match self.request(RouteNetlinkMessage::DelRoute(msg), 0) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(()),
            r => r.map(drop).with_context(what),
        }
    }

    /// The default route of the gateway's family: `default via GW dev INDEX`.
    pub fn add_default(&mut self, index: u32, via: Via) -> Result<()> {
        let any = match via {
            Via::Gateway {
                addr: IpAddr::V6(_),
                ..
            } => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        self.add_route(any, 0, index, via)
    }
}
