//! HTTP/2 frames and HPACK as the proxy writes and skims them: frame headers, the data
//! of padded DATA frames, header blocks of literals that never touch a dynamic table,
//! and the server's connection preface (RFC 9113, RFC 7541).

use crate::h2::{
    Bad, CONTINUATION, END_HEADERS, END_STREAM, FRAME, HEADERS, PADDED, PRIORITY, SETTINGS,
    WINDOW_UPDATE,
};

/// One frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Which bytes of a DATA frame's payload, as it passes in pieces, are data: a padded
/// frame's first byte is the pad length, and that many bytes at its end are padding
/// (RFC 9113 6.1). Neither is part of the body the peer reads, so neither is part of
/// what the sensors read: zeros between two frames' data would split a match.
#[derive(Clone, Copy, Default)]
pub(crate) struct Unpad {
    /// Payload bytes still to come.
    left: usize,
    padded: bool,
    /// The pad length, once read.
    pad: Option<usize>,
}

impl Unpad {
    pub(crate) fn new(flags: u8, len: usize) -> Unpad {
        Unpad {
            left: len,
            padded: flags & PADDED != 0,
            pad: None,
        }
    }

    /// The data in the payload's next `chunk` (no longer than what is left of it).
    pub(crate) fn data<'a>(&mut self, mut chunk: &'a [u8]) -> Result<&'a [u8], Bad> {
        if self.padded && self.pad.is_none() {
            let Some((&n, rest)) = chunk.split_first() else {
                return Ok(chunk);
            };
            self.left = self.left.saturating_sub(1);
            if usize::from(n) > self.left {
                return Err("bad padding");
            }
            self.pad = Some(usize::from(n));
            chunk = rest;
        }
        let data_left = self.left.saturating_sub(self.pad.unwrap_or(0));
        self.left = self.left.saturating_sub(chunk.len());
        Ok(&chunk[..chunk.len().min(data_left)])
    }
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn integer(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literals without indexing (no dynamic table entry on either side).
pub fn literal_block<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        integer(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        integer(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// HEADERS (+ CONTINUATION) frames carrying `block`.
pub(crate) fn header_frames(
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
) -> Vec<u8> {
    let mut flags = if end_stream { END_STREAM } else { 0 };
    let mut first = Vec::new();
    if let Some(p) = priority {
        flags |= PRIORITY;
        first.extend_from_slice(&p);
    }
    let take = block.len().min(FRAME - first.len());
    first.extend_from_slice(&block[..take]);
    let mut rest = block[take..].chunks(FRAME).peekable();
    if rest.peek().is_none() {
        flags |= END_HEADERS;
    }
    let mut out = frame(HEADERS, flags, stream, &first);
    while let Some(chunk) = rest.next() {
        let f = if rest.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        out.extend(frame(CONTINUATION, f, stream, chunk));
    }
    out
}

/// How many bytes of a header block are its leading dynamic table size updates.
pub(crate) fn size_updates(block: &[u8]) -> usize {
    let mut at = 0;
    while block.get(at).is_some_and(|b| b & 0xe0 == 0x20) {
        let start = at;
        at += 1;
        if block[start] & 0x1f == 0x1f {
            // Continuation bytes of the integer.
            while block.get(at).is_some_and(|b| b & 0x80 != 0) {
                at += 1;
            }
            at += 1;
        }
    }
    at.min(block.len())
}

/// How many leading bytes of `b` (a server's first bytes) are whole SETTINGS and
/// connection-level WINDOW_UPDATE frames: the server connection preface a client may
/// wait for before its first request (RFC 9113 3.4). They are numbers only (no header
/// block, nothing a sensor looks for), and a session that never saw them reads what
/// follows as one that did: it is between two server frames either way.
pub fn settings_frames(b: &[u8]) -> usize {
    let mut at = 0;
    while let Some(h) = b.get(at..at + 9) {
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if stream != 0 || !matches!(h[3], SETTINGS | WINDOW_UPDATE) || b.len() - at - 9 < len {
            break;
        }
        at += 9 + len;
    }
    at
}
