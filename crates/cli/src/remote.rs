//! The CLI against a remote `bulkhead serve`: with `--server URL` (or `BULKHEAD_SERVER`)
//! `flows`, `events`, `explain` and `analyze matrix` ask the server's API instead of
//! reading files, and print the same output.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bulkhead_record::FlowRecord;
use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::{Analyze, Command, FamilyArg, Format};
use crate::render::emit;

#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// A bulkhead server (`bulkhead serve`) to ask instead of reading local files:
    /// flows, events, explain and analyze matrix. e.g. https://bulkhead.example:8443
    #[arg(long, global = true, env = "BULKHEAD_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The file holding the API token (first line). Else the token is $BULKHEAD_TOKEN.
    /// `bulkhead serve` reads the token it requires from here too.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the server's TLS certificate (e.g. its own
    /// self-signed certificate). Default: the Mozilla roots.
    #[arg(long, global = true, env = "BULKHEAD_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// A connection to a server: base URL, token, HTTP client.
pub struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(a: &RemoteArgs) -> Result<Option<Client>> {
        let Some(server) = a.server.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let token = match (&a.token_file, std::env::var("BULKHEAD_TOKEN")) {
            (Some(f), _) => bulkhead_server::auth::read_token(f)?,
            (None, Ok(t)) if !t.trim().is_empty() => t.trim().to_string(),
            _ => bail!("--server needs a token: --token-file FILE or BULKHEAD_TOKEN"),
        };
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &a.ca_cert {
            let pem = std::fs::read(ca).with_context(|| ca.display().to_string())?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>();
            if certs.is_empty() {
                bail!("{}: no certificate in it", ca.display());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Some(Client {
            base: server.trim_end_matches('/').to_string(),
            auth: format!("Bearer {token}"),
            agent,
        }))
    }

    /// GET `path` with query parameters (the ones that are Some): the answer, once its
    /// status says success (else the server's error, with every diagnostic it gave).
    fn call(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url).header("Authorization", &self.auth);
        for (k, v) in query {
            if let Some(v) = v {
                req = req.query(*k, v);
            }
        }
        let mut resp = req.call().map_err(|e| anyhow!("{url}: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| anyhow!("{url}: {e}"))?;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
        let mut msg = v["error"].as_str().unwrap_or(&body).to_string();
        for d in v["diagnostics"].as_array().into_iter().flatten() {
            msg.push_str(&format!(
                "\n{}:{}:{}: {}{}",
                d["file"].as_str().unwrap_or(""),
                d["line"],
                d["column"],
                d["path"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("{p}: "))
                    .unwrap_or_default(),
                d["message"].as_str().unwrap_or("")
            ));
        }
        bail!("{url}: {status}: {msg}")
    }

    /// GET `path` with query parameters (the ones that are Some); the body as text.
    pub fn get_text(&self, path: &str, query: &[(&str, Option<String>)]) -> Result<String> {
        self.call(path, query)?
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| anyhow!("{}{path}: {e}", self.base))
    }

    /// GET a stream of JSON lines; `each` gets every line as it arrives and says whether
    /// to go on.
    pub fn follow_lines(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
        each: &mut dyn FnMut(&str) -> Result<bool>,
    ) -> Result<()> {
        use std::io::BufRead;
        let resp = self.call(path, query)?;
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| anyhow!("{}{path}: {e}", self.base))?;
            if !each(&line)? {
                break;
            }
        }
        Ok(())
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> Result<T> {
        let body = self.get_text(path, query)?;
        serde_json::from_str(&body).with_context(|| format!("{path}: unexpected answer"))
    }
}

/// Run `command` against the server, or None when no server is configured.
pub fn run(r: &RemoteArgs, command: &Command) -> Result<Option<u8>> {
    let Some(c) = Client::new(r)? else {
        return Ok(None);
    };
    let some = |s: &Option<String>| s.clone();
    let code = match command {
        Command::Flows(a) => {
            if a.state_dir.is_some() || a.lab.is_some() {
                bail!(
                    "--server asks the server about the agents it serves: drop --state-dir/--lab"
                );
            }
            let query = [
                ("workload", some(&a.workload)),
                ("namespace", some(&a.namespace)),
                ("verdict", a.verdict.map(|v| v.as_str().to_string())),
                ("since", some(&a.since)),
                ("limit", a.limit.map(|n| n.to_string())),
            ];
            if a.follow {
                // One streamed answer: the backlog, then each record as it is committed.
                let Some(columns) = crate::flows::print_all(a.format, &[])? else {
                    return Ok(Some(0));
                };
                c.follow_lines("/api/v1/flows/follow", &query, &mut |l| {
                    let r: FlowRecord = serde_json::from_str(l)
                        .with_context(|| format!("/api/v1/flows/follow: unexpected line {l}"))?;
                    let mut out = std::io::stdout().lock();
                    Ok(
                        crate::flows::print(&mut out, a.format, &columns, &r).is_ok()
                            && std::io::Write::flush(&mut out).is_ok(),
                    )
                })?;
                return Ok(Some(0));
            }
            let records: Vec<FlowRecord> = c.get("/api/v1/flows", &query)?;
            crate::flows::print_all(a.format, &records)?;
            0
        }
        Command::Events(a) => {
            if a.state_dir.is_some() || a.lab.is_some() {
                bail!(
                    "--server asks the server about the agents it serves: drop --state-dir/--lab"
                );
            }
            let query = [
                ("all", a.all.then(|| "true".to_string())),
                ("workload", some(&a.workload)),
                ("namespace", some(&a.namespace)),
                ("kind", some(&a.kind)),
                ("since", some(&a.since)),
                ("limit", a.limit.map(|n| n.to_string())),
            ];
            if a.follow {
                // One streamed answer: the backlog, then each event as it is committed.
                let Some(columns) = crate::events::print_all(a.format, &[])? else {
                    return Ok(Some(0));
                };
                c.follow_lines("/api/v1/events/follow", &query, &mut |l| {
                    let e: Value = serde_json::from_str(l)
                        .with_context(|| format!("/api/v1/events/follow: unexpected line {l}"))?;
                    Ok(crate::events::print_each(a.format, &columns, &[e]))
                })?;
                return Ok(Some(0));
            }
            let events: Vec<Value> = c.get("/api/v1/events", &query)?;
            crate::events::print_all(a.format, &events)?;
            0
        }
        Command::Explain(a) => {
            let q = [
                ("src", Some(a.src.clone())),
                ("dst", Some(a.dst.clone())),
                ("service", Some(a.service.clone())),
                ("request", a.request.clone()),
            ];
            let json = c.get_text("/api/v1/explain", &q)?;
            let x: Value = serde_json::from_str(&json).context("the server's explanation")?;
            let allowed = x["allowed"]
                .as_bool()
                .ok_or_else(|| anyhow!("the server's explanation has no verdict"))?;
            // Printed as the server wrote it: the same text, field order included.
            let other = match a.output.format {
                Format::Json => None,
                Format::Yaml => Some("yaml"),
                Format::Table => Some("text"),
            };
            match other {
                None => print!("{json}"),
                Some(f) => {
                    let mut q = q.to_vec();
                    q.push(("format", Some(f.into())));
                    print!("{}", c.get_text("/api/v1/explain", &q)?);
                }
            }
            if a.exit_code && !allowed {
                crate::NEGATIVE
            } else {
                0
            }
        }
        Command::Analyze(Analyze::Matrix(a)) => {
            let m: bulkhead_analyze::matrix::Matrix = c.get(
                "/api/v1/matrix",
                &[
                    (
                        "probes",
                        (!a.probes.probes.is_empty()).then(|| a.probes.probes.join(",")),
                    ),
                    (
                        "family",
                        Some(
                            match a.probes.family {
                                FamilyArg::Ipv4 => "ipv4",
                                FamilyArg::Ipv6 => "ipv6",
                            }
                            .to_string(),
                        ),
                    ),
                ],
            )?;
            emit(a.output.format, &m, || m.to_table())?;
            0
        }
        Command::Serve(_) => return Ok(None),
        _ => bail!(
            "this command does not talk to a server; with --server (or BULKHEAD_SERVER) only flows, events, explain and analyze matrix do"
        ),
    };
    Ok(Some(code))
}
