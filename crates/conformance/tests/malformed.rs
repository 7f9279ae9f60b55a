//! A malformed scenario must fail with an error naming the file and saying what is
//! wrong, never with a panic or a silently different scenario.

use bulkhead_conformance::{Expectation, Scenario, load_scenario};

const NAMESPACES: &str =
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    ns: x\n";
const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: x\n\
                    spec:\n  containers:\n    - name: server\n      image: agnhost\n";

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: x\nspec:\n{spec}"
    )
}

/// Loads the three files and returns the error, which must name `file` and
/// contain every one of `words`.
fn error_of(namespaces: &str, pods: &str, policies: &str, file: &str, words: &[&str]) {
    let files = [
        ("namespaces.yaml", namespaces),
        ("pods.yaml", pods),
        ("policies.yaml", policies),
    ];
    let error = match Scenario::from_yaml(&files) {
        Ok(_) => panic!("expected an error mentioning {words:?}"),
        Err(error) => error,
    };
    assert_eq!(error.file, file, "{error}");
    let text = error.to_string();
    for word in words {
        assert!(text.contains(word), "{text:?} does not mention {word:?}");
    }
}

#[test]
fn well_formed_files_load_and_keep_y_a_string() {
    // `y` is a boolean in YAML 1.1; Kubernetes (and we) read it as the string "y".
    let namespaces =
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: y\n  labels:\n    ns: y\n";
    let pods = PODS.replace("namespace: x", "namespace: y");
    let scenario =
        Scenario::from_yaml(&[("n.yaml", namespaces), ("p.yaml", &pods), ("q.yaml", "")]).unwrap();
    assert_eq!(scenario.namespaces[0].labels["ns"], "y");
    assert_eq!(
        scenario.namespaces[0].labels["kubernetes.io/metadata.name"],
        "y"
    );
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    error_of(
        NAMESPACES,
        "kind: [Pod\n",
        "",
        "pods.yaml",
        &["invalid YAML"],
    );
}

#[test]
fn unknown_and_mistyped_fields_are_rejected() {
    let typo = policy("  podselector: {}\n");
    error_of(
        NAMESPACES,
        PODS,
        &typo,
        "policies.yaml",
        &["podselector", "NetworkPolicy p"],
    );
    let bad_protocol = policy("  ingress:\n    - ports:\n        - protocol: tcp\n");
    error_of(
        NAMESPACES,
        PODS,
        &bad_protocol,
        "policies.yaml",
        &["spec.ingress[0].ports[0].protocol"],
    );
    let bad_port = policy("  ingress:\n    - ports:\n        - port: 70000\n");
    error_of(
        NAMESPACES,
        PODS,
        &bad_port,
        "policies.yaml",
        &["spec.ingress[0].ports[0].port"],
    );
    let bad_cidr = policy("  egress:\n    - to:\n        - ipBlock:\n            cidr: 10.0.0.0\n");
    error_of(
        NAMESPACES,
        PODS,
        &bad_cidr,
        "policies.yaml",
        &["cidr", "not a CIDR"],
    );
}

#[test]
fn objects_the_api_server_would_refuse_are_rejected() {
    let cases = [
        ("  ingress:\n    - from:\n        - {}\n", "a peer must set"),
        (
            "  ingress:\n    - from:\n        - ipBlock: {cidr: 10.0.0.0/8}\n          podSelector: {}\n",
            "ipBlock cannot be combined",
        ),
        (
            "  egress:\n    - to:\n        - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}\n",
            "strictly inside",
        ),
        (
            "  egress:\n    - to:\n        - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}\n",
            "strictly inside",
        ),
        (
            "  ingress:\n    - ports:\n        - {port: http, endPort: 90}\n",
            "endPort needs a numeric port",
        ),
        (
            "  ingress:\n    - ports:\n        - {endPort: 90}\n",
            "endPort needs a numeric port",
        ),
        (
            "  ingress:\n    - ports:\n        - {port: 90, endPort: 80}\n",
            "below port",
        ),
        (
            "  ingress:\n    - ports:\n        - {port: \"80\"}\n",
            "not a valid port name",
        ),
        (
            "  podSelector:\n    matchExpressions:\n      - {key: a, operator: In}\n",
            "need values",
        ),
        (
            "  podSelector:\n    matchExpressions:\n      - {key: a, operator: Exists, values: [b]}\n",
            "take no values",
        ),
        ("  policyTypes: [ingress]\n", "policyTypes"),
    ];
    for (spec, words) in cases {
        error_of(NAMESPACES, PODS, &policy(spec), "policies.yaml", &[words]);
    }
}

#[test]
fn cross_document_mistakes_are_rejected() {
    let stray_pod = PODS.replace("namespace: x", "namespace: q");
    error_of(
        NAMESPACES,
        &stray_pod,
        "",
        "pods.yaml",
        &["pod q/a", "undeclared namespace"],
    );
    let twice = format!("{PODS}---\n{PODS}");
    error_of(NAMESPACES, &twice, "", "pods.yaml", &["x/a", "twice"]);
    let stray_policy = policy("  podSelector: {}\n").replace("namespace: x", "namespace: q");
    error_of(
        NAMESPACES,
        PODS,
        &stray_policy,
        "policies.yaml",
        &["NetworkPolicy q/p", "undeclared"],
    );
    error_of(
        NAMESPACES,
        PODS,
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        "policies.yaml",
        &["Service"],
    );
    error_of(
        NAMESPACES,
        PODS,
        &policy("  {}\n").replace("networking.k8s.io/v1", "v1"),
        "policies.yaml",
        &["apiVersion"],
    );
    let no_image = PODS.replace("      image: agnhost\n", "");
    error_of(NAMESPACES, &no_image, "", "pods.yaml", &["image"]);
    let bad_ip = format!("{PODS}status:\n  podIP: 10.0.0.300\n");
    error_of(NAMESPACES, &bad_ip, "", "pods.yaml", &["not an IP address"]);
}

#[test]
fn expectation_mistakes_are_rejected() {
    let scenario = Scenario::from_yaml(&[
        ("n", NAMESPACES),
        (
            "p",
            &format!("{PODS}---\n{}", PODS.replace("name: a", "name: b")),
        ),
    ])
    .unwrap();
    let cases = [
        ("rules: []\n", "description"),
        (
            "description: d\nrules:\n  - {from: \"x/q\", to: \"*\", allow: false}\n",
            "matches no pod",
        ),
        (
            "description: d\nrules:\n  - {from: \"x\", to: \"*\", allow: false}\n",
            "is not \"ns/pod\"",
        ),
        (
            "description: d\nrules:\n  - {from: \"*\", to: \"*\", probes: [\"UDP/99\"], allow: false}\n",
            "not among",
        ),
        (
            "description: d\nprobes: [\"TCP/80\", \"TCP/80\"]\n",
            "twice",
        ),
        ("description: d\nprobes: []\n", "empty"),
        (
            "description: d\nrules:\n  - {from: \"*\", to: \"*\", allowed: false}\n",
            "allowed",
        ),
    ];
    for (text, words) in cases {
        match Expectation::parse(text, &scenario.pods) {
            Ok(_) => panic!("{text:?} should be rejected"),
            Err(error) => assert!(
                error.contains(words),
                "{error:?} does not mention {words:?}"
            ),
        }
    }
}

#[test]
fn a_missing_directory_names_the_file() {
    let error = load_scenario("/nonexistent/scenario").unwrap_err();
    assert!(error.file.ends_with("namespaces.yaml"), "{error}");
    assert!(error.message.contains("cannot read"), "{error}");
}
