//! Rules on requests whatever their action: a Deny of DELETE requests before an Allow
//! of the port, against a real HTTP server (python3's http.server, which answers a
//! DELETE with 501). The DELETE gets the proxy's 403 and never reaches the server; a
//! GET is answered; `explain` says the same as the wire. (Before, only rules that allow
//! were diverted to the proxy: the kernel took the Allow, and the server answered the
//! DELETE with its 501 while `explain` said denied.)

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::lab::{Lab, require};

const CLIENT: &str = "shop/client-0";

#[test]
fn a_deny_on_requests_before_an_allow_is_enforced() {
    if !common::privileged("the gated Deny lab test") {
        return;
    }
    require(&["curl", "/usr/bin/python3"]);
    let _lock = common::lab_lock();
    let lab = Lab::up("l7gated", &["crates/cli/tests/fixtures/gated/"], &[]);
    let url = format!("http://{}:8080/", lab.ipv4("shop/web-0"));
    let curl = |method: &str| status(&lab, &url, method);
    let start = std::time::Instant::now();
    let get = loop {
        let r = curl("GET");
        if r == "200" || start.elapsed().as_secs() > 20 {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(get, "200");
    assert_eq!(curl("DELETE"), "403");
    let events = lab.events_until(|e| e.iter().any(|x| x["event"] == "request"));
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "request" && e["decision"]["allowed"] == false)
        .collect();
    assert_eq!(refused.len(), 1, "{events:#?}");
    assert!(
        refused[0]["request"]
            .as_str()
            .unwrap()
            .starts_with("http DELETE /"),
        "{:#}",
        refused[0]
    );
    // What the analyzer says of the same request.
    let explain = common::lab::bulkhead(&[
        "explain",
        "-f",
        "crates/cli/tests/fixtures/gated/policy.yaml",
        "--inventory",
        "/run/bulkhead/labs/l7gated/inventory.yaml",
        "shop/client-0",
        "shop/web-0",
        "TCP/8080",
        "--request",
        "http DELETE /",
    ]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("DENIED") || text.contains("denied"), "{text}");
}

/// A connection opened on the kernel's path before a rule on requests applied to its
/// port: once the rule is in, the agent cuts it (its next packet reaches the proxy,
/// which holds no such connection and resets it), so its client connects again and is
/// read. Before, it stayed on the kernel's path until it ended: a DELETE sent on it
/// after the rule reached the server (python's http.server answered 501).
#[test]
fn a_connection_older_than_a_rule_on_requests_is_cut() {
    if !common::privileged("the lab test of connections older than a rule") {
        return;
    }
    require(&["curl", "/usr/bin/python3"]);
    let _lock = common::lab_lock();
    let fixture =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gated"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(fixture.join("lab.yaml"), dir.path().join("lab.yaml")).unwrap();
    let gated = std::fs::read_to_string(fixture.join("policy.yaml")).unwrap();
    // First the port alone: the connections stay on the kernel's path.
    let start = gated
        .find("    - action: Deny")
        .expect("the fixture's Deny rule");
    let end = gated
        .find("    - action: Allow")
        .expect("the fixture's Allow rule");
    let port_only = format!("{}{}", &gated[..start], &gated[end..]);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, &port_only).unwrap();
    let lab = Lab::up("l7older", &[&format!("{}/", dir.path().display())], &[]);
    let ip = lab.ipv4("shop/web-0");
    let url = format!("http://{ip}:8080/");
    let curl = |method: &str| status(&lab, &url, method);
    let waited = Instant::now();
    while curl("GET") != "200" {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the server never answered"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(curl("DELETE"), "501", "DELETE is refused before the rule");
    let ns = "bh-l7older.pod.shop.client-0";
    let addr: std::net::Ipv4Addr = ip.parse().unwrap();
    let mut held =
        bulkhead_lab::netns::enter(ns, || Ok(std::net::TcpStream::connect((addr, 8080))?))
            .expect("connect");
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cut = || lab.connections_cut();
    let cut_before = cut();

    std::fs::write(&policy, &gated).unwrap();
    let waited = Instant::now();
    while curl("DELETE") != "403" {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the rule never applied"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let waited = Instant::now();
    while cut() == cut_before && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = held.write_all(b"DELETE / HTTP/1.0\r\n\r\n");
    let mut answer = Vec::new();
    let read = held.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.contains("501"),
        "the DELETE on the connection opened before the rule reached the server: {answer:?}"
    );
    assert!(
        sent.is_err() || read.is_err() || answer.is_empty(),
        "{sent:?} {read:?} {answer:?}"
    );
    assert!(cut() > cut_before, "no connection was cut");
}

/// The HTTP status CLIENT gets for `method` on `url` (curl's `%{http_code}`).
fn status(lab: &Lab, url: &str, method: &str) -> String {
    let args = [
        "curl",
        "-s",
        "-m5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        method,
        url,
    ];
    lab.run(CLIENT, &args).1
}
