//! LDAP (LDAPv3, RFC 4511): each client request is decided on its operation and the DN
//! it names. A denied request never reaches the server; the client gets the operation's
//! own response with resultCode insufficientAccessRights (50), under the same messageID.
//!
//! LDAP is asynchronous (responses are matched to requests by messageID, not by order),
//! so a refusal only has to be written between two server messages, never inside one.
//! Requests are decided on their head (up to the DN) and then streamed, and server
//! messages are framed by their lengths and streamed: nothing large is held.
//!
//! StartTLS is decided as `extended`; once the server accepts it, both directions are
//! TLS and pass untouched, undecided: the proxy holds no keys.

use std::collections::VecDeque;

use bulkhead_policy::l7::{L7Request, LdapOp};

use crate::ber::{self, Ber};
use crate::ldap_msg::{
    Head, START_TLS, notice_of_disconnection, parse_head, refusal_text, start_tls_answer,
};
use crate::{Decided, Output, Session, Verdict};

/// Bytes of a request held until its DN is known.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes of a server message held to read its messageID, operation and resultCode.
const PEEK: usize = 32;
/// Refusals waiting for the end of a server message: a client sending denied requests
/// faster than a large response streams must not grow them without bound.
const MAX_OWED: usize = 1 << 20;

#[derive(Debug)]
enum Client {
    /// Between requests, or reading a request's head (held in `LdapSession::head`).
    Head,
    /// Streaming the rest of a decided request.
    Body {
        remaining: usize,
        allowed: bool,
    },
    /// After StartTLS: TLS, passed as is.
    Raw,
    Closed,
}

#[derive(Debug)]
enum Server {
    /// Reading a message's header and first bytes (held in `LdapSession::peek`).
    Head,
    /// Streaming the rest of a message.
    Body { remaining: usize },
    /// After StartTLS, or a server we cannot frame: passed as is.
    Raw,
}

pub struct LdapSession {
    client: Client,
    head: Vec<u8>,
    server: Server,
    peek: Vec<u8>,
    /// Refusals waiting for the end of the server message being written.
    owed: VecDeque<Vec<u8>>,
    owed_bytes: usize,
    /// The messageID of a forwarded StartTLS request, until its response.
    start_tls: Option<Vec<u8>>,
    /// The server accepted StartTLS at the end of the message being written.
    tls_next: bool,
}

impl Default for LdapSession {
    fn default() -> Self {
        LdapSession::new()
    }
}

impl LdapSession {
    pub fn new() -> LdapSession {
        LdapSession {
            client: Client::Head,
            head: Vec::new(),
            server: Server::Head,
            peek: Vec::new(),
            owed: VecDeque::new(),
            owed_bytes: 0,
            start_tls: None,
            tls_next: false,
        }
    }

    fn at_server_boundary(&self) -> bool {
        match self.server {
            Server::Head => self.peek.is_empty(),
            Server::Body { .. } => false,
            Server::Raw => true,
        }
    }

    /// Write a refusal now if no server message is half written, else once it is.
    fn refuse(&mut self, out: &mut Output, bytes: Vec<u8>) {
        if self.at_server_boundary() {
            out.to_client.extend_from_slice(&bytes);
        } else if self.owed_bytes + bytes.len() > MAX_OWED {
            self.close(out, "too many refusals waiting for a response to end");
        } else {
            self.owed_bytes += bytes.len();
            self.owed.push_back(bytes);
        }
    }

    /// A protocol error on the client's side: tell it why (at a message boundary, else
    /// the notice would corrupt the message being written) and close.
    fn close(&mut self, out: &mut Output, why: &str) {
        if self.at_server_boundary() {
            out.to_client
                .extend_from_slice(&notice_of_disconnection(why));
        }
        out.close = true;
        self.client = Client::Closed;
    }

    /// Decide the request whose head is at the start of `self.head`.
    fn decide(
        &mut self,
        h: &Head,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
        out: &mut Output,
    ) -> bool {
        if h.op == LdapOp::Unbind {
            // Unbind only ends the client's own connection, which refusing it would too.
            return true;
        }
        let mut request = h.request();
        let mut allowed = decide(&request).allowed;
        let mut text = refusal_text(h.op, &h.name);
        // A ModifyDN moves the entry: where it goes must be allowed too.
        if allowed
            && let Some(to) = h.destination()
            && !decide(&to).allowed
        {
            allowed = false;
            text = refusal_text(h.op, h.moved_to.as_deref().unwrap_or_default());
            request = to;
        }
        if !allowed && let Some(reply) = h.refusal() {
            // An abandon has no response: a refused one is dropped, unanswered.
            self.refuse(out, reply);
        }
        if allowed && h.op == LdapOp::Extended && h.name == START_TLS {
            self.start_tls = Some(h.id.clone());
        }
        out.decided.push(Decided {
            request,
            allowed,
            refusal: (!allowed).then_some(text),
            findings: Vec::new(),
        });
        allowed
    }

    /// A server message ended: write the refusals that waited for it.
    fn boundary(&mut self, out: &mut Output) {
        while let Some(r) = self.owed.pop_front() {
            out.to_client.extend_from_slice(&r);
        }
        self.owed_bytes = 0;
        if std::mem::take(&mut self.tls_next) {
            self.server = Server::Raw;
            if self.head.is_empty() {
                self.client = Client::Raw;
            } else {
                // Part of a request sent before the StartTLS answer: passing it raw
                // would skip its decision, dropping it would corrupt the stream.
                out.close = true;
                self.client = Client::Closed;
            }
        }
    }
}

impl Session for LdapSession {
    fn client_bytes(
        &mut self,
        mut data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        loop {
            match &mut self.client {
                Client::Closed => break,
                Client::Raw => {
                    out.to_server.extend_from_slice(data);
                    break;
                }
                Client::Body { remaining, allowed } => {
                    if data.is_empty() {
                        break;
                    }
                    let n = data.len().min(*remaining);
                    if *allowed {
                        out.to_server.extend_from_slice(&data[..n]);
                    }
                    data = &data[n..];
                    *remaining -= n;
                    if *remaining == 0 {
                        self.client = Client::Head;
                    }
                }
                Client::Head => {
                    let take = data.len().min(MAX_HEAD.saturating_sub(self.head.len()));
                    self.head.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.head.is_empty() {
                        break;
                    }
                    let h = match parse_head(&self.head) {
                        Ok(h) => h,
                        Err(Ber::More) if self.head.len() < MAX_HEAD => break,
                        Err(Ber::More) => {
                            self.close(&mut out, "request head too large to inspect");
                            break;
                        }
                        Err(Ber::Bad(why)) => {
                            self.close(&mut out, why);
                            break;
                        }
                    };
                    if self.start_tls.is_some() {
                        // RFC 4511 4.14.1: nothing may follow StartTLS before its answer.
                        self.close(&mut out, "request sent before the StartTLS response");
                        break;
                    }
                    let allowed = self.decide(&h, decide, &mut out);
                    if out.close {
                        break;
                    }
                    let used = h.total.min(self.head.len());
                    if allowed {
                        out.to_server.extend_from_slice(&self.head[..used]);
                    }
                    self.head.drain(..used);
                    if h.total > used {
                        self.client = Client::Body {
                            remaining: h.total - used,
                            allowed,
                        };
                    }
                }
            }
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        while !data.is_empty() {
            match &mut self.server {
                Server::Raw => {
                    out.to_client.extend_from_slice(data);
                    break;
                }
                Server::Body { remaining } => {
                    let n = data.len().min(*remaining);
                    out.to_client.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    *remaining -= n;
                    if *remaining == 0 {
                        self.server = Server::Head;
                        self.boundary(&mut out);
                    }
                }
                Server::Head => {
                    // The bytes still needed: the header a byte at a time, then (only
                    // while StartTLS waits for its answer) the peek, never past the
                    // message's end (what follows is the next one).
                    let peek = if self.start_tls.is_some() { PEEK } else { 0 };
                    let need = |p: &[u8]| match ber::header(p, 0, usize::MAX) {
                        Ok(t) if t.tag == 0x30 => Some(t.end.min(t.start + peek)),
                        Err(Ber::More) => Some(p.len() + 1),
                        Ok(_) | Err(Ber::Bad(_)) => None,
                    };
                    if let Some(want) = need(&self.peek) {
                        let n = want.saturating_sub(self.peek.len()).min(data.len());
                        self.peek.extend_from_slice(&data[..n]);
                        data = &data[n..];
                    }
                    let msg = match ber::header(&self.peek, 0, usize::MAX) {
                        Ok(t) if t.tag == 0x30 => t,
                        Err(Ber::More) => continue,
                        Ok(_) | Err(Ber::Bad(_)) => {
                            // A server we cannot frame: stop placing refusals, never
                            // stop forwarding.
                            out.to_client
                                .extend_from_slice(&std::mem::take(&mut self.peek));
                            self.server = Server::Raw;
                            self.boundary(&mut out);
                            continue;
                        }
                    };
                    if self.peek.len() < msg.end.min(msg.start + peek) {
                        continue;
                    }
                    if let Some(id) = &self.start_tls
                        && let Some(accepted) = start_tls_answer(&self.peek, id)
                    {
                        self.tls_next = accepted;
                        self.start_tls = None;
                    }
                    let remaining = msg.end - self.peek.len();
                    out.to_client
                        .extend_from_slice(&std::mem::take(&mut self.peek));
                    if remaining == 0 {
                        self.boundary(&mut out);
                    } else {
                        self.server = Server::Body { remaining };
                    }
                }
            }
        }
        out
    }
}
