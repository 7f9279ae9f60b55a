//! Which Redis connections of this node the socket path decides, and with which tables
//! (pure: the engine's verdicts in, the kernel's maps out).
//!
//! A connection takes the path only when the engine's answer for it is a plain table
//! of commands: both ends are workloads of this node, the connection needs layer 7, every
//! rule that waits for its requests is a Redis rule, a stream that is not Redis is
//! refused, no command's verdict is a Log rule's match (that needs the proxy's record of
//! every request), and no sensor looks at either end. A command a Monitor group lets
//! through as a violation is a table entry of its own ([`Verdict::Report`]): the program
//! passes it and reports it, and its event is the proxy's. (A Discover side is fine too:
//! the programs report each connection they take, and its record names Redis, as the
//! proxy's would.)
//! Everything else keeps the proxy. The verdicts are the engine's, asked once per
//! command a rule names plus once for "any other command": the kernel only looks up.
//!
//! Numbers: addresses every rule treats alike share a client number (the identity and
//! the CIDR peers containing the address); each server address has its own (named ports
//! resolve on it). Tables are numbered by content. Both stay put across plans while they
//! are in use, because live connections look them up on every write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use bulkhead_model::{L4, Protocol};
use bulkhead_policy::Engine;
use bulkhead_policy::compile::{Direction, Target};
use bulkhead_policy::engine::WorkloadId;
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Match, L7Request};
use bulkhead_policy::spec::PortSel;
pub use bulkhead_sockops::Verdict;
use bulkhead_sockops::{NAME, Tables};

use crate::decide::{NodeScope, NodeVerdict};

mod remote;

/// A command name no rule can name (rules list Redis command names or `*`): asking the
/// engine about it gives the verdict of every command the table does not list.
const OTHER: &str = "\u{1}other";

/// The numbers of the last plans (see the module docs).
#[derive(Debug, Default)]
pub struct Numbers {
    classes: HashMap<Class, u32>,
    tables: HashMap<Table, u32>,
    next: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Class {
    Server(IpAddr),
    /// Identity, and the indices of the CIDR peers that contain the address.
    Client(u32, Vec<u32>),
}

/// A table's content: the commands whose verdict differs from "any other", and that.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    pub named: BTreeMap<String, Verdict>,
    pub other: Verdict,
    /// A stream that is not RESP: refused, or (a Monitor group's) passed and reported.
    pub not_resp: Verdict,
}

/// What decides a table: the client's class, the server's, its declared ports, the port
/// (indices).
type TableKey = (u32, u32, u32, u16);

/// What the kernel gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub tables: Tables,
    /// (server address, client number, server port): the new connections the nftables
    /// rules leave to the path (the same pairs `tables` holds, by address).
    pub pairs: BTreeSet<(IpAddr, u32, u16)>,
    /// Addresses of other nodes' clients and their numbers, for nftables only.
    pub remote_clients: BTreeMap<IpAddr, u32>,
    /// (local server address, remote client number, port): the connections a SYN the
    /// client's node vouched for may take past the proxy ([`remote`]).
    pub remote_pairs: BTreeSet<(IpAddr, u32, u16)>,
}

impl Numbers {
    fn number<K: Clone + Eq + std::hash::Hash>(
        map: &mut HashMap<K, u32>,
        next: &mut u32,
        used: &mut HashSet<u32>,
        k: &K,
    ) -> u32 {
        let n = *map.entry(k.clone()).or_insert_with(|| {
            *next += 1;
            *next
        });
        used.insert(n);
        n
    }
}

/// One local address and what the engine knows of it.
#[derive(Clone, Copy)]
struct Local {
    ip: IpAddr,
    wid: WorkloadId,
}

/// Plan the socket path of this node. `quarantined` addresses take no part (their
/// live connections' writes fail from the next one).
pub fn plan(
    engine: &Engine,
    scope: &NodeScope,
    quarantined: &BTreeSet<IpAddr>,
    numbers: &mut Numbers,
) -> Plan {
    plan_with(engine, scope, quarantined, numbers, false)
}

/// [`plan`], and with `between_nodes` the connections between this node and others
/// too ([`remote`]: the nodes vouch for them).
pub fn plan_with(
    engine: &Engine,
    scope: &NodeScope,
    quarantined: &BTreeSet<IpAddr>,
    numbers: &mut Numbers,
    between_nodes: bool,
) -> Plan {
    let compiled = engine.compiled();
    let mut cidrs: Vec<&bulkhead_model::CidrBlock> = Vec::new();
    let mut redis_ports: BTreeSet<u16> = BTreeSet::new();
    for r in &compiled.rules {
        for t in &r.peers {
            if let Target::Cidr(c) = t
                && !cidrs.contains(&c)
            {
                cidrs.push(c);
            }
        }
        if is_redis(r.app, &r.l7) {
            for p in &r.ports {
                if let PortSel::Range(range) = &p.port
                    && range.hi.saturating_sub(range.lo) < 64
                {
                    redis_ports.extend(range.lo..=range.hi);
                }
            }
        }
    }
    if !compiled.rules.iter().any(|r| is_redis(r.app, &r.l7)) {
        numbers.classes.clear();
        numbers.tables.clear();
        return Plan::default();
    }
    let locals = addresses(engine, scope, quarantined, true);
    // Each local address's client class, computed once (an index into `class_list`).
    let mut class_list: Vec<Class> = Vec::new();
    let mut class_index: HashMap<IpAddr, u32> = HashMap::new();
    {
        let mut seen: HashMap<Class, u32> = HashMap::new();
        for l in &locals {
            let identity = engine.identity_of(l.wid).unwrap_or(u32::MAX);
            let inside = (0..cidrs.len() as u32)
                .filter(|&i| cidrs[i as usize].contains(&l.ip))
                .collect();
            let class = Class::Client(identity, inside);
            let n = *seen.entry(class.clone()).or_insert_with(|| {
                class_list.push(class);
                class_list.len() as u32 - 1
            });
            class_index.insert(l.ip, n);
        }
    }
    let client_class = |l: &Local| class_list[class_index[&l.ip] as usize].clone();
    // Declared ports, by workload (an index: workloads that declare the same share it).
    let mut port_lists: HashMap<String, u32> = HashMap::new();
    let mut ports_index: HashMap<WorkloadId, u32> = HashMap::new();
    for l in &locals {
        if let Some(w) = engine.workload(l.wid) {
            let k = format!("{:?}", w.ports);
            let n = port_lists.len() as u32;
            ports_index.insert(l.wid, *port_lists.entry(k).or_insert(n));
        }
    }
    let group = |class: &dyn Fn(&Local) -> Class| {
        let mut groups: HashMap<Class, Vec<Local>> = HashMap::new();
        for l in &locals {
            groups.entry(class(l)).or_default().push(*l);
        }
        let mut groups: Vec<(Class, Vec<Local>)> = groups.into_iter().collect();
        groups.sort_by_key(|(_, m)| m[0].ip);
        groups
    };
    // Tables by what decides them: the client's class, the server's (its identity, CIDR
    // peers and declared ports: named ports resolve on it) and the port. Servers of one
    // Deployment ask the engine once.
    let memo: std::cell::RefCell<HashMap<TableKey, Option<Table>>> = Default::default();
    let table = |c: &Local, s: &Local, port: u16| -> Option<Table> {
        let key = (
            class_index[&c.ip],
            class_index[&s.ip],
            ports_index.get(&s.wid).copied().unwrap_or(u32::MAX),
            port,
        );
        if let Some(t) = memo.borrow().get(&key) {
            return t.clone();
        }
        let t = table(engine, scope, *c, *s, port);
        memo.borrow_mut().insert(key, t.clone());
        t
    };
    // First the (server, port) pairs some class of clients may use the path for...
    let mut targets: Vec<(Local, u16)> = Vec::new();
    let clients = group(&client_class);
    for s in &locals {
        let Some(w) = engine.workload(s.wid) else {
            continue;
        };
        let mut ports = redis_ports.clone();
        ports.extend(
            (w.ports.iter())
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port),
        );
        for port in ports {
            let usable = clients.iter().any(|(_, members)| {
                members
                    .iter()
                    .find(|c| c.wid != s.wid)
                    .is_some_and(|c| table(c, s, port).is_some())
            });
            if usable {
                targets.push((*s, port));
            }
        }
    }
    // ...then the numbers (servers alone) and each class's table for each of them.
    let servers: HashSet<IpAddr> = targets.iter().map(|t| t.0.ip).collect();
    let class_of = |l: &Local| {
        if servers.contains(&l.ip) {
            Class::Server(l.ip)
        } else {
            client_class(l)
        }
    };
    let classes = group(&class_of);
    let mut used = HashSet::new();
    let mut plan = Plan::default();
    // Numbers by group and by table key, so each is interned once.
    let mut class_numbers: Vec<Option<u32>> = vec![None; classes.len()];
    let mut table_numbers: HashMap<TableKey, u32> = HashMap::new();
    for (s, port) in &targets {
        let sn = Numbers::number(
            &mut numbers.classes,
            &mut numbers.next,
            &mut used,
            &class_of(s),
        );
        plan.tables.identities.insert(s.ip, sn);
        for (gi, (class, members)) in classes.iter().enumerate() {
            let Some(c) = members.iter().find(|c| c.wid != s.wid) else {
                continue;
            };
            let Some(t) = table(c, s, *port) else {
                continue;
            };
            let cn = match class_numbers[gi] {
                Some(n) => n,
                None => {
                    let n =
                        Numbers::number(&mut numbers.classes, &mut numbers.next, &mut used, class);
                    class_numbers[gi] = Some(n);
                    // Every member (a server's own address has its own number, so this
                    // is never the server itself: `take` skips a connection to itself).
                    for m in members {
                        plan.tables.identities.insert(m.ip, n);
                    }
                    n
                }
            };
            let key = (
                class_index[&c.ip],
                class_index[&s.ip],
                ports_index.get(&s.wid).copied().unwrap_or(u32::MAX),
                *port,
            );
            let tn = match table_numbers.get(&key) {
                Some(&n) => n,
                None => {
                    let n = Numbers::number(&mut numbers.tables, &mut numbers.next, &mut used, &t);
                    table_numbers.insert(key, n);
                    plan.tables.verdicts.insert((n, None), t.other);
                    plan.tables.not_resp.insert(n, t.not_resp);
                    for (name, &verdict) in &t.named {
                        plan.tables
                            .verdicts
                            .insert((n, Some(name.clone())), verdict);
                    }
                    n
                }
            };
            plan.tables.tables.insert((cn, sn, *port), tn);
            plan.tables.servers.insert(SocketAddr::new(s.ip, *port));
            plan.pairs.insert((s.ip, cn, *port));
        }
    }
    // Between nodes (only where nodes are told apart).
    if between_nodes && scope.node.is_some() {
        let x = remote::LocalPart {
            engine,
            quarantined,
            redis_ports: &redis_ports,
            cidrs: &cidrs,
            scope,
            classes: &classes,
            locals: &locals,
        };
        remote::plan_remote(&x, numbers, &mut used, &mut plan);
    }
    numbers.classes.retain(|_, n| used.contains(n));
    numbers.tables.retain(|_, n| used.contains(n));
    plan
}

/// The addresses of this node's workloads (`local`) or of the others', quarantined ones
/// left out.
fn addresses(
    engine: &Engine,
    scope: &NodeScope,
    quarantined: &BTreeSet<IpAddr>,
    local: bool,
) -> Vec<Local> {
    engine
        .workloads()
        .into_iter()
        .filter(|(id, _)| {
            let e = bulkhead_policy::Endpoint::Workload {
                id: *id,
                addr: None,
            };
            scope.is_local(engine, &e) == local
        })
        .flat_map(|(wid, w)| {
            (w.ips.iter())
                .filter(|ip| !quarantined.contains(ip))
                .map(move |ip| Local { ip: *ip, wid })
        })
        .collect()
}

fn is_redis(app: Option<AppProtocol>, l7: &[L7Match]) -> bool {
    app == Some(AppProtocol::Redis)
        || (app.is_none() && l7.iter().any(|m| matches!(m, L7Match::Redis { .. })))
}

/// The table of `c -> s:port` if the socket path can decide it (see the module docs).
fn table(engine: &Engine, scope: &NodeScope, c: Local, s: Local, port: u16) -> Option<Table> {
    let l4 = L4::tcp(port);
    let ask = |l7: Option<&L7Request>| scope.decide_l7(engine, c.ip, s.ip, l4, l7);
    table_with(engine, c.wid, s.wid, &ask)
}

/// What `explain` says of a connection between two workloads on one node: the table
/// the socket path would decide its commands with, if it can.
pub fn table_between(engine: &Engine, c: WorkloadId, s: WorkloadId, port: u16) -> Option<Table> {
    if c == s {
        return None;
    }
    table_whole(engine, (c, None), (s, None), port)
}

/// The table of a connection between two workloads (at these addresses, when given)
/// from the engine's whole verdict: both sides, wherever they run.
fn table_whole(
    engine: &Engine,
    (c, caddr): (WorkloadId, Option<IpAddr>),
    (s, saddr): (WorkloadId, Option<IpAddr>),
    port: u16,
) -> Option<Table> {
    let ask = |l7: Option<&L7Request>| {
        let verdict = engine.verdict(&bulkhead_policy::Connection {
            src: &bulkhead_policy::Endpoint::Workload { id: c, addr: caddr },
            dst: &bulkhead_policy::Endpoint::Workload { id: s, addr: saddr },
            l4: L4::tcp(port),
            l7,
        });
        NodeVerdict {
            egress_here: true,
            ingress_here: true,
            allowed: verdict.allowed,
            unknown_src: false,
            unknown_dst: false,
            verdict,
        }
    };
    table_with(engine, c, s, &ask)
}

fn table_with(
    engine: &Engine,
    cw: WorkloadId,
    sw: WorkloadId,
    ask: &dyn Fn(Option<&L7Request>) -> NodeVerdict,
) -> Option<Table> {
    // Sensors read what the client sends out, or what reaches the server: the proxy.
    if !engine.sensors_of(cw, Direction::Egress).is_empty()
        || !engine.sensors_of(sw, Direction::Ingress).is_empty()
    {
        return None;
    }
    let first = ask(None);
    if !(first.allowed && first.egress_here && first.ingress_here && first.verdict.needs_l7()) {
        return None;
    }
    let (e, i) = (&first.verdict.egress, &first.verdict.ingress);
    // Anything but Redis gets what no rule that names a protocol matches: refused, or
    // let through by a Monitor group as a violation. (Let through plainly, or logged,
    // it keeps the proxy.)
    let not_resp = if !(e.allowed_without_gated && i.allowed_without_gated) {
        Verdict::Refuse
    } else if (e.is_violation() || i.is_violation()) && e.logged.is_empty() && i.logged.is_empty() {
        Verdict::Report
    } else {
        return None;
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for &rid in e.gated.iter().chain(&i.gated) {
        let r = &engine.compiled().rules[rid as usize];
        if !is_redis(r.app, &r.l7) || r.l7.iter().any(|m| !matches!(m, L7Match::Redis { .. })) {
            return None;
        }
        for m in &r.l7 {
            if let L7Match::Redis { commands } = m {
                names.extend(
                    commands
                        .iter()
                        .filter(|c| *c != "*")
                        .map(|c| c.to_ascii_uppercase()),
                );
            }
        }
    }
    if names.iter().any(|n| n.len() > NAME) {
        return None;
    }
    // What the program does with a command: pass it, refuse it, or pass and report it
    // (a Monitor violation); `None` when a Log rule wants the request's own record.
    let kernel = |v: &NodeVerdict| {
        let sides = [&v.verdict.egress, &v.verdict.ingress];
        if sides.iter().any(|s| !s.logged.is_empty()) {
            return None;
        }
        let violation = v.verdict.is_violation() || sides.iter().any(|s| s.is_violation());
        Some(match (v.allowed, violation) {
            (false, _) => Verdict::Refuse,
            (true, false) => Verdict::Allow,
            (true, true) => Verdict::Report,
        })
    };
    let verdict = |name: &str| {
        let req = L7Request {
            app: AppProtocol::Redis,
            detail: L7Detail::Redis {
                command: name.to_string(),
            },
        };
        kernel(&ask(Some(&req)))
    };
    let other = verdict(OTHER)?;
    let mut named = BTreeMap::new();
    for n in names {
        let v = verdict(&n)?;
        if v != other {
            named.insert(n, v);
        }
    }
    Some(Table {
        named,
        other,
        not_resp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::path::PathBuf;

    pub(super) fn examples() -> Engine {
        examples_with(|text| text)
    }

    /// The example with `groups.yaml` edited.
    fn examples_with(edit: impl Fn(String) -> String) -> Engine {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
        let tmp = std::env::temp_dir().join(format!(
            "bulkhead-plan-groups-{}-{:?}.yaml",
            std::process::id(),
            std::thread::current().id()
        ));
        let groups = std::fs::read_to_string(dir.join("groups.yaml")).unwrap();
        std::fs::write(&tmp, edit(groups)).unwrap();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.is_dir()
                    || (p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("groups.yaml"))
            })
            .collect();
        paths.push(tmp.clone());
        let b = bulkhead_manifest::load(&paths, true).expect("the example loads");
        std::fs::remove_file(&tmp).unwrap();
        let mut engine = Engine::new(&b).expect("the example compiles");
        // Addresses, as a lab gives them.
        let all: Vec<_> = engine
            .workloads()
            .into_iter()
            .map(|(_, w)| w.clone())
            .collect();
        for (i, mut w) in all.into_iter().enumerate() {
            // Dual stack, as a lab gives them.
            w.ips = vec![
                IpAddr::V4(Ipv4Addr::new(10, 99, 0, i as u8 + 1)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, i as u16 + 1)),
            ];
            engine.upsert_workload(w);
        }
        engine
    }

    /// The workload's IPv4 address.
    pub(super) fn ip(engine: &Engine, name: &str) -> IpAddr {
        ip_of(engine, name, false)
    }

    fn ip_of(engine: &Engine, name: &str, v6: bool) -> IpAddr {
        let (_, w) = (engine.workloads().into_iter())
            .find(|(_, w)| w.key.to_string() == name)
            .unwrap_or_else(|| panic!("{name}"));
        *w.ips.iter().find(|i| i.is_ipv6() == v6).unwrap()
    }

    /// With the Redis group in Monitor mode, what Protect refuses runs and is reported;
    /// a Log rule's traffic keeps the proxy.
    #[test]
    fn monitor_violations_pass_and_report() {
        let redis_group = "selector: app == \"redis\"\n  mode: Protect";
        let engine = examples_with(|g| {
            assert!(g.contains(redis_group));
            g.replace(redis_group, "selector: app == \"redis\"\n  mode: Monitor")
        });
        let mut numbers = Numbers::default();
        let plan = plan(
            &engine,
            &NodeScope::default(),
            &BTreeSet::new(),
            &mut numbers,
        );
        let redis = ip(&engine, "platform/redis-0");
        let client = ip(&engine, "platform/node-api-0");
        let t = plan.tables.tables[&(
            plan.tables.identities[&client],
            plan.tables.identities[&redis],
            6379,
        )];
        assert_eq!(
            plan.tables.verdicts.get(&(t, Some("GET".into()))),
            Some(&Verdict::Allow)
        );
        assert_eq!(plan.tables.verdicts.get(&(t, None)), Some(&Verdict::Report));
        assert_eq!(plan.tables.not_resp.get(&t), Some(&Verdict::Report));
    }

    #[test]
    fn the_example_puts_node_pods_redis_on_the_path() {
        let engine = examples();
        let scope = NodeScope::default();
        let mut numbers = Numbers::default();
        let plan = plan(&engine, &scope, &BTreeSet::new(), &mut numbers);
        let redis = ip(&engine, "platform/redis-0");
        let client = ip(&engine, "platform/node-api-0");
        let cn = plan.tables.identities[&client];
        let sn = plan.tables.identities[&redis];
        let t = plan.tables.tables[&(cn, sn, 6379)];
        assert!(plan.pairs.contains(&(redis, cn, 6379)));
        // IPv6 too: the server's IPv6 address has its own number (and the same table).
        let (redis6, client6) = (
            ip_of(&engine, "platform/redis-0", true),
            ip_of(&engine, "platform/node-api-0", true),
        );
        let (cn6, sn6) = (
            plan.tables.identities[&client6],
            plan.tables.identities[&redis6],
        );
        assert!(plan.pairs.contains(&(redis6, cn6, 6379)));
        assert_ne!(sn6, sn);
        assert_eq!(
            plan.tables.tables[&(cn6, sn6, 6379)],
            plan.tables.tables[&(cn, sn, 6379)]
        );
        // The engine's answers: GET allowed, FLUSHALL (any other) refused.
        assert_eq!(
            plan.tables.verdicts.get(&(t, Some("GET".into()))),
            Some(&Verdict::Allow)
        );
        assert_eq!(plan.tables.verdicts.get(&(t, None)), Some(&Verdict::Refuse));
        assert_eq!(plan.tables.not_resp.get(&t), Some(&Verdict::Refuse));
        assert_eq!(
            plan.tables.verdicts.get(&(t, Some("FLUSHALL".into()))),
            None
        );
        // Both replicas of node-api share a number; no rule lets order-web in.
        assert_eq!(
            plan.tables.identities[&ip(&engine, "platform/node-api-1")],
            cn
        );
        let web = ip(&engine, "eu/order-web-0");
        assert!(
            !plan
                .pairs
                .iter()
                .any(|p| Some(&p.1) == plan.tables.identities.get(&web))
        );
        // Stable numbers: the same plan again.
        assert_eq!(
            super::plan(&engine, &scope, &BTreeSet::new(), &mut numbers),
            plan
        );
        // A quarantined client takes no part.
        let q: BTreeSet<IpAddr> = [client].into();
        let p2 = super::plan(&engine, &scope, &q, &mut numbers);
        assert!(!p2.tables.identities.contains_key(&client));
    }

    /// Sensors that read what the client sends take its Redis connections off the
    /// socket path (to the proxy, which runs them); sensors on the client that read only
    /// what reaches it do not.
    #[test]
    fn a_clients_egress_sensors_keep_its_connections_off_the_path() {
        let with = |inspect: &str| {
            let engine = examples_with(|g| {
                format!(
                    "{g}---\napiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {{name: node-out}}\n\
                     spec: {{selector: app == \"node\", sensors: [card-data], inspect: [{inspect}]}}\n"
                )
            });
            let plan = plan(
                &engine,
                &NodeScope::default(),
                &BTreeSet::new(),
                &mut Numbers::default(),
            );
            let redis = ip(&engine, "platform/redis-0");
            let client = ip(&engine, "platform/node-api-0");
            let cn = plan.tables.identities.get(&client).copied();
            cn.is_some_and(|cn| plan.pairs.contains(&(redis, cn, 6379)))
        };
        assert!(with("Ingress"));
        assert!(!with("Egress"));
    }
}

#[cfg(test)]
mod scale {
    use super::*;
    use bulkhead_manifest::{Source, parse_sources};
    use std::net::Ipv4Addr;

    /// `apps` client Deployments of `replicas` each, `servers` Redis servers, one rule.
    pub fn cluster(apps: usize, replicas: usize, servers: usize) -> Engine {
        let mut y = String::from(
            "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: redis}\nspec: {selector: app == \"redis\", mode: Protect}\n---\napiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {name: r}\nspec:\n  appliesTo: [{group: redis}]\n  ingress:\n    - action: Allow\n      from: [{selector: tier == \"web\"}]\n      ports: [TCP/redis]\n      app: redis\n      redis: [GET, SET, DEL]\n",
        );
        let mut n = 0u32;
        let mut pod = |y: &mut String, name: &str, labels: &str, port: bool| {
            n += 1;
            let ip = Ipv4Addr::from(0x0a00_0000 + n);
            let ports = if port {
                "\n    ports: [{name: redis, containerPort: 6379, protocol: TCP}]"
            } else {
                ""
            };
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}\nspec:\n  containers:\n  - name: c{ports}\nstatus: {{podIPs: [{{ip: {ip}}}]}}\n"
            ));
        };
        for a in 0..apps {
            for r in 0..replicas {
                pod(
                    &mut y,
                    &format!("app{a}-{r}"),
                    &format!("app: app{a}, tier: web"),
                    false,
                );
            }
        }
        for s in 0..servers {
            pod(&mut y, &format!("redis-{s}"), "app: redis", true);
        }
        let b = parse_sources(&[Source {
            name: "c.yaml".into(),
            text: y,
        }])
        .unwrap();
        Engine::new(&b).unwrap()
    }

    #[test]
    fn tables_grow_with_classes_not_pairs() {
        let engine = cluster(20, 10, 5);
        let plan = plan(
            &engine,
            &NodeScope::default(),
            &BTreeSet::new(),
            &mut Numbers::default(),
        );
        // 20 client classes x 5 servers; one table content shared by all.
        assert_eq!(plan.tables.tables.len(), 20 * 5);
        assert_eq!(plan.tables.identities.len(), 20 * 10 + 5);
        let contents: BTreeSet<u32> = plan.tables.tables.values().copied().collect();
        assert_eq!(contents.len(), 1);
        assert_eq!(plan.tables.verdicts.len(), 4, "GET SET DEL and any other");
    }
}

/// What planning costs at scale (a measurement, not a check: run it with
/// `cargo test --release -p bulkhead-agent --lib measure_plan -- --ignored --nocapture`).
#[cfg(test)]
#[test]
#[ignore]
fn measure_plan_at_scale() {
    for (apps, replicas, servers) in [(20, 10, 5), (200, 50, 50), (500, 20, 200)] {
        let engine = scale::cluster(apps, replicas, servers);
        let mut numbers = Numbers::default();
        let mut timed = || {
            let t = std::time::Instant::now();
            let p = plan(
                &engine,
                &NodeScope::default(),
                &BTreeSet::new(),
                &mut numbers,
            );
            (p, t.elapsed())
        };
        let (p, first) = timed();
        let (again, second) = timed();
        assert_eq!(p, again);
        println!(
            "{} client workloads in {apps} classes, {servers} servers: {} tables, {} verdicts, plan {:.1} ms (again {:.1} ms)",
            apps * replicas,
            p.tables.tables.len(),
            p.tables.verdicts.len(),
            first.as_secs_f64() * 1e3,
            second.as_secs_f64() * 1e3
        );
    }
}
