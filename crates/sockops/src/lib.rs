//! Redis command rules at the socket, in the kernel.
//!
//! A relay of any kind costs Redis 40-50 % of its throughput on a two-core node (see
//! `experiments/sockmap`); this path costs nothing: a `sockops` program on the node's
//! cgroup puts both ends of every connection to a named Redis server into a sockhash,
//! and an `sk_msg` program frames the client's RESP stream at `sendmsg` (whatever the
//! write boundaries: pipelines, cut headers, values of any size), decides each command
//! from a table, and sends allowed bytes straight into the server socket's receive queue
//! when the server is on this node (skipping TCP), or on to TCP when it is not. A refused
//! command is rewritten into a script the server answers with Redis's own refusal
//! (`-NOPERM bulkhead: this command is not allowed by policy`), so the client reads it in
//! order, after the replies of the commands before it; a refused command larger than one
//! write (or a stream that is not RESP, or a client no table covers) fails the client's
//! writes (`EACCES`) instead.
//!
//! The tables are not decided here: the caller computes, with the policy engine, which
//! commands each (client identity, server identity, port) may send, so the kernel only
//! looks verdicts up (one evaluation core). Each refused command is reported once
//! ([`RedisPath::refusals`]), for the caller's events. This crate loads the programs and
//! keeps their maps; the programs are in `bpf/redis.bpf.c`, compiled by `build.rs`.
//!
//! The framing loop is near the verifier's limit of 1M instructions explored (16 headers
//! per program run); moving its body into a `bpf_loop` callback is the way to grow it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redis.bpf.o"));

/// Longest command name a table can hold (longer names are "any other command").
pub const NAME: usize = 23;

/// What the programs counted, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub allowed: u64,
    pub refused: u64,
    /// Server writes passed on (replies).
    pub replies: u64,
    /// Client streams that are not RESP (refused).
    pub malformed: u64,
    /// Client writes refused because no table covers the pair.
    pub no_table: u64,
}

/// A refused command, as the program saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub client: std::net::SocketAddrV4,
    pub server: std::net::SocketAddrV4,
    pub table: u32,
    /// Upper-case; empty when longer than [`NAME`].
    pub command: String,
}

impl Refusal {
    fn parse(b: &[u8]) -> Option<Refusal> {
        let word = |i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let ip = |i: usize| Some(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(i..i + 4)?).ok()?));
        let name = b.get(20..20 + NAME + 1)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        Some(Refusal {
            client: std::net::SocketAddrV4::new(ip(0)?, word(8)? as u16),
            server: std::net::SocketAddrV4::new(ip(4)?, word(12)? as u16),
            table: word(16)?,
            command: String::from_utf8_lossy(&name[..end]).into_owned(),
        })
    }
}

/// The programs, attached; detached when dropped.
pub struct RedisPath {
    obj: Object,
    _cgroup: Link,
}

impl RedisPath {
    /// Load the programs and attach them to the cgroup (v2) directory `cgroup`: every
    /// socket of a process under it is seen.
    pub fn attach(cgroup: &Path) -> Result<Self> {
        let mut obj = ObjectBuilder::default()
            .open_memory(OBJECT)
            .context("opening the BPF object")?
            .load()
            .context("loading the BPF programs (root, and a kernel with sockmap)")?;
        let socks = map_fd(&obj, "socks")?;
        prog(&mut obj, "frame")?
            .attach_sockmap(socks)
            .context("attaching sk_msg to the sockhash")?;
        let dir = File::open(cgroup).with_context(|| format!("cgroup {}", cgroup.display()))?;
        let link = prog(&mut obj, "take")?
            .attach_cgroup(dir.as_raw_fd())
            .with_context(|| format!("attaching sockops to {}", cgroup.display()))?;
        Ok(RedisPath { obj, _cgroup: link })
    }

    /// Connections to this server address (from now on) take this path.
    pub fn add_server(&self, ip: Ipv4Addr, port: u16) -> Result<()> {
        self.update("servers", &addr(ip, port), &1u32.to_ne_bytes())
    }

    /// The identity of an address (any number the tables use, not 0).
    pub fn set_identity(&self, ip: Ipv4Addr, identity: u32) -> Result<()> {
        self.update("identities", &ip.octets(), &identity.to_ne_bytes())
    }

    /// Which table decides the commands `client` sends to `server` on `port`.
    pub fn set_table(&self, client: u32, server: u32, port: u16, table: u32) -> Result<()> {
        if table == 0 || table == u32::MAX {
            bail!("table numbers are 1 to 2^32-2");
        }
        let mut k = Vec::with_capacity(12);
        for v in [client, server, u32::from(port)] {
            k.extend_from_slice(&v.to_ne_bytes());
        }
        self.update("tables", &k, &table.to_ne_bytes())
    }

    /// A command's verdict in a table; `None` is every command the table does not name.
    /// Names are compared upper-case.
    pub fn set_verdict(&self, table: u32, command: Option<&str>, allowed: bool) -> Result<()> {
        let mut k = vec![0u8; 4 + NAME + 1];
        k[..4].copy_from_slice(&table.to_ne_bytes());
        if let Some(c) = command {
            if c.is_empty() || c.len() > NAME {
                bail!("command {c:?}: 1 to {NAME} bytes");
            }
            k[4..4 + c.len()].copy_from_slice(c.to_ascii_uppercase().as_bytes());
        }
        let v: u32 = if allowed { 1 } else { 2 };
        self.update("verdicts", &k, &v.to_ne_bytes())
    }

    /// The refusals reported since the last call (the ring buffer holds 256 KiB of them;
    /// beyond that the program stops reporting, still refusing).
    pub fn refusals(&self) -> Result<Vec<Refusal>> {
        let out = std::cell::RefCell::new(Vec::new());
        let map = map(&self.obj, "refusals")?;
        let mut builder = libbpf_rs::RingBufferBuilder::new();
        builder.add(&map, |b: &[u8]| {
            out.borrow_mut().extend(Refusal::parse(b));
            0
        })?;
        builder.build()?.consume()?;
        Ok(out.into_inner())
    }

    pub fn counters(&self) -> Result<Counters> {
        let map = map(&self.obj, "counters")?;
        let mut sums = [0u64; 5];
        for (i, sum) in sums.iter_mut().enumerate() {
            let per_cpu = map
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)?
                .unwrap_or_default();
            *sum = per_cpu
                .iter()
                .map(|b| u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])))
                .sum();
        }
        let [allowed, refused, replies, malformed, no_table] = sums;
        Ok(Counters {
            allowed,
            refused,
            replies,
            malformed,
            no_table,
        })
    }

    fn update(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        map(&self.obj, name)?
            .update(key, value, MapFlags::ANY)
            .with_context(|| format!("updating BPF map {name}"))
    }
}

/// `struct addr` of the program: address in network order, port in host order.
fn addr(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut k = ip.octets().to_vec();
    k.extend_from_slice(&u32::from(port).to_ne_bytes());
    k
}

fn map<'a>(obj: &'a Object, name: &str) -> Result<libbpf_rs::Map<'a>> {
    obj.maps()
        .find(|m| m.name() == name)
        .with_context(|| format!("BPF map {name} missing"))
}

fn map_fd(obj: &Object, name: &str) -> Result<i32> {
    Ok(map(obj, name)?.as_fd().as_raw_fd())
}

fn prog<'a>(obj: &'a mut Object, name: &str) -> Result<libbpf_rs::ProgramMut<'a>> {
    obj.progs_mut()
        .find(|p| p.name() == name)
        .with_context(|| format!("BPF program {name} missing"))
}
