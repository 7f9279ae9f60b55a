//! Rules on requests whatever their action: a Deny of DELETE requests before an Allow
//! of the port, against a real HTTP server (python3's http.server, which answers a
//! DELETE with 501). The DELETE gets the proxy's 403 and never reaches the server; a
//! GET is answered; `explain` says the same as the wire. (Before, only rules that allow
//! were diverted to the proxy: the kernel took the Allow, and the server answered the
//! DELETE with its 501 while `explain` said denied.)

mod common;

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
    let curl = |method: &str| {
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
            &url,
        ];
        lab.run(CLIENT, &args).1
    };
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
