//! Connections diverted only to learn their protocol (workloads in Discover mode, see
//! [`crate::authority::Decision::detect`]): policy does not depend on what they speak,
//! so nothing is held. Bytes are relayed as they come, both ways, while the detector
//! reads the same bytes; once it has settled (or its byte budget or timeout is spent)
//! the protocol decision is reported, carrying the connection's flow record, and the
//! connection is spliced. A protocol detection cannot name, or a server that waits for
//! a client that waits for it, costs nothing either.

use std::time::Instant;

use anyhow::{Context, Result};
use bulkhead_policy::l7::{L7Detail, L7Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::authority::Stage;
use crate::buf::Buf;
use crate::conn::{Ctx, relay};
use crate::event::EventKind;
use crate::protocol::{Detection, Protocols};

pub(crate) async fn serve(
    cx: &mut Ctx<'_>,
    mut client: TcpStream,
    mut server: TcpStream,
    protocols: &dyn Protocols,
) -> Result<()> {
    let mut det = protocols.detector();
    let deadline = tokio::time::Instant::now() + cx.cfg.detect_timeout;
    let (mut cbuf, mut sbuf) = (Buf::new(), Buf::new());
    let mut seen = 0usize;
    // The time the first bytes spent in the proxy (read, detector, written).
    let mut first: Option<f64> = None;
    let detection = loop {
        if seen >= 2 * cx.cfg.detect_limit {
            break det.finish();
        }
        // A side that ended is read again by the splice below (it reads 0 again and
        // forwards the half-close).
        let (from_client, n, t) = tokio::select! {
            r = tokio::time::timeout_at(deadline, client.read(&mut cbuf)) => match r {
                Ok(Ok(n)) if n > 0 => (true, n, Instant::now()),
                _ => break det.finish(),
            },
            r = tokio::time::timeout_at(deadline, server.read(&mut sbuf)) => match r {
                Ok(Ok(n)) if n > 0 => (false, n, Instant::now()),
                _ => break det.finish(),
            },
        };
        seen += n;
        let (data, to) = if from_client {
            cx.up += n as u64;
            (&cbuf[..n], &mut server)
        } else {
            cx.down += n as u64;
            (&sbuf[..n], &mut client)
        };
        let d = det.feed(from_client, data);
        to.write_all(data).await.context("relaying")?;
        first.get_or_insert_with(|| t.elapsed().as_secs_f64());
        if d != Detection::NeedMore {
            break d;
        }
    };
    let (app, detail) = match detection {
        Detection::Known { app, detail } => (Some(app), detail),
        _ => (None, serde_json::Value::Null),
    };
    let req = app.map(|app| L7Request {
        app,
        detail: L7Detail::None,
    });
    let mut decision = cx.authority.decide(cx.client, cx.server, req.as_ref());
    decision.detect = cx.detect;
    decision.quiet = true;
    let protocol = app.map_or("unknown".to_string(), |a| a.to_string());
    if let Some(held) = first {
        cx.authority.latency(Stage::Detect, &protocol, held);
    }
    let allowed = decision.allowed;
    cx.emit(EventKind::Protocol {
        protocol: protocol.clone(),
        detail,
        decision,
        pcap: None,
    });
    if !allowed {
        // Policy changed under the connection and now looks at its protocol.
        crate::socket::reset(client);
        crate::socket::reset(server);
        anyhow::bail!("protocol {protocol} refused");
    }
    relay(cx, client, server, Vec::new()).await
}
