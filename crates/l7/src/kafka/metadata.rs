//! What the proxy learns from the broker's Metadata responses on a connection: the
//! brokers and cluster (a refused Metadata request is answered with them, as clients
//! ignore a Metadata response that lists no broker) and the names of topic IDs.

use super::wire::{Bad, Rd, uuid_label};

/// A broker as a Metadata response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub node: i32,
    pub host: Vec<u8>,
    pub port: i32,
    pub rack: Option<Vec<u8>>,
}

/// The cluster the broker described last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub brokers: Vec<Broker>,
    pub cluster_id: Option<Vec<u8>>,
    pub controller: i32,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            brokers: Vec::new(),
            cluster_id: None,
            controller: -1,
        }
    }
}

/// The brokers remembered at most.
const MAX_BROKERS: usize = 1024;

/// A Metadata response (its bytes after the size): the cluster it describes, and the
/// topic IDs it names (v10+) with their names.
pub fn read(version: i16, response: &[u8]) -> Result<(Cluster, Vec<(String, String)>), Bad> {
    if !(0..=13).contains(&version) {
        return Err("unknown Metadata version");
    }
    let mut r = Rd {
        b: response,
        flex: version >= 9,
    };
    r.skip(4)?; // correlation id
    r.tagged()?;
    if version >= 3 {
        r.skip(4)?; // throttle time
    }
    let mut cluster = Cluster::default();
    for _ in 0..r.count()? {
        let node = r.i32()?;
        let host = r.raw_string()?.unwrap_or_default();
        let port = r.i32()?;
        let rack = if version >= 1 { r.raw_string()? } else { None };
        r.tagged()?;
        if cluster.brokers.len() < MAX_BROKERS {
            cluster.brokers.push(Broker {
                node,
                host,
                port,
                rack,
            });
        }
    }
    if version >= 2 {
        cluster.cluster_id = r.raw_string()?;
    }
    if version >= 1 {
        cluster.controller = r.i32()?;
    }
    let mut ids = Vec::new();
    if version < 10 {
        return Ok((cluster, ids));
    }
    for _ in 0..r.count()? {
        r.skip(2)?; // error
        let name = r.string()?;
        let id = uuid_label(&r.uuid()?);
        r.skip(1)?; // internal
        for _ in 0..r.count()? {
            r.skip(14)?; // error, index, leader, leader epoch
            for _ in 0..3 {
                r.i32s()?; // replicas, in sync, offline
            }
            r.tagged()?;
        }
        r.skip(4)?; // authorized operations
        r.tagged()?;
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            ids.push((id, n));
        }
    }
    Ok((cluster, ids))
}
