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
//! The proxy runs its own tokio runtime on its own threads, in the network namespace of
//! the process that starts it (the agent enters the node's namespace before any thread
//! exists), so every socket it opens lives in the node's namespace.

pub mod authority;
pub mod capture;
mod conn;
pub mod event;
mod inspect;
mod l7;
pub mod protocol;
pub mod routing;
pub mod socket;
mod udp;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing::{debug, warn};

pub use authority::{Authority, Decision};
pub use event::{Event, EventKind};

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
    /// Where packet captures of denials go (None: no captures).
    pub capture_dir: Option<PathBuf>,
    /// Bytes of each connection kept for captures.
    pub capture_limit: usize,
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
            capture_dir: None,
            capture_limit: 64 * 1024,
        }
    }
}

/// A running proxy; dropping it stops it.
pub struct Handle {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(200));
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bulkhead-proxy")
        .enable_all()
        .build()
        .context("starting the proxy's runtime")?;
    let listeners = runtime.block_on(async {
        let v4 = socket::listen(cfg.port, false).context("IPv4 transparent listener")?;
        // A node without IPv6 still proxies IPv4.
        let v6 = match socket::listen(cfg.port, true) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!(error = %e, "no IPv6 transparent listener");
                None
            }
        };
        anyhow::Ok((v4, v6))
    })?;
    // Datagrams (DNS) arrive on the same port number, UDP.
    let datagrams = runtime.block_on(async {
        let v4 = udp::listen(cfg.port, false).context("IPv4 transparent UDP socket")?;
        let v6 = udp::listen(cfg.port, true).ok();
        anyhow::Ok([Some(v4), v6])
    })?;
    let cfg = Arc::new(cfg);
    let ids = Arc::new(AtomicU64::new(1));
    for s in datagrams.into_iter().flatten() {
        runtime.spawn(udp::serve(s, cfg.clone(), authority.clone(), ids.clone()));
    }
    for l in [Some(listeners.0), listeners.1].into_iter().flatten() {
        runtime.spawn(serve(
            l,
            cfg.clone(),
            authority.clone(),
            protocols.clone(),
            ids.clone(),
        ));
    }
    Ok(Handle {
        runtime: Some(runtime),
    })
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
