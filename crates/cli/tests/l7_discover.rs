//! Learning the application protocol from traffic, for real: a lab with the agents'
//! proxy on and no group (every workload in Discover mode, fixtures/discover/), where a
//! client talks Redis (redis-cli to redis-server), HTTP (curl to the lab's HTTP server)
//! and MySQL (the mariadb client to mariadbd, whose server speaks first), and reads the
//! banner of a server-first protocol nobody names without delay. Each
//! connection is diverted to the proxy only to detect its protocol, then spliced: the
//! client gets its real answers. The agent records each with the protocol, `bulkhead
//! learn` over the lab's records writes `app: redis`, `app: http` and `app: mysql` on
//! those ports (and no rule without `app:` for them), and the proxy's latency (detection,
//! and the requests of the web server's one L7 rule) is a histogram in status.json and
//! in the server's `/metrics`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, bulkhead, require};

const LAB: &str = "discover";
const CLIENT: &str = "shop/client-0";
const DATA: &str = "/tmp/bulkhead-discover-my";

fn until(what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("{what} never happened: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Each rule of the proposal's YAML: its text from `- action:` to the next rule or
/// document.
fn rules_of(yaml: &str) -> Vec<String> {
    yaml.split("\n---")
        .flat_map(|doc| doc.split("- action:").skip(1).map(str::to_string))
        .collect()
}

#[test]
fn discover_connections_are_learned_with_their_protocol() {
    if !common::privileged("the L7 discover lab test") {
        return;
    }
    require(&[
        "redis-server",
        "redis-cli",
        "curl",
        "mariadb",
        "mariadbd",
        "mariadb-install-db",
        "wrk",
        "nstat",
    ]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/discover/"], &[DATA]);
    let (cache, web, db) = (
        lab.ipv4("shop/cache-0"),
        lab.ipv4("shop/web-0"),
        lab.ipv4("shop/db-0"),
    );

    // Redis: the client's commands and the server's answers pass unchanged.
    until("redis answering through the proxy", || {
        match lab.run(CLIENT, &["redis-cli", "-h", &cache, "PING"]) {
            (true, out) if out == "PONG" => Ok(()),
            (_, out) => Err(out),
        }
    });
    assert_eq!(
        lab.run(CLIENT, &["redis-cli", "-h", &cache, "SET", "k", "learnt"])
            .1,
        "OK"
    );
    assert_eq!(
        lab.run(CLIENT, &["redis-cli", "-h", &cache, "GET", "k"]).1,
        "learnt"
    );
    // Over IPv6 too (the divert rules exist for both families).
    let cache6 = lab.ipv6("shop/cache-0");
    assert_eq!(
        lab.run(CLIENT, &["redis-cli", "-h", &cache6, "GET", "k"]).1,
        "learnt"
    );
    // HTTP: the lab's server names itself and the request it got.
    let (ok, body) = lab.run(
        CLIENT,
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            &format!("http://{web}:8080/v1/items"),
        ],
    );
    assert!(ok, "{body}");
    assert!(
        body.contains("web-0") && body.contains("GET /v1/items"),
        "{body}"
    );
    // Connections that close after one response, opened as fast as the client can from
    // 64 ports, so it reuses them within the second: the proxy closes first, so it holds
    // each old connection in TIME_WAIT, and a new SYN on a reused port must reach the
    // proxy's listener, not the dead connection, which answers with an ACK the client
    // drops and leaves it waiting a second to retransmit its SYN. The client's own
    // counter of SYN retransmits says whether that happened (178 in a run when it did,
    // 0 since the divert rule only takes established connections to their socket).
    let (ok, out) = lab.run(
        CLIENT,
        &["sysctl", "-w", "net.ipv4.ip_local_port_range=40000 40063"],
    );
    assert!(ok, "{out}");
    let syn_retrans = || -> u64 {
        let (ok, out) = lab.run(CLIENT, &["nstat", "-az", "TcpExtTCPSynRetrans"]);
        assert!(ok, "{out}");
        out.lines()
            .find_map(|l| l.strip_prefix("TcpExtTCPSynRetrans"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no TcpExtTCPSynRetrans in {out}"))
    };
    let before = syn_retrans();
    let url = format!("http://{web}:8080/v1/items");
    let (ok, out) = lab.run(
        CLIENT,
        &["wrk", "-t1", "-c4", "-d2s", "-H", "Connection: close", &url],
    );
    assert!(ok && out.contains("Requests/sec"), "{out}");
    let retrans = syn_retrans() - before;
    assert!(
        retrans <= 4,
        "{retrans} SYN retransmits for connections closed by the proxy:\n{out}"
    );
    // A server-first protocol detection cannot name: the banner is not held (Discover
    // connections are detected as their bytes pass; holding it would wait for the
    // 3 s detection timeout).
    let banner = lab.ipv4("shop/banner-0");
    let script = format!("exec 3<>/dev/tcp/{banner}/7000; read -r -t 2 line <&3; echo \"$line\"");
    let t = Instant::now();
    let (ok, out) = lab.run(CLIENT, &["bash", "-c", &script]);
    assert!(ok && out.contains("bulkhead-lab"), "banner: {out}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // MySQL: the server speaks first (its greeting); a user for the client, made over
    // the server's local socket (no proxy on that path).
    until("mariadb creating the client's user", || {
        let sql = "CREATE USER IF NOT EXISTS 'app'@'%'; GRANT ALL ON *.* TO 'app'@'%'";
        let sock = format!("--socket={DATA}/sock");
        match lab.run("shop/db-0", &["mariadb", &sock, "-u", "root", "-e", sql]) {
            (true, _) => Ok(()),
            (false, out) => Err(out),
        }
    });
    let (ok, out) = lab.run(
        CLIENT,
        &[
            "mariadb",
            "-h",
            &db,
            "-u",
            "app",
            "-N",
            "-B",
            "-e",
            "SELECT 41+1",
        ],
    );
    assert!(ok && out == "42", "mariadb through the proxy: {out}");

    // The records carry the protocol the proxy detected.
    until("flow records with the detected protocols", || {
        let o = bulkhead(&["flows", "--lab", LAB, "-o", "json"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let records: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let v6 = records
            .iter()
            .any(|r| r["dst"]["ip"] == cache6.as_str() && r["l7"]["protocol"] == "redis");
        if !v6 {
            return Err(format!("no redis record to {cache6}:\n{text}"));
        }
        for (port, app) in [(6379, "redis"), (8080, "http"), (3306, "mysql")] {
            let found = records.iter().any(|r| {
                r["event"] == "new"
                    && r["verdict"] == "allow"
                    && r["dport"] == port
                    && r["learned"] == true
                    && r["l7"]["protocol"] == app
            });
            if !found {
                return Err(format!("no {app} record on {port}:\n{text}"));
            }
        }
        // HTTP's first request, as detection read it.
        let http = records
            .iter()
            .find(|r| r["l7"]["protocol"] == "http")
            .unwrap();
        assert_eq!(http["l7"]["detail"]["method"], "GET", "{http}");
        assert_eq!(http["l7"]["detail"]["path"], "/v1/items", "{http}");
        Ok(())
    });

    // Allowed connections leave no events, their records say it all: neither those
    // taken only for their protocol nor the one the L7 rule decided request by request
    // (every request allowed). Refusals and findings are events (crates/cli/tests/l7.rs).
    let events = lab.events();
    let to = |port: &str| {
        events
            .iter()
            .filter(|e| e["server"].as_str().unwrap_or("").ends_with(port))
            .count()
    };
    assert_eq!(
        to(":6379") + to(":3306") + to(":7000") + to(":8080"),
        0,
        "{events:#?}"
    );

    // Learning: one rule each way per port, with the protocol.
    let o = bulkhead(&["learn", "--lab", LAB, "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{yaml}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rules = rules_of(&yaml);
    for (port, app) in [("6379", "redis"), ("8080", "http"), ("3306", "mysql")] {
        let on_port: Vec<&String> = rules
            .iter()
            .filter(|r| r.contains(&format!("TCP/{port}")))
            .collect();
        assert_eq!(
            on_port.len(),
            2,
            "TCP/{port}: the client's egress and the server's ingress:\n{yaml}"
        );
        for r in on_port {
            assert!(r.contains(&format!("app: {app}")), "{r}\n{yaml}");
        }
    }

    // The proxy's detection latency: in status.json, and as a Prometheus histogram.
    let status_path = format!("/run/bulkhead/labs/{LAB}/agents/node-1/status.json");
    until("proxy latency in status.json", || {
        let text = std::fs::read_to_string(&status_path).map_err(|e| e.to_string())?;
        let s: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let hists = s["proxy_latency"].as_array().cloned().unwrap_or_default();
        for app in ["redis", "http", "mysql"] {
            let h = hists
                .iter()
                .find(|h| h["stage"] == "detect" && h["protocol"] == app)
                .ok_or(format!("no detect histogram for {app}: {text}"))?;
            let count = h["count"].as_u64().unwrap_or(0);
            let sum = h["sum"].as_f64().unwrap_or(-1.0);
            // Detection settles on the first bytes: well under the 3 s timeout.
            if count == 0 || !(0.0..count as f64 * 2.0).contains(&sum) {
                return Err(format!("{app}: {h}"));
            }
        }
        // The HTTP session decided the GET (the web server's L7 rule).
        let request = hists
            .iter()
            .find(|h| h["stage"] == "request" && h["protocol"] == "http")
            .ok_or(format!("no request histogram for http: {text}"))?;
        if request["count"].as_u64().unwrap_or(0) == 0 {
            return Err(format!("{request}"));
        }
        Ok(())
    });
    let metrics = scrape_metrics(LAB);
    for (stage, app) in [
        ("detect", "redis"),
        ("detect", "http"),
        ("detect", "mysql"),
        ("request", "http"),
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("bulkhead_proxy_latency_seconds_count{")
                    && l.contains(&format!("stage=\"{stage}\""))
                    && l.contains(&format!("protocol=\"{app}\""))
            })
            .unwrap_or_else(|| panic!("no {stage} latency for {app}:\n{metrics}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
    }
}

/// `bulkhead serve --lab NAME` on a free loopback port; its `/metrics`.
fn scrape_metrics(lab: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "discover-test-token\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    struct Served(std::process::Child);
    impl Drop for Served {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _served = Served(
        Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args(["serve", "--lab", lab, "-f"])
            .arg(&policy)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--token-file"])
            .arg(&token)
            .env_remove("BULKHEAD_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = String::new();
    until("the server's /metrics", || {
        let o = Command::new("curl")
            .args(["-sS", "-f", "-m", "5", "-H"])
            .arg("Authorization: Bearer discover-test-token")
            .arg(format!("http://127.0.0.1:{port}/metrics"))
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).to_string());
        }
        out = String::from_utf8_lossy(&o.stdout).to_string();
        Ok(())
    });
    out
}
