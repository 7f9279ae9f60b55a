//! The source side: one probe, sent from a socket created inside the source's
//! namespace, judged by what comes back (or arrives) within the timeout.
//!
//! | probe | sent | allowed when | denied when |
//! |---|---|---|---|
//! | TCP | connect, then a line | the handshake completes | refused (reset), unreachable, or no answer in time |
//! | UDP | a datagram, resent every 250 ms | any answer | port unreachable, or no answer |
//! | ICMP/ICMPv6 echo | echo request on a ping socket | echo reply | unreachable, or no reply |
//! | other ICMP types | the message with a tag, raw | the destination sees it | it does not |
//! | SCTP | an INIT with a tag and a valid CRC32c, raw | the destination sees it | it does not |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep, timeout};

use super::packet::{self, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP};
use super::target::{self, Arrivals};

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// The probe could not be made (a socket could not be created): not a verdict.
    Untestable(String),
}

/// How often an unanswered datagram is sent again within the timeout.
const RESEND: Duration = Duration::from_millis(250);

/// Tags unique within the run, from a start that differs between runs.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

/// Seed the tags, once per process: runs may overlap (a test probing while it changes
/// the lab), and reseeding under a running one could hand out a tag twice.
pub fn seed_tags() {
    static SEEDED: std::sync::Once = std::sync::Once::new();
    SEEDED.call_once(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        NEXT_TAG.store(t ^ std::process::id().rotate_left(16), Ordering::Relaxed);
    });
}

fn tag() -> u32 {
    loop {
        let t = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        if t != 0 {
            return t;
        }
    }
}

pub async fn tcp(dst: SocketAddr, limit: Duration) -> Outcome {
    let deadline = Instant::now() + limit;
    let mut s = match timeout(limit, TcpStream::connect(dst)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) | Err(_) => return Outcome::Denied,
    };
    // The handshake completed: layer 4 let the connection through. Read the answer
    // anyway (say something first, so the responder answers at once), but do not judge
    // by it: a real server may close on our line with a reset (iperf3 does), or say
    // nothing until the client does (PostgreSQL).
    let _ = s.write_all(b"bulkhead-probe\n").await;
    let mut buf = [0u8; 256];
    let patience = (Instant::now() + Duration::from_millis(300)).min(deadline);
    let _ = tokio::time::timeout_at(patience, s.read(&mut buf)).await;
    // Closed with a reset: nothing lingers in TIME_WAIT, neither here nor in the nodes'
    // conntrack tables (a closed connection stays there for 2 minutes, a reset one for
    // 10 s), which a lab probed over and over would otherwise fill.
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    Outcome::Allowed
}

pub async fn udp(dst: SocketAddr, limit: Duration) -> Outcome {
    let s = match UdpSocket::bind((target::any(dst.is_ipv6()), 0)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Untestable(format!("UDP socket: {e}")),
    };
    if s.connect(dst).await.is_err() {
        return Outcome::Denied;
    }
    let msg = format!("bulkhead-probe {}", tag());
    resend_until_answered(&s, msg.as_bytes(), limit, |_| true).await
}

/// ICMP or ICMPv6 echo on an unprivileged ping socket (the kernel fills in the
/// identifier and hands us only the replies to our own requests).
pub async fn echo(dst: IpAddr, limit: Duration) -> Outcome {
    let v6 = dst.is_ipv6();
    let (domain, proto, request, reply) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8)
    } else {
        (Domain::IPV4, Protocol::ICMPV4, 8, 0)
    };
    let s = match Socket::new(domain, Type::DGRAM, Some(proto))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(|s| UdpSocket::from_std(s.into()))
    {
        Ok(s) => s,
        Err(e) => return Outcome::Untestable(format!("ICMP echo socket: {e}")),
    };
    if s.connect((dst, 0)).await.is_err() {
        return Outcome::Denied;
    }
    let t = tag();
    let mut msg = vec![request, 0, 0, 0];
    msg.extend_from_slice(&t.to_be_bytes());
    msg.extend_from_slice(b"bulkhead-lab probe");
    resend_until_answered(&s, &msg, limit, |r| r.first() == Some(&reply)).await
}

/// Send, and send again every [`RESEND`], until an answer `accept` likes arrives, an
/// error says the destination is unreachable, or time runs out.
async fn resend_until_answered(
    s: &UdpSocket,
    msg: &[u8],
    limit: Duration,
    accept: impl Fn(&[u8]) -> bool,
) -> Outcome {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if s.send(msg).await.is_err() {
            return Outcome::Denied;
        }
        let round = (Instant::now() + RESEND).min(deadline);
        loop {
            match tokio::time::timeout_at(round, s.recv(&mut buf)).await {
                Ok(Ok(n)) if accept(&buf[..n]) => return Outcome::Allowed,
                Ok(Ok(_)) => continue,
                // Port or host unreachable: refused.
                Ok(Err(_)) => return Outcome::Denied,
                Err(_) => break,
            }
        }
    }
    Outcome::Denied
}

/// SCTP (no SCTP sockets in this kernel) and ICMP messages other than echo: sent raw
/// with a tag, allowed when the destination's sniffer records the tag.
pub async fn arrival(
    dst: IpAddr,
    dst_index: usize,
    kind: RawKind,
    arrivals: Arc<Arrivals>,
    limit: Duration,
) -> Outcome {
    let v6 = dst.is_ipv6();
    let t = tag();
    let (proto, msg) = match kind {
        RawKind::SctpInit { port } => {
            // Any source port will do (nothing here answers SCTP); derive it from the tag.
            let src_port = 32768 + (t % 28000) as u16;
            (PROTO_SCTP, packet::sctp_init(src_port, port, t))
        }
        RawKind::Icmp { icmp_type, code } => {
            let proto = if v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
            (proto, packet::icmp(v6, icmp_type, code, t))
        }
    };
    let s = match target::raw(v6, proto) {
        Ok(s) => s,
        Err(e) => return Outcome::Untestable(format!("raw socket for protocol {proto}: {e:#}")),
    };
    let deadline = Instant::now() + limit;
    let mut next_send = Instant::now();
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            // A send error (unreachable) is a refusal; keep looking until the deadline
            // anyway in case an earlier copy got through.
            let _ = s.send_to(&msg, (dst, 0)).await;
            next_send = Instant::now() + RESEND;
        }
        if arrivals.seen(dst_index, t) {
            return Outcome::Allowed;
        }
        sleep(Duration::from_millis(10)).await;
    }
    if arrivals.seen(dst_index, t) {
        Outcome::Allowed
    } else {
        Outcome::Denied
    }
}

/// What a raw probe sends.
#[derive(Clone, Copy, Debug)]
pub enum RawKind {
    SctpInit { port: u16 },
    Icmp { icmp_type: u8, code: u8 },
}
