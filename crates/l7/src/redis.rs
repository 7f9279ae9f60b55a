//! Redis: each command (RESP array or inline) is decided on its name; denied commands get
//! `-ERR` in order, after the replies to the commands before them.
//!
//! Order is kept by a queue of what the client is owed: a server reply for each command
//! forwarded, or a refusal. Replies are framed with [`Skipper`] (streamed, not held); a
//! refusal at the head of the queue is written as soon as the replies before it are.
//! Pub/sub (RESP2 subscribe mode, MONITOR) breaks the one-reply-per-command rule, so
//! from then on refusals are written at once. RESP3 push messages are not replies.
//!
//! A transaction keeps Redis's own rule: a command refused while queued (as Redis's ACL
//! refuses one) dirties it, and its `EXEC` fails with `-EXECABORT` instead of running
//! the commands that were allowed; the server gets `DISCARD` in its place, whose `+OK`
//! the client never sees. Without this, a refusal would leave half a transaction run.

use std::collections::VecDeque;

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::resp::{MAX_LINE, Skipper};
use crate::{Decided, Output, Session, Verdict};

/// Bytes of a command held until its name is known (`*N\r\n$L\r\nNAME\r\n`).
const MAX_HEAD: usize = 4096;

#[derive(Debug)]
enum Owed {
    Reply,
    Refusal(Vec<u8>),
    /// The server's reply is read, not forwarded; these bytes go in its place.
    Replace(Vec<u8>),
}

const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
const DISCARD: &[u8] = b"*1\r\n$7\r\nDISCARD\r\n";

#[derive(Debug)]
enum Client {
    /// Between commands, or reading a command's head (held in `head`).
    Head,
    /// Streaming the rest of a decided command.
    Body { skip: Skipper, allowed: bool },
}

pub struct RedisSession {
    client: Client,
    head: Vec<u8>,
    owed: VecDeque<Owed>,
    replies: Skipper,
    /// Replies can no longer be matched to commands (pub/sub, MONITOR, a server we could
    /// not parse): refusals go out at once.
    unordered: bool,
    /// Inside `MULTI`: whether a queued command was refused.
    multi: Option<bool>,
}

impl Default for RedisSession {
    fn default() -> Self {
        RedisSession::new()
    }
}

impl RedisSession {
    pub fn new() -> RedisSession {
        RedisSession {
            client: Client::Head,
            head: Vec::new(),
            owed: VecDeque::new(),
            replies: Skipper::new(),
            unordered: false,
            multi: None,
        }
    }

    fn refusal(command: &str) -> Vec<u8> {
        let shown: String = command
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        format!("-NOPERM bulkhead: command '{shown}' is not allowed by policy\r\n").into_bytes()
    }

    /// A decided command's refusal, now or once the replies before it are written.
    fn refuse(&mut self, out: &mut Output, command: &str) {
        let r = Self::refusal(command);
        if self.unordered || self.owed.is_empty() {
            out.to_client.extend_from_slice(&r);
        } else {
            self.owed.push_back(Owed::Refusal(r));
        }
    }

    /// Parse the command head at the start of `h`: (upper-case name, arguments after
    /// it, bytes of the head); Ok(None) if incomplete.
    fn parse_head(h: &[u8]) -> Result<Option<(String, u64, usize)>, String> {
        if h.first() == Some(&b'*') {
            let line = |at: usize| -> Option<(&[u8], usize)> {
                let rest = h.get(at..)?;
                let p = rest.iter().position(|&c| c == b'\n')?;
                Some((
                    rest[..p].strip_suffix(b"\r").unwrap_or(&rest[..p]),
                    at + p + 1,
                ))
            };
            let num = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i64>().ok();
            let Some((n, at)) = line(0) else {
                return Ok(None);
            };
            let n = num(&n[1..]).ok_or("bad array length")?;
            if n <= 0 {
                // `*0` / `*-1`: nothing to run; Redis ignores it.
                return Ok(Some((String::new(), 0, at)));
            }
            let Some((l, at)) = line(at) else {
                return Ok(None);
            };
            if l.first() != Some(&b'$') {
                return Err("command name is not a bulk string".into());
            }
            let len = num(&l[1..])
                .filter(|l| (0..=64).contains(l))
                .ok_or("bad command name length")? as usize;
            let Some(name) = h.get(at..at + len) else {
                return Ok(None);
            };
            if h.len() < at + len + 2 {
                return Ok(None);
            }
            let name = String::from_utf8_lossy(name).to_ascii_uppercase();
            Ok(Some((name, n as u64 - 1, at + len + 2)))
        } else {
            // Inline: one line of words.
            let Some(p) = h.iter().position(|&c| c == b'\n') else {
                return Ok(None);
            };
            let line = &h[..p];
            // Words as Redis splits them (`sdssplitargs`: C's isspace, with \v).
            let word = line
                .split(|&c| c.is_ascii_whitespace() || c == 0x0b)
                .find(|w| !w.is_empty())
                .unwrap_or_default();
            // Redis unquotes a word (`"FLUSH"ALL` runs FLUSHALL, `"\x46LUSHALL"` too):
            // a quoted name is not decided here, and the connection closes (the socket
            // path refuses it as well).
            if word.iter().any(|&c| c == b'"' || c == b'\'') {
                return Err("a quoted inline command name".into());
            }
            Ok(Some((
                String::from_utf8_lossy(word).to_ascii_uppercase(),
                0,
                p + 1,
            )))
        }
    }
}

impl RedisSession {
    /// A command whose head (`head`: its bytes, `name`, `rest` arguments after the name)
    /// is read: decided, forwarded or refused, and the rest of it streamed likewise.
    fn command(
        &mut self,
        out: &mut Output,
        head: &[u8],
        name: String,
        rest: u64,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) {
        if name.is_empty() {
            out.to_server.extend_from_slice(head);
            return;
        }
        let request = L7Request {
            app: AppProtocol::Redis,
            detail: L7Detail::Redis { command: name },
        };
        let L7Detail::Redis { command: name } = &request.detail else {
            unreachable!("built above")
        };
        let allowed = decide(&request).allowed;
        let dirty_exec = allowed && name == "EXEC" && self.multi == Some(true);
        if allowed {
            match name.as_str() {
                "MULTI" if self.multi.is_none() => self.multi = Some(false),
                "EXEC" | "DISCARD" => self.multi = None,
                _ => {}
            }
        } else if let Some(dirty) = &mut self.multi {
            *dirty = true;
        }
        if dirty_exec {
            // Not `EXEC`: the queued commands must not run without the refused one.
            out.to_server.extend_from_slice(DISCARD);
            self.owed.push_back(Owed::Replace(EXECABORT.to_vec()));
        } else if allowed {
            out.to_server.extend_from_slice(head);
            self.owed.push_back(Owed::Reply);
            if matches!(
                name.as_str(),
                "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "MONITOR"
            ) {
                self.unordered = true;
            }
        } else {
            self.refuse(out, name);
        }
        let refusal = (!allowed).then(|| {
            String::from_utf8_lossy(&Self::refusal(name))
                .trim_end()
                .to_string()
        });
        out.decided.push(Decided {
            refusal,
            request,
            allowed,
            findings: Vec::new(),
        });
        if rest > 0 {
            self.client = Client::Body {
                skip: Skipper::remaining(rest),
                allowed,
            };
        }
    }
}

impl Session for RedisSession {
    fn client_bytes(
        &mut self,
        data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        // Most of the input goes on to the server: one allocation, not one per command.
        out.to_server.reserve(data.len());
        // Bytes read past a command's head go back in front of the input (a loop, not
        // recursion: thousands of tiny pipelined commands must not grow the stack).
        let mut input: std::borrow::Cow<[u8]> = std::borrow::Cow::Borrowed(data);
        let mut i = 0;
        while i < input.len() {
            let data = &input[i..];
            match &mut self.client {
                Client::Body { skip, allowed } => {
                    let allowed = *allowed;
                    match skip.feed(data) {
                        Ok((n, done)) => {
                            if allowed {
                                out.to_server.extend_from_slice(&data[..n]);
                            }
                            i += n;
                            if done.is_some() || skip.at_boundary() {
                                self.client = Client::Head;
                            }
                        }
                        Err(_) => {
                            out.close = true;
                            return out;
                        }
                    }
                }
                Client::Head => {
                    // A whole head in the input (the common case, pipelined or not) is
                    // decided in place: no copy of what follows it. (Within the first
                    // take below: with nothing held, that is MAX_HEAD.max(MAX_LINE).)
                    if self.head.is_empty()
                        && let Ok(Some((name, rest, used))) = Self::parse_head(data)
                        && used <= MAX_HEAD.max(MAX_LINE)
                    {
                        i += used;
                        self.command(&mut out, &data[..used], name, rest, decide);
                        continue;
                    }
                    // Otherwise take bytes up to the head's limit and wait for the rest.
                    let room = MAX_HEAD.max(if self.head.first() == Some(&b'*') {
                        0
                    } else {
                        MAX_LINE
                    });
                    let take = data.len().min(room.saturating_sub(self.head.len()).max(1));
                    self.head.extend_from_slice(&data[..take]);
                    i += take;
                    let parsed = match Self::parse_head(&self.head) {
                        Ok(p) => p,
                        Err(e) => {
                            out.to_client
                                .extend_from_slice(format!("-ERR bulkhead: {e}\r\n").as_bytes());
                            out.close = true;
                            return out;
                        }
                    };
                    let Some((name, rest, used)) = parsed else {
                        if self.head.len() >= room {
                            out.to_client.extend_from_slice(
                                b"-ERR bulkhead: request too large to inspect\r\n",
                            );
                            out.close = true;
                            return out;
                        }
                        continue;
                    };
                    // Bytes read past the head belong to what follows.
                    let mut tail = self.head.split_off(used);
                    let head = std::mem::take(&mut self.head);
                    tail.extend_from_slice(&input[i..]);
                    self.command(&mut out, &head, name, rest, decide);
                    input = std::borrow::Cow::Owned(tail);
                    i = 0;
                }
            }
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        out.to_client.reserve(data.len());
        while !data.is_empty() {
            if self.unordered {
                out.to_client.extend_from_slice(data);
                break;
            }
            let replaced = matches!(self.owed.front(), Some(Owed::Replace(_)));
            match self.replies.feed(data) {
                Ok((n, done)) => {
                    if !replaced {
                        out.to_client.extend_from_slice(&data[..n]);
                    }
                    data = &data[n..];
                    if let Some(t) = done
                        && t != b'>'
                    {
                        match self.owed.front() {
                            Some(Owed::Reply) => {
                                self.owed.pop_front();
                            }
                            Some(Owed::Replace(_)) => {
                                if let Some(Owed::Replace(r)) = self.owed.pop_front() {
                                    out.to_client.extend_from_slice(&r);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Err(_) => {
                    // A server we cannot frame: stop ordering, never stop forwarding.
                    self.unordered = true;
                    out.to_client.extend_from_slice(data);
                    break;
                }
            }
            while let Some(Owed::Refusal(_)) = self.owed.front() {
                if let Some(Owed::Refusal(r)) = self.owed.pop_front() {
                    out.to_client.extend_from_slice(&r);
                }
            }
        }
        if self.unordered {
            while let Some(o) = self.owed.pop_front() {
                if let Owed::Refusal(r) | Owed::Replace(r) = o {
                    out.to_client.extend_from_slice(&r);
                }
            }
        }
        out
    }
}
