//! Kafka: every request is decided on its API and on each topic it names, before any byte
//! of it reaches the broker.
//!
//! Requests are framed by their 4-byte size. A request of an API whose topics are read
//! (Produce, Fetch, ListOffsets, Metadata,
//! DeleteTopics), in every version up to Kafka 4 (flexible versions with compact
//! strings and tagged fields included: Produce v9+, Fetch v12+, ListOffsets v6+,
//! Metadata v9+), is held whole ([`MAX_HELD`] at most; a producer's default
//! `max.request.size` is 1 MiB) and parsed by hand (the `kafka-protocol` crate encodes
//! the tests' requests of every version, but its decoders allocate from lengths on the
//! wire: a corrupt count aborts the process); it is decided once per topic
//! (`kafka produce orders`), and once with no topic when it names none (a Metadata
//! request for all topics). Any other API is decided on its name alone on its 8-byte
//! head, with no topic, and streams: a rule that restricts topics never allows it
//! (OffsetCommit, CreateTopics... are allowed by naming the API in a rule without
//! topics). Topics named by ID (Fetch v13+, Produce v13+) are decided by the name the
//! broker gave the ID in a Metadata response (v10+) on this connection, else as
//! `topic-id:UUID`, which only a rule allowing any topic (`*`) matches.
//!
//! Refusal: a denied request is never forwarded. A Produce none of whose topics may be
//! written gets the broker's own answer, every partition failing with
//! TOPIC_AUTHORIZATION_FAILED (29), in order after the broker's answers to the requests
//! before it (broker responses are framed for that); with `acks=0` it gets none, as from a
//! broker. Anything else denied closes the connection: Kafka has no error reply every
//! client understands for every API, and a request with both allowed and denied topics
//! would need rewriting (clients reconnect, and fail the operation after their retries). A request of those APIs that cannot be parsed (a
//! version newer than known, a malformed body) also closes the connection: it is never
//! passed unchecked.

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::{Decided, Output, Session, Verdict};

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

/// Answers the client is owed, in request order (Kafka answers in order).
enum Owed {
    /// The broker's, to a forwarded request (a Metadata request's version: its
    /// answer teaches topic IDs).
    Broker { metadata: Option<i16> },
    /// The proxy's, to a refused one, written once the broker's before it are out.
    Proxy(Vec<u8>),
}

/// Answers owed at once at most (a client pipelining refusals behind a slow broker
/// without reading is closed).
const MAX_OWED: usize = 65_536;

pub struct KafkaSession {
    client: Client,
    held: Vec<u8>,
    owed: std::collections::VecDeque<Owed>,
    /// The broker's responses are framed (size, then `server_left` bytes) to know where
    /// the proxy's answers go; a response nobody asked for stops the ordering.
    server_head: Vec<u8>,
    server_left: usize,
    unordered: bool,
    /// A Metadata response being copied (its version), to learn topic IDs from.
    learning: Option<(i16, Vec<u8>)>,
    /// Topic IDs this broker named (`topic-id:UUID` -> name), bytes held.
    ids: std::collections::HashMap<String, String>,
    id_bytes: usize,
}

/// The largest Metadata response read for topic IDs, and the most remembered.
const MAX_METADATA: usize = 4 << 20;
const MAX_IDS: usize = 1 << 20;

/// The topic IDs and names of a Metadata response (v10+; its bytes after the size).
pub fn metadata_ids(version: i16, response: &[u8]) -> Result<Vec<(String, String)>, Bad> {
    if !(10..=13).contains(&version) {
        return Err("no topic IDs in this version");
    }
    let mut r = Rd {
        b: response,
        flex: true,
    };
    r.skip(4)?; // correlation id
    r.tagged()?;
    r.skip(4)?; // throttle time
    for _ in 0..r.count()? {
        r.skip(4)?;
        r.string()?;
        r.skip(4)?;
        r.string()?;
        r.tagged()?;
    }
    r.string()?; // cluster id
    r.skip(4)?; // controller id
    let mut out = Vec::new();
    for _ in 0..r.count()? {
        r.skip(2)?;
        let name = r.string()?;
        let id = r.uuid()?;
        r.skip(1)?;
        for _ in 0..r.count()? {
            r.skip(14)?; // error, index, leader, leader epoch
            for _ in 0..3 {
                let n = r.count()?;
                r.skip(n * 4)?;
            }
            r.tagged()?;
        }
        r.skip(4)?; // authorized operations
        r.tagged()?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.push((id, n));
        }
    }
    Ok(out)
}

impl Default for KafkaSession {
    fn default() -> Self {
        KafkaSession::new()
    }
}

/// API keys 0-68 by name, as rules write them (`produce`, `apiversions`, ...).
const APIS: &[&str] = &[
    "produce",
    "fetch",
    "listoffsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
    "alterreplicalogdirs",
    "describelogdirs",
    "saslauthenticate",
    "createpartitions",
    "createdelegationtoken",
    "renewdelegationtoken",
    "expiredelegationtoken",
    "describedelegationtoken",
    "deletegroups",
    "electleaders",
    "incrementalalterconfigs",
    "alterpartitionreassignments",
    "listpartitionreassignments",
    "offsetdelete",
    "describeclientquotas",
    "alterclientquotas",
    "describeuserscramcredentials",
    "alteruserscramcredentials",
    "vote",
    "beginquorumepoch",
    "endquorumepoch",
    "describequorum",
    "alterpartition",
    "updatefeatures",
    "envelope",
    "fetchsnapshot",
    "describecluster",
    "describeproducers",
    "brokerregistration",
    "brokerheartbeat",
    "unregisterbroker",
    "describetransactions",
    "listtransactions",
    "allocateproducerids",
    "consumergroupheartbeat",
];

/// The name rules use for an API key (`produce`, `apiversions`, ...).
pub fn api_name(key: i16) -> String {
    match usize::try_from(key).ok().and_then(|k| APIS.get(k)) {
        Some(n) => n.to_string(),
        None => format!("api-{key}"),
    }
}

/// The APIs whose topics are read, with the newest version known and the first
/// flexible one (compact strings and arrays, tagged fields, request header v2).
/// Other APIs are decided without a topic: only a rule that allows the API whatever
/// its topics can allow them.
fn topic_api(key: i16) -> Option<(i16, i16)> {
    match key {
        0 => Some((13, 9)),  // Produce
        1 => Some((18, 12)), // Fetch
        2 => Some((10, 6)),  // ListOffsets
        3 => Some((13, 9)),  // Metadata
        20 => Some((6, 4)),  // DeleteTopics
        _ => None,
    }
}

fn names_topics(key: i16) -> bool {
    topic_api(key).is_some()
}

type Bad = &'static str;

/// A reader over one request. Nothing is allocated from a length on the wire: counts
/// only drive loops, and every element consumes bytes that must be there.
struct Rd<'a> {
    b: &'a [u8],
    flex: bool,
}

impl Rd<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Bad> {
        if self.b.len() < n {
            return Err("truncated request");
        }
        let (a, b) = self.b.split_at(n);
        self.b = b;
        Ok(a)
    }
    fn skip(&mut self, n: usize) -> Result<(), Bad> {
        self.take(n).map(|_| ())
    }
    fn i16(&mut self) -> Result<i16, Bad> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, Bad> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Result<u64, Bad> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad varint")
    }
    /// A length: compact (N+1, 0 for null) or 16/32-bit (-1 for null).
    fn len(&mut self, wide: bool) -> Result<Option<usize>, Bad> {
        if self.flex {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(|n| n as usize));
        }
        let n = if wide {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            _ => Err("bad length"),
        }
    }
    fn string(&mut self) -> Result<Option<String>, Bad> {
        match self.len(false)? {
            None => Ok(None),
            Some(n) => Ok(Some(String::from_utf8_lossy(self.take(n)?).into_owned())),
        }
    }
    fn bytes(&mut self) -> Result<(), Bad> {
        match self.len(true)? {
            None => Ok(()),
            Some(n) => self.skip(n),
        }
    }
    /// An array's element count (null: 0).
    fn count(&mut self) -> Result<usize, Bad> {
        let n = self.len(true)?.unwrap_or(0);
        // Each element takes at least one byte.
        if n > self.b.len() {
            return Err("bad array length");
        }
        Ok(n)
    }
    fn tagged(&mut self) -> Result<(), Bad> {
        if self.flex {
            for _ in 0..self.uvarint()? {
                self.uvarint()?;
                let n = self.uvarint()?;
                self.skip(usize::try_from(n).map_err(|_| "bad tagged field")?)?;
            }
        }
        Ok(())
    }
    fn uuid(&mut self) -> Result<String, Bad> {
        let b = self.take(16)?;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(format!(
            "topic-id:{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }
    /// A topic named by name (up to `last_named`) or by ID.
    fn topic(&mut self, version: i16, last_named: i16) -> Result<String, Bad> {
        if version <= last_named {
            Ok(self.string()?.unwrap_or_default())
        } else {
            self.uuid()
        }
    }
}

/// A request of an API whose topics are read (its bytes after the size): a reader after
/// its header, its API key and version. None for other APIs.
fn body(request: &[u8]) -> Result<Option<(Rd<'_>, i16, i16)>, Bad> {
    let mut r = Rd {
        b: request,
        flex: false,
    };
    let key = r.i16()?;
    let v = r.i16()?;
    let Some((newest, flexible)) = topic_api(key) else {
        return Ok(None);
    };
    if !(0..=newest).contains(&v) {
        return Err("unknown API version");
    }
    r.skip(4)?; // correlation id
    r.string()?; // client id: never compact
    r.flex = v >= flexible;
    r.tagged()?;
    Ok(Some((r, key, v)))
}

/// What a Produce request writes: its acks, and each topic (its name as written, or its
/// ID) with its partitions.
pub struct Produce {
    pub version: i16,
    pub correlation: i32,
    pub acks: i16,
    pub topics: Vec<(Vec<u8>, Vec<i32>)>,
}

/// A Produce request (its bytes after the size).
pub fn produce(request: &[u8]) -> Result<Produce, Bad> {
    let correlation = request
        .get(4..8)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .ok_or("truncated request")?;
    let Some((mut r, 0, v)) = body(request)? else {
        return Err("not a Produce request");
    };
    if v >= 3 {
        r.string()?; // transactional id
    }
    let acks = r.i16()?;
    r.skip(4)?;
    let mut topics = Vec::new();
    for _ in 0..r.count()? {
        let name = if v <= 12 {
            let n = r.len(false)?.unwrap_or(0);
            r.take(n)?.to_vec()
        } else {
            r.take(16)?.to_vec()
        };
        let mut parts = Vec::new();
        for _ in 0..r.count()? {
            parts.push(r.i32()?);
            r.bytes()?;
            r.tagged()?;
        }
        r.tagged()?;
        topics.push((name, parts));
    }
    Ok(Produce {
        version: v,
        correlation,
        acks,
        topics,
    })
}

/// TOPIC_AUTHORIZATION_FAILED.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// The broker's answer to a Produce request none of whose topics may be written: every
/// partition fails with TOPIC_AUTHORIZATION_FAILED (29), as a broker answers for topics
/// an ACL denies. Size prefix included.
pub fn produce_refusal(p: &Produce) -> Vec<u8> {
    let (v, flex) = (p.version, p.version >= 9);
    let mut b = p.correlation.to_be_bytes().to_vec();
    let count = |b: &mut Vec<u8>, n: usize| {
        if flex {
            let mut n = n as u64 + 1;
            while n >= 0x80 {
                b.push((n as u8) | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
        } else {
            b.extend_from_slice(&(n as i32).to_be_bytes());
        }
    };
    if flex {
        b.push(0); // response header tagged fields
    }
    count(&mut b, p.topics.len());
    for (name, parts) in &p.topics {
        if v <= 12 {
            if flex {
                count(&mut b, name.len());
            } else {
                b.extend_from_slice(&(name.len() as i16).to_be_bytes());
            }
        }
        b.extend_from_slice(name);
        count(&mut b, parts.len());
        let msg = format!(
            "bulkhead: topic {} is not allowed by policy",
            String::from_utf8_lossy(name)
        );
        for part in parts {
            b.extend_from_slice(&part.to_be_bytes());
            b.extend_from_slice(&TOPIC_AUTHORIZATION_FAILED.to_be_bytes());
            b.extend_from_slice(&(-1i64).to_be_bytes()); // base offset
            if v >= 2 {
                b.extend_from_slice(&(-1i64).to_be_bytes()); // log append time
            }
            if v >= 5 {
                b.extend_from_slice(&(-1i64).to_be_bytes()); // log start offset
            }
            if v >= 8 {
                count(&mut b, 0); // record errors
                if flex {
                    count(&mut b, msg.len());
                } else {
                    b.extend_from_slice(&(msg.len() as i16).to_be_bytes());
                }
                b.extend_from_slice(msg.as_bytes());
            }
            if flex {
                b.push(0);
            }
        }
        if flex {
            b.push(0);
        }
    }
    if v >= 1 {
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle time
    }
    if flex {
        b.push(0);
    }
    [(b.len() as u32).to_be_bytes().to_vec(), b].concat()
}

/// The topics a request names (its bytes after the size); empty when it names none (a
/// Metadata request for all topics, an API whose topics are not read).
pub fn topics(request: &[u8]) -> Result<Vec<String>, Bad> {
    let Some((mut r, key, v)) = body(request)? else {
        return Ok(Vec::new());
    };
    let r = &mut r;
    let mut out = Vec::new();
    match key {
        0 => {
            if v >= 3 {
                r.string()?; // transactional id
            }
            r.skip(6)?; // acks, timeout
            for _ in 0..r.count()? {
                out.push(r.topic(v, 12)?);
                for _ in 0..r.count()? {
                    r.skip(4)?;
                    r.bytes()?;
                    r.tagged()?;
                }
                r.tagged()?;
            }
        }
        1 => {
            let fixed = if v <= 14 { 4 } else { 0 }
                + 8
                + if v >= 3 { 4 } else { 0 }
                + if v >= 4 { 1 } else { 0 }
                + if v >= 7 { 8 } else { 0 };
            r.skip(fixed)?;
            let partition = 4
                + if v >= 9 { 4 } else { 0 }
                + 8
                + if v >= 12 { 4 } else { 0 }
                + if v >= 5 { 8 } else { 0 }
                + 4;
            for _ in 0..r.count()? {
                out.push(r.topic(v, 12)?);
                for _ in 0..r.count()? {
                    r.skip(partition)?;
                    r.tagged()?;
                }
                r.tagged()?;
            }
            if v >= 7 {
                for _ in 0..r.count()? {
                    out.push(r.topic(v, 12)?);
                    let n = r.count()?;
                    r.skip(n * 4)?;
                    r.tagged()?;
                }
            }
        }
        2 => {
            r.skip(if v >= 2 { 5 } else { 4 })?;
            let partition = 4 + if v >= 4 { 4 } else { 0 } + 8 + if v == 0 { 4 } else { 0 };
            for _ in 0..r.count()? {
                out.push(r.string()?.unwrap_or_default());
                for _ in 0..r.count()? {
                    r.skip(partition)?;
                    r.tagged()?;
                }
                r.tagged()?;
            }
        }
        3 => {
            for _ in 0..r.count()? {
                let id = if v >= 10 { Some(r.uuid()?) } else { None };
                let name = r.string()?.filter(|n| !n.is_empty());
                out.push(match (name, id) {
                    (Some(n), _) => n,
                    (None, Some(id)) => id,
                    (None, None) => String::new(),
                });
                r.tagged()?;
            }
        }
        _ => {
            if v >= 6 {
                for _ in 0..r.count()? {
                    let name = r.string()?.filter(|n| !n.is_empty());
                    let id = r.uuid()?;
                    out.push(name.unwrap_or(id));
                    r.tagged()?;
                }
            } else {
                for _ in 0..r.count()? {
                    out.push(r.string()?.unwrap_or_default());
                }
            }
        }
    }
    // Each topic is decided once, in the order the request names them.
    let mut seen = std::collections::HashSet::new();
    out.retain(|t| seen.insert(t.clone()));
    Ok(out)
}

/// The requests one Kafka request is decided as: one per topic, or one without.
pub fn requests(request: &[u8]) -> Result<Vec<L7Request>, Bad> {
    if request.len() < 4 {
        return Err("truncated request");
    }
    let key = i16::from_be_bytes([request[0], request[1]]);
    let api = api_name(key);
    let topics = if names_topics(key) {
        topics(request)?
    } else {
        Vec::new()
    };
    let one = |topic: Option<String>| L7Request {
        app: AppProtocol::Kafka,
        detail: L7Detail::Kafka {
            api: api.clone(),
            topic,
        },
    };
    Ok(if topics.is_empty() {
        vec![one(None)]
    } else {
        topics.into_iter().map(|t| one(Some(t))).collect()
    })
}

impl KafkaSession {
    pub fn new() -> KafkaSession {
        KafkaSession {
            client: Client::Head,
            held: Vec::new(),
            owed: std::collections::VecDeque::new(),
            server_head: Vec::new(),
            server_left: 0,
            unordered: false,
            learning: None,
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
    fn answer(&mut self, out: &mut Output, bytes: Vec<u8>) {
        let between = self.server_head.is_empty() && self.server_left == 0;
        if (self.owed.is_empty() && between) || self.unordered {
            out.to_client.extend(bytes);
        } else {
            self.owed.push_back(Owed::Proxy(bytes));
        }
    }

    /// A Metadata response was copied whole: remember the topic IDs it names.
    fn learn(&mut self) {
        let Some((v, b)) = self.learning.take() else {
            return;
        };
        for (id, name) in metadata_ids(v, &b).unwrap_or_default() {
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
            Some(Owed::Broker { .. }) => {}
            other => {
                // A response to nothing we forwarded: order is lost, answer at once.
                self.unordered = true;
                if let Some(Owed::Proxy(b)) = other {
                    out.to_client.extend(b);
                }
            }
        }
        while let Some(Owed::Proxy(_)) = self.owed.front() {
            if let Some(Owed::Proxy(b)) = self.owed.pop_front() {
                out.to_client.extend(b);
            }
        }
        if self.unordered {
            for o in std::mem::take(&mut self.owed) {
                if let Owed::Proxy(b) = o {
                    out.to_client.extend(b);
                }
            }
        }
    }

    /// Decide a request (one verdict per topic); Ok(true) to forward it, Ok(false) when
    /// the proxy answered in the broker's place, Err to close.
    fn decide(
        &mut self,
        out: &mut Output,
        request: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<bool, Bad> {
        let verdicts: Vec<(L7Request, bool)> = self
            .named(requests(request)?)
            .into_iter()
            .map(|r| {
                let a = decide(&r).allowed;
                (r, a)
            })
            .collect();
        let all = verdicts.iter().all(|(_, a)| *a);
        let none = verdicts.iter().all(|(_, a)| !*a);
        // A Produce none of whose topics may be written gets the broker's own refusal
        // (acks=0: no answer at all); anything else refused closes the connection.
        let answered = if all || !none {
            None
        } else {
            produce(request).ok().map(|p| {
                if p.acks == 0 {
                    "dropped (acks=0: no response)"
                } else {
                    self.answer(out, produce_refusal(&p));
                    "TOPIC_AUTHORIZATION_FAILED (29)"
                }
            })
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
        match (all, answered) {
            (true, _) => Ok(true),
            (false, Some(_)) => Ok(false),
            (false, None) => Err("denied"),
        }
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
            Client::Head if names_topics(key) => {
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
        if !self.decide(out, &held[4..], decide)? {
            // Answered by the proxy: nothing of it goes on (it was held whole).
            self.client = Client::Head;
            return Ok(());
        }
        if key != 0 || produce(&held[4..]).is_ok_and(|p| p.acks != 0) {
            if self.owed.len() >= MAX_OWED {
                return Err("too many answers owed");
            }
            let metadata = (key == 3)
                .then(|| i16::from_be_bytes([held[6], held[7]]))
                .filter(|v| *v >= 10);
            self.owed.push_back(Owed::Broker { metadata });
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
                if let Some((_, b)) = &mut self.learning {
                    b.extend_from_slice(&data[..n]);
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
                        if let Some(Owed::Broker { metadata: Some(v) }) = self.owed.front()
                            && self.server_left <= MAX_METADATA
                        {
                            self.learning = Some((*v, Vec::new()));
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
