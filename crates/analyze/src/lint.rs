//! `policy lint`: problems a reviewer would want to know about before applying policy.
//!
//! Set reasoning uses the resolved identities, so "selects nothing" and "shadowed"
//! are judged against the inventory given (say so in messages): a selector that matches
//! nothing in a lab may match something in production.

use bulkhead_model::CidrBlock;
use bulkhead_policy::Engine;
use bulkhead_policy::compile::{CRule, CompileError, Direction, RuleId, Target, Tier};
use bulkhead_policy::spec::{Action, Entity, Origin, PeerSpec, PolicySet, PortSel, PortSpec};
use roaring::RoaringBitmap;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier: `selects-nothing`, `shadowed-rule`, `redundant-rule`,
    /// `conflict`, `unused-group`, `unused-sensor`, `duplicate-name`, `invalid-reference`.
    pub code: &'static str,
    pub message: String,
    pub origin: Origin,
}

/// Findings for a policy set that failed to compile: the compile errors, and with them
/// every finding that needs no compiled policy (duplicate names, unused groups and
/// sensors), so one run reports all it can. Sorted as [`lint`]'s.
pub fn from_compile_errors(set: &PolicySet, errors: &[CompileError]) -> Vec<Finding> {
    let mut out: Vec<Finding> = errors
        .iter()
        .map(|e| Finding {
            severity: Severity::Error,
            code: "invalid-reference",
            message: e.message.clone(),
            origin: e.origin.clone(),
        })
        .collect();
    uncompiled(set, &mut out);
    sorted(out)
}

/// The checks of the policy set as written.
fn uncompiled(set: &PolicySet, out: &mut Vec<Finding>) {
    duplicate_names(set, out);
    unused_groups(set, out);
    unused_sensors(set, out);
    inspect_without_sensors(set, out);
}

fn sorted(mut out: Vec<Finding>) -> Vec<Finding> {
    out.sort_by(|a, b| (a.severity, &a.origin, a.code).cmp(&(b.severity, &b.origin, b.code)));
    out.dedup();
    out
}

/// Lint a compiled policy set against its inventory. Sorted: errors first, then by place.
pub fn lint(engine: &Engine) -> Vec<Finding> {
    let mut out = Vec::new();
    uncompiled(engine.policy(), &mut out);
    selects_nothing(engine, &mut out);
    overlaps(engine, &mut out);
    sorted(out)
}

fn duplicate_names(set: &PolicySet, out: &mut Vec<Finding>) {
    let mut seen: Vec<(String, String, Origin)> = Vec::new();
    let mut check = |kind: &str, name: String, origin: &Origin, out: &mut Vec<Finding>| {
        if let Some((_, _, first)) = seen.iter().find(|(k, n, _)| k == kind && *n == name) {
            out.push(Finding {
                severity: Severity::Error,
                code: "duplicate-name",
                message: format!("{kind} {name} is defined twice; the first is at {first}"),
                origin: origin.clone(),
            });
        } else {
            seen.push((kind.to_string(), name, origin.clone()));
        }
    };
    for p in &set.policies {
        let name = match &p.namespace {
            Some(ns) => format!("{ns}/{}", p.name),
            None => p.name.clone(),
        };
        check("Policy", name, &p.origin, out);
    }
    for np in &set.network_policies {
        check(
            "NetworkPolicy",
            format!("{}/{}", np.namespace, np.name),
            &np.origin,
            out,
        );
    }
    for g in &set.groups {
        check("Group", g.name.clone(), &g.origin, out);
    }
}

fn unused_groups(set: &PolicySet, out: &mut Vec<Finding>) {
    for g in &set.groups {
        let named = |p: &PeerSpec| matches!(p, PeerSpec::Group(n) if *n == g.name);
        let used = set.policies.iter().any(|p| {
            p.applies_to.iter().any(named)
                || p.ingress
                    .iter()
                    .chain(&p.egress)
                    .any(|r| r.peers.iter().any(|x| named(&x.spec)))
        });
        // A group that attaches sensors does something even if no policy names it.
        if !used && g.sensors.is_empty() {
            out.push(Finding {
                severity: Severity::Warning,
                code: "unused-group",
                message: format!(
                    "group {} is referenced by no policy (its {} mode still applies to its members)",
                    g.name, g.mode
                ),
                origin: g.origin.clone(),
            });
        }
    }
}

/// A Sensor no group lists inspects nothing.
fn unused_sensors(set: &PolicySet, out: &mut Vec<Finding>) {
    for s in &set.sensors {
        if !set.groups.iter().any(|g| g.sensors.contains(&s.name)) {
            out.push(Finding {
                severity: Severity::Warning,
                code: "unused-sensor",
                message: format!(
                    "sensor {} is listed by no group (`spec.sensors`): it inspects nothing",
                    s.name
                ),
                origin: s.origin.clone(),
            });
        }
    }
}

/// `inspect` says which connections a group's sensors read: without sensors, none.
fn inspect_without_sensors(set: &PolicySet, out: &mut Vec<Finding>) {
    for g in &set.groups {
        if g.sensors.is_empty() && g.inspect != Default::default() {
            out.push(Finding {
                severity: Severity::Warning,
                code: "inspect-without-sensors",
                message: format!(
                    "group {} sets `inspect` but lists no sensor (`spec.sensors`): nothing is inspected",
                    g.name
                ),
                origin: g.origin.clone(),
            });
        }
    }
}

fn selects_nothing(engine: &Engine, out: &mut Vec<Finding>) {
    let set = engine.policy();
    let c = engine.compiled();
    let none = |s: u32| engine.selected(s).is_empty();
    for (g, cg) in set.groups.iter().zip(&c.groups) {
        if none(cg.members) {
            out.push(nothing(
                &g.origin,
                format!("group {} selects no workload", g.name),
            ));
        }
    }
    for (p, cp) in set.policies.iter().zip(&c.policies) {
        if cp.applies.iter().all(|&s| none(s)) {
            out.push(nothing(
                &p.origin,
                format!("policy {} applies to no workload", p.name),
            ));
        }
    }
    for (np, cn) in set.network_policies.iter().zip(&c.network_policies) {
        if none(cn.selects) {
            out.push(nothing(
                &np.origin,
                format!(
                    "NetworkPolicy {}/{} podSelector {} selects no pod",
                    np.namespace, np.name, np.pod_selector
                ),
            ));
        }
    }
    for (rid, r) in c.rules.iter().enumerate() {
        for t in &r.peers {
            if let Target::Workloads(s) = t
                && none(*s)
            {
                let rr = engine.rule_ref(rid as RuleId);
                out.push(nothing(
                    &rr.origin,
                    format!(
                        "{} {} {} rule {}: peer {} selects no workload",
                        rr.kind, rr.policy, rr.direction, rr.rule, c.selectors[*s as usize]
                    ),
                ));
            }
        }
    }
}

fn nothing(origin: &Origin, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        code: "selects-nothing",
        message: format!("{message} in the given inventory"),
        origin: origin.clone(),
    }
}

/// What a rule covers, as sets.
struct Cover {
    subjects: RoaringBitmap,
    any_peer: bool,
    peer_ids: RoaringBitmap,
    cidrs: Vec<CidrBlock>,
    entities: Vec<Entity>,
    dns: Vec<String>,
}

fn cover(engine: &Engine, subjects: &RoaringBitmap, r: &CRule) -> Cover {
    let mut c = Cover {
        subjects: subjects.clone(),
        any_peer: r.peers.is_empty(),
        peer_ids: RoaringBitmap::new(),
        cidrs: Vec::new(),
        entities: Vec::new(),
        dns: Vec::new(),
    };
    for t in &r.peers {
        match t {
            Target::Workloads(s) => c.peer_ids |= engine.selected(*s),
            Target::Cidr(b) => c.cidrs.push(b.clone()),
            Target::Entity(e) => c.entities.push(*e),
            Target::Dns(d) => c.dns.push(d.0.to_ascii_lowercase()),
        }
    }
    if c.entities.contains(&Entity::Cluster) {
        c.peer_ids |= engine.identities().live();
    }
    c
}

/// Does `a` cover every peer `b` covers?
fn peers_contain(a: &Cover, b: &Cover) -> bool {
    if a.any_peer {
        return true;
    }
    if b.any_peer {
        return false;
    }
    b.peer_ids.is_subset(&a.peer_ids)
        && b.cidrs.iter().all(|bc| {
            a.cidrs.iter().any(|ac| {
                ac.net.contains(&bc.net)
                    && ac
                        .except
                        .iter()
                        .all(|e| !e.contains(&bc.net.network()) && !bc.net.contains(&e.network()))
            })
        })
        && b.entities.iter().all(|e| {
            a.entities.contains(e) || (*e == Entity::Host && a.entities.contains(&Entity::Cluster))
        })
        && b.dns.iter().all(|d| a.dns.contains(d))
}

fn peers_intersect(a: &Cover, b: &Cover) -> bool {
    a.any_peer
        || b.any_peer
        || !a.peer_ids.is_disjoint(&b.peer_ids)
        || a.cidrs.iter().any(|x| {
            b.cidrs
                .iter()
                .any(|y| x.net.contains(&y.net) || y.net.contains(&x.net))
        })
        || a.entities.iter().any(|e| b.entities.contains(e))
        || a.dns.iter().any(|d| b.dns.contains(d))
}

fn port_contains(a: &PortSpec, b: &PortSpec) -> bool {
    if a.protocol.is_some() && a.protocol != b.protocol {
        return false;
    }
    match (&a.port, &b.port) {
        (PortSel::Any, _) => true,
        (PortSel::Range(x), PortSel::Range(y)) => x.lo <= y.lo && y.hi <= x.hi,
        (PortSel::Named(x), PortSel::Named(y)) => x == y,
        (
            PortSel::Icmp {
                icmp_type: t1,
                code: c1,
            },
            PortSel::Icmp {
                icmp_type: t2,
                code: c2,
            },
        ) => t1 == t2 && (c1.is_none() || c1 == c2),
        _ => false,
    }
}

fn ports_contain(a: &[PortSpec], b: &[PortSpec]) -> bool {
    a.is_empty() || (!b.is_empty() && b.iter().all(|y| a.iter().any(|x| port_contains(x, y))))
}

fn ports_intersect(a: &[PortSpec], b: &[PortSpec]) -> bool {
    let one = |x: &PortSpec, y: &PortSpec| {
        if x.protocol.is_some() && y.protocol.is_some() && x.protocol != y.protocol {
            return false;
        }
        match (&x.port, &y.port) {
            (PortSel::Range(p), PortSel::Range(q)) => p.lo <= q.hi && q.lo <= p.hi,
            (PortSel::Icmp { icmp_type: t1, .. }, PortSel::Icmp { icmp_type: t2, .. }) => t1 == t2,
            (PortSel::Range(_), PortSel::Icmp { .. })
            | (PortSel::Icmp { .. }, PortSel::Range(_)) => false,
            // Named ports may resolve to anything: assume they can meet.
            _ => true,
        }
    };
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.iter().any(|y| one(x, y)))
}

/// Shadowed, redundant and conflicting rules, in evaluation order per direction.
fn overlaps(engine: &Engine, out: &mut Vec<Finding>) {
    // Rules are compared pairwise; past this many per direction, stop rather than take
    // minutes on generated policy sets.
    const MAX_RULES: usize = 2_000;
    let c = engine.compiled();
    for dir in [Direction::Ingress, Direction::Egress] {
        // Tier-1 rules in evaluation order, then NetworkPolicy rules (which only a
        // terminal tier-1 rule can shadow).
        let mut ordered: Vec<(RuleId, RoaringBitmap)> = Vec::new();
        for &pi in &c.policy_order {
            let p = &c.policies[pi as usize];
            let mut subjects = RoaringBitmap::new();
            for &s in &p.applies {
                subjects |= engine.selected(s);
            }
            let range = if dir == Direction::Ingress {
                p.ingress.clone()
            } else {
                p.egress.clone()
            };
            ordered.extend(range.map(|rid| (rid, subjects.clone())));
        }
        for np in &c.network_policies {
            let range = if dir == Direction::Ingress {
                np.ingress.clone()
            } else {
                np.egress.clone()
            };
            let subjects = engine.selected(np.selects).clone();
            ordered.extend(
                range
                    .into_iter()
                    .flatten()
                    .map(|rid| (rid, subjects.clone())),
            );
        }
        ordered.truncate(MAX_RULES);
        let covers: Vec<Cover> = ordered
            .iter()
            .map(|(rid, subj)| cover(engine, subj, &c.rules[*rid as usize]))
            .collect();
        for (j, (bj, _)) in ordered.iter().enumerate() {
            let b = &c.rules[*bj as usize];
            if covers[j].subjects.is_empty() {
                continue;
            }
            for (i, (ai, _)) in ordered[..j].iter().enumerate() {
                let a = &c.rules[*ai as usize];
                let terminal = matches!(a.action, Action::Allow | Action::Deny);
                if !terminal || a.app.is_some() || a.at.tier != Tier::Policy {
                    continue;
                }
                let (ca, cb) = (&covers[i], &covers[j]);
                let contains = cb.subjects.is_subset(&ca.subjects)
                    && peers_contain(ca, cb)
                    && ports_contain(&a.ports, &b.ports);
                let ra = engine.rule_ref(*ai);
                let rb = engine.rule_ref(*bj);
                let a_words = format!(
                    "{} {} {} rule {} ({})",
                    ra.kind, ra.policy, ra.direction, ra.rule, ra.action
                );
                if contains {
                    let same = a.action == b.action && b.app.is_none();
                    out.push(Finding {
                        severity: Severity::Warning,
                        code: if same { "redundant-rule" } else { "shadowed-rule" },
                        message: if same {
                            format!("{} {} {} rule {} is redundant: {a_words}, evaluated first, already matches everything it matches", rb.kind, rb.policy, rb.direction, rb.rule)
                        } else {
                            format!("{} {} {} rule {} ({}) never takes effect: {a_words}, evaluated first, matches everything it matches", rb.kind, rb.policy, rb.direction, rb.rule, rb.action)
                        },
                        origin: rb.origin.clone(),
                    });
                    break;
                }
                // Within one policy, "specific Allow, then broader Deny" is how exceptions
                // are written; only overlaps across policies, where priorities silently
                // pick the winner, are worth a warning.
                let opposite = a.at.doc != b.at.doc
                    && matches!(
                        (a.action, b.action),
                        (Action::Allow, Action::Deny) | (Action::Deny, Action::Allow)
                    );
                if opposite
                    && !ca.subjects.is_disjoint(&cb.subjects)
                    && peers_intersect(ca, cb)
                    && ports_intersect(&a.ports, &b.ports)
                {
                    out.push(Finding {
                        severity: Severity::Warning,
                        code: "conflict",
                        message: format!(
                            "{} {} {} rule {} ({}) and {a_words} both match some of the same traffic (for example {}); the {} rule wins because it is evaluated first",
                            rb.kind, rb.policy, rb.direction, rb.rule, rb.action,
                            example(engine, ca, cb, dir),
                            ra.action
                        ),
                        origin: rb.origin.clone(),
                    });
                }
            }
        }
    }
}

/// A concrete workload pair both rules match, in words.
fn example(engine: &Engine, a: &Cover, b: &Cover, dir: Direction) -> String {
    let name = |id: u32| {
        engine
            .workloads_of(id)
            .next()
            .map(|w| w.key.to_string())
            .unwrap_or_else(|| format!("identity {id}"))
    };
    let subjects = &a.subjects & &b.subjects;
    let Some(first) = subjects.min() else {
        return "some connections".into();
    };
    let peers = if a.any_peer && b.any_peer {
        engine.identities().live().clone()
    } else if a.any_peer {
        b.peer_ids.clone()
    } else if b.any_peer {
        a.peer_ids.clone()
    } else {
        &a.peer_ids & &b.peer_ids
    };
    // Prefer two different identities, so the example is not a workload to itself.
    let pair = subjects
        .iter()
        .find_map(|s| peers.iter().find(|p| *p != s).map(|p| (s, p)))
        .or_else(|| peers.min().map(|p| (first, p)));
    match (pair, dir) {
        (Some((s, p)), Direction::Ingress) => format!("{} -> {}", name(p), name(s)),
        (Some((s, p)), Direction::Egress) => format!("{} -> {}", name(s), name(p)),
        (None, _) => format!("traffic of {}", name(first)),
    }
}
