//! HTTP/2 responses through the sensors: what a server sends on an h2c connection, read
//! as the client will read it.
//!
//! Header blocks (HEADERS, PUSH_PROMISE and their CONTINUATIONs) are held until they end
//! and decoded in order with a decoder of the server's own HPACK table: their values are
//! Huffman-coded on the wire, so a card number in a response header is not in the bytes.
//! A response's fields go to the sensors as a head (`Inspector::response_head`) before any
//! frame of the block reaches the client, and a blocking finding ends the connection
//! instead. Bodies are read stream by stream on their DATA payloads, inflated first when
//! the response says `content-encoding: gzip` or `deflate` (the proxy removes
//! `accept-encoding` from requests, but a server may compress regardless).
//! A block that cannot be decoded, or is larger than [`MAX_BLOCK`], ends decoding for the
//! connection (the table is then out of step): from there on header blocks pass as they
//! come and are scanned as bytes, as other frames' payloads are.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::coding::Inflater;
use crate::h2::{
    CONTINUATION, END_HEADERS, HEADERS, MAX_BLOCK, MAX_TABLE, PADDED, PRIORITY, PUSH_PROMISE,
};
use crate::{Inspector, Output, StreamInspector};

/// Streams with a body scanner at once; the oldest goes first past this.
const MAX_STREAMS: usize = 4096;

struct Held {
    kind: u8,
    stream: u32,
    /// The frames as the server sent them.
    raw: Vec<u8>,
    /// The block's fragments (padding and priority fields removed).
    fragment: Vec<u8>,
    /// The current frame's type and flags, and where its payload starts in `raw`.
    frame: u8,
    flags: u8,
    payload_at: usize,
}

struct Body {
    scan: Box<dyn StreamInspector>,
    inflate: Option<Inflater>,
}

pub(crate) struct Responses {
    ins: Arc<dyn Inspector>,
    decoder: Option<loona_hpack::Decoder<'static>>,
    held: Option<Held>,
    bodies: BTreeMap<u32, Body>,
    rest: Option<Box<dyn StreamInspector>>,
}

/// What a held frame's end means for the bytes held.
pub(crate) enum Release {
    /// The block goes on (more frames to come): nothing to write yet.
    Wait,
    /// Write these (the whole block).
    Write(Vec<u8>),
    /// A sensor blocks the response: close instead.
    Block,
}

impl Responses {
    pub(crate) fn new(ins: Arc<dyn Inspector>) -> Responses {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE);
        Responses {
            ins,
            decoder: Some(decoder),
            held: None,
            bodies: BTreeMap::new(),
            rest: None,
        }
    }

    /// A server frame begins (its 9-byte header): is it held until its block ends?
    /// (A frame other than CONTINUATION inside a held block is the server's protocol
    /// error: [`Responses::interrupted`] first.)
    pub(crate) fn holds(&mut self, head: &[u8], kind: u8, flags: u8, stream: u32) -> bool {
        if self.decoder.is_none() {
            return false;
        }
        match (kind, &mut self.held) {
            (HEADERS | PUSH_PROMISE, None) => {
                self.held = Some(Held {
                    kind,
                    stream,
                    raw: head.to_vec(),
                    fragment: Vec::new(),
                    frame: kind,
                    flags,
                    payload_at: head.len(),
                });
                true
            }
            (CONTINUATION, Some(h)) => {
                h.frame = kind;
                h.flags = flags;
                h.raw.extend_from_slice(head);
                h.payload_at = h.raw.len();
                true
            }
            _ => false,
        }
    }

    /// Is a block held, which a frame of type `kind` would interrupt?
    pub(crate) fn interrupted_by(&self, kind: u8) -> bool {
        self.held.is_some() && kind != CONTINUATION
    }

    /// A block was interrupted: decoding stops, and what was held goes first.
    pub(crate) fn interrupted(&mut self, out: &mut Output) -> Release {
        self.give_up(out)
    }

    /// Payload bytes of a held frame.
    pub(crate) fn hold(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.held {
            h.raw.extend_from_slice(bytes);
        }
    }

    /// A held frame ended.
    pub(crate) fn frame_end(&mut self, out: &mut Output) -> Release {
        let Some(h) = &mut self.held else {
            return Release::Wait;
        };
        match fragment_of(h.frame, h.flags, &h.raw[h.payload_at..]) {
            Some(f) => h.fragment.extend_from_slice(f),
            None => return self.give_up(out),
        }
        if h.raw.len() > MAX_BLOCK {
            return self.give_up(out);
        }
        if h.flags & END_HEADERS == 0 {
            return Release::Wait;
        }
        let Some(h) = self.held.take() else {
            return Release::Wait;
        };
        let Some(fields) = self.decode(&h.fragment) else {
            self.held = Some(h);
            return self.give_up(out);
        };
        if h.kind == PUSH_PROMISE {
            // A promised request, not a response: decoded for the table's sake.
            return Release::Write(h.raw);
        }
        let mut head = b"HTTP/1.1 ".to_vec();
        let status = fields.iter().find(|(n, _)| n == b":status");
        head.extend_from_slice(status.map_or(&b"200"[..], |(_, v)| &v[..]));
        head.extend_from_slice(b"\r\n");
        let mut unread = None;
        for (n, v) in fields.iter().filter(|(n, _)| !n.starts_with(b":")) {
            head.extend_from_slice(n);
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
            if n == b"content-encoding" {
                match Inflater::for_coding(v) {
                    Some(inf) => self.body(h.stream).inflate = Some(inf),
                    None if !v.trim_ascii().eq_ignore_ascii_case(b"identity") => {
                        unread = Some(String::from_utf8_lossy(v).into_owned());
                    }
                    None => {}
                }
            }
        }
        head.extend_from_slice(b"\r\n");
        let mut found = self.ins.response_head(&head);
        // A body in a coding the proxy does not read: `oversize` decides (as HTTP/1).
        if let Some(coding) = unread {
            found.extend(
                self.ins
                    .unreadable(&format!("response in content-encoding {coding} not read")),
            );
        }
        let blocks = found.iter().any(|f| f.block);
        out.findings.extend(found);
        if blocks {
            Release::Block
        } else {
            Release::Write(h.raw)
        }
    }

    /// Decoding stops for good: the held frames go as they are, scanned as bytes.
    fn give_up(&mut self, out: &mut Output) -> Release {
        self.decoder = None;
        let Some(h) = self.held.take() else {
            return Release::Wait;
        };
        if self.scan_rest(out, &h.raw) {
            Release::Write(h.raw)
        } else {
            Release::Block
        }
    }

    fn decode(&mut self, fragment: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let decoder = self.decoder.as_mut()?;
        let mut fields = Vec::new();
        let mut size = 0usize;
        decoder
            .decode_with_cb(fragment, |n, v| {
                size += n.len() + v.len() + 32;
                if size <= MAX_BLOCK {
                    fields.push((n.into_owned(), v.into_owned()));
                }
            })
            .ok()?;
        (size <= MAX_BLOCK).then_some(fields)
    }

    fn body(&mut self, stream: u32) -> &mut Body {
        if !self.bodies.contains_key(&stream) && self.bodies.len() >= MAX_STREAMS {
            self.bodies.pop_first();
        }
        let ins = &self.ins;
        self.bodies.entry(stream).or_insert_with(|| Body {
            scan: ins.stream(true),
            inflate: None,
        })
    }

    /// A DATA payload of `stream` through its scanner; false if a finding blocks it.
    pub(crate) fn data(&mut self, out: &mut Output, stream: u32, bytes: &[u8]) -> bool {
        let body = self.body(stream);
        let mut found = Vec::new();
        let read = match &mut body.inflate {
            Some(inf) => inf
                .feed(bytes, &mut |text| found.extend(body.scan.feed(text)))
                .is_ok(),
            None => {
                found = body.scan.feed(bytes);
                true
            }
        };
        if !read {
            // Not what its content-encoding says: read as it is from here on.
            body.inflate = None;
            found.extend(body.scan.feed(bytes));
        }
        let ok = !found.iter().any(|f| f.block);
        out.findings.extend(found);
        ok
    }

    /// Other frames' payloads (and header blocks once decoding stopped), as bytes.
    pub(crate) fn scan_rest(&mut self, out: &mut Output, bytes: &[u8]) -> bool {
        let ins = &self.ins;
        let scan = self.rest.get_or_insert_with(|| ins.stream(true));
        let found = scan.feed(bytes);
        let ok = !found.iter().any(|f| f.block);
        out.findings.extend(found);
        ok
    }

    /// The stream ended (its last DATA, a reset): its body state goes.
    pub(crate) fn end(&mut self, stream: u32) {
        self.bodies.remove(&stream);
    }
}

/// The header block fragment in a frame's payload: HEADERS and PUSH_PROMISE may be
/// padded, HEADERS may carry a priority, PUSH_PROMISE carries the promised stream.
/// None: the padding is longer than the payload (a protocol error).
fn fragment_of(kind: u8, flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if kind == CONTINUATION {
        return Some(payload);
    }
    let (pad, mut p) = if flags & PADDED != 0 {
        (usize::from(*payload.first()?), &payload[1..])
    } else {
        (0, payload)
    };
    p = p.get(..p.len().checked_sub(pad)?)?;
    if kind == HEADERS && flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    if kind == PUSH_PROMISE {
        p = p.get(4..)?;
    }
    Some(p)
}
