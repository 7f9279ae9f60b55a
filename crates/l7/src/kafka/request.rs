//! The requests whose topics are read, parsed by hand from the Kafka message schemas
//! (`clients/src/main/resources/common/message/*Request.json`): each topic named, with
//! the partitions it names, as the refusal must echo them.

use super::wire::{Bad, Rd, uuid_label};

/// The APIs whose topics are read, with the newest version known and the first
/// flexible one (compact strings and arrays, tagged fields, request header v2,
/// response header v1). Other APIs are decided without a topic: only a rule that allows
/// the API whatever its topics can allow them.
pub fn topic_api(key: i16) -> Option<(i16, i16)> {
    match key {
        0 => Some((13, 9)),  // Produce
        1 => Some((18, 12)), // Fetch
        2 => Some((10, 6)),  // ListOffsets
        3 => Some((13, 9)),  // Metadata
        8 => Some((10, 8)),  // OffsetCommit
        9 => Some((10, 6)),  // OffsetFetch
        19 => Some((7, 5)),  // CreateTopics
        20 => Some((6, 4)),  // DeleteTopics
        _ => None,
    }
}

/// A topic as a request names it: by name, by ID, or both (Metadata v10+, DeleteTopics
/// v6+), with the partitions it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topic {
    pub name: Option<Vec<u8>>,
    pub id: Option<[u8; 16]>,
    pub parts: Vec<i32>,
}

impl Topic {
    /// The topic a rule sees: its name, else `topic-id:UUID`.
    pub fn label(&self) -> String {
        match (&self.name, &self.id) {
            (Some(n), _) if !n.is_empty() => String::from_utf8_lossy(n).into_owned(),
            (_, Some(id)) => uuid_label(id),
            _ => String::new(),
        }
    }
}

/// An OffsetFetch v8+ group and its topics (None: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: Vec<u8>,
    pub topics: Option<Vec<Topic>>,
}

/// A request of an API whose topics are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub key: i16,
    pub version: i16,
    pub correlation: i32,
    /// Produce's acks (0: no response is owed); 1 for the other APIs.
    pub acks: i16,
    /// The topics the request acts on; None when the array is null (all topics:
    /// Metadata v1+, OffsetFetch v2-7).
    pub topics: Option<Vec<Topic>>,
    /// Fetch v7+: topics removed from the fetch session (decided, not answered).
    pub forgotten: Vec<Topic>,
    /// OffsetFetch v8+: the groups, each with its topics.
    pub groups: Vec<Group>,
    /// Fetch v7+: its fetch session's id and epoch (0: a full fetch opening a session,
    /// -1: none or closing it, else the next incremental fetch of the session).
    pub session: Option<(i32, i32)>,
}

impl Request {
    /// Whether the request's responses are flexible (header v1, compact types).
    pub fn flexible(&self) -> bool {
        topic_api(self.key).is_some_and(|(_, f)| self.version >= f)
    }

    /// What it is decided on: each topic once, in the order the request names them, and
    /// once without a topic when it names none or asks for all of them.
    pub fn decisions(&self) -> Vec<Option<String>> {
        let named = self
            .topics
            .iter()
            .flatten()
            .chain(&self.forgotten)
            .chain(self.groups.iter().flat_map(|g| g.topics.iter().flatten()));
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Option<String>> = named
            .map(Topic::label)
            .filter(|t| seen.insert(t.clone()))
            .map(Some)
            .collect();
        let all = self.topics.is_none() || self.groups.iter().any(|g| g.topics.is_none());
        if out.is_empty() || all {
            out.push(None);
        }
        out
    }
}

/// An array of topics (None: null).
fn topics(
    r: &mut Rd,
    mut one: impl FnMut(&mut Rd) -> Result<Topic, Bad>,
) -> Result<Option<Vec<Topic>>, Bad> {
    let Some(n) = r.opt_count()? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(one(r)?);
    }
    Ok(Some(out))
}

/// A topic named by name (up to version `last_named`) or by ID.
fn name_or_id(r: &mut Rd, version: i16, last_named: i16) -> Result<Topic, Bad> {
    Ok(if version <= last_named {
        Topic {
            name: Some(r.raw_string()?.unwrap_or_default()),
            ..Topic::default()
        }
    } else {
        Topic {
            id: Some(r.uuid()?),
            ..Topic::default()
        }
    })
}

/// Partitions of `skip` bytes after their index (then tagged fields).
fn partitions(r: &mut Rd, skip: usize) -> Result<Vec<i32>, Bad> {
    let mut parts = Vec::new();
    for _ in 0..r.count()? {
        parts.push(r.i32()?);
        r.skip(skip)?;
        r.tagged()?;
    }
    Ok(parts)
}

/// A request (its bytes after the size) of an API whose topics are read; None for the
/// other APIs.
pub fn parse(request: &[u8]) -> Result<Option<Request>, Bad> {
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
    let correlation = r.i32()?;
    r.string()?; // client id: never compact
    r.flex = v >= flexible;
    r.tagged()?;
    let mut q = Request {
        key,
        version: v,
        correlation,
        acks: 1,
        topics: Some(Vec::new()),
        forgotten: Vec::new(),
        groups: Vec::new(),
        session: None,
    };
    let r = &mut r;
    match key {
        0 => produce(r, &mut q)?,
        1 => fetch(r, &mut q)?,
        2 => {
            r.skip(if v >= 2 { 5 } else { 4 })?; // replica id, isolation level
            let skip = if v >= 4 { 4 } else { 0 } + 8 + if v == 0 { 4 } else { 0 };
            q.topics = topics(r, |r| {
                let name = r.raw_string()?;
                let parts = partitions(r, skip)?;
                r.tagged()?;
                Ok(Topic {
                    name,
                    id: None,
                    parts,
                })
            })?;
        }
        3 => {
            q.topics = topics(r, |r| {
                let id = if v >= 10 { Some(r.uuid()?) } else { None };
                let name = r.raw_string()?;
                r.tagged()?;
                Ok(Topic {
                    name,
                    id,
                    parts: Vec::new(),
                })
            })?;
        }
        8 => offset_commit(r, &mut q)?,
        9 => offset_fetch(r, &mut q)?,
        19 => {
            q.topics = topics(r, |r| {
                let name = r.raw_string()?;
                r.skip(6)?; // partitions, replication factor
                for _ in 0..r.count()? {
                    r.skip(4)?;
                    r.i32s()?; // broker ids
                    r.tagged()?;
                }
                for _ in 0..r.count()? {
                    r.string()?;
                    r.string()?;
                    r.tagged()?;
                }
                r.tagged()?;
                Ok(Topic {
                    name,
                    id: None,
                    parts: Vec::new(),
                })
            })?;
        }
        _ => {
            q.topics = topics(r, |r| {
                if v >= 6 {
                    let name = r.raw_string()?;
                    let id = Some(r.uuid()?);
                    r.tagged()?;
                    Ok(Topic {
                        name,
                        id,
                        parts: Vec::new(),
                    })
                } else {
                    Ok(Topic {
                        name: Some(r.raw_string()?.unwrap_or_default()),
                        ..Topic::default()
                    })
                }
            })?;
        }
    }
    Ok(Some(q))
}

fn produce(r: &mut Rd, q: &mut Request) -> Result<(), Bad> {
    let v = q.version;
    if v >= 3 {
        r.string()?; // transactional id
    }
    q.acks = r.i16()?;
    r.skip(4)?; // timeout
    q.topics = topics(r, |r| {
        let mut t = name_or_id(r, v, 12)?;
        for _ in 0..r.count()? {
            t.parts.push(r.i32()?);
            r.bytes()?; // records
            r.tagged()?;
        }
        r.tagged()?;
        Ok(t)
    })?;
    Ok(())
}

fn fetch(r: &mut Rd, q: &mut Request) -> Result<(), Bad> {
    let v = q.version;
    // Replica id (to v14), max wait, min bytes, max bytes, isolation level.
    let fixed =
        if v <= 14 { 4 } else { 0 } + 8 + if v >= 3 { 4 } else { 0 } + if v >= 4 { 1 } else { 0 };
    r.skip(fixed)?;
    if v >= 7 {
        q.session = Some((r.i32()?, r.i32()?));
    }
    // After the index: leader epoch, offset, last fetched epoch, log start, max bytes.
    let skip = if v >= 9 { 4 } else { 0 }
        + 8
        + if v >= 12 { 4 } else { 0 }
        + if v >= 5 { 8 } else { 0 }
        + 4;
    q.topics = topics(r, |r| {
        let mut t = name_or_id(r, v, 12)?;
        t.parts = partitions(r, skip)?;
        r.tagged()?;
        Ok(t)
    })?;
    if v >= 7 {
        q.forgotten = topics(r, |r| {
            let mut t = name_or_id(r, v, 12)?;
            t.parts = r.i32s()?;
            r.tagged()?;
            Ok(t)
        })?
        .unwrap_or_default();
    }
    Ok(())
}

/// OffsetCommit: group, generation, member, instance, retention (v2-4), then topics
/// (by ID from v10) and their partitions.
fn offset_commit(r: &mut Rd, q: &mut Request) -> Result<(), Bad> {
    let v = q.version;
    r.string()?; // group id
    if v >= 1 {
        r.skip(4)?; // generation id or member epoch
        r.string()?; // member id
    }
    if v >= 7 {
        r.string()?; // group instance id
    }
    if (2..=4).contains(&v) {
        r.skip(8)?; // retention time
    }
    q.topics = topics(r, |r| {
        let mut t = name_or_id(r, v, 9)?;
        for _ in 0..r.count()? {
            t.parts.push(r.i32()?);
            // Offset, leader epoch (v6+), commit timestamp (v1 only).
            r.skip(8 + if v >= 6 { 4 } else { 0 } + if v == 1 { 8 } else { 0 })?;
            r.string()?; // metadata
            r.tagged()?;
        }
        r.tagged()?;
        Ok(t)
    })?;
    Ok(())
}

/// OffsetFetch: one group and its topics (null: all, v2-7), or from v8 groups each with
/// its member (v9+) and topics (by ID from v10).
fn offset_fetch(r: &mut Rd, q: &mut Request) -> Result<(), Bad> {
    let v = q.version;
    if v <= 7 {
        r.string()?; // group id
        q.topics = topics(r, |r| {
            let mut t = name_or_id(r, v, 7)?;
            t.parts = r.i32s()?;
            r.tagged()?;
            Ok(t)
        })?;
        return Ok(());
    }
    for _ in 0..r.count()? {
        let id = r.raw_string()?.unwrap_or_default();
        if v >= 9 {
            r.string()?; // member id
            r.skip(4)?; // member epoch
        }
        let topics = topics(r, |r| {
            let mut t = name_or_id(r, v, 9)?;
            t.parts = r.i32s()?;
            r.tagged()?;
            Ok(t)
        })?;
        r.tagged()?;
        q.groups.push(Group { id, topics });
    }
    Ok(())
}
