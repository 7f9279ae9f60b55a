//! The node's transparent L7 proxy.
//!
//! The agent's `divert` chain sends connections that rules with `app:` or L7 conditions
//! may allow here (TPROXY, see `bulkhead-dataplane`). For each one the proxy:
//! 1. asks the [`Authority`] (the agent, i.e. the shared engine) for the connection's
//!    verdict; denied: the client gets a TCP reset, as from the kernel;
//! 2. connects to the original destination *as the client* (transparent bind), so the
//!    server sees the real client address;
//! 3. detects the application protocol from the first bytes of either side, behind a
//!    byte budget and a timeout, and asks again with the protocol known (a rule that
//!    requires `app: redis` refuses anything else);
//! 4. when rules look at requests, parses each request and asks once more per request:
//!    denied requests get the protocol's own refusal and never reach the server;
//! 5. reports everything as [`Event`]s, with a packet capture for each denial.
//!
//! The proxy runs its own tokio runtimes on its own threads (one single-threaded runtime
//! and listener set per thread), in the network namespace of
//! the process that starts it (the agent enters the node's namespace before any thread
//! exists), so every socket it opens lives in the node's namespace.

mod answers;
pub mod authority;
mod buf;
pub mod capture;
pub mod captures;
mod conn;
mod discover;
pub mod event;
mod flows;
mod fqdn;
mod idle;
mod inspect;
mod l7;
pub mod protocol;
pub mod routing;
pub mod socket;
mod spin;
mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing::{debug, warn};

pub use authority::{Authority, Decision};
/// What a DNS answer teaches (FQDN egress), and the channel that confirms it is
/// programmed: for implementations of [`Authority::dns_answers`].
pub use bulkhead_detect::dns::Answers as DnsAnswers;
pub use event::{Event, EventKind};
pub use tokio::sync::oneshot;

/// How the proxy behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// TPROXY target port (IPv4 and IPv6 listeners).
    pub port: u16,
    /// `SO_MARK` of the proxy's connections to servers.
    pub upstream_mark: u32,
    /// How long detection waits for the first bytes (from either side).
    pub detect_timeout: Duration,
    /// Bytes detection may buffer per direction before it settles for `unknown`.
    pub detect_limit: usize,
    /// Connecting to the server.
    pub connect_timeout: Duration,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// Where packet captures of denials go, within its budget (None: no captures).
    pub captures: Option<Arc<captures::Captures>>,
    /// Bytes of each connection kept for captures.
    pub capture_limit: usize,
    /// How long a DNS answer is held for the agent to program the addresses it gives
    /// (FQDN egress) before it is relayed anyway.
    pub dns_hold: Duration,
    /// How long a proxy thread keeps polling after it wakes before it sleeps again
    /// (zero: never; see `spin.rs`).
    pub busy_poll: Duration,
}

/// The engines behind detection and request parsing.
pub type SharedProtocols = Arc<dyn protocol::Protocols>;

/// Detection and sessions as bulkhead ships them.
pub fn builtin_protocols() -> SharedProtocols {
    Arc::new(protocol::Builtin {
        limit: Config::default().detect_limit,
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 15001,
            upstream_mark: 0,
            detect_timeout: Duration::from_secs(3),
            detect_limit: 16 * 1024,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            captures: None,
            capture_limit: 64 * 1024,
            dns_hold: Duration::from_millis(100),
            busy_poll: Duration::ZERO,
        }
    }
}

/// Threads serving connections. Each runs its own single-threaded tokio runtime with
/// its own listeners (`SO_REUSEPORT`): a connection lives on the thread that accepted it,
/// so relaying a request never wakes another thread (a multi-threaded runtime's work
/// stealing did, on every read, which costs latency on small nodes).
const THREADS: usize = 2;

struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A running proxy; dropping it stops it.
pub struct Handle {
    workers: Vec<Worker>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Start listening (IPv4 and IPv6) and serving. Errors if the listeners cannot be
/// opened (port taken, no CAP_NET_ADMIN for `IP_TRANSPARENT`).
pub fn start(
    cfg: Config,
    authority: Arc<dyn Authority>,
    protocols: SharedProtocols,
) -> Result<Handle> {
    // Every listener is opened here, in the caller's network namespace, before any
    // thread exists: failing to listen fails the start.
    let mut sets = Vec::new();
    for k in 0..THREADS {
        let v4 = socket::listen_std(cfg.port, false, true).context("IPv4 transparent listener")?;
        // A node without IPv6 still proxies IPv4.
        let v6 = match socket::listen_std(cfg.port, true, true) {
            Ok(l) => Some(l),
            Err(e) => {
                if k == 0 {
                    warn!(error = %e, "no IPv6 transparent listener");
                }
                None
            }
        };
        sets.push((v4, v6));
    }
    // Datagrams arrive on the same port number, UDP; the first thread serves them.
    let mut datagrams = vec![udp::listen(cfg.port, false).context("IPv4 transparent UDP socket")?];
    datagrams.extend(udp::listen(cfg.port, true).ok());
    let cfg = Arc::new(cfg);
    let ids = Arc::new(AtomicU64::new(1));
    let mut workers = Vec::new();
    for (k, (v4, v6)) in sets.into_iter().enumerate() {
        let datagrams = if k == 0 {
            std::mem::take(&mut datagrams)
        } else {
            Vec::new()
        };
        let spin = (!cfg.busy_poll.is_zero()).then(|| spin::Spin::new(cfg.busy_poll));
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        if let Some(s) = &spin {
            builder.on_thread_unpark(s.hook());
        }
        let runtime = builder.build().context("starting the proxy's runtime")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (cfg, authority, protocols, ids) = (
            cfg.clone(),
            authority.clone(),
            protocols.clone(),
            ids.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("bulkhead-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Some(s) = spin {
                        tokio::spawn(s.run());
                    }
                    for l in [Some(v4), v6].into_iter().flatten() {
                        match TcpListener::from_std(l) {
                            Ok(l) => {
                                tokio::spawn(serve(
                                    l,
                                    cfg.clone(),
                                    authority.clone(),
                                    protocols.clone(),
                                    ids.clone(),
                                ));
                            }
                            Err(e) => warn!(error = %e, "proxy listener"),
                        }
                    }
                    let shared = Arc::new(udp::Shared::new(cfg.clone(), authority.clone()));
                    for d in datagrams {
                        match tokio::net::UdpSocket::from_std(d) {
                            Ok(d) => {
                                tokio::spawn(udp::serve(d, shared.clone(), ids.clone()));
                            }
                            Err(e) => warn!(error = %e, "proxy UDP socket"),
                        }
                    }
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })
            .context("starting a proxy thread")?;
        workers.push(Worker {
            stop: Some(stop),
            thread: Some(thread),
        });
    }
    Ok(Handle { workers })
}

async fn serve(
    l: TcpListener,
    cfg: Arc<Config>,
    authority: Arc<dyn Authority>,
    protocols: SharedProtocols,
    ids: Arc<AtomicU64>,
) {
    loop {
        match l.accept().await {
            Ok((stream, client)) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let (cfg, authority, protocols) =
                    (cfg.clone(), authority.clone(), protocols.clone());
                tokio::spawn(async move {
                    let r = conn::handle(
                        id,
                        stream,
                        client,
                        &cfg,
                        authority.as_ref(),
                        protocols.as_ref(),
                    )
                    .await;
                    if let Err(e) = r {
                        debug!(conn = id, error = %e, "connection ended with an error");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// For the unit tests that need CAP_NET_ADMIN (transparent sockets, marks): call when
/// one cannot run here, then return. It skips, except under
/// `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), where it fails.
#[cfg(test)]
pub(crate) fn unprivileged(why: impl std::fmt::Display) {
    assert!(
        std::env::var("BULKHEAD_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "needs root: {why}"
    );
}
