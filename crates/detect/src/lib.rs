//! Application protocol detection from the bytes of a connection, never from its port.
//!
//! A [`Detector`] is fed what each side sends, in order, and answers as soon as the
//! bytes prove a protocol (structure checked: lengths consistent, versions plausible,
//! not a single magic byte), or that none fits. It buffers a bounded prefix per
//! direction and gives up (`Unknown`) when a direction fills it; the caller (the L7 proxy,
//! or the offline `dpi detect`) calls [`Detector::finish`] when it cannot wait longer
//! (timeout, close). Server-speaks-first protocols (MySQL, SSH, SMTP) are recognised from
//! the server's greeting alone.
//!
//! Each protocol is a module of pure functions from a prefix to [`Check`]: `No` (cannot be
//! it), `More` (a prefix of it, or too short to say), `Likely` (it, unless later bytes say
//! more precisely) or `Yes` with what it saw. The parsers other parts reuse are public:
//! [`tls::client_hello`] (SNI, ALPN) and [`dns::question`].
//!
//! A detector built with [`Detector::new`] sees connections from their first byte (the
//! proxy). [`Detector::midstream`] is for captures that started after the connection
//! did: either side may hold requests or replies, and the bytes may begin inside a message.

mod amqp;
pub mod capture;
pub mod dns;
mod http1;
pub use http1::LEADING_EMPTY_LINES as HTTP_LEADING_EMPTY_LINES;
mod http2;
mod kafka;
mod ldap;
mod memcached;
mod mongodb;
mod mqtt;
mod mysql;
mod postgres;
mod proxy_header;
mod redis;
pub use redis::INLINE as REDIS_INLINE_COMMANDS;
mod smtp;
mod ssh;
pub mod tls;
mod wire;

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

impl Dir {
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}

/// Why a parser of a message that arrives in pieces returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A valid prefix: wait for more bytes.
    Incomplete,
    /// Not this message, whatever follows.
    Invalid,
}

type CheckFn = fn(&[u8]) -> Check;

/// What a client sends first. The order is a precedence: a check's `Yes` counts once
/// every check before it has said `No` (so the answer never depends on how the bytes were
/// split), and among `Likely` answers the first wins: a lowercase `get key` is memcached
/// unless the server's reply says Redis. [`CLIENT_TEXT`] comes after these.
const CLIENT: &[CheckFn] = &[
    http1::request,
    tls::client_check,
    http2::preface,
    dns::tcp_query,
    postgres::startup,
    mysql::handshake_response,
    mongodb::request,
    kafka::request,
    ldap::request,
    mqtt::connect,
    amqp::header,
    ssh::banner,
    smtp::hello,
];

/// What a server sends first: greetings of server-first protocols, and answers (the
/// client's bytes may be something no check knows while the server's reply proves the
/// protocol). [`SERVER_TEXT`] comes after these.
const SERVER: &[CheckFn] = &[
    mysql::greeting,
    ssh::banner,
    smtp::greeting,
    tls::server_check,
    http1::response,
    mqtt::connack,
    amqp::header,
    ldap::response,
    mongodb::reply,
    dns::tcp_response,
];

/// Lines any text protocol could write, and protocols whose clients always speak first:
/// memcached and Redis. From a connection's start, after a server that spoke first, they
/// are not run: an FTP session's `AUTH TLS` or a POP3 `QUIT` is no inline command, nor a
/// POP3 `+OK` greeting a reply (while an HTTP/2 server's early SETTINGS still lets the
/// client's preface say `http2`).
const CLIENT_TEXT: &[CheckFn] = &[memcached::request, redis::request];
const SERVER_TEXT: &[CheckFn] = &[redis::reply, memcached::response];

/// Only mid-connection, on either side: messages that never open a connection, and
/// resynchronisation on TLS records. In this order, in three lists: those that only a
/// client sends (`MIDSTREAM_REQUESTS`: their sender is the client) come between TLS
/// records and the rest.
const MIDSTREAM: &[CheckFn] = &[tls::records, ssh::kexinit];
/// Only mid-connection, before all others: HTTP/2 frames. A frame header's first bytes
/// also read as a Kafka request's size, API key and version, which would answer at once.
const MIDSTREAM_FIRST: &[CheckFn] = &[http2::frames];
const MIDSTREAM_REQUESTS: &[CheckFn] = &[postgres::message, mysql::command, smtp::envelope];
const MIDSTREAM_LAST: &[CheckFn] = &[mqtt::packets, amqp::frames, redis::resync, tls::resync];

/// Only mid-connection: answers a server sends to requests the capture did not see (it
/// started after them). Their sender is the server.
const MIDSTREAM_REPLIES: &[CheckFn] = &[postgres::replies, mysql::replies, memcached::replies];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Opening,
    Midstream,
    Datagrams,
}

/// Detection over one connection.
#[derive(Clone, Debug)]
pub struct Detector {
    client: Vec<u8>,
    server: Vec<u8>,
    limit: usize,
    mode: Mode,
    answer: Option<Detection>,
    /// The side whose bytes proved to be a client's (requests), when a check said so.
    requester: Option<Dir>,
    /// After an HTTP/1.1 request asking to upgrade to h2c was detected: the direction of
    /// the server's answer and its bytes so far, until they say whether it switched.
    upgrade: Option<(Dir, Vec<u8>)>,
    /// After an SMTP session was named: the client's bytes since, until they show
    /// whether it switched to TLS with STARTTLS (and what the TLS ClientHello said).
    starttls: Option<Vec<u8>>,
    /// From a connection's start: the server's bytes came before any of the client's.
    server_first: bool,
    /// Per direction (to the server, to the client): the length of a PROXY protocol
    /// header its bytes began with (0: none; None: not known yet). From a connection's
    /// start only the client's are read for one; mid-connection either side's may hold it
    /// (a capture that missed only the handshake), and that side is the client.
    headers: [Option<usize>; 2],
    proxied: Option<(Dir, Value)>,
}

/// The server's answer to an upgrade request is read up to this many bytes.
const MAX_UPGRADE_ANSWER: usize = 16 * 1024;
/// An SMTP client's commands are read this far for STARTTLS and the ClientHello after.
const MAX_STARTTLS: usize = 16 * 1024;

impl Detector {
    /// A detector for a connection seen from its first byte, buffering at most `limit`
    /// bytes per direction.
    pub fn new(limit: usize) -> Detector {
        Detector {
            client: Vec::new(),
            server: Vec::new(),
            limit,
            mode: Mode::Opening,
            answer: None,
            requester: None,
            upgrade: None,
            starttls: None,
            server_first: false,
            headers: [None, Some(0)],
            proxied: None,
        }
    }

    /// The length of the PROXY protocol header (a load balancer's, before the client's
    /// own bytes) that the client's stream began with; 0 when there was none. The
    /// protocol named is what follows it.
    pub fn prefix(&self) -> usize {
        self.headers[0].unwrap_or(0)
    }

    /// A detector for a connection whose beginning was not seen (a capture started after
    /// it): every check runs on both directions, plus checks for messages that only occur
    /// mid-connection. Which side is the client may be unknown: see
    /// [`Detector::requester`].
    pub fn midstream(limit: usize) -> Detector {
        Detector {
            mode: Mode::Midstream,
            headers: [None, None],
            ..Detector::new(limit)
        }
    }

    /// A gap lost bytes of a connection seen from its start: what came before it is
    /// judged as a stream that ended there (as [`Detector::finish`] would), so a request
    /// line whose headers the gap cut still says HTTP. True when that decided; else
    /// detection goes on after the gap ([`Detector::after_gap`]). Mid-connection, bytes
    /// before a gap are no better evidence than those after it.
    pub fn decide_before_gap(&mut self) -> bool {
        if self.answer.is_some() || self.mode != Mode::Opening {
            return self.answer.is_some();
        }
        let mut before = self.clone();
        let known = matches!(before.finish(), Detection::Known { .. });
        if known {
            *self = before;
        }
        known
    }

    /// Bytes of `lost` were lost to a gap (a capture that dropped packets): a
    /// mid-connection detector that keeps what the other direction sent so far and is
    /// to be fed `lost`'s bytes from after the gap. None once decided.
    pub fn after_gap(&self, lost: Dir) -> Option<Detector> {
        if self.answer.is_some() {
            return None;
        }
        let mut d = Detector::midstream(self.limit);
        match lost {
            Dir::ToServer => d.server = self.server.clone(),
            Dir::ToClient => d.client = self.client.clone(),
        }
        Some(d)
    }

    /// A detector for a datagram flow (UDP): each datagram is judged on its own (DNS).
    pub fn datagrams() -> Detector {
        Detector {
            mode: Mode::Datagrams,
            ..Detector::new(0)
        }
    }

    /// The final answer, once there is one.
    pub fn answer(&self) -> Option<&Detection> {
        self.answer.as_ref()
    }

    /// The direction whose bytes were a client's requests, if the check that decided
    /// says (a mid-connection capture may start with the server's bytes).
    pub fn requester(&self) -> Option<Dir> {
        self.requester
    }

    /// Whether bytes fed after the answer may still make it more precise: an HTTP/1.1
    /// request asking to upgrade to h2c is `http` at once (a proxy decides on it before
    /// the server sees it), and becomes `http2` if the server's answer, fed next, is
    /// `101 Switching Protocols` to h2c. A capture reader keeps feeding while this holds.
    pub fn refining(&self) -> bool {
        self.upgrade.is_some() || self.starttls.is_some()
    }

    /// More bytes from one side. Answers `NeedMore` until the bytes decide.
    pub fn feed(&mut self, dir: Dir, data: &[u8]) -> Detection {
        if self.answer.is_some() {
            if self.upgrade.as_ref().is_some_and(|(d, _)| *d == dir) {
                self.follow_upgrade(data);
            }
            if dir == Dir::ToServer && self.starttls.is_some() {
                self.follow_starttls(data);
            }
            return self.answer.clone().unwrap_or(Detection::Unknown);
        }
        if data.is_empty() {
            return Detection::NeedMore;
        }
        if self.mode == Mode::Datagrams {
            return self.datagram(dir, data);
        }
        if self.mode == Mode::Opening && self.client.is_empty() && self.server.is_empty() {
            self.server_first = dir == Dir::ToClient;
        }
        let buf = match dir {
            Dir::ToServer => &mut self.client,
            Dir::ToClient => &mut self.server,
        };
        let room = self.limit.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        // A full buffer is as far as this direction goes: decide now.
        let full = buf.len() >= self.limit;
        let side = usize::from(dir == Dir::ToClient);
        if self.headers[side].is_none() {
            let buf = match dir {
                Dir::ToServer => &mut self.client,
                Dir::ToClient => &mut self.server,
            };
            match proxy_header::header(buf) {
                proxy_header::Header::More if !full => return Detection::NeedMore,
                proxy_header::Header::Whole(n, detail) => {
                    buf.drain(..n);
                    self.headers[side] = Some(n);
                    self.proxied = Some((dir, detail));
                    if buf.is_empty() {
                        return Detection::NeedMore;
                    }
                }
                _ => self.headers[side] = Some(0),
            }
        }
        self.judge(full)
    }

    /// No more bytes before a decision: the best answer from what was seen.
    pub fn finish(&mut self) -> Detection {
        if let Some(a) = &self.answer {
            return a.clone();
        }
        // Datagrams are judged one by one as they come: none decided, none will.
        if self.mode == Mode::Datagrams {
            return self.settle(Detection::Unknown);
        }
        match self.judge(true) {
            Detection::NeedMore => self.settle(Detection::Unknown),
            d => d,
        }
    }

    fn settle(&mut self, mut d: Detection) -> Detection {
        if let Some((client, p)) = self.proxied.take()
            && let Detection::Known { detail, .. } = &mut d
        {
            detail.insert("proxy_protocol".into(), p);
            // Only a client sends the header.
            self.requester = Some(client);
        }
        let h2c = matches!(&d, Detection::Known { app: AppProtocol::Http, detail }
            if detail.contains_key("method")
                && detail
                    .get("upgrade")
                    .and_then(Value::as_str)
                    .is_some_and(http1::names_h2c));
        let smtp = matches!(
            &d,
            Detection::Known {
                app: AppProtocol::Smtp,
                ..
            }
        );
        self.answer = Some(d);
        if smtp && self.mode == Mode::Opening {
            // Read on for STARTTLS: the session's record says it went to TLS.
            self.starttls = Some(Vec::new());
            let seen = std::mem::take(&mut self.client);
            self.follow_starttls(&seen);
        }
        if h2c {
            // The answer comes from the side that did not send the request.
            let answers = self.requester.unwrap_or(Dir::ToServer).reverse();
            let seen = match answers {
                Dir::ToServer => std::mem::take(&mut self.client),
                Dir::ToClient => std::mem::take(&mut self.server),
            };
            self.upgrade = Some((answers, Vec::new()));
            self.follow_upgrade(&seen);
        }
        // Nothing is looked at again: give the buffers back.
        self.client = Vec::new();
        self.server = Vec::new();
        self.answer.clone().unwrap_or(Detection::Unknown)
    }

    /// The server's answer to an h2c upgrade request, as it arrives.
    fn follow_upgrade(&mut self, data: &[u8]) {
        let Some((_, buf)) = self.upgrade.as_mut() else {
            return;
        };
        let room = MAX_UPGRADE_ANSWER.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        match http1::switched_to_h2c(buf) {
            None if buf.len() < MAX_UPGRADE_ANSWER => return,
            Some(true) => {
                if let Some(Detection::Known { app, detail }) = &mut self.answer {
                    *app = AppProtocol::Http2;
                    detail.insert("upgraded".into(), Value::Bool(true));
                }
            }
            _ => {}
        }
        self.upgrade = None;
    }

    /// The client's bytes after an SMTP session was named, as they arrive.
    fn follow_starttls(&mut self, data: &[u8]) {
        let Some(buf) = self.starttls.as_mut() else {
            return;
        };
        let room = MAX_STARTTLS.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        match smtp::starttls(buf) {
            smtp::StartTls::More if buf.len() < MAX_STARTTLS => return,
            smtp::StartTls::Upgraded(h) => {
                if let Some(Detection::Known { detail, .. }) = &mut self.answer {
                    let tls =
                        serde_json::json!({"sni": h.sni, "alpn": h.alpn, "version": h.version});
                    detail.insert("starttls".into(), tls);
                }
            }
            _ => {}
        }
        self.starttls = None;
    }

    /// The (check list, side whose bytes are requests if a check of it matches) pairs to
    /// run on the bytes sent in `dir`.
    fn lists(&self, dir: Dir) -> Vec<(&'static [CheckFn], Option<Dir>)> {
        match self.mode {
            Mode::Opening => {
                let (checks, text, requester) = match dir {
                    Dir::ToServer => (CLIENT, CLIENT_TEXT, dir),
                    Dir::ToClient => (SERVER, SERVER_TEXT, dir.reverse()),
                };
                let mut lists = vec![(checks, Some(requester))];
                if !self.server_first {
                    lists.push((text, Some(requester)));
                }
                lists
            }
            _ => vec![
                (MIDSTREAM_FIRST, None),
                (CLIENT, Some(dir)),
                (CLIENT_TEXT, Some(dir)),
                (SERVER, Some(dir.reverse())),
                (SERVER_TEXT, Some(dir.reverse())),
                (MIDSTREAM, None),
                (MIDSTREAM_REQUESTS, Some(dir)),
                (MIDSTREAM_LAST, None),
                (MIDSTREAM_REPLIES, Some(dir.reverse())),
            ],
        }
    }

    fn judge(&mut self, last: bool) -> Detection {
        let mut likely = None;
        // A `Yes` behind a check that may still say `Yes` with more bytes.
        let mut deferred = None;
        // Per direction: has it spoken, and may its bytes still prove something?
        let mut open = [false, false];
        let mut spoke = [false, false];
        debug_assert!(self.mode != Mode::Datagrams);
        for (i, dir) in [Dir::ToServer, Dir::ToClient].into_iter().enumerate() {
            let buf = match dir {
                Dir::ToServer => &self.client,
                Dir::ToClient => &self.server,
            };
            if buf.is_empty() {
                continue;
            }
            spoke[i] = true;
            let other = match dir {
                Dir::ToServer => &self.server,
                Dir::ToClient => &self.client,
            };
            // Mid-connection, a Redis answer from one side waits to hear the other.
            let hear_other = self.mode == Mode::Midstream && other.is_empty();
            let wait = |app: &AppProtocol| hear_other && *app == AppProtocol::Redis;
            for (checks, requester) in self.lists(dir) {
                for check in checks {
                    let verdict = match check(buf) {
                        // Mid-connection either side may speak first: the other side's
                        // text must not be another protocol's (`+OK` then `USER bob`
                        // is POP3, `AUTH TLS` then `234 ...` FTP).
                        Check::Yes(AppProtocol::Redis, _)
                        | Check::Likely(AppProtocol::Redis, _)
                            if self.mode == Mode::Midstream && redis::contradicted(other) =>
                        {
                            Check::No
                        }
                        // From the start, a Kafka request without a client id waits for
                        // its answer (mid-connection the server's bytes may answer an
                        // earlier request).
                        Check::Likely(AppProtocol::Kafka, d)
                            if self.mode == Mode::Opening && dir == Dir::ToServer =>
                        {
                            match kafka::answered(buf, other) {
                                Some(true) => Check::Yes(AppProtocol::Kafka, d),
                                Some(false) => Check::No,
                                None => Check::Likely(AppProtocol::Kafka, d),
                            }
                        }
                        c => c,
                    };
                    match verdict {
                        Check::Yes(app, detail) if !open[i] && !wait(&app) => {
                            self.requester = requester;
                            return self.settle(Detection::Known { app, detail });
                        }
                        Check::Yes(app, detail) => {
                            deferred.get_or_insert((Detection::Known { app, detail }, requester));
                        }
                        Check::Likely(app, detail) => {
                            open[i] = true;
                            likely.get_or_insert((Detection::Known { app, detail }, requester));
                        }
                        Check::More => open[i] = true,
                        Check::No => {}
                    }
                }
            }
            // From a connection's start, a client whose first bytes fit no protocol
            // settles it: what the server answers to them proves nothing more.
            if self.mode == Mode::Opening && dir == Dir::ToServer && !open[i] {
                return self.settle(Detection::Unknown);
            }
        }
        // Undecided while a side may still prove the protocol: its bytes are a valid
        // prefix, or it has not spoken yet (mid-connection, either side may hold the
        // proof; from the start, the client always may).
        let waiting =
            open[0] || open[1] || !spoke[0] || (self.mode == Mode::Midstream && !spoke[1]);
        if waiting && !last {
            return Detection::NeedMore;
        }
        match deferred.or(likely) {
            Some((d, requester)) => {
                self.requester = requester;
                self.settle(d)
            }
            None => self.settle(Detection::Unknown),
        }
    }

    fn datagram(&mut self, dir: Dir, data: &[u8]) -> Detection {
        // The first datagram seen may be an answer (a capture that starts late). DNS,
        // then memcached's UDP frames and connectionless LDAP (RFC 1798: Active
        // Directory's domain controller locator), each a whole message per datagram.
        // (Each check, and whether what it finds is an answer: the requester is the other side.)
        let checks: [DatagramCheck; 6] = [
            (dns::udp_query, false),
            (dns::udp_response, true),
            (memcached::udp_request, false),
            (memcached::udp_response, true),
            (ldap::datagram_request, false),
            (ldap::datagram_response, true),
        ];
        let (check, requester) = checks
            .iter()
            .map(|(f, answer)| (f(data), if *answer { dir.reverse() } else { dir }))
            .find(|(c, _)| !matches!(c, Check::No))
            .unwrap_or((Check::No, dir));
        match check {
            Check::Yes(app, detail) => {
                self.requester = Some(requester);
                self.settle(Detection::Known { app, detail })
            }
            // A datagram is whole: what does not parse now never will; the next may.
            _ => Detection::NeedMore,
        }
    }
}

/// A whole-datagram check, and whether it recognises answers (not requests).
type DatagramCheck = (fn(&[u8]) -> Check, bool);

/// Detect from complete per-direction prefixes of a connection seen from its start.
pub fn detect(client: &[u8], server: &[u8]) -> Detection {
    let mut d = Detector::new(usize::MAX);
    d.feed(Dir::ToServer, client);
    d.feed(Dir::ToClient, server);
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(d: &Detection) -> Option<&'static str> {
        match d {
            Detection::Known { app, .. } => Some(app.as_str()),
            _ => None,
        }
    }

    #[test]
    fn waits_then_decides() {
        let mut d = Detector::new(1024);
        assert_eq!(d.feed(Dir::ToServer, b"GET /x HT"), Detection::NeedMore);
        let got = d.feed(Dir::ToServer, b"TP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(app(&got), Some("http"));
        // Settled: later bytes change nothing.
        assert_eq!(app(&d.feed(Dir::ToServer, b"\x16\x03\x01")), Some("http"));
    }

    #[test]
    fn gives_up_when_a_direction_fills_its_buffer() {
        let mut d = Detector::new(32);
        assert_eq!(
            d.feed(Dir::ToServer, b"FOO /aaaaaaaaaaaaaaa"),
            Detection::NeedMore
        );
        assert_eq!(d.feed(Dir::ToServer, &[b'a'; 40]), Detection::Unknown);
        // A request line of a registered method longer than the buffer is HTTP.
        let mut d = Detector::new(32);
        assert_eq!(
            d.feed(Dir::ToServer, b"GET /aaaaaaaaaaaaaaa"),
            Detection::NeedMore
        );
        assert_eq!(app(&d.feed(Dir::ToServer, &[b'a'; 40])), Some("http"));
    }

    #[test]
    fn finish_without_bytes_is_unknown() {
        assert_eq!(Detector::new(16).finish(), Detection::Unknown);
    }

    #[test]
    fn server_first_protocols_need_only_the_server() {
        for (greeting, want) in [
            (&b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"[..], "ssh"),
            (b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n", "smtp"),
            (
                b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00\x1f\x3a\x12\x5c\x66\x01\x70\x3e\x00\xff\xff\xff\x02\x00\xff\xdf\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7b\x4e\x2f\x21\x36\x2b\x5e\x68\x57\x13\x10\x04\x00caching_sha2_password\x00",
                "mysql",
            ),
        ] {
            let mut d = Detector::new(4096);
            assert_eq!(app(&d.feed(Dir::ToClient, greeting)), Some(want), "{want}");
        }
    }

    #[test]
    fn opening_mode_does_not_take_mid_connection_messages() {
        // A PostgreSQL simple query is only valid after a startup.
        let q = b"Q\x00\x00\x00\x0eSELECT 1;\x00";
        assert_eq!(detect(q, b""), Detection::Unknown);
        let mut d = Detector::midstream(1024);
        d.feed(Dir::ToServer, q);
        assert_eq!(app(&d.finish()), Some("postgresql"));
    }

    #[test]
    fn midstream_names_the_requester() {
        // A capture that starts with the server's Kafka reply, then the client's request.
        let mut d = Detector::midstream(4096);
        d.feed(
            Dir::ToServer,
            b"\x00\x00\x00\x10\x00\x00\x00\x8d\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        );
        let req = b"\x00\x00\x00\x28\x00\x03\x00\x02\x00\x00\x00\x8e\x00\x07rdkafka\x00\x00\x00\x01\x00\x11LB_MAIN_LOG_INPUT";
        assert_eq!(app(&d.feed(Dir::ToClient, req)), Some("kafka"));
        assert_eq!(d.requester(), Some(Dir::ToClient));
    }

    #[test]
    fn an_h2c_upgrade_is_http2_once_the_server_switches() {
        let req = b"GET /x HTTP/1.1\r\nHost: h:8080\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
        for (answer, want) in [
            (
                &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                    [..],
                "http2",
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nh1\n", "http"),
        ] {
            let mut d = Detector::new(4096);
            // The request decides at once (the proxy holds it until then)...
            assert_eq!(app(&d.feed(Dir::ToServer, req)), Some("http"));
            assert!(d.refining());
            // ... and the server's answer, in pieces, says whether the connection switched.
            let (a, b) = answer.split_at(20);
            d.feed(Dir::ToClient, a);
            let got = d.feed(Dir::ToClient, b);
            assert_eq!(app(&got), Some(want));
            assert!(!d.refining());
            assert_eq!(d.finish(), got);
            if let Detection::Known { detail, .. } = got {
                assert_eq!(detail["path"], "/x");
                assert_eq!(detail["upgrade"], "h2c");
            }
        }
        // No answer before the end: the request was HTTP/1.1.
        assert_eq!(app(&detect(req, b"")), Some("http"));
    }

    #[test]
    fn midstream_answers_name_the_server() {
        // A capture that starts after psql sent `SELECT 1;`: the answer, then Terminate.
        let answer = b"T\x00\x00\x00\x21\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I";
        let mut d = Detector::midstream(4096);
        d.feed(Dir::ToServer, answer);
        d.feed(Dir::ToClient, b"X\x00\x00\x00\x04");
        assert_eq!(app(&d.finish()), Some("postgresql"));
        // The side that was fed first sent the answer: it is the server.
        assert_eq!(d.requester(), Some(Dir::ToClient));
    }

    #[test]
    fn midstream_requests_name_the_client_whoever_spoke_first() {
        // The tail of an answer (not at a message boundary), then psql's next query.
        let mut d = Detector::midstream(4096);
        d.feed(Dir::ToServer, b"\x00\x011\x00\x00\x00\x00");
        d.feed(Dir::ToClient, b"Q\x00\x00\x00\x0eSELECT 2;\x00");
        assert_eq!(app(&d.finish()), Some("postgresql"));
        assert_eq!(d.requester(), Some(Dir::ToClient));
        // An LDAP search's entry seen first is the server's.
        let entry = b"\x30\x0c\x02\x01\x02\x64\x07\x04\x00\x30\x03\x04\x01a";
        let mut d = Detector::midstream(4096);
        d.feed(Dir::ToServer, entry);
        assert_eq!(app(&d.finish()), Some("ldap"));
        assert_eq!(d.requester(), Some(Dir::ToClient));
    }

    #[test]
    fn a_proxy_protocol_header_is_read_past() {
        let header = b"PROXY TCP4 192.0.2.1 10.0.0.5 56324 80\r\n";
        let mut d = Detector::new(16 * 1024);
        // Split inside the header and inside the request.
        assert_eq!(d.feed(Dir::ToServer, &header[..9]), Detection::NeedMore);
        assert_eq!(d.feed(Dir::ToServer, &header[9..]), Detection::NeedMore);
        assert_eq!(d.prefix(), header.len());
        d.feed(Dir::ToServer, b"GET /x HTTP/1.1\r\nHo");
        let Detection::Known { app, detail } = d.feed(Dir::ToServer, b"st: a\r\n\r\n") else {
            panic!("not detected");
        };
        assert_eq!(app, AppProtocol::Http);
        assert_eq!(detail["path"], "/x");
        assert_eq!(detail["proxy_protocol"]["source"], "192.0.2.1:56324");
        // Without one, nothing is cut.
        let mut d = Detector::new(16 * 1024);
        d.feed(Dir::ToServer, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(d.prefix(), 0);
    }

    #[test]
    fn datagrams_wait_for_one_that_parses() {
        let mut d = Detector::datagrams();
        assert_eq!(d.feed(Dir::ToServer, b"hello"), Detection::NeedMore);
        let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";
        assert_eq!(app(&d.feed(Dir::ToServer, q)), Some("dns"));
        assert_eq!(d.finish(), d.answer().cloned().unwrap());
    }
}
