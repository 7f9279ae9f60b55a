//! HTTP/1.x message bodies, framed without holding them: a known length, chunked
//! transfer coding (with trailers), or "until the connection closes".

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes still to pass.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the peer closes (responses without a length).
    UntilClose,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Reading a chunk-size line (held so far).
    Size(Vec<u8>),
    /// Chunk data plus its CRLF still to pass.
    Data(u64),
    /// Reading trailer lines; the held bytes of the current one.
    Trailer(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed;

impl Body {
    pub fn chunked() -> Body {
        Body::Chunked(Chunk::Size(Vec::new()))
    }

    /// Consume body bytes; returns how many and whether the body ended there.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), Malformed> {
        self.feed_payload(data, &mut |_| {})
    }

    /// [`Body::feed`], also handing the payload (the body without chunk framing) to
    /// `payload` piece by piece.
    pub fn feed_payload(
        &mut self,
        data: &[u8],
        payload: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), Malformed> {
        match self {
            Body::UntilClose => {
                payload(data);
                Ok((data.len(), false))
            }
            Body::Length(rem) => {
                let n = (*rem).min(data.len() as u64);
                *rem -= n;
                payload(&data[..n as usize]);
                Ok((n as usize, *rem == 0))
            }
            Body::Chunked(c) => {
                let mut i = 0;
                while i < data.len() {
                    match c {
                        Chunk::Data(rem) => {
                            let n = (*rem).min((data.len() - i) as u64);
                            // The last two bytes of a chunk are its CRLF, not payload.
                            let content = n.min(rem.saturating_sub(2)) as usize;
                            payload(&data[i..i + content]);
                            *rem -= n;
                            i += n as usize;
                            if *rem == 0 {
                                *c = Chunk::Size(Vec::new());
                            }
                        }
                        Chunk::Size(line) | Chunk::Trailer(line) => {
                            let rest = &data[i..];
                            let Some(p) = rest.iter().position(|&b| b == b'\n') else {
                                if line.len() + rest.len() > MAX_LINE {
                                    return Err(Malformed);
                                }
                                line.extend_from_slice(rest);
                                return Ok((data.len(), false));
                            };
                            if line.len() + p > MAX_LINE {
                                return Err(Malformed);
                            }
                            line.extend_from_slice(&rest[..p]);
                            i += p + 1;
                            let text = std::mem::take(line);
                            let text = text.strip_suffix(b"\r").unwrap_or(&text);
                            if matches!(c, Chunk::Trailer(_)) {
                                if text.is_empty() {
                                    return Ok((i, true));
                                }
                                continue;
                            }
                            let hex = text.split(|&b| b == b';').next().unwrap_or_default();
                            let hex = std::str::from_utf8(hex).map_err(|_| Malformed)?.trim();
                            let size = u64::from_str_radix(hex, 16).map_err(|_| Malformed)?;
                            *c = if size == 0 {
                                Chunk::Trailer(Vec::new())
                            } else {
                                Chunk::Data(size.checked_add(2).ok_or(Malformed)?)
                            };
                        }
                    }
                }
                Ok((i, false))
            }
        }
    }
}
