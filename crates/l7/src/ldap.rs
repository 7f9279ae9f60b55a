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

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, LdapOp};

use crate::ber::{self, Ber};
use crate::{Decided, Output, Session, Verdict};

/// A client message larger than this is refused and the connection closed. Real
/// requests are small; an add with a photo is a few hundred KiB.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Bytes of a request held until its DN is known.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes of a server message held to read its messageID, operation and resultCode.
const PEEK: usize = 32;
/// Refusals waiting for the end of a server message: a client sending denied requests
/// faster than a large response streams must not grow them without bound.
const MAX_OWED: usize = 1 << 20;

const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
const NOTICE_OF_DISCONNECTION: &[u8] = b"1.3.6.1.4.1.1466.20036";
const EXTENDED_RESPONSE: u8 = 0x78;
const INSUFFICIENT_ACCESS_RIGHTS: u8 = 50;
const PROTOCOL_ERROR: u8 = 2;

/// One client request's head, parsed.
#[derive(Debug)]
struct Head {
    /// Length of the whole message, header included.
    total: usize,
    /// The messageID's content bytes, echoed in a refusal.
    id: Vec<u8>,
    op: LdapOp,
    /// The tag of its response (None: it has none).
    response: Option<u8>,
    /// The DN it names (empty: none, or the root DSE), or an extended operation's OID.
    name: String,
}

/// The operation of a request tag, its response tag (None: it has none), and how to
/// find its DN: `Some(n)` is the number of elements to skip inside the operation
/// before the DN; `None` means the operation's own content is the DN or is no DN.
fn request_op(tag: u8) -> Option<(LdapOp, Option<u8>, Option<usize>)> {
    Some(match tag {
        0x60 => (LdapOp::Bind, Some(0x61), Some(1)),
        0x42 => (LdapOp::Unbind, None, None),
        0x63 => (LdapOp::Search, Some(0x65), Some(0)),
        0x66 => (LdapOp::Modify, Some(0x67), Some(0)),
        0x68 => (LdapOp::Add, Some(0x69), Some(0)),
        0x4a => (LdapOp::Delete, Some(0x6b), None),
        0x6c => (LdapOp::ModifyDn, Some(0x6d), Some(0)),
        0x6e => (LdapOp::Compare, Some(0x6f), Some(0)),
        0x50 => (LdapOp::Abandon, None, None),
        0x77 => (LdapOp::Extended, Some(EXTENDED_RESPONSE), Some(0)),
        _ => return None,
    })
}

/// Parse the head of the request at the start of `b`.
fn parse_head(b: &[u8]) -> Result<Head, Ber> {
    let msg = ber::header(b, 0, usize::MAX)?;
    if msg.tag != 0x30 {
        return Err(Ber::Bad("not an LDAPMessage"));
    }
    if msg.end - msg.start > MAX_MESSAGE {
        return Err(Ber::Bad("message too large"));
    }
    let (id, at) = ber::content(b, msg.start, msg.end, 0x02)?;
    if !(1..=4).contains(&id.len()) || id[0] & 0x80 != 0 {
        return Err(Ber::Bad("bad messageID"));
    }
    let op = ber::header(b, at, msg.end)?;
    let (operation, response, skip) = request_op(op.tag).ok_or(Ber::Bad("not an LDAP request"))?;
    let name = match (operation, skip) {
        (LdapOp::Delete, _) => b.get(op.start..op.end).ok_or(Ber::More)?,
        (_, None) => &[][..],
        (_, Some(skip)) => {
            let mut at = op.start;
            for _ in 0..skip {
                at = ber::header(b, at, op.end)?.end;
            }
            let tag = if operation == LdapOp::Extended {
                0x80
            } else {
                0x04
            };
            ber::content(b, at, op.end, tag)?.0
        }
    };
    Ok(Head {
        total: msg.end,
        id: id.to_vec(),
        op: operation,
        response,
        name: String::from_utf8_lossy(name).into_owned(),
    })
}

/// An LDAPMessage with `id` and an operation `tag` holding `content`.
fn message(id: &[u8], tag: u8, content: &[u8]) -> Vec<u8> {
    let mut inner = ber::tlv(0x02, id);
    ber::put(&mut inner, tag, content);
    ber::tlv(0x30, &inner)
}

/// An LDAPResult: resultCode, empty matchedDN, diagnosticMessage (and more fields after).
fn result(code: u8, text: &str, more: &[u8]) -> Vec<u8> {
    let mut r = ber::tlv(0x0a, &[code]);
    ber::put(&mut r, 0x04, b"");
    ber::put(&mut r, 0x04, text.as_bytes());
    r.extend_from_slice(more);
    r
}

/// The unsolicited notice (RFC 4511 4.4.1) that the connection is being closed.
fn notice_of_disconnection(why: &str) -> Vec<u8> {
    let text = format!("bulkhead: {why}");
    let name = ber::tlv(0x8a, NOTICE_OF_DISCONNECTION);
    message(
        &[0],
        EXTENDED_RESPONSE,
        &result(PROTOCOL_ERROR, &text, &name),
    )
}

/// The text of a refusal: the DN (or OID) as the client sent it, cut to a readable size.
fn refusal_text(op: LdapOp, name: &str) -> String {
    let mut shown: String = name.chars().filter(|c| !c.is_control()).take(256).collect();
    if shown.is_empty() {
        shown = "\"\"".into();
    }
    if op == LdapOp::Extended {
        format!("bulkhead: extended operation {shown} is not allowed by policy")
    } else {
        format!("bulkhead: {op} on {shown} is not allowed by policy")
    }
}

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
        let request = L7Request {
            app: AppProtocol::Ldap,
            detail: L7Detail::Ldap {
                operation: h.op,
                base_dn: (!h.name.is_empty() && h.op != LdapOp::Extended).then(|| h.name.clone()),
            },
        };
        let allowed = decide(&request).allowed;
        let text = refusal_text(h.op, &h.name);
        if !allowed && let Some(tag) = h.response {
            // An abandon has no response: a refused one is dropped, unanswered.
            let reply = message(&h.id, tag, &result(INSUFFICIENT_ACCESS_RIGHTS, &text, &[]));
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

    /// The server message held in `self.peek` is about to be written: is it the
    /// successful response to a StartTLS request?
    fn accepts_start_tls(&self) -> bool {
        let Some(want) = &self.start_tls else {
            return false;
        };
        let b = &self.peek;
        let parse = || -> Result<bool, Ber> {
            let msg = ber::header(b, 0, usize::MAX)?;
            let (id, at) = ber::content(b, msg.start, msg.end, 0x02)?;
            let op = ber::header(b, at, msg.end)?;
            let (code, _) = ber::content(b, op.start, op.end, 0x0a)?;
            Ok(op.tag == EXTENDED_RESPONSE && id == want.as_slice() && code == [0])
        };
        parse().unwrap_or(false)
    }

    /// The response to StartTLS, if `self.peek` holds it (whatever its result).
    fn answers_start_tls(&self) -> bool {
        let Some(want) = &self.start_tls else {
            return false;
        };
        let b = &self.peek;
        (|| -> Result<bool, Ber> {
            let msg = ber::header(b, 0, usize::MAX)?;
            let (id, at) = ber::content(b, msg.start, msg.end, 0x02)?;
            Ok(ber::header(b, at, msg.end)?.tag == EXTENDED_RESPONSE && id == want.as_slice())
        })()
        .unwrap_or(false)
    }

    /// A server message ended: write the refusals that waited for it.
    fn boundary(&mut self, out: &mut Output) {
        while let Some(r) = self.owed.pop_front() {
            out.to_client.extend_from_slice(&r);
        }
        self.owed_bytes = 0;
        if std::mem::take(&mut self.tls_next) {
            self.server = Server::Raw;
            self.client = Client::Raw;
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
                    if self.answers_start_tls() {
                        self.tls_next = self.accepts_start_tls();
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
