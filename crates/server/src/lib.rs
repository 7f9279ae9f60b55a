//! bulkhead-server: the REST API over what the `bulkhead` CLI works with (the policy
//! files, the inventory, the agents' state directories and stores), its OpenAPI document,
//! and Prometheus `/metrics`.
//!
//! Handlers are thin: every answer is computed by the library crates (`bulkhead-policy`
//! decides, `bulkhead-analyze` analyzes, `bulkhead-store` answers record queries,
//! `bulkhead-learn` learns and replays). Policy changes are written the way a user edits
//! files: validated as a whole set first, then written atomically (temporary file and
//! rename) into the policy directory the agents watch. Nothing else is changed.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod promote;
pub mod routes;
pub mod stores;
pub mod tls;
pub mod workspace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use routes::RouteTable;

/// What the server serves.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Agent state directories (each with `status.json`, `latency.jsonl`, `store.db`,
    /// `captures/`).
    pub state_dirs: Vec<PathBuf>,
    /// Policy files and directories (`-f`). Written policies go to the first directory.
    pub policy: Vec<PathBuf>,
    /// Inventory files and directories; empty: the inventory is read from `policy`.
    pub inventory: Vec<PathBuf>,
    /// Read directories recursively.
    pub recursive: bool,
    /// The bearer token every request but `/healthz` must carry.
    pub token: String,
    /// Move quiet groups along Discover -> Monitor -> Protect after this long without a
    /// new conversation (see [`promote`]); None: only by command.
    pub promote_after: Option<std::time::Duration>,
}

/// Shared by every handler.
pub struct AppState {
    pub config: Config,
    pub workspace: workspace::Workspace,
    pub metrics: metrics::Metrics,
    pub stores: stores::Stores,
}

/// The application: every route, behind token authentication.
pub fn app(config: Config) -> Result<(Router, RouteTable)> {
    Ok(routes::router(state(config)?))
}

/// The state every handler shares.
pub fn state(config: Config) -> Result<Arc<AppState>> {
    if config.token.trim().is_empty() {
        bail!("an empty token: give a token file with a secret in it");
    }
    Ok(Arc::new(AppState {
        workspace: workspace::Workspace::new(&config),
        metrics: metrics::Metrics::default(),
        stores: stores::Stores::default(),
        config,
    }))
}

/// Where and how to listen.
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<tls::TlsFiles>,
    /// Plain HTTP on an address other than loopback.
    pub allow_plain_http: bool,
}

/// Refuse plain HTTP anywhere but on loopback unless explicitly allowed: the token would
/// cross the network in the clear.
pub fn check_listen(l: &Listen) -> Result<()> {
    if l.tls.is_none() && !l.addr.ip().is_loopback() && !l.allow_plain_http {
        bail!(
            "{}: plain HTTP is served only on loopback; give --tls-cert and --tls-key (or --allow-plain-http)",
            l.addr
        );
    }
    Ok(())
}

/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve `router` on `listener` until the process ends: HTTP/1.1 and HTTP/2, over TLS
/// when `tls` is given.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<TlsAcceptor>) -> Result<()> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                // A client that connects and never finishes the handshake does not hold
                // a task forever.
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                        .await
                        .unwrap_or_else(|_| Err(std::io::Error::other("handshake timed out")))
                    {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    }
                }
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Bind, check, load TLS, and serve: what `bulkhead serve` runs.
pub async fn run(config: Config, listen: Listen) -> Result<()> {
    run_with(config, listen, |api| api).await
}

/// [`run`], with more routes mounted next to the API (`mount` gets the API router, token
/// check included, and returns what is served): `bulkhead serve` mounts the web UI.
pub async fn run_with(
    config: Config,
    listen: Listen,
    mount: impl FnOnce(Router) -> Router,
) -> Result<()> {
    check_listen(&listen)?;
    let tls = listen.tls.as_ref().map(tls::acceptor).transpose()?;
    let state = state(config)?;
    if let Some(quiet) = state.config.promote_after {
        tokio::spawn(promote::run(state.clone(), quiet));
    }
    let (router, _) = routes::router(state);
    let router = mount(router);
    let listener = TcpListener::bind(listen.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "serving");
    eprintln!(
        "bulkhead: serving the API on {}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    serve(listener, router, tls).await
}

/// [`run_with`] on its own multi-threaded runtime, for a synchronous caller (the CLI).
pub fn run_blocking(
    config: Config,
    listen: Listen,
    mount: impl FnOnce(Router) -> Router,
) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_with(config, listen, mount))
}
