//! The socket path: Redis commands between workloads of this node decided in the kernel,
//! at the client's socket (`bulkhead-sockops`), instead of through the L7 proxy.
//!
//! `plan` computes, with the engine, which connections can take it and their tables.
//! This module writes them, in an order that never lets a connection through undecided:
//! 1. the BPF maps gain the new tables (nothing takes them yet: nftables still sends
//!    their SYNs to the proxy, whose sockets find no table of their own... see below);
//! 2. the `inet bulkhead_sockpath` table (prerouting, before the divert chain) marks
//!    the SYNs of exactly the planned pairs with `SOCKPATH_MARK`, which the divert chain
//!    lets pass instead of diverting them; the sockops program takes those connections;
//! 3. the BPF maps lose what is no longer planned: a live connection whose pair went
//!    finds no table at its next write and fails (fail closed; new ones go to the proxy).
//!
//! In step 1 the proxy's own two sockets of a connection diverted meanwhile (its accepted
//! one has the server's address, its outgoing one the client's) may be taken too: their
//! bytes are then decided by the table as well, by the same engine.
//!
//! Refusals the programs report become the same events the proxy's refusals are, with
//! the deciding rule from the engine and a capture of the refused command.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use bulkhead_dataplane::names::{SOCKPATH_MARK, VOUCH_MARK};
use bulkhead_policy::Engine;
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};
use bulkhead_proxy::capture::{Recorder, Side};
use bulkhead_proxy::captures::Captures;
use bulkhead_proxy::{Authority, Event, EventKind};
use bulkhead_sockops::{RedisPath, Refusal, Refused, Tables};
use tracing::info;

use crate::decide::NodeScope;

/// The nftables table this module owns (in the node's network namespace).
pub const TABLE: &str = "bulkhead_sockpath";

pub use bulkhead_sockops::NOPERM;

pub struct SocketPath {
    bpf: RedisPath,
    numbers: plan::Numbers,
    last: Option<plan::Plan>,
    stop: Arc<AtomicBool>,
    /// Vouching between nodes is on: the SYN check on each interface (by index).
    vouch: Option<BTreeMap<i32, bulkhead_sockops::vouch::Ingress>>,
    /// Pods' links (`--pod-interfaces`): a vouched SYN comes from another node, so
    /// these need no check.
    pod_links: Option<String>,
}

impl SocketPath {
    /// Attach the programs to the root of the cgroup v2 hierarchy (every process of the
    /// machine; connections of other nodes' workloads find no table here).
    /// Pinned under `pin` (see `RedisPath::attach_pinned`): a restarted agent adopts them.
    pub fn start(pin: &Path) -> Result<SocketPath> {
        let root = cgroup2_root()?;
        let bpf = RedisPath::attach_pinned(&root, pin)?;
        info!(cgroup = %root.display(), "Redis socket path attached");
        Ok(SocketPath {
            bpf,
            numbers: plan::Numbers::default(),
            last: None,
            stop: Arc::new(AtomicBool::new(false)),
            vouch: None,
            pod_links: None,
        })
    }

    /// Decide connections to servers on other nodes too, vouched for with `key`, and
    /// let those other nodes vouch for theirs to ours (`bulkhead_sockops::vouch`).
    pub fn vouch_between_nodes(&mut self, key: [u8; 16], pod_links: Option<String>) -> Result<()> {
        self.bpf.set_vouching(key, VOUCH_MARK)?;
        self.pod_links = pod_links;
        self.vouch = Some(BTreeMap::new());
        self.check_new_links()
    }

    /// The SYN check on every interface of the node's namespace but loopback and the
    /// pods' (where `--pod-interfaces` says which those are): the links to other nodes.
    fn check_new_links(&mut self) -> Result<()> {
        let Some(checked) = &mut self.vouch else {
            return Ok(());
        };
        // The kernel's list for this thread's namespace (not /sys/class/net: the agent
        // enters the node's namespace with setns, which leaves /sys showing another).
        let links = nix::net::if_::if_nameindex().context("listing the node's links")?;
        for link in links.iter() {
            let (index, name) = (link.index() as i32, link.name().to_string_lossy());
            let name = name.as_ref();
            let pod = (self.pod_links.as_deref())
                .is_some_and(|g| bulkhead_policy::l7::glob_matches(g, name));
            if name == "lo" || pod || checked.contains_key(&index) {
                continue;
            }
            match self.bpf.vouch_ingress(index) {
                Ok(g) => {
                    checked.insert(index, g);
                }
                // A link that went meanwhile (a pod removed).
                Err(e) => tracing::debug!(link = %name, error = %e, "no SYN check"),
            }
        }
        Ok(())
    }

    /// Make the kernel decide what the engine now says (see the module docs for the
    /// order). Returns the number of (server, client class, port) pairs on the path.
    pub fn sync(
        &mut self,
        engine: &Engine,
        scope: &NodeScope,
        quarantined: &BTreeSet<IpAddr>,
    ) -> Result<usize> {
        self.check_new_links()?;
        let between = self.vouch.is_some();
        let next = plan::plan_with(engine, scope, quarantined, &mut self.numbers, between);
        if self.last.as_ref() == Some(&next) {
            return Ok(next.pairs.len());
        }
        let before = self.last.take().unwrap_or_default();
        // Additions over what the maps hold (an adopted set of maps included).
        let grown = merged(self.bpf.applied(), &next.tables);
        self.bpf.apply(&grown)?;
        write_nft(&next)?;
        self.bpf.apply(&next.tables)?;
        let n = next.pairs.len();
        if n != before.pairs.len() {
            info!(pairs = n, "Redis socket path programmed");
        }
        self.last = Some(next);
        Ok(n)
    }

    /// The pairs and the programs' counters, for `status.json`.
    pub fn status(&self) -> crate::status::SocketPathStatus {
        let c = self.bpf.counters().unwrap_or_default();
        crate::status::SocketPathStatus {
            pairs: self.last.as_ref().map_or(0, |p| p.pairs.len()),
            allowed: c.allowed,
            refused: c.refused,
            replies: c.replies,
            not_resp: c.malformed,
            no_table: c.no_table,
            reported: c.reported,
            lost: c.lost,
            vouched: c.vouched,
            verified: c.verified,
            unverified: c.unverified,
            replayed: c.replayed,
            unread: c.unread,
        }
    }

    /// Report the programs' refusals as events through `authority` (a thread; stops when
    /// this is dropped).
    pub fn report_to(
        &self,
        authority: Arc<dyn Authority>,
        captures: Option<Arc<Captures>>,
    ) -> Result<()> {
        let stop = self.stop.clone();
        let seq = AtomicU64::new(0);
        self.bpf.watch_refusals(
            move |r| {
                let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                authority.record(event(authority.as_ref(), &r, n, captures.as_deref()));
            },
            move || stop.load(Ordering::Relaxed),
        )
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Additions of `next` over `before`, removals left for later.
fn merged(before: &Tables, next: &Tables) -> Tables {
    let mut m = before.clone();
    m.servers.extend(next.servers.iter().copied());
    // Where a server is now is what `next` says.
    m.remote_servers.retain(|s| !next.servers.contains(s));
    m.remote_servers.extend(next.remote_servers.iter().copied());
    m.identities
        .extend(next.identities.iter().map(|(k, v)| (*k, *v)));
    m.tables.extend(next.tables.iter().map(|(k, v)| (*k, *v)));
    m.verdicts
        .extend(next.verdicts.iter().map(|(k, v)| (k.clone(), *v)));
    m.not_resp
        .extend(next.not_resp.iter().map(|(k, v)| (*k, *v)));
    m
}

/// The `bulkhead_sockpath` table's text for `plan` (replaced whole, in one transaction).
/// One `inet` table: a map, a server set and a pair set per address family.
pub fn nft_script(plan: &plan::Plan) -> String {
    // ` elements = { ... };` of one family's entries (nothing when there are none).
    let list = |items: Vec<String>| {
        if items.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", items.join(", "))
        }
    };
    // Address -> number maps, and (server, number, port) pair sets.
    let map = |m: &BTreeMap<IpAddr, u32>, v6: bool| {
        list(
            (m.iter())
                .filter(|(ip, _)| ip.is_ipv6() == v6)
                .map(|(ip, n)| format!("{ip} : {n}"))
                .collect(),
        )
    };
    let pairs = |p: &BTreeSet<(IpAddr, u32, u16)>, v6: bool| {
        list(
            (p.iter())
                .filter(|(s, _, _)| s.is_ipv6() == v6)
                .map(|(s, n, p)| format!("{s} . {n} . {p}"))
                .collect(),
        )
    };
    let family = |v6: bool| {
        let numbers = map(&plan.tables.identities, v6);
        let remote = map(&plan.remote_clients, v6);
        let servers = list(
            (plan.tables.servers.iter())
                .filter(|s| s.is_ipv6() == v6)
                .map(|s| format!("{} . {}", s.ip(), s.port()))
                .collect(),
        );
        let remote_pairs = pairs(&plan.remote_pairs, v6);
        let pairs = pairs(&plan.pairs, v6);
        let (f, ip, t) = if v6 {
            ("6", "ip6", "ipv6_addr")
        } else {
            ("4", "ip", "ipv4_addr")
        };
        // A SYN another node vouched for (the tc check's mark) may use a remote pair;
        // any other SYN, or one whose pair is not (yet) in this node's plan, is judged
        // as a local client's (and then goes to the proxy). The connection's conntrack
        // mark says it took the path: the agent's cutting leaves it to the programs.
        format!(
            "\tmap numbers{f} {{ type {t} : mark;{numbers} }}\n\
             \tmap remote{f} {{ type {t} : mark;{remote} }}\n\
             \tset servers{f} {{ type {t} . inet_service;{servers} }}\n\
             \tset pairs{f} {{ type {t} . mark . inet_service;{pairs} }}\n\
             \tset remote_pairs{f} {{ type {t} . mark . inet_service;{remote_pairs} }}\n\
             \tchain v{f} {{\n\
             \t\t{ip} daddr . tcp dport != @servers{f} return\n\
             \t\tmeta mark {VOUCH_MARK:#x} jump vouched{f}\n\
             \t\tmeta mark set {ip} saddr map @numbers{f}\n\
             \t\t{ip} daddr . meta mark . tcp dport @pairs{f} meta mark set {SOCKPATH_MARK:#x} ct mark set {SOCKPATH_MARK:#x} accept\n\
             \t\tmeta mark set 0\n\
             \t}}\n\
             \tchain vouched{f} {{\n\
             \t\tmeta mark set {ip} saddr map @remote{f}\n\
             \t\t{ip} daddr . meta mark . tcp dport @remote_pairs{f} meta mark set {SOCKPATH_MARK:#x} ct mark set {SOCKPATH_MARK:#x} accept\n\
             \t\tmeta mark set 0\n\
             \t}}\n"
        )
    };
    // (Also gone: the IPv4-only `ip` table of earlier versions.)
    format!(
        "table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         {}{}\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority -160; policy accept;\n\
         \t\tmeta l4proto != tcp accept\n\
         \t\ttcp flags & (syn | ack) != syn accept\n\
         \t\tmeta nfproto ipv4 jump v4\n\
         \t\tmeta nfproto ipv6 jump v6\n\
         \t}}\n\
         }}\n",
        family(false),
        family(true),
    )
}

fn write_nft(plan: &plan::Plan) -> Result<()> {
    nft(&nft_script(plan)).context("programming the socket path's nftables table")
}

/// Remove the table (the agent's `--uninstall`, and tests).
pub fn remove_nft() -> Result<()> {
    // (`ip`: the IPv4-only table of earlier versions.)
    nft(&format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable ip {TABLE}\ndelete table ip {TABLE}\n"
    ))
}

fn nft(script: &str) -> Result<()> {
    Ok(bulkhead_dataplane::kernel::Nft::local().apply_script(script)?)
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a unified system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| PathBuf::from(f[1]))
        .context("no cgroup2 file system is mounted (the socket path needs one)")
}

/// The event for one refusal: the engine's decision (deciding rule included) for what
/// the program refused, what the client got, and a capture of it.
fn event(authority: &dyn Authority, r: &Refusal, n: u64, captures: Option<&Captures>) -> Event {
    let (client, server) = (r.client, r.server);
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    // Connection numbers of this path, apart from the proxy's.
    let conn = (1 << 40) + n;
    let capture = |what: &str, sent: &[u8], answer: Option<&[u8]>| {
        let mut rec = Recorder::new(64 * 1024);
        rec.record(Side::Client, sent);
        let closer = match answer {
            Some(a) => {
                rec.record(Side::Server, a);
                None
            }
            None => Some(Side::Client),
        };
        captures?.write("socket", n, what, |path| {
            rec.write_pcap(path, client, server, closer)
        })
    };
    let kind = match r.kind {
        Refused::Command => {
            let req = redis_command(&r.command);
            let mut decision = authority.decide(client, server, Some(&req));
            if decision.allowed {
                // The engine moved on since the program decided (a change in flight).
                decision.allowed = false;
                decision.decided_by =
                    format!("socket path table {} (policy since changed)", r.table);
            }
            // The program knows the name only: the capture shows the command without
            // its arguments, and the answer the client read.
            let sent = format!("*1\r\n${}\r\n{}\r\n", r.command.len(), r.command);
            EventKind::Request {
                protocol: "redis".into(),
                request: format!("redis {}", r.command),
                decision,
                refusal: Some(NOPERM.trim_end().into()),
                pcap: capture("refused", sent.as_bytes(), Some(NOPERM.as_bytes())),
            }
        }
        Refused::Reported => {
            // What the proxy records for a request a Monitor group lets through: the
            // engine's decision (a violation, with the rule or mode that says so).
            let req = redis_command(&r.command);
            let mut decision = authority.decide(client, server, Some(&req));
            if !(decision.allowed && decision.violation) {
                decision.allowed = true;
                decision.violation = true;
                decision.decided_by = format!(
                    "socket path table {} (Monitor; policy since changed)",
                    r.table
                );
            }
            EventKind::Request {
                protocol: "redis".into(),
                request: format!("redis {}", r.command),
                decision,
                refusal: None,
                pcap: None,
            }
        }
        Refused::Taken => EventKind::Protocol {
            // What the proxy records for a connection it detected Redis on: the flow
            // record with its protocol (learning proposes `app: redis` from it).
            protocol: "redis".into(),
            detail: serde_json::Value::Null,
            decision: authority.decide(
                client,
                server,
                Some(&L7Request {
                    app: AppProtocol::Redis,
                    detail: L7Detail::None,
                }),
            ),
            pcap: None,
        },
        Refused::ReportedStream => {
            // A Monitor group lets a stream that is not Redis through: what the proxy
            // records for a protocol no rule names (allowed, a violation).
            let mut decision = authority.decide(client, server, None);
            decision.allowed = true;
            decision.violation = true;
            EventKind::Protocol {
                protocol: "unknown".into(),
                detail: serde_json::Value::Null,
                decision,
                pcap: None,
            }
        }
        Refused::NotResp | Refused::NoTable | Refused::Unread => {
            let mut decision = authority.decide(client, server, None);
            decision.allowed = false;
            if r.kind == Refused::NoTable {
                decision.decided_by =
                    "socket path: no table for this pair any more (policy, quarantine or workload changed)"
                        .into();
            }
            if r.kind == Refused::Unread {
                decision.decided_by = "socket path: bytes written before the connection was established (or TCP Fast Open data) were never read: held back, with all that follows".into();
            }
            EventKind::Protocol {
                // Unread bytes are no protocol the program knows either.
                protocol: if r.kind == Refused::NoTable {
                    "redis"
                } else {
                    "unknown"
                }
                .into(),
                detail: serde_json::Value::Null,
                decision,
                pcap: None,
            }
        }
    };
    let mut kind = kind;
    if let EventKind::Request { decision, .. } | EventKind::Protocol { decision, .. } = &mut kind {
        // Which enforcement point decided: `bulkhead events` and flows show it.
        match &mut decision.detail {
            serde_json::Value::Object(m) => {
                m.insert("path".into(), "socket".into());
            }
            d => *d = serde_json::json!({"path": "socket"}),
        }
    }
    Event {
        time,
        conn,
        client,
        server,
        forwarded_for: None,
        kind,
    }
}

/// The request the program decided: a Redis command, by name.
fn redis_command(name: &str) -> L7Request {
    L7Request {
        app: AppProtocol::Redis,
        detail: L7Detail::Redis {
            command: name.to_string(),
        },
    }
}

/// How long the refusal thread waits for reports before checking whether to stop.
pub const POLL: Duration = Duration::from_millis(200);
