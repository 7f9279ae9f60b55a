//! The random scenario generator: its YAML loads, the oracle evaluates it, it is
//! deterministic, and it actually reaches the features it is meant to exercise.
//! A few metamorphic checks on the oracle ride along, since random scenarios are
//! the cheapest way to feed it many different policies.

use bulkhead_conformance::{
    Matrix, Probe, RANDOM_PROBES, Scenario, oracle_matrix, parse_probes, random_scenario,
};

const SEEDS: u64 = 500;

fn probes() -> Vec<Probe> {
    parse_probes(&RANDOM_PROBES).expect("RANDOM_PROBES are well-formed")
}

/// Loads a generated scenario, with `extra_policies` appended to its policies.
fn load(seed: u64, extra_policies: &str) -> Scenario {
    let (namespaces, pods, policies) = random_scenario(seed);
    let policies = format!("{policies}\n---\n{extra_policies}");
    Scenario::from_yaml(&[
        ("namespaces.yaml", &namespaces),
        ("pods.yaml", &pods),
        ("policies.yaml", &policies),
    ])
    .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{namespaces}\n---\n{pods}\n---\n{policies}"))
}

fn allowed_cells(matrix: &Matrix) -> usize {
    matrix.allowed.values().map(Vec::len).sum()
}

fn all_cells(matrix: &Matrix) -> usize {
    matrix.allowed.len() * matrix.probes.len()
}

/// A policy in `namespace` selecting all its pods for both directions, with the
/// given rules (`[]` for none, `[{}]` for allow-everything).
fn whole_namespace_policy(name: &str, namespace: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\n\
         spec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n  ingress: {rules}\n  egress: {rules}\n"
    )
}

#[test]
fn five_hundred_seeds_load_and_evaluate() {
    let probes = probes();
    let mut partly_allowed = 0;
    for seed in 0..SEEDS {
        let scenario = load(seed, "");
        assert!(
            (2..=3).contains(&scenario.namespaces.len()),
            "seed {seed}: namespaces"
        );
        assert!(
            (1..=4).contains(&scenario.policies.len()),
            "seed {seed}: policies"
        );
        for ns in &scenario.namespaces {
            let pods = scenario
                .pods
                .iter()
                .filter(|p| p.namespace == ns.name)
                .count();
            assert!(
                (2..=4).contains(&pods),
                "seed {seed}: {pods} pods in {}",
                ns.name
            );
        }
        let matrix = oracle_matrix(&scenario, &probes);
        let pods = scenario.pods.len();
        assert_eq!(
            matrix.allowed.len(),
            pods * (pods - 1),
            "seed {seed}: every ordered pair present"
        );
        let allowed = allowed_cells(&matrix);
        if allowed > 0 && allowed < all_cells(&matrix) {
            partly_allowed += 1;
        }
    }
    // Scenarios where everything or nothing is allowed teach a differential test
    // little; most should land in between.
    assert!(
        partly_allowed >= SEEDS / 2,
        "only {partly_allowed} of {SEEDS} scenarios are mixed"
    );
}

#[test]
fn same_seed_same_scenario() {
    for seed in [0, 1, 42, u64::MAX] {
        assert_eq!(random_scenario(seed), random_scenario(seed), "seed {seed}");
    }
    assert_ne!(random_scenario(1), random_scenario(2));
}

#[test]
fn generator_reaches_every_feature() {
    let texts: Vec<String> = (0..SEEDS)
        .map(|seed| {
            let (namespaces, pods, policies) = random_scenario(seed);
            format!("{namespaces}\n{pods}\n{policies}")
        })
        .collect();
    let features = [
        "kind: List",
        "podIPs",
        "team:",
        "ipBlock",
        "except",
        "endPort",
        "protocol: SCTP",
        "protocol: UDP",
        "port: http",
        "port: missing",
        "namespaceSelector: {}",
        "podSelector: {}",
        "operator: In",
        "operator: NotIn",
        "operator: Exists",
        "operator: DoesNotExist",
        "kubernetes.io/metadata.name",
        "policyTypes: []",
        "- Egress",
        "ingress: []",
        "egress:\n  - {}",
        "from: []",
        "ports: []",
    ];
    for feature in features {
        let count = texts.iter().filter(|t| t.contains(feature)).count();
        assert!(
            count >= 5,
            "{feature:?} appears in only {count} of {SEEDS} scenarios"
        );
    }
}

#[test]
fn allow_all_everywhere_allows_everything() {
    // Policies only ever add allowances to the pods they isolate, so an
    // allow-everything policy in every namespace must open every cell, whatever the
    // random policies say.
    let probes = probes();
    for seed in 0..100 {
        let extra: Vec<String> = load(seed, "")
            .namespaces
            .iter()
            .map(|ns| whole_namespace_policy("allow-everything", &ns.name, "[{}]"))
            .collect();
        let matrix = oracle_matrix(&load(seed, &extra.join("---\n")), &probes);
        assert_eq!(allowed_cells(&matrix), all_cells(&matrix), "seed {seed}");
    }
}

#[test]
fn deny_all_never_allows_more() {
    // Policies are additive, so a deny-everything policy in x need not cut x off
    // (another policy may still allow traffic to its pods), but it can only ever
    // take allowances away.
    let probes = probes();
    for seed in 0..100 {
        let before = oracle_matrix(&load(seed, ""), &probes);
        let after = oracle_matrix(
            &load(seed, &whole_namespace_policy("deny-everything", "x", "[]")),
            &probes,
        );
        for (pair, cell) in &after.allowed {
            for probe in cell {
                assert!(
                    before.allows(pair, probe),
                    "seed {seed}: deny-all opened {pair} {probe}"
                );
            }
        }
    }
}

#[test]
fn deny_all_alone_cuts_exactly_its_namespace_off() {
    let probes = probes();
    for seed in 0..100 {
        let (namespaces, pods, _) = random_scenario(seed);
        let policies = whole_namespace_policy("deny-everything", "x", "[]");
        let files = [
            ("namespaces.yaml", &namespaces),
            ("pods.yaml", &pods),
            ("policies.yaml", &policies),
        ];
        let files = files.map(|(name, text)| (name, text.as_str()));
        let matrix = oracle_matrix(&Scenario::from_yaml(&files).unwrap(), &probes);
        for (pair, cell) in &matrix.allowed {
            let (source, destination) = pair.split_once(" -> ").unwrap();
            let touches_x = source.starts_with("x/") || destination.starts_with("x/");
            let expected = if touches_x { 0 } else { probes.len() };
            assert_eq!(cell.len(), expected, "seed {seed}: {pair} allows {cell:?}");
        }
    }
}
