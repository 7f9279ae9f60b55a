//! WebSocket messages for the sensors (RFC 6455). After an HTTP/1.1 upgrade the client's
//! frames are read: unmasked, a fragmented message joined, and each text or binary
//! message inspected before any frame of it reaches the server (up to
//! [`MAX_MESSAGE`]; a longer one is judged on that prefix and the rest streams, as
//! request bodies are). A blocking finding answers the client with a Close frame (1008,
//! policy violation) and ends the connection: the message never reaches the server.
//! Control frames (ping, pong, close) pass as they come.
//!
//! The server's messages go to the response scanner as one stream of their payloads
//! ([`Payloads`]), frame headers left out.
//!
//! Compressed messages (permessage-deflate) cannot be read here: the session removes
//! the client's offer of extensions from the upgrade request when sensors apply, so the
//! server accepts none, and a frame that still sets a reserved bit ends the connection
//! (RFC 6455 5.2: no extension was negotiated that defines it).

use crate::{Finding, Inspector, Output};

/// The most of one message held for the sensors.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The proxy's Close frame to the client: 1008 (policy violation), unmasked.
pub fn close_frame() -> Vec<u8> {
    let reason = b"blocked by a sensor";
    let mut f = vec![0x88, (2 + reason.len()) as u8, 0x03, 0xf0];
    f.extend_from_slice(reason);
    f
}

/// The client side of an upgraded connection.
#[derive(Debug, Default)]
pub struct Reader {
    /// The frame header being read.
    head: Vec<u8>,
    /// Payload bytes left in the current frame (None: reading a header).
    left: Option<u64>,
    mask: [u8; 4],
    /// Payload bytes of the current frame seen (the mask's phase).
    at: usize,
    /// The current frame is a control frame (passes at once).
    control: bool,
    /// The current frame ends its message.
    fin: bool,
    /// The current message's frames as sent, not yet forwarded.
    held: Vec<u8>,
    /// The current message's payload, unmasked (at most [`MAX_MESSAGE`]).
    message: Vec<u8>,
    /// The current message outgrew [`MAX_MESSAGE`]: judged on its prefix, the rest
    /// passes.
    passing: bool,
    /// Bytes of the current message did not fit in `message`.
    truncated: bool,
}

/// A frame's header.
struct FrameHead {
    /// Bytes the header takes.
    len: usize,
    fin: bool,
    opcode: u8,
    payload: u64,
    mask: [u8; 4],
}

/// The frame header at the start of `h`, once whole; Err if no client sends it (a
/// client's frames are masked; a server's are not, and are read either way).
fn parse_head(h: &[u8], client: bool) -> Result<Option<FrameHead>, &'static str> {
    let [b0, b1, ..] = *h else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err("a reserved bit set (no extension was negotiated)");
    }
    if client && b1 & 0x80 == 0 {
        return Err("a client frame without a mask");
    }
    let (len, at) = match b1 & 0x7f {
        126 => match h.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match h.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or([0xff; 8])), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let (mask, len_with_mask) = if b1 & 0x80 != 0 {
        let Some(m) = h.get(at..at + 4) else {
            return Ok(None);
        };
        ([m[0], m[1], m[2], m[3]], at + 4)
    } else {
        ([0; 4], at)
    };
    let opcode = b0 & 0x0f;
    if opcode & 0x08 != 0 && (len > 125 || b0 & 0x80 == 0) {
        return Err("a control frame too long or fragmented");
    }
    Ok(Some(FrameHead {
        len: len_with_mask,
        fin: b0 & 0x80 != 0,
        opcode,
        payload: len,
        mask,
    }))
}

/// Reads a frame header (at most 14 bytes) into `held` from `data`, which is advanced
/// past what belongs to it: Some once whole (then `held` is exactly the header), Err if
/// the bytes are no frame header (of a client's when `client`).
fn take_head(held: &mut Vec<u8>, data: &mut &[u8], client: bool) -> Result<Option<FrameHead>, ()> {
    let n = data.len().min(14 - held.len());
    held.extend_from_slice(&data[..n]);
    match parse_head(held, client) {
        Err(_) => Err(()),
        Ok(None) if held.len() < 14 => {
            *data = &data[n..];
            Ok(None)
        }
        Ok(None) => Err(()),
        Ok(Some(f)) => {
            // What went past the header goes back to the input.
            *data = &data[n - (held.len() - f.len)..];
            held.truncate(f.len);
            Ok(Some(f))
        }
    }
}

/// The server side of an upgraded connection, for the sensors: its frames are parsed
/// only to hand their data payloads to the response scanner as one stream, without the
/// frame headers (nor control frames) between them, so that what a message carries is
/// read whole even when it is split over frames. Nothing is held: the caller writes
/// the bytes once their payload is scanned.
#[derive(Debug, Default)]
pub struct Payloads {
    head: Vec<u8>,
    left: Option<u64>,
    mask: [u8; 4],
    at: usize,
    control: bool,
}

impl Payloads {
    /// Hands the data payload bytes in `data` to `f`; false once the bytes are not
    /// WebSocket frames (the caller then reads them as they are).
    pub fn feed(&mut self, mut data: &[u8], f: &mut dyn FnMut(&[u8])) -> bool {
        while !data.is_empty() {
            let Some(left) = self.left else {
                match take_head(&mut self.head, &mut data, false) {
                    Err(()) => return false,
                    Ok(None) => {}
                    Ok(Some(h)) => {
                        self.head.clear();
                        self.control = h.opcode & 0x08 != 0;
                        self.mask = h.mask;
                        self.at = 0;
                        self.left = (h.payload > 0).then_some(h.payload);
                    }
                }
                continue;
            };
            let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            if !self.control && self.mask == [0; 4] {
                // A server's frames are not masked: their bytes are the payload.
                f(&data[..n]);
            } else if !self.control {
                let payload: Vec<u8> = (data[..n].iter().enumerate())
                    .map(|(k, &c)| c ^ self.mask[(self.at + k) % 4])
                    .collect();
                f(&payload);
            }
            self.at += n;
            data = &data[n..];
            self.left = (left > n as u64).then(|| left - n as u64);
        }
        true
    }
}

impl Reader {
    /// The client's bytes: forwarded (in `out.to_server`) once the messages they carry
    /// are inspected; `out.close` when a message is blocked or the frames are not
    /// WebSocket's.
    pub fn client_bytes(&mut self, mut data: &[u8], ins: &dyn Inspector, out: &mut Output) {
        while !data.is_empty() && !out.close {
            let Some(left) = self.left else {
                match take_head(&mut self.head, &mut data, true) {
                    Err(()) => {
                        out.close = true;
                        return;
                    }
                    Ok(None) => {}
                    Ok(Some(f)) => {
                        let head = std::mem::take(&mut self.head);
                        self.control = f.opcode & 0x08 != 0;
                        self.fin = f.fin;
                        self.mask = f.mask;
                        self.at = 0;
                        self.left = Some(f.payload);
                        self.pass_or_hold(&head, out);
                        if f.payload == 0 {
                            self.frame_done(ins, out);
                        }
                    }
                }
                continue;
            };
            let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = &data[..n];
            self.pass_or_hold(chunk, out);
            if !self.control && !self.passing {
                let room = MAX_MESSAGE.saturating_sub(self.message.len());
                self.truncated |= chunk.len() > room;
                for (k, &c) in chunk.iter().take(room).enumerate() {
                    self.message.push(c ^ self.mask[(self.at + k) % 4]);
                }
            }
            self.at += n;
            data = &data[n..];
            let left = left - n as u64;
            self.left = Some(left);
            if left == 0 {
                self.frame_done(ins, out);
            } else if !self.control && !self.passing && self.held.len() > MAX_MESSAGE {
                // Too long to hold: judged on what is here, the rest streams.
                if self.judge(ins, out, true) {
                    self.passing = true;
                }
            }
        }
    }

    /// Bytes of the current frame: a control frame's and a streaming message's pass,
    /// a data message's are held.
    fn pass_or_hold(&mut self, b: &[u8], out: &mut Output) {
        if self.control || self.passing {
            out.to_server.extend_from_slice(b);
        } else {
            self.held.extend_from_slice(b);
        }
    }

    fn frame_done(&mut self, ins: &dyn Inspector, out: &mut Output) {
        self.left = None;
        if self.control || !self.fin {
            return;
        }
        if !self.passing {
            self.judge(ins, out, self.truncated);
        }
        self.passing = false;
        self.truncated = false;
        self.message.clear();
    }

    /// Inspect the message so far (`partial`: only its prefix will be): forward what is
    /// held, or block. True if it passed.
    fn judge(&mut self, ins: &dyn Inspector, out: &mut Output, partial: bool) -> bool {
        let mut found = ins.message(&self.message);
        if partial {
            found.extend(ins.oversize(self.message.len()));
        }
        let blocked = found.iter().any(|f: &Finding| f.block);
        out.findings.extend(found);
        if blocked {
            self.held.clear();
            out.to_client.extend(close_frame());
            out.close = true;
            return false;
        }
        out.to_server.append(&mut self.held);
        true
    }
}
