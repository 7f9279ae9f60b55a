//! Small random scenarios for differential testing: the same seed always gives
//! the same three YAML files, so a failing seed can be replayed and shrunk by hand.
//!
//! The generator aims at the corners where engines go wrong rather than at
//! realism: a port name that maps to different numbers (or protocols) on
//! different pods, pods missing a name, `NotIn`/`DoesNotExist` against labels only
//! some objects have, `policyTypes` left to defaulting, empty-versus-missing
//! lists, `endPort` ranges, and `ipBlock`s against pods with and without IPs.
//! Everything it writes is valid Kubernetes YAML (the API server would accept
//! it), so any disagreement is a semantic one.

use serde_json::{Map, Value, json};

/// Probes worth asking about in a random scenario: every port number and
/// protocol the generator uses, so named ports and ranges are exercised.
pub const RANDOM_PROBES: [&str; 8] = [
    "TCP/80", "TCP/81", "TCP/8080", "UDP/53", "UDP/80", "UDP/81", "SCTP/80", "SCTP/81",
];

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 4] = ["a", "b", "c", "d"];
const IMAGE: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

/// Container ports a pod may declare: a name and the (number, protocol) choices
/// for it. `http`, `dns` and `metrics` deliberately differ from pod to pod.
const PORT_POOL: [(&str, &[(u16, &str)]); 7] = [
    ("serve-80-tcp", &[(80, "TCP")]),
    ("serve-81-tcp", &[(81, "TCP")]),
    ("serve-53-udp", &[(53, "UDP")]),
    ("serve-80-sctp", &[(80, "SCTP")]),
    ("http", &[(80, "TCP"), (81, "TCP"), (8080, "TCP")]),
    ("dns", &[(53, "UDP"), (53, "TCP")]),
    ("metrics", &[(81, "UDP"), (81, "SCTP"), (8080, "TCP")]),
];

/// Port names policies may use: the pool's, plus one no pod ever declares.
const POLICY_PORT_NAMES: [&str; 8] = [
    "serve-80-tcp",
    "serve-81-tcp",
    "serve-53-udp",
    "serve-80-sctp",
    "http",
    "dns",
    "metrics",
    "missing",
];

/// `ipBlock` CIDRs with `except`s strictly inside them. Pod IPs are
/// `10.<namespace index + 1>.0.<pod index + 1>`, so these cut across namespaces
/// and single pods; `192.168.0.0/16` contains no pod at all.
const IP_BLOCKS: [(&str, &[&str]); 6] = [
    ("10.0.0.0/8", &["10.1.0.0/16", "10.2.0.1/32"]),
    ("10.1.0.0/16", &["10.1.0.2/32"]),
    ("10.2.0.0/24", &[]),
    ("0.0.0.0/0", &["10.3.0.0/16"]),
    ("10.1.0.1/32", &[]),
    ("192.168.0.0/16", &[]),
];

/// The label keys and values selectors pick from; pods and namespaces only carry
/// some of the optional ones, so absent keys come up often.
const POD_LABELS: [(&str, &[&str]); 3] = [
    ("pod", &PODS),
    ("app", &["web", "db"]),
    ("tier", &["front", "back"]),
];
const NAMESPACE_LABELS: [(&str, &[&str]); 3] = [
    ("ns", &NAMESPACES),
    ("team", &["red", "blue"]),
    ("kubernetes.io/metadata.name", &NAMESPACES),
];

/// A deterministic random scenario: `(namespaces_yaml, pods_yaml, policies_yaml)`,
/// with 2-3 namespaces, 2-4 pods in each and 1-4 policies.
pub fn random_scenario(seed: u64) -> (String, String, String) {
    let mut rng = Rng::new(seed);
    let namespaces = &NAMESPACES[..2 + rng.below(2)];

    let namespace_docs = namespaces
        .iter()
        .map(|ns| namespace_doc(&mut rng, ns))
        .collect();

    let with_ips = rng.chance(50);
    let mut pod_docs = Vec::new();
    for (ns_index, ns) in namespaces.iter().enumerate() {
        for (pod_index, pod) in PODS[..2 + rng.below(3)].iter().enumerate() {
            // Even in a scenario with IPs, some pods are still waiting for one.
            let ip = (with_ips && rng.chance(85))
                .then(|| format!("10.{}.0.{}", ns_index + 1, pod_index + 1));
            pod_docs.push(pod_doc(&mut rng, ns, pod, ip));
        }
    }

    let policy_count = 1 + rng.below(4);
    let policy_docs = (0..policy_count)
        .map(|index| policy_doc(&mut rng, namespaces, index))
        .collect();

    (
        to_yaml(&mut rng, namespace_docs),
        to_yaml(&mut rng, pod_docs),
        to_yaml(&mut rng, policy_docs),
    )
}

fn namespace_doc(rng: &mut Rng, name: &str) -> Value {
    let mut labels = Map::new();
    labels.insert("ns".into(), json!(name));
    if rng.chance(50) {
        labels.insert("team".into(), json!(rng.pick(&["red", "blue"])));
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod_doc(rng: &mut Rng, namespace: &str, name: &str, ip: Option<String>) -> Value {
    let mut labels = Map::new();
    labels.insert("pod".into(), json!(name));
    for (key, values) in &POD_LABELS[1..] {
        if rng.chance(50) {
            labels.insert((*key).into(), json!(rng.pick(values)));
        }
    }

    let mut ports: Vec<Value> = Vec::new();
    let mut taken: Vec<(u16, &str)> = Vec::new();
    for (port_name, choices) in PORT_POOL {
        let (number, protocol) = *rng.pick(choices);
        // A pod declares each (number, protocol) once, under one name.
        if rng.chance(60) && !taken.contains(&(number, protocol)) {
            taken.push((number, protocol));
            ports.push(json!({"name": port_name, "containerPort": number, "protocol": protocol}));
        }
    }
    let mut container = json!({"name": "server", "image": IMAGE});
    if !ports.is_empty() {
        container["ports"] = json!(ports);
    }

    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [container]},
    });
    if let Some(ip) = ip {
        doc["status"] = json!({"podIP": ip, "podIPs": [{"ip": ip}]});
    }
    doc
}

fn policy_doc(rng: &mut Rng, namespaces: &[&str], index: usize) -> Value {
    let mut spec = Map::new();
    spec.insert("podSelector".into(), selector(rng, &POD_LABELS));
    // Leaving policyTypes out (or empty) hands the decision to defaulting.
    match rng.below(20) {
        0..7 => {}
        7 => {
            spec.insert("policyTypes".into(), json!([]));
        }
        8..12 => {
            spec.insert("policyTypes".into(), json!(["Ingress"]));
        }
        12..16 => {
            spec.insert("policyTypes".into(), json!(["Egress"]));
        }
        _ => {
            spec.insert("policyTypes".into(), json!(["Ingress", "Egress"]));
        }
    }
    for (direction, peers_field) in [("ingress", "from"), ("egress", "to")] {
        if let Some(rules) = rules(rng, peers_field) {
            spec.insert(direction.into(), rules);
        }
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": format!("policy-{index}"), "namespace": rng.pick(namespaces)},
        "spec": spec,
    })
}

/// An `ingress` or `egress` list, or `None` to leave the field out.
fn rules(rng: &mut Rng, peers_field: &str) -> Option<Value> {
    match rng.below(20) {
        0..5 => None,
        5..7 => Some(json!([])),
        // The allow-everything rule.
        7..9 => Some(json!([{}])),
        _ => {
            let rules = (0..1 + rng.below(2))
                .map(|_| rule(rng, peers_field))
                .collect();
            Some(Value::Array(rules))
        }
    }
}

fn rule(rng: &mut Rng, peers_field: &str) -> Value {
    let mut rule = Map::new();
    match rng.below(20) {
        0..6 => {}
        6 => {
            rule.insert(peers_field.into(), json!([]));
        }
        _ => {
            let peers = (0..1 + rng.below(2)).map(|_| peer(rng)).collect();
            rule.insert(peers_field.into(), Value::Array(peers));
        }
    }
    match rng.below(20) {
        0..7 => {}
        7 => {
            rule.insert("ports".into(), json!([]));
        }
        _ => {
            let ports = (0..1 + rng.below(2)).map(|_| policy_port(rng)).collect();
            rule.insert("ports".into(), Value::Array(ports));
        }
    }
    Value::Object(rule)
}

fn peer(rng: &mut Rng) -> Value {
    match rng.below(20) {
        0..6 => json!({"podSelector": selector(rng, &POD_LABELS)}),
        6..11 => json!({"namespaceSelector": selector(rng, &NAMESPACE_LABELS)}),
        11..16 => json!({
            "namespaceSelector": selector(rng, &NAMESPACE_LABELS),
            "podSelector": selector(rng, &POD_LABELS),
        }),
        _ => {
            let (cidr, excepts) = *rng.pick(&IP_BLOCKS);
            let mut block = json!({"cidr": cidr});
            if !excepts.is_empty() && rng.chance(60) {
                let chosen: Vec<&str> =
                    excepts.iter().copied().filter(|_| rng.chance(70)).collect();
                block["except"] = json!(chosen);
            }
            json!({"ipBlock": block})
        }
    }
}

/// A label selector over `vocabulary` (key, possible values); `{}` a fifth of the time.
fn selector(rng: &mut Rng, vocabulary: &[(&str, &[&str])]) -> Value {
    let mut selector = Map::new();
    let shape = rng.below(5);
    if shape == 1 || shape == 3 {
        let (key, values) = rng.pick(vocabulary);
        let mut labels = Map::new();
        labels.insert((*key).into(), json!(rng.pick(values)));
        selector.insert("matchLabels".into(), Value::Object(labels));
    }
    if shape >= 2 {
        let expressions = (0..1 + rng.below(2))
            .map(|_| requirement(rng, vocabulary))
            .collect();
        selector.insert("matchExpressions".into(), Value::Array(expressions));
    }
    Value::Object(selector)
}

fn requirement(rng: &mut Rng, vocabulary: &[(&str, &[&str])]) -> Value {
    let (key, values) = rng.pick(vocabulary);
    match rng.below(4) {
        0 | 1 => {
            // In or NotIn need at least one value; the first is always kept.
            let first = *rng.pick(values);
            let mut chosen = vec![first];
            chosen.extend(
                values
                    .iter()
                    .copied()
                    .filter(|v| *v != first && rng.chance(30)),
            );
            let operator = if rng.chance(50) { "In" } else { "NotIn" };
            json!({"key": key, "operator": operator, "values": chosen})
        }
        2 => json!({"key": key, "operator": "Exists"}),
        _ => json!({"key": key, "operator": "DoesNotExist"}),
    }
}

fn policy_port(rng: &mut Rng) -> Value {
    let mut port = Map::new();
    if rng.chance(60) {
        port.insert("protocol".into(), json!(rng.pick(&["TCP", "UDP", "SCTP"])));
    }
    match rng.below(20) {
        // No port: every port of the protocol.
        0..5 => {}
        5..13 => {
            let start: u16 = *rng.pick(&[53, 80, 81, 8080]);
            port.insert("port".into(), json!(start));
            if rng.chance(40) {
                let width: u16 = *rng.pick(&[0, 1, 100]);
                port.insert("endPort".into(), json!(start + width));
            }
        }
        _ => {
            port.insert("port".into(), json!(rng.pick(&POLICY_PORT_NAMES)));
        }
    }
    Value::Object(port)
}

/// Writes `docs` as a multi-document YAML file, or now and then as one `kind: List`
/// (kubectl accepts both).
fn to_yaml(rng: &mut Rng, docs: Vec<Value>) -> String {
    let docs = if rng.chance(15) {
        vec![json!({"apiVersion": "v1", "kind": "List", "items": docs})]
    } else {
        docs
    };
    docs.iter()
        .map(|doc| serde_saphyr::to_string(doc).expect("JSON values always serialise to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// SplitMix64: tiny, fast, and fixed forever, so seeds replay across versions
/// (a library RNG may change its stream between releases).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0); the modulo bias is irrelevant at these sizes.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
