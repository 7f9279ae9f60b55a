//! `bulkhead serve`: the REST API, OpenAPI document and `/metrics` (`bulkhead-server`)
//! over the policy files, the inventory and the agents' state directories, and the web
//! UI (`bulkhead-ui`) at `/ui/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// An agent's state directory (status.json, latency.jsonl, store.db, captures/).
    /// Repeatable.
    #[arg(long = "state", visible_alias = "state-dir", value_name = "DIR")]
    pub state: Vec<PathBuf>,
    /// Every agent of this lab (`bulkhead lab up --name NAME`).
    #[arg(long, value_name = "NAME")]
    pub lab: Option<String>,
    /// Policy files or directories, as the agents are given them. Changes made through
    /// the API are written into the first directory. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub policy: Vec<PathBuf>,
    /// Inventory files or directories (default: read it from -f).
    #[arg(long, value_name = "FILE|DIR")]
    pub inventory: Vec<PathBuf>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (the token then crosses the
    /// network in the clear).
    #[arg(long)]
    pub allow_plain_http: bool,
    /// Move a group along Discover -> Monitor -> Protect once its workloads have had no
    /// new conversation for this long in its current mode (24h, 30m). Default: only by
    /// command (`bulkhead group mode`, the API, the UI).
    #[arg(long, value_name = "DURATION")]
    pub promote_after: Option<String>,
}

pub fn run(a: ServeArgs, remote: &crate::remote::RemoteArgs) -> Result<u8> {
    let token = match (&remote.token_file, std::env::var("BULKHEAD_TOKEN")) {
        (Some(f), _) => bulkhead_server::auth::read_token(f)?,
        (None, Ok(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => bail!("give --token-file FILE (or BULKHEAD_TOKEN): every request must carry it"),
    };
    let mut state_dirs = a.state.clone();
    if let Some(lab) = &a.lab {
        state_dirs.extend(crate::flows::state_dirs(None, Some(lab))?);
    }
    let config = bulkhead_server::Config {
        state_dirs,
        policy: a.policy,
        inventory: a.inventory,
        recursive: a.recursive,
        token,
        promote_after: a
            .promote_after
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
            .context("--promote-after")?,
    };
    let listen = bulkhead_server::Listen {
        addr: a.listen,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(bulkhead_server::tls::TlsFiles { cert, key }),
            _ => None,
        },
        allow_plain_http: a.allow_plain_http,
    };
    // The web UI next to the API, outside the token check: the page holds no data and
    // every API call it makes carries the token.
    bulkhead_server::run_blocking(config, listen, |api| api.merge(bulkhead_ui::router()))?;
    Ok(0)
}
