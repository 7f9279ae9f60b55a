//! UDP flows through the proxy, for protocols other than DNS (memcached, CLDAP, ...).
//!
//! A client's allowed datagrams to one server go out on one socket, bound transparently
//! to the client's address (a port of the proxy's range: `socket::ports`), so the
//! server sees the client and one source port for the whole flow, as it would without
//! the proxy. Every datagram the server sends back on it (a memcached value split over
//! several, a CLDAP entry and its result) is relayed to the client from the server's
//! address, until neither side has sent anything for [`IDLE`]. The table is bounded.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tracing::debug;

use crate::udp::{domain, send_from, transparent};

/// A flow that moved no datagram either way for this long is closed (the kernel's
/// conntrack forgets an unanswered UDP flow after 30 s too).
const IDLE: Duration = Duration::from_secs(30);
/// Flows at once; a datagram that would open one more is dropped.
const MAX_FLOWS: usize = 16_384;
/// Largest datagram relayed back.
const MAX_DATAGRAM: usize = 65_536;

type Key = (SocketAddr, SocketAddr);

#[derive(Default)]
pub(crate) struct Flows {
    table: Arc<Mutex<HashMap<Key, Arc<Flow>>>>,
}

struct Flow {
    up: UdpSocket,
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
    /// Sends `data` from `client` to `server` on their flow, opening it if needed.
    pub(crate) async fn send(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        data: &[u8],
        mark: u32,
    ) -> anyhow::Result<()> {
        let flow = self.open(client, server, mark)?;
        flow.touch();
        flow.up.send(data).await?;
        Ok(())
    }

    fn open(&self, client: SocketAddr, server: SocketAddr, mark: u32) -> io::Result<Arc<Flow>> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = table.get(&(client, server)) {
            return Ok(f.clone());
        }
        if table.len() >= MAX_FLOWS {
            return Err(io::Error::other("too many UDP flows through the proxy"));
        }
        let flow = Arc::new(Flow {
            up: upstream(client, server, mark)?,
            last: AtomicU64::new(0),
            born: Instant::now(),
        });
        table.insert((client, server), flow.clone());
        tokio::spawn(relay(
            self.table.clone(),
            (client, server),
            flow.clone(),
            mark,
        ));
        Ok(flow)
    }
}

/// The flow's socket: the client's address, a port of the proxy's range, connected to
/// the server (so it takes datagrams from the server only).
pub(crate) fn upstream(client: SocketAddr, server: SocketAddr, mark: u32) -> io::Result<UdpSocket> {
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
async fn relay(table: Arc<Mutex<HashMap<Key, Arc<Flow>>>>, key: Key, flow: Arc<Flow>, mark: u32) {
    let (client, server) = key;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = IDLE
            .saturating_sub(flow.idle())
            .max(Duration::from_millis(10));
        match tokio::time::timeout(wait, flow.up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                flow.touch();
                if let Err(e) = send_from(server, client, &buf[..n], mark) {
                    debug!(%client, %server, error = %e, "udp answer");
                }
            }
            // An ICMP error for an earlier datagram (port unreachable): the flow goes
            // on, as the client's own socket would.
            Ok(Err(e)) => debug!(%client, %server, error = %e, "udp flow"),
            Err(_) if flow.idle() >= IDLE => break,
            Err(_) => {}
        }
    }
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    if table.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flow)) {
        table.remove(&key);
    }
}
