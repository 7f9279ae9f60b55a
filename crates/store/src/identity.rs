//! Who a conversation's end is, in terms that survive a pod's restart: the namespace and
//! the labels that identify the workload, never its address. The labels controllers put
//! on each replica or each revision (`pod-template-hash`, a StatefulSet pod's name, a
//! Job's controller uid) would make one identity per pod; they are left out, as Cilium's
//! identity-relevant label filter does. A Job's `job-name` is kept: one CI job's pods are
//! one identity, two jobs are two.

use bulkhead_record::Peer;

/// Labels that differ between replicas or revisions of the same workload.
const PER_INSTANCE: &[&str] = &[
    "pod-template-hash",
    "pod-template-generation",
    "controller-revision-hash",
    "controller-uid",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index",
];

/// `shop{app=web,tier=front}` for a workload, `host` or `world` for the others.
pub fn identity(p: &Peer) -> String {
    let mut out = String::with_capacity(p.namespace.as_ref().map_or(8, |ns| ns.len() + 32));
    write_identity(p, &mut out);
    out
}

/// [`identity`], appended to `out` (the writer keys its sums without an allocation).
pub(crate) fn write_identity(p: &Peer, out: &mut String) {
    let Some(ns) = &p.namespace else {
        out.push_str(p.entity.as_deref().unwrap_or("world"));
        return;
    };
    out.push_str(ns);
    out.push('{');
    let mut first = true;
    // A BTreeMap: the labels come sorted, so equal label sets give equal keys.
    for (k, v) in &p.labels {
        if PER_INSTANCE.contains(&k.as_str()) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, labels: &[(&str, &str)]) -> Peer {
        Peer {
            ip: "10.0.0.9".into(),
            workload: Some(format!("{ns}/x")),
            namespace: Some(ns.into()),
            name: Some("x".into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            entity: None,
        }
    }

    #[test]
    fn replicas_share_an_identity_and_addresses_never_appear() {
        let a = pod("shop", &[("app", "web"), ("pod-template-hash", "5d8f")]);
        let mut b = pod("shop", &[("app", "web"), ("pod-template-hash", "77aa")]);
        b.ip = "10.0.0.10".into();
        assert_eq!(identity(&a), "shop{app=web}");
        assert_eq!(identity(&a), identity(&b));
        assert_ne!(identity(&a), identity(&pod("other", &[("app", "web")])));
        let host = Peer {
            ip: "10.1.0.1".into(),
            entity: Some("host".into()),
            ..Peer::default()
        };
        assert_eq!(identity(&host), "host");
        let nobody = Peer {
            ip: "192.0.2.1".into(),
            ..Peer::default()
        };
        assert_eq!(identity(&nobody), "world");
    }
}
