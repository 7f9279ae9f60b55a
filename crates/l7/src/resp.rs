//! Streaming RESP2/RESP3 framing: where one value ends, without holding its bytes.
//!
//! Redis values can be hundreds of megabytes; enforcement only needs to know where each
//! one ends (to keep refusals in order) and, for requests, the command name. The
//! [`Skipper`] walks values byte by byte with a stack of pending element counts and a
//! byte budget for bulk payloads; only header lines are buffered (bounded).

/// Longest header line accepted (`*3`, `$5`, `+OK`, `-ERR message`...).
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not RESP (unknown type byte, bad length).
    Protocol(String),
    /// A header line longer than [`MAX_LINE`].
    TooLong,
}

#[derive(Clone, Debug)]
enum State {
    Header,
    /// Bytes of a bulk payload (with its CRLF) still to pass.
    Bulk(u64),
}

/// Finds the end of one value at a time.
#[derive(Clone, Debug)]
pub struct Skipper {
    state: State,
    line: Vec<u8>,
    /// Elements still expected by each open aggregate, innermost last.
    stack: Vec<u64>,
    /// The type byte of the value being read at the top level ('>' for pushes).
    top_type: Option<u8>,
}

impl Default for Skipper {
    fn default() -> Self {
        Skipper::new()
    }
}

impl Skipper {
    pub fn new() -> Skipper {
        Skipper {
            state: State::Header,
            line: Vec::new(),
            stack: Vec::new(),
            top_type: None,
        }
    }

    /// A value of which `elements` more elements are expected (a command whose first
    /// element was read separately).
    pub fn remaining(elements: u64) -> Skipper {
        let mut s = Skipper::new();
        if elements > 0 {
            s.stack.push(elements);
        }
        s.top_type = Some(b'*');
        s
    }

    /// Nothing is open: the next byte starts a new value.
    pub fn at_boundary(&self) -> bool {
        self.stack.is_empty() && self.line.is_empty() && matches!(self.state, State::Header)
    }

    /// Consume bytes until one value is complete. Returns how many bytes were consumed
    /// and, if a value ended, its top-level type byte.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, Option<u8>), Error> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Bulk(rem) => {
                    let n = rem.min((data.len() - i) as u64);
                    i += n as usize;
                    if n == rem {
                        self.state = State::Header;
                        if let Some(t) = self.element_done() {
                            return Ok((i, Some(t)));
                        }
                    } else {
                        self.state = State::Bulk(rem - n);
                    }
                }
                State::Header => {
                    let rest = &data[i..];
                    match rest.iter().position(|&c| c == b'\n') {
                        None => {
                            if self.line.len() + rest.len() > MAX_LINE {
                                return Err(Error::TooLong);
                            }
                            self.line.extend_from_slice(rest);
                            i = data.len();
                        }
                        Some(p) => {
                            if self.line.len() + p > MAX_LINE {
                                return Err(Error::TooLong);
                            }
                            self.line.extend_from_slice(&rest[..p]);
                            i += p + 1;
                            let line = std::mem::take(&mut self.line);
                            let line = line.strip_suffix(b"\r").unwrap_or(&line);
                            if let Some(t) = self.header(line)? {
                                return Ok((i, Some(t)));
                            }
                        }
                    }
                }
            }
        }
        Ok((i, None))
    }

    /// One header line; Some(type) when it completed the top-level value.
    fn header(&mut self, line: &[u8]) -> Result<Option<u8>, Error> {
        let Some((&t, body)) = line.split_first() else {
            return Err(Error::Protocol("empty line".into()));
        };
        if self.stack.is_empty() {
            self.top_type = Some(t);
        }
        let n = || -> Result<i64, Error> {
            std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|n| *n >= -1)
                .ok_or_else(|| {
                    Error::Protocol(format!("bad length {:?}", String::from_utf8_lossy(body)))
                })
        };
        match t {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(self.element_done()),
            b'$' | b'=' | b'!' => match n()? {
                -1 => Ok(self.element_done()),
                len => {
                    self.state = State::Bulk(len as u64 + 2);
                    Ok(None)
                }
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let count = n()?;
                let count = match t {
                    b'%' => count * 2,
                    // An attribute is followed by the value it describes.
                    b'|' => count * 2 + 1,
                    _ => count,
                };
                if count <= 0 {
                    Ok(self.element_done())
                } else {
                    self.stack.push(count as u64);
                    Ok(None)
                }
            }
            other => Err(Error::Protocol(format!(
                "unknown type byte {:?}",
                other as char
            ))),
        }
    }

    fn element_done(&mut self) -> Option<u8> {
        while let Some(top) = self.stack.last_mut() {
            *top -= 1;
            if *top > 0 {
                return None;
            }
            self.stack.pop();
        }
        self.top_type.take()
    }
}
