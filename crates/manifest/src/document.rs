//! One document: find its `apiVersion` and `kind`, and hand it to that kind's decoder.
//! `kind: List` (and typed lists such as `PodList`) are unwrapped here.

use bulkhead_model::{Namespace, Node as K8sNode, Workload};
use bulkhead_policy::response::ResponseRule;
use bulkhead_policy::sensor::Sensor;
use bulkhead_policy::spec::{Group, LabSpec, NetworkPolicy, Policy, PolicyTest, Settings};

use crate::bulkhead;
use crate::decode::{Cx, Fields, Obj, P, hint, suggest};
use crate::k8s::{self, Controller};
use crate::netpol;
use crate::policytest;
use crate::yaml::{Node, Pos};

/// Every kind we decode, with its apiVersion.
const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Node"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("bulkhead.io/v1", "Group"),
    ("bulkhead.io/v1", "Sensor"),
    ("bulkhead.io/v1", "ResponseRule"),
    ("bulkhead.io/v1", "Policy"),
    ("bulkhead.io/v1", "Settings"),
    ("bulkhead.io/v1", "PolicyTest"),
    ("bulkhead.io/v1", "Lab"),
    ("v1", "List"),
];

/// What one document contributed, in document order.
pub enum Item {
    Namespace(Namespace, Pos),
    Pod(Workload, Pos),
    Node(K8sNode, Pos),
    Controller(Controller),
    Group(Group),
    Sensor(Sensor),
    Response(ResponseRule),
    Policy(Policy),
    NetworkPolicy(NetworkPolicy),
    Settings(Settings),
    PolicyTest(PolicyTest),
    Lab(LabSpec),
}

/// Decode one top-level document. A mapping with none of `apiVersion`, `kind` and
/// `metadata` is not a Kubernetes object at all (a test expectation, Helm values, ...
/// kept next to the manifests) and is skipped; one with any of them must be complete.
pub fn decode(cx: &mut Cx, n: &Node, out: &mut Vec<Item>) {
    if let Some(o) = Obj::of(n)
        && !["apiVersion", "kind", "metadata"]
            .iter()
            .any(|k| o.entry(k).is_some())
    {
        return;
    }
    one(cx, n, P::Root, None, out);
}

fn one(cx: &mut Cx, n: &Node, root: P, default: Option<(&str, &str)>, out: &mut Vec<Item>) {
    let Some(doc) = cx.obj(n, root, Fields::Lenient) else {
        return;
    };
    let field = |cx: &mut Cx, key: &str, fallback: Option<&str>| match doc.get(key) {
        Some(v) => cx.str(v, root.f(key)).map(|s| (s, v.pos)),
        None => match fallback {
            Some(f) => Some((f.to_string(), doc.pos())),
            None => {
                cx.err(
                    doc.pos(),
                    root.f(key),
                    format!("missing required field {key:?}"),
                );
                None
            }
        },
    };
    let api = field(cx, "apiVersion", default.map(|d| d.0));
    let kind = field(cx, "kind", default.map(|d| d.1));
    let (Some((api, api_pos)), Some((kind, kind_pos))) = (api, kind) else {
        return;
    };
    if let Some(item_kind) = list_kind(&kind) {
        if default.is_some() {
            cx.err(
                kind_pos,
                root.f("kind"),
                "a List inside a List is not supported",
            );
            return;
        }
        let item_default = KINDS
            .iter()
            .find(|(_, k)| *k == item_kind)
            .map(|(a, k)| (*a, *k));
        list(cx, &doc, root, item_default, out);
        return;
    }
    let Some(&(known_api, known_kind)) = KINDS.iter().find(|(_, k)| *k == kind) else {
        let kinds: Vec<&str> = KINDS.iter().map(|(_, k)| *k).collect();
        let msg = format!("unknown kind {kind:?}{}", hint(&kind, &kinds));
        cx.err(kind_pos, root.f("kind"), msg);
        return;
    };
    if api != known_api {
        let mut apis: Vec<&str> = KINDS.iter().map(|(a, _)| *a).collect();
        apis.dedup();
        let msg = match suggest(&api, apis.iter().copied()) {
            Some(s) if s == known_api => {
                format!("unknown apiVersion {api:?} for {kind}; did you mean {s:?}?")
            }
            _ => format!("{kind} is {known_api}, not {api:?}"),
        };
        cx.err(api_pos, root.f("apiVersion"), msg);
        return;
    }
    dispatch(cx, &doc, root, known_kind, out);
}

/// `List` itself (any item kind) or a typed list such as `PodList`.
fn list_kind(kind: &str) -> Option<&str> {
    if kind == "List" {
        return Some("");
    }
    let base = kind.strip_suffix("List")?;
    KINDS.iter().any(|(_, k)| *k == base).then_some(base)
}

fn list(cx: &mut Cx, doc: &Obj, root: P, default: Option<(&str, &str)>, out: &mut Vec<Item>) {
    let at = root.f("items");
    let Some(items) = doc.get("items") else {
        return;
    };
    for (i, item) in cx.list(items, at).unwrap_or_default().iter().enumerate() {
        one(cx, item, at.i(i), default, out);
    }
}

fn strict_top(cx: &mut Cx, doc: &Obj, root: P, fields: &[&str]) {
    for e in doc.entries {
        if !fields.contains(&e.key.as_str()) {
            let msg = format!("unknown field {:?}{}", e.key, hint(&e.key, fields));
            cx.err(e.key_pos, root.f(&e.key), msg);
        }
    }
}

fn dispatch(cx: &mut Cx, doc: &Obj, root: P, kind: &'static str, out: &mut Vec<Item>) {
    let item = match kind {
        "Namespace" => k8s::namespace(cx, doc, root).map(|(n, p)| Item::Namespace(n, p)),
        "Pod" => k8s::pod(cx, doc, root).map(|(w, p)| Item::Pod(w, p)),
        "Node" => k8s::node(cx, doc, root).map(|(n, p)| Item::Node(n, p)),
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            k8s::controller(cx, doc, root, kind, Some("replicas")).map(Item::Controller)
        }
        "Job" => k8s::controller(cx, doc, root, kind, Some("parallelism")).map(Item::Controller),
        "DaemonSet" => k8s::controller(cx, doc, root, kind, None).map(Item::Controller),
        "NetworkPolicy" => {
            strict_top(cx, doc, root, netpol::TOP);
            netpol::network_policy(cx, doc, root).map(Item::NetworkPolicy)
        }
        _ => {
            strict_top(cx, doc, root, bulkhead::TOP);
            match kind {
                "Group" => bulkhead::group(cx, doc, root).map(Item::Group),
                "Sensor" => crate::sensor::sensor(cx, doc, root).map(Item::Sensor),
                "ResponseRule" => crate::response::response_rule(cx, doc, root).map(Item::Response),
                "Policy" => bulkhead::policy(cx, doc, root).map(Item::Policy),
                "PolicyTest" => policytest::policy_test(cx, doc, root).map(Item::PolicyTest),
                "Lab" => crate::lab::lab(cx, doc, root).map(Item::Lab),
                _ => bulkhead::settings(cx, doc, root).map(Item::Settings),
            }
        }
    };
    out.extend(item);
}
