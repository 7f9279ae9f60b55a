//! HTTP/1.x: each request is decided on its method, path, host and headers before any of
//! it reaches the server. A denied request gets `403 Forbidden`, in order after the
//! responses to the requests before it (pipelining), and its body is discarded; the
//! connection stays usable when the body's length is known.
//!
//! Responses are framed (length, chunked, until close; HEAD, 1xx, 204 and 304 have no
//! body) only to know where each ends. After `101 Switching Protocols` (WebSocket, h2c)
//! both directions pass through unparsed.

use std::collections::VecDeque;
use std::sync::Arc;

use bulkhead_policy::l7::method_override::FIELD;
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::body::Body;
use crate::{
    Decided, Finding, Inspector, Output, Session, StreamInspector, Verdict, coding, form, websocket,
};

/// Largest request or response head (request line and headers) held for parsing.
pub const MAX_HEAD: usize = 64 * 1024;
/// With sensors on (and for a POST form, whose `_method` fields are decided on), the
/// bytes of a request body held back until they are read. A longer body is inspected on
/// this prefix and the rest streams (as ModSecurity's `ProcessPartial`): holding more
/// would let one client pin the proxy's memory.
pub const MAX_INSPECT_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

const REFUSAL_BODY: &str = "bulkhead: request denied by policy\n";
const BLOCKED_BODY: &str = "bulkhead: request blocked by a sensor\n";

fn refusal(close: bool) -> Vec<u8> {
    refusal_with(close, REFUSAL_BODY)
}

fn refusal_with(close: bool, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes()
}

#[derive(Debug)]
enum Owed {
    /// A response from the server, to a HEAD request or not.
    Response {
        head: bool,
    },
    Refusal(Vec<u8>, bool),
}

#[derive(Debug)]
enum Side {
    Head,
    /// Passing (or discarding) a body.
    Body(Body, bool),
    /// Everything passes unparsed (after an upgrade, or a body until close).
    Raw,
    /// An allowed request held back while its body is read for the sensors.
    Inspect(Box<Pending>),
    /// After a request asking to upgrade: what the client sends next is held until the
    /// server says whether it switches protocols (101: it passes raw) or not (parsed).
    Held(Vec<u8>),
    /// After a switch to WebSocket with sensors on: messages inspected one by one.
    WebSocket(Box<websocket::Reader>),
    /// The rest of a POST form longer than is held, passing while it is read for
    /// `_method` fields: decided on those it names, and its end withheld if refused.
    Form(Box<FormTail>),
}

#[derive(Debug)]
struct FormTail {
    body: Body,
    scan: form::TailScan,
    request: L7Request,
    /// Fields decided on already.
    decided: usize,
}

#[derive(Debug)]
struct Pending {
    head: Vec<u8>,
    request: L7Request,
    is_head: bool,
    body: Body,
    /// The body's bytes as received (forwarded if the request passes).
    raw: Vec<u8>,
    /// The body without chunk framing (inspected).
    payload: Vec<u8>,
    /// The body's `Content-Encoding`, when the sensors read through it.
    inflate: Option<coding::Inflater>,
    /// A POST's form encoding: its `_method` fields are decided on (see `conclude`).
    form: Option<form::Form>,
}

/// The request with the `_method` fields its form body names (policy reads them as
/// overrides: `bulkhead_policy::l7::method_override`).
/// A response's `Content-Encoding` when it names a coding the proxy cannot inflate
/// (not `identity`, `gzip`, `x-gzip` or `deflate` alone).
fn unreadable_coding(headers: &[httparse::Header]) -> Option<String> {
    let v = header(headers, "content-encoding")?.trim_ascii();
    let readable = v.is_empty()
        || v.eq_ignore_ascii_case(b"identity")
        || coding::Inflater::for_coding(v).is_some();
    (!readable).then(|| String::from_utf8_lossy(v).into_owned())
}

pub(crate) fn with_fields(request: &mut L7Request, fields: &[String]) {
    if let L7Detail::Http { headers, .. } = &mut request.detail {
        headers.extend(fields.iter().map(|v| (FIELD.to_string(), v.clone())));
    }
}

fn blocks(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.block)
}

pub struct HttpSession {
    client: Side,
    client_head: Vec<u8>,
    server: Side,
    server_head: Vec<u8>,
    owed: VecDeque<Owed>,
    /// Close once the owed refusals are out (a denied request whose body cannot be skipped).
    closing: bool,
    inspector: Option<Arc<dyn Inspector>>,
    /// Response payloads through the sensors (created with the first response body).
    responses: Option<Box<dyn StreamInspector>>,
    /// Empty lines skipped before the request line being read.
    empty_lines: usize,
    /// The upgrade request awaiting its answer offered WebSocket (and sensors apply).
    websocket: bool,
    /// The response body being read is compressed: inflated for the sensors.
    inflate: Option<coding::Inflater>,
    /// After a switch to WebSocket with sensors on: the server's frames, read for their
    /// payloads.
    server_frames: Option<websocket::Payloads>,
}

impl Default for HttpSession {
    fn default() -> Self {
        HttpSession::new()
    }
}

/// The end of a head (`\r\n\r\n` or a bare `\n\n`), as the index after it.
fn head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The request's head without its offer to upgrade to h2c, or None if it makes none.
/// After a `101` to h2c the connection would carry HTTP/2 this session does not read, so
/// every later request would pass undecided; `Upgrade` and `HTTP2-Settings` are
/// hop-by-hop (RFC 9110 7.6.1 and 7.8, RFC 7540 3.2.1), so a proxy that does not take
/// the offer drops it and the server answers in HTTP/1.1. The bool: another protocol
/// (WebSocket) is still offered. Every `Upgrade` and `Connection` line is read, as bytes.
fn without_h2c(req: &httparse::Request) -> Option<(Vec<u8>, bool)> {
    let tokens = |v: &'_ [u8]| -> Vec<Vec<u8>> {
        v.split(|&c| c == b',')
            .map(|t| t.trim_ascii().to_vec())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let named = |h: &httparse::Header, n: &str| h.name.eq_ignore_ascii_case(n);
    let offered: Vec<Vec<u8>> = req
        .headers
        .iter()
        .filter(|h| named(h, "upgrade"))
        .flat_map(|h| tokens(h.value))
        .collect();
    let is_h2c = |t: &Vec<u8>| t.eq_ignore_ascii_case(b"h2c");
    if !offered.iter().any(is_h2c) {
        return None;
    }
    let others: Vec<Vec<u8>> = offered.into_iter().filter(|t| !is_h2c(t)).collect();
    let line = |h: &mut Vec<u8>, name: &[u8], values: &[Vec<u8>]| {
        h.extend_from_slice(name);
        h.extend_from_slice(b": ");
        h.extend_from_slice(&values.join(&b", "[..]));
        h.extend_from_slice(b"\r\n");
    };
    let mut h = format!("{} {} HTTP/1.{}\r\n", req.method?, req.path?, req.version?).into_bytes();
    let mut upgrade_written = false;
    for x in req.headers.iter() {
        if named(x, "http2-settings") {
            continue;
        }
        if named(x, "upgrade") {
            // The other offers, once, where the first Upgrade line was.
            if !others.is_empty() && !upgrade_written {
                line(&mut h, x.name.as_bytes(), &others);
                upgrade_written = true;
            }
            continue;
        }
        if named(x, "connection") {
            let keep: Vec<Vec<u8>> = tokens(x.value)
                .into_iter()
                .filter(|t| {
                    let hop = t.eq_ignore_ascii_case(b"http2-settings")
                        || (others.is_empty() && t.eq_ignore_ascii_case(b"upgrade"));
                    !hop
                })
                .collect();
            if !keep.is_empty() {
                line(&mut h, x.name.as_bytes(), &keep);
            }
            continue;
        }
        h.extend_from_slice(x.name.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(x.value);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    Some((h, !others.is_empty()))
}

/// The most of a compressed request body inflated for the sensors.
pub(crate) const INFLATED_BODY: usize = 1 << 20;

/// The head with every `name` field's value replaced by what `edit` makes of it (the
/// line dropped when it makes nothing); the head itself when it has no such field.
fn edit_field(head: Vec<u8>, name: &[u8], edit: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    // (Not the request line: it is no field, whatever it holds.)
    let fields = || head.split_inclusive(|&c| c == b'\n').skip(1);
    if !fields().any(|l| field_named(l, name).is_some()) {
        return head;
    }
    let mut lines = head.split_inclusive(|&c| c == b'\n');
    let mut out: Vec<u8> = lines.next().unwrap_or_default().to_vec();
    for l in lines {
        match field_named(l, name) {
            None => out.extend_from_slice(l),
            Some(v) => {
                if let Some(v) = edit(v) {
                    out.extend_from_slice(&l[..l.iter().position(|&c| c == b':').unwrap_or(0)]);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(&v);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    out
}

/// A header line's value if the line is field `name` (case-insensitive).
fn field_named<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&c| c == b':')?;
    line[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(name)
        .then(|| line[colon + 1..].trim_ascii())
}

pub(crate) use bulkhead_policy::l7::host_name;

/// The values of every `name` field, split at commas (RFC 9110 5.3: repeated fields
/// are one list), trimmed, empty elements dropped.
fn list<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Vec<&'a [u8]> {
    (headers.iter())
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|v| v.trim_ascii())
        .filter(|v| !v.is_empty())
        .collect()
}

/// How a request's body is framed (RFC 9112 6.3): None (no body), or Err with why
/// when the framing is invalid or ambiguous. These are the request-smuggling cases,
/// where a server behind the proxy could find another end of the body than the proxy
/// did and read the rest as a request nobody decided: Transfer-Encoding together with
/// Content-Length (nginx refuses it too), codings that do not end in one `chunked` (or
/// any in HTTP/1.0),
/// Content-Length values that are not digits or disagree.
fn request_body(headers: &[httparse::Header], http10: bool) -> Result<Option<Body>, &'static str> {
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    if has("transfer-encoding") {
        if has("content-length") {
            return Err("Transfer-Encoding with Content-Length");
        }
        // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 6.1).
        if http10 {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        let codings = list(headers, "transfer-encoding");
        let chunked = codings
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"));
        return match codings.last() {
            Some(last) if last.eq_ignore_ascii_case(b"chunked") && chunked.count() == 1 => {
                Ok(Some(Body::chunked()))
            }
            _ => Err("Transfer-Encoding not ending in chunked"),
        };
    }
    let mut length = None;
    for v in list(headers, "content-length") {
        let n = (v.len() <= 19 && v.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            .flatten();
        match (n, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(m)) if n == m => {}
            _ => return Err("invalid Content-Length"),
        }
    }
    // A field whose every element was empty is no length either.
    if length.is_none() && has("content-length") {
        return Err("invalid Content-Length");
    }
    Ok(length.filter(|&n| n > 0).map(Body::Length))
}

impl HttpSession {
    pub fn new() -> HttpSession {
        HttpSession {
            client: Side::Head,
            client_head: Vec::new(),
            server: Side::Head,
            server_head: Vec::new(),
            owed: VecDeque::new(),
            closing: false,
            inspector: None,
            responses: None,
            empty_lines: 0,
            websocket: false,
            inflate: None,
            server_frames: None,
        }
    }

    /// Sensors inspect every allowed request (head and body) and response body.
    pub fn with_inspector(mut self, inspector: Option<Arc<dyn Inspector>>) -> HttpSession {
        self.inspector = inspector;
        self
    }

    /// Forward an allowed request's head; its body (if any) follows as it comes.
    fn admit(&mut self, out: &mut Output, head: &[u8], is_head: bool) {
        out.to_server.extend_from_slice(head);
        self.owed.push_back(Owed::Response { head: is_head });
    }

    /// A held request's body is complete (or as long as is held): decide on the methods
    /// its form fields name, inspect, then forward it all or refuse it.
    fn conclude(
        &mut self,
        out: &mut Output,
        p: Pending,
        done: bool,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) {
        // A compressed body is judged on what it inflates to (as far as it is held).
        let inflated = p.inflate.and_then(|d| d.all(&p.payload, INFLATED_BODY));
        let body = inflated.as_deref().unwrap_or(&p.payload);
        let mut request = p.request;
        // Past what is held, a form is read on as it passes (see `Side::Form`).
        let mut tail = None;
        if let Some(f) = p.form {
            let fields = if done {
                form::method_fields(&f, body)
            } else {
                let mut scan = form::TailScan::new(f, body);
                let found = scan.found(false).to_vec();
                tail = Some(scan);
                found
            };
            with_fields(&mut request, &fields);
            if !fields.is_empty() && !decide(&request).allowed {
                self.refuse(out, false);
                self.client = if done {
                    Side::Head
                } else {
                    Side::Body(p.body, false)
                };
                out.decided.push(Decided {
                    request,
                    allowed: false,
                    refusal: Some("403 Forbidden".to_string()),
                    findings: Vec::new(),
                });
                return;
            }
        }
        let findings = match &self.inspector {
            Some(ins) => {
                let mut f = ins.http_request(&p.head, body);
                if !done {
                    // Longer than is held: inspected on its prefix only.
                    f.extend(ins.oversize(p.raw.len()));
                }
                f
            }
            None => Vec::new(),
        };
        let allowed = !blocks(&findings);
        if allowed {
            self.admit(out, &p.head, p.is_head);
            out.to_server.extend_from_slice(&p.raw);
        } else {
            self.refuse_with(out, refusal_with(false, BLOCKED_BODY), false);
        }
        self.client = match tail {
            _ if done => Side::Head,
            Some(scan) if allowed => Side::Form(Box::new(FormTail {
                body: p.body,
                decided: scan.found_count(),
                scan,
                request: request.clone(),
            })),
            _ => Side::Body(p.body, allowed),
        };
        out.decided.push(Decided {
            request,
            allowed,
            refusal: (!allowed).then(|| "403 Forbidden".to_string()),
            findings,
        });
    }

    /// The rest of a long form passes while it is read for `_method` fields; one that
    /// names a method policy refuses stops it: what is left of the body, its end
    /// included, never reaches the server, which so never has a whole request to run,
    /// and the client gets 403 and the connection closes.
    fn form_tail(
        &mut self,
        out: &mut Output,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> usize {
        let Side::Form(t) = &mut self.client else {
            return 0;
        };
        let scan = &mut t.scan;
        let (n, done) = match t.body.feed_payload(data, &mut |b| scan.feed(b)) {
            Ok(x) => x,
            Err(_) => {
                out.to_client.extend_from_slice(&refusal(true));
                out.close = true;
                return data.len();
            }
        };
        let fields = t.scan.found(done);
        if fields.len() > t.decided {
            t.decided = fields.len();
            let mut request = t.request.clone();
            with_fields(&mut request, fields);
            if !decide(&request).allowed {
                // Its response is owed no more: the server will not answer.
                if matches!(self.owed.back(), Some(Owed::Response { .. })) {
                    self.owed.pop_back();
                }
                self.refuse(out, true);
                self.closing = true;
                self.client = Side::Body(Body::UntilClose, false);
                out.decided.push(Decided {
                    request,
                    allowed: false,
                    refusal: Some("403 Forbidden".to_string()),
                    findings: Vec::new(),
                });
                return data.len();
            }
        }
        out.to_server.extend_from_slice(&data[..n]);
        if done {
            self.client = Side::Head;
        }
        n
    }

    /// Response payload through the sensors; false if a finding blocks it.
    fn scan_response(&mut self, out: &mut Output, payload: &[u8]) -> bool {
        let Some(ins) = &self.inspector else {
            return true;
        };
        if payload.is_empty() {
            return true;
        }
        let stream = self.responses.get_or_insert_with(|| ins.stream(true));
        let mut findings = Vec::new();
        let readable = match &mut self.inflate {
            Some(inf) => inf
                .feed(payload, &mut |text| findings.extend(stream.feed(text)))
                .is_ok(),
            None => {
                findings = stream.feed(payload);
                true
            }
        };
        if !readable {
            // Not what its Content-Encoding says: read as it is from here on.
            self.inflate = None;
            findings.extend(stream.feed(payload));
        }
        let ok = !blocks(&findings);
        out.findings.extend(findings);
        ok
    }

    fn refuse(&mut self, out: &mut Output, close: bool) {
        self.refuse_with(out, refusal(close), close);
    }

    fn refuse_with(&mut self, out: &mut Output, r: Vec<u8>, close: bool) {
        if self.owed.is_empty() {
            out.to_client.extend_from_slice(&r);
            out.close |= close;
        } else {
            self.owed.push_back(Owed::Refusal(r, close));
        }
    }

    /// Write refusals that are due (no response owed before them).
    fn release(&mut self, out: &mut Output) {
        while let Some(Owed::Refusal(..)) = self.owed.front() {
            if let Some(Owed::Refusal(r, close)) = self.owed.pop_front() {
                out.to_client.extend_from_slice(&r);
                out.close |= close;
            }
        }
    }
}

impl Session for HttpSession {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        let mut input: std::borrow::Cow<[u8]> = std::borrow::Cow::Borrowed(data);
        let mut i = 0;
        while i < input.len() && !out.close {
            let data = &input[i..];
            match &mut self.client {
                Side::Raw => {
                    out.to_server.extend_from_slice(data);
                    i = input.len();
                }
                Side::WebSocket(r) => {
                    if let Some(ins) = &self.inspector {
                        r.client_bytes(data, ins.as_ref(), &mut out);
                    }
                    i = input.len();
                }
                Side::Held(held) => {
                    if held.len() + data.len() > MAX_HEAD {
                        out.close = true;
                    }
                    held.extend_from_slice(data);
                    i = input.len();
                }
                Side::Inspect(p) => {
                    let room = MAX_INSPECT_BODY.saturating_sub(p.raw.len()).max(1);
                    let chunk = &data[..data.len().min(room)];
                    let payload = &mut p.payload;
                    match p
                        .body
                        .feed_payload(chunk, &mut |b| payload.extend_from_slice(b))
                    {
                        Ok((n, done)) => {
                            p.raw.extend_from_slice(&chunk[..n]);
                            i += n;
                            if (done || p.raw.len() >= MAX_INSPECT_BODY)
                                && let Side::Inspect(p) =
                                    std::mem::replace(&mut self.client, Side::Head)
                            {
                                self.conclude(&mut out, *p, done, decide);
                            }
                        }
                        Err(_) => {
                            out.to_client.extend_from_slice(&refusal(true));
                            out.close = true;
                        }
                    }
                }
                Side::Form(_) => {
                    i += self.form_tail(&mut out, data, decide);
                }
                Side::Body(body, forward) => {
                    let forward = *forward;
                    match body.feed(data) {
                        Ok((n, done)) => {
                            if forward {
                                out.to_server.extend_from_slice(&data[..n]);
                            }
                            i += n;
                            if done {
                                self.client = Side::Head;
                            }
                        }
                        Err(_) => {
                            out.to_client.extend_from_slice(&refusal(true));
                            out.close = true;
                        }
                    }
                }
                Side::Head => {
                    // Empty lines before a request line are ignored (RFC 9112 2.2), as
                    // many as the detector passes over: dropped, not forwarded.
                    // (A CR whose LF has not come yet waits in the head.)
                    if self.empty_lines < bulkhead_detect::HTTP_LEADING_EMPTY_LINES {
                        let n = match (self.client_head.as_slice(), data) {
                            ([], [b'\r', b'\n', ..]) => 2,
                            ([] | [b'\r'], [b'\n', ..]) => 1,
                            _ => 0,
                        };
                        if n > 0 {
                            self.client_head.clear();
                            self.empty_lines += 1;
                            i += n;
                            continue;
                        }
                    }
                    let room = MAX_HEAD.saturating_sub(self.client_head.len());
                    let take = data.len().min(room);
                    self.client_head.extend_from_slice(&data[..take]);
                    i += take;
                    let Some(end) = head_end(&self.client_head) else {
                        if self.client_head.len() >= MAX_HEAD {
                            out.to_client.extend_from_slice(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                            out.close = true;
                        }
                        continue;
                    };
                    let mut tail = self.client_head.split_off(end);
                    let head = std::mem::take(&mut self.client_head);
                    self.empty_lines = 0;
                    tail.extend_from_slice(&input[i..]);
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut req = httparse::Request::new(&mut headers);
                    let parsed = req.parse(&head);
                    let (Ok(httparse::Status::Complete(_)), Some(method), Some(path)) =
                        (parsed, req.method, req.path)
                    else {
                        out.to_client.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                        out.close = true;
                        continue;
                    };
                    let hdrs: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    // An absolute-form target names the host a server takes over
                    // `Host` (RFC 9112 3.2.2).
                    let authority = bulkhead_policy::l7::http_path::absolute_form(path);
                    let host = authority.map(|(a, _)| host_name(a)).or_else(|| {
                        header(req.headers, "host").map(|h| host_name(&String::from_utf8_lossy(h)))
                    });
                    // Two Host fields name two hosts, and servers differ on which
                    // counts: RFC 9112 3.2 has them refused (400), as nginx does.
                    let hosts = (req.headers.iter())
                        .filter(|h| h.name.eq_ignore_ascii_case("host"))
                        .count();
                    // Two Content-Type fields that differ: Node, Go and Tomcat read the
                    // first, others the last, so a body one reads as a form another reads
                    // as multipart, and the sensors would judge the wrong one.
                    let mut types = (req.headers.iter())
                        .filter(|h| h.name.eq_ignore_ascii_case("content-type"))
                        .map(|h| h.value.trim_ascii());
                    let first_type = types.next();
                    let types_differ = types.any(|t| Some(t) != first_type);
                    // A target is a path, `*`, an http(s) URL, or (CONNECT) an
                    // authority. Another scheme's URL (`foo://h/admin`) nginx and
                    // Express route by its path, which rules would not have seen.
                    let target_ok = path.starts_with('/')
                        || path == "*"
                        || authority.is_some()
                        || method.eq_ignore_ascii_case("CONNECT");
                    let body = match hosts {
                        _ if !target_ok => Err("a request target that is no path"),
                        _ if types_differ => Err("Content-Type fields that differ"),
                        0 | 1 => request_body(req.headers, req.version == Some(0)),
                        _ => Err("more than one Host"),
                    };
                    let expects_continue = header(req.headers, "expect")
                        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
                    let h2c = without_h2c(&req);
                    let upgrade = match &h2c {
                        Some((_, still)) => *still,
                        None => header(req.headers, "upgrade").is_some(),
                    };
                    let offers_websocket = list(req.headers, "upgrade")
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(b"websocket"));
                    // (Built only for the sensors: most requests have no coding.)
                    let inflate = header(req.headers, "content-encoding")
                        .filter(|_| self.inspector.is_some())
                        .and_then(coding::Inflater::for_coding);
                    let is_head = method.eq_ignore_ascii_case("HEAD");
                    // A POST form's `_method` fields are read before it goes on.
                    let form = method
                        .eq_ignore_ascii_case("POST")
                        .then(|| form::form_of_post(header(req.headers, "content-type")))
                        .flatten();
                    let request = L7Request {
                        app: AppProtocol::Http,
                        detail: L7Detail::Http {
                            method: method.to_string(),
                            path: path.to_string(),
                            host,
                            headers: hdrs,
                        },
                    };
                    let head = match h2c {
                        Some((stripped, _)) => stripped,
                        None => head,
                    };
                    // With sensors on, servers are asked only for codings they can read
                    // (the header is dropped when none is left).
                    let head = if self.inspector.is_some() {
                        edit_field(head, b"accept-encoding", coding::readable_accept_encoding)
                    } else {
                        head
                    };
                    let allowed = decide(&request).allowed;
                    let inspect = allowed && self.inspector.is_some();
                    let mut bad = None;
                    match (allowed, body) {
                        (true, Ok(Some(b))) if inspect || form.is_some() => {
                            // Held until its body is read; decided then. A client
                            // waiting for `100 Continue` (curl past 1 MiB, SDKs' PUTs)
                            // would wait for the server, which has not seen the request:
                            // the proxy says it, when no response is owed before it
                            // (the server may say it again: clients read any number).
                            if expects_continue && self.owed.is_empty() {
                                out.to_client
                                    .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                            }
                            self.client = Side::Inspect(Box::new(Pending {
                                head,
                                request,
                                is_head,
                                body: b,
                                raw: Vec::new(),
                                payload: Vec::new(),
                                inflate,
                                form,
                            }));
                            input = std::borrow::Cow::Owned(tail);
                            i = 0;
                            continue;
                        }
                        (true, Ok(None)) if inspect => {
                            // A WebSocket upgrade: its messages are inspected after the
                            // switch, which compression would hide (see `websocket`).
                            self.websocket = upgrade && offers_websocket;
                            let head = if self.websocket {
                                // (RFC 6455 9.1: an extension is used only if the client
                                // offered it.)
                                edit_field(head, b"sec-websocket-extensions", |_| None)
                            } else {
                                head
                            };
                            let p = Pending {
                                head,
                                request,
                                is_head,
                                body: Body::Length(0),
                                raw: Vec::new(),
                                payload: Vec::new(),
                                inflate: None,
                                form: None,
                            };
                            self.conclude(&mut out, p, true, decide);
                            if upgrade && matches!(out.decided.last(), Some(d) if d.allowed) {
                                self.client = Side::Held(Vec::new());
                            }
                            input = std::borrow::Cow::Owned(tail);
                            i = 0;
                            continue;
                        }
                        (true, Ok(body)) => {
                            self.admit(&mut out, &head, is_head);
                            if let Some(b) = body {
                                self.client = Side::Body(b, true);
                            } else if upgrade {
                                self.client = Side::Held(Vec::new());
                            }
                        }
                        (_, Err(why)) => {
                            // A body we cannot frame: refused as the server must
                            // (400, RFC 9112 6.3), and closed.
                            let r = format!(
                                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}\n",
                                why.len() + 1
                            );
                            self.refuse_with(&mut out, r.into_bytes(), true);
                            self.closing = true;
                            bad = Some(why);
                        }
                        (false, Ok(Some(_))) if expects_continue => {
                            // A client waiting for `100 Continue` sends no body after a
                            // final refusal (RFC 9110 10.1.1) and may send its next
                            // request instead, which reading on for the body would
                            // swallow: this refusal closes the connection (as nginx's).
                            self.refuse(&mut out, true);
                            self.closing = true;
                        }
                        (false, Ok(body)) => {
                            self.refuse(&mut out, false);
                            if let Some(b) = body {
                                self.client = Side::Body(b, false);
                            }
                        }
                    }
                    out.decided.push(Decided {
                        request,
                        allowed: allowed && bad.is_none(),
                        refusal: match bad {
                            Some(why) => Some(format!("400 Bad Request: {why}")),
                            None => (!allowed).then(|| "403 Forbidden".to_string()),
                        },
                        findings: Vec::new(),
                    });
                    if self.closing {
                        // Nothing more from this client reaches the server.
                        self.client = Side::Body(Body::UntilClose, false);
                    }
                    input = std::borrow::Cow::Owned(tail);
                    i = 0;
                }
            }
        }
        out
    }

    fn server_bytes(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        let inspecting = self.inspector.is_some();
        let mut input: std::borrow::Cow<[u8]> = std::borrow::Cow::Borrowed(data);
        let mut i = 0;
        while i < input.len() {
            let data = &input[i..];
            match &mut self.server {
                Side::Raw
                | Side::Held(_)
                | Side::Inspect(_)
                | Side::WebSocket(_)
                | Side::Form(_) => {
                    // WebSocket frames are read for their payloads; other bytes (or
                    // frames that turn out not to be) as they are.
                    let mut payloads = Vec::new();
                    let framed = (self.server_frames.as_mut()).is_some_and(|p| {
                        p.feed(&input[i..], &mut |b| payloads.extend_from_slice(b))
                    });
                    if !framed {
                        self.server_frames = None;
                    }
                    let scanned = if framed { &payloads[..] } else { &input[i..] };
                    if inspecting && !self.scan_response(&mut out, scanned) {
                        out.close = true;
                        break;
                    }
                    out.to_client.extend_from_slice(&input[i..]);
                    i = input.len();
                }
                Side::Body(body, _) => {
                    let mut payload = Vec::new();
                    let fed = body.feed_payload(data, &mut |b| {
                        if inspecting {
                            payload.extend_from_slice(b)
                        }
                    });
                    match fed {
                        Ok((n, done)) => {
                            if inspecting && !self.scan_response(&mut out, &payload) {
                                // Never write what carried a blocking finding.
                                out.close = true;
                                break;
                            }
                            let data = &input[i..];
                            out.to_client.extend_from_slice(&data[..n]);
                            i += n;
                            if done {
                                self.server = Side::Head;
                                self.release(&mut out);
                            }
                        }
                        Err(_) => {
                            self.server = Side::Raw;
                        }
                    }
                }
                Side::Head => {
                    let room = MAX_HEAD.saturating_sub(self.server_head.len());
                    let take = data.len().min(room);
                    self.server_head.extend_from_slice(&data[..take]);
                    i += take;
                    let Some(end) = head_end(&self.server_head) else {
                        if self.server_head.len() >= MAX_HEAD {
                            // Cannot frame it: stop ordering, keep forwarding.
                            out.to_client
                                .extend_from_slice(&std::mem::take(&mut self.server_head));
                            self.server = Side::Raw;
                        }
                        continue;
                    };
                    let mut tail = self.server_head.split_off(end);
                    let head = std::mem::take(&mut self.server_head);
                    tail.extend_from_slice(&input[i..]);
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    let parsed = matches!(resp.parse(&head), Ok(httparse::Status::Complete(_)));
                    if let Some(ins) = &self.inspector {
                        let mut found = ins.response_head(&head);
                        // A body in a coding the proxy does not read (the client was not
                        // offered it: `br`, `zstd`, codings stacked) cannot be read whole:
                        // the sensors' `oversize` setting decides whether it passes.
                        if let Some(coding) =
                            parsed.then(|| unreadable_coding(resp.headers)).flatten()
                        {
                            found.extend(ins.unreadable(&format!(
                                "response in content-encoding {coding} not read"
                            )));
                        }
                        let blocked = blocks(&found);
                        out.findings.extend(found);
                        if blocked {
                            // Never write what carried a blocking finding.
                            out.close = true;
                            break;
                        }
                    }
                    out.to_client.extend_from_slice(&head);
                    if !parsed {
                        self.server = Side::Raw;
                        input = std::borrow::Cow::Owned(tail);
                        i = 0;
                        continue;
                    }
                    let code = resp.code.unwrap_or(0);
                    // A switch the client asked for (its upgrade request holds its next
                    // bytes) to a protocol it offered: h2c offers were removed on the way.
                    let switches = matches!(self.client, Side::Held(_))
                        && header(resp.headers, "upgrade").is_some_and(|u| {
                            !u.trim_ascii().is_empty()
                                && !u
                                    .split(|&c| c == b',')
                                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c"))
                        });
                    if code == 101 && !switches {
                        // A 101 nobody asked for (a backend whose status code an attacker
                        // steers, WebSocket smuggling): going raw would pass the client's
                        // next requests undecided, and the server's bytes are no HTTP we
                        // can frame. The connection ends here.
                        self.server = Side::Raw;
                        out.close = true;
                        continue;
                    }
                    if code == 101 {
                        self.owed.pop_front();
                        self.server = Side::Raw;
                        let websocket = std::mem::take(&mut self.websocket)
                            && list(resp.headers, "upgrade")
                                .iter()
                                .any(|t| t.eq_ignore_ascii_case(b"websocket"));
                        if let Side::Held(held) = std::mem::replace(&mut self.client, Side::Raw) {
                            match &self.inspector {
                                Some(ins) if websocket => {
                                    self.server_frames = Some(Default::default());
                                    let mut r = Box::<websocket::Reader>::default();
                                    r.client_bytes(&held, ins.as_ref(), &mut out);
                                    self.client = Side::WebSocket(r);
                                }
                                _ => out.to_server.extend_from_slice(&held),
                            }
                        }
                    } else if (100..200).contains(&code) {
                        // Interim: the final response is still owed.
                    } else {
                        let head_req =
                            matches!(self.owed.pop_front(), Some(Owed::Response { head: true }));
                        if let Side::Held(held) = std::mem::replace(&mut self.client, Side::Head) {
                            // No upgrade: what the client sent meanwhile is parsed with
                            // its next bytes.
                            self.client_head = held;
                        }
                        let body = if head_req || code == 204 || code == 304 {
                            None
                        } else if let Some(te) = header(resp.headers, "transfer-encoding") {
                            if String::from_utf8_lossy(te)
                                .to_ascii_lowercase()
                                .trim_end()
                                .ends_with("chunked")
                            {
                                Some(Body::chunked())
                            } else {
                                Some(Body::UntilClose)
                            }
                        } else if let Some(cl) = header(resp.headers, "content-length") {
                            match std::str::from_utf8(cl)
                                .ok()
                                .and_then(|s| s.trim().parse::<u64>().ok())
                            {
                                Some(0) => None,
                                Some(n) => Some(Body::Length(n)),
                                None => Some(Body::UntilClose),
                            }
                        } else {
                            Some(Body::UntilClose)
                        };
                        self.inflate = match &body {
                            Some(_) if inspecting => header(resp.headers, "content-encoding")
                                .and_then(coding::Inflater::for_coding),
                            _ => None,
                        };
                        match body {
                            Some(b) => self.server = Side::Body(b, true),
                            None => self.release(&mut out),
                        }
                    }
                    input = std::borrow::Cow::Owned(tail);
                    i = 0;
                }
            }
        }
        out
    }
}
