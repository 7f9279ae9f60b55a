//! Hostile and broken input: never a panic, always Ok or at least one diagnostic.

use std::time::{Duration, Instant};

use bulkhead_manifest::{Source, parse_sources};
use proptest::prelude::*;

/// A valid file touching every decoder, to mutate.
const SEED: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: blue}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: shop}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [api]}]}
  ingress:
    - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
      ports: [{port: 80, endPort: 90}, {port: http}]
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: api}
spec: {selector: 'app == "api"', namespaces: [shop], mode: Protect}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: p}
spec:
  appliesTo: {group: api}
  ingress:
    - {action: Allow, from: [{group: web}], ports: [TCP/80, ICMP/8/0], app: http, http: [{method: GET, path: "/a.*"}]}
  egress:
    - {action: Allow, to: [{dns: "*.example.com"}], app: dns, dns: ["*.example.com"]}
---
apiVersion: bulkhead.io/v1
kind: Settings
metadata: {name: default}
spec: {ungroupedMode: Monitor}
"#;

fn check(text: &str) {
    let src = Source {
        name: "fuzz.yaml".into(),
        text: text.into(),
    };
    if let Err(e) = parse_sources(&[src]) {
        assert!(!e.is_empty(), "Err without diagnostics for {text:?}");
        for d in e.iter() {
            assert!(
                !d.to_string().contains('\n'),
                "a diagnostic spans lines: {d}"
            );
        }
    }
}

#[test]
fn the_seed_is_valid() {
    let src = Source {
        name: "seed.yaml".into(),
        text: SEED.into(),
    };
    let b = parse_sources(&[src]).unwrap();
    assert_eq!(b.inventory.workloads.len(), 3);
}

/// Characters that matter to YAML and to our decoders.
const ALPHABET: &[u8] = b" \n\t:-[]{},\"'#&*!|>%@`?~01289.aZ/_=&|";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_manifests_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(ALPHABET)), 1..8)
    ) {
        let mut text = SEED.as_bytes().to_vec();
        for (at, op, byte) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => text.insert(i, byte),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = byte,
                _ => {}
            }
        }
        check(&String::from_utf8_lossy(&text));
    }
}

#[test]
fn deep_nesting_fails_fast() {
    for text in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        "- ".repeat(100_000),
        (0..100_000)
            .map(|i| format!("{}a:\n", " ".repeat(i % 200)))
            .collect::<String>(),
    ] {
        let start = Instant::now();
        let src = Source {
            name: "deep.yaml".into(),
            text,
        };
        let err = parse_sources(&[src]).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        assert!(!err.is_empty());
    }
}

#[test]
fn alias_bombs_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10u8 {
        let (prev, cur) = ((b'a' + i - 1) as char, (b'a' + i) as char);
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
    }
    let err = parse_sources(&[Source {
        name: "bomb.yaml".into(),
        text: bomb,
    }])
    .unwrap_err();
    assert!(err.to_string().contains("too many YAML nodes"), "{err}");
}
