//! Kafka: every request is decided on its API and on each topic it names, before any byte
//! of it reaches the broker.
//!
//! Requests are framed by their 4-byte size. A request of an API whose topics are read
//! (Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, CreateTopics,
//! DeleteTopics), in every version up to Kafka 4 (flexible versions with compact strings
//! and tagged fields included), is held whole ([`MAX_HELD`] at most; a producer's default
//! `max.request.size` is 1 MiB) and parsed by hand ([`request`]; the `kafka-protocol`
//! crate encodes the tests' requests of every version, but its decoders allocate from
//! lengths on the wire: a corrupt count aborts the process); it is decided once per topic
//! (`kafka produce orders`), and once with no topic when it names none or asks for all of
//! them (a Metadata request for all topics, an OffsetFetch for all of a group's). Any
//! other API is decided on its name alone on its 8-byte head, with no topic, and streams:
//! a rule that restricts topics never allows it (JoinGroup, InitProducerId... are allowed
//! by naming the API in a rule without topics). Topics named by ID (Fetch v13+, Produce
//! v13+, OffsetCommit and OffsetFetch v10) are decided by the name the broker gave the ID
//! in a Metadata response (v10+) on this connection, else as `topic-id:UUID`, which only
//! a rule allowing any topic (`*`) matches. An incremental Fetch (v7+) of a fetch session
//! the broker opened on this connection reads every partition of the session, named or
//! not: it is decided on each of the session's topics (`sessions.rs`).
//!
//! Refusal: a denied request is never forwarded. A request of those eight APIs whose
//! every decision is a denial gets the broker's own answer ([`refusal`]): every topic and
//! partition it names fails with TOPIC_AUTHORIZATION_FAILED (29), as a broker answers for
//! topics its ACLs deny, in order after the broker's answers to the requests before it
//! (broker responses are framed for that); with `acks=0` a Produce gets none, as from a
//! broker. A request naming both allowed and denied topics closes the connection: its
//! allowed part would have to be rewritten and the broker's answer merged with ours
//! (clients reconnect, and fail the operation after their retries). A denied request of
//! any other API closes the connection too: Kafka has no error reply every client
//! understands for every API. A request of the eight that cannot be parsed (a version
//! newer than known, a malformed body) also closes the connection: it is never passed
//! unchecked.

mod metadata;
pub mod refusal;
pub mod request;
mod sessions;
mod wire;

use bulkhead_policy::l7::{AppProtocol, KAFKA_APIS, L7Detail, L7Request};

use crate::{Decided, Output, Session, Verdict};
pub use metadata::{Broker, Cluster};
pub use refusal::{TOPIC_AUTHORIZATION_FAILED, refusal};
pub use request::{Group, Request, Topic, parse};
use sessions::{FetchSessions, Partitions};
use wire::Bad;

/// The largest request held to be decided.
pub const MAX_HELD: usize = 8 << 20;

enum Client {
    /// Reading size, API key and version (8 bytes) into `held`.
    Head,
    /// Holding a whole request of `total` bytes (size included).
    Hold {
        total: usize,
    },
    /// Passing the rest of an allowed request.
    Body {
        left: usize,
    },
    Closed,
}

/// What the proxy reads of a broker's response as it passes.
enum Learn {
    /// A Metadata response (its version): the cluster and the topic IDs.
    Metadata(i16),
    /// The answer to a full fetch (its version): the session it opens holds these.
    Session(i16, Partitions),
}

/// The first bytes of a Fetch response kept to read its session id.
const FETCH_HEAD: usize = 64;

/// Answers the client is owed, in request order (Kafka answers in order).
enum Owed {
    /// The broker's, to a forwarded request, and what to read of it.
    Broker(Option<Learn>),
    /// The proxy's, to a refused one, written once the broker's before it are out.
    Proxy(Vec<u8>),
}

/// Answers owed at once at most (a client pipelining requests behind a slow broker
/// without reading is closed).
const MAX_OWED: usize = 65_536;
/// The most bytes of the proxy's answers held (a refusal can be a few times the size of
/// its request: an OffsetFetch names a partition in 4 bytes, its answer in 20).
const MAX_OWED_BYTES: usize = 64 << 20;

pub struct KafkaSession {
    client: Client,
    held: Vec<u8>,
    owed: std::collections::VecDeque<Owed>,
    /// Bytes of the proxy's answers in `owed`.
    owed_bytes: usize,
    /// The broker's responses are framed (size, then `server_left` bytes) to know where
    /// the proxy's answers go; a response nobody asked for stops the ordering.
    server_head: Vec<u8>,
    server_left: usize,
    unordered: bool,
    /// A response being copied, to learn from.
    learning: Option<(Learn, Vec<u8>)>,
    /// The fetch sessions the broker opened on this connection.
    sessions: FetchSessions,
    /// The cluster the last Metadata response described (a refused Metadata request
    /// is answered with it).
    cluster: Cluster,
    /// Topic IDs this broker named (`topic-id:UUID` -> name), bytes held.
    ids: std::collections::HashMap<String, String>,
    id_bytes: usize,
}

/// The largest Metadata response read, and the most topic ID bytes remembered.
const MAX_METADATA: usize = 4 << 20;
const MAX_IDS: usize = 1 << 20;

/// The topic IDs and names of a Metadata response (v10+; its bytes after the size).
pub fn metadata_ids(version: i16, response: &[u8]) -> Result<Vec<(String, String)>, Bad> {
    if version < 10 {
        return Err("no topic IDs in this version");
    }
    metadata::read(version, response).map(|(_, ids)| ids)
}

/// The cluster a Metadata response describes (its bytes after the size).
pub fn metadata_cluster(version: i16, response: &[u8]) -> Result<Cluster, Bad> {
    metadata::read(version, response).map(|(c, _)| c)
}

impl Default for KafkaSession {
    fn default() -> Self {
        KafkaSession::new()
    }
}

/// The name rules use for an API key (`produce`, `apiversions`, ...).
pub fn api_name(key: i16) -> String {
    match usize::try_from(key).ok().and_then(|k| KAFKA_APIS.get(k)) {
        Some(n) => n.to_string(),
        None => format!("api-{key}"),
    }
}

/// The topics a request names (its bytes after the size), each once; empty when it
/// names none (a Metadata request for all topics, an API whose topics are not read).
pub fn topics(request: &[u8]) -> Result<Vec<String>, Bad> {
    Ok(parse(request)?
        .map(|q| q.decisions().into_iter().flatten().collect())
        .unwrap_or_default())
}

/// The requests one Kafka request is decided as: one per topic, and one without when
/// it names none or asks for all.
pub fn requests(request: &[u8]) -> Result<Vec<L7Request>, Bad> {
    decisions(request, parse(request)?.as_ref())
}

fn decisions(request: &[u8], parsed: Option<&Request>) -> Result<Vec<L7Request>, Bad> {
    if request.len() < 4 {
        return Err("truncated request");
    }
    let api = api_name(i16::from_be_bytes([request[0], request[1]]));
    let topics = parsed.map(Request::decisions).unwrap_or(vec![None]);
    Ok(topics.into_iter().map(|t| decision(&api, t)).collect())
}

/// A topic as rules see it: an ID the broker named (`ids`) is its name.
fn namer(ids: &std::collections::HashMap<String, String>) -> impl Fn(&Topic) -> String + '_ {
    |t: &Topic| {
        let l = t.label();
        ids.get(&l).cloned().unwrap_or(l)
    }
}

fn decision(api: &str, topic: Option<String>) -> L7Request {
    L7Request {
        app: AppProtocol::Kafka,
        detail: L7Detail::Kafka {
            api: api.to_string(),
            topic,
        },
    }
}

fn topic_of(r: &L7Request) -> Option<&str> {
    match &r.detail {
        L7Detail::Kafka { topic, .. } => topic.as_deref(),
        _ => None,
    }
}

/// An incremental fetch reads every partition of its session: it is decided on each of
/// their topics and those it names, and without a topic only if there are none.
fn with_session(reqs: Vec<L7Request>, reads: &Partitions) -> Vec<L7Request> {
    let mut out: Vec<L7Request> = reqs.into_iter().filter(|r| topic_of(r).is_some()).collect();
    for t in reads.keys() {
        if !out.iter().any(|r| topic_of(r) == Some(t.as_str())) {
            out.push(decision("fetch", Some(t.clone())));
        }
    }
    if out.is_empty() {
        out.push(decision("fetch", None));
    }
    out
}

/// What becomes of a decided request.
enum Fate {
    /// Forwarded; `owed`: the broker will answer it, `learn`: what to read of that.
    Forward { owed: bool, learn: Option<Learn> },
    /// Answered (or, acks=0, dropped) by the proxy.
    Answered,
}

impl KafkaSession {
    pub fn new() -> KafkaSession {
        KafkaSession {
            client: Client::Head,
            held: Vec::new(),
            owed: std::collections::VecDeque::new(),
            owed_bytes: 0,
            server_head: Vec::new(),
            server_left: 0,
            unordered: false,
            learning: None,
            sessions: FetchSessions::default(),
            cluster: Cluster::default(),
            ids: std::collections::HashMap::new(),
            id_bytes: 0,
        }
    }

    /// Topics named by ID are decided by the name this broker gave them in a Metadata
    /// response on this connection (the broker is the authority on its own IDs).
    fn named(&self, mut reqs: Vec<L7Request>) -> Vec<L7Request> {
        for r in &mut reqs {
            if let L7Detail::Kafka { topic: Some(t), .. } = &mut r.detail
                && let Some(n) = self.ids.get(t.as_str())
            {
                *t = n.clone();
            }
        }
        reqs
    }

    /// The proxy's answer to a refused request: now if nothing is owed before it.
    fn answer(&mut self, out: &mut Output, bytes: Vec<u8>) -> Result<(), Bad> {
        let between = self.server_head.is_empty() && self.server_left == 0;
        if (self.owed.is_empty() && between) || self.unordered {
            out.to_client.extend(bytes);
        } else if self.owed.len() >= MAX_OWED || self.owed_bytes + bytes.len() > MAX_OWED_BYTES {
            return Err("too many answers owed");
        } else {
            self.owed_bytes += bytes.len();
            self.owed.push_back(Owed::Proxy(bytes));
        }
        Ok(())
    }

    /// A response was copied: remember the cluster and the topic IDs a Metadata
    /// response names, or the fetch session a full fetch's answer opened.
    fn learn(&mut self) {
        let (v, b) = match self.learning.take() {
            Some((Learn::Metadata(v), b)) => (v, b),
            Some((Learn::Session(v, parts), b)) => {
                self.sessions.opened(v, &b, parts);
                return;
            }
            None => return,
        };
        let Ok((cluster, ids)) = metadata::read(v, &b) else {
            return;
        };
        self.cluster = cluster;
        for (id, name) in ids {
            if self.id_bytes + id.len() + name.len() > MAX_IDS {
                break;
            }
            self.id_bytes += id.len() + name.len();
            self.ids.insert(id, name);
        }
    }

    /// A broker response ended: the proxy's answers owed right after it go out.
    fn response_done(&mut self, out: &mut Output) {
        match self.owed.pop_front() {
            Some(Owed::Broker(_)) => {}
            other => {
                // A response to nothing we forwarded: order is lost, answer at once.
                self.unordered = true;
                if let Some(Owed::Proxy(b)) = other {
                    self.owed_bytes -= b.len();
                    out.to_client.extend(b);
                }
            }
        }
        while let Some(Owed::Proxy(_)) = self.owed.front() {
            if let Some(Owed::Proxy(b)) = self.owed.pop_front() {
                self.owed_bytes -= b.len();
                out.to_client.extend(b);
            }
        }
        if self.unordered {
            for o in std::mem::take(&mut self.owed) {
                if let Owed::Proxy(b) = o {
                    out.to_client.extend(b);
                }
            }
            self.owed_bytes = 0;
        }
    }

    /// Decide a request (one verdict per topic): forward it, answer it in the broker's
    /// place, or Err to close.
    fn decide(
        &mut self,
        out: &mut Output,
        request: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<Fate, Bad> {
        let parsed = parse(request)?;
        let reads = parsed
            .as_ref()
            .and_then(|q| self.sessions.reads(q, &namer(&self.ids)));
        let mut reqs = self.named(decisions(request, parsed.as_ref())?);
        if let Some(parts) = &reads {
            reqs = with_session(reqs, parts);
        }
        let verdicts: Vec<(L7Request, bool)> = reqs
            .into_iter()
            .map(|r| {
                let a = decide(&r).allowed;
                (r, a)
            })
            .collect();
        let all = verdicts.iter().all(|(_, a)| *a);
        let none = verdicts.iter().all(|(_, a)| !*a);
        // A request none of whose topics may be touched gets the broker's own refusal
        // (acks=0: no answer at all); a mixed one, or another API's, closes.
        let answered = match &parsed {
            Some(q) if none && !all => Some(match refusal(q, &self.cluster) {
                None => "dropped (acks=0: no response)",
                Some((bytes, said)) => {
                    self.answer(out, bytes)?;
                    said
                }
            }),
            _ => None,
        };
        for (request, allowed) in verdicts {
            let refusal = match (all, allowed, answered) {
                (true, _, _) => None,
                (false, _, Some(a)) => Some(a.to_string()),
                (false, false, None) => Some("connection closed".to_string()),
                (false, true, None) => {
                    Some("connection closed (another topic of the request was denied)".to_string())
                }
            };
            out.decided.push(Decided {
                request,
                allowed,
                refusal,
                findings: Vec::new(),
            });
        }
        if answered.is_some() {
            if let Some(q) = &parsed {
                self.sessions.refused(q);
            }
            return Ok(Fate::Answered);
        }
        if !all {
            return Err("denied");
        }
        let Some(q) = parsed else {
            return Ok(Fate::Forward {
                owed: true,
                learn: None,
            });
        };
        let learn = match q.key {
            3 => Some(Learn::Metadata(q.version)),
            1 => self
                .sessions
                .forwarded(&q, reads, &namer(&self.ids))
                .map(|parts| Learn::Session(q.version, parts)),
            _ => None,
        };
        Ok(Fate::Forward {
            owed: q.key != 0 || q.acks != 0,
            learn,
        })
    }

    /// The held bytes are complete for their step: act.
    fn act(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let h = &self.held;
        let size = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if size < 8 {
            return Err("bad request size");
        }
        let total = 4 + size as usize;
        let key = i16::from_be_bytes([h[4], h[5]]);
        match self.client {
            Client::Head if request::topic_api(key).is_some() => {
                if total > MAX_HELD {
                    return Err("request too large to inspect");
                }
                self.client = Client::Hold { total };
                return Ok(());
            }
            Client::Head | Client::Hold { .. } => {}
            _ => return Ok(()),
        }
        let held = std::mem::take(&mut self.held);
        let Fate::Forward { owed, learn } = self.decide(out, &held[4..], decide)? else {
            // Answered by the proxy: nothing of it goes on (it was held whole).
            self.client = Client::Head;
            return Ok(());
        };
        if owed {
            if self.owed.len() >= MAX_OWED {
                return Err("too many answers owed");
            }
            self.owed.push_back(Owed::Broker(learn));
        }
        let left = total - held.len();
        out.to_server.extend(held);
        self.client = if left > 0 {
            Client::Body { left }
        } else {
            Client::Head
        };
        Ok(())
    }
}

impl Session for KafkaSession {
    fn client_bytes(
        &mut self,
        mut data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        while !data.is_empty() && !out.close {
            let want = match &mut self.client {
                Client::Closed => break,
                Client::Body { left } => {
                    let n = data.len().min(*left);
                    out.to_server.extend_from_slice(&data[..n]);
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.client = Client::Head;
                    }
                    continue;
                }
                Client::Head => 8,
                Client::Hold { total } => *total,
            };
            let n = data.len().min(want - self.held.len());
            self.held.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.held.len() == want && self.act(&mut out, decide).is_err() {
                out.close = true;
            }
        }
        // A request whose head is complete with the last byte is decided now.
        if !out.close
            && let Client::Hold { total } = self.client
            && self.held.len() == total
            && self.act(&mut out, decide).is_err()
        {
            out.close = true;
        }
        if out.close {
            self.client = Client::Closed;
            self.held.clear();
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        if matches!(self.client, Client::Closed) {
            return out;
        }
        while !data.is_empty() {
            if self.unordered {
                out.to_client.extend_from_slice(data);
                break;
            }
            if self.server_left > 0 {
                let n = data.len().min(self.server_left);
                out.to_client.extend_from_slice(&data[..n]);
                if let Some((l, b)) = &mut self.learning {
                    let keep = match l {
                        Learn::Metadata(_) => n,
                        Learn::Session(..) => n.min(FETCH_HEAD.saturating_sub(b.len())),
                    };
                    b.extend_from_slice(&data[..keep]);
                }
                self.server_left -= n;
                data = &data[n..];
                if self.server_left == 0 {
                    self.learn();
                    self.response_done(&mut out);
                }
                continue;
            }
            let n = data.len().min(4 - self.server_head.len());
            out.to_client.extend_from_slice(&data[..n]);
            self.server_head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.server_head.len() == 4 {
                let h = std::mem::take(&mut self.server_head);
                match i32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
                    size if size > 0 => {
                        self.server_left = size as usize;
                        if let Some(Owed::Broker(learn)) = self.owed.front_mut() {
                            let big = self.server_left > MAX_METADATA;
                            self.learning = match learn.take() {
                                Some(Learn::Metadata(_)) if big => None,
                                l => l.map(|l| (l, Vec::new())),
                            };
                        }
                    }
                    // Not a response (SASL v0 tokens, garbage): order is lost.
                    _ => {
                        self.unordered = true;
                        self.response_done(&mut out);
                    }
                }
            }
        }
        out
    }
}
