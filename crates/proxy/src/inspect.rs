//! Sensors on a connection whose protocol has no session (unknown, or one bulkhead does
//! not parse): both directions stream through the sensors' scanners as raw bytes
//! (`packet` context), and a blocking finding closes the connection before the bytes
//! that carried it are delivered.

use anyhow::{Context, Result};
use bulkhead_l7::Inspector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::buf::Buf;
use crate::capture::Side;
use crate::conn::Ctx;

pub(crate) async fn relay(
    cx: &mut Ctx<'_>,
    mut client: TcpStream,
    mut server: TcpStream,
    (held_c, held_s): (Vec<u8>, Vec<u8>),
    protocol: &str,
    inspector: &dyn Inspector,
) -> Result<()> {
    let mut up = inspector.stream(false);
    let mut down = inspector.stream(true);
    // Bytes read during detection go first, through the sensors like the rest.
    for (data, to_server) in [(held_s, false), (held_c, true)] {
        if data.is_empty() {
            continue;
        }
        let scanner = if to_server { &mut up } else { &mut down };
        let findings = scanner.feed(&data);
        if !findings.is_empty() && crate::l7::report(cx, protocol, &findings) {
            return close(client, server).await;
        }
        let (to, n) = if to_server {
            (&mut server, &mut cx.up)
        } else {
            (&mut client, &mut cx.down)
        };
        to.write_all(&data).await.context("forwarding held bytes")?;
        *n += data.len() as u64;
    }
    let (mut cbuf, mut sbuf) = (Buf::new(), Buf::new());
    let (mut client_open, mut server_open) = (true, true);
    let idle = crate::idle::Idle::new(cx.cfg.idle_timeout);
    let mut timer = idle.timer();
    while client_open || server_open {
        tokio::select! {
            _ = idle.expired(&mut timer) => anyhow::bail!("idle for {:?}", idle.timeout()),
            r = client.read(&mut cbuf), if client_open => {
                let n = r.context("from the client")?;
                idle.touch();
                if n == 0 {
                    client_open = false;
                    let _ = server.shutdown().await;
                    continue;
                }
                cx.recorder.record(Side::Client, &cbuf[..n]);
                let findings = up.feed(&cbuf[..n]);
                if !findings.is_empty() && crate::l7::report(cx, protocol, &findings) {
                    return close(client, server).await;
                }
                server.write_all(&cbuf[..n]).await.context("to the server")?;
                cx.up += n as u64;
            }
            r = server.read(&mut sbuf), if server_open => {
                let n = r.context("from the server")?;
                idle.touch();
                if n == 0 {
                    server_open = false;
                    let _ = client.shutdown().await;
                    continue;
                }
                cx.recorder.record(Side::Server, &sbuf[..n]);
                let findings = down.feed(&sbuf[..n]);
                if !findings.is_empty() && crate::l7::report(cx, protocol, &findings) {
                    return close(client, server).await;
                }
                client.write_all(&sbuf[..n]).await.context("to the client")?;
                cx.down += n as u64;
            }
        }
    }
    Ok(())
}

async fn close(mut client: TcpStream, mut server: TcpStream) -> Result<()> {
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
    anyhow::bail!("closed by a sensor")
}
