//! `kind: Lab` (`bulkhead.io/v1`, strict): the test topology `bulkhead lab up` builds:
//! nodes, address pools, workloads declared without Pod YAML, and what runs in each
//! workload. Only the lab reads it; its workloads also join the inventory (see
//! `assemble` in lib.rs), so the analyzer and the lab see the same workloads.

use bulkhead_model::{ContainerPort, Labels, Protocol, Workload};
use bulkhead_policy::spec::{LabPools, LabRun, LabRunRule, LabSpec, LabWorkload};

use crate::bulkhead::{meta_rule, spec};
use crate::decode::{Cx, Fields, Obj, P, hint};
use crate::k8s::{self, MetaRule, Scope};
use crate::names;
use crate::selector;
use crate::yaml::{Node, Value};

const SPEC: &[&str] = &["nodes", "pools", "workloads", "run"];
const WORKLOAD: &[&str] = &["name", "namespace", "labels", "ports", "node", "run"];
const PORT: &[&str] = &["name", "port", "protocol"];
const RUN_RULE: &[&str] = &["selector", "namespaces", "run"];
const RUN_KINDS: &[&str] = &["command", "container"];
const CONTAINER: &[&str] = &["image", "args"];

const PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

/// The runs written as a single word (`run: http`).
const WORDS: &[(&str, bool)] = &[("builtin", false), ("http", true)];

/// The one image the lab can run: its root file system is built from Debian's
/// `busybox-static`, there is no registry to pull anything else from.
pub const IMAGE: &str = "busybox";

/// Lab names become part of network namespace and container names
/// (`bh-<lab>.pod.<namespace>.<name>`): a short DNS label, so that the `.` after it
/// always ends it and no lab's prefix is another lab's.
fn lab_name(s: &str) -> Result<(), String> {
    names::dns1123_label(s)?;
    if s.len() > 32 {
        return Err(format!("lab name {s:?} must be no more than 32 characters"));
    }
    Ok(())
}

pub fn lab(cx: &mut Cx, doc: &Obj, root: P) -> Option<LabSpec> {
    let rule = MetaRule {
        name: lab_name,
        ..meta_rule("Lab", Scope::ClusterStrict)
    };
    let m = k8s::meta(cx, doc, root, rule);
    let at = root.f("spec");
    let s = spec(cx, doc, root, SPEC)?;
    let get = |k: &str| s.as_ref().and_then(|s| s.get(k));
    let nodes = match get("nodes") {
        None => Some(Vec::new()),
        Some(n) => nodes(cx, n, at.f("nodes")),
    };
    let pools = match get("pools") {
        None => Some(LabPools::default()),
        Some(n) => pools(cx, n, at.f("pools")),
    };
    let known_nodes = nodes.clone().unwrap_or_default();
    let workloads = match get("workloads") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("workloads"), |cx, n, at| {
            workload(cx, n, at, &known_nodes)
        }),
    };
    let run = match get("run") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("run"), run_rule),
    };
    Some(LabSpec {
        name: m?.name,
        nodes: nodes?,
        pools: pools?,
        workloads: workloads?,
        run: run?,
        origin: cx.origin(doc.pos()),
    })
}

fn nodes(cx: &mut Cx, n: &Node, at: P) -> Option<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in cx.list(n, at)?.iter().enumerate() {
        let at_i = at.i(i);
        let Some(name) = cx.str(item, at_i) else {
            ok = false;
            continue;
        };
        if !cx.check(item, at_i, names::dns1123_subdomain(&name)) {
            ok = false;
        } else if seen.contains(&name) {
            cx.err(item.pos, at_i, format!("node {name:?} is listed twice"));
            ok = false;
        } else {
            seen.push(name);
        }
    }
    ok.then_some(seen)
}

fn pools(cx: &mut Cx, n: &Node, at: P) -> Option<LabPools> {
    let o = cx.obj(n, at, Fields::Strict(&["ipv4", "ipv6"]))?;
    // Each node gets a /24 (IPv4) and a /64 (IPv6) of its pool.
    let pool = |cx: &mut Cx, key: &str, v6: bool, max: u8| -> Option<Option<ipnet::IpNet>> {
        let Some(v) = o.get(key) else {
            return Some(None);
        };
        let at_k = at.f(key);
        let s = cx.str(v, at_k)?;
        let net = match names::cidr(&s) {
            Ok(net) => net,
            Err(msg) => {
                cx.err(v.pos, at_k, msg);
                return None;
            }
        };
        let family = if v6 { "IPv6" } else { "IPv4" };
        if net.addr().is_ipv6() != v6 {
            cx.err(v.pos, at_k, format!("{s:?} is not an {family} CIDR"));
            return None;
        }
        if net.prefix_len() > max {
            let msg = format!(
                "{s:?} is too small: each node takes a /{max} of the pool; write a /{max} or larger"
            );
            cx.err(v.pos, at_k, msg);
            return None;
        }
        Some(Some(net))
    };
    let ipv4 = pool(cx, "ipv4", false, 24);
    let ipv6 = pool(cx, "ipv6", true, 64);
    Some(LabPools {
        ipv4: ipv4?.and_then(|n| match n {
            ipnet::IpNet::V4(n) => Some(n),
            ipnet::IpNet::V6(_) => None,
        }),
        ipv6: ipv6?.and_then(|n| match n {
            ipnet::IpNet::V6(n) => Some(n),
            ipnet::IpNet::V4(_) => None,
        }),
    })
}

fn workload(cx: &mut Cx, n: &Node, at: P, nodes: &[String]) -> Option<LabWorkload> {
    let o = cx.obj(n, at, Fields::Strict(WORKLOAD))?;
    let name = cx.required(&o, "name", at, "").and_then(|v| {
        let s = cx.str(v, at.f("name"))?;
        cx.check(v, at.f("name"), names::dns1123_subdomain(&s))
            .then_some(s)
    });
    let namespace = match o.get("namespace") {
        None => Some("default".to_string()),
        Some(v) => cx
            .str(v, at.f("namespace"))
            .filter(|s| cx.check(v, at.f("namespace"), names::dns1123_label(s))),
    };
    let labels = match o.get("labels") {
        None => Some(Labels::new()),
        Some(v) => selector::labels(cx, v, at.f("labels")),
    };
    let ports = match o.get("ports") {
        None => Some(Vec::new()),
        Some(v) => cx.seq_of(v, at.f("ports"), port),
    };
    let node = match o.get("node") {
        None => Some(None),
        Some(v) => node_ref(cx, v, at.f("node"), nodes).map(Some),
    };
    let run = match o.get("run") {
        None => Some(None),
        Some(v) => run(cx, v, at.f("run")).map(Some),
    };
    let mut w = Workload::new(&namespace?, &name?, labels?);
    w.ports = ports?;
    w.node = node?;
    Some(LabWorkload {
        workload: w,
        run: run?,
        origin: cx.origin(n.pos),
    })
}

/// A node name; when the lab lists its nodes, one of them.
fn node_ref(cx: &mut Cx, v: &Node, at: P, nodes: &[String]) -> Option<String> {
    let s = cx.str(v, at)?;
    if !cx.check(v, at, names::dns1123_subdomain(&s)) {
        return None;
    }
    if !nodes.is_empty() && !nodes.contains(&s) {
        let known: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let msg = format!(
            "unknown node {s:?} (spec.nodes lists the lab's nodes){}",
            hint(&s, &known)
        );
        cx.err(v.pos, at, msg);
        return None;
    }
    Some(s)
}

fn port(cx: &mut Cx, n: &Node, at: P) -> Option<ContainerPort> {
    let o = cx.obj(n, at, Fields::Strict(PORT))?;
    let name = match o.get("name") {
        None => Some(None),
        Some(v) => cx
            .str(v, at.f("name"))
            .filter(|s| cx.check(v, at.f("name"), names::port_name(s)))
            .map(Some),
    };
    let number = cx
        .required(&o, "port", at, "")
        .and_then(|v| cx.int(v, at.f("port"), 1, 65535));
    let protocol = match o.get("protocol") {
        None => Some(Protocol::Tcp),
        Some(v) => cx.one_of(v, at.f("protocol"), "protocol", PROTOCOLS, false),
    };
    Some(ContainerPort {
        name: name?,
        port: u16::try_from(number?).ok()?,
        protocol: protocol?,
    })
}

fn run_rule(cx: &mut Cx, n: &Node, at: P) -> Option<LabRunRule> {
    let o = cx.obj(n, at, Fields::Strict(RUN_RULE))?;
    let sel = cx
        .required(&o, "selector", at, " (such as app == \"redis\")")
        .and_then(|v| selector::any(cx, v, at.f("selector")));
    let namespaces = match o.get("namespaces") {
        None => Some(Vec::new()),
        Some(v) => cx.seq_of(v, at.f("namespaces"), |cx, n, at| {
            let s = cx.str(n, at)?;
            cx.check(n, at, names::dns1123_label(&s)).then_some(s)
        }),
    };
    let what = cx
        .required(
            &o,
            "run",
            at,
            " (builtin, http, {command: [...]} or {container: {...}})",
        )
        .and_then(|v| run(cx, v, at.f("run")));
    Some(LabRunRule {
        selector: sel?,
        namespaces: namespaces?,
        run: what?,
        origin: cx.origin(n.pos),
    })
}

/// `builtin` | `http` | `{command: [PROGRAM, ARG...]}` | `{container: {image, args}}`.
fn run(cx: &mut Cx, n: &Node, at: P) -> Option<LabRun> {
    if let Value::Scalar(_) = n.value {
        let http = cx.one_of(n, at, "run", WORDS, false)?;
        return Some(if http { LabRun::Http } else { LabRun::Builtin });
    }
    let o = cx.obj(n, at, Fields::Strict(RUN_KINDS))?;
    match (o.get("command"), o.get("container")) {
        (Some(c), None) => {
            let at_c = at.f("command");
            let args = cx.str_list(c, at_c)?;
            match args.first() {
                Some(p) if !p.is_empty() => Some(LabRun::Command(args)),
                _ => {
                    cx.err(c.pos, at_c, "must name a program: [PROGRAM, ARG...]");
                    None
                }
            }
        }
        (None, Some(c)) => container(cx, c, at.f("container")),
        (Some(_), Some(c)) => {
            cx.err(c.pos, at, "write `command` or `container`, not both");
            None
        }
        (None, None) => {
            // Unknown keys were reported above; an empty mapping still needs a word.
            if o.entries.is_empty() {
                cx.err(
                    n.pos,
                    at,
                    "expected builtin, http, {command: [...]} or {container: {image: busybox, args: [...]}}",
                );
            }
            None
        }
    }
}

fn container(cx: &mut Cx, n: &Node, at: P) -> Option<LabRun> {
    let o = cx.obj(n, at, Fields::Strict(CONTAINER))?;
    let image = cx.required(&o, "image", at, " (busybox)").and_then(|v| {
        let s = cx.str(v, at.f("image"))?;
        if s != IMAGE {
            let msg = format!(
                "unsupported image {s:?}: lab containers run on a busybox root file system \
                     built from Debian's busybox-static (no registry); write image: {IMAGE}"
            );
            cx.err(v.pos, at.f("image"), msg);
            return None;
        }
        Some(s)
    });
    let args = match o.get("args") {
        None => Some(Vec::new()),
        Some(v) => cx.str_list(v, at.f("args")),
    };
    Some(LabRun::Container {
        image: image?,
        args: args?,
    })
}

#[cfg(test)]
mod tests {
    use bulkhead_model::Protocol;
    use bulkhead_policy::spec::LabRun;

    use crate::{Source, parse_sources};

    fn parse(text: &str) -> Result<bulkhead_policy::spec::Bundle, String> {
        parse_sources(&[Source {
            name: "lab.yaml".into(),
            text: text.into(),
        }])
        .map_err(|d| d.to_string())
    }

    const LAB: &str = r#"apiVersion: bulkhead.io/v1
kind: Lab
metadata: {name: demo}
spec:
  nodes: [node-1, node-2]
  pools: {ipv4: 10.250.0.0/16, ipv6: "fd00:250::/48"}
  workloads:
    - {name: redis, namespace: platform, labels: {app: redis}, node: node-2,
       ports: [{name: redis, port: 6379}, {port: 53, protocol: udp}],
       run: {command: [redis-server, --port, "6379"]}}
    - {name: web, labels: {app: web}, run: http}
  run:
    - {selector: app == "api", run: {container: {image: busybox, args: [httpd, -f, -p, "80"]}}}
    - {selector: {matchLabels: {app: db}}, namespaces: [data], run: builtin}
"#;

    #[test]
    fn a_full_lab_decodes_and_its_workloads_join_the_inventory() {
        let b = parse(LAB).unwrap();
        let lab = b.lab.unwrap();
        assert_eq!(lab.name, "demo");
        assert_eq!(lab.nodes, ["node-1", "node-2"]);
        assert_eq!(lab.pools.ipv4.unwrap().to_string(), "10.250.0.0/16");
        assert_eq!(lab.pools.ipv6.unwrap().to_string(), "fd00:250::/48");
        let redis = &lab.workloads[0];
        assert_eq!(redis.workload.key.to_string(), "platform/redis");
        assert_eq!(redis.workload.node.as_deref(), Some("node-2"));
        assert_eq!(redis.workload.ports[1].protocol, Protocol::Udp);
        assert_eq!(redis.workload.ports[0].name.as_deref(), Some("redis"));
        assert!(matches!(&redis.run, Some(LabRun::Command(c)) if c[0] == "redis-server"));
        assert_eq!(lab.workloads[1].workload.key.to_string(), "default/web");
        assert_eq!(lab.workloads[1].run, Some(LabRun::Http));
        assert!(matches!(&lab.run[0].run, LabRun::Container { args, .. } if args[0] == "httpd"));
        assert_eq!(lab.run[1].namespaces, ["data"]);
        let keys: Vec<String> = b
            .inventory
            .workloads
            .iter()
            .map(|w| w.key.to_string())
            .collect();
        assert_eq!(keys, ["platform/redis", "default/web"]);
    }

    #[test]
    fn a_lab_alone_with_no_spec_is_fine() {
        let b = parse("apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: x}\n").unwrap();
        assert!(b.lab.unwrap().workloads.is_empty());
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("expected a diagnostic")
    }

    #[test]
    fn mistakes_get_one_precise_line_each() {
        let cases = [
            (
                "  workloads: [{name: a, lables: {app: a}}]\n",
                "lab.yaml:5:25: spec.workloads[0].lables: unknown field \"lables\"; did you mean \"labels\"?",
            ),
            (
                "  nodes: [node-1, node-2]\n  workloads: [{name: a, node: node-3}]\n",
                "lab.yaml:6:31: spec.workloads[0].node: unknown node \"node-3\" (spec.nodes lists the lab's nodes); did you mean \"node-1\"?",
            ),
            (
                "  workloads: [{name: a, run: htpp}]\n",
                "lab.yaml:5:30: spec.workloads[0].run: unknown run \"htpp\"; did you mean \"http\"?",
            ),
            (
                "  workloads: [{name: a, run: {comand: [sh]}}]\n",
                "lab.yaml:5:31: spec.workloads[0].run.comand: unknown field \"comand\"; did you mean \"command\"?",
            ),
            (
                "  run: [{selector: app == \"x\", run: {container: {image: nginx}}}]\n",
                "lab.yaml:5:57: spec.run[0].run.container.image: unsupported image \"nginx\"",
            ),
            (
                "  pools: {ipv4: 10.0.0.0/25}\n",
                "lab.yaml:5:17: spec.pools.ipv4: \"10.0.0.0/25\" is too small: each node takes a /24 of the pool",
            ),
            (
                "  pools: {ipv6: 10.0.0.0/8}\n",
                "lab.yaml:5:17: spec.pools.ipv6: \"10.0.0.0/8\" is not an IPv6 CIDR",
            ),
            (
                "  nodes: [a, a]\n",
                "lab.yaml:5:14: spec.nodes[1]: node \"a\" is listed twice",
            ),
            (
                "  run: [{run: http}]\n",
                "lab.yaml:5:9: spec.run[0].selector: missing required field \"selector\"",
            ),
            (
                "  workloads: [{name: a, run: {command: []}}]\n",
                "lab.yaml:5:40: spec.workloads[0].run.command: must name a program",
            ),
        ];
        let mut wrong = Vec::new();
        for (spec, want) in cases {
            let text = format!(
                "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {{name: t}}\nspec:\n{spec}"
            );
            let got = error_of(&text);
            if !got.lines().any(|l| l.starts_with(want)) {
                wrong.push(format!("want {want}\ngot  {got}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn lab_names_are_short_dns_labels() {
        let got = error_of("apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: a.b}\n");
        assert!(got.contains("is not a valid DNS-1123 label"), "{got}");
    }

    #[test]
    fn a_lab_workload_named_like_a_pod_is_a_duplicate_and_two_labs_are_too_many() {
        let text = format!(
            "{LAB}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\n---\napiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {{name: other}}\n"
        );
        let got = error_of(&text);
        assert!(
            got.contains("duplicate Pod default/web; also defined at lab.yaml:11:"),
            "{got}"
        );
        assert!(
            got.contains("only one Lab document is allowed; the first is at lab.yaml:1:1"),
            "{got}"
        );
    }
}
