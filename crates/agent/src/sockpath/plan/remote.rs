//! The socket path between nodes: local clients of servers on other nodes, and clients
//! on other nodes of local servers.
//!
//! A connection between nodes is decided by the client's node, at the client's socket,
//! with a table of the engine's whole verdict (both sides: the server's node takes the
//! client node's word for it), and vouched for in its SYN (`bulkhead_sockops::vouch`).
//! The server's node lets a vouched SYN past its proxy only for a pair its own plan says
//! the client's node decides: the same engine asked the same question. A node that does
//! not vouch, a policy change one node has and the other not yet, a forged or replayed
//! SYN: the proxy, as before.

use super::*;

/// What the local part of the plan worked out, for the remote part.
pub(super) struct LocalPart<'a> {
    pub engine: &'a Engine,
    pub quarantined: &'a BTreeSet<IpAddr>,
    pub redis_ports: &'a BTreeSet<u16>,
    pub cidrs: &'a [&'a bulkhead_model::CidrBlock],
    pub scope: &'a NodeScope,
    /// This node's addresses by their class, as the local tables number them.
    pub classes: &'a [(Class, Vec<super::Local>)],
    pub locals: &'a [super::Local],
}

/// The class of an address of another node (as a client).
fn class(engine: &Engine, cidrs: &[&bulkhead_model::CidrBlock], l: &super::Local) -> Class {
    let identity = engine.identity_of(l.wid).unwrap_or(u32::MAX);
    let inside = (0..cidrs.len() as u32)
        .filter(|&i| cidrs[i as usize].contains(&l.ip))
        .collect();
    Class::Client(identity, inside)
}

/// The ports a server may be reached on by Redis rules: those the rules name, and the
/// ones it declares.
fn ports(engine: &Engine, redis_ports: &BTreeSet<u16>, s: &super::Local) -> BTreeSet<u16> {
    let mut ports = redis_ports.clone();
    if let Some(w) = engine.workload(s.wid) {
        ports.extend(
            (w.ports.iter())
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port),
        );
    }
    ports
}

/// The table of `c -> s:port` from the engine's whole verdict (both sides).
fn table_whole(engine: &Engine, c: &super::Local, s: &super::Local, port: u16) -> Option<Table> {
    super::table_whole(engine, (c.wid, Some(c.ip)), (s.wid, Some(s.ip)), port)
}

/// Add the connections between this node and others to `plan`.
pub(super) fn plan_remote(
    x: &LocalPart<'_>,
    numbers: &mut Numbers,
    used: &mut HashSet<u32>,
    plan: &mut Plan,
) {
    let engine = x.engine;
    let remotes = super::addresses(engine, x.scope, x.quarantined, false);
    // Remote clients by class (a group asks once for all its members).
    let mut groups: BTreeMap<Class, Vec<super::Local>> = BTreeMap::new();
    for r in &remotes {
        groups
            .entry(class(engine, x.cidrs, r))
            .or_default()
            .push(*r);
    }
    let groups: Vec<(Class, Vec<super::Local>)> = groups.into_iter().collect();
    // Tables by (client group: a local class `i` or remote group `classes.len() + j`,
    // server key, port); servers alike (identity, CIDR peers, declared ports) share a
    // key, so the replicas of one Deployment ask once.
    let mut server_keys: HashMap<(Class, BTreeSet<u16>), usize> = HashMap::new();
    let mut server_key = |s: &super::Local| {
        let ports = ports(engine, x.redis_ports, s);
        let n = server_keys.len();
        let k = *(server_keys.entry((class(engine, x.cidrs, s), ports.clone()))).or_insert(n);
        (k, ports)
    };
    let mut memo: HashMap<(usize, usize, u16), Option<Table>> = HashMap::new();
    let mut table = |g: usize, c: &super::Local, (s, sk): (&super::Local, usize), port: u16| {
        memo.entry((g, sk, port))
            .or_insert_with(|| table_whole(engine, c, s, port))
            .clone()
    };
    // Local clients of remote servers: tables, as for local servers.
    for s in &remotes {
        let (sk, ports) = server_key(s);
        for port in ports {
            for (g, (cc, members)) in x.classes.iter().enumerate() {
                let Some(t) = table(g, &members[0], (s, sk), port) else {
                    continue;
                };
                let sn = Numbers::number(
                    &mut numbers.classes,
                    &mut numbers.next,
                    used,
                    &Class::Server(s.ip),
                );
                plan.tables.identities.insert(s.ip, sn);
                let cn = Numbers::number(&mut numbers.classes, &mut numbers.next, used, cc);
                for m in members {
                    plan.tables.identities.insert(m.ip, cn);
                }
                let tn = Numbers::number(&mut numbers.tables, &mut numbers.next, used, &t);
                plan.tables.verdicts.insert((tn, None), t.other);
                plan.tables.not_resp.insert(tn, t.not_resp);
                for (name, &v) in &t.named {
                    plan.tables.verdicts.insert((tn, Some(name.clone())), v);
                }
                let at = SocketAddr::new(s.ip, port);
                plan.tables.tables.insert((cn, sn, port), tn);
                plan.tables.servers.insert(at);
                plan.tables.remote_servers.insert(at);
                plan.pairs.insert((s.ip, cn, port));
            }
        }
    }
    // Remote clients of local servers: the pairs a vouched SYN may use. Their numbers
    // go to nftables only (the programs here never take those clients' sockets).
    for s in x.locals {
        let (sk, ports) = server_key(s);
        for port in ports {
            for (j, (cc, members)) in groups.iter().enumerate() {
                if table(x.classes.len() + j, &members[0], (s, sk), port).is_none() {
                    continue;
                }
                let n = Numbers::number(&mut numbers.classes, &mut numbers.next, used, cc);
                for m in members {
                    plan.remote_clients.insert(m.ip, n);
                }
                plan.remote_pairs.insert((s.ip, n, port));
                plan.tables.servers.insert(SocketAddr::new(s.ip, port));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{examples, ip};
    use super::super::{Numbers, plan, plan_with};
    use crate::decide::NodeScope;
    use std::collections::BTreeSet;

    /// The example on two nodes: node-api-0 on node-a, Redis on node-b.
    #[test]
    fn nodes_plan_both_halves_of_a_connection_between_them() {
        let mut engine = examples();
        let all: Vec<_> = engine
            .workloads()
            .into_iter()
            .map(|(_, w)| w.clone())
            .collect();
        for mut w in all {
            w.node = Some(if w.key.to_string() == "platform/redis-0" {
                "node-b".into()
            } else {
                "node-a".into()
            });
            engine.upsert_workload(w);
        }
        let (redis, client) = (
            ip(&engine, "platform/redis-0"),
            ip(&engine, "platform/node-api-0"),
        );
        let scope = |n: &str| NodeScope {
            node: Some(n.into()),
            ..NodeScope::default()
        };
        let none = BTreeSet::new();
        let between = |n: &str| plan_with(&engine, &scope(n), &none, &mut Numbers::default(), true);
        // The client's node: a table for the remote server, and the pair its nftables
        // leave to the path (the SYN skips its own proxy).
        let a = between("node-a");
        let (cn, sn) = (a.tables.identities[&client], a.tables.identities[&redis]);
        let t = a.tables.tables[&(cn, sn, 6379)];
        assert_eq!(
            a.tables.verdicts.get(&(t, Some("GET".into()))),
            Some(&super::Verdict::Allow)
        );
        assert_eq!(
            a.tables.verdicts.get(&(t, None)),
            Some(&super::Verdict::Refuse)
        );
        assert!(a.pairs.contains(&(redis, cn, 6379)));
        // Only the client's end is taken on node-a.
        let at = std::net::SocketAddr::new(redis, 6379);
        assert!(a.tables.servers.contains(&at) && a.tables.remote_servers.contains(&at));
        assert!(a.remote_pairs.is_empty(), "no server on node-a");
        // The server's node: no table (the client's node decides), the pair a vouched
        // SYN may use, and the server among those the SYN check looks at.
        let b = between("node-b");
        assert!(!b.tables.identities.contains_key(&client));
        let rn = b.remote_clients[&client];
        assert!(b.remote_pairs.contains(&(redis, rn, 6379)));
        assert!(
            b.tables
                .servers
                .contains(&std::net::SocketAddr::new(redis, 6379))
        );
        assert!(
            !b.tables.remote_servers.contains(&at),
            "node-b's own server"
        );
        // No rule lets order-web reach Redis: neither node plans it.
        let web = ip(&engine, "eu/order-web-0");
        assert!(!b.remote_clients.contains_key(&web));
        // Without vouching, neither half.
        let a0 = plan(&engine, &scope("node-a"), &none, &mut Numbers::default());
        assert!(!a0.tables.identities.contains_key(&redis));
        let b0 = plan(&engine, &scope("node-b"), &none, &mut Numbers::default());
        assert!(b0.remote_pairs.is_empty() && b0.remote_clients.is_empty());
    }
}
