//! One rule's statements: its peers, ports and protocols as nftables alternatives, and
//! the named sets they use (selector sets, fixed address and port sets, named ports
//! resolved to each workload's number).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_model::{PortRange, Protocol};
use bulkhead_policy::compile::{CRule, Direction, RuleId, Target};
use bulkhead_policy::spec::{Action, Entity, PortSel, PortSpec};
use nftables::expr::{Expression, Range};
use rustc_hash::FxHashMap;

use super::cache::SetUse;
use super::{Alt, CHAIN_DENY, NamedPorts, PORT_PROTOCOLS, Renderer, proto_number};
use crate::names::*;
use crate::rules::*;
use crate::ruleset::{Elem, SetKind};

impl<'a> Renderer<'a> {
    pub(super) fn rules(
        &mut self,
        range: std::ops::Range<RuleId>,
        dir: Direction,
    ) -> (Vec<Stmts>, bool) {
        let mut out = Vec::new();
        let mut has_pass = false;
        for rid in range {
            let r = self.engine.compiled().rules[rid as usize].clone();
            has_pass |= r.action == Action::Pass && r.app.is_none() && r.l7.is_empty();
            out.extend(self.rule(&r, dir));
        }
        (out, has_pass)
    }

    /// One compiled rule as zero or more nft rules (one per peer x port alternative).
    pub(super) fn rule(&mut self, r: &CRule, dir: Direction) -> Vec<Stmts> {
        let gated = r.app.is_some() || !r.l7.is_empty();
        let action: Stmts = match (r.action, gated) {
            // With the L7 proxy, a connection such a rule may allow is diverted to it in
            // prerouting and never reaches these chains; one that does was not taken by
            // the proxy (not listening yet, restarting): fail closed, let nothing by
            // uninspected. The agent reports ready only once the proxy listens.
            (Action::Allow, true) if self.opts.l7_proxy.is_some() => return Vec::new(),
            // Without a proxy, at layer 4 a rule that looks at requests lets the
            // connection open if it allows some (the analyzer's kernel view); other gated
            // rules cannot decide anything here (see the verdict function).
            (Action::Allow, _) => vec![goto(Self::allow_target(dir))],
            (_, true) => return Vec::new(),
            (Action::Deny, false) => vec![goto(CHAIN_DENY)],
            (Action::Pass, false) => vec![set_flag(Self::pass_flag(dir)), ret()],
            (Action::Log, false) => vec![log(LOG_RULE, LOG_GROUP)],
        };
        let peers = self.peer_alternatives(r, dir);
        let ports: Vec<Alt> = if r.ports.is_empty() {
            vec![Alt::any()]
        } else {
            r.ports.iter().flat_map(|p| self.port(p)).collect()
        };
        let mut out = Vec::new();
        for p in &peers {
            for q in &ports {
                let Some(v6) = Alt::family(p, q) else {
                    continue;
                };
                let mut stmts = Vec::new();
                if let Some(v6) = v6 {
                    stmts.push(nfproto(v6));
                }
                stmts.extend(p.stmts.iter().cloned());
                stmts.extend(q.stmts.iter().cloned());
                stmts.extend(action.iter().cloned());
                out.push(stmts);
            }
        }
        out
    }

    /// A rule's peers as alternatives (one that matches anything when it names none).
    pub(super) fn peer_alternatives(&mut self, r: &CRule, dir: Direction) -> Vec<Alt> {
        if r.peers.is_empty() {
            vec![Alt::any()]
        } else {
            r.peers.iter().flat_map(|t| self.peer(t, dir)).collect()
        }
    }

    /// The peer is the destination for egress rules and the source for ingress rules.
    pub(super) fn peer(&mut self, t: &Target, dir: Direction) -> Vec<Alt> {
        let (id, field) = match dir {
            Direction::Egress => (dst_id(), "daddr"),
            Direction::Ingress => (src_id(), "saddr"),
        };
        match t {
            Target::Workloads(s) => {
                let name = self.selector_set(*s);
                vec![Alt {
                    v6: None,
                    stmts: vec![eq(id, set_ref(&name))],
                }]
            }
            Target::Entity(e) => {
                let stmt = match e {
                    Entity::World => eq(id, Expression::Number(ID_WORLD)),
                    Entity::Host => eq(id, Expression::Number(ID_HOST)),
                    Entity::Cluster => ne(id, Expression::Number(ID_WORLD)),
                };
                vec![Alt {
                    v6: None,
                    stmts: vec![stmt],
                }]
            }
            Target::Cidr(block) => {
                let v6 = block.net.addr().is_ipv6();
                let fam = if v6 { "6" } else { "4" };
                let kind = if v6 { SetKind::Nets6 } else { SetKind::Nets4 };
                let name = content_name(&format!("c{fam}_"), block.net.to_string().as_bytes());
                self.fixed_set(&name, kind, vec![Elem::Net(block.net)]);
                let mut stmts = vec![eq(addr_field(v6, field), set_ref(&name))];
                if !block.except.is_empty() {
                    let xname = content_name(&format!("x{fam}_"), block.to_string().as_bytes());
                    let except = block.except.iter().map(|n| Elem::Net(n.trunc())).collect();
                    self.fixed_set(&xname, kind, except);
                    stmts.push(ne(addr_field(v6, field), set_ref(&xname)));
                }
                vec![Alt {
                    v6: Some(v6),
                    stmts,
                }]
            }
            Target::Dns(pattern) => {
                // Dynamic sets: filled by the agent's DNS path with the addresses names
                // matching the pattern resolved to, each until its TTL (FQDN egress);
                // the render only creates them, empty, and the diff leaves their
                // elements alone (see `names::dns_set_names`).
                let (d4, d6) = crate::names::dns_set_names(&pattern.0);
                [false, true]
                    .into_iter()
                    .map(|v6| {
                        let name = if v6 { d6.clone() } else { d4.clone() };
                        let kind = if v6 { SetKind::Addrs6 } else { SetKind::Addrs4 };
                        self.fixed_set(&name, kind, Vec::new());
                        Alt {
                            v6: Some(v6),
                            stmts: vec![eq(addr_field(v6, field), set_ref(&name))],
                        }
                    })
                    .collect()
            }
        }
    }

    pub(super) fn port(&mut self, p: &PortSpec) -> Vec<Alt> {
        let protocols: Vec<Protocol> = match p.protocol {
            Some(x) => vec![x],
            None => PORT_PROTOCOLS.to_vec(),
        };
        let mut out = Vec::new();
        for proto in protocols {
            let n = proto_number(proto);
            match &p.port {
                // No protocol and no port: anything, like an empty port list.
                PortSel::Any if p.protocol.is_none() => {
                    return vec![Alt {
                        v6: None,
                        stmts: vec![],
                    }];
                }
                PortSel::Any => out.push(Alt {
                    v6: match proto {
                        Protocol::Icmp => Some(false),
                        Protocol::Icmpv6 => Some(true),
                        _ => None,
                    },
                    stmts: vec![l4proto(n)],
                }),
                PortSel::Range(PortRange { lo, hi }) if proto.has_ports() => {
                    let right = if lo == hi {
                        Expression::Number(u32::from(*lo))
                    } else {
                        Expression::Range(Box::new(Range {
                            range: [
                                Expression::Number(u32::from(*lo)),
                                Expression::Number(u32::from(*hi)),
                            ],
                        }))
                    };
                    out.push(Alt {
                        v6: None,
                        stmts: vec![l4proto(n), eq(payload("th", "dport"), right)],
                    });
                }
                PortSel::Named(name) if proto.has_ports() => {
                    for v6 in [false, true] {
                        let set = self.named_port_set(name, proto, v6);
                        out.push(Alt {
                            v6: Some(v6),
                            stmts: vec![
                                l4proto(n),
                                eq(
                                    Expression::Named(nftables::expr::NamedExpression::Concat(
                                        vec![addr_field(v6, "daddr"), payload("th", "dport")],
                                    )),
                                    set_ref(&set),
                                ),
                            ],
                        });
                    }
                }
                PortSel::Icmp { icmp_type, code } if !proto.has_ports() => {
                    let (v6, hdr) = match proto {
                        Protocol::Icmpv6 => (true, "icmpv6"),
                        _ => (false, "icmp"),
                    };
                    let mut stmts = vec![
                        l4proto(n),
                        eq(
                            payload(hdr, "type"),
                            Expression::Number(u32::from(*icmp_type)),
                        ),
                    ];
                    if let Some(c) = code {
                        stmts.push(eq(payload(hdr, "code"), Expression::Number(u32::from(*c))));
                    }
                    out.push(Alt {
                        v6: Some(v6),
                        stmts,
                    });
                }
                // Port ranges or names on ICMP, ICMP types on TCP: matches nothing, as in
                // the verdict function.
                _ => {}
            }
        }
        out
    }

    /// A set whose elements are constants of the rule (and what a cache hit replays).
    pub(super) fn fixed_set(&mut self, name: &str, kind: SetKind, elems: Vec<Elem>) {
        self.set(name, kind).extend(elems.iter().cloned());
        self.uses.push(SetUse::Fixed {
            name: name.to_string(),
            kind,
            elems,
        });
    }

    /// The set of identity numbers a selector selects (filled once per render).
    pub(super) fn selector_set(&mut self, s: u32) -> String {
        let name = self.sel_sets[s as usize].clone();
        self.uses.push(SetUse::Selector(name.clone()));
        if !self.out.sets.contains_key(&name) {
            self.fill_selector_set(s, &name);
        }
        name
    }

    pub(super) fn fill_selector_set(&mut self, s: u32, name: &str) {
        self.index.selector_sets.push((name.to_string(), s));
        // Selection depends on the selector and the identities only: what the kernel
        // holds under this name is right when only the policy changed.
        if let Some(elems) = self.carried(name, SetKind::Marks) {
            self.fill_shared(name, SetKind::Marks, elems);
            return;
        }
        let members: BTreeSet<Elem> = self
            .engine
            .selected(s)
            .iter()
            .map(|i| Elem::Mark(self.numbers[i as usize]))
            .collect();
        self.fill(name, SetKind::Marks, members);
    }

    /// The elements the kernel holds in a workload-derived set (see [`render_cached`]).
    pub(super) fn carried(&self, name: &str, kind: SetKind) -> Option<Arc<BTreeSet<Elem>>> {
        let s = self.carry?.sets.get(name)?;
        (s.kind == kind).then(|| s.elems.clone()).flatten()
    }

    /// (port name, protocol) -> (address, port), with the port each workload resolves
    /// the name to (its first container port of that name and protocol, as the engine
    /// does).
    pub(super) fn named_ports(&mut self) -> &NamedPorts<'a> {
        let workloads = &self.workloads;
        self.named_ports.get_or_insert_with(|| {
            let mut named: FxHashMap<(&str, Protocol), Vec<(IpAddr, u16)>> = FxHashMap::default();
            for (_, w) in workloads {
                for p in &w.ports {
                    let Some(name) = p.name.as_deref() else {
                        continue;
                    };
                    if w.named_port(name, p.protocol) != Some(p.port) {
                        continue;
                    }
                    let entry = named.entry((name, p.protocol)).or_default();
                    entry.extend(w.ips.iter().map(|ip| (*ip, p.port)));
                }
            }
            named
        })
    }

    /// The (address, port) pairs of every workload (anywhere) that names this port.
    pub(super) fn named_port_set(&mut self, name: &str, proto: Protocol, v6: bool) -> String {
        let fam = if v6 { "6" } else { "4" };
        let set = content_name(&format!("n{fam}_"), format!("{name}/{proto}").as_bytes());
        self.uses.push(SetUse::NamedPort {
            set: set.clone(),
            port: name.to_string(),
            proto,
            v6,
        });
        if self.out.sets.contains_key(&set) {
            return set;
        }
        self.index
            .named_port_sets
            .push((set.clone(), name.to_string(), proto, v6));
        let kind = if v6 {
            SetKind::AddrPorts6
        } else {
            SetKind::AddrPorts4
        };
        if let Some(elems) = self.carried(&set, kind) {
            self.fill_shared(&set, kind, elems);
            return set;
        }
        let elems: Vec<Elem> = self
            .named_ports()
            .get(&(name, proto))
            .map(|v| {
                v.iter()
                    .filter(|(ip, _)| ip.is_ipv6() == v6)
                    .map(|(ip, port)| Elem::AddrPort(*ip, *port))
                    .collect()
            })
            .unwrap_or_default();
        self.fill(&set, kind, elems.into_iter().collect());
        set
    }
}
