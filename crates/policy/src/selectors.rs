//! Resolved workload selectors: which namespaces and which labels.
//!
//! After [`crate::compile`] every way of naming workloads (a group, a bare selector in a
//! namespaced policy, a NetworkPolicy peer with namespaceSelector AND podSelector, ...)
//! is one [`EndpointSelector`]. The engine resolves each distinct one to the set of
//! identities it selects, once (the selector cache).

use std::collections::BTreeSet;
use std::fmt;

use bulkhead_model::{Labels, Selector, selector::LabelSource};

/// Namespace constraint of an endpoint selector; both parts must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NsMatch {
    /// The namespace must be one of these (None: any name).
    pub names: Option<BTreeSet<String>>,
    /// The namespace's labels must match (None: any labels).
    pub labels: Option<Selector>,
}

impl NsMatch {
    pub fn any() -> Self {
        NsMatch::default()
    }

    pub fn named(ns: &str) -> Self {
        NsMatch {
            names: Some([ns.to_string()].into()),
            labels: None,
        }
    }

    pub fn matches(&self, ns: &str, ns_labels: &Labels) -> bool {
        self.names.as_ref().is_none_or(|n| n.contains(ns))
            && self.labels.as_ref().is_none_or(|s| s.matches(ns_labels))
    }

    /// AND of two constraints.
    pub fn and(self, other: NsMatch) -> NsMatch {
        let names = match (self.names, other.names) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (a, b) => a.or(b),
        };
        let labels = match (self.labels, other.labels) {
            (Some(a), Some(b)) => Some(Selector::and([a, b])),
            (a, b) => a.or(b),
        };
        NsMatch { names, labels }
    }
}

/// Selects workloads: by namespace, then by workload labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointSelector {
    pub namespaces: NsMatch,
    pub labels: Selector,
}

impl EndpointSelector {
    pub fn matches<L: LabelSource + ?Sized>(
        &self,
        ns: &str,
        ns_labels: &Labels,
        labels: &L,
    ) -> bool {
        self.namespaces.matches(ns, ns_labels) && self.labels.matches(labels)
    }
}

impl fmt::Display for EndpointSelector {
    /// `app == "web" in namespace shop`, the way explain and lint describe selections.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.labels)?;
        if let Some(names) = &self.namespaces.names {
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            if list.len() == 1 {
                write!(f, " in namespace {}", list[0])?;
            } else {
                write!(f, " in namespaces {}", list.join(", "))?;
            }
        }
        if let Some(l) = &self.namespaces.labels {
            write!(f, " in namespaces where {l}")?;
        }
        if self.namespaces.names.is_none() && self.namespaces.labels.is_none() {
            f.write_str(" in any namespace")?;
        }
        Ok(())
    }
}
