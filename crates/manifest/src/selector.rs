//! Label maps and selectors: Kubernetes `LabelSelector` maps and bulkhead's selector
//! expressions (`app == "web" && tier in {"a", "b"}`).

use bulkhead_model::Labels;
use bulkhead_model::Selector;
use bulkhead_model::selector::{self, K8sOperator, K8sRequirement};

use crate::decode::{Cx, Fields, P};
use crate::names;
use crate::yaml::{Node, Value};

/// `labels:` (or `matchLabels:`): string keys that are qualified names, string values
/// that are valid label values.
pub fn labels(cx: &mut Cx, n: &Node, at: P) -> Option<Labels> {
    string_map(cx, n, at, names::label_value)
}

/// A map of qualified names to strings, each value checked with `value_rule`
/// (labels, annotations).
pub fn string_map(
    cx: &mut Cx,
    n: &Node,
    at: P,
    value_rule: fn(&str) -> Result<(), String>,
) -> Option<Labels> {
    let o = cx.obj(n, at, Fields::Lenient)?;
    let mut out = Labels::new();
    let mut ok = true;
    for e in o.entries {
        let here = at.f(&e.key);
        if let Err(msg) = names::qualified_name(&e.key) {
            cx.err(e.key_pos, here, msg);
            ok = false;
        }
        match cx.str(&e.value, here) {
            Some(v) => {
                ok &= cx.check(&e.value, here, value_rule(&v));
                out.insert(e.key.clone(), v);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

const OPERATORS: &[(&str, K8sOperator)] = &[
    ("In", K8sOperator::In),
    ("NotIn", K8sOperator::NotIn),
    ("Exists", K8sOperator::Exists),
    ("DoesNotExist", K8sOperator::DoesNotExist),
];

/// A Kubernetes `LabelSelector` map, validated as the API server does.
pub fn k8s(cx: &mut Cx, n: &Node, at: P) -> Option<Selector> {
    let o = cx.obj(n, at, Fields::Strict(&["matchLabels", "matchExpressions"]))?;
    let mut ok = true;
    let match_labels = match o.get("matchLabels") {
        Some(m) => labels(cx, m, at.f("matchLabels")),
        None => Some(Labels::new()),
    };
    ok &= match_labels.is_some();
    let mut reqs = Vec::new();
    if let Some(list) = o.get("matchExpressions") {
        let at_list = at.f("matchExpressions");
        for (i, item) in cx
            .list(list, at_list)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match requirement(cx, item, at_list.i(i)) {
                Some(r) => reqs.push(r),
                None => ok = false,
            }
        }
    }
    let match_labels = match_labels?;
    ok.then(|| Selector::from_k8s(match_labels.iter(), &reqs))
}

fn requirement(cx: &mut Cx, n: &Node, at: P) -> Option<K8sRequirement> {
    let o = cx.obj(n, at, Fields::Strict(&["key", "operator", "values"]))?;
    let key = cx.required(&o, "key", at, "").and_then(|k| {
        let s = cx.str(k, at.f("key"))?;
        cx.check(k, at.f("key"), names::qualified_name(&s))
            .then_some(s)
    });
    let op_at = at.f("operator");
    let operator = cx
        .required(&o, "operator", at, " (In, NotIn, Exists or DoesNotExist)")
        .and_then(|n| cx.one_of(n, op_at, "operator", OPERATORS, true));
    let values_at = at.f("values");
    let values = match o.get("values") {
        Some(v) => cx.str_list(v, values_at),
        None => Some(Vec::new()),
    };
    let (key, operator, values) = (key?, operator?, values?);
    let vnode = o.raw("values").unwrap_or(o.node);
    let mut ok = true;
    for (i, v) in values.iter().enumerate() {
        let item = match &vnode.value {
            Value::Seq(items) => &items[i],
            _ => vnode,
        };
        ok &= cx.check(item, values_at.i(i), names::label_value(v));
    }
    match operator {
        K8sOperator::In | K8sOperator::NotIn if values.is_empty() => {
            cx.err(
                vnode.pos,
                values_at,
                "must be specified (non-empty) when operator is In or NotIn",
            );
            ok = false;
        }
        K8sOperator::Exists | K8sOperator::DoesNotExist if !values.is_empty() => {
            cx.err(
                vnode.pos,
                values_at,
                "may not be specified when operator is Exists or DoesNotExist",
            );
            ok = false;
        }
        _ => {}
    }
    ok.then_some(K8sRequirement {
        key,
        operator,
        values,
    })
}

/// A bulkhead selector field: an expression string, or a Kubernetes LabelSelector map.
/// Syntax errors in expressions point at the offending column of the file.
pub fn any(cx: &mut Cx, n: &Node, at: P) -> Option<Selector> {
    match &n.value {
        Value::Map(_) => k8s(cx, n, at),
        Value::Scalar(_) => {
            let text = cx.str(n, at)?;
            match selector::parse(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    let offset = e.column.saturating_sub(1);
                    let (pos, msg) = match cx.column_in(n, offset) {
                        Some(column) => (
                            crate::yaml::Pos {
                                line: n.pos.line,
                                column,
                            },
                            format!("invalid selector: {}", e.message),
                        ),
                        None => (n.pos, format!("invalid selector: {e}")),
                    };
                    cx.err(pos, at, msg);
                    None
                }
            }
        }
        Value::Seq(_) => {
            cx.err(
                n.pos,
                at,
                "expected a selector: an expression such as 'app == \"web\"' or a {matchLabels, matchExpressions} mapping, got a list",
            );
            None
        }
    }
}
