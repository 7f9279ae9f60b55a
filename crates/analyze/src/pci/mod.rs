//! PCI-DSS segmentation report: which connections the policy lets cross the boundary of
//! the cardholder data environment (CDE), proved over every port, and which ones were
//! observed crossing it.
//!
//! The proof: a verdict can only change where some rule's port set starts or ends (or
//! at a named port some workload resolves). Those boundaries cut each protocol's ports
//! into intervals on which every rule matches alike, so asking the engine once per
//! interval (its first port) and per ICMP type a rule names (plus one that none names)
//! decides every port of every protocol. Pairs are taken per identity (workloads with
//! the same labels are decided alike), plus the `world` and `host` entities, in both
//! directions across the boundary.

mod render;

use std::collections::BTreeSet;
use std::net::IpAddr;

use bulkhead_model::{L4, PortRange, Protocol, Selector};
use bulkhead_policy::spec::PortSel;
use bulkhead_policy::{Connection, Endpoint, Engine, WorkloadId};
use bulkhead_record::{Action, FlowRecord};
use serde::Serialize;

pub use render::{html, markdown};

/// An address no policy names, standing for "anywhere outside the cluster".
const WORLD: &str = "203.0.113.10";

/// One boundary crossing the policy allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Crossing {
    /// `in` (into the CDE) or `out` (from the CDE).
    pub direction: &'static str,
    /// An example workload of the source identity (or `world`, `host`), and how many
    /// workloads share its labels.
    pub src: String,
    pub src_workloads: usize,
    pub dst: String,
    pub dst_workloads: usize,
    /// Ports and ranges per protocol (`TCP/5432`, `UDP/1-65535`, `ICMP/8`).
    pub services: Vec<String>,
    /// The rules that decided (egress and ingress), one line each.
    pub rules: Vec<String>,
    /// Allowed only because a Monitor or Discover mode lets it through: no rule allows
    /// it, nothing enforces the boundary there.
    pub monitor_only: bool,
}

/// An observed flow across the boundary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub direction: &'static str,
    pub src: String,
    pub dst: String,
    pub service: String,
    pub verdict: String,
    pub count: u64,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub cde_selector: String,
    pub cde_workloads: Vec<String>,
    pub other_workloads: usize,
    /// What policy allows across the boundary.
    pub allowed: Vec<Crossing>,
    /// Flows records show crossing it (allowed and denied), if records were given.
    pub observed: Vec<Observed>,
    pub records_read: u64,
}

/// One side of a pair: an example workload (None: an entity) and its size.
struct Party {
    name: String,
    ep: Endpoint,
    count: usize,
    cde: bool,
}

/// The report for `cde` (a selector over workload labels, namespace labels included as
/// the engine sees them), with the flow records in `records`.
pub fn report<'r>(
    engine: &Engine,
    cde: &Selector,
    records: impl IntoIterator<Item = &'r FlowRecord>,
) -> Report {
    let workloads = engine.workloads();
    let in_cde = |id: WorkloadId| {
        engine.workload(id).is_some_and(|w| {
            let labels = w.labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            matches(engine, cde, &w.key.namespace, labels)
        })
    };
    // One party per identity (same labels, same namespace: decided alike).
    let mut parties: Vec<Party> = Vec::new();
    let mut seen: Vec<(u32, usize)> = Vec::new();
    for (id, w) in &workloads {
        let Some(ident) = engine.identity_of(*id) else {
            continue;
        };
        if let Some(&(_, i)) = seen.iter().find(|(x, _)| *x == ident) {
            parties[i].count += 1;
            continue;
        }
        seen.push((ident, parties.len()));
        parties.push(Party {
            name: w.key.to_string(),
            ep: Endpoint::Workload {
                id: *id,
                addr: None,
            },
            count: 1,
            cde: in_cde(*id),
        });
    }
    let host = engine
        .nodes()
        .flat_map(|n| n.addresses.iter())
        .next()
        .copied();
    if let Some(addr) = host {
        parties.push(Party {
            name: "host".into(),
            ep: Endpoint::Host { addr },
            count: 1,
            cde: false,
        });
    }
    // Every CIDR a rule names, by an address inside it (outside its exceptions): the
    // blocks a policy opens to the CDE are listed one by one, not hidden behind `world`.
    let mut nets: BTreeSet<String> = BTreeSet::new();
    for r in &engine.compiled().rules {
        for t in &r.peers {
            if let bulkhead_policy::compile::Target::Cidr(b) = t
                && let Some(addr) = b
                    .net
                    .hosts()
                    .find(|a| !b.except.iter().any(|x| x.contains(a)))
                && nets.insert(b.net.to_string())
            {
                parties.push(Party {
                    name: format!("cidr {} (e.g. {addr})", b.net),
                    ep: Endpoint::External {
                        addr: Some(addr),
                        names: Vec::new(),
                    },
                    count: 1,
                    cde: false,
                });
            }
        }
    }
    parties.push(Party {
        name: "world".into(),
        ep: Endpoint::External {
            addr: WORLD.parse::<IpAddr>().ok(),
            names: Vec::new(),
        },
        count: 1,
        cde: false,
    });

    let services = port_classes(engine);
    let mut allowed = Vec::new();
    for s in &parties {
        for d in &parties {
            if s.cde == d.cde {
                continue;
            }
            if let Some(c) = crossing(engine, s, d, &services) {
                allowed.push(c);
            }
        }
    }
    let (observed, records_read) = observed(engine, records, cde);
    Report {
        cde_selector: cde.to_string(),
        cde_workloads: workloads
            .iter()
            .filter(|(id, _)| in_cde(*id))
            .map(|(_, w)| w.key.to_string())
            .collect(),
        other_workloads: workloads.iter().filter(|(id, _)| !in_cde(*id)).count(),
        allowed,
        observed,
        records_read,
    }
}

/// The connections from `s` to `d` the policy allows, as merged port ranges.
fn crossing(engine: &Engine, s: &Party, d: &Party, classes: &[Class]) -> Option<Crossing> {
    let mut services: Vec<String> = Vec::new();
    let mut rules: BTreeSet<String> = BTreeSet::new();
    let mut monitor_only = false;
    let mut run: Option<(Protocol, u16, u16)> = None;
    let flush = |run: &mut Option<(Protocol, u16, u16)>, out: &mut Vec<String>| {
        if let Some((p, lo, hi)) = run.take() {
            out.push(if lo == hi {
                format!("{p}/{lo}")
            } else {
                format!("{p}/{lo}-{hi}")
            });
        }
    };
    for c in classes {
        let l4 = c.probe();
        let conn = Connection {
            src: &s.ep,
            dst: &d.ep,
            l4,
            l7: None,
        };
        let v = engine.verdict(&conn);
        if !v.allowed {
            flush(&mut run, &mut services);
            continue;
        }
        monitor_only |= v.is_violation();
        let x = engine.explain_verdict(&conn, &v);
        for side in [&x.egress, &x.ingress] {
            if let Some(r) = &side.rule {
                rules.insert(format!(
                    "{}: {}",
                    side.subject,
                    bulkhead_record::Rule::from(r).display()
                ));
            } else if side.decided_at == "mode"
                && let Some(mode) = side.mode
            {
                // Allowed by a mode that does not enforce: no rule stands behind it.
                let group = side.group.as_deref().unwrap_or("no group");
                rules.insert(format!("{}: {mode:?} mode ({group})", side.subject));
                monitor_only |= mode != bulkhead_policy::spec::Mode::Protect;
            }
        }
        match (*c, &mut run) {
            (Class::Ports(p, r), Some((rp, _, hi)))
                if *rp == p && *hi as u32 + 1 == r.lo as u32 =>
            {
                *hi = r.hi;
            }
            (Class::Ports(p, r), _) => {
                flush(&mut run, &mut services);
                run = Some((p, r.lo, r.hi));
            }
            (Class::Icmp(v6, t), _) => {
                flush(&mut run, &mut services);
                services.push(match t {
                    Some(t) => format!("{}/{t}", if v6 { "ICMPv6" } else { "ICMP" }),
                    None => format!("{}/other types", if v6 { "ICMPv6" } else { "ICMP" }),
                });
            }
        }
    }
    flush(&mut run, &mut services);
    (!services.is_empty()).then(|| Crossing {
        direction: if d.cde { "in" } else { "out" },
        src: s.name.clone(),
        src_workloads: s.count,
        dst: d.name.clone(),
        dst_workloads: d.count,
        services,
        rules: rules.into_iter().collect(),
        monitor_only,
    })
}

/// A set of connections every rule treats alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Ports(Protocol, PortRange),
    /// An ICMP type some rule names, or (None) every other type.
    Icmp(bool, Option<u8>),
}

impl Class {
    fn probe(&self) -> L4 {
        match *self {
            Class::Ports(protocol, r) => L4::Port {
                protocol,
                port: r.lo,
            },
            Class::Icmp(v6, t) => L4::Icmp {
                v6,
                icmp_type: t.unwrap_or(UNNAMED_ICMP),
                code: 0,
            },
        }
    }
}

/// An ICMP type no rule is likely to name (stands for "every other type"; if a rule
/// names it, it is a named class and this one is skipped).
const UNNAMED_ICMP: u8 = 254;

/// The equivalence classes of connections over every rule of the policy and every
/// named port of every workload.
fn port_classes(engine: &Engine) -> Vec<Class> {
    let mut cuts: [BTreeSet<u32>; 3] = Default::default();
    let mut icmp: [BTreeSet<u8>; 2] = Default::default();
    let protos = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
    let slot = |p: Protocol| protos.iter().position(|x| *x == p);
    for r in &engine.compiled().rules {
        for spec in &r.ports {
            let which: Vec<usize> = match spec.protocol {
                Some(p) => slot(p).into_iter().collect(),
                None => vec![0, 1, 2],
            };
            match &spec.port {
                PortSel::Range(range) => {
                    for i in which {
                        cuts[i].insert(range.lo as u32);
                        cuts[i].insert(range.hi as u32 + 1);
                    }
                }
                PortSel::Named(name) => {
                    for (_, w) in engine.workloads_unordered() {
                        for p in &w.ports {
                            if p.name.as_deref() == Some(name.as_str())
                                && let Some(i) = slot(p.protocol)
                            {
                                cuts[i].insert(p.port as u32);
                                cuts[i].insert(p.port as u32 + 1);
                            }
                        }
                    }
                }
                PortSel::Icmp { icmp_type, .. } => {
                    let v6 = spec.protocol == Some(Protocol::Icmpv6);
                    icmp[usize::from(v6)].insert(*icmp_type);
                }
                PortSel::Any => {}
            }
        }
    }
    let mut out = Vec::new();
    for (i, p) in protos.into_iter().enumerate() {
        let mut c = cuts[i].clone();
        c.insert(1);
        c.insert(65536);
        let c: Vec<u32> = c.into_iter().filter(|x| (1..=65536).contains(x)).collect();
        for w in c.windows(2) {
            out.push(Class::Ports(
                p,
                PortRange {
                    lo: w[0] as u16,
                    hi: (w[1] - 1) as u16,
                },
            ));
        }
    }
    for v6 in [false, true] {
        for t in &icmp[usize::from(v6)] {
            out.push(Class::Icmp(v6, Some(*t)));
        }
        if !icmp[usize::from(v6)].contains(&UNNAMED_ICMP) {
            out.push(Class::Icmp(v6, None));
        }
    }
    out
}

/// Does the CDE selector match a workload? Its namespace's labels count too (a
/// namespace labelled `compliance: pci` puts its workloads in scope); the workload's
/// own labels win where both have a key.
fn matches(
    engine: &Engine,
    cde: &Selector,
    namespace: &str,
    labels: impl Iterator<Item = (String, String)>,
) -> bool {
    let mut all: std::collections::BTreeMap<String, String> = engine
        .namespace_labels(namespace)
        .map(|l| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    all.extend(labels);
    cde.matches(&all)
}

/// Records whose two ends are on different sides of the boundary, aggregated.
fn observed<'r>(
    engine: &Engine,
    records: impl IntoIterator<Item = &'r FlowRecord>,
    cde: &Selector,
) -> (Vec<Observed>, u64) {
    let mut out: Vec<Observed> = Vec::new();
    let mut n = 0;
    for r in records {
        n += 1;
        if r.event == "end" {
            continue;
        }
        let side = |p: &bulkhead_record::Peer| match (&p.workload, &p.namespace) {
            (Some(_), Some(ns)) => matches(engine, cde, ns, p.labels.clone().into_iter()),
            _ => false,
        };
        let (s, d) = (side(&r.src), side(&r.dst));
        if s == d {
            continue;
        }
        let verdict = match (r.verdict, r.violation) {
            (Action::Allow, true) => "allow (monitor)",
            (Action::Allow, false) => "allow",
            (Action::Deny, _) => "deny",
            (Action::Log, _) => continue,
        };
        let (src, dst, service) = (r.src.display(), r.dst.display(), r.service());
        match out
            .iter_mut()
            .find(|o| o.src == src && o.dst == dst && o.service == service && o.verdict == verdict)
        {
            Some(o) => {
                o.count += 1;
                o.first = o.first.clone().min(r.time.clone());
                o.last = o.last.clone().max(r.time.clone());
            }
            None => out.push(Observed {
                direction: if d { "in" } else { "out" },
                src,
                dst,
                service,
                verdict: verdict.into(),
                count: 1,
                first: r.time.clone(),
                last: r.time.clone(),
            }),
        }
    }
    out.sort_by(|a, b| {
        (a.direction, &a.src, &a.dst, &a.service).cmp(&(b.direction, &b.src, &b.dst, &b.service))
    });
    (out, n)
}
