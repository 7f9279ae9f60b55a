//! Fetch sessions (Fetch v7+, KIP-227): after a full fetch the broker opens a session
//! holding its partitions, and the client's incremental fetches name only what changed
//! (an idle consumer's name nothing) while reading every partition of the session. The
//! proxy follows the sessions the broker opens on the connection, so an incremental
//! fetch is decided on every topic it reads, not on none.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::request::{Request, Topic};
use super::wire::{Bad, Rd};

/// Partitions by topic (as rules see it: an ID the broker named is its name).
pub type Partitions = BTreeMap<String, BTreeSet<i32>>;

/// The partitions followed at most on one connection (past that, a new session is not
/// followed and its incremental fetches are decided on what they name).
const MAX_PARTITIONS: usize = 100_000;

#[derive(Default)]
pub struct FetchSessions {
    open: HashMap<i32, Partitions>,
}

fn add(parts: &mut Partitions, topics: &[Topic], name: &dyn Fn(&Topic) -> String) {
    for t in topics {
        parts.entry(name(t)).or_default().extend(&t.parts);
    }
}

fn size(parts: &Partitions) -> usize {
    parts.values().map(|p| p.len().max(1)).sum()
}

impl FetchSessions {
    fn held(&self) -> usize {
        self.open.values().map(size).sum()
    }

    /// What an incremental fetch of a session opened here reads: the session's
    /// partitions with the request's added and its forgotten ones removed. None for
    /// other requests and sessions not followed.
    pub fn reads(&self, q: &Request, name: &dyn Fn(&Topic) -> String) -> Option<Partitions> {
        let (id, epoch) = q.session?;
        let mut parts = self.open.get(&id).filter(|_| epoch > 0)?.clone();
        add(&mut parts, q.topics.as_deref().unwrap_or_default(), name);
        for t in &q.forgotten {
            if let Some(p) = parts.get_mut(&name(t)) {
                for i in &t.parts {
                    p.remove(i);
                }
                if p.is_empty() {
                    parts.remove(&name(t));
                }
            }
        }
        Some(parts)
    }

    /// A fetch was forwarded (`reads`: what it reads, if incremental and followed).
    /// Returns the partitions of a full fetch that asks for a new session: the session
    /// opens with the broker's answer ([`FetchSessions::opened`]).
    pub fn forwarded(
        &mut self,
        q: &Request,
        reads: Option<Partitions>,
        name: &dyn Fn(&Topic) -> String,
    ) -> Option<Partitions> {
        let (id, epoch) = q.session?;
        match (epoch, reads) {
            (e, Some(parts)) if e > 0 => {
                self.open.insert(id, parts);
                None
            }
            (0, _) => {
                // A full fetch: a new session replaces the one named (if any).
                self.open.remove(&id);
                let mut parts = Partitions::new();
                add(&mut parts, q.topics.as_deref().unwrap_or_default(), name);
                Some(parts)
            }
            _ => {
                self.open.remove(&id);
                None
            }
        }
    }

    /// A fetch was refused: its answer (session 0) ends the session for the client.
    pub fn refused(&mut self, q: &Request) {
        if let Some((id, _)) = q.session {
            self.open.remove(&id);
        }
    }

    /// The broker answered a full fetch (`head`: the first bytes of its response, after
    /// the size): the session it opened holds `parts`.
    pub fn opened(&mut self, version: i16, head: &[u8], parts: Partitions) {
        if let Ok(Some(id)) = response_session(version, head)
            && self.held() + size(&parts) <= MAX_PARTITIONS
        {
            self.open.insert(id, parts);
        }
    }
}

/// The session a Fetch response (v7+; its first bytes after the size) opened, if it
/// opened one without error.
pub fn response_session(version: i16, head: &[u8]) -> Result<Option<i32>, Bad> {
    let mut r = Rd {
        b: head,
        flex: version >= 12,
    };
    r.skip(4)?; // correlation id
    r.tagged()?;
    r.skip(4)?; // throttle time
    let error = r.i16()?;
    let id = r.i32()?;
    Ok((error == 0 && id != 0).then_some(id))
}
