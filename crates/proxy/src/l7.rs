//! The layer-7 part of a connection: detect its protocol, decide on it, then enforce
//! request by request.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use bulkhead_l7::{Finding, Inspector};
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::authority::{Decision, Stage};
use crate::buf::Buf;
use crate::capture::Side;
use crate::conn::{Ctx, relay};
use crate::event::EventKind;
use crate::protocol::{Detection, Output, Protocols, Verdict};
use crate::socket;

pub(crate) async fn serve(
    cx: &mut Ctx<'_>,
    mut client: TcpStream,
    mut server: TcpStream,
    protocols: &dyn Protocols,
    inspector: Option<Arc<dyn Inspector>>,
) -> Result<()> {
    // 1. Detection: read whichever side speaks first (MySQL, SSH and SMTP servers do),
    //    holding the bytes until the protocol is allowed.
    let mut det = protocols.detector();
    let deadline = tokio::time::Instant::now() + cx.cfg.detect_timeout;
    let (mut held_c, mut held_s) = (Vec::new(), Vec::new());
    let (mut cbuf, mut sbuf) = (Buf::new(), Buf::new());
    // When the first byte came: from then on bytes are held (the proxy's latency).
    let mut first: Option<std::time::Instant> = None;
    // HTTP/2 with prior knowledge is gRPC if its first request's HEADERS says so, and a
    // client may send its preface, then wait for the server's SETTINGS before any request
    // (grpcio does). So once the client's preface is in, and the connection may open
    // whichever of the two it is (`h2_verdict`), the server's leading SETTINGS (numbers
    // only) are relayed (`relayed` bytes of `held_s`) while the client's bytes stay held,
    // until its first request is whole or the timeout or byte budget ends the wait (then
    // http2). A refused connection gets nothing, and the session starts at a frame
    // boundary of the server's bytes, where one that never saw the SETTINGS acts as one
    // that did. Deciding http2 at the preface and upgrading the record to gRPC when the
    // session sees the first call would instead hold the connection's one record (the
    // Protocol event) until then, and tie detection to the request loop.
    let mut relayed = 0;
    let mut prefix_sent = 0;
    let mut h2_open: Option<bool> = None;
    let detection = loop {
        if held_c.len() + held_s.len() >= cx.cfg.detect_limit {
            break det.finish();
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, client.read(&mut cbuf)) => match r {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break det.finish(),
                Ok(Ok(n)) => {
                    first.get_or_insert_with(std::time::Instant::now);
                    cx.recorder.record(Side::Client, &cbuf[..n]);
                    held_c.extend_from_slice(&cbuf[..n]);
                    match det.feed(true, &cbuf[..n]) {
                        Detection::NeedMore => {}
                        d => break d,
                    }
                }
            },
            r = tokio::time::timeout_at(deadline, server.read(&mut sbuf)) => match r {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break det.finish(),
                Ok(Ok(n)) => {
                    first.get_or_insert_with(std::time::Instant::now);
                    cx.recorder.record(Side::Server, &sbuf[..n]);
                    held_s.extend_from_slice(&sbuf[..n]);
                    match det.feed(false, &sbuf[..n]) {
                        Detection::NeedMore => {}
                        d => break d,
                    }
                }
            },
        }
        // A load balancer's PROXY header is not the client's request: it goes on at
        // once (a server-first protocol behind it greets only once it has it).
        prefix_sent = send_prefix(cx, &mut server, &held_c, prefix_sent, det.prefix()).await?;
        if held_c[prefix_sent..].starts_with(bulkhead_l7::h2::PREFACE) {
            if !*h2_open.get_or_insert_with(|| h2_allowed(cx)) {
                // Refused whether gRPC or not: no need to wait for the request.
                break det.finish();
            }
            let n = bulkhead_l7::h2::settings_frames(&held_s[relayed..]);
            if n > 0 {
                let settings = &held_s[relayed..relayed + n];
                client.write_all(settings).await.context("to the client")?;
                cx.down += n as u64;
                relayed += n;
            }
        }
    };
    // What was relayed is no longer held (a header read with the bytes that decided
    // goes on now).
    held_s.drain(..relayed);
    prefix_sent = send_prefix(cx, &mut server, &held_c, prefix_sent, det.prefix()).await?;
    held_c.drain(..prefix_sent);

    // 2. The verdict with the protocol known.
    if let Detection::Known { detail, .. } = &detection {
        cx.forwarded_for = detail["proxy_protocol"]["source"]
            .as_str()
            .map(str::to_string);
    }
    let (app, detail) = match detection {
        Detection::Known { app, detail } => (Some(app), detail),
        _ => (None, serde_json::Value::Null),
    };
    let mut d = match app {
        Some(app) => cx.authority.decide(
            cx.client,
            cx.server,
            Some(&L7Request {
                app,
                detail: L7Detail::None,
            }),
        ),
        None => {
            // Nothing bulkhead can name: no rule that looks at layer 7 can match.
            let mut d = cx.authority.decide(cx.client, cx.server, None);
            d.allowed = d.allowed_without_l7;
            d.needs_l7 = false;
            d
        }
    };
    if let Some(a @ (AppProtocol::Http2 | AppProtocol::Grpc)) = app {
        d = h2_verdict(cx, a, d);
    }
    let protocol = app.map_or("unknown".to_string(), |a| a.to_string());
    // Whether this decision carries the connection's record is the connection's to say.
    d.detect = cx.detect;
    if d.allowed && d.needs_l7 && app.and_then(|a| protocols.session(a, None)).is_none() {
        // Rules want to see requests bulkhead cannot parse for this protocol: refuse
        // rather than let them through unchecked.
        d.allowed = false;
        d.decided_by = format!(
            "{} (requests of {protocol} cannot be inspected)",
            d.decided_by
        );
    }
    let pcap = if d.allowed {
        None
    } else {
        cx.capture("protocol", Some(Side::Server))
    };
    if let Some(t) = first {
        let held = t.elapsed().as_secs_f64();
        cx.authority.latency(Stage::Detect, &protocol, held);
    }
    cx.emit(EventKind::Protocol {
        protocol: protocol.clone(),
        detail: cx.redacted_detail(detail),
        decision: d.clone(),
        pcap,
    });
    if !d.allowed {
        socket::reset(client);
        socket::reset(server);
        anyhow::bail!("protocol {protocol} refused");
    }
    // FQDN egress: DNS over TCP from a client whose answers teach the agent goes
    // through the DNS session, so that answers pass whole and can be held.
    let learn_dns =
        app == Some(bulkhead_policy::l7::AppProtocol::Dns) && cx.authority.learns_dns(cx.client);
    let session = if d.needs_l7 || inspector.is_some() || learn_dns {
        app.and_then(|a| protocols.session(a, inspector.clone()))
    } else {
        None
    };
    let Some(mut session) = session else {
        if let Some(ins) = inspector {
            // Sensors on a protocol without a session: they see the raw bytes.
            let held = (held_c, held_s);
            return crate::inspect::relay(cx, client, server, held, &protocol, ins.as_ref()).await;
        }
        if !held_s.is_empty() {
            client.write_all(&held_s).await.context("to the client")?;
        }
        return relay(cx, client, server, held_c).await;
    };

    // 3. Request by request.
    let mut memo = Memo::default();
    let mut out = session.server_bytes(&held_s);
    out = merge(out, feed_client(cx, &mut memo, session.as_mut(), &held_c));
    let idle = crate::idle::Idle::new(cx.cfg.idle_timeout);
    let mut timer = idle.timer();
    loop {
        report_stream(cx, &protocol, &out);
        if learn_dns {
            crate::fqdn::hold_tcp(crate::fqdn::Tcp::of(cx), &out.to_client).await;
        }
        if flush(cx, &mut client, &mut server, out).await? {
            return Ok(());
        }
        tokio::select! {
            _ = idle.expired(&mut timer) => anyhow::bail!("idle for {:?}", idle.timeout()),
            r = client.read(&mut cbuf) => {
                let n = r.context("from the client")?;
                idle.touch();
                if n == 0 {
                    let _ = server.shutdown().await;
                    // Drain what the server still sends, through the session.
                    return drain(cx, client, server, session.as_mut(), &protocol, learn_dns).await;
                }
                cx.recorder.record(Side::Client, &cbuf[..n]);
                out = feed_client(cx, &mut memo, session.as_mut(), &cbuf[..n]);
            }
            r = server.read(&mut sbuf) => {
                let n = r.context("from the server")?;
                idle.touch();
                if n == 0 {
                    let _ = client.shutdown().await;
                    return Ok(());
                }
                cx.recorder.record(Side::Server, &sbuf[..n]);
                out = session.server_bytes(&sbuf[..n]);
            }
        }
    }
}

/// Send the PROXY header's bytes in `held[sent..prefix]` to the server; what is sent.
async fn send_prefix(
    cx: &mut Ctx<'_>,
    server: &mut TcpStream,
    held: &[u8],
    sent: usize,
    prefix: usize,
) -> Result<usize> {
    if prefix > sent {
        server
            .write_all(&held[sent..prefix])
            .await
            .context("to the server")?;
        cx.up += (prefix - sent) as u64;
    }
    Ok(prefix.max(sent))
}

/// Whether an HTTP/2 connection may open, be it gRPC or not (before its first request).
fn h2_allowed(cx: &Ctx<'_>) -> bool {
    let request = L7Request {
        app: AppProtocol::Http2,
        detail: L7Detail::None,
    };
    let d = cx.authority.decide(cx.client, cx.server, Some(&request));
    h2_verdict(cx, AppProtocol::Http2, d).allowed
}

/// An HTTP/2 connection carries gRPC calls and plain HTTP/2 requests alike, and its
/// first request may not be known yet: the session decides every request with its own
/// protocol, so the connection opens if either protocol could be allowed, and goes
/// through the session whenever their verdicts could differ.
fn h2_verdict(cx: &Ctx<'_>, detected: AppProtocol, d: Decision) -> Decision {
    let other = match detected {
        AppProtocol::Grpc => AppProtocol::Http2,
        _ => AppProtocol::Grpc,
    };
    let o = cx.authority.decide(
        cx.client,
        cx.server,
        Some(&L7Request {
            app: other,
            detail: L7Detail::None,
        }),
    );
    let differ = o.allowed != d.allowed || o.needs_l7 || d.needs_l7;
    let mut out = if d.allowed || !o.allowed { d } else { o };
    out.needs_l7 |= differ;
    out
}

/// Verdicts of one connection's requests, valid for one authority generation: the same
/// command on the same connection is decided once (GET and SET repeat millions of times).
#[derive(Default)]
pub(crate) struct Memo {
    generation: u64,
    /// foldhash (randomly seeded per process) rather than SipHash: one lookup per
    /// command, and at most MEMO entries, so a client choosing colliding names only
    /// slows its own connection, boundedly.
    seen: HashMap<L7Request, Decision, foldhash::fast::RandomState>,
}

/// Requests remembered per connection at most (HTTP paths vary without bound).
const MEMO: usize = 1024;

/// Feed client bytes, deciding each request with the authority and reporting it.
fn feed_client(
    cx: &mut Ctx<'_>,
    memo: &mut Memo,
    session: &mut dyn crate::protocol::Session,
    data: &[u8],
) -> Output {
    let generation = cx.authority.generation();
    if memo.generation != generation || memo.seen.len() >= MEMO {
        memo.seen.clear();
        memo.generation = generation;
    }
    let started = std::time::Instant::now();
    let out = session.client_bytes(data, &mut |req: &L7Request| {
        let allowed = match memo.seen.get(req) {
            Some(d) => d.allowed,
            None => {
                let d = cx.authority.decide(cx.client, cx.server, Some(req));
                let allowed = d.allowed;
                memo.seen.insert(req.clone(), d);
                allowed
            }
        };
        Verdict { allowed }
    });
    if let Some(dec) = out.decided.first() {
        let app = dec.request.app.to_string();
        let took = started.elapsed().as_secs_f64();
        cx.authority.latency(Stage::Request, &app, took);
    }
    // Requests are numbered per connection, so each capture has its own file.
    let first = cx.requests;
    cx.requests += out.decided.len() as u64;
    for (k, dec) in out.decided.iter().enumerate() {
        // A request may be decided in an earlier call than the one that reports it (its
        // body was held for the sensors): its policy verdict is found by the request.
        let decision = memo.seen.get(&dec.request);
        if !dec.findings.is_empty() {
            let pcap = cx.capture(&format!("sensor-{}", first + k as u64), None);
            cx.emit(EventKind::Sensor {
                protocol: dec.request.app.to_string(),
                request: Some(cx.redacted(&dec.request.to_string())),
                findings: dec.findings.clone(),
                blocked: !dec.allowed,
                refusal: dec.refusal.clone(),
                pcap,
            });
            if decision.as_ref().is_some_and(|d| d.allowed) {
                // Policy allowed it: the sensor event says all there is to say.
                continue;
            }
        }
        // Allowed requests are counted, not recorded one by one (the hot path).
        if dec.allowed && !decision.as_ref().is_some_and(|d| d.violation) {
            continue;
        }
        let decision = decision.cloned().unwrap_or_else(|| {
            cx.authority
                .decide(cx.client, cx.server, Some(&dec.request))
        });
        let pcap = (!dec.allowed)
            .then(|| cx.capture(&format!("request-{}", first + k as u64), None))
            .flatten();
        cx.emit(EventKind::Request {
            protocol: dec.request.app.to_string(),
            request: cx.redacted(&dec.request.to_string()),
            decision,
            refusal: dec.refusal.clone(),
            pcap,
        });
    }
    out
}

/// Findings outside any request (responses): one event, with a capture.
fn report_stream(cx: &mut Ctx<'_>, protocol: &str, out: &Output) {
    if out.findings.is_empty() {
        return;
    }
    report(cx, protocol, &out.findings);
}

/// One sensor event for findings in a stream of bytes (no request to name).
pub(crate) fn report(cx: &mut Ctx<'_>, protocol: &str, findings: &[Finding]) -> bool {
    let blocked = findings.iter().any(|f| f.block);
    let pcap = cx.capture(&format!("sensor-{}", cx.up + cx.down), None);
    cx.emit(EventKind::Sensor {
        protocol: protocol.to_string(),
        request: None,
        findings: findings.to_vec(),
        blocked,
        refusal: blocked.then(|| "closed".to_string()),
        pcap,
    });
    blocked
}

fn merge(mut a: Output, b: Output) -> Output {
    a.merge(b);
    a
}

/// Write a step's output; true when the session said to close.
async fn flush(
    cx: &mut Ctx<'_>,
    client: &mut TcpStream,
    server: &mut TcpStream,
    out: Output,
) -> Result<bool> {
    if !out.to_server.is_empty() {
        server
            .write_all(&out.to_server)
            .await
            .context("to the server")?;
        cx.up += out.to_server.len() as u64;
    }
    if !out.to_client.is_empty() {
        client
            .write_all(&out.to_client)
            .await
            .context("to the client")?;
        cx.down += out.to_client.len() as u64;
    }
    if out.close {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
    }
    Ok(out.close)
}

/// The client is done sending: pass the server's remaining answers through the session.
async fn drain(
    cx: &mut Ctx<'_>,
    mut client: TcpStream,
    mut server: TcpStream,
    session: &mut dyn crate::protocol::Session,
    protocol: &str,
    learn_dns: bool,
) -> Result<()> {
    let mut buf = Buf::new();
    loop {
        let n = tokio::time::timeout(cx.cfg.idle_timeout, server.read(&mut buf))
            .await
            .context("idle")??;
        if n == 0 {
            let _ = client.shutdown().await;
            return Ok(());
        }
        cx.recorder.record(Side::Server, &buf[..n]);
        let out = session.server_bytes(&buf[..n]);
        report_stream(cx, protocol, &out);
        if learn_dns {
            crate::fqdn::hold_tcp(crate::fqdn::Tcp::of(cx), &out.to_client).await;
        }
        if flush(cx, &mut client, &mut server, out).await? {
            return Ok(());
        }
    }
}
