//! Redis command rules at the socket, in the kernel.
//!
//! A relay of any kind costs Redis 40-50 % of its throughput on a two-core node (see
//! `experiments/sockmap`); this path costs nothing: a `sockops` program on the node's
//! cgroup puts both ends of every connection to a named Redis server into a sockhash,
//! and an `sk_msg` program frames the client's RESP stream at `sendmsg` (whatever the
//! write boundaries: pipelines, cut headers, values of any size; inline commands too),
//! decides each command
//! from a table, and sends allowed bytes straight into the server socket's receive queue
//! when the server is on this node (skipping TCP), or on to TCP when it is not. A refused
//! command is rewritten into a script the server answers with Redis's own refusal
//! (`-NOPERM bulkhead: this command is not allowed by policy`), so the client reads it in
//! order, after the replies of the commands before it; a refused command cut by the end
//! of a write gets a byte of its name spoiled, so that the server answers it as an
//! unknown command (a write that ends inside a header passes it and the next write's run
//! reads it to its end: docs/l7.md, "Writes cut anywhere"); a stream that is not RESP,
//! or a client no table covers, fails the client's writes (`EACCES`).
//!
//! The tables are not decided here: the caller computes, with the policy engine, which
//! commands each (client identity, server identity, port) may send, so the kernel only
//! looks verdicts up (one evaluation core). A verdict may also be "allow and report" (a
//! Monitor group's violation: [`Verdict::Report`]), and a table says whether a stream that
//! is not RESP is refused or passed on unframed and reported. Each refused command is reported once
//! ([`RedisPath::refusals`]), for the caller's events. This crate loads the programs and
//! keeps their maps; the programs are in `bpf/redis.bpf.c`, compiled by `build.rs`.
//!
//! For a client on this node and a server on another, the programs also vouch for each
//! connection they take in its SYN, and check such SYNs where the server is ([`vouch`]),
//! so that the server's node can let exactly those past its L7 proxy.
//!
//! The framing loop is near the verifier's limit of 1M instructions explored (16 headers
//! per program run); moving its body into a `bpf_loop` callback is the way to grow it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use anyhow::{Context, Result, bail};
use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder};

mod pin;
pub mod vouch;
use pin::mount_bpffs;
pub use pin::{PIN_ROOT, pin_dir, retire, unpin, unpin_under};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redis.bpf.o"));

/// Longest command name a table can hold (longer names are "any other command").
pub const NAME: usize = 23;

/// What the client of a refused command reads: the reply to the script the program
/// rewrites the command into (redis.bpf.c, `refuse`).
pub const NOPERM: &str = "-NOPERM bulkhead: this command is not allowed by policy\r\n";

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
    /// Commands allowed and reported (a Monitor group's violations).
    pub reported: u64,
    /// Reports (refusals, violations, connections taken) lost because the agent's
    /// ring was full.
    pub lost: u64,
    /// SYNs this node vouched for ([`vouch`]).
    pub vouched: u64,
    /// SYNs arriving with a valid tag, marked.
    pub verified: u64,
    /// SYNs to a server on the path without a valid tag (left to the proxy).
    pub unverified: u64,
    /// SYNs with a valid tag seen already (a replay or a retransmission: left to the proxy).
    pub replayed: u64,
    /// Segments and writes of connections with unread bytes ([`Refused::Unread`]),
    /// dropped and refused.
    pub unread: u64,
}

/// What a table says of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Allow,
    Refuse,
    /// Allowed, and reported as a violation (a Monitor group's): one report per command.
    Report,
}

impl Verdict {
    /// The value in the program's `verdicts` map.
    fn value(self) -> u32 {
        match self {
            Verdict::Allow => 1,
            Verdict::Refuse => 2,
            Verdict::Report => 3,
        }
    }

    fn from_value(v: u32) -> Verdict {
        match v {
            1 => Verdict::Allow,
            3 => Verdict::Report,
            _ => Verdict::Refuse,
        }
    }

    /// Does the command reach the server?
    pub fn allowed(self) -> bool {
        self != Verdict::Refuse
    }
}

/// What the program refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A command its table refuses (answered `-NOPERM`, or the write failed).
    Command,
    /// A stream that is not RESP: the client's writes fail.
    NotResp,
    /// A client whose pair has no table (any more): its writes fail.
    NoTable,
    /// Not a refusal: a connection the path took (its client's end), for its record.
    Taken,
    /// Not a refusal: a command its table allows and reports (a Monitor violation).
    Reported,
    /// Not a refusal: a stream that is not RESP, which its table lets through unframed
    /// and reports once (a Monitor violation).
    ReportedStream,
    /// Bytes the client's socket queued that the program never read (written while the
    /// connection was being set up, or TCP Fast Open data): they never leave the node,
    /// nor does anything after them, and the client's writes fail.
    Unread,
}

/// A refusal, as the program saw it (one per refused command; one per connection for
/// the other kinds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub table: u32,
    pub kind: Refused,
    /// Upper-case; empty when longer than [`NAME`] or not a command refusal.
    pub command: String,
}

impl Refusal {
    fn parse(b: &[u8]) -> Option<Refusal> {
        let word = |i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let ip = |i: usize| Some(from_key(b.get(i..i + 16)?.try_into().ok()?));
        let name = b.get(48..48 + NAME + 1)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        Some(Refusal {
            client: SocketAddr::new(ip(0)?, word(32)? as u16),
            server: SocketAddr::new(ip(16)?, word(36)? as u16),
            table: word(40)?,
            kind: match word(44)? {
                0 => Refused::Command,
                1 => Refused::NotResp,
                2 => Refused::NoTable,
                4 => Refused::Reported,
                5 => Refused::ReportedStream,
                6 => Refused::Unread,
                _ => Refused::Taken,
            },
            command: String::from_utf8_lossy(&name[..end]).into_owned(),
        })
    }
}

/// Program `name` attached to `cgroup`; when pinning, the link pinned under `dir` by an
/// earlier process (its program replaced by this one) if there is one.
fn cgroup_link(obj: &mut Object, name: &str, cgroup: &Path, pin: Option<&Path>) -> Result<Link> {
    match pin.map(|d| d.join(name)) {
        Some(at) if at.exists() => {
            let mut link =
                Link::open(&at).with_context(|| format!("opening the pinned {name} link"))?;
            let p = obj
                .progs()
                .find(|p| p.name() == name)
                .with_context(|| format!("BPF program {name} missing"))?;
            link.update_prog(&p)
                .with_context(|| format!("replacing the pinned {name} program"))?;
            Ok(link)
        }
        at => {
            let dir = File::open(cgroup).with_context(|| format!("cgroup {}", cgroup.display()))?;
            let mut link = prog(obj, name)?
                .attach_cgroup(dir.as_raw_fd())
                .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
            if let Some(at) = at {
                link.pin(&at)
                    .with_context(|| format!("pinning the {name} link"))?;
            }
            Ok(link)
        }
    }
}

/// The programs, attached; detached when dropped.
pub struct RedisPath {
    obj: Object,
    /// sockops (`take`) and cgroup_skb egress (`guard`).
    _cgroup: [Link; 2],
    /// What [`RedisPath::apply`] last wrote.
    applied: Tables,
}

/// Everything the programs decide with, as the agent computes it from the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Server addresses whose connections may take the path.
    pub servers: BTreeSet<SocketAddr>,
    /// Those of them on other nodes: only the client's end of a connection to one is
    /// taken (where nodes share a kernel, as a lab's do, the server's end is its own
    /// node's; across machines it is not here at all).
    pub remote_servers: BTreeSet<SocketAddr>,
    /// The number each address is known by (the same number for addresses every rule
    /// treats alike).
    pub identities: BTreeMap<IpAddr, u32>,
    /// (client number, server number, server port) -> table.
    pub tables: BTreeMap<(u32, u32, u16), u32>,
    /// (table, command, upper-case; None: any other) -> allowed.
    pub verdicts: BTreeMap<(u32, Option<String>), Verdict>,
    /// Table -> what a stream that is not RESP gets: refused (no entry, or
    /// [`Verdict::Refuse`]) or let through unframed and reported ([`Verdict::Report`]).
    pub not_resp: BTreeMap<u32, Verdict>,
}

impl RedisPath {
    /// Load the programs and attach them to the cgroup (v2) directory `cgroup`: every
    /// socket of a process under it is seen. Detached when dropped.
    pub fn attach(cgroup: &Path) -> Result<Self> {
        Self::attach_in(cgroup, None)
    }

    /// The same, pinned under `dir` (on the BPF file system): the programs and their maps
    /// outlive the process, so connections stay decided by the last tables while an agent
    /// restarts (as the nftables rules stay). Adopts what an earlier process pinned there:
    /// the same maps (live connections keep their place in their streams), the new
    /// programs. [`unpin`] removes them.
    pub fn attach_pinned(cgroup: &Path, dir: &Path) -> Result<Self> {
        mount_bpffs(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        match Self::attach_in(cgroup, Some(dir)) {
            Ok(p) => Ok(p),
            Err(e) => {
                // Maps of an incompatible build: start afresh (their connections fail).
                let _ = unpin(dir);
                std::fs::create_dir_all(dir)?;
                Self::attach_in(cgroup, Some(dir))
                    .with_context(|| format!("after discarding the pinned maps ({e:#})"))
            }
        }
    }

    fn attach_in(cgroup: &Path, pin: Option<&Path>) -> Result<Self> {
        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .context("opening the BPF object")?;
        if let Some(dir) = pin {
            for mut m in open.maps_mut() {
                let name = m.name().to_string_lossy().into_owned();
                // Internal maps (.rodata) are the program's own.
                if !name.contains('.') {
                    m.set_pin_path(dir.join(&name))?;
                }
            }
        }
        let mut obj = open
            .load()
            .context("loading the BPF programs (root, and a kernel with sockmap)")?;
        let socks = map_fd(&obj, "socks")?;
        // On an adopted sockhash this replaces the earlier process's program.
        prog(&mut obj, "frame")?
            .attach_sockmap(socks)
            .context("attaching sk_msg to the sockhash")?;
        let links = [
            cgroup_link(&mut obj, "take", cgroup, pin)?,
            cgroup_link(&mut obj, "guard", cgroup, pin)?,
        ];
        // The proxy's list of commands a first inline line may name.
        for name in bulkhead_detect::REDIS_INLINE_COMMANDS {
            let mut k = [0u8; NAME + 1];
            k[..name.len()].copy_from_slice(name.as_bytes());
            map(&obj, "inline_names")?
                .update(&k, &1u32.to_ne_bytes(), MapFlags::ANY)
                .context("filling inline_names")?;
        }
        let applied = if pin.is_some() {
            read_tables(&obj)?
        } else {
            Tables::default()
        };
        Ok(RedisPath {
            obj,
            _cgroup: links,
            applied,
        })
    }

    /// Connections to this server address (from now on) take this path, when their
    /// pair has a table.
    pub fn add_server(&self, ip: IpAddr, port: u16) -> Result<()> {
        self.update("servers", &addr(ip, port), &1u32.to_ne_bytes())
    }

    /// What the maps hold (as far as this process wrote or adopted them).
    pub fn applied(&self) -> &Tables {
        &self.applied
    }

    /// Make the maps hold `want`, changing only what differs from what the last call
    /// wrote. Additions come first and removals last, so a connection taken meanwhile
    /// always finds its whole table (a removed table's connections are refused: the
    /// nftables rules send new ones to the proxy first).
    pub fn apply(&mut self, want: &Tables) -> Result<()> {
        let have = std::mem::take(&mut self.applied);
        // On an error, what is in the maps is unknown: the next call rewrites it all.
        for ((t, name), &verdict) in &want.verdicts {
            if have.verdicts.get(&(*t, name.clone())) != Some(&verdict) {
                self.set_verdict(*t, name.as_deref(), verdict)?;
            }
        }
        for (&t, &verdict) in &want.not_resp {
            if have.not_resp.get(&t) != Some(&verdict) {
                self.update("verdicts", &not_resp(t), &verdict.value().to_ne_bytes())?;
            }
        }
        for (ip, &id) in &want.identities {
            if have.identities.get(ip) != Some(&id) {
                self.set_identity(*ip, id)?;
            }
        }
        for (&(c, sv, port), &t) in &want.tables {
            if have.tables.get(&(c, sv, port)) != Some(&t) {
                self.set_table(c, sv, port, t)?;
            }
        }
        for s in &want.servers {
            let remote = want.remote_servers.contains(s);
            if !have.servers.contains(s) || have.remote_servers.contains(s) != remote {
                let v: u32 = if remote { 2 } else { 1 };
                self.update("servers", &addr(s.ip(), s.port()), &v.to_ne_bytes())?;
            }
        }
        for s in have.servers.difference(&want.servers) {
            self.delete("servers", &addr(s.ip(), s.port()))?;
        }
        for &(c, sv, port) in have.tables.keys() {
            if !want.tables.contains_key(&(c, sv, port)) {
                self.delete("tables", &pair(c, sv, port))?;
            }
        }
        for ip in have.identities.keys() {
            if !want.identities.contains_key(ip) {
                self.delete("identities", &key(*ip))?;
            }
        }
        for (t, name) in have.verdicts.keys() {
            if !want.verdicts.contains_key(&(*t, name.clone())) {
                self.delete("verdicts", &command(*t, name.as_deref())?)?;
            }
        }
        for t in have.not_resp.keys() {
            if !want.not_resp.contains_key(t) {
                self.delete("verdicts", &not_resp(*t))?;
            }
        }
        self.applied = want.clone();
        Ok(())
    }

    /// The identity of an address (any number the tables use, not 0).
    pub fn set_identity(&self, ip: IpAddr, identity: u32) -> Result<()> {
        self.update("identities", &key(ip), &identity.to_ne_bytes())
    }

    /// Which table decides the commands `client` sends to `server` on `port`.
    pub fn set_table(&self, client: u32, server: u32, port: u16, table: u32) -> Result<()> {
        if table == 0 || table == u32::MAX {
            bail!("table numbers are 1 to 2^32-2");
        }
        self.update("tables", &pair(client, server, port), &table.to_ne_bytes())
    }

    /// A command's verdict in a table; `None` is every command the table does not name.
    /// Names are compared upper-case.
    pub fn set_verdict(
        &self,
        table: u32,
        command_name: Option<&str>,
        verdict: Verdict,
    ) -> Result<()> {
        let v = verdict.value();
        self.update("verdicts", &command(table, command_name)?, &v.to_ne_bytes())
    }

    /// What a table gives a stream that is not RESP ([`Tables::not_resp`]).
    pub fn set_not_resp(&self, table: u32, verdict: Verdict) -> Result<()> {
        self.update("verdicts", &not_resp(table), &verdict.value().to_ne_bytes())
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

    /// Call `each` with every refusal from now on, on a thread of its own, until `stop`
    /// says so (checked at least every 200 ms).
    pub fn watch_refusals(
        &self,
        mut each: impl FnMut(Refusal) + Send + 'static,
        stop: impl Fn() -> bool + Send + 'static,
    ) -> Result<()> {
        let handle = libbpf_rs::MapHandle::try_from(&map(&self.obj, "refusals")?)?;
        std::thread::Builder::new()
            .name("sockops-refusals".into())
            .spawn(move || {
                let mut builder = libbpf_rs::RingBufferBuilder::new();
                let added = builder.add(&handle, move |b: &[u8]| {
                    if let Some(r) = Refusal::parse(b) {
                        each(r);
                    }
                    0
                });
                if added.is_err() {
                    return;
                }
                let Ok(ring) = builder.build() else {
                    return;
                };
                while !stop() {
                    let _ = ring.poll(std::time::Duration::from_millis(200));
                }
            })?;
        Ok(())
    }

    pub fn counters(&self) -> Result<Counters> {
        let map = map(&self.obj, "counters")?;
        // Summed over CPUs, by the index the programs count at (their enum).
        let sum = |i: u32| -> Result<u64> {
            let per_cpu = map
                .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)?
                .unwrap_or_default();
            Ok(per_cpu
                .iter()
                .map(|b| u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])))
                .sum())
        };
        Ok(Counters {
            allowed: sum(0)?,
            refused: sum(1)?,
            replies: sum(2)?,
            malformed: sum(3)?,
            no_table: sum(4)?,
            reported: sum(5)?,
            lost: sum(6)?,
            vouched: sum(7)?,
            verified: sum(8)?,
            unverified: sum(9)?,
            replayed: sum(10)?,
            unread: sum(11)?,
        })
    }

    fn delete(&self, name: &str, key: &[u8]) -> Result<()> {
        match map(&self.obj, name)?.delete(key) {
            Ok(()) => Ok(()),
            // Already gone (a map the programs never fill is never emptied by them).
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting from BPF map {name}")),
        }
    }

    fn update(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        map(&self.obj, name)?
            .update(key, value, MapFlags::ANY)
            .with_context(|| format!("updating BPF map {name}"))
    }
}

/// What the maps hold (an adopted set of maps).
fn read_tables(obj: &Object) -> Result<Tables> {
    let mut t = Tables::default();
    let word = |b: &[u8], i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
    let entries = |name: &str| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let m = map(obj, name)?;
        let mut out = Vec::new();
        for k in m.keys() {
            if let Some(v) = m.lookup(&k, MapFlags::ANY)? {
                out.push((k, v));
            }
        }
        Ok(out)
    };
    let ip = |k: &[u8]| from_key(k[..16].try_into().unwrap_or([0; 16]));
    for (k, v) in entries("servers")? {
        let s = SocketAddr::new(ip(&k), word(&k, 16) as u16);
        t.servers.insert(s);
        if word(&v, 0) == 2 {
            t.remote_servers.insert(s);
        }
    }
    for (k, v) in entries("identities")? {
        t.identities.insert(ip(&k), word(&v, 0));
    }
    for (k, v) in entries("tables")? {
        t.tables
            .insert((word(&k, 0), word(&k, 4), word(&k, 8) as u16), word(&v, 0));
    }
    for (k, v) in entries("verdicts")? {
        if k.get(4 + NAME) == Some(&1) {
            t.not_resp
                .insert(word(&k, 0), Verdict::from_value(word(&v, 0)));
            continue;
        }
        let name = &k[4..];
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        let name = (end > 0).then(|| String::from_utf8_lossy(&name[..end]).into_owned());
        t.verdicts
            .insert((word(&k, 0), name), Verdict::from_value(word(&v, 0)));
    }
    Ok(t)
}

/// `struct ip` of the program: 16 bytes in network order, IPv4 mapped (`::ffff:a.b.c.d`),
/// as the programs read a socket's addresses of either family.
fn key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from_key(k: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// `struct addr` of the program: address as [`key`], port in host order.
fn addr(ip: IpAddr, port: u16) -> Vec<u8> {
    let mut k = key(ip).to_vec();
    k.extend_from_slice(&u32::from(port).to_ne_bytes());
    k
}

/// `struct pair` of the program.
fn pair(client: u32, server: u32, port: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    for v in [client, server, u32::from(port)] {
        k.extend_from_slice(&v.to_ne_bytes());
    }
    k
}

/// The `verdicts` key of a table's verdict for a stream that is not RESP: its last name
/// byte is 1, which no name the program reads from a stream has (it keeps at most
/// [`NAME`] bytes and a terminating 0).
fn not_resp(table: u32) -> Vec<u8> {
    let mut k = vec![0u8; 4 + NAME + 1];
    k[..4].copy_from_slice(&table.to_ne_bytes());
    k[4 + NAME] = 1;
    k
}

/// `struct command` of the program: a table and an upper-case name (empty: any other).
fn command(table: u32, name: Option<&str>) -> Result<Vec<u8>> {
    let mut k = vec![0u8; 4 + NAME + 1];
    k[..4].copy_from_slice(&table.to_ne_bytes());
    if let Some(c) = name {
        if c.is_empty() || c.len() > NAME {
            bail!("command {c:?}: 1 to {NAME} bytes");
        }
        k[4..4 + c.len()].copy_from_slice(c.to_ascii_uppercase().as_bytes());
    }
    Ok(k)
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
