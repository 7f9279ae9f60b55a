//! The oracle against the hand-written expectations, scenario by scenario.
//!
//! Both sides were written independently from the Kubernetes documentation; when
//! they disagree, one of them misreads it. The failure lists every differing cell
//! so the culprit can be worked out from the docs.

use std::path::Path;

use bulkhead_conformance::{
    Expectation, Matrix, diff, expected_matrix, load_scenario, oracle_matrix, scenario_dirs,
};

/// The scenario directory's name, for messages.
fn name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The oracle's matrix and the expected one for `dir`, or a readable error.
fn both_matrices(dir: &Path) -> Result<(Expectation, Matrix, Matrix), String> {
    let scenario = load_scenario(dir).map_err(|e| e.to_string())?;
    let expectation = Expectation::load(dir, &scenario.pods).map_err(|e| e.to_string())?;
    let expected = expectation.matrix(&scenario.pods);
    let got = oracle_matrix(&scenario, &expectation.probes);
    Ok((expectation, expected, got))
}

#[test]
fn there_are_enough_scenarios() {
    let dirs = scenario_dirs();
    assert!(dirs.len() >= 45, "only {} scenarios", dirs.len());
    // Every directory is `NN-short-name`, so the listing order is the numbering.
    for dir in &dirs {
        let name = name(dir);
        let (number, rest) = name.split_once('-').unwrap_or_default();
        assert!(
            number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty(),
            "scenario directory {name:?} is not named NN-short-name"
        );
    }
}

#[test]
fn oracle_agrees_with_every_expected_yaml() {
    let mut failures = Vec::new();
    for dir in scenario_dirs() {
        match both_matrices(&dir) {
            Err(error) => failures.push(format!("{}: cannot load: {error}", name(&dir))),
            Ok((expectation, expected, got)) => {
                let differences = diff(&expected, &got);
                if !differences.is_empty() {
                    failures.push(format!(
                        "{}: {}\n  {} differing cell(s) (expected = expected.yaml, got = oracle):\n    {}",
                        name(&dir),
                        expectation.description,
                        differences.len(),
                        differences.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
}

#[test]
fn expected_matrix_matches_the_documented_shape() {
    let dir = scenario_dirs()
        .into_iter()
        .next()
        .expect("at least one scenario");
    let matrix = expected_matrix(&dir).expect("the first scenario loads");
    let json: serde_json::Value = serde_json::from_str(&matrix.to_json()).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["allowed", "probes"]);
    let pods = load_scenario(&dir).unwrap().pods.len();
    assert_eq!(
        object["allowed"].as_object().unwrap().len(),
        pods * (pods - 1)
    );
    assert!(
        object["allowed"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.contains(" -> "))
    );
}

/// Scenarios written as twins: the same behaviour expressed two ways must give
/// the same matrix, from the oracle and from the expectations alike.
#[test]
fn equivalent_scenarios_give_equal_matrices() {
    let twins = [("49-same-behaviour-form-a", "50-same-behaviour-form-b")];
    let root = bulkhead_conformance::scenarios_root();
    for (a, b) in twins {
        let (_, expected_a, got_a) = both_matrices(&root.join(a)).unwrap();
        let (_, expected_b, got_b) = both_matrices(&root.join(b)).unwrap();
        assert_eq!(
            diff(&expected_a, &expected_b),
            Vec::<String>::new(),
            "{a} vs {b} (expected.yaml)"
        );
        assert_eq!(
            diff(&got_a, &got_b),
            Vec::<String>::new(),
            "{a} vs {b} (oracle)"
        );
    }
}
