//! FQDN egress: the DNS answers the proxy relays teach the agent which addresses the
//! names of `dns:` peers resolve to. An answer is held until the agent says the kernel
//! holds those addresses (so the client's first connection does not race the rule), at
//! most [`crate::Config::dns_hold`]; then it goes out anyway and the agent is told.

use std::net::SocketAddr;

use crate::authority::Authority;

/// Hold one DNS message (a UDP payload, or a TCP message without its length) from the
/// resolver `server` going to `client` until the addresses it carries are programmed.
pub(crate) async fn hold(
    authority: &dyn Authority,
    client: SocketAddr,
    server: SocketAddr,
    msg: &[u8],
    bound: std::time::Duration,
) {
    let Some(answers) = bulkhead_detect::dns::answers(msg) else {
        return;
    };
    if answers.addrs.is_empty() {
        return;
    }
    let Some(programmed) = authority.dns_answers(client, server, &answers) else {
        return;
    };
    if tokio::time::timeout(bound, programmed).await.is_err() {
        authority.dns_late();
    }
}

/// What [`hold_tcp`] needs of a connection (copied out of it: its context is not `Sync`).
#[derive(Clone, Copy)]
pub(crate) struct Tcp<'a> {
    authority: &'a dyn Authority,
    client: SocketAddr,
    server: SocketAddr,
    bound: std::time::Duration,
}

impl<'a> Tcp<'a> {
    pub(crate) fn of(cx: &crate::conn::Ctx<'a>) -> Tcp<'a> {
        Tcp {
            authority: cx.authority,
            client: cx.client,
            server: cx.server,
            bound: cx.cfg.dns_hold,
        }
    }
}

/// [`hold`] for every whole length-prefixed message in `bytes` that the connection's
/// server sends its client (DNS over TCP: the session passes them on whole).
pub(crate) async fn hold_tcp(c: Tcp<'_>, bytes: &[u8]) {
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
        let Some(msg) = bytes.get(at + 2..at + 2 + len) else {
            return;
        };
        hold(c.authority, c.client, c.server, msg, c.bound).await;
        at += 2 + len;
    }
}
