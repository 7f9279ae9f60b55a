//! From aggregated flows to a proposed policy in bulkhead's own YAML: one Group per
//! workload identity (namespace + identity labels, so every replica of a Deployment and
//! every run of a CI job is one group), one Policy per group whose rules name peer
//! groups (never addresses of workloads), ports merged, the application protocol when
//! the L7 proxy saw one, peers with the same ports and protocol in one rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use bulkhead_manifest::{Source, parse_sources};
use bulkhead_model::{Inventory, L4, Labels, Protocol, Workload, WorkloadKey};
use bulkhead_policy::l7::AppProtocol;
use bulkhead_policy::spec::{Mode, PolicySet};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::labels::{self, Term};
use crate::observe::{End, Observations};

/// How to propose.
#[derive(Clone, Debug)]
pub struct Options {
    /// The mode the proposed groups are written with (`Monitor` by default: the step
    /// after Discover; coverage and diffs are computed as if they were in Protect).
    pub mode: Mode,
    /// More outside addresses than this in one rule become `entity: world`.
    pub max_cidrs: usize,
    /// Name of the proposal in the YAML (`Source` name for diagnostics).
    pub source_name: String,
    /// One group for the same identity labels in every namespace (`namespaces: [eu, us]`),
    /// as people write policy for an application deployed in several namespaces. Shorter,
    /// and broader: a rule learned from `eu` traffic also allows `us` peers of the same
    /// groups (the diff shows what that adds). Off: one group per namespace.
    pub across_namespaces: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Monitor,
            max_cidrs: 16,
            source_name: "learned.yaml".into(),
            across_namespaces: false,
        }
    }
}

/// One proposed group.
#[derive(Clone, Debug, Serialize)]
pub struct ProposedGroup {
    pub name: String,
    /// The namespaces of its members (one, unless `Options::across_namespaces`).
    pub namespaces: Vec<String>,
    pub selector: String,
    /// The identity labels the group stands for.
    pub labels: BTreeMap<String, String>,
    /// Observed members, `ns/name`.
    pub workloads: Vec<String>,
}

/// The proposal: the YAML, what it says, and how it was derived.
#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    /// Apply-able YAML: Groups then Policies.
    pub yaml: String,
    pub groups: Vec<ProposedGroup>,
    /// Allow rules in all policies.
    pub rules: usize,
    /// Group pairs (and group/outside pairs) that talked: rules never exceed this.
    pub conversations: usize,
    /// Volatile label keys and why they were left out.
    pub volatile: BTreeMap<String, String>,
    /// Conversations with a node: allowed without a rule, so none is written.
    pub host_conversations: usize,
    /// The policy the YAML decodes to (as written, with `mode`).
    #[serde(skip)]
    pub policy: PolicySet,
    /// The inventory the proposal was made for: the given one plus observed workloads.
    #[serde(skip)]
    pub inventory: Inventory,
}

impl Proposal {
    /// The policy with every proposed group in Protect: what the rules alone allow.
    pub fn enforced(&self) -> PolicySet {
        let mut p = self.policy.clone();
        for g in &mut p.groups {
            g.mode = Mode::Protect;
        }
        p
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// The YAML written does not decode: a bug in the learner, reported, never hidden.
    #[error("the proposed policy does not decode (a bug in bulkhead learn): {0}")]
    Invalid(String),
}

/// The inventory to evaluate flows against: `base` plus every observed workload it does
/// not have (with the labels and addresses the records gave it).
pub fn inventory(obs: &Observations, base: &Inventory) -> Inventory {
    let mut inv = base.clone();
    let known: BTreeSet<WorkloadKey> = inv.workloads.iter().map(|w| w.key.clone()).collect();
    let mut used: BTreeSet<IpAddr> = inv
        .workloads
        .iter()
        .flat_map(|w| w.ips.iter().copied())
        .chain(inv.nodes.iter().flat_map(|n| n.addresses.iter().copied()))
        .collect();
    for s in &obs.workloads {
        if known.contains(&s.key) {
            continue;
        }
        let mut w = Workload::new(&s.key.namespace, &s.key.name, s.labels.clone());
        w.ips = s
            .ips
            .iter()
            .copied()
            .filter(|ip| used.insert(*ip))
            .collect();
        inv.workloads.push(w);
    }
    inv
}

/// Who a flow end is, in the merged inventory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Workload(usize),
    Host,
    World(IpAddr),
}

struct Resolver {
    /// Observed workload (index in `Observations::workloads`) -> inventory index.
    observed: Vec<usize>,
    by_ip: BTreeMap<IpAddr, usize>,
    nodes: BTreeSet<IpAddr>,
}

impl Resolver {
    fn new(inv: &Inventory, obs: &Observations) -> Self {
        let by_key: FxHashMap<&WorkloadKey, usize> = inv
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (&w.key, i))
            .collect();
        Resolver {
            // The merged inventory has every observed workload.
            observed: obs.workloads.iter().map(|w| by_key[&w.key]).collect(),
            by_ip: inv
                .workloads
                .iter()
                .enumerate()
                .flat_map(|(i, w)| w.ips.iter().map(move |ip| (*ip, i)))
                .collect(),
            nodes: inv
                .nodes
                .iter()
                .flat_map(|n| n.addresses.iter().copied())
                .collect(),
        }
    }

    fn who(&self, e: &End) -> Who {
        match e {
            End::Workload(i) => Who::Workload(self.observed[*i as usize]),
            End::Host(_) => Who::Host,
            End::Addr(ip) => match self.by_ip.get(ip) {
                Some(&w) => Who::Workload(w),
                None if self.nodes.contains(ip) => Who::Host,
                None => Who::World(*ip),
            },
        }
    }
}

/// The application protocol seen on one port of one conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppSeen {
    Unknown,
    One(AppProtocol),
    Mixed,
}

impl AppSeen {
    fn add(self, a: Option<AppProtocol>) -> AppSeen {
        match (self, a) {
            (s, None) => s,
            (AppSeen::Unknown, Some(a)) => AppSeen::One(a),
            (AppSeen::One(x), Some(a)) if x == a => self,
            _ => AppSeen::Mixed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PeerRef {
    Group(usize),
    World(IpAddr),
    AnyWorld,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    Ingress,
    Egress,
}

/// Propose a policy from what was observed. `base` is the inventory the user gave (may
/// be empty): it adds workloads that sent no flow, so selectors stay exact for them too,
/// and named container ports.
pub fn learn(obs: &Observations, base: &Inventory, opts: &Options) -> Result<Proposal, LearnError> {
    let inv = inventory(obs, base);
    let res = Resolver::new(&inv, obs);
    let volatile = labels::volatile_keys(inv.workloads.iter());

    // Identities: (namespace, identity labels), numbered in sorted order; the namespace
    // is left empty when groups span namespaces.
    let ident_of: Vec<(String, Labels)> = inv
        .workloads
        .iter()
        .map(|w| {
            let ns = if opts.across_namespaces {
                String::new()
            } else {
                w.key.namespace.clone()
            };
            (ns, labels::identity_labels(&w.labels, &volatile))
        })
        .collect();
    let mut identities: Vec<(String, Labels)> = ident_of.clone();
    identities.sort();
    identities.dedup();
    let id_index =
        |w: usize| -> usize { identities.binary_search(&ident_of[w]).unwrap_or_default() };
    let wid: Vec<usize> = (0..inv.workloads.len()).map(id_index).collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); identities.len()];
    for (w, &g) in wid.iter().enumerate() {
        members[g].push(w);
    }

    // Conversations, per (group, direction, peer): ports with the protocol seen on them.
    let mut convs: BTreeMap<(usize, Dir, PeerRef), BTreeMap<L4, AppSeen>> = BTreeMap::new();
    let mut grouped: BTreeSet<usize> = BTreeSet::new();
    let mut host_convs: BTreeSet<(Who, Who)> = BTreeSet::new();
    // Every workload a record names gets a group, also one only denied traffic touched:
    // left ungrouped it would be in the ungrouped mode (Discover) under the proposal.
    for k in obs.flows.keys() {
        for e in [&k.src, &k.dst] {
            if let Who::Workload(i) = res.who(e) {
                grouped.insert(wid[i]);
            }
        }
    }
    // Order does not matter here: everything below is collected into sorted maps.
    for k in obs
        .flows
        .iter()
        .filter(|(_, t)| t.allowed > 0)
        .map(|(k, _)| k)
    {
        let (s, d) = (res.who(&k.src), res.who(&k.dst));
        if let (Who::Workload(a), Who::Workload(b)) = (&s, &d)
            && a == b
        {
            continue; // a workload's traffic to itself is never policed
        }
        let app = k.l7.as_ref().map(|r| r.app);
        let peer = |w: &Who| match w {
            Who::Workload(i) => Some(PeerRef::Group(wid[*i])),
            Who::World(ip) => Some(PeerRef::World(*ip)),
            Who::Host => None,
        };
        let mut touch = |g: usize, dir: Dir, p: PeerRef| {
            let e = convs
                .entry((g, dir, p))
                .or_default()
                .entry(k.l4)
                .or_insert(AppSeen::Unknown);
            *e = e.add(app);
        };
        if matches!(s, Who::Host) || matches!(d, Who::Host) {
            if let Who::Workload(i) = &s {
                grouped.insert(wid[*i]);
            }
            if let Who::Workload(i) = &d {
                grouped.insert(wid[*i]);
            }
            host_convs.insert(match (&s, &d) {
                (Who::Workload(i), h) => (Who::Workload(wid[*i]), h.clone()),
                (h, Who::Workload(i)) => (h.clone(), Who::Workload(wid[*i])),
                (a, b) => (a.clone(), b.clone()),
            });
            continue;
        }
        if let Who::Workload(i) = &s {
            grouped.insert(wid[*i]);
            if let Some(p) = peer(&d) {
                touch(wid[*i], Dir::Egress, p);
            }
        }
        if let Who::Workload(i) = &d {
            grouped.insert(wid[*i]);
            if let Some(p) = peer(&s) {
                touch(wid[*i], Dir::Ingress, p);
            }
        }
    }

    // Selectors and names for the identities that talked.
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut groups: Vec<(usize, ProposedGroup)> = Vec::new();
    for &g in &grouped {
        let (ns, l) = &identities[g];
        let others: Vec<&Labels> = identities
            .iter()
            .enumerate()
            .filter(|(i, (ons, _))| *i != g && ons == ns)
            .map(|(_, (_, ol))| ol)
            .collect();
        let terms: Vec<Term> = labels::discriminate(l, &others);
        let base_name = labels::group_name(ns, &terms);
        let mut name = base_name.clone();
        let mut n = 2;
        while !taken.insert(name.clone()) {
            name = format!("{base_name}-{n}");
            n += 1;
        }
        names.insert(g, name.clone());
        let workloads = members[g]
            .iter()
            .map(|&w| inv.workloads[w].key.to_string())
            .collect();
        groups.push((
            g,
            ProposedGroup {
                name,
                namespaces: {
                    let mut n: Vec<String> = members[g]
                        .iter()
                        .map(|&w| inv.workloads[w].key.namespace.clone())
                        .collect();
                    n.sort();
                    n.dedup();
                    n
                },
                selector: labels::render(&terms),
                labels: l
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                workloads,
            },
        ));
    }
    groups.sort_by(|a, b| a.1.name.cmp(&b.1.name));

    // Named ports per identity: (protocol, port) -> the name every member gives it.
    let port_names = |g: usize| -> BTreeMap<(Protocol, u16), String> {
        let members: Vec<&Workload> = members[g].iter().map(|&w| &inv.workloads[w]).collect();
        let mut out = BTreeMap::new();
        if let Some(first) = members.first() {
            for p in &first.ports {
                let Some(name) = &p.name else { continue };
                let all = members.iter().all(|m| {
                    m.ports.iter().any(|q| {
                        q.name.as_ref() == Some(name)
                            && q.port == p.port
                            && q.protocol == p.protocol
                    }) && m.named_port(name, p.protocol) == Some(p.port)
                });
                if all {
                    out.insert((p.protocol, p.port), name.clone());
                }
            }
        }
        out
    };
    let named: BTreeMap<usize, BTreeMap<(Protocol, u16), String>> =
        grouped.iter().map(|&g| (g, port_names(g))).collect();

    // Rules per (group, direction): peers with identical ports and protocol share a rule.
    type RuleKey = (Option<AppProtocol>, Vec<String>);
    let mut rules: BTreeMap<(usize, Dir), BTreeMap<RuleKey, BTreeSet<PeerRef>>> = BTreeMap::new();
    type Ports = BTreeMap<L4, AppSeen>;
    let mut by_side: BTreeMap<(usize, Dir), Vec<(PeerRef, Ports)>> = BTreeMap::new();
    for ((g, dir, p), ports) in convs {
        by_side.entry((g, dir)).or_default().push((p, ports));
    }
    for ((g, dir), mut peers) in by_side {
        let worlds = peers
            .iter()
            .filter(|(p, _)| matches!(p, PeerRef::World(_)))
            .count();
        if worlds > opts.max_cidrs {
            let mut any: BTreeMap<L4, AppSeen> = BTreeMap::new();
            peers.retain(|(p, ports)| {
                if matches!(p, PeerRef::World(_)) {
                    for (l4, a) in ports {
                        let e = any.entry(*l4).or_insert(AppSeen::Unknown);
                        *e = match *a {
                            AppSeen::One(x) => e.add(Some(x)),
                            AppSeen::Mixed => AppSeen::Mixed,
                            AppSeen::Unknown => *e,
                        };
                    }
                    false
                } else {
                    true
                }
            });
            peers.push((PeerRef::AnyWorld, any));
        }
        for (p, ports) in peers {
            // The destination's named ports: the group itself for ingress, the peer for egress.
            let dst_names = match (dir, &p) {
                (Dir::Ingress, _) => named.get(&g),
                (Dir::Egress, PeerRef::Group(d)) => named.get(d),
                _ => None,
            };
            let mut by_app: BTreeMap<Option<AppProtocol>, Vec<L4>> = BTreeMap::new();
            for (l4, a) in ports {
                let app = match a {
                    AppSeen::One(x) => Some(x),
                    _ => None,
                };
                by_app.entry(app).or_default().push(l4);
            }
            for (app, l4s) in by_app {
                let key = (app, render_ports(&l4s, dst_names));
                rules
                    .entry((g, dir))
                    .or_default()
                    .entry(key)
                    .or_default()
                    .insert(p.clone());
            }
        }
    }

    // YAML.
    let mut y = String::new();
    let mut rule_count = 0;
    for (_, g) in &groups {
        let _ = write!(
            y,
            "---\napiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {{name: {}}}\nspec:\n  selector: {}\n  namespaces: [{}]\n  mode: {}\n",
            g.name,
            quote(&g.selector),
            g.namespaces.join(", "),
            opts.mode
        );
    }
    for (gi, g) in &groups {
        let _ = write!(
            y,
            "---\napiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {{name: {}}}\nspec:\n  appliesTo: [{{group: {}}}]\n",
            g.name, g.name
        );
        for (dir, word, peers_word) in [
            (Dir::Ingress, "ingress", "from"),
            (Dir::Egress, "egress", "to"),
        ] {
            let Some(rs) = rules.get(&(*gi, dir)) else {
                continue;
            };
            let mut lines: Vec<String> = rs
                .iter()
                .map(|((app, ports), peers)| {
                    let peers: Vec<String> = peers
                        .iter()
                        .map(|p| match p {
                            PeerRef::Group(d) => format!("group: {}", names[d]),
                            PeerRef::World(ip) => {
                                let bits = if ip.is_ipv4() { 32 } else { 128 };
                                format!("cidr: \"{ip}/{bits}\"")
                            }
                            PeerRef::AnyWorld => "entity: world".to_string(),
                        })
                        .collect();
                    // Block style, one peer a line: reads as a list of who may talk.
                    let mut rule = format!("    - action: Allow\n      {peers_word}:\n");
                    for p in &peers {
                        let _ = writeln!(rule, "        - {p}");
                    }
                    let _ = writeln!(rule, "      ports: [{}]", ports.join(", "));
                    if let Some(a) = app {
                        let _ = writeln!(rule, "      app: {a}");
                    }
                    rule
                })
                .collect();
            lines.sort();
            rule_count += lines.len();
            let _ = writeln!(y, "  {word}:");
            for l in lines {
                y.push_str(&l);
            }
        }
    }

    let policy = parse_sources(&[Source {
        name: opts.source_name.clone(),
        text: y.clone(),
    }])
    .map_err(|d| LearnError::Invalid(d.to_string()))?
    .policy;
    let conversations = rules
        .values()
        .map(|r| r.values().map(BTreeSet::len).sum::<usize>())
        .sum();
    Ok(Proposal {
        yaml: y,
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        rules: rule_count,
        conversations,
        volatile,
        host_conversations: host_convs.len(),
        policy,
        inventory: inv,
    })
}

/// `'...'` with single quotes doubled: safe for any selector text.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Ports in shorthand, sorted: named where the destination names the port, ranges for
/// three or more consecutive ports, `ICMP/8/0` for ICMP.
fn render_ports(l4s: &[L4], names: Option<&BTreeMap<(Protocol, u16), String>>) -> Vec<String> {
    let mut by_proto: BTreeMap<Protocol, Vec<u16>> = BTreeMap::new();
    let mut out: Vec<String> = Vec::new();
    let mut named: Vec<String> = Vec::new();
    for l4 in l4s {
        match *l4 {
            L4::Port { protocol, port } => match names.and_then(|n| n.get(&(protocol, port))) {
                Some(name) => named.push(format!("{protocol}/{name}")),
                None => by_proto.entry(protocol).or_default().push(port),
            },
            L4::Icmp { .. } => out.push(l4.to_string()),
        }
    }
    let mut numbered = Vec::new();
    for (proto, mut ports) in by_proto {
        ports.sort_unstable();
        ports.dedup();
        let mut i = 0;
        while i < ports.len() {
            let mut j = i;
            while j + 1 < ports.len() && ports[j + 1] == ports[j] + 1 {
                j += 1;
            }
            if j - i >= 2 {
                numbered.push(format!("{proto}/{}-{}", ports[i], ports[j]));
            } else {
                for p in &ports[i..=j] {
                    numbered.push(format!("{proto}/{p}"));
                }
            }
            i = j + 1;
        }
    }
    named.sort();
    named.dedup();
    out.sort();
    out.dedup();
    numbered.into_iter().chain(named).chain(out).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_merge_into_ranges_and_names() {
        let l4s: Vec<L4> = [
            "TCP/80", "TCP/81", "TCP/82", "TCP/443", "UDP/53", "TCP/8080", "ICMP/8/0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let mut names = BTreeMap::new();
        names.insert((Protocol::Tcp, 8080), "http".to_string());
        assert_eq!(
            render_ports(&l4s, Some(&names)),
            ["TCP/80-82", "TCP/443", "UDP/53", "TCP/http", "ICMP/8/0"]
        );
    }

    #[test]
    fn app_seen_keeps_only_an_agreed_protocol() {
        let s = AppSeen::Unknown.add(None).add(Some(AppProtocol::Http));
        assert_eq!(s, AppSeen::One(AppProtocol::Http));
        assert_eq!(s.add(None), s);
        assert_eq!(s.add(Some(AppProtocol::Redis)), AppSeen::Mixed);
    }
}
