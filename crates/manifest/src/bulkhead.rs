//! bulkhead's own kinds (`bulkhead.io/v1`): Group, Policy and Settings. Fully strict:
//! these are our documents, so every unknown field is a mistake worth reporting.

use bulkhead_policy::l7::AppProtocol;
use bulkhead_policy::spec::{
    Action, DEFAULT_PRIORITY, DiscoverSettings, Entity, Group, Inspect, Mode, NamePattern, Peer,
    PeerSpec, Policy, Rule, Settings, WorkloadSelector,
};

use crate::decode::{Cx, Fields, Obj, P};
use crate::k8s::{self, MetaRule, Scope};
use crate::l7;
use crate::names;
use crate::netpol;
use crate::port;
use crate::selector;
use crate::yaml::{Node, Pos};

pub const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const META: &[&str] = &["name", "namespace", "labels", "annotations"];

const MODES: &[(&str, Mode)] = &[
    ("Discover", Mode::Discover),
    ("Monitor", Mode::Monitor),
    ("Protect", Mode::Protect),
];

const ACTIONS: &[(&str, Action)] = &[
    ("Allow", Action::Allow),
    ("Deny", Action::Deny),
    ("Pass", Action::Pass),
    ("Log", Action::Log),
];

const ENTITIES: &[(&str, Entity)] = &[
    ("world", Entity::World),
    ("host", Entity::Host),
    ("cluster", Entity::Cluster),
];

const WORKLOAD_KEYS: &[&str] = &["selector", "namespaceSelector", "namespaces"];
const PEER_KEYS: &[&str] = &[
    "group",
    "selector",
    "namespaceSelector",
    "namespaces",
    "cidr",
    "except",
    "dns",
    "entity",
];

/// bulkhead kinds allow name, namespace (Policy only), labels and annotations.
pub const fn meta_rule(kind: &'static str, scope: Scope) -> MetaRule {
    MetaRule {
        kind,
        fields: META,
        scope,
        name: names::dns1123_subdomain,
    }
}

/// `spec` of a bulkhead kind, optional: absent means every default.
pub fn spec<'n>(cx: &mut Cx, doc: &Obj<'n>, root: P, fields: &[&str]) -> Option<Option<Obj<'n>>> {
    match doc.get("spec") {
        None => Some(None),
        Some(s) => cx.obj(s, root.f("spec"), Fields::Strict(fields)).map(Some),
    }
}

pub fn group(cx: &mut Cx, doc: &Obj, root: P) -> Option<Group> {
    let m = k8s::meta(cx, doc, root, meta_rule("Group", Scope::ClusterStrict));
    let at = root.f("spec");
    let spec = spec(
        cx,
        doc,
        root,
        &[
            "selector",
            "namespaceSelector",
            "namespaces",
            "mode",
            "sensors",
            "inspect",
        ],
    )?;
    let inspect = match spec.as_ref().and_then(|s| s.get("inspect")) {
        Some(n) => inspect(cx, n, at.f("inspect")),
        None => Some(Inspect::default()),
    };
    let (members, mode, sensors) = match spec {
        None => (Some(unwritten()), Some(Mode::default()), Some(Vec::new())),
        Some(s) => (
            workloads(cx, &s, at),
            match s.get("mode") {
                Some(n) => cx.one_of(n, at.f("mode"), "mode", MODES, false),
                None => Some(Mode::default()),
            },
            match s.get("sensors") {
                Some(n) => cx.seq_of(n, at.f("sensors"), |cx, n, at| {
                    cx.str(n, at)
                        .filter(|s| cx.check(n, at, names::dns1123_label(s)))
                }),
                None => Some(Vec::new()),
            },
        ),
    };
    Some(Group {
        name: m?.name,
        members: members?,
        mode: mode?,
        sensors: sensors?,
        inspect: inspect?,
        origin: cx.origin(doc.pos()),
    })
}

/// `inspect: [Ingress, Egress]`: one or both directions (naming one twice changes nothing).
fn inspect(cx: &mut Cx, n: &Node, at: P) -> Option<Inspect> {
    const DIRECTIONS: &[(&str, bool)] = &[("Ingress", false), ("Egress", true)];
    let dirs = cx.seq_of(n, at, |cx, n, at| {
        cx.one_of(n, at, "direction", DIRECTIONS, true)
    })?;
    if dirs.is_empty() {
        cx.err(
            n.pos,
            at,
            "expected Ingress, Egress or both (leave `sensors` out for no inspection)",
        );
        return None;
    }
    Some(Inspect {
        ingress: dirs.contains(&false),
        egress: dirs.contains(&true),
    })
}

/// A Group without `spec`: nothing written, every default left to the engine.
fn unwritten() -> WorkloadSelector {
    WorkloadSelector {
        selector: None,
        namespace_selector: None,
        namespaces: Vec::new(),
    }
}

/// `selector` / `namespaceSelector` / `namespaces` of a mapping (Group spec or peer).
pub fn workloads(cx: &mut Cx, o: &Obj, at: P) -> Option<WorkloadSelector> {
    let sel = |cx: &mut Cx, key: &str| match o.get(key) {
        None => Some(None),
        Some(n) => selector::any(cx, n, at.f(key)).map(Some),
    };
    let selector = sel(cx, "selector");
    let namespace_selector = sel(cx, "namespaceSelector");
    let at_ns = at.f("namespaces");
    let namespaces = match o.get("namespaces") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at_ns, |cx, n, at| {
            let s = cx.str(n, at)?;
            cx.check(n, at, names::dns1123_label(&s)).then_some(s)
        }),
    };
    if let (Some(_), Some(n)) = (o.get("namespaceSelector"), o.get("namespaces")) {
        cx.err(
            n.pos,
            at_ns,
            "write `namespaces` or `namespaceSelector`, not both",
        );
        return None;
    }
    Some(WorkloadSelector {
        selector: selector?,
        namespace_selector: namespace_selector?,
        namespaces: namespaces?,
    })
}

pub fn settings(cx: &mut Cx, doc: &Obj, root: P) -> Option<Settings> {
    let m = k8s::meta(cx, doc, root, meta_rule("Settings", Scope::ClusterStrict));
    let spec = spec(cx, doc, root, &["ungroupedMode", "discover"])?;
    let at = root.f("spec");
    let mode = match spec.as_ref().and_then(|s| s.get("ungroupedMode")) {
        Some(n) => cx.one_of(n, at.f("ungroupedMode"), "mode", MODES, false),
        None => Some(Mode::default()),
    };
    let discover = match spec.as_ref().and_then(|s| s.get("discover")) {
        None => Some(DiscoverSettings::default()),
        Some(n) => {
            let at = at.f("discover");
            cx.obj(n, at, Fields::Strict(&["detectProtocols"]))
                .and_then(|o| match o.get("detectProtocols") {
                    None => Some(DiscoverSettings::default()),
                    Some(b) => cx
                        .bool(b, at.f("detectProtocols"))
                        .map(|detect_protocols| DiscoverSettings { detect_protocols }),
                })
        }
    };
    m?;
    Some(Settings {
        ungrouped_mode: mode?,
        discover: discover?,
        origin: Some(cx.origin(doc.pos())),
    })
}

pub fn policy(cx: &mut Cx, doc: &Obj, root: P) -> Option<Policy> {
    let m = k8s::meta(cx, doc, root, meta_rule("Policy", Scope::Optional));
    let at = root.f("spec");
    let spec = spec(
        cx,
        doc,
        root,
        &["priority", "appliesTo", "ingress", "egress"],
    )?;
    let get = |k: &str| spec.as_ref().and_then(|s| s.get(k));
    let priority = match get("priority") {
        Some(n) => cx
            .int(n, at.f("priority"), i32::MIN.into(), i32::MAX.into())
            .map(|p| p as i32),
        None => Some(DEFAULT_PRIORITY),
    };
    let applies_to = match get("appliesTo") {
        None => Some(Vec::new()),
        Some(n) => cx.one_or_seq_of(n, at.f("appliesTo"), applies_to),
    };
    let ingress = match get("ingress") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("ingress"), |cx, n, at| {
            rule(cx, n, at, Direction::Ingress)
        }),
    };
    let egress = match get("egress") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("egress"), |cx, n, at| {
            rule(cx, n, at, Direction::Egress)
        }),
    };
    let m = m?;
    Some(Policy {
        name: m.name,
        namespace: m.namespace,
        priority: priority?,
        applies_to: applies_to?,
        ingress: ingress?,
        egress: egress?,
        origin: cx.origin(doc.pos()),
    })
}

/// `appliesTo` entries select workloads: a group or a workload selector.
fn applies_to(cx: &mut Cx, n: &Node, at: P) -> Option<PeerSpec> {
    let spec = peer_spec(cx, n, at, "appliesTo")?;
    match spec {
        PeerSpec::Group(_) | PeerSpec::Workloads(_) => Some(spec),
        _ => {
            cx.err(
                n.pos,
                at,
                "appliesTo selects workloads: use group, or selector/namespaceSelector/namespaces",
            );
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

fn rule(cx: &mut Cx, n: &Node, at: P, dir: Direction) -> Option<Rule> {
    let (dir_name, peers_key, other) = match dir {
        Direction::Ingress => ("ingress", "from", "to"),
        Direction::Egress => ("egress", "to", "from"),
    };
    let mut known = vec!["action", "name", peers_key, "ports", "app"];
    known.extend_from_slice(l7::KEYS);
    let (o, wrong_way) = cx.rule_obj(n, at, &known, (dir_name, peers_key, other))?;
    let action = cx
        .required(&o, "action", at, " (Allow, Deny, Pass or Log)")
        .and_then(|v| cx.one_of(v, at.f("action"), "action", ACTIONS, false));
    let name = match o.get("name") {
        Some(v) => cx.nonempty_str(v, at.f("name")).map(Some),
        None => Some(None),
    };
    let peers = match o.get(peers_key) {
        None => Some(Vec::new()),
        Some(v) => cx.seq_of(v, at.f(peers_key), |cx, n, at| {
            let spec = peer_spec(cx, n, at, peers_key)?;
            if dir == Direction::Ingress && matches!(spec, PeerSpec::Dns(_)) {
                let pos = Obj::of(n)
                    .and_then(|o| o.entry("dns"))
                    .map_or(n.pos, |e| e.key_pos);
                cx.err(
                    pos,
                    at.f("dns"),
                    "dns peers name destinations: use them in egress `to`, not in `from`",
                );
                return None;
            }
            Some(Peer {
                spec,
                origin: cx.origin(n.pos),
            })
        }),
    };
    let ports = match o.get("ports") {
        None => Some(Vec::new()),
        Some(v) => cx.seq_of(v, at.f("ports"), port::bulkhead),
    };
    let names: Vec<&str> = AppProtocol::ALL.iter().map(|a| a.as_str()).collect();
    let (app, app_ok) = match o.get("app") {
        None => (None, true),
        Some(v) => {
            let a = cx.parsed(v, at.f("app"), "application protocol", &names, |s| {
                s.parse::<AppProtocol>()
            });
            (a, a.is_some())
        }
    };
    let l7 = l7::conditions(cx, &o, at, app, app_ok);
    if wrong_way || !app_ok {
        return None;
    }
    Some(Rule {
        action: action?,
        name: name?,
        peers: peers?,
        ports: ports?,
        app,
        l7: l7?,
        origin: cx.origin(n.pos),
    })
}

/// A PEER mapping: exactly one of group; selector/namespaceSelector/namespaces;
/// cidr (+except); dns; entity.
fn peer_spec(cx: &mut Cx, n: &Node, at: P, list: &str) -> Option<PeerSpec> {
    let o = cx.obj(n, at, Fields::Strict(PEER_KEYS))?;
    if o.entries.is_empty() {
        cx.err(n.pos, at, format!("an empty peer; write group, selector, namespaceSelector, namespaces, cidr, dns or entity (or leave out `{list}` to match any peer)"));
        return None;
    }
    let kinds: Vec<(&str, Pos)> = [
        ("group", &["group"][..]),
        ("selector/namespaceSelector/namespaces", WORKLOAD_KEYS),
        ("cidr", &["cidr", "except"][..]),
        ("dns", &["dns"][..]),
        ("entity", &["entity"][..]),
    ]
    .into_iter()
    .filter_map(|(kind, keys)| {
        o.entries
            .iter()
            .find(|e| keys.contains(&e.key.as_str()))
            .map(|e| (kind, e.key_pos))
    })
    .collect();
    match kinds.as_slice() {
        [] => None, // only unknown fields, already reported
        [(kind, _)] => match *kind {
            "group" => {
                let v = o.raw("group")?;
                let s = cx.str(v, at.f("group"))?;
                cx.check(v, at.f("group"), names::dns1123_subdomain(&s))
                    .then_some(PeerSpec::Group(s))
            }
            "cidr" => {
                if !o.has("cidr") {
                    let e = o.entry("except")?;
                    cx.err(e.key_pos, at.f("except"), "`except` needs a `cidr`");
                    return None;
                }
                netpol::cidr_block(cx, &o, at).map(PeerSpec::Cidr)
            }
            "dns" => {
                let v = o.raw("dns")?;
                let s = cx.str(v, at.f("dns"))?;
                cx.check(v, at.f("dns"), names::name_pattern(&s))
                    .then_some(PeerSpec::Dns(NamePattern(s)))
            }
            "entity" => {
                let v = o.raw("entity")?;
                cx.one_of(v, at.f("entity"), "entity", ENTITIES, false)
                    .map(PeerSpec::Entity)
            }
            _ => workloads(cx, &o, at).map(PeerSpec::Workloads),
        },
        [(first, _), (second, pos), ..] => {
            cx.err(
                *pos,
                at,
                format!("a peer has exactly one of group, selector/namespaceSelector/namespaces, cidr, dns or entity; this one has {first} and {second}"),
            );
            None
        }
    }
}
