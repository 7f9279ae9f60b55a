//! The `divert` chain: which new connections go to the L7 proxy.
//!
//! A rule with `app:` or L7 conditions cannot be decided by the kernel: the request is not
//! known yet. Such connections are diverted in prerouting (TPROXY) to the node's proxy,
//! which decides the whole connection and then each request with the same engine (see
//! `bulkhead-proxy`). The selection here may only err on the side of diverting: it
//! matches the L4 part of every L7 rule that may allow (subject, peer, port), without the
//! first-match ordering of the filter chains. A connection diverted that an earlier rule
//! denies is denied by the proxy instead, with the same verdict, while a connection that
//! an L7 rule allows but that was not diverted would skip its L7 conditions. So: every
//! gated Allow rule of every policy becomes one divert rule per (subject, peer, port)
//! alternative, and the chain grows with policies, never with workloads.

use bulkhead_policy::compile::{CRule, Direction};
use bulkhead_policy::l7::{AppProtocol, L7Match};
use bulkhead_policy::spec::Action;
use nftables::expr::{Expression, MetaKey, NamedExpression, Socket, SocketAttr};
use nftables::stmt::{Statement, TProxy};
use std::borrow::Cow;

use super::{Alt, CHAIN_DIVERT, Renderer};
use crate::names::DIVERT_MARK;
use crate::rules::*;
use crate::ruleset::Hook;

const TCP: u8 = 6;
const UDP: u8 = 17;

impl Renderer<'_> {
    pub(super) fn divert_chain(&mut self, port: u16) {
        // Later packets of a diverted connection, and servers' answers to the proxy's
        // own (transparent) connections and datagrams: to the socket that owns them.
        let owned = |proto: u8| {
            vec![
                l4proto(proto),
                eq(
                    Expression::Named(NamedExpression::Socket(Socket {
                        key: Cow::Owned(SocketAttr::Transparent),
                    })),
                    Expression::Number(1),
                ),
                set_mark(false, DIVERT_MARK),
                accept(),
            ]
        };
        let mut rules: Vec<Stmts> = vec![
            owned(TCP),
            owned(UDP),
            vec![ct_state(&["established", "related"]), accept()],
            vec![
                ne(meta(MetaKey::L4proto), Expression::Number(u32::from(TCP))),
                ne(meta(MetaKey::L4proto), Expression::Number(u32::from(UDP))),
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
                set_mark(false, DIVERT_MARK),
                accept(),
            ]
        };
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
                    if !is_gated_allow(&r) {
                        continue;
                    }
                    // Over UDP the proxy reads DNS only: other datagrams are not diverted.
                    let protos: &[u8] = if is_dns(&r) { &[TCP, UDP] } else { &[TCP] };
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
                                let mut stmts = vec![nfproto(v6), eq(who.clone(), set_ref(&set))];
                                stmts.extend(alt.stmts.iter().cloned());
                                stmts.extend(divert(v6));
                                rules.push(stmts);
                            }
                        }
                    }
                }
            }
        }
        // Sensors inspect every TCP connection to their groups' members, whatever the
        // rule that allows it: one rule per group with sensors.
        let sensored: Vec<_> = (self.engine.compiled().groups.iter())
            .filter(|g| !g.sensors.is_empty())
            .map(|g| g.members)
            .collect();
        for members in sensored {
            let set = self.selector_set(members);
            for v6 in [false, true] {
                let mut stmts = vec![nfproto(v6), eq(dst_id(), set_ref(&set)), l4proto(TCP)];
                stmts.extend(divert(v6));
                rules.push(stmts);
            }
        }
        // Everything else goes on to the filter chains with the mark it came with.
        rules.push(vec![set_mark(false, 0)]);
        self.chain(CHAIN_DIVERT, Some(Hook::Prerouting), rules);
    }

    /// The (peer, port) alternatives of a rule that protocol `proto` can take, each
    /// matching that protocol.
    fn l4_alternatives(&mut self, r: &CRule, dir: Direction, proto: u8) -> Vec<Alt> {
        let peers: Vec<Alt> = if r.peers.is_empty() {
            vec![Alt {
                v6: None,
                stmts: vec![],
            }]
        } else {
            r.peers.iter().flat_map(|t| self.peer(t, dir)).collect()
        };
        let ports: Vec<Alt> = if r.ports.is_empty() {
            vec![Alt {
                v6: None,
                stmts: vec![],
            }]
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
                let v6 = match (p.v6, q.v6) {
                    (Some(a), Some(b)) if a != b => continue,
                    (a, b) => a.or(b),
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

/// Does this rule allow connections whose requests decide (the proxy's business)?
pub fn is_gated_allow(r: &CRule) -> bool {
    r.action == Action::Allow && (r.app.is_some() || !r.l7.is_empty())
}

/// Does the rule look at DNS (the one protocol the proxy reads over UDP)?
fn is_dns(r: &CRule) -> bool {
    r.app == Some(AppProtocol::Dns) || r.l7.iter().any(|m| matches!(m, L7Match::Dns { .. }))
}

fn is_other_l4proto(s: &Statement<'static>, proto: u8) -> bool {
    let l4 = l4proto(proto);
    matches!(s, Statement::Match(m)
        if matches!(&m.left, Expression::Named(NamedExpression::Meta(x)) if x.key == MetaKey::L4proto)
        && s != &l4)
}
