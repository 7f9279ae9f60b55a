//! DNS query-name rules end to end: a real dnsmasq behind the agents' transparent proxy
//! (UDP by TPROXY, and TCP), real dig clients. The client may ask for names under
//! example.com only: those are answered by the server; any other name gets REFUSED from
//! the proxy over UDP and TCP, IPv4 and IPv6, and each refusal is an event.

mod common;

use std::process::{Command, Output};

const LAB: &str = "l7dnstest";

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

/// dig from the client pod: (status, answer section).
fn dig(server: &str, name: &str, tcp: bool) -> (String, String) {
    let mut args = vec!["lab", "exec", "--name", LAB, "apps/client-0", "--", "dig"];
    if tcp {
        args.push("+tcp");
    }
    let at = format!("@{server}");
    args.extend(["+time=2", "+tries=1", &at, name]);
    let o = bulkhead(&args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string();
    let answer = text
        .lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n");
    (status, answer)
}

#[test]
fn dns_query_names_are_enforced_by_the_proxy() {
    if !common::privileged("the DNS lab test") {
        return;
    }
    for p in ["dnsmasq", "dig"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {p} || test -x /usr/sbin/{p}")])
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
        "crates/cli/tests/fixtures/dns/",
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
    let dns = status["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["name"] == "infra/dns-0")
        .expect("infra/dns-0")
        .clone();
    let v4 = dns["ipv4"].as_str().expect("an IPv4 address").to_string();
    let v6 = dns["ipv6"].as_str().expect("an IPv6 address").to_string();
    for server in [&v4, &v6] {
        for tcp in [false, true] {
            let (st, answer) = dig(server, "api.example.com", tcp);
            assert_eq!(st, "NOERROR", "api.example.com via {server} tcp={tcp}");
            assert!(answer.contains("192.0.2.10"), "{answer}");
            let (st, answer) = dig(server, "evil.example.net", tcp);
            assert_eq!(st, "REFUSED", "evil.example.net via {server} tcp={tcp}");
            assert!(answer.is_empty(), "a refused query has no answer: {answer}");
        }
    }
    let events = bulkhead(&["events", "--lab", LAB, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let refused: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "request" && e["request"] == "dns evil.example.net")
        .collect();
    assert_eq!(refused.len(), 4, "one event per refused query:\n{events}");
    assert!(refused.iter().all(|e| e["refusal"] == "REFUSED"
        && e["decision"]["allowed"] == false
        && e["decision"]["detail"]["src"]["workload"] == "apps/client-0"));
}
