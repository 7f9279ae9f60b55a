//! The destination side of a probe run, one thread per workload inside its namespace:
//! - makes sure something answers on every probed TCP and UDP port: a port already
//!   bound (the responder, a real server) counts; a free one gets a temporary listener
//!   that answers like the responder, for the length of the run;
//! - watches, with raw sockets, for the packets that have no socket here (SCTP INITs,
//!   ICMP messages other than echo) and records each probe's tag as it arrives.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::packet::{self, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP};
use crate::netns;
use crate::responder;

/// Probe tags seen arriving, per destination: `(destination index, tag)`.
#[derive(Default)]
pub struct Arrivals(Mutex<HashSet<(usize, u32)>>);

impl Arrivals {
    pub fn record(&self, dst: usize, tag: u32) {
        if let Ok(mut s) = self.0.lock() {
            s.insert((dst, tag));
        }
    }

    pub fn seen(&self, dst: usize, tag: u32) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(&(dst, tag)))
    }
}

/// What one destination must offer.
#[derive(Clone, Debug, Default)]
pub struct TargetSpec {
    pub index: usize,
    pub netns: String,
    pub name: String,
    /// The address family TCP and UDP probes use.
    pub v6: bool,
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    /// Raw sniffers: `(IPv6?, IP protocol)`.
    pub sniff: Vec<(bool, u8)>,
}

/// A running destination; dropping `stop` (or sending on it) ends it.
pub struct Target {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Target {
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Start serving `spec` and return once every listener and sniffer is in place.
pub fn start(spec: TargetSpec, arrivals: Arc<Arrivals>) -> Result<Target> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let name = spec.name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("probe-dst-{}", spec.index))
        .spawn(move || {
            let rt = netns::join(&spec.netns).and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("probe runtime")
            });
            let rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let mut tasks = JoinSet::new();
                match bind_all(&spec, &arrivals, &mut tasks) {
                    Ok(()) => {
                        let _ = ready_tx.send(Ok(()));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                tasks.abort_all();
            });
        })?;
    let ready = ready_rx
        .recv()
        .map_err(|_| anyhow!("probe listener thread of {name} ended"))?;
    let target = Target {
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    ready.with_context(|| format!("preparing {name} to answer probes"))?;
    Ok(target)
}

fn bind_all(spec: &TargetSpec, arrivals: &Arc<Arrivals>, tasks: &mut JoinSet<()>) -> Result<()> {
    for &port in &spec.tcp {
        if let Some(l) = free_port(spec.v6, Type::STREAM, port)? {
            let l = TcpListener::from_std(l.into())?;
            let name = spec.name.clone();
            tasks.spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let _ = s.write_all(responder::banner(&name, port).as_bytes()).await;
                }
            });
        }
    }
    for &port in &spec.udp {
        if let Some(s) = free_port(spec.v6, Type::DGRAM, port)? {
            let s = UdpSocket::from_std(s.into())?;
            let name = spec.name.clone();
            tasks.spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, peer)) = s.recv_from(&mut buf).await {
                    let mut reply = format!("bulkhead-lab {name} UDP/{port}: ").into_bytes();
                    reply.extend_from_slice(&buf[..n.min(512)]);
                    let _ = s.send_to(&reply, peer).await;
                }
            });
        }
    }
    for &(v6, proto) in &spec.sniff {
        let s = raw(v6, proto).with_context(|| format!("raw socket for protocol {proto}"))?;
        let arrivals = arrivals.clone();
        let index = spec.index;
        tasks.spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, _)) = s.recv_from(&mut buf).await {
                let data = if v6 {
                    Some(&buf[..n])
                } else {
                    packet::strip_ipv4_header(&buf[..n])
                };
                let tag = data.and_then(|d| match proto {
                    PROTO_SCTP => packet::parse_sctp_init(d).map(|(_, tag)| tag),
                    PROTO_ICMP | PROTO_ICMPV6 => packet::parse_icmp(d).map(|(_, _, tag)| tag),
                    _ => None,
                });
                if let Some(tag) = tag {
                    arrivals.record(index, tag);
                }
            }
        });
    }
    Ok(())
}

/// A listener on `port` of the probe's family, or `None` when something already has
/// the port (that something answers the probe).
fn free_port(v6: bool, ty: Type, port: u16) -> Result<Option<Socket>> {
    let (domain, addr) = if v6 {
        (
            Domain::IPV6,
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        )
    } else {
        (
            Domain::IPV4,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        )
    };
    let s = Socket::new(domain, ty, None)?;
    if v6 {
        s.set_only_v6(true)?;
    }
    if ty == Type::STREAM {
        // Only so a TIME_WAIT of an earlier run does not block the port; a listening
        // socket still does (and must: it answers). UDP gets no such option, or binding
        // would succeed next to a server already there.
        s.set_reuse_address(true)?;
    }
    match s.bind(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AddrInUse => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("binding port {port}")),
    }
    if ty == Type::STREAM {
        s.listen(1024)?;
    }
    s.set_nonblocking(true)?;
    Ok(Some(s))
}

/// A raw socket of one IP protocol, read and written through tokio's datagram socket
/// (recvfrom/sendto are the same system calls).
pub fn raw(v6: bool, proto: u8) -> Result<UdpSocket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(proto))))?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// The unspecified address of a family, for binding client sockets.
pub fn any(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}
