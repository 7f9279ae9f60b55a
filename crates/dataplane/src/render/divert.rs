//! The `divert` chain: which new connections go to the L7 proxy.
//!
//! A rule with `app:` or L7 conditions cannot be decided by the kernel: the request is not
//! known yet. Such connections are diverted in prerouting (TPROXY) to the node's proxy,
//! which decides the whole connection and then each request with the same engine (see
//! `bulkhead-proxy`). The selection here may only err on the side of diverting: it
//! matches the L4 part of every L7 rule (subject, peer, port), without the first-match
//! ordering of the filter chains. A connection diverted that an earlier rule denies is
//! denied by the proxy instead, with the same verdict, while a connection that an L7
//! rule decides but that was not diverted would skip its L7 conditions: an L7 Allow's,
//! and as much an L7 Deny's (`DELETE` requests denied before an Allow of the port) or
//! Pass's. So: every gated rule of every policy, whatever its action, becomes one divert
//! rule per (subject, peer, port) alternative, and the chain grows with policies, never
//! with workloads.

use bulkhead_policy::compile::{CRule, Direction};
use bulkhead_policy::l7::{AppProtocol, L7Match};
use bulkhead_policy::spec::Mode;
use nftables::expr::{Expression, MetaKey, NamedExpression};
use nftables::stmt::{Statement, TProxy};
use std::borrow::Cow;
use std::collections::BTreeSet;

use super::{Alt, CHAIN_DIVERT, Renderer};
use crate::names::{DIVERT_MARK, ID_HOST, SIG_MASK, SIG_OVERFLOW, SIG_SHIFT, SOCKPATH_MARK};
use crate::rules::*;
use crate::ruleset::Hook;

const TCP: u8 = 6;
const UDP: u8 = 17;

impl Renderer<'_> {
    pub(super) fn divert_chain(&mut self, port: u16) {
        // Later packets of a diverted connection, and servers' answers to the proxy's
        // own (transparent) connections: to the socket that owns them. Both carry
        // DIVERT_MARK in their conntrack mark (set by the divert rules below; the output
        // chain sets PROXY_CT_MARK, the same under DIVERTED_MASK, on the proxy's own
        // connections), so telling them apart costs a
        // conntrack field, not the socket lookup (`socket transparent 1`) that every
        // established TCP packet through the node would otherwise pay.
        // Not the SYN of a new connection: one that reuses the ports of a connection the
        // proxy closed first would be taken to that connection's TIME_WAIT socket and
        // answered by the dead connection (an ACK the client drops, then a 1 s SYN
        // retransmit: a third of connection-per-request throughput); the tproxy rule
        // below gives it to the listener, as the kernel does for its own ports.
        let owned_tcp = vec![
            l4proto(TCP),
            ct_state(&["established", "related"]),
            eq(diverted(), Expression::Number(DIVERT_MARK)),
            set_mark(false, DIVERT_MARK),
            accept(),
        ];
        // Datagrams: servers' answers to the proxy's own UDP sockets (their flows' reply
        // direction). A diverted client's later datagrams (the original direction) go
        // on to the divert rules below, which hand each to the proxy's listener again.
        let owned_udp = vec![
            l4proto(UDP),
            ct_state(&["established", "related"]),
            eq(ct("direction"), Expression::String(Cow::Borrowed("reply"))),
            eq(diverted(), Expression::Number(DIVERT_MARK)),
            set_mark(false, DIVERT_MARK),
            accept(),
        ];
        let mut rules: Vec<Stmts> = vec![
            owned_tcp,
            owned_udp,
            // Established traffic stays on the fast path, except a diverted flow's
            // datagrams (each is decided by the proxy, and a client that sends from the
            // same port again is an established conntrack flow) and DNS's: a resolver
            // socket that was sending before a rule on names applied (its flow not
            // marked) must not keep asking past the proxy.
            vec![
                ct_state(&["established", "related"]),
                ne(meta(MetaKey::L4proto), Expression::Number(u32::from(UDP))),
                accept(),
            ],
            vec![
                ct_state(&["established", "related"]),
                l4proto(UDP),
                ne(diverted(), Expression::Number(DIVERT_MARK)),
                ne(payload("th", "dport"), Expression::Number(53)),
                accept(),
            ],
            vec![
                ne(meta(MetaKey::L4proto), Expression::Number(u32::from(TCP))),
                ne(meta(MetaKey::L4proto), Expression::Number(u32::from(UDP))),
                accept(),
            ],
            // A Redis connection the socket path decides (see SOCKPATH_MARK): its mark
            // stays for the forward chain.
            vec![
                eq(meta(MetaKey::Mark), Expression::Number(SOCKPATH_MARK)),
                accept(),
            ],
            vec![set_mark_from_map(false, false, "saddr", "id4")],
            vec![set_mark_from_map(false, true, "saddr", "id6")],
            vec![set_mark_from_map(true, false, "daddr", "dst4")],
            vec![set_mark_from_map(true, true, "daddr", "dst6")],
        ];
        // nft wants the family of a TPROXY target in an inet table: one rule per family.
        let divert = |v6: bool| {
            vec![
                Statement::TProxy(TProxy {
                    family: Some(Cow::Borrowed(if v6 { "ip6" } else { "ip" })),
                    port,
                    addr: None,
                }),
                set_mark(true, DIVERT_MARK),
                set_mark(false, DIVERT_MARK),
                accept(),
            ]
        };
        // Connections the server's node will take to its proxy (its L7 rules, its
        // sensors): protocol learning below leaves them to it, which detects the
        // protocol for the record just as well, rather than proxying them twice.
        let mut theirs: Vec<Stmts> = Vec::new();
        // The same the other way: connections a client's node takes for the client's
        // egress sensors, which a Discover server's learning leaves to that node.
        let mut theirs_in: Vec<Stmts> = Vec::new();
        let compiled = self.engine.compiled();
        let policies: Vec<_> = compiled
            .policies
            .iter()
            .map(|p| (p.applies.clone(), p.egress.clone(), p.ingress.clone()))
            .collect();
        for (applies, egress, ingress) in policies {
            for (range, dir) in [(egress, Direction::Egress), (ingress, Direction::Ingress)] {
                for rid in range {
                    let r = self.engine.compiled().rules[rid as usize].clone();
                    if !is_gated(&r) {
                        continue;
                    }
                    // Over UDP only where the rule's protocol can be a datagram: a rule
                    // on HTTP or Redis never matches one, and the filter chains decide
                    // UDP past it as the proxy would, without the detour.
                    let protos: &[u8] = if in_datagrams(&r) {
                        &[TCP, UDP]
                    } else {
                        &[TCP]
                    };
                    let alts: Vec<Alt> = protos
                        .iter()
                        .flat_map(|&p| self.l4_alternatives(&r, dir, p))
                        .collect();
                    for alt in alts {
                        for &subject in &applies {
                            let set = self.selector_set(subject);
                            let who = match dir {
                                Direction::Egress => src_id(),
                                Direction::Ingress => dst_id(),
                            };
                            let families = alt.v6.map_or(vec![false, true], |v6| vec![v6]);
                            for v6 in families {
                                let head = vec![nfproto(v6), eq(who.clone(), set_ref(&set))];
                                let mut stmts = head.clone();
                                stmts.push(local(dir));
                                stmts.extend(alt.stmts.iter().cloned());
                                stmts.extend(divert(v6));
                                rules.push(stmts);
                                if dir == Direction::Ingress {
                                    let mut stmts = head;
                                    stmts.push(remote(dir));
                                    stmts.extend(alt.stmts.iter().cloned());
                                    theirs.push(stmts);
                                }
                            }
                        }
                    }
                }
            }
        }
        // Sensors inspect every TCP connection and every UDP datagram to their groups'
        // members (and from them, with `inspect: [Egress]`), whatever the rule that
        // allows it: rules per group with sensors, on the node of the member.
        let sensored: Vec<_> = (self.engine.compiled().groups.iter())
            .filter(|g| !g.sensors.is_empty())
            .map(|g| (g.members, g.inspect))
            .collect();
        for (members, inspect) in sensored {
            let set = self.selector_set(members);
            let dirs = [
                (Direction::Ingress, dst_id(), inspect.ingress),
                (Direction::Egress, src_id(), inspect.egress),
            ];
            for (dir, who, on) in dirs {
                if !on {
                    continue;
                }
                for v6 in [false, true] {
                    let head = vec![nfproto(v6), eq(who.clone(), set_ref(&set))];
                    for proto in [TCP, UDP] {
                        let mut stmts = head.clone();
                        stmts.extend([local(dir), l4proto(proto)]);
                        stmts.extend(divert(v6));
                        rules.push(stmts);
                    }
                    // The member's node takes these: learning at the other end leaves
                    // them to it (learning takes TCP only).
                    let mut stmts = head;
                    stmts.extend([remote(dir), l4proto(TCP)]);
                    match dir {
                        Direction::Ingress => theirs.push(stmts),
                        Direction::Egress => theirs_in.push(stmts),
                    }
                }
            }
        }
        rules.extend(self.dns_learning_rules(&divert));
        // Learning: with `Settings.spec.discover.detectProtocols`, every new TCP
        // connection from or to a workload of this node in Discover mode, so that the
        // proxy detects its application protocol for the flow record (then splices it).
        rules.extend(self.discover_rules(divert, &theirs, &theirs_in));
        // Everything else goes on to the filter chains with the mark it came with.
        rules.push(vec![set_mark(false, 0)]);
        self.chain(CHAIN_DIVERT, Some(Hook::Prerouting), rules);
    }

    /// Divert rules for the local workloads in Discover mode, by signature number: the
    /// marks of a local workload's addresses carry it (`meta mark` the egress one, `ct
    /// mark` the ingress one), and a signature stands for one resolution, mode included.
    /// Signatures whose chains a Discover resolution shares with another one divert that
    /// one too (the proxy decides it like the kernel: only the cost differs); the
    /// overflow signature (fail closed) never. Traffic with the node is left alone, and
    /// so is traffic with a local workload in Protect mode.
    /// Called once the signature numbers of the render are final.
    /// `theirs`: what matches the connections another node's proxy takes (its L7
    /// rules, its sensors), which a Discover client's learning leaves to that node;
    /// `theirs_in`: those a client's node takes (its egress sensors), which a Discover
    /// server's learning leaves to it.
    fn discover_rules(
        &self,
        divert: impl Fn(bool) -> Stmts,
        theirs: &[Stmts],
        theirs_in: &[Stmts],
    ) -> Vec<Stmts> {
        if !self.engine.compiled().discover_detect_protocols {
            return Vec::new();
        }
        let (mut egress, mut ingress) = (BTreeSet::new(), BTreeSet::new());
        for (id, (es, is)) in &self.local_sigs {
            let discover = self
                .cache
                .local_keys
                .get(id)
                .is_some_and(|k| k.mode == Mode::Discover);
            if !discover {
                continue;
            }
            for (sig, set) in [(*es, &mut egress), (*is, &mut ingress)] {
                if sig != 0 && sig != SIG_OVERFLOW {
                    set.insert(sig);
                }
            }
        }
        // The other end must let the connection open too, or the client would see the
        // proxy accept a connection that policy then resets: it is either not a
        // workload of this node (decided elsewhere) or a local one whose side allows
        // like Discover. So: a Discover client with such a server (egress rules), or a
        // Discover server with a client from elsewhere (ingress rules).
        let sig = |ct_side: bool| {
            sig_of(if ct_side {
                Direction::Ingress
            } else {
                Direction::Egress
            })
        };
        // First, per Discover client signature (so that they go with it when it goes):
        // left to the server's node, as if the chain had ended here.
        let mut rules = Vec::new();
        for &e in &egress {
            for t in theirs {
                let mut stmts = vec![eq(sig(false), Expression::Number(e << SIG_SHIFT))];
                stmts.extend(t.iter().cloned());
                stmts.extend([set_mark(false, 0), accept()]);
                rules.push(stmts);
            }
        }
        // And per Discover server signature: left to the client's node.
        for &i in &ingress {
            for t in theirs_in {
                let mut stmts = vec![eq(sig(true), Expression::Number(i << SIG_SHIFT))];
                stmts.extend(t.iter().cloned());
                stmts.extend([set_mark(false, 0), accept()]);
                rules.push(stmts);
            }
        }
        let mut add =
            |subject: Statement<'static>, peer: Statement<'static>, other: Expression<'static>| {
                for v6 in [false, true] {
                    let mut stmts = vec![
                        nfproto(v6),
                        l4proto(TCP),
                        subject.clone(),
                        peer.clone(),
                        ne(other.clone(), Expression::Number(ID_HOST)),
                    ];
                    stmts.extend(divert(v6));
                    rules.push(stmts);
                }
            };
        for &e in &egress {
            for v in std::iter::once(0).chain(ingress.iter().copied()) {
                add(
                    eq(sig(false), Expression::Number(e << SIG_SHIFT)),
                    eq(sig(true), Expression::Number(v << SIG_SHIFT)),
                    dst_id(),
                );
            }
        }
        for &i in &ingress {
            add(
                eq(sig(true), Expression::Number(i << SIG_SHIFT)),
                eq(sig(false), Expression::Number(0)),
                src_id(),
            );
        }
        rules
    }

    /// FQDN egress: the DNS traffic (UDP and TCP port 53, to any resolver) of the
    /// workloads an egress rule with a `dns:` peer applies to goes through the proxy,
    /// which decides it as the kernel would and teaches the agent the addresses the
    /// answers give for names that `dns:` peers match (the agent fills their `d4_`/`d6_`
    /// sets). One rule per (policy subject, family, protocol): it grows with policies.
    fn dns_learning_rules(&mut self, divert: &impl Fn(bool) -> Stmts) -> Vec<Stmts> {
        let compiled = self.engine.compiled();
        let mut subjects = BTreeSet::new();
        for p in &compiled.policies {
            let names_dns = p.egress.clone().any(|rid| {
                compiled.rules[rid as usize]
                    .peers
                    .iter()
                    .any(|t| matches!(t, bulkhead_policy::compile::Target::Dns(_)))
            });
            if names_dns {
                subjects.extend(p.applies.iter().copied());
            }
        }
        let mut rules = Vec::new();
        for subject in subjects {
            let set = self.selector_set(subject);
            for v6 in [false, true] {
                for proto in [UDP, TCP] {
                    let mut stmts = vec![
                        nfproto(v6),
                        eq(src_id(), set_ref(&set)),
                        local(Direction::Egress),
                        l4proto(proto),
                        eq(payload("th", "dport"), Expression::Number(53)),
                    ];
                    stmts.extend(divert(v6));
                    rules.push(stmts);
                }
            }
        }
        rules
    }

    /// The (peer, port) alternatives of a rule that protocol `proto` can take, each
    /// matching that protocol.
    fn l4_alternatives(&mut self, r: &CRule, dir: Direction, proto: u8) -> Vec<Alt> {
        let peers = self.peer_alternatives(r, dir);
        let ports: Vec<Alt> = if r.ports.is_empty() {
            vec![Alt::any()]
        } else {
            r.ports
                .iter()
                .flat_map(|p| self.port(p))
                // Alternatives of another protocol (`meta l4proto 17`) never see this one.
                .filter(|a| !a.stmts.iter().any(|s| is_other_l4proto(s, proto)))
                .collect()
        };
        let mut out = Vec::new();
        for p in &peers {
            for q in &ports {
                let Some(v6) = Alt::family(p, q) else {
                    continue;
                };
                let mut stmts = p.stmts.clone();
                stmts.extend(q.stmts.iter().cloned());
                if !stmts.contains(&l4proto(proto)) {
                    stmts.push(l4proto(proto));
                }
                out.push(Alt { v6, stmts });
            }
        }
        out
    }
}

/// The subject of a divert rule is a workload of this node (its mark carries a
/// signature): the client for egress rules, the server for ingress rules. Each node's
/// proxy takes the connections of its own workloads' rules, as its filter chains check
/// only its own workloads' sides; a connection between two nodes is otherwise taken by
/// both proxies, each deciding the whole of it again (twice the cost, for nothing).
fn local(dir: Direction) -> Statement<'static> {
    ne(sig_of(dir), Expression::Number(0))
}

/// The opposite of [`local`]: the subject is a workload of another node (or none).
fn remote(dir: Direction) -> Statement<'static> {
    eq(sig_of(dir), Expression::Number(0))
}

/// The signature part of the subject's mark: the source's (`meta mark`) for egress,
/// the destination's (`ct mark`) for ingress; 0 when it is no workload of this node.
fn sig_of(dir: Direction) -> Expression<'static> {
    let mark = match dir {
        Direction::Egress => meta(MetaKey::Mark),
        Direction::Ingress => ct("mark"),
    };
    and(mark, SIG_MASK)
}

/// Is this a rule whose requests decide (the proxy's business)? Whatever its action: a
/// Deny of DELETE requests before an Allow of the port must see the requests too, and
/// so must a Pass or a Log, or the kernel would go on past them to the Allow.
pub fn is_gated(r: &CRule) -> bool {
    r.app.is_some() || !r.l7.is_empty()
}

/// Can what the rule looks at travel in UDP datagrams (the protocols the proxy reads
/// there: DNS, memcached's UDP frames, connectionless LDAP)?
fn in_datagrams(r: &CRule) -> bool {
    let datagram = |a: AppProtocol| {
        matches!(
            a,
            AppProtocol::Dns | AppProtocol::Memcached | AppProtocol::Ldap
        )
    };
    r.app.is_some_and(datagram)
        || r.l7
            .iter()
            .any(|m| matches!(m, L7Match::Dns { .. } | L7Match::Ldap { .. }))
}

fn is_other_l4proto(s: &Statement<'static>, proto: u8) -> bool {
    let l4 = l4proto(proto);
    matches!(s, Statement::Match(m)
        if matches!(&m.left, Expression::Named(NamedExpression::Meta(x)) if x.key == MetaKey::L4proto)
        && s != &l4)
}
