//! TLS server-name rules end to end: a real `openssl s_server` behind the agents'
//! transparent proxy, real curl clients. The policy allows TLS to the API only for
//! api.example.com: that name completes the handshake and gets the page; the same
//! server asked for admin.example.com gets a TLS access_denied alert from the proxy,
//! nothing reaches the server, and the refusal is an event with the name.

mod common;

use std::process::{Command, Output};

const LAB: &str = "l7tlstest";

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("running bulkhead")
}

struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", LAB]);
    }
}

/// curl from the client pod to the API under `name`: (exit success, output).
fn curl(ip: &str, name: &str) -> (bool, String) {
    let o = bulkhead(&[
        "lab",
        "exec",
        "--name",
        LAB,
        "web/client-0",
        "--",
        "curl",
        "-sSk",
        "-m",
        "5",
        "--resolve",
        &format!("{name}:8443:{ip}"),
        &format!("https://{name}:8443/"),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn tls_server_names_are_enforced_by_the_proxy() {
    if !common::privileged("the TLS lab test") {
        return;
    }
    for p in ["openssl", "curl"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{p} is not installed (scripts/setup installs it)");
    }
    let _lock = common::lab_lock();
    let _lab = Lab;
    let up = bulkhead(&[
        "lab",
        "up",
        "-f",
        "crates/cli/tests/fixtures/tls/",
        "--l7-proxy",
        "--name",
        LAB,
        "-o",
        "json",
    ]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&up.stdout).expect("lab up -o json");
    let ip = status["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["name"] == "web/api-0")
        .and_then(|w| w["ipv4"].as_str())
        .expect("web/api-0 and its address")
        .to_string();
    // openssl s_server answers `-www` requests with a status page.
    let mut allowed = (false, String::new());
    for _ in 0..30 {
        allowed = curl(&ip, "api.example.com");
        if allowed.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        allowed.0 && allowed.1.contains("s_server"),
        "api.example.com: {}",
        allowed.1
    );
    let (ok, text) = curl(&ip, "admin.example.com");
    assert!(!ok, "admin.example.com must be refused: {text}");
    assert!(
        text.contains("access denied") || text.contains("alert"),
        "curl should report the TLS alert: {text}"
    );

    let events = bulkhead(&["events", "--lab", LAB, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let refused: serde_json::Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "request")
        .unwrap_or_else(|| panic!("no refused request event:\n{events}"));
    assert_eq!(refused["request"], "tls admin.example.com");
    assert_eq!(refused["refusal"], "TLS alert access_denied");
    assert_eq!(refused["decision"]["allowed"], false);
}
