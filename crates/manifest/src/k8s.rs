//! Kubernetes inventory kinds: Namespace, Pod, Node and the workload controllers
//! (Deployment, StatefulSet, ReplicaSet, DaemonSet, Job), which are expanded into pods.
//!
//! Only `metadata` is strict (against the real ObjectMeta field list): specs and
//! statuses of real manifests carry hundreds of fields we have no use for.

use std::net::IpAddr;

use bulkhead_model::{ContainerPort, Labels, Namespace, Node as K8sNode, Protocol, Workload};

use crate::decode::{Cx, Fields, Obj, P};
use crate::names;
use crate::selector;
use crate::yaml::{Node, Pos};

/// Every field of Kubernetes' ObjectMeta: anything else under `metadata` is a mistake.
pub const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The most replicas one controller is expanded into: a typo such as `replicas: 30000000`
/// must not exhaust memory.
pub const MAX_REPLICAS: i64 = 10_000;

/// Where a document may say which namespace it lives in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Namespaced; `default` when not written.
    Namespaced,
    /// bulkhead Policy: namespaced when written, cluster-wide otherwise.
    Optional,
    /// Kubernetes cluster-scoped kinds: a namespace is ignored, as the API server does.
    ClusterIgnored,
    /// bulkhead cluster-scoped kinds: a namespace is an error.
    ClusterStrict,
}

/// `metadata`, decoded.
pub struct Meta {
    pub name: String,
    pub name_pos: Pos,
    pub namespace: Option<String>,
    pub labels: Labels,
}

/// What a kind's `metadata` may hold.
#[derive(Clone, Copy)]
pub struct MetaRule {
    pub kind: &'static str,
    /// The allowed fields.
    pub fields: &'static [&'static str],
    pub scope: Scope,
    /// The syntax of the kind's names.
    pub name: fn(&str) -> Result<(), String>,
}

impl MetaRule {
    /// A Kubernetes kind: the full ObjectMeta, names are DNS-1123 subdomains.
    pub const fn k8s(kind: &'static str, scope: Scope) -> Self {
        MetaRule {
            kind,
            fields: OBJECT_META,
            scope,
            name: names::dns1123_subdomain,
        }
    }
}

/// Decode `metadata` by the kind's rule.
pub fn meta(cx: &mut Cx, doc: &Obj, root: P, rule: MetaRule) -> Option<Meta> {
    let MetaRule {
        kind,
        fields,
        scope,
        name: name_rule,
    } = rule;
    let at = root.f("metadata");
    let m = cx.required(doc, "metadata", root, "")?;
    let o = cx.obj(m, at, Fields::Strict(fields))?;
    let mut ok = true;
    let name = match o.get("name") {
        Some(n) => cx
            .str(n, at.f("name"))
            .filter(|s| cx.check(n, at.f("name"), name_rule(s)))
            .map(|s| (s, n.pos)),
        None => {
            let note = if o.has("generateName") {
                " (generateName is not supported: bulkhead needs stable names)"
            } else {
                ""
            };
            cx.err(
                o.pos(),
                at.f("name"),
                format!("missing required field \"name\"{note}"),
            );
            None
        }
    };
    let namespace = match (o.get("namespace"), scope) {
        (Some(n), Scope::ClusterStrict) => {
            cx.err(
                n.pos,
                at.f("namespace"),
                format!("{kind} is cluster-scoped; remove metadata.namespace"),
            );
            ok = false;
            None
        }
        (Some(_), Scope::ClusterIgnored) | (None, _) => None,
        (Some(n), _) => {
            let s = cx.str(n, at.f("namespace"));
            ok &= s
                .as_deref()
                .is_some_and(|s| cx.check(n, at.f("namespace"), names::dns1123_label(s)));
            s
        }
    };
    let namespace = match scope {
        Scope::Namespaced => Some(namespace.unwrap_or_else(|| "default".to_string())),
        _ => namespace,
    };
    let labels = match o.get("labels") {
        Some(l) => selector::labels(cx, l, at.f("labels")),
        None => Some(Labels::new()),
    };
    if let Some(a) = o.get("annotations") {
        // Read only to be checked: keys are qualified names, values any string.
        ok &= selector::string_map(cx, a, at.f("annotations"), |_| Ok(())).is_some();
    }
    let (name, name_pos) = name?;
    (ok && labels.is_some()).then(|| Meta {
        name,
        name_pos,
        namespace,
        labels: labels.unwrap_or_default(),
    })
}

pub fn namespace(cx: &mut Cx, doc: &Obj, root: P) -> Option<(Namespace, Pos)> {
    let m = meta(
        cx,
        doc,
        root,
        MetaRule {
            name: names::dns1123_label,
            ..MetaRule::k8s("Namespace", Scope::ClusterIgnored)
        },
    )?;
    Some((Namespace::new(&m.name, m.labels), m.name_pos))
}

/// A Pod's spec and status: ports, node and addresses.
pub fn pod(cx: &mut Cx, doc: &Obj, root: P) -> Option<(Workload, Pos)> {
    let m = meta(cx, doc, root, MetaRule::k8s("Pod", Scope::Namespaced));
    let spec = match doc.get("spec") {
        Some(s) => pod_spec(cx, s, root.f("spec")),
        None => Some(PodSpec::default()),
    };
    let ips = match doc.get("status") {
        Some(s) => pod_ips(cx, s, root.f("status")),
        None => Some(Vec::new()),
    };
    let (m, spec, ips) = (m?, spec?, ips?);
    let mut w = Workload::new(
        m.namespace.as_deref().unwrap_or("default"),
        &m.name,
        m.labels,
    );
    w.ports = spec.ports;
    w.node = spec.node;
    w.ips = ips;
    Some((w, m.name_pos))
}

#[derive(Clone, Default)]
pub struct PodSpec {
    pub ports: Vec<ContainerPort>,
    pub node: Option<String>,
}

const CONTAINER_PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

pub fn pod_spec(cx: &mut Cx, n: &Node, at: P) -> Option<PodSpec> {
    let o = cx.obj(n, at, Fields::Lenient)?;
    let mut ok = true;
    let mut spec = PodSpec::default();
    for field in ["initContainers", "containers"] {
        let Some(list) = o.get(field) else { continue };
        let at_list = at.f(field);
        for (i, c) in cx
            .list(list, at_list)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at_c = at_list.i(i);
            let Some(c) = cx.obj(c, at_c, Fields::Lenient) else {
                ok = false;
                continue;
            };
            let Some(ports) = c.get("ports") else {
                continue;
            };
            let at_p = at_c.f("ports");
            for (j, p) in cx.list(ports, at_p).unwrap_or_default().iter().enumerate() {
                match container_port(cx, p, at_p.i(j)) {
                    Some(p) => spec.ports.push(p),
                    None => ok = false,
                }
            }
        }
        ok &= list.is_null() || matches!(list.value, crate::yaml::Value::Seq(_));
    }
    if let Some(n) = o.get("nodeName") {
        spec.node = cx.str(n, at.f("nodeName"));
        ok &= spec.node.is_some();
    }
    ok.then_some(spec)
}

fn container_port(cx: &mut Cx, n: &Node, at: P) -> Option<ContainerPort> {
    let o = cx.obj(n, at, Fields::Lenient)?;
    let name = match o.get("name") {
        Some(v) => {
            let s = cx.str(v, at.f("name"));
            match s {
                Some(s) if cx.check(v, at.f("name"), names::port_name(&s)) => Some(Some(s)),
                _ => None,
            }
        }
        None => Some(None),
    };
    let port = cx
        .required(&o, "containerPort", at, "")
        .and_then(|v| cx.int(v, at.f("containerPort"), 1, 65535));
    let protocol = match o.get("protocol") {
        Some(v) => cx.one_of(v, at.f("protocol"), "protocol", CONTAINER_PROTOCOLS, true),
        None => Some(Protocol::Tcp),
    };
    Some(ContainerPort {
        name: name?,
        port: u16::try_from(port?).ok()?,
        protocol: protocol?,
    })
}

/// `status.podIP` and `status.podIPs[].ip`, deduplicated, in order.
fn pod_ips(cx: &mut Cx, n: &Node, at: P) -> Option<Vec<IpAddr>> {
    let o = cx.obj(n, at, Fields::Lenient)?;
    let mut ok = true;
    let mut ips = Vec::new();
    if let Some(v) = o.get("podIP") {
        ok &= push_ip(cx, v, at.f("podIP"), &mut ips);
    }
    if let Some(list) = o.get("podIPs") {
        let at_l = at.f("podIPs");
        for (i, item) in cx.list(list, at_l).unwrap_or_default().iter().enumerate() {
            let at_i = at_l.i(i);
            match cx.obj(item, at_i, Fields::Lenient) {
                Some(e) => {
                    if let Some(v) = cx.required(&e, "ip", at_i, "") {
                        ok &= push_ip(cx, v, at_i.f("ip"), &mut ips);
                    } else {
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
    }
    ok.then_some(ips)
}

fn push_ip(cx: &mut Cx, n: &Node, at: P, out: &mut Vec<IpAddr>) -> bool {
    let Some(s) = cx.str(n, at) else { return false };
    match s.parse::<IpAddr>() {
        Ok(ip) => {
            if !out.contains(&ip) {
                out.push(ip);
            }
            true
        }
        Err(_) => {
            cx.err(n.pos, at, format!("{s:?} is not a valid IP address"));
            false
        }
    }
}

/// A Node: its name, labels and InternalIP/ExternalIP addresses (the `host` entity).
pub fn node(cx: &mut Cx, doc: &Obj, root: P) -> Option<(K8sNode, Pos)> {
    let m = meta(cx, doc, root, MetaRule::k8s("Node", Scope::ClusterIgnored));
    let mut addresses = Vec::new();
    let mut ok = true;
    if let Some(status) = doc.get("status") {
        let at_s = root.f("status");
        let list = cx
            .obj(status, at_s, Fields::Lenient)
            .and_then(|s| s.get("addresses"));
        let at_l = at_s.f("addresses");
        let items = list.and_then(|l| cx.list(l, at_l)).unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let at_i = at_l.i(i);
            let Some(a) = cx.obj(item, at_i, Fields::Lenient) else {
                ok = false;
                continue;
            };
            let kind = a.get("type").and_then(|t| cx.str(t, at_i.f("type")));
            if matches!(kind.as_deref(), Some("InternalIP" | "ExternalIP")) {
                match cx.required(&a, "address", at_i, "") {
                    Some(v) => ok &= push_ip(cx, v, at_i.f("address"), &mut addresses),
                    None => ok = false,
                }
            }
        }
    }
    let m = m?;
    ok.then_some((
        K8sNode {
            name: m.name,
            labels: m.labels,
            addresses,
        },
        m.name_pos,
    ))
}

/// A workload controller, before expansion.
pub struct Controller {
    /// `Deployment`, `DaemonSet`, ...
    pub kind: &'static str,
    /// The pod template as a workload named after the controller.
    pub template: Workload,
    /// `None` for a DaemonSet: one pod per Node, known only once every file is read.
    pub replicas: Option<usize>,
    pub pos: Pos,
}

/// Deployment, StatefulSet, ReplicaSet, DaemonSet and Job. `replicas_field` is
/// `replicas`, or `parallelism` for a Job, or `None` for a DaemonSet.
pub fn controller(
    cx: &mut Cx,
    doc: &Obj,
    root: P,
    kind: &'static str,
    replicas_field: Option<&str>,
) -> Option<Controller> {
    let m = meta(cx, doc, root, MetaRule::k8s(kind, Scope::Namespaced));
    let at = root.f("spec");
    let spec = cx
        .required(doc, "spec", root, "")
        .and_then(|s| cx.obj(s, at, Fields::Lenient));
    let spec = spec?;
    let replicas = match replicas_field {
        Some(f) => match spec.get(f) {
            Some(v) => cx
                .int(v, at.f(f), 0, MAX_REPLICAS)
                .map(|r| Some(r as usize)),
            None => Some(Some(1)),
        },
        None => Some(None),
    };
    let at_t = at.f("template");
    let template = cx
        .required(&spec, "template", at, "")
        .and_then(|t| cx.obj(t, at_t, Fields::Lenient));
    let template = template?;
    let labels = match template.get("metadata") {
        Some(tm) => {
            let at_m = at_t.f("metadata");
            cx.obj(tm, at_m, Fields::Strict(OBJECT_META))
                .and_then(|o| match o.get("labels") {
                    Some(l) => selector::labels(cx, l, at_m.f("labels")),
                    None => Some(Labels::new()),
                })
        }
        None => Some(Labels::new()),
    };
    let pod = match template.get("spec") {
        Some(s) => pod_spec(cx, s, at_t.f("spec")),
        None => Some(PodSpec::default()),
    };
    let (m, replicas, labels, pod) = (m?, replicas?, labels?, pod?);
    let mut template = Workload::new(m.namespace.as_deref().unwrap_or("default"), &m.name, labels);
    template.ports = pod.ports;
    template.node = pod.node;
    Some(Controller {
        kind,
        template,
        replicas,
        pos: m.name_pos,
    })
}

impl Controller {
    /// Pods `<name>-0`, `<name>-1`, ...; DaemonSet pods are placed on `nodes` in order
    /// (one pod without a node when there are none).
    pub fn expand(&self, nodes: &[String]) -> Vec<Workload> {
        let count = match self.replicas {
            Some(r) => r,
            None => nodes.len().max(1),
        };
        (0..count)
            .map(|i| {
                let mut w = self.template.clone();
                w.key.name = format!("{}-{i}", self.template.key.name);
                if self.replicas.is_none() {
                    w.node = nodes.get(i).cloned();
                }
                w
            })
            .collect()
    }
}
