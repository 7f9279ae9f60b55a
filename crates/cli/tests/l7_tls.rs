//! TLS server-name rules end to end: a real `openssl s_server` behind the agents'
//! transparent proxy, real curl clients. The policy allows TLS to the API only for
//! api.example.com: that name completes the handshake and gets the page; the same
//! server asked for admin.example.com gets a TLS access_denied alert from the proxy,
//! nothing reaches the server, and the refusal is an event with the name.

mod common;

use common::lab::{Lab, require};

const LAB: &str = "l7tlstest";

/// curl from the client pod to the API under `name`: (exit success, output).
fn curl(lab: &Lab, ip: &str, name: &str) -> (bool, String) {
    lab.run(
        "web/client-0",
        &[
            "curl",
            "-sSk",
            "-m",
            "5",
            "--resolve",
            &format!("{name}:8443:{ip}"),
            &format!("https://{name}:8443/"),
        ],
    )
}

#[test]
fn tls_server_names_are_enforced_by_the_proxy() {
    if !common::privileged("the TLS lab test") {
        return;
    }
    require(&["openssl", "curl"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/tls/"], &[]);
    let ip = lab.ipv4("web/api-0");
    // openssl s_server answers `-www` requests with a status page.
    let mut allowed = (false, String::new());
    for _ in 0..30 {
        allowed = curl(&lab, &ip, "api.example.com");
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
    let (ok, text) = curl(&lab, &ip, "admin.example.com");
    assert!(!ok, "admin.example.com must be refused: {text}");
    assert!(
        text.contains("access denied") || text.contains("alert"),
        "curl should report the TLS alert: {text}"
    );

    let events = lab.events();
    let refused = events
        .iter()
        .find(|e| e["event"] == "request")
        .unwrap_or_else(|| panic!("no refused request event:\n{events:#?}"));
    assert_eq!(refused["request"], "tls admin.example.com");
    assert_eq!(refused["refusal"], "TLS alert access_denied");
    assert_eq!(refused["decision"]["allowed"], false);
}
