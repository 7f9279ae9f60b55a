//! One diverted connection, from accept to close.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::authority::Authority;
use crate::capture::{Recorder, Side};
use crate::event::{Event, EventKind};
use crate::{Config, socket};

/// What one connection knows about itself, for events.
pub(crate) struct Ctx<'a> {
    pub id: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub authority: &'a dyn Authority,
    pub cfg: &'a Config,
    pub started: Instant,
    pub recorder: Recorder,
    pub up: u64,
    pub down: u64,
    pub requests: u64,
    /// The connection's flow record waits for its protocol: it is reported with the
    /// protocol decision rather than the connection's (see [`crate::authority::Decision::detect`]).
    pub detect: bool,
    /// An event worth keeping was reported: the connection's end is kept too.
    pub noteworthy: std::cell::Cell<bool>,
    /// The client a PROXY protocol header named, once detection read one.
    pub forwarded_for: Option<String>,
    /// The sensors that read the connection, if any (they also mask what their events
    /// keep: [`Ctx::redacted`]).
    pub inspector: Option<std::sync::Arc<dyn bulkhead_l7::Inspector>>,
}

impl Ctx<'_> {
    /// A request line to keep in an event of a connection sensors read, with what their
    /// DLP finds in it masked (their findings are).
    pub fn redacted(&self, request: &str) -> String {
        match &self.inspector {
            Some(i) => i.redact(request),
            None => request.to_string(),
        }
    }

    /// [`Ctx::redacted`] for every string of a detection's detail (an HTTP request's
    /// path and query, say), which the connection's record keeps.
    pub fn redacted_detail(&self, detail: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        let Some(i) = &self.inspector else {
            return detail;
        };
        fn walk(v: Value, i: &dyn bulkhead_l7::Inspector) -> Value {
            match v {
                Value::String(s) => Value::String(i.redact(&s)),
                Value::Array(a) => Value::Array(a.into_iter().map(|x| walk(x, i)).collect()),
                Value::Object(o) => {
                    Value::Object(o.into_iter().map(|(k, x)| (k, walk(x, i))).collect())
                }
                other => other,
            }
        }
        walk(detail, i.as_ref())
    }

    pub fn emit(&self, kind: EventKind) {
        if kind.noteworthy() {
            self.noteworthy.set(true);
        }
        self.authority.record(Event {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            conn: self.id,
            client: self.client,
            server: self.server,
            forwarded_for: self.forwarded_for.clone(),
            kind,
        });
    }

    pub fn closed(&self, reason: Option<String>) {
        self.emit(EventKind::Closed {
            bytes_up: self.up,
            bytes_down: self.down,
            requests: self.requests,
            duration_ms: self.started.elapsed().as_secs_f64() * 1e3,
            reason,
            keep: self.noteworthy.get(),
        });
    }

    /// Write the capture of this connection for an event; None if captures are off or
    /// the file cannot be written (the event is still reported).
    pub fn capture(&self, what: &str, closer: Option<Side>) -> Option<std::path::PathBuf> {
        self.cfg
            .captures
            .as_ref()?
            .write("conn", self.id, what, |path| {
                self.recorder
                    .write_pcap(path, self.client, self.server, closer)
            })
    }
}

pub(crate) async fn handle(
    id: u64,
    client_stream: TcpStream,
    client: SocketAddr,
    cfg: &Config,
    authority: &dyn Authority,
    protocols: &dyn crate::protocol::Protocols,
) -> Result<()> {
    // TPROXY keeps the original destination as the accepted socket's local address.
    // (Nagle is off already: accepted sockets inherit the listener's TCP_NODELAY.)
    let server = client_stream.local_addr()?;
    let mut cx = Ctx {
        id,
        client,
        server,
        authority,
        cfg,
        started: Instant::now(),
        recorder: Recorder::new(cfg.capture_limit),
        up: 0,
        down: 0,
        requests: 0,
        detect: false,
        noteworthy: Default::default(),
        forwarded_for: None,
        inspector: None,
    };
    let mut d = authority.decide(client, server, None);
    if !d.allowed {
        cx.emit(EventKind::Connection { decision: d });
        socket::reset(client_stream);
        cx.closed(Some("denied".into()));
        return Ok(());
    }
    let connected = timeout(
        cfg.connect_timeout,
        socket::connect_as(client, server, cfg.upstream_mark),
    )
    .await;
    let failed = match &connected {
        Ok(Ok(_)) => None,
        // The server refused or is unreachable: tell the client the same way.
        Ok(Err(e)) => Some(format!("connect: {e}")),
        Err(_) => Some("connect: timed out".to_string()),
    };
    if failed.is_some() {
        // No protocol will be detected: the connection's record is this one.
        d.detect = false;
    }
    let inspector = authority.inspector(client, server);
    cx.inspector = inspector.clone();
    // FQDN egress: DNS over TCP of a client whose answers teach the agent is read.
    let learn_dns = server.port() == 53 && authority.learns_dns(client);
    // Only the protocol is wanted (learning): detected as the bytes pass, and no event
    // but the flow record.
    d.quiet = d.detect && !d.needs_l7 && inspector.is_none() && !learn_dns;
    // Reported once the server answered, so that a connection whose protocol is to be
    // detected for its record is recorded either here (it failed) or at detection.
    cx.detect = d.detect;
    cx.emit(EventKind::Connection {
        decision: d.clone(),
    });
    let upstream = match connected {
        Ok(Ok(s)) => s,
        _ => {
            socket::reset(client_stream);
            cx.closed(failed);
            return Ok(());
        }
    };
    if d.quiet {
        // The connection's end is not an event either.
        let r = crate::discover::serve(&mut cx, client_stream, upstream, protocols).await;
        if let Err(e) = r {
            debug!(conn = cx.id, error = %format!("{e:#}"), "discover connection");
        }
        return Ok(());
    }
    if !d.needs_l7 && inspector.is_none() && !learn_dns {
        // Diverted because some L7 rule's L4 part matched, but the verdict does not
        // depend on requests after all (an earlier rule decided): plain relay.
        let r = relay(&mut cx, client_stream, upstream, Vec::new()).await;
        cx.closed(r.err().map(|e| e.to_string()));
        return Ok(());
    }
    let r = crate::l7::serve(&mut cx, client_stream, upstream, protocols, inspector).await;
    cx.closed(r.err().map(|e| format!("{e:#}")));
    Ok(())
}

/// Copy both ways until both sides are done (half-closes forwarded), first sending
/// `pending` (bytes already read from the client) to the server.
pub(crate) async fn relay(
    cx: &mut Ctx<'_>,
    mut client: TcpStream,
    mut server: TcpStream,
    pending: Vec<u8>,
) -> Result<()> {
    if !pending.is_empty() {
        server.write_all(&pending).await.context("to the server")?;
    }
    let idle = cx.cfg.idle_timeout;
    let spliced = tokio::select! {
        r = crate::idle::splice(&mut client, &mut server, idle) => Ok(r),
        why = policy_changed(cx.authority, cx.client, cx.server) => Err(why),
    };
    match spliced {
        Ok(Ok(Some((up, down)))) => {
            cx.up += up;
            cx.down += down;
            Ok(())
        }
        Ok(Ok(None)) => anyhow::bail!("idle for {idle:?}"),
        Ok(Err(e)) => Err(e.into()),
        Err(why) => {
            crate::socket::reset(client);
            crate::socket::reset(server);
            anyhow::bail!("{why}")
        }
    }
}

/// How often a relayed connection looks whether the policy changed.
const POLICY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Completes when a policy change refuses the relayed connection `client -> server`,
/// or makes its requests matter (a learning connection whose group went to Protect
/// with rules on requests, a rule on requests added for its port): a relay decides
/// nothing, so the connection is closed and its client's next one is decided. Before,
/// it went on for as long as it lived.
async fn policy_changed(
    authority: &dyn Authority,
    client: SocketAddr,
    server: SocketAddr,
) -> String {
    let mut seen = authority.generation();
    loop {
        tokio::time::sleep(POLICY_CHECK).await;
        let now = authority.generation();
        if now == seen {
            continue;
        }
        seen = now;
        let d = authority.decide(client, server, None);
        if !d.allowed {
            return format!("refused after a policy change: {}", d.decided_by);
        }
        if d.needs_l7 {
            return "closed after a policy change: its requests are now decided".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::testing::Changing;
    use std::sync::atomic::Ordering;

    /// A relayed connection goes on while changes leave it alone, and ends once one
    /// refuses it or makes its requests matter (before, it went on for as long as it
    /// lived, deciding nothing).
    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_when_a_policy_change_concerns_it() {
        let (c, s): (SocketAddr, SocketAddr) = (
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:6379".parse().unwrap(),
        );
        for (refused, needs_l7) in [(true, false), (false, true)] {
            let a = Changing::default();
            let watch = policy_changed(&a, c, s);
            tokio::pin!(watch);
            // An unrelated change: still relayed.
            a.generation.store(1, Ordering::Relaxed);
            let quiet = tokio::time::timeout(POLICY_CHECK * 3, &mut watch).await;
            assert!(quiet.is_err());
            a.refused.store(refused, Ordering::Relaxed);
            a.needs_l7.store(needs_l7, Ordering::Relaxed);
            a.generation.store(2, Ordering::Relaxed);
            let why = tokio::time::timeout(POLICY_CHECK * 3, &mut watch).await;
            assert!(why.is_ok(), "refused {refused} needs_l7 {needs_l7}");
        }
    }
}
