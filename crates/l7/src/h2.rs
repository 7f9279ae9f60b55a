//! HTTP/2 with prior knowledge (h2c), and gRPC over it: every request (a HEADERS block
//! that opens a client stream) is decided before any byte of it reaches the server; a
//! gRPC request (`content-type: application/grpc...`) on its service and method (the
//! `:path` `/pkg.Service/Method`), any other on its method, path, authority and headers.
//!
//! Client frames are framed (9-byte header, length); HEADERS and CONTINUATION frames are
//! held until the block ends (`END_HEADERS`, at most [`MAX_BLOCK`]) and every block is
//! decoded in order with one HPACK decoder (`loona-hpack`), because the dynamic table is
//! connection state: a block that cannot be decoded closes the connection (it is never
//! passed unchecked). Other frames stream without being held.
//!
//! A denied request never reaches the server; the client gets, on that stream, a
//! trailers-only response (gRPC: `:status 200`, `grpc-status 7` PERMISSION_DENIED;
//! otherwise `:status 403`) with END_STREAM, followed by `RST_STREAM(NO_ERROR)` if the
//! client had not finished sending (RFC 9113 8.1). Frames the client still sends on a
//! refused stream are dropped, and the connection-level flow-control window that dropped
//! DATA consumed is given back to the client with a WINDOW_UPDATE. Other streams go on.
//!
//! HPACK: the server's decoder must see the same table updates as the client's encoder.
//! Dropping a refused block would desynchronise them, so from the first refusal on,
//! forwarded header blocks are re-encoded by the proxy (the same fields in the same order,
//! as literals that do not touch the dynamic table, so the server's table stays as the
//! last forwarded original left it). Until then, allowed blocks pass byte for byte.
//! The proxy's own header blocks are literals too: the client's table for the server's
//! blocks is never touched.
//!
//! Server frames are framed only to know where they end: the proxy's frames are written
//! between two server frames, never inside one nor inside a header block, and never
//! before the server's connection preface (its SETTINGS, which must be the first frame
//! a client gets, RFC 9113 3.4: curl's nghttp2 drops a connection whose first frame is
//! a refusal): they wait until the server's first frame has passed, or the client
//! acknowledged the server's SETTINGS (the proxy relayed them before the session began).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bulkhead_policy::l7::{AppProtocol, L7Request};

use crate::coding::Inflater;
use crate::form::{Form, TailScan, method_fields};
use crate::h2_request::{body_head, post_form};
pub use crate::h2_request::{grpc_path, http1_head, refusal, request_of};
use crate::h2_response::{Release, Responses};
pub(crate) use crate::h2_wire::Unpad;
pub use crate::h2_wire::{frame, literal_block, settings_frames};
use crate::h2_wire::{header_frames, size_updates};
use crate::http::{INFLATED_BODY, with_fields};
use crate::{Decided, Finding, Inspector, Output, Session, Verdict};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
pub(crate) const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
pub(crate) const SETTINGS: u8 = 4;
pub(crate) const PUSH_PROMISE: u8 = 5;
pub(crate) const WINDOW_UPDATE: u8 = 8;
pub(crate) const CONTINUATION: u8 = 9;
pub(crate) const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY: u8 = 0x20;

/// The most of one header block held (compressed, all its frames): gRPC's default
/// metadata limit is 8 KiB; servers rarely allow more than 64 KiB.
pub const MAX_BLOCK: usize = 256 * 1024;
/// The most one decoded header list may come to (indexed fields can expand).
const MAX_LIST: usize = 256 * 1024;
/// The largest HPACK dynamic table a client may ask for (size updates above are errors).
pub(crate) const MAX_TABLE: usize = 64 * 1024;
/// Refused streams remembered (their later frames are dropped).
const MAX_DENIED: usize = 4096;
/// Allowed streams remembered as still sending (trailers may follow).
const MAX_SENDING: usize = 4096;
/// Proxy frames waiting for the end of a server frame.
const MAX_PENDING: usize = 256 * 1024;
/// Frames the proxy writes are at most the size every peer accepts (RFC 9113 4.2).
pub(crate) const FRAME: usize = 16_384;
/// With sensors on: the most of one request body kept for them (as for HTTP/1), the
/// most of all open streams' bodies together, and the largest final DATA frame held
/// back until the body is inspected.
const MAX_BODY: usize = 64 * 1024;
const MAX_BODIES: usize = 1024 * 1024;
const MAX_HELD_FRAME: usize = 64 * 1024;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 3).
const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
/// RST_STREAM's CANCEL error code (RFC 9113 7).
const CANCEL: u32 = 0x8;
/// RST_STREAM's REFUSED_STREAM: not processed, the client may retry it (RFC 9113 8.7).
const REFUSED_STREAM: u32 = 0x7;
/// Why a stream whose body the proxy could not keep for the sensors was refused.
const UNREAD: &str = "stream refused (REFUSED_STREAM): too many bodies held for the sensors";
/// What a refusal is called when a sensor, not the policy, made it.
const BY_SENSOR: &str = "(blocked by a sensor)";

/// What ends an inspected request's body, when the sensors judge it.
enum Held {
    /// Its final DATA frame, held back (forwarded if nothing blocks).
    Frame(Vec<u8>),
    /// Its trailers (forwarded by the caller if nothing blocks).
    Trailers,
}

pub(crate) type Field = (Vec<u8>, Vec<u8>);

enum Client {
    /// Reading a frame header into `head`.
    Head,
    /// Holding a HEADERS or CONTINUATION payload of `len` bytes.
    Hold {
        len: usize,
    },
    /// Passing (or dropping) `left` bytes of a frame's payload; `body`: a DATA frame of
    /// a stream whose body the sensors read (the stream, and whether the frame ends it).
    Pass {
        left: usize,
        forward: bool,
        body: Option<(u32, bool)>,
        unpad: Unpad,
    },
    /// Holding the DATA frame of `len` bytes that ends a stream the sensors read: it
    /// reaches the server only once the body is inspected.
    HoldData {
        len: usize,
    },
    Closed,
}

/// A request whose body the sensors read: what they need of its head to cut the body
/// (its type; the rest was judged when the request was decided), and its body so far
/// (DATA payloads, at most [`MAX_BODY`]).
struct Inspecting {
    request: L7Request,
    head: Vec<u8>,
    body: Vec<u8>,
    /// What the head alone showed (reported when the request was decided).
    reported: Vec<Finding>,
    /// The server has begun its answer: a refusal can only reset the stream now.
    answered: bool,
    /// More body came than is kept: judged on its prefix.
    truncated: bool,
    /// A POST form: its `_method` fields are decided on once it ends (as over HTTP/1),
    /// read past the kept prefix by `scan`.
    form: Option<Form>,
    scan: Option<TailScan>,
    /// Its `content-encoding`, when the proxy reads it: the body is judged inflated,
    /// as over HTTP/1.
    inflate: Option<Inflater>,
    /// A gRPC call: each message is judged once whole, the frame that completes it
    /// held until then (a streaming call's server acts on each message as it comes,
    /// long before the stream ends).
    grpc: bool,
    /// One of its messages was blocked: the call is refused.
    blocked: bool,
}

/// A header block being gathered from HEADERS + CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    /// The frames as the client sent them.
    raw: Vec<u8>,
    fragment: Vec<u8>,
}

pub struct H2Session {
    preface: usize,
    client: Client,
    head: Vec<u8>,
    payload: Vec<u8>,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    last_stream: u32,
    reencode: bool,
    denied: BTreeSet<u32>,
    /// Allowed streams the client has not ended: the only ones trailers may come on.
    sending: BTreeSet<u32>,
    server_head: Vec<u8>,
    server_left: usize,
    server_in_block: bool,
    /// The client has the server's connection preface: the proxy's frames may follow.
    server_preface: bool,
    pending: Vec<u8>,
    inspector: Option<Arc<dyn Inspector>>,
    inspecting: BTreeMap<u32, Inspecting>,
    /// Bytes held in `inspecting`'s bodies.
    bodies: usize,
    /// The server frame being passed: its type, stream, and whether it ends the stream.
    server_frame: (u8, u32, bool),
    /// The data of the server frame being passed, if it is a DATA frame.
    server_unpad: Unpad,
    /// With sensors on, a server SETTINGS frame being passed (offset in its payload, the
    /// identifier of the setting there): it reaches the client with
    /// ENABLE_CONNECT_PROTOCOL off, so no client opens a WebSocket on a stream (RFC
    /// 8441), whose messages end no stream and would pass unread.
    settings: Option<(usize, u16)>,
    /// With sensors on, what the server sends goes through them (`h2_response`): header
    /// blocks decoded and judged before they pass, each response body in its stream's
    /// scanner (inflated if compressed), other payloads as bytes.
    responses: Option<Responses>,
    /// The server frame being passed is held in `responses` (part of a header block).
    server_holding: bool,
}

impl Default for H2Session {
    fn default() -> Self {
        H2Session::new()
    }
}

pub(crate) type Bad = &'static str;

/// Writes what a held header block releases; false if a sensor blocks it (the
/// connection closes instead).
fn release(out: &mut Output, r: Release) -> bool {
    match r {
        Release::Wait => true,
        Release::Write(bytes) => {
            out.to_client.extend_from_slice(&bytes);
            true
        }
        Release::Block => {
            out.close = true;
            false
        }
    }
}

impl H2Session {
    pub fn new() -> H2Session {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE);
        H2Session {
            preface: 0,
            client: Client::Head,
            head: Vec::new(),
            payload: Vec::new(),
            block: None,
            decoder,
            last_stream: 0,
            reencode: false,
            denied: BTreeSet::new(),
            sending: BTreeSet::new(),
            server_head: Vec::new(),
            server_left: 0,
            server_in_block: false,
            server_preface: false,
            pending: Vec::new(),
            inspector: None,
            inspecting: BTreeMap::new(),
            bodies: 0,
            server_frame: (0, 0, false),
            server_unpad: Unpad::default(),
            settings: None,
            responses: None,
            server_holding: false,
        }
    }

    /// A server frame's payload bytes through the sensors' scanners; false if a finding
    /// blocks them (they are then not written).
    fn scan_server(&mut self, out: &mut Output, chunk: &[u8]) -> bool {
        let (kind, stream, _) = self.server_frame;
        match &mut self.responses {
            None => true,
            // (Padding longer than its frame: the client would fail the connection.)
            Some(r) if kind == DATA => match self.server_unpad.data(chunk) {
                Ok(data) => r.data(out, stream, data),
                Err(_) => false,
            },
            Some(r) => r.scan_rest(out, chunk),
        }
    }

    /// Sensors inspect every allowed request: its head (path, query, headers, cookies)
    /// before it is forwarded, its body before the frame that ends it is.
    pub fn with_inspector(mut self, inspector: Option<Arc<dyn Inspector>>) -> H2Session {
        self.responses = inspector.clone().map(Responses::new);
        self.inspector = inspector;
        self
    }

    /// The server frame passed (or was held) whole; false if the connection closes.
    fn server_frame_end(&mut self, out: &mut Output) -> bool {
        let (_, stream, ends) = self.server_frame;
        if ends && let Some(r) = &mut self.responses {
            r.end(stream);
        }
        if !std::mem::take(&mut self.server_holding) {
            return true;
        }
        let Some(r) = &mut self.responses else {
            return true;
        };
        let released = r.frame_end(out);
        if !release(out, released) {
            self.client = Client::Closed;
            return false;
        }
        true
    }

    fn server_at_boundary(&self) -> bool {
        self.server_preface
            && self.server_head.is_empty()
            && self.server_left == 0
            && !self.server_in_block
    }

    /// A frame of the proxy's: now if the server is between frames, else once it is.
    fn answer(&mut self, out: &mut Output, bytes: &[u8]) {
        if self.server_at_boundary() {
            out.to_client.extend_from_slice(bytes);
        } else if self.pending.len() + bytes.len() > MAX_PENDING {
            out.close = true;
        } else {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// A complete frame header in `head`: decide where its payload goes.
    fn start_frame(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let h = std::mem::take(&mut self.head);
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, stream) = (
            h[3],
            u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        );
        if let Some(b) = &self.block
            && (kind != CONTINUATION || stream != b.stream)
        {
            return Err("frame inside a header block");
        }
        if kind == SETTINGS && h[4] & ACK != 0 && stream == 0 && !self.server_preface {
            // The server's SETTINGS reached the client without passing the session.
            self.server_preface = true;
            if self.server_at_boundary() {
                out.to_client.append(&mut self.pending);
            }
        }
        match kind {
            // A header block the server would decode and the proxy would not see.
            PUSH_PROMISE => return Err("PUSH_PROMISE from a client"),
            HEADERS | CONTINUATION => {
                if kind == CONTINUATION && self.block.is_none() {
                    return Err("CONTINUATION without HEADERS");
                }
                let held = self.block.as_ref().map_or(0, |b| b.raw.len());
                if held + 9 + len > MAX_BLOCK {
                    return Err("header block too large to inspect");
                }
                self.head = h;
                self.payload.clear();
                self.client = Client::Hold { len };
                if len == 0 {
                    self.held_frame(out, decide)?;
                }
            }
            _ => {
                if kind == DATA && len > 0 && self.starves(stream, len) {
                    // Not passed unread: the stream is refused, this frame dropped.
                    self.refuse_unread(out, stream);
                }
                let inspected = kind == DATA && self.inspecting.contains_key(&stream);
                let last = kind == DATA && h[4] & END_STREAM != 0;
                let grpc = inspected && self.inspecting.get(&stream).is_some_and(|st| st.grpc);
                if inspected && (last || grpc) && len <= MAX_HELD_FRAME {
                    self.head = h;
                    self.payload.clear();
                    self.client = Client::HoldData { len };
                    if len == 0 {
                        self.held_data(out, decide)?;
                    }
                    return Ok(());
                }
                let mut h = h;
                if inspected && last {
                    // Too large to hold (a server may allow frames up to 16 MiB): its
                    // bytes go on in a frame that does not end the stream, and the end
                    // follows in an empty DATA frame once the body is judged. The
                    // server never has a whole request the sensors or a `_method`
                    // field refuse, and the client gets the refusal, not a reset.
                    h[4] &= !END_STREAM;
                }
                let ends = last || kind == RST_STREAM;
                if ends {
                    self.sending.remove(&stream);
                }
                if kind == RST_STREAM {
                    // The client gave up on it.
                    self.reset(out, stream);
                }
                let forward = stream == 0 || !self.denied.contains(&stream);
                if forward {
                    out.to_server.extend_from_slice(&h);
                } else if kind == DATA && len > 0 {
                    // The client spent connection window on bytes the server never
                    // gets: the proxy acknowledges them in the server's place.
                    self.answer(
                        out,
                        &frame(WINDOW_UPDATE, 0, 0, &(len as u32).to_be_bytes()),
                    );
                }
                self.client = if len > 0 {
                    Client::Pass {
                        left: len,
                        forward,
                        body: inspected.then_some((stream, last)),
                        unpad: Unpad::new(h[4], len),
                    }
                } else {
                    Client::Head
                };
            }
        }
        Ok(())
    }

    /// The DATA frame that ends an inspected stream is whole: inspect the body, then
    /// forward the frame or refuse the request.
    fn held_data(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let mut f = std::mem::take(&mut self.head);
        let p = std::mem::take(&mut self.payload);
        self.client = Client::Head;
        let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
        let data = Unpad::new(f[4], p.len()).data(&p)?;
        self.body_bytes(stream, data);
        f.extend_from_slice(&p);
        if f[4] & END_STREAM == 0 {
            // A gRPC call's frame: the messages it completes are judged before it goes on.
            self.judge_messages(out, stream, f, decide);
            return Ok(());
        }
        self.sending.remove(&stream);
        self.end_of_body(out, stream, Held::Frame(f), decide);
        Ok(())
    }

    /// The whole gRPC messages at the front of a call's kept body (the `held` frame
    /// completed them) are judged and dropped from it: clean, the frame goes on; a blocking
    /// finding refuses the call as a body's would, the frame withheld. A message
    /// larger than is kept is judged on its prefix when the call ends (as a body is).
    fn judge_messages(
        &mut self,
        out: &mut Output,
        stream: u32,
        held: Vec<u8>,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) {
        let (Some(st), Some(ins)) = (self.inspecting.get_mut(&stream), &self.inspector) else {
            out.to_server.extend(held);
            return;
        };
        let mut end = 0;
        while let Some(h) = st.body.get(end..end + 5) {
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            if st.body.len() - end - 5 < len {
                break;
            }
            end += 5 + len;
        }
        if end == 0 || st.truncated {
            out.to_server.extend(held);
            return;
        }
        let found = ins.http_request(&st.head, &st.body[..end]);
        st.body.drain(..end);
        self.bodies -= end;
        st.blocked = found.iter().any(|f| f.block);
        for f in found {
            let seen = (st.reported.iter()).any(|r| r.class == f.class && r.location == f.location);
            if !seen || f.block {
                st.reported.push(f);
            }
        }
        if st.blocked {
            let answered = st.answered;
            // The client is still sending: once refused, it is told to stop.
            if self.end_of_body(out, stream, Held::Frame(held), decide) && !answered {
                self.answer(out, &frame(RST_STREAM, 0, stream, &0u32.to_be_bytes()));
            }
        } else {
            out.to_server.extend(held);
        }
    }

    /// Keep what a DATA frame of an inspected stream carries, within the bounds.
    fn body_bytes(&mut self, stream: u32, data: &[u8]) {
        if let Some(st) = self.inspecting.get_mut(&stream) {
            let room = MAX_BODY
                .saturating_sub(st.body.len())
                .min(MAX_BODIES.saturating_sub(self.bodies));
            let n = data.len().min(room);
            st.body.extend_from_slice(&data[..n]);
            st.truncated |= n < data.len();
            self.bodies += n;
            if n < data.len()
                && let Some(form) = &st.form
            {
                let scan = st
                    .scan
                    .get_or_insert_with(|| TailScan::new(form.clone(), &st.body));
                scan.feed(&data[n..]);
            }
        }
    }

    /// A held request's body ended: the sensors judge head and body, and a form's
    /// `_method` fields are decided on. On a blocking finding or a refused method the
    /// server never gets what ends the stream (`held`) and its stream is cancelled; the
    /// client gets the refusal, or a reset once the server has begun to answer. True
    /// when refused.
    fn end_of_body(
        &mut self,
        out: &mut Output,
        stream: u32,
        held: Held,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> bool {
        let Some(mut st) = self.inspecting.remove(&stream) else {
            if let Held::Frame(f) = held {
                out.to_server.extend(f);
            }
            return false;
        };
        self.bodies -= st.body.len();
        // A compressed body is judged on what it inflates to (as far as it is kept).
        let inflated = st
            .inflate
            .take()
            .and_then(|d| d.all(&st.body, INFLATED_BODY));
        let body = inflated.as_deref().unwrap_or(&st.body);
        let new: Vec<Finding> = match &self.inspector {
            Some(ins) => {
                let oversize = if st.truncated {
                    ins.oversize(st.body.len())
                } else {
                    Vec::new()
                };
                ins.http_request(&st.head, body)
                    .into_iter()
                    .chain(oversize)
                    .filter(|f| {
                        !st.reported
                            .iter()
                            .any(|r| r.class == f.class && r.location == f.location)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let by_sensor = st.blocked || new.iter().any(|f| f.block);
        // The methods the form names, as the application will run it.
        let mut by_policy = false;
        if !by_sensor {
            let fields = match (&mut st.scan, &st.form) {
                (Some(scan), _) => scan.found(true).to_vec(),
                (None, Some(form)) => method_fields(form, body),
                (None, None) => Vec::new(),
            };
            if !fields.is_empty() {
                with_fields(&mut st.request, &fields);
                by_policy = !decide(&st.request).allowed;
            }
        }
        let blocked = by_sensor || by_policy;
        let mut what = "";
        if !blocked {
            if let Held::Frame(f) = held {
                out.to_server.extend(f);
            }
        } else {
            if let Held::Frame(f) = &held
                && f.len() > 9
            {
                let n = (f.len() - 9) as u32;
                self.answer(out, &frame(WINDOW_UPDATE, 0, 0, &n.to_be_bytes()));
            }
            out.to_server
                .extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
            self.deny(stream);
            let bytes = if st.answered {
                what = "stream reset";
                frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes())
            } else {
                let (bytes, w) = refusal(stream, &st.request, by_sensor);
                what = w;
                bytes
            };
            self.answer(out, &bytes);
        }
        // Decided once, now that all of it was seen: what the head showed and the body.
        let mut findings = st.reported;
        findings.extend(new);
        out.decided.push(Decided {
            request: st.request,
            allowed: !blocked,
            refusal: match (by_sensor, by_policy) {
                (true, _) => Some(format!("{what} {BY_SENSOR}")),
                (false, true) => Some(what.to_string()),
                _ => None,
            },
            findings,
        });
        blocked
    }

    /// A stream whose body was being read was reset (by either side): its request is
    /// decided on what was seen, and the stream no longer read.
    fn reset(&mut self, out: &mut Output, stream: u32) {
        if let Some(st) = self.inspecting.remove(&stream) {
            self.bodies -= st.body.len();
            out.decided.push(Decided {
                request: st.request,
                allowed: true,
                refusal: None,
                findings: st.reported,
            });
        }
    }

    /// Whether the next `len` bytes of an inspected stream's body are more than the
    /// connection's budget for held bodies has room for (other streams took it).
    fn starves(&self, stream: u32, len: usize) -> bool {
        self.inspecting.get(&stream).is_some_and(|st| {
            let keep = len.min(MAX_BODY.saturating_sub(st.body.len()));
            keep > MAX_BODIES.saturating_sub(self.bodies)
        })
    }

    /// A stream whose body the sensors could not read (the connection's held bodies
    /// are at their limit) is refused, never passed unread: the server's stream is
    /// cancelled, the client's refused with REFUSED_STREAM, which it may retry.
    fn refuse_unread(&mut self, out: &mut Output, stream: u32) {
        let Some(st) = self.inspecting.remove(&stream) else {
            return;
        };
        self.bodies -= st.body.len();
        self.sending.remove(&stream);
        out.to_server
            .extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
        self.deny(stream);
        self.reencode = true;
        self.answer(
            out,
            &frame(RST_STREAM, 0, stream, &REFUSED_STREAM.to_be_bytes()),
        );
        out.decided.push(Decided {
            request: st.request,
            allowed: false,
            refusal: Some(UNREAD.to_string()),
            findings: st.reported,
        });
    }

    fn deny(&mut self, stream: u32) {
        self.denied.insert(stream);
        if self.denied.len() > MAX_DENIED {
            self.denied.pop_first();
        }
    }

    /// A HEADERS or CONTINUATION frame is whole (header in `head`, payload in `payload`).
    fn held_frame(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let h = std::mem::take(&mut self.head);
        let p = std::mem::take(&mut self.payload);
        self.client = Client::Head;
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if kind == HEADERS {
            if stream.is_multiple_of(2) {
                return Err("HEADERS on a stream a client cannot open");
            }
            let mut f: &[u8] = &p;
            let mut pad = 0;
            if flags & PADDED != 0 {
                let (&n, rest) = f.split_first().ok_or("bad padding")?;
                (pad, f) = (usize::from(n), rest);
            }
            let mut priority = None;
            if flags & PRIORITY != 0 {
                let pr: [u8; 5] = f
                    .get(..5)
                    .and_then(|x| x.try_into().ok())
                    .ok_or("bad priority")?;
                priority = Some(pr);
                f = &f[5..];
            }
            if pad > f.len() {
                return Err("bad padding");
            }
            let fragment = f[..f.len() - pad].to_vec();
            let mut raw = h;
            raw.extend_from_slice(&p);
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                raw,
                fragment,
            });
        } else {
            let b = self.block.as_mut().ok_or("CONTINUATION without HEADERS")?;
            b.raw.extend_from_slice(&h);
            b.raw.extend_from_slice(&p);
            b.fragment.extend_from_slice(&p);
        }
        if flags & END_HEADERS != 0 {
            let b = self.block.take().ok_or("no header block")?;
            self.complete(out, b, decide)?;
        }
        Ok(())
    }

    fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, Bad> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let r = self.decoder.decode_with_cb(block, |n, v| {
            size += n.len() + v.len() + 32;
            if size <= MAX_LIST {
                fields.push((n.into_owned(), v.into_owned()));
            }
        });
        if r.is_err() {
            return Err("header block cannot be decoded");
        }
        if size > MAX_LIST {
            return Err("header list too large to inspect");
        }
        Ok(fields)
    }

    fn forward(&self, out: &mut Output, b: &Block, fields: &[Field]) {
        if self.reencode {
            // The client's table size updates still reach the server (a server that
            // lowered its table size waits for one), then the fields as literals.
            let mut block = b.fragment[..size_updates(&b.fragment)].to_vec();
            block.extend(literal_block(fields.iter().map(|(n, v)| (&n[..], &v[..]))));
            out.to_server
                .extend(header_frames(b.stream, b.end_stream, b.priority, &block));
        } else {
            out.to_server.extend_from_slice(&b.raw);
        }
    }

    /// A whole header block: decode it (always, in order), then decide it if it opens a
    /// stream.
    fn complete(
        &mut self,
        out: &mut Output,
        b: Block,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let fields = self.decode(&b.fragment)?;
        if b.stream <= self.last_stream {
            // More of a refused stream, or trailers: never a request the server has not
            // seen decided (a HEADERS on a stream that is not open would be one).
            if self.denied.contains(&b.stream) {
                return Ok(());
            }
            if !self.sending.contains(&b.stream) {
                return Err("HEADERS on a stream that is not open");
            }
            if b.end_stream {
                self.sending.remove(&b.stream);
                // Trailers end an inspected body: a blocked one's never reach the
                // server (whose table then misses them: re-encode from now on).
                if self.end_of_body(out, b.stream, Held::Trailers, decide) {
                    self.reencode = true;
                    return Ok(());
                }
            }
            self.forward(out, &b, &fields);
            return Ok(());
        }
        self.last_stream = b.stream;
        let request = request_of(&fields);
        let mut allowed = decide(&request).allowed;
        // A WebSocket on a stream (extended CONNECT, RFC 8441): its messages end no
        // stream, so with sensors on it is refused, as the setting the client got says.
        let mut tunnel = false;
        if allowed && self.inspector.is_some() && fields.iter().any(|(n, _)| n == b":protocol") {
            allowed = false;
            tunnel = true;
        }
        // Two content-types that differ: Go and Node read the first (and grpc-go any
        // that names gRPC), the sensors and policy would read one of them: refused, as
        // over HTTP/1.
        let mut types = fields.iter().filter(|(n, _)| n == b"content-type");
        let first_type = types.next().map(|(_, v)| v.trim_ascii());
        let ambiguous = types.any(|(_, v)| Some(v.trim_ascii()) != first_type);
        if allowed && ambiguous {
            allowed = false;
        }
        // The sensors read an allowed request's head now, its body (if any) as it ends;
        // a POST form's body is held for its `_method` fields too.
        let mut findings = Vec::new();
        let mut blocked = false;
        let mut body_next = false;
        let mut unread = false;
        if allowed {
            if let Some(ins) = &self.inspector {
                let head = http1_head(&fields);
                findings = ins.http_request(&head, b"");
                blocked = findings.iter().any(|f| f.block);
            }
            let form = post_form(&fields);
            let read = self.inspector.is_some() || form.is_some();
            // As many bodies as are being read: another is refused, not passed unread.
            unread = read && !blocked && !b.end_stream && self.inspecting.len() >= MAX_SENDING;
            if read && !blocked && !b.end_stream && !unread {
                self.inspecting.insert(
                    b.stream,
                    Inspecting {
                        request: request.clone(),
                        head: body_head(&fields),
                        body: Vec::new(),
                        reported: findings.clone(),
                        answered: false,
                        truncated: false,
                        form,
                        scan: None,
                        inflate: fields
                            .iter()
                            .find(|(n, _)| n == b"content-encoding")
                            .filter(|_| self.inspector.is_some())
                            .and_then(|(_, v)| Inflater::for_coding(v)),
                        grpc: self.inspector.is_some() && matches!(request.app, AppProtocol::Grpc),
                        blocked: false,
                    },
                );
                body_next = true;
            }
        }
        let allowed = allowed && !blocked && !unread;
        let refusal = if allowed {
            if !b.end_stream {
                self.sending.insert(b.stream);
                if self.sending.len() > MAX_SENDING {
                    self.sending.pop_first();
                }
            }
            // With sensors on, the server is asked for an uncompressed answer: DATA the
            // response scanner reads (HTTP/2 bodies are not inflated here). The block
            // then differs from the client's: re-encoded from now on, as after a refusal.
            let mut fields = fields;
            if self.inspector.is_some() && fields.iter().any(|(n, _)| n == b"accept-encoding") {
                fields.retain(|(n, _)| n != b"accept-encoding");
                self.reencode = true;
            }
            self.forward(out, &b, &fields);
            None
        } else if unread {
            self.reencode = true;
            self.deny(b.stream);
            let rst = frame(RST_STREAM, 0, b.stream, &REFUSED_STREAM.to_be_bytes());
            self.answer(out, &rst);
            Some(UNREAD.to_string())
        } else {
            self.reencode = true;
            self.deny(b.stream);
            let (mut bytes, what) = refusal(b.stream, &request, blocked);
            if !b.end_stream {
                bytes.extend(frame(RST_STREAM, 0, b.stream, &[0, 0, 0, 0]));
            }
            self.answer(out, &bytes);
            Some(if blocked {
                format!("{what} {BY_SENSOR}")
            } else if tunnel {
                format!("{what} (a WebSocket over HTTP/2 cannot be inspected)")
            } else if ambiguous {
                format!("{what} (content-type fields that differ)")
            } else {
                what.to_string()
            })
        };
        // A request whose body the sensors are to read is decided (reported) once they
        // have: `end_of_body`.
        if !body_next {
            out.decided.push(Decided {
                request,
                allowed,
                refusal,
                findings,
            });
        }
        Ok(())
    }
}

impl Session for H2Session {
    fn client_bytes(
        &mut self,
        mut data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        while !data.is_empty() && !out.close {
            if self.preface < PREFACE.len() {
                let n = data.len().min(PREFACE.len() - self.preface);
                if data[..n] != PREFACE[self.preface..self.preface + n] {
                    out.close = true;
                    break;
                }
                out.to_server.extend_from_slice(&data[..n]);
                self.preface += n;
                data = &data[n..];
                continue;
            }
            let step = match &mut self.client {
                Client::Closed => break,
                Client::Pass {
                    left,
                    forward,
                    body,
                    unpad,
                } => {
                    let n = data.len().min(*left);
                    let chunk = &data[..n];
                    if *forward {
                        out.to_server.extend_from_slice(chunk);
                    }
                    *left -= n;
                    let (done, body) = (*left == 0, *body);
                    data = &data[n..];
                    match body.map(|(stream, _)| (stream, unpad.data(chunk))) {
                        Some((_, Err(e))) => Err(e),
                        read => {
                            if let Some((stream, Ok(text))) = read {
                                self.body_bytes(stream, text);
                            }
                            if done {
                                self.client = Client::Head;
                                if let Some((stream, true)) = body {
                                    let end = frame(DATA, END_STREAM, stream, &[]);
                                    self.end_of_body(&mut out, stream, Held::Frame(end), decide);
                                }
                            }
                            Ok(())
                        }
                    }
                }
                Client::HoldData { len } => {
                    let len = *len;
                    let n = data.len().min(len - self.payload.len());
                    self.payload.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if self.payload.len() == len {
                        self.held_data(&mut out, decide)
                    } else {
                        Ok(())
                    }
                }
                Client::Head => {
                    let n = data.len().min(9 - self.head.len());
                    self.head.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if self.head.len() == 9 {
                        self.start_frame(&mut out, decide)
                    } else {
                        Ok(())
                    }
                }
                Client::Hold { len } => {
                    let len = *len;
                    let n = data.len().min(len - self.payload.len());
                    self.payload.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if self.payload.len() == len {
                        self.held_frame(&mut out, decide)
                    } else {
                        Ok(())
                    }
                }
            };
            if step.is_err() {
                out.close = true;
            }
        }
        if out.close {
            self.client = Client::Closed;
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        if matches!(self.client, Client::Closed) {
            return out;
        }
        while !data.is_empty() {
            if self.server_left > 0 {
                let n = data.len().min(self.server_left);
                if self.server_holding {
                    if let Some(r) = &mut self.responses {
                        r.hold(&data[..n]);
                    }
                } else if !self.scan_server(&mut out, &data[..n]) {
                    // Never write what carried a blocking finding.
                    out.close = true;
                    self.client = Client::Closed;
                    return out;
                } else if let Some((at, id)) = &mut self.settings {
                    // ENABLE_CONNECT_PROTOCOL's value zeroed on the way.
                    for &b in &data[..n] {
                        let b = match *at % 6 {
                            0 => {
                                *id = u16::from(b) << 8;
                                b
                            }
                            1 => {
                                *id |= u16::from(b);
                                b
                            }
                            _ if *id == ENABLE_CONNECT_PROTOCOL => 0,
                            _ => b,
                        };
                        out.to_client.push(b);
                        *at += 1;
                    }
                } else {
                    out.to_client.extend_from_slice(&data[..n]);
                }
                self.server_left -= n;
                data = &data[n..];
                if self.server_left == 0 && !self.server_frame_end(&mut out) {
                    return out;
                }
            } else {
                // With sensors on, the frame header is written once whole (a held frame
                // is not written yet); without, as it comes.
                let n = data.len().min(9 - self.server_head.len());
                if self.responses.is_none() {
                    out.to_client.extend_from_slice(&data[..n]);
                }
                self.server_head.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.server_head.len() == 9 {
                    let h = std::mem::take(&mut self.server_head);
                    // Its first frame: the connection preface (once it has passed).
                    self.server_preface = true;
                    self.server_left =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    let (kind, flags) = (h[3], h[4]);
                    let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    let ends = (kind == DATA && flags & END_STREAM != 0) || kind == RST_STREAM;
                    self.server_frame = (kind, stream, ends);
                    self.server_unpad = Unpad::new(flags, self.server_left);
                    self.settings = (kind == SETTINGS && flags & ACK == 0 && stream == 0)
                        .then_some((0, 0))
                        .filter(|_| self.inspector.is_some());
                    if let Some(r) = &mut self.responses
                        && r.interrupted_by(kind)
                    {
                        let held = r.interrupted(&mut out);
                        if !release(&mut out, held) {
                            self.client = Client::Closed;
                            return out;
                        }
                    }
                    self.server_holding = match &mut self.responses {
                        Some(r) => r.holds(&h, kind, flags, stream),
                        None => false,
                    };
                    if !self.server_holding && self.responses.is_some() {
                        out.to_client.extend_from_slice(&h);
                    }
                    if kind == HEADERS
                        && let Some(st) = self.inspecting.get_mut(&stream)
                    {
                        st.answered = true;
                    }
                    // The server reset a stream whose body was being read: the client
                    // sends no more of it (and the table must not fill with such).
                    if kind == RST_STREAM {
                        self.reset(&mut out, stream);
                    }
                    // A header block passing unheld must not have the proxy's frames
                    // written inside it.
                    match kind {
                        HEADERS | PUSH_PROMISE | CONTINUATION if !self.server_holding => {
                            self.server_in_block = flags & END_HEADERS == 0;
                        }
                        _ => {}
                    }
                    if self.server_left == 0 && !self.server_frame_end(&mut out) {
                        return out;
                    }
                }
            }
            if self.server_at_boundary() {
                out.to_client.append(&mut self.pending);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// However a DATA payload arrives in pieces, `Unpad` gives exactly its data.
        #[test]
        fn unpad_gives_the_data_however_the_payload_is_cut(
            data in vec(any::<u8>(), 0..300),
            pad in proptest::option::of(any::<u8>()),
            cuts in vec(1usize..50, 0..10),
        ) {
            let payload = match pad {
                Some(p) => [&[p][..], &data, &vec![0; usize::from(p)]].concat(),
                None => data.clone(),
            };
            let flags = if pad.is_some() { PADDED } else { 0 };
            let mut u = Unpad::new(flags, payload.len());
            let (mut got, mut rest) = (Vec::new(), &payload[..]);
            for &c in cuts.iter().chain(std::iter::repeat(&usize::MAX)) {
                if rest.is_empty() {
                    break;
                }
                let n = c.min(rest.len());
                got.extend_from_slice(u.data(&rest[..n]).unwrap());
                rest = &rest[n..];
            }
            prop_assert_eq!(got, data);
        }

        /// A pad length longer than the rest of its frame is an error, never a panic.
        #[test]
        fn unpad_refuses_padding_longer_than_its_frame(len in 1usize..300, n: u8, cut in 1usize..300) {
            let payload = [&[n][..], &vec![0; len - 1]].concat();
            let mut u = Unpad::new(PADDED, len);
            let r = u.data(&payload[..cut.min(len)]);
            prop_assert_eq!(r.is_err(), usize::from(n) > len - 1);
        }
    }
}
