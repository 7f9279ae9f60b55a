//! Which labels identify a workload, and the shortest selector that picks one group.
//!
//! A label is *volatile* when it names one pod or one rollout rather than the workload:
//! the well-known keys Kubernetes controllers stamp on pods (Cilium leaves the same keys
//! out of identities), plus any key this inventory shows to differ between the replicas
//! of one controller, or whose value is the pod's own name or a generated part of it.
//! What is left is the workload's *identity labels*; with the namespace they make a group.
//!
//! The selector of a group is chosen against every other group of its namespace: the
//! workload's name label first (`app.kubernetes.io/name`, `app`, ...), then, greedily,
//! the label that tells it apart from the most remaining groups, until it selects no
//! other group; `!has(k)` separates a group from groups that only add labels to it.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_model::{Labels, Workload};

/// Keys controllers put on pods that differ per pod or per rollout.
pub const KNOWN_VOLATILE: &[&str] = &[
    "pod-template-hash",
    "pod-template-generation",
    "controller-revision-hash",
    "controller-uid",
    "job-name",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
    "batch.kubernetes.io/job-index",
];

/// Keys that name the workload, most preferred first: one of them starts every selector.
pub const NAME_KEYS: &[&str] = &["app.kubernetes.io/name", "app", "k8s-app", "name"];

/// Keys preferred, in this order, when several tell groups apart equally well.
pub const PREFERRED: &[&str] = &[
    "app.kubernetes.io/name",
    "app",
    "k8s-app",
    "name",
    "app.kubernetes.io/component",
    "component",
    "role",
    "tier",
    "app.kubernetes.io/part-of",
    "team",
];

/// The characters Kubernetes uses for generated name suffixes (no vowels).
const GENERATED: &str = "bcdfghjklmnpqrstvwxz0123456789";

fn generated_segment(s: &str) -> bool {
    !s.is_empty()
        && (s.bytes().all(|b| b.is_ascii_digit()) || {
            (5..=10).contains(&s.len()) && s.chars().all(|c| GENERATED.contains(c))
        })
}

/// A pod's name without the parts its controller generated: `web-7d4b9c6f5d-x2k9p`,
/// `db-0` and `build-28731-q8k2z` become `web`, `db` and `build`.
pub fn stem(name: &str) -> &str {
    let mut s = name;
    while let Some((head, tail)) = s.rsplit_once('-') {
        if head.is_empty() || !generated_segment(tail) {
            break;
        }
        s = head;
    }
    s
}

fn uuid_like(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Volatile keys and why, learned from every workload of the inventory.
pub fn volatile_keys<'a>(
    workloads: impl IntoIterator<Item = &'a Workload>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut families: BTreeMap<(&str, &str), Vec<&Workload>> = BTreeMap::new();
    for w in workloads {
        families
            .entry((w.key.namespace.as_str(), stem(&w.key.name)))
            .or_default()
            .push(w);
        let generated: Vec<&str> = w.key.name[stem(&w.key.name).len()..]
            .split('-')
            .filter(|s| !s.is_empty())
            .collect();
        for (k, v) in w.labels.iter() {
            if out.contains_key(k) {
                continue;
            }
            let why = if KNOWN_VOLATILE.contains(&k) {
                Some("set per pod or per rollout by Kubernetes controllers".to_string())
            } else if v == w.key.name {
                Some(format!("its value is the pod's name ({})", w.key))
            } else if generated.contains(&v) {
                Some(format!("its value is generated ({})", w.key))
            } else if uuid_like(v) {
                Some(format!("its value is a UID ({})", w.key))
            } else {
                None
            };
            if let Some(why) = why {
                out.insert(k.to_string(), why);
            }
        }
    }
    for ((ns, stem), members) in &families {
        if members.len() < 2 {
            continue;
        }
        let keys: BTreeSet<&str> = members
            .iter()
            .flat_map(|w| w.labels.iter().map(|(k, _)| k))
            .collect();
        for k in keys {
            if out.contains_key(k) {
                continue;
            }
            let first = members[0].labels.get(k);
            if members.iter().any(|w| w.labels.get(k) != first) {
                out.insert(
                    k.to_string(),
                    format!("differs between the replicas of {ns}/{stem}"),
                );
            }
        }
    }
    out
}

/// The labels that identify the workload: all but the volatile ones.
pub fn identity_labels(labels: &Labels, volatile: &BTreeMap<String, String>) -> Labels {
    let mut l = Labels::new();
    for (k, v) in labels.iter() {
        if !volatile.contains_key(k) {
            l.insert(k, v);
        }
    }
    l
}

/// One term of a learned selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Term {
    Eq(String, String),
    NotHas(String),
}

fn rank(k: &str) -> usize {
    PREFERRED
        .iter()
        .position(|p| *p == k)
        .unwrap_or(PREFERRED.len())
}

fn holds(t: &Term, l: &Labels) -> bool {
    match t {
        Term::Eq(k, v) => l.get(k) == Some(v.as_str()),
        Term::NotHas(k) => !l.contains_key(k),
    }
}

/// The terms (ANDed) that select `target` and none of `others` (identity label sets of
/// the same namespace, none equal to `target`).
pub fn discriminate(target: &Labels, others: &[&Labels]) -> Vec<Term> {
    let mut terms: Vec<Term> = Vec::new();
    let mut remaining: Vec<&Labels> = others.to_vec();
    let add = |t: Term, terms: &mut Vec<Term>, remaining: &mut Vec<&Labels>| {
        remaining.retain(|o| holds(&t, o));
        terms.push(t);
    };
    if let Some(k) = NAME_KEYS.iter().find(|k| target.contains_key(k)) {
        let v = target.get(k).unwrap_or_default().to_string();
        add(Term::Eq(k.to_string(), v), &mut terms, &mut remaining);
    }
    while !remaining.is_empty() {
        let best = target
            .iter()
            .filter(|(k, _)| {
                !terms
                    .iter()
                    .any(|t| matches!(t, Term::Eq(tk, _) if tk == k))
            })
            .map(|(k, v)| {
                let cut = remaining.iter().filter(|o| o.get(k) != Some(v)).count();
                (cut, std::cmp::Reverse(rank(k)), std::cmp::Reverse(k), v)
            })
            .max();
        match best {
            Some((cut, _, std::cmp::Reverse(k), v)) if cut > 0 => add(
                Term::Eq(k.to_string(), v.to_string()),
                &mut terms,
                &mut remaining,
            ),
            _ => break,
        }
    }
    while !remaining.is_empty() {
        // Every remaining group has all of target's labels and more: cut on an extra key.
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &remaining {
            for (k, _) in o.iter() {
                if !target.contains_key(k) {
                    *counts.entry(k).or_default() += 1;
                }
            }
        }
        let Some((k, _)) = counts
            .iter()
            .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))
        else {
            break; // only an identical label set is left: impossible for distinct groups
        };
        add(Term::NotHas(k.to_string()), &mut terms, &mut remaining);
    }
    terms
}

/// `app == "web" && !has(canary)`; `all()` when there is nothing to say.
pub fn render(terms: &[Term]) -> String {
    if terms.is_empty() {
        return "all()".into();
    }
    terms
        .iter()
        .map(|t| match t {
            Term::Eq(k, v) => format!(
                "{k} == \"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            Term::NotHas(k) => format!("!has({k})"),
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// A DNS-label group name from the namespace and the selector's values:
/// `eu` + `app == "orderInput" && component == "creditCheck"` -> `eu-order-input-credit-check`.
pub fn group_name(namespace: &str, terms: &[Term]) -> String {
    let mut parts = vec![kebab(namespace)];
    for t in terms {
        if let Term::Eq(k, v) = t {
            let v = kebab(v);
            let short = v.len() < 3 || matches!(v.as_str(), "yes" | "no" | "true" | "false");
            if short {
                let key = k.rsplit('/').next().unwrap_or(k);
                parts.push(format!("{}-{v}", kebab(key)));
            } else {
                parts.push(v);
            }
        }
    }
    // `payments` + `payments-gw` reads better as `payments-gw`.
    if parts.len() > 1 && (parts[1] == parts[0] || parts[1].starts_with(&format!("{}-", parts[0])))
    {
        parts.remove(0);
    }
    let mut name = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if name.is_empty() {
        name = "workloads".into();
    }
    if name.len() > 56 {
        name.truncate(56);
        while name.ends_with('-') {
            name.pop();
        }
    }
    name
}

/// `orderInput` -> `order-input`, `my_app.v2` -> `my-app-v2`.
fn kebab(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            prev_lower = false;
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::Workload;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.insert(*k, *v);
        }
        l
    }

    #[test]
    fn stems_strip_generated_suffixes_only() {
        assert_eq!(stem("web-7d4b9c6f5d-x2k9p"), "web");
        assert_eq!(stem("db-0"), "db");
        assert_eq!(stem("build-28731-q8k2z"), "build");
        assert_eq!(stem("order-input"), "order-input");
        assert_eq!(stem("credit-check-geo-1"), "credit-check-geo");
        assert_eq!(stem("0"), "0");
    }

    #[test]
    fn keys_that_differ_between_replicas_are_volatile() {
        let ws = [
            Workload::new("ns", "api-0", labels(&[("app", "api"), ("shard-id", "a1")])),
            Workload::new("ns", "api-1", labels(&[("app", "api"), ("shard-id", "b7")])),
            Workload::new("ns", "job-5", labels(&[("app", "ci"), ("run", "job-5")])),
            Workload::new(
                "ns",
                "web-1",
                labels(&[("app", "web"), ("pod-template-hash", "abc"), ("tier", "fe")]),
            ),
        ];
        let v = volatile_keys(ws.iter());
        assert!(v.contains_key("shard-id"), "{v:?}");
        assert!(v.contains_key("run"), "value is the pod name: {v:?}");
        assert!(v.contains_key("pod-template-hash"));
        assert!(!v.contains_key("app") && !v.contains_key("tier"), "{v:?}");
    }

    #[test]
    fn selector_separates_a_group_from_one_that_adds_a_label() {
        let plain = labels(&[("app", "order"), ("component", "check")]);
        let geo = labels(&[("app", "order"), ("component", "check"), ("geo", "yes")]);
        let web = labels(&[("app", "order"), ("component", "web")]);
        let t = discriminate(&plain, &[&geo, &web]);
        assert_eq!(
            render(&t),
            r#"app == "order" && component == "check" && !has(geo)"#
        );
        let t = discriminate(&geo, &[&plain, &web]);
        assert_eq!(render(&t), r#"app == "order" && geo == "yes""#);
        assert_eq!(group_name("eu", &t), "eu-order-geo-yes");
        let t = discriminate(&web, &[&plain, &geo]);
        assert_eq!(render(&t), r#"app == "order" && component == "web""#);
    }

    #[test]
    fn names_are_dns_labels() {
        let t = vec![Term::Eq("app".into(), "orderInput".into())];
        assert_eq!(group_name("eu", &t), "eu-order-input");
        assert_eq!(kebab("my_app.v2"), "my-app-v2");
        let t = vec![Term::Eq("app".into(), "payments-gw".into())];
        assert_eq!(group_name("payments", &t), "payments-gw");
    }
}
