//! The PROXY protocol end to end: HAProxy (Debian's) in lb-0 passes each client's
//! address to nginx in web-0 with a PROXY header (version 1 on port 8001, version 2 on
//! 8002), and web-0's rule allows the load balancer `GET /ok` over HTTP. The agent's
//! proxy reads past the header to the request, passes the header on unchanged (nginx
//! answers with the client's address it read from it), allows /ok and refuses /admin with
//! 403 and an event that names the client behind the balancer (`forwarded_for`).

mod common;

use common::lab::{Lab, require};

const LAB: &str = "l7pptest";

#[test]
fn http_behind_a_proxy_protocol_header_is_decided() {
    if !common::privileged("the PROXY protocol lab test") {
        return;
    }
    require(&["haproxy", "nginx", "curl"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/proxyprotocol/"], &[]);
    let (web, lb, client) = (
        lab.ipv4("edge/web-0"),
        lab.ipv4("edge/lb-0"),
        lab.ipv4("edge/client-0"),
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 64\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen v1\n  bind :8001\n  server web {web}:8080 send-proxy\n\
             listen v2\n  bind :8002\n  server web {web}:8080 send-proxy-v2\n"
        ),
    )
    .expect("haproxy.cfg");
    let cfg = cfg.display().to_string();
    let (ok, out) = lab.run("edge/lb-0", &["haproxy", "-D", "-f", &cfg]);
    assert!(ok, "haproxy: {out}");
    // curl from client-0 through the load balancer: (status, body).
    let get = |port: u16, path: &str| {
        let url = format!("http://{lb}:{port}{path}");
        let (_, out) = lab.run(
            "edge/client-0",
            &["curl", "-s", "-m", "5", "-w", "\n%{http_code}", &url],
        );
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.to_string(), body.to_string())
    };
    for port in [8001, 8002] {
        // nginx (and the proxy in front of it) take a moment to listen.
        let start = std::time::Instant::now();
        let ok = loop {
            let r = get(port, "/ok");
            if r.0 == "200" || start.elapsed().as_secs() > 20 {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        };
        assert_eq!(ok.0, "200", "port {port}: {ok:?}");
        assert_eq!(ok.1.trim(), format!("client {client}"), "port {port}");
        assert_eq!(get(port, "/admin").0, "403", "port {port}");
    }
    let events = lab.events();
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "request"
                && e["request"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("http GET /admin"))
                && e["decision"]["allowed"] == false
        })
        .collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
    // Each names the client behind the balancer, from the header.
    for e in &refused {
        let behind = e["forwarded_for"].as_str().and_then(|s| s.rsplit_once(':'));
        assert_eq!(behind.map(|(ip, _)| ip), Some(client.as_str()), "{e:#}");
    }
    let flows = common::lab::settled(&["flows", "--lab", LAB, "-o", "json"]);
    let flows = String::from_utf8_lossy(&flows.stdout);
    assert!(
        flows
            .lines()
            .any(|l| l.contains("GET /admin")
                && l.contains(&format!("\"forwarded_for\":\"{client}:"))),
        "no flow record naming the client behind the balancer:\n{flows}"
    );
}
