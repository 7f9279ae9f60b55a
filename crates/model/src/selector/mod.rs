//! Label selectors.
//!
//! One AST serves both notations users write:
//! - Kubernetes `matchLabels` / `matchExpressions` (converted by [`Selector::from_k8s`]);
//! - bulkhead's expression language, modelled on Calico's selector grammar:
//!   `app == "web" && tier in {"a", "b"} && !has(canary)` (see [`parse`] and `docs/policy.md`).
//!
//! Semantics follow Kubernetes: `!=` and `not in` also match when the key is absent,
//! exactly like `NotIn`; `all()` matches everything, including an empty label set.

mod parse;
mod print;

use std::collections::BTreeSet;

pub use parse::{ParseError, parse};

/// A predicate over a label set.
///
/// Build composite selectors with [`Selector::and`] / [`Selector::or`], which keep the
/// tree flat (`And` never directly contains `And`), so that printing and re-parsing
/// gives back the same tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `all()`: matches every label set.
    All,
    /// `k == "v"`
    Eq(String, String),
    /// `k != "v"` (also true when `k` is absent)
    Ne(String, String),
    /// `k in {"a", "b"}` (false when `k` is absent)
    In(String, BTreeSet<String>),
    /// `k not in {"a", "b"}` (true when `k` is absent)
    NotIn(String, BTreeSet<String>),
    /// `has(k)`
    Has(String),
    /// `k starts with "p"`
    StartsWith(String, String),
    /// `k ends with "s"`
    EndsWith(String, String),
    /// `k contains "s"`
    Contains(String, String),
    /// `!e`
    Not(Box<Selector>),
    /// `a && b && ...` (at least two operands, none of them `And`)
    And(Vec<Selector>),
    /// `a || b || ...` (at least two operands, none of them `Or`)
    Or(Vec<Selector>),
}

/// Anything that can answer "what is the value of label `key`?".
pub trait LabelSource {
    fn label(&self, key: &str) -> Option<&str>;
}

/// Labels as records carry them (flow records, JSON).
impl LabelSource for std::collections::BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl LabelSource for crate::Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// One `matchExpressions` entry of a Kubernetes LabelSelector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sRequirement {
    pub key: String,
    pub operator: K8sOperator,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum K8sOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// Conjunction, flattened and simplified (`all()` operands vanish).
    pub fn and(parts: impl IntoIterator<Item = Selector>) -> Selector {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Selector::All => {}
                Selector::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Selector::All,
            1 => out.pop().unwrap_or(Selector::All),
            _ => Selector::And(out),
        }
    }

    /// Disjunction, flattened (an `all()` operand makes the whole thing `all()`).
    pub fn or(parts: impl IntoIterator<Item = Selector>) -> Selector {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Selector::All => return Selector::All,
                Selector::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            // An empty disjunction matches nothing.
            0 => Selector::Not(Box::new(Selector::All)),
            1 => out.pop().unwrap_or(Selector::All),
            _ => Selector::Or(out),
        }
    }

    /// `!self`
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Selector {
        Selector::Not(Box::new(self))
    }

    /// A Kubernetes LabelSelector: every `matchLabels` pair AND every expression.
    /// An empty selector matches everything, as in Kubernetes.
    pub fn from_k8s<'a>(
        match_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        match_expressions: impl IntoIterator<Item = &'a K8sRequirement>,
    ) -> Selector {
        let mut parts: Vec<Selector> = match_labels
            .into_iter()
            .map(|(k, v)| Selector::Eq(k.to_string(), v.to_string()))
            .collect();
        for r in match_expressions {
            let values: BTreeSet<String> = r.values.iter().cloned().collect();
            parts.push(match r.operator {
                K8sOperator::In => Selector::In(r.key.clone(), values),
                K8sOperator::NotIn => Selector::NotIn(r.key.clone(), values),
                K8sOperator::Exists => Selector::Has(r.key.clone()),
                K8sOperator::DoesNotExist => Selector::Has(r.key.clone()).not(),
            });
        }
        Selector::and(parts)
    }

    /// Does this label set satisfy the selector?
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Selector::All => true,
            Selector::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Selector::Ne(k, v) => labels.label(k) != Some(v.as_str()),
            Selector::In(k, vs) => labels.label(k).is_some_and(|x| vs.contains(x)),
            Selector::NotIn(k, vs) => !labels.label(k).is_some_and(|x| vs.contains(x)),
            Selector::Has(k) => labels.label(k).is_some(),
            Selector::StartsWith(k, p) => {
                labels.label(k).is_some_and(|x| x.starts_with(p.as_str()))
            }
            Selector::EndsWith(k, s) => labels.label(k).is_some_and(|x| x.ends_with(s.as_str())),
            Selector::Contains(k, s) => labels.label(k).is_some_and(|x| x.contains(s.as_str())),
            Selector::Not(e) => !e.matches(labels),
            Selector::And(es) => es.iter().all(|e| e.matches(labels)),
            Selector::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// True for `all()`: the selector that selects everything.
    pub fn is_all(&self) -> bool {
        matches!(self, Selector::All)
    }

    /// The label keys this selector looks at, in order of first appearance
    /// (used by `explain` to show which labels decided a match).
    pub fn keys(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_keys(&mut out);
        out
    }

    fn collect_keys<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Selector::All => {}
            Selector::Eq(k, _)
            | Selector::Ne(k, _)
            | Selector::In(k, _)
            | Selector::NotIn(k, _)
            | Selector::Has(k)
            | Selector::StartsWith(k, _)
            | Selector::EndsWith(k, _)
            | Selector::Contains(k, _) => {
                if !out.contains(&k.as_str()) {
                    out.push(k)
                }
            }
            Selector::Not(e) => e.collect_keys(out),
            Selector::And(es) | Selector::Or(es) => es.iter().for_each(|e| e.collect_keys(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn k8s_semantics_for_absent_keys() {
        let empty = l(&[]);
        assert!(Selector::Ne("a".into(), "x".into()).matches(&empty));
        assert!(Selector::NotIn("a".into(), ["x".to_string()].into()).matches(&empty));
        assert!(!Selector::In("a".into(), ["x".to_string()].into()).matches(&empty));
        assert!(Selector::All.matches(&empty));
        assert!(!Selector::or(Vec::new()).matches(&empty));
    }

    #[test]
    fn from_k8s_empty_is_all() {
        assert_eq!(Selector::from_k8s([], []), Selector::All);
        let s = Selector::from_k8s(
            [("app", "web")],
            &[K8sRequirement {
                key: "tier".into(),
                operator: K8sOperator::DoesNotExist,
                values: vec![],
            }],
        );
        assert!(s.matches(&l(&[("app", "web")])));
        assert!(!s.matches(&l(&[("app", "web"), ("tier", "x")])));
    }

    #[test]
    fn and_or_flatten() {
        let a = Selector::Has("a".into());
        let b = Selector::Has("b".into());
        let c = Selector::Has("c".into());
        let nested = Selector::and([a.clone(), Selector::and([b.clone(), c.clone()])]);
        assert_eq!(nested, Selector::And(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(Selector::and([Selector::All, a.clone()]), a);
        assert_eq!(Selector::or([a.clone(), Selector::All]), Selector::All);
    }
}
