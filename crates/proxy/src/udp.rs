//! UDP through the proxy, decided one datagram at a time.
//!
//! TPROXY delivers a diverted datagram to a transparent UDP socket; `IP_RECVORIGDSTADDR`
//! says where it was going. Every datagram of a diverted flow comes here, not only its
//! first (the divert chain knows the flow by its conntrack mark), and each is read
//! (`bulkhead_l7::datagram`: its protocol from the bytes, DNS to the query name, CLDAP
//! to the operation and DN) and decided on its own. An allowed one goes on the client's
//! flow (`flows`): a socket bound transparently to the client's address (the server
//! sees the client; its answers come back to that socket because the proxy's own flows
//! carry the divert mark too), which relays every answer of the server (DNS answers
//! held for FQDN egress first) until the flow goes idle. Answers and refusals (DNS
//! `REFUSED`) reach the client from the address it wrote to (`answers`). When sensors
//! apply (`Authority::inspector`), they read every allowed datagram both ways, each on
//! its own (`flows::Watch`); a Block sensor's finding drops it.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bulkhead_l7::datagram::{self, Asked};
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};
use nix::sys::socket::{self as ns, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::Config;
use crate::answers::Answers;
use crate::authority::{Authority, Decision};
use crate::capture::Side;
use crate::event::{Event, EventKind};
use crate::flows::{Answering, Flows, Watch};

/// Largest datagram read (EDNS0 allows 4096 and more; 64 KiB is the UDP maximum).
const MAX_DATAGRAM: usize = 65_536;

pub(crate) fn transparent(domain: Domain, v6: bool) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if v6 {
        s.set_ip_transparent_v6(true)?;
    } else {
        s.set_ip_transparent_v4(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

pub(crate) fn domain(v6: bool) -> Domain {
    if v6 { Domain::IPV6 } else { Domain::IPV4 }
}

/// The transparent listener of one family, reporting each datagram's destination
/// (a std socket: the caller hands it to the runtime that serves it).
pub fn listen(port: u16, v6: bool) -> io::Result<std::net::UdpSocket> {
    let s = transparent(domain(v6), v6)?;
    let addr: SocketAddr = if v6 {
        s.set_only_v6(true)?;
        ns::setsockopt(&s, sockopt::Ipv6OrigDstAddr, &true).map_err(io::Error::from)?;
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        ns::setsockopt(&s, sockopt::Ipv4OrigDstAddr, &true).map_err(io::Error::from)?;
        (std::net::Ipv4Addr::UNSPECIFIED, port).into()
    };
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// One datagram: its bytes, the client and where it was going.
fn recv(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, SocketAddr)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc_sockaddr_in6);
    let msg = ns::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let client = msg
        .address
        .as_ref()
        .and_then(storage_addr)
        .ok_or_else(|| io::Error::other("datagram without a source"))?;
    let mut dst = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4OrigDstAddr(a) => {
                dst = Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )));
            }
            ControlMessageOwned::Ipv6OrigDstAddr(a) => {
                dst = Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    0,
                    0,
                )));
            }
            _ => {}
        }
    }
    let dst = dst.ok_or_else(|| io::Error::other("datagram without its destination"))?;
    Ok((msg.bytes, client, dst))
}

/// `cmsg_space!` wants a type as large as the biggest control message read.
#[allow(non_camel_case_types)]
type libc_sockaddr_in6 = [u8; 28];

fn storage_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
    }
    s.as_sockaddr_in6()
        .map(|a| SocketAddr::V6(SocketAddrV6::new(a.ip(), a.port(), 0, 0)))
}

/// What every datagram's task shares.
pub(crate) struct Shared {
    pub cfg: Arc<Config>,
    pub authority: Arc<dyn Authority>,
    pub answers: Arc<Answers>,
    pub flows: Flows,
}

impl Shared {
    pub(crate) fn new(cfg: Arc<Config>, authority: Arc<dyn Authority>) -> Shared {
        let answers = Arc::new(Answers::new(cfg.upstream_mark));
        Shared {
            flows: Flows::new(answers.clone()),
            answers,
            cfg,
            authority,
        }
    }
}

pub(crate) async fn serve(sock: UdpSocket, cx: Arc<Shared>, ids: Arc<AtomicU64>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let got = sock
            .async_io(Interest::READABLE, || recv(&sock, &mut buf))
            .await;
        let (n, client, server) = match got {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "udp receive");
                continue;
            }
        };
        let datagram = buf[..n].to_vec();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let cx = cx.clone();
        tokio::spawn(async move {
            if let Err(e) = exchange(id, datagram, client, server, &cx).await {
                debug!(conn = id, error = %e, "udp exchange");
            }
        });
    }
}

pub(crate) fn emit(
    authority: &dyn Authority,
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    kind: EventKind,
) {
    authority.record(Event {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        conn: id,
        client,
        server,
        forwarded_for: None,
        kind,
    });
}

async fn exchange(
    id: u64,
    datagram: Vec<u8>,
    client: SocketAddr,
    server: SocketAddr,
    cx: &Shared,
) -> anyhow::Result<()> {
    let (cfg, authority) = (&cx.cfg, cx.authority.as_ref());
    let asked = datagram::read(&datagram);
    let (allowed, decision, refusal) = judge(&datagram, &asked, client, server, authority);
    if !allowed {
        let asked_at = SystemTime::now();
        if let Some(r) = &refusal {
            cx.answers.send(server, client, r)?;
        }
        // The evidence: the datagram and the refusal, as the packets they were.
        let pcap = cfg.captures.as_ref().and_then(|c| {
            let mut d = vec![(Side::Client, asked_at, datagram.as_slice())];
            if let Some(r) = &refusal {
                d.push((Side::Server, SystemTime::now(), r.as_slice()));
            }
            c.write("udp", id, "request", |path| {
                crate::capture::write_datagrams(path, client, server, &d)
            })
        });
        let refusal = match &refusal {
            Some(_) if asked.app == Some(AppProtocol::Dns) => "REFUSED",
            Some(_) => "insufficientAccessRights",
            None => "dropped",
        };
        emit(
            authority,
            id,
            client,
            server,
            EventKind::Request {
                protocol: asked.app.map_or("unknown".into(), |a| a.to_string()),
                request: asked.request.map(|r| r.to_string()).unwrap_or_default(),
                decision,
                refusal: Some(refusal.into()),
                pcap,
            },
        );
        return Ok(());
    }
    let answering = || match asked.app {
        Some(AppProtocol::Dns) => Answering::Dns {
            authority: cx.authority.clone(),
            bound: cfg.dns_hold,
        },
        _ => Answering::Relay,
    };
    let protocol = asked.app.map_or("unknown".into(), |a| a.to_string());
    // The sensors that apply, as for a TCP connection.
    let watch = cx.authority.inspector(client, server).map(|inspector| {
        Arc::new(Watch {
            inspector,
            authority: cx.authority.clone(),
            captures: cfg.captures.clone(),
            id,
            protocol: protocol.clone(),
        })
    });
    // (Without the request: a DNS name that carries a card number would be in it whole,
    // where the findings are masked. TCP's byte streams are reported alike.)
    if watch
        .as_ref()
        .is_some_and(|w| w.read(client, server, &datagram, false))
    {
        return Ok(());
    }
    let opened = cx
        .flows
        .send(
            client,
            server,
            &datagram,
            cfg.upstream_mark,
            answering,
            watch,
        )
        .await?;
    if opened {
        emit(
            authority,
            id,
            client,
            server,
            EventKind::Flow { protocol, decision },
        );
    }
    Ok(())
}

/// The verdict on one datagram: may it pass, the decision for its event, and the
/// protocol's refusal to answer with. Two questions, as a connection is asked them: may
/// this protocol be sent here at all (another protocol on a port whose rule requires
/// one is dropped unanswered, as a TCP connection is reset), then may this request.
fn judge(
    datagram: &[u8],
    asked: &Asked,
    client: SocketAddr,
    server: SocketAddr,
    authority: &dyn Authority,
) -> (bool, Decision, Option<Vec<u8>>) {
    let Some(app) = asked.app else {
        // Nothing bulkhead can name: no rule that looks at layer 7 can match.
        let mut d = authority.decide_datagram(client, server, None);
        d.allowed = d.allowed_without_l7;
        return (d.allowed, d, None);
    };
    let protocol = L7Request {
        app,
        detail: L7Detail::None,
    };
    if asked.is_read() {
        // One decision for an allowed request (every DNS query of FQDN egress); only a
        // refused one is asked whether its protocol was (dropped) or the request (the
        // protocol's refusal).
        let d = authority.decide_datagram(client, server, asked.request.as_ref());
        if d.allowed {
            return (true, d, None);
        }
        let p = authority.decide_datagram(client, server, Some(&protocol));
        if !p.allowed {
            return (false, p, None);
        }
        return (false, d, datagram::refusal(datagram, asked));
    }
    let mut d = authority.decide_datagram(client, server, Some(&protocol));
    if !d.allowed {
        return (false, d, None);
    }
    if d.needs_l7 {
        // Rules look at requests of a protocol whose datagrams bulkhead does not read:
        // refused rather than let through unchecked, as over TCP.
        d.allowed = false;
        d.decided_by = format!(
            "{} (requests of {app} cannot be inspected in datagrams)",
            d.decided_by
        );
    }
    (d.allowed, d, None)
}
