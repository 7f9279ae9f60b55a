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
    /// Chunk data still to pass.
    Data(u64),
    /// The CRLF that ends a chunk's data: how much of it has passed (0 or 1).
    DataEnd(u8),
    /// Reading trailer lines; the held bytes of the current one.
    Trailer(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed;

/// A chunk-size line's size: hex digits only (no sign, no blanks but those before an
/// extension), as every server reads them alike.
fn chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let hex = match line.iter().position(|&b| b == b';') {
        Some(p) => line[..p].trim_ascii_end(),
        None => line,
    };
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(Malformed);
    }
    let text = std::str::from_utf8(hex).map_err(|_| Malformed)?;
    u64::from_str_radix(text, 16).map_err(|_| Malformed)
}

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
                            payload(&data[i..i + n as usize]);
                            *rem -= n;
                            i += n as usize;
                            if *rem == 0 {
                                *c = Chunk::DataEnd(0);
                            }
                        }
                        // Exactly CRLF: a server that reads the data's end another way
                        // (nginx takes a bare LF) would read the next bytes as another
                        // chunk size than the proxy does, and run what it hid as a
                        // request (smuggling).
                        Chunk::DataEnd(seen) => {
                            if data[i] != b"\r\n"[usize::from(*seen)] {
                                return Err(Malformed);
                            }
                            i += 1;
                            *c = if *seen == 0 {
                                Chunk::DataEnd(1)
                            } else {
                                Chunk::Size(Vec::new())
                            };
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
                            // Lines end in CRLF (RFC 9112 7.1), never a bare LF.
                            let text = text.strip_suffix(b"\r").ok_or(Malformed)?;
                            if matches!(c, Chunk::Trailer(_)) {
                                if text.is_empty() {
                                    return Ok((i, true));
                                }
                                continue;
                            }
                            let size = chunk_size(text)?;
                            *c = if size == 0 {
                                Chunk::Trailer(Vec::new())
                            } else {
                                Chunk::Data(size)
                            };
                        }
                    }
                }
                Ok((i, false))
            }
        }
    }
}
