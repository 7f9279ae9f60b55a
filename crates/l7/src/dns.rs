//! DNS: each query is decided on the name it asks for. A denied query never reaches the
//! server; the client gets `REFUSED` (RCODE 5) with its question echoed, which resolvers
//! report at once instead of timing out.
//!
//! Over UDP (the common case) the proxy calls [`dns_request`] and [`dns_refused`] per
//! datagram; over TCP, [`DnsSession`] frames the 2-byte length-prefixed messages (RFC
//! 1035 4.2.2). Answers may come back in any order over TCP (RFC 7766), matched by ID,
//! and the server's messages are only passed on whole, so a refusal can go out at once.

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::{Decided, Output, Session, Verdict};

/// The request a DNS query makes of policy, if `msg` is a query with one question (RFC
/// 9619: QDCOUNT is 1; a server that answers several, as dnsmasq may from its cache,
/// would answer names nobody decided). None otherwise: not decided on a name, so a
/// rule on names refuses it.
pub fn dns_request(msg: &[u8]) -> Option<L7Request> {
    if msg.get(4..6)? != [0, 1] {
        return None;
    }
    let q = bulkhead_detect::dns::question(msg)?;
    if q.response {
        return None;
    }
    Some(L7Request {
        app: AppProtocol::Dns,
        detail: L7Detail::Dns { name: q.name },
    })
}

/// The end of the question section (header and questions), if well formed.
fn questions_end(m: &[u8]) -> Option<usize> {
    // The 12-byte header first: with no question, its end is the message's.
    if m.len() < 12 {
        return None;
    }
    let count = u16::from_be_bytes([m[4], m[5]]);
    let mut at = 12;
    for _ in 0..count {
        loop {
            let len = *m.get(at)? as usize;
            match len {
                0 => {
                    at += 1;
                    break;
                }
                // A compression pointer ends the name.
                l if l & 0xc0 == 0xc0 => {
                    m.get(at + 1)?;
                    at += 2;
                    break;
                }
                l if l <= 63 => at += 1 + l,
                _ => return None,
            }
        }
        // QTYPE and QCLASS.
        at += 4;
        if at > m.len() {
            return None;
        }
    }
    Some(at)
}

/// `REFUSED` for `query`: its ID, opcode, RD and questions, no records.
pub fn dns_refused(query: &[u8]) -> Option<Vec<u8>> {
    let end = questions_end(query)?;
    let mut r = query[..end].to_vec();
    // QR=1, opcode and RD kept, AA/TC/RA/Z/AD/CD cleared, RCODE=5.
    r[2] = 0x80 | (query[2] & 0x79);
    r[3] = 5;
    r[6..12].fill(0);
    Some(r)
}

/// Largest DNS message over TCP (the length prefix allows 64 KiB).
const MAX_MESSAGE: usize = 65_535 + 2;

/// DNS over TCP.
#[derive(Default)]
pub struct DnsSession {
    client: Vec<u8>,
    server: Vec<u8>,
    /// Refusals of the current step.
    pending: Vec<u8>,
}

impl DnsSession {
    pub fn new() -> DnsSession {
        DnsSession::default()
    }
}

/// Complete length-prefixed messages at the front of `buf`, removed from it.
fn frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 2 {
            return out;
        }
        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
        if buf.len() < 2 + len {
            return out;
        }
        out.push(buf.drain(..2 + len).collect());
    }
}

impl Session for DnsSession {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        self.client.extend_from_slice(data);
        for frame in frames(&mut self.client) {
            let msg = &frame[2..];
            let Some(request) = dns_request(msg) else {
                // Not a query bulkhead can read: nothing to decide it on.
                out.close = true;
                return out;
            };
            let allowed = decide(&request).allowed;
            if allowed {
                out.to_server.extend_from_slice(&frame);
            } else if let Some(r) = dns_refused(msg) {
                self.pending
                    .extend_from_slice(&(r.len() as u16).to_be_bytes());
                self.pending.extend_from_slice(&r);
            }
            out.decided.push(Decided {
                request,
                allowed,
                refusal: (!allowed).then(|| "REFUSED".to_string()),
                findings: Vec::new(),
            });
        }
        if self.client.len() > MAX_MESSAGE {
            out.close = true;
        }
        out.to_client.append(&mut self.pending);
        out
    }

    fn server_bytes(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        self.server.extend_from_slice(data);
        for frame in frames(&mut self.server) {
            out.to_client.extend_from_slice(&frame);
        }
        if self.server.len() > MAX_MESSAGE {
            out.close = true;
        }
        out
    }
}
