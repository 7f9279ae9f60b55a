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
//! topics). Topics named by ID (Fetch v13+, Produce v13+) are decided as
//! `topic-id:UUID`, which only a rule allowing any topic (`*`) matches.
//!
//! Refusal: Kafka has no error reply every client understands for every API, so a denied
//! request is never forwarded and the connection is closed (clients reconnect, and fail
//! the operation after their retries). A request of those APIs that cannot be parsed (a
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

pub struct KafkaSession {
    client: Client,
    held: Vec<u8>,
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

/// The topics a request names (its bytes after the size); empty when it names none (a
/// Metadata request for all topics, an API whose topics are not read).
pub fn topics(request: &[u8]) -> Result<Vec<String>, Bad> {
    let mut r = Rd {
        b: request,
        flex: false,
    };
    let key = r.i16()?;
    let v = r.i16()?;
    let Some((newest, flexible)) = topic_api(key) else {
        return Ok(Vec::new());
    };
    if !(0..=newest).contains(&v) {
        return Err("unknown API version");
    }
    r.skip(4)?; // correlation id
    r.string()?; // client id: never compact
    r.flex = v >= flexible;
    r.tagged()?;
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
        }
    }

    /// Decide the requests of `bytes` (after the size); true if all are allowed.
    fn decide(
        out: &mut Output,
        reqs: Vec<L7Request>,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> bool {
        let verdicts: Vec<(L7Request, bool)> = reqs
            .into_iter()
            .map(|r| {
                let a = decide(&r).allowed;
                (r, a)
            })
            .collect();
        let all = verdicts.iter().all(|(_, a)| *a);
        for (request, allowed) in verdicts {
            let refusal = match (all, allowed) {
                (true, _) => None,
                (false, false) => Some("connection closed".to_string()),
                (false, true) => {
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
        all
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
        let reqs = requests(&self.held[4..])?;
        if !Self::decide(out, reqs, decide) {
            return Err("denied");
        }
        let held = std::mem::take(&mut self.held);
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

    fn server_bytes(&mut self, data: &[u8]) -> Output {
        let mut out = Output::default();
        if !matches!(self.client, Client::Closed) {
            out.to_client.extend_from_slice(data);
        }
        out
    }
}
