//! UDP flows through the proxy: DNS, memcached, CLDAP, ...
//!
//! A client's allowed datagrams to one server go out on one socket, bound transparently
//! to the client's address (a port of the proxy's range: `socket::ports`), so the
//! server sees the client and one source port for the whole flow, as it would without
//! the proxy. Every datagram the server sends back on it (a memcached value split over
//! several, a CLDAP entry and its result, each DNS answer) is relayed to the client from
//! the server's address (`answers`), until neither side has sent anything for a while
//! ([`Answering::idle`]). DNS answers are first held for FQDN egress when the client
//! learns from them. The table is bounded.
//!
//! DNS took a socket of its own per query before (opened, bound, connected, closed: a
//! dozen system calls per query on top of the answer's); a stub resolver sends its next
//! queries from the same port (A and AAAA, retries), which now go on its flow.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_l7::Inspector;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::answers::Answers;
use crate::authority::Authority;
use crate::capture::Side;
use crate::captures::Captures;
use crate::event::EventKind;
use crate::udp::{domain, emit, transparent};

/// Flows at once; a datagram that would open one more is dropped.
const MAX_FLOWS: usize = 16_384;
/// Largest datagram relayed back.
const MAX_DATAGRAM: usize = 65_536;

type Key = (SocketAddr, SocketAddr);

pub(crate) struct Flows {
    table: Arc<Mutex<HashMap<Key, Arc<Flow>>>>,
    answers: Arc<Answers>,
}

/// What a flow does with the server's datagrams.
#[derive(Clone)]
pub(crate) enum Answering {
    /// Relays them as they come.
    Relay,
    /// DNS: holds an answer until its addresses are programmed, for a client whose
    /// FQDN rules learn from it (at most `bound`), then relays it.
    Dns {
        authority: Arc<dyn Authority>,
        bound: Duration,
    },
}

impl Answering {
    /// A flow that moved no datagram either way for this long is closed: 30 s, as the
    /// kernel's conntrack forgets an unanswered UDP flow. DNS exchanges are a query and
    /// its answer: 5 s while a query is unanswered (a resolver's own timeout), 1 s once
    /// every one is, so that resolvers that take a new port per lookup do not fill the
    /// table (16,384 lookups a second, where 30 s would allow 546).
    fn idle(&self, flow: &Flow) -> Duration {
        match self {
            Answering::Relay => Duration::from_secs(30),
            Answering::Dns { .. } if flow.unanswered.load(Ordering::Relaxed) > 0 => {
                Duration::from_secs(5)
            }
            Answering::Dns { .. } => Duration::from_secs(1),
        }
    }
}

/// The sensors that read a flow's datagrams (as for a TCP connection: the server's
/// groups' and, with `inspect: [Egress]`, the client's), and where their findings go.
pub(crate) struct Watch {
    pub inspector: Arc<dyn Inspector>,
    pub authority: Arc<dyn Authority>,
    pub captures: Option<Arc<Captures>>,
    /// The datagram's number, for its events.
    pub id: u64,
    /// What the datagram was read as (`dns`, `memcached`, `unknown`).
    pub protocol: String,
}

impl Watch {
    /// Reads one datagram (`from_server`: an answer) on its own, as the message it is
    /// (a finding never spans two datagrams). A finding is a sensor event with the
    /// datagram as its capture; true when a Block sensor's finding stops it.
    pub(crate) fn read(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        data: &[u8],
        from_server: bool,
    ) -> bool {
        let findings = self.inspector.stream(from_server).feed(data);
        if findings.is_empty() {
            return false;
        }
        let blocked = findings.iter().any(|f| f.block);
        let side = if from_server {
            Side::Server
        } else {
            Side::Client
        };
        let pcap = self.captures.as_ref().and_then(|c| {
            c.write("udp", self.id, "sensor", |path| {
                let d = [(side, std::time::SystemTime::now(), data)];
                crate::capture::write_datagrams(path, client, server, &d)
            })
        });
        let kind = EventKind::Sensor {
            protocol: self.protocol.clone(),
            request: None,
            findings,
            blocked,
            refusal: blocked.then(|| "dropped".to_string()),
            pcap,
        };
        emit(self.authority.as_ref(), self.id, client, server, kind);
        blocked
    }
}

struct Flow {
    up: UdpSocket,
    /// The sensors that read the server's answers: those that read the client's last
    /// datagram (None: no sensor applies).
    watch: Mutex<Option<Arc<Watch>>>,
    /// Datagrams sent less those answered (DNS: one answer a query).
    unanswered: AtomicU64,
    /// When either side last sent, in milliseconds since `born`.
    last: AtomicU64,
    born: Instant,
}

impl Flow {
    fn touch(&self) {
        let now = self.born.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

impl Flows {
    pub(crate) fn new(answers: Arc<Answers>) -> Flows {
        Flows {
            table: Arc::default(),
            answers,
        }
    }

    /// Sends `data` from `client` to `server` on their flow, opening it if needed (one
    /// that `answering` says how to answer), its answers read by `watch`'s sensors.
    /// True when the flow was opened for it.
    pub(crate) async fn send(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        data: &[u8],
        mark: u32,
        answering: impl FnOnce() -> Answering,
        watch: Option<Arc<Watch>>,
    ) -> anyhow::Result<bool> {
        let (flow, opened) = self.open(client, server, mark, answering)?;
        *flow.watch.lock().unwrap_or_else(|e| e.into_inner()) = watch;
        flow.unanswered.fetch_add(1, Ordering::Relaxed);
        flow.up.send(data).await?;
        Ok(opened)
    }

    fn open(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        mark: u32,
        answering: impl FnOnce() -> Answering,
    ) -> io::Result<(Arc<Flow>, bool)> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = table.get(&(client, server)) {
            // Under the table's lock, which the relay closing an idle flow takes too.
            f.touch();
            return Ok((f.clone(), false));
        }
        if table.len() >= MAX_FLOWS {
            return Err(io::Error::other("too many UDP flows through the proxy"));
        }
        let flow = Arc::new(Flow {
            up: upstream(client, server, mark)?,
            watch: Mutex::default(),
            unanswered: AtomicU64::new(0),
            last: AtomicU64::new(0),
            born: Instant::now(),
        });
        table.insert((client, server), flow.clone());
        tokio::spawn(relay(
            self.table.clone(),
            (client, server),
            flow.clone(),
            self.answers.clone(),
            answering(),
        ));
        Ok((flow, true))
    }
}

/// The flow's socket: the client's address, a port of the proxy's range, connected to
/// the server (so it takes datagrams from the server only).
fn upstream(client: SocketAddr, server: SocketAddr, mark: u32) -> io::Result<UdpSocket> {
    let v6 = server.is_ipv6();
    let mut last = None;
    // Then the kernel's choice, as for TCP.
    for port in crate::socket::ports(client.port()).chain([0]) {
        let s = transparent(domain(v6), v6)?;
        // A port in use must fail the bind, not be shared.
        s.set_reuse_address(false)?;
        s.set_mark(mark)?;
        let mut from = client;
        from.set_port(port);
        match s.bind(&from.into()) {
            Ok(()) => {
                s.connect(&server.into())?;
                return UdpSocket::from_std(s.into());
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port for the flow")))
}

/// Relays the server's datagrams to the client until the flow is idle, then closes it.
async fn relay(
    table: Arc<Mutex<HashMap<Key, Arc<Flow>>>>,
    key: Key,
    flow: Arc<Flow>,
    answers: Arc<Answers>,
    answering: Answering,
) {
    let (client, server) = key;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = answering
            .idle(&flow)
            .saturating_sub(flow.idle())
            .max(Duration::from_millis(10));
        match tokio::time::timeout(wait, flow.up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                flow.touch();
                let _ = flow
                    .unanswered
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_sub(1));
                let watch = (flow.watch.lock().unwrap_or_else(|e| e.into_inner())).clone();
                if watch.is_some_and(|w| w.read(client, server, &buf[..n], true)) {
                    continue;
                }
                match &answering {
                    Answering::Dns { authority, bound } if authority.learns_dns(client) => {
                        // Held on its own: the flow's next answers need not wait.
                        let (authority, bound, answers) =
                            (authority.clone(), *bound, answers.clone());
                        let msg = buf[..n].to_vec();
                        tokio::spawn(async move {
                            crate::fqdn::hold(authority.as_ref(), client, server, &msg, bound)
                                .await;
                            answer(&answers, server, client, &msg);
                        });
                    }
                    _ => answer(&answers, server, client, &buf[..n]),
                }
            }
            // An ICMP error for an earlier datagram (port unreachable): the flow goes
            // on, as the client's own socket would.
            Ok(Err(e)) => debug!(%client, %server, error = %e, "udp flow"),
            Err(_) if flow.idle() >= answering.idle(&flow) => {
                let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                // Asked again under the lock: a sender that found the flow meanwhile
                // touched it, and its datagram's answer must still be relayed.
                if flow.idle() < answering.idle(&flow) {
                    continue;
                }
                if table.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
                    table.remove(&key);
                }
                return;
            }
            Err(_) => {}
        }
    }
}

fn answer(answers: &Answers, server: SocketAddr, client: SocketAddr, data: &[u8]) {
    if let Err(e) = answers.send(server, client, data) {
        debug!(%client, %server, error = %e, "udp answer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dns_flow_lingers_only_while_a_query_is_unanswered() {
        let flow = Flow {
            up: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            watch: Mutex::default(),
            unanswered: AtomicU64::new(0),
            last: AtomicU64::new(0),
            born: Instant::now(),
        };
        let dns = Answering::Dns {
            authority: Arc::new(crate::authority::testing::Changing::default()),
            bound: Duration::from_millis(100),
        };
        assert_eq!(dns.idle(&flow), Duration::from_secs(1));
        flow.unanswered.store(2, Ordering::Relaxed);
        assert_eq!(dns.idle(&flow), Duration::from_secs(5));
        // Other protocols answer as they like: a flow lives as conntrack's does.
        assert_eq!(Answering::Relay.idle(&flow), Duration::from_secs(30));
    }
}
