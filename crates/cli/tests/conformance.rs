//! Kubernetes NetworkPolicy conformance, end to end: `bulkhead analyze matrix -f DIR
//! -o json` (the real binary, the way users and the independent checker run it) must
//! equal the hand-written expected matrix of every scenario in conformance/scenarios,
//! and the engine must agree with the independent naive oracle on random scenarios.

use std::path::Path;
use std::process::Command;

use bulkhead_analyze::Family;
use bulkhead_conformance::{
    Matrix, diff, expected_matrix, oracle_matrix, parse_probes, random, scenario_dirs,
};

fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

fn matrix_json(args: &[&str]) -> Result<Matrix, String> {
    let out = bulkhead()
        .args(["analyze", "matrix", "-o", "json"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON: {e}"))
}

#[test]
fn every_scenario_matches_its_expected_matrix() {
    let dirs = scenario_dirs();
    assert!(dirs.len() >= 40, "only {} scenarios found", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        let expected = expected_matrix(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut args: Vec<String> = Vec::new();
        for p in &expected.probes {
            args.push("--probe".into());
            args.push(p.clone());
        }
        // The directory itself, as the checker passes it.
        args.push("-f".into());
        args.push(dir.display().to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match matrix_json(&argv) {
            Ok(got) => {
                let d = diff(&expected, &got);
                if !d.is_empty() {
                    failures.push(format!("{}:\n  {}", dir.display(), d.join("\n  ")));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenarios differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The engine (through the manifest decoder and the analyzer, in process) agrees with
/// the independent oracle on seeded random scenarios.
#[test]
fn engine_agrees_with_the_oracle_on_random_scenarios() {
    let probes_text: Vec<&str> = random::RANDOM_PROBES.to_vec();
    let probes = parse_probes(&probes_text).unwrap();
    let l4s: Vec<bulkhead_model::L4> = probes_text.iter().map(|p| p.parse().unwrap()).collect();
    let seeds: u64 = std::env::var("BULKHEAD_RANDOM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    for seed in 0..seeds {
        let (ns, pods, policies) = random::random_scenario(seed);
        let files = [
            ("namespaces.yaml", ns),
            ("pods.yaml", pods),
            ("policies.yaml", policies),
        ];
        let scenario = bulkhead_conformance::Scenario::from_yaml(
            &files
                .iter()
                .map(|(n, t)| (*n, t.as_str()))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: oracle could not load: {e}"));
        let expected = oracle_matrix(&scenario, &probes);
        let sources: Vec<bulkhead_manifest::Source> = files
            .iter()
            .map(|(n, t)| bulkhead_manifest::Source {
                name: n.to_string(),
                text: t.clone(),
            })
            .collect();
        let bundle = bulkhead_manifest::parse_sources(&sources)
            .unwrap_or_else(|d| panic!("seed {seed}: bulkhead could not load:\n{d}"));
        let engine = bulkhead_policy::Engine::new(&bundle).unwrap();
        let got = bulkhead_analyze::matrix(&engine, &l4s, Family::V4);
        let got: Matrix = serde_json::from_value(serde_json::to_value(&got).unwrap()).unwrap();
        let d = diff(&expected, &got);
        assert!(
            d.is_empty(),
            "seed {seed}: engine and oracle differ (see `cargo run -p bulkhead-conformance --example show_random -- {seed}`):\n  {}",
            d.join("\n  ")
        );
    }
}

#[test]
fn scenario_files_exist() {
    assert!(Path::new(&bulkhead_conformance::scenarios_root()).is_dir());
}
