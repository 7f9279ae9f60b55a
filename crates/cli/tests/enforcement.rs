//! What `explain` says is what the kernel does: for the bundled example and every
//! NetworkPolicy conformance scenario, `bulkhead lab probe` (real packets through the
//! real nftables programmed by the real agent) equals `bulkhead analyze matrix` computed
//! on the same inventory (the lab's, with its addresses), over IPv4 and IPv6, TCP, UDP,
//! SCTP and ICMP. Root only; CI runs it as root with BULKHEAD_REQUIRE_PRIVILEGED=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bulkhead(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run bulkhead");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running lab, brought down when dropped (also when the test fails).
struct Lab(String);

impl Lab {
    fn up(name: &str, input: &str) -> Lab {
        let _ = bulkhead(&["lab", "down", "--name", name]);
        let (ok, out, err) = bulkhead(&["lab", "up", "-f", input, "--name", name]);
        assert!(ok, "lab up {input}: {out}{err}");
        Lab(name.to_string())
    }

    fn inventory(&self) -> String {
        format!("/run/bulkhead/labs/{}/inventory.yaml", self.0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", &self.0]);
    }
}

fn probe_args(probes: &[&str]) -> Vec<String> {
    probes
        .iter()
        .flat_map(|p| ["--probe".to_string(), p.to_string()])
        .collect()
}

/// Probe for real and compute with the analyzer; return a readable difference, if any.
fn compare(lab: &Lab, input: &str, family: &str, probes: &[&str]) -> Option<String> {
    let mut args = vec![
        "lab", "probe", "--name", &lab.0, "--family", family, "-o", "json",
    ];
    let p = probe_args(probes);
    args.extend(p.iter().map(String::as_str));
    let (ok, real, err) = bulkhead(&args);
    assert!(ok, "lab probe: {err}");
    let inventory = lab.inventory();
    let mut args = vec![
        "analyze",
        "matrix",
        "-f",
        input,
        "--inventory",
        &inventory,
        "--family",
        family,
        "-o",
        "json",
    ];
    args.extend(p.iter().map(String::as_str));
    let (ok, predicted, err) = bulkhead(&args);
    assert!(ok, "analyze matrix: {err}");
    if real == predicted {
        return None;
    }
    let real: bulkhead_conformance::Matrix = serde_json::from_str(&real).unwrap();
    let predicted: bulkhead_conformance::Matrix = serde_json::from_str(&predicted).unwrap();
    let d = bulkhead_conformance::diff(&predicted, &real);
    Some(format!(
        "{input} ({family}): analyzer (expected) vs kernel (got):\n  {}",
        d.join("\n  ")
    ))
}

const V4: &[&str] = &["TCP/80", "TCP/81", "UDP/53", "SCTP/80", "ICMP"];
const V6: &[&str] = &["TCP/80", "UDP/53", "SCTP/80", "ICMPv6"];

#[test]
fn kernel_equals_analyzer_on_every_conformance_scenario() {
    if !common::privileged("the enforcement test") {
        return;
    }
    let _lock = common::lab_lock();
    let mut failures = Vec::new();
    let dirs = bulkhead_conformance::scenario_dirs();
    for (i, dir) in dirs.iter().enumerate() {
        let input = dir.display().to_string();
        let lab = Lab::up(&format!("enf{i}"), &input);
        failures.extend(compare(&lab, &input, "ipv4", V4));
        failures.extend(compare(&lab, &input, "ipv6", V6));
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn kernel_equals_analyzer_on_the_example() {
    if !common::privileged("the enforcement test") {
        return;
    }
    let _lock = common::lab_lock();
    let probes = [
        "TCP/8080", "TCP/5432", "TCP/389", "TCP/6379", "TCP/8443", "UDP/53", "ICMP",
    ];
    let lab = Lab::up("enfex", "examples/");
    let mut failures = Vec::new();
    failures.extend(compare(&lab, "examples/", "ipv4", &probes));
    let probes6 = ["TCP/8080", "TCP/6379", "UDP/53", "ICMPv6"];
    failures.extend(compare(&lab, "examples/", "ipv6", &probes6));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
