//! `networking.k8s.io/v1` NetworkPolicy: fully strict, validated like the API server
//! (`pkg/apis/networking/validation`), and decoded as written: `None` for an absent or
//! null list, `Some(vec![])` for `[]`, because the two read differently to people even
//! where Kubernetes gives them the same meaning.

use bulkhead_model::{CidrBlock, Selector};
use bulkhead_policy::spec::{NetworkPolicy, NpPeer, NpRule, PolicyType};

use crate::decode::{Cx, Fields, Obj, P};
use crate::k8s::{self, MetaRule, Scope};
use crate::names;
use crate::port;
use crate::selector;
use crate::yaml::Node;

pub const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

const POLICY_TYPES: &[(&str, PolicyType)] = &[
    ("Ingress", PolicyType::Ingress),
    ("Egress", PolicyType::Egress),
];

pub fn network_policy(cx: &mut Cx, doc: &Obj, root: P) -> Option<NetworkPolicy> {
    let m = k8s::meta(
        cx,
        doc,
        root,
        MetaRule::k8s("NetworkPolicy", Scope::Namespaced),
    );
    let at = root.f("spec");
    let spec = cx.required(doc, "spec", root, "").and_then(|s| {
        cx.obj(
            s,
            at,
            Fields::Strict(&["podSelector", "policyTypes", "ingress", "egress"]),
        )
    })?;
    // The API server accepts a policy without podSelector and reads it as `{}` (the
    // zero LabelSelector): every pod of the namespace. So do we.
    let pod_selector = match spec.get("podSelector") {
        None => Some(bulkhead_model::Selector::All),
        Some(n) => selector::k8s(cx, n, at.f("podSelector")),
    };
    let policy_types = match spec.get("policyTypes") {
        None => Some(None),
        Some(n) => policy_types(cx, n, at.f("policyTypes")).map(Some),
    };
    let ingress = rules(cx, &spec, at, "ingress", "from", "to");
    let egress = rules(cx, &spec, at, "egress", "to", "from");
    let m = m?;
    Some(NetworkPolicy {
        name: m.name,
        namespace: m.namespace.unwrap_or_else(|| "default".into()),
        pod_selector: pod_selector?,
        policy_types: policy_types?,
        ingress: ingress?,
        egress: egress?,
        origin: cx.origin(doc.pos()),
    })
}

fn t_name(t: PolicyType) -> &'static str {
    POLICY_TYPES
        .iter()
        .find(|(_, v)| *v == t)
        .map_or("", |(n, _)| n)
}

fn policy_types(cx: &mut Cx, n: &Node, at: P) -> Option<Vec<PolicyType>> {
    let types = cx.seq_of(n, at, |cx, n, at| {
        cx.one_of(n, at, "policy type", POLICY_TYPES, true)
    })?;
    let items = cx.list_or_one(n);
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            cx.err(
                items[i].pos,
                at.i(i),
                format!("duplicate policy type {:?}", t_name(*t)),
            );
            return None;
        }
    }
    Some(types)
}

/// `ingress` (peers under `from`) or `egress` (peers under `to`).
fn rules(
    cx: &mut Cx,
    spec: &Obj,
    at: P,
    key: &str,
    peers_key: &str,
    other: &str,
) -> Option<Option<Vec<NpRule>>> {
    let Some(n) = spec.get(key) else {
        return Some(None);
    };
    let at_k = at.f(key);
    let fields = [peers_key, "ports"];
    cx.seq_of(n, at_k, |cx, n, at| {
        let (o, wrong_way) = cx.rule_obj(n, at, &fields, (key, peers_key, other))?;
        let peers = match o.get(peers_key) {
            None => Some(None),
            Some(p) => cx.seq_of(p, at.f(peers_key), peer).map(Some),
        };
        let ports = match o.get("ports") {
            None => Some(None),
            Some(p) => cx.seq_of(p, at.f("ports"), port::k8s).map(Some),
        };
        if wrong_way {
            return None;
        }
        Some(NpRule {
            peers: peers?,
            ports: ports?,
            origin: cx.origin(n.pos),
        })
    })
    .map(Some)
}

fn peer(cx: &mut Cx, n: &Node, at: P) -> Option<NpPeer> {
    let o = cx.obj(
        n,
        at,
        Fields::Strict(&["podSelector", "namespaceSelector", "ipBlock"]),
    )?;
    let sel = |cx: &mut Cx, key: &str| -> Option<Option<Selector>> {
        match o.get(key) {
            None => Some(None),
            Some(s) => selector::k8s(cx, s, at.f(key)).map(Some),
        }
    };
    let pod_selector = sel(cx, "podSelector");
    let namespace_selector = sel(cx, "namespaceSelector");
    let ip_block = match o.get("ipBlock") {
        None => Some(None),
        Some(b) => {
            let at_b = at.f("ipBlock");
            let fields = Fields::Strict(&["cidr", "except"]);
            let block = cx
                .obj(b, at_b, fields)
                .and_then(|bo| cidr_block(cx, &bo, at_b));
            if o.has("podSelector") || o.has("namespaceSelector") {
                cx.err(
                    b.pos,
                    at_b,
                    "may not be specified with podSelector or namespaceSelector",
                );
                return None;
            }
            block.map(Some)
        }
    };
    if !o.has("podSelector") && !o.has("namespaceSelector") && !o.has("ipBlock") {
        cx.err(
            n.pos,
            at,
            "must specify a peer: podSelector, namespaceSelector or ipBlock",
        );
        return None;
    }
    Some(NpPeer {
        pod_selector: pod_selector?,
        namespace_selector: namespace_selector?,
        ip_block: ip_block?,
        origin: cx.origin(n.pos),
    })
}

/// `cidr` plus optional `except`, each exception strictly inside the block. Shared by
/// Kubernetes `ipBlock` and bulkhead `cidr` peers.
pub fn cidr_block(cx: &mut Cx, o: &Obj, at: P) -> Option<CidrBlock> {
    let at_c = at.f("cidr");
    let net = cx.required(o, "cidr", at, "").and_then(|c| {
        let s = cx.str(c, at_c)?;
        match names::cidr(&s) {
            Ok(net) => Some(net),
            Err(msg) => {
                cx.err(c.pos, at_c, msg);
                None
            }
        }
    });
    let at_e = at.f("except");
    let except = match o.get("except") {
        None => Some(Vec::new()),
        Some(e) => cx.seq_of(e, at_e, |cx, n, at| {
            let s = cx.str(n, at)?;
            let ex = match names::cidr(&s) {
                Ok(ex) => ex,
                Err(msg) => {
                    cx.err(n.pos, at, msg);
                    return None;
                }
            };
            match net.map(|net| names::except_within(&net, &ex)) {
                Some(Err(msg)) => {
                    cx.err(n.pos, at, msg);
                    None
                }
                _ => Some(ex.trunc()),
            }
        }),
    };
    let mut block = CidrBlock::new(net?);
    block.except = except?;
    Some(block)
}
