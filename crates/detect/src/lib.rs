//! Application protocol detection from the bytes of a connection, never from its port.
//!
//! A [`Detector`] is fed what each side sends, in order, and answers as soon as the
//! bytes prove a protocol (structure checked: lengths consistent, versions plausible,
//! not a single magic byte), or that none fits. It buffers a bounded prefix per
//! direction; the caller (the L7 proxy, or the offline `dpi detect`) calls
//! [`Detector::finish`] when it cannot wait longer. Server-speaks-first protocols (MySQL,
//! SSH, SMTP) are recognised from the server's greeting alone.
//!
//! Each protocol is a pure function from a prefix to [`Check`]: `No` (cannot be it),
//! `More` (a prefix of it, or too short to say) or `Yes` with what it saw.

pub mod capture;
mod db;
pub mod dns;
mod msg;
mod text;
pub mod tls;
mod web;

use bulkhead_policy::l7::AppProtocol;
use serde::Serialize;
use serde_json::{Map, Value};

/// What one protocol's check says of a prefix.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    No,
    More,
    /// This protocol unless later bytes say more precisely (HTTP/2 before the first
    /// request shows whether it is gRPC): the answer if no more bytes come.
    Likely(AppProtocol, Detail),
    Yes(AppProtocol, Detail),
}

/// What detection saw (SNI, method, server version...): a small JSON object.
pub type Detail = Map<String, Value>;

pub(crate) fn detail<const N: usize>(pairs: [(&str, Value); N]) -> Detail {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The answer of a detector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Detection {
    NeedMore,
    Known { app: AppProtocol, detail: Detail },
    Unknown,
}

/// Which side sent some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the side that opened the connection.
    ToServer,
    ToClient,
}

type CheckFn = fn(&[u8]) -> Check;

/// Checks on what the client sends first (order matters only for speed: the checks are
/// mutually exclusive on valid input).
const CLIENT: &[CheckFn] = &[
    web::http1_request,
    web::http2_preface,
    tls::client_check,
    db::redis_request,
    db::postgres_startup,
    db::mongodb,
    msg::kafka_request,
    msg::ldap,
    msg::mqtt_connect,
    msg::amqp_header,
    db::memcached_request,
    text::ssh_banner,
    text::smtp_client,
    dns::tcp_query,
    db::mysql_client,
];

/// Checks on what the server sends: greetings of server-first protocols, and answers
/// (offline captures may start mid-connection or hold only one direction).
const SERVER: &[CheckFn] = &[
    db::mysql_greeting,
    text::ssh_banner,
    text::smtp_greeting,
    tls::server_check,
    web::http1_response,
    db::redis_reply,
    msg::mqtt_connack,
    msg::amqp_header,
    msg::ldap,
    db::mongodb,
    dns::tcp_response,
];

/// Detection over one connection.
#[derive(Clone, Debug)]
pub struct Detector {
    client: Vec<u8>,
    server: Vec<u8>,
    limit: usize,
    answer: Option<Detection>,
    client_first: Option<bool>,
    /// The connection carries datagrams (UDP): each is judged on its own.
    datagrams: bool,
}

impl Detector {
    /// A stream detector that buffers at most `limit` bytes per direction.
    pub fn new(limit: usize) -> Detector {
        Detector {
            client: Vec::new(),
            server: Vec::new(),
            limit,
            answer: None,
            client_first: None,
            datagrams: false,
        }
    }

    /// A detector for a datagram flow (UDP): DNS is recognised per datagram.
    pub fn datagrams(limit: usize) -> Detector {
        Detector {
            datagrams: true,
            ..Detector::new(limit)
        }
    }

    pub fn answer(&self) -> Option<&Detection> {
        self.answer.as_ref()
    }

    pub fn feed(&mut self, dir: Dir, data: &[u8]) -> Detection {
        if let Some(a) = &self.answer {
            return a.clone();
        }
        if data.is_empty() {
            return Detection::NeedMore;
        }
        self.client_first.get_or_insert(dir == Dir::ToServer);
        if self.datagrams {
            return self.datagram(dir, data);
        }
        let buf = match dir {
            Dir::ToServer => &mut self.client,
            Dir::ToClient => &mut self.server,
        };
        let room = self.limit.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        let full = buf.len() >= self.limit;
        let d = self.judge(false);
        if d == Detection::NeedMore && full {
            return self.settle(Detection::Unknown);
        }
        d
    }

    /// No more bytes before a decision: the best answer from what was seen.
    pub fn finish(&mut self) -> Detection {
        if let Some(a) = &self.answer {
            return a.clone();
        }
        match self.judge(true) {
            Detection::NeedMore => self.settle(Detection::Unknown),
            d => d,
        }
    }

    fn settle(&mut self, d: Detection) -> Detection {
        self.answer = Some(d.clone());
        d
    }

    fn judge(&mut self, last: bool) -> Detection {
        let mut more = false;
        let mut likely = None;
        let mut found = None;
        'sides: for (buf, checks) in [(&self.client, CLIENT), (&self.server, SERVER)] {
            if buf.is_empty() {
                continue;
            }
            for check in checks {
                match check(buf) {
                    Check::Yes(app, detail) => {
                        found = Some(Detection::Known { app, detail });
                        break 'sides;
                    }
                    Check::Likely(app, detail) => {
                        more = true;
                        likely.get_or_insert(Detection::Known { app, detail });
                    }
                    Check::More => more = true,
                    Check::No => {}
                }
            }
        }
        if let Some(d) = found {
            return self.settle(d);
        }
        if more && !last {
            return Detection::NeedMore;
        }
        if let Some(d) = likely {
            return self.settle(d);
        }
        // Nothing fits. A server-first protocol can still be recognised if only the
        // client has spoken and it is a protocol whose server talks first... none is: a
        // client that speaks first in one of them would have matched its client check.
        if self.client.is_empty() && self.server.is_empty() {
            return Detection::NeedMore;
        }
        self.settle(Detection::Unknown)
    }

    fn datagram(&mut self, dir: Dir, data: &[u8]) -> Detection {
        // The first datagram seen may be an answer (a capture that starts late).
        let _ = dir;
        let check = match dns::udp_query(data) {
            Check::No => dns::udp_response(data),
            c => c,
        };
        match check {
            Check::Yes(app, detail) => self.settle(Detection::Known { app, detail }),
            // A datagram is whole: what does not parse now never will.
            _ => Detection::NeedMore,
        }
    }
}

/// Detect from complete per-direction prefixes (the offline tool, tests).
pub fn detect(client: &[u8], server: &[u8]) -> Detection {
    let mut d = Detector::new(usize::MAX);
    d.feed(Dir::ToServer, client);
    d.feed(Dir::ToClient, server);
    d.finish()
}

/// Big-endian integers from a slice, None when too short.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Printable ASCII (and space) only.
pub(crate) fn printable(b: &[u8]) -> bool {
    b.iter().all(|c| (0x20..0x7f).contains(c))
}

/// `Yes` for `app` with `detail`.
pub(crate) fn yes(app: AppProtocol, d: Detail) -> Check {
    Check::Yes(app, d)
}
