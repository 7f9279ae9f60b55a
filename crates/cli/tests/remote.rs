//! `bulkhead serve` as a process, and the CLI talking to it over TLS with `--server`:
//! the remote answers print exactly what the local commands print.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn examples() -> String {
    format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("BULKHEAD_SERVER")
        .env_remove("BULKHEAD_TOKEN")
        .output()
        .expect("bulkhead runs")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn record(i: u32, verdict: &str) -> bulkhead_store::FlowRecord {
    serde_json::from_value(serde_json::json!({
        "time": format!("2026-12-01T10:00:{i:02}.000Z"), "event": "new", "verdict": verdict,
        "protocol": "TCP", "sport": 40000 + i, "dport": 8080,
        "src": {"ip": "10.1.0.1", "workload": "eu/credit-check-0", "namespace": "eu", "name": "credit-check-0", "labels": {}},
        "dst": {"ip": "10.1.0.2", "workload": "us/credit-status-1", "namespace": "us", "name": "credit-status-1", "labels": {}},
        "decided_by": {"side": "ingress", "tier": "mode", "mode": "Protect", "group": "cust-record"},
        "generation": 1
    }))
    .unwrap()
}

fn setup(dir: &Path) -> (Served, Vec<String>) {
    let state = dir.join("node-1");
    std::fs::create_dir_all(&state).unwrap();
    let mut store = bulkhead_store::Store::open(&state.join(bulkhead_store::FILE)).unwrap();
    let records: Vec<_> = (0..12)
        .map(|i| record(i, if i % 4 == 0 { "deny" } else { "allow" }))
        .collect();
    store.write_flows(&records).unwrap();
    drop(store);
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("token"), "remote-test-token\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |f: &str| dir.join(f).display().to_string();
    let child = Command::new(BIN)
        .args(["serve", "--state", &p("node-1"), "-f", &examples()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--tls-cert", &p("cert.pem"), "--tls-key", &p("key.pem")])
        .args(["--token-file", &p("token")])
        .env_remove("BULKHEAD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let remote = vec![
        "--server".into(),
        format!("https://127.0.0.1:{port}"),
        "--token-file".into(),
        p("token"),
        "--ca-cert".into(),
        p("cert.pem"),
    ];
    (served, remote)
}

#[test]
fn remote_commands_print_what_local_ones_print() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, remote) = setup(dir.path());
    let state = dir.path().join("node-1").display().to_string();
    let with = |args: &[&str]| {
        let mut v: Vec<&str> = remote.iter().map(String::as_str).collect();
        v.extend(args);
        run(&v)
    };
    for args in [
        vec!["-o", "json"],
        vec!["--verdict", "deny", "-o", "json"],
        vec!["--limit", "3"],
        vec![
            "--workload",
            "eu/credit-check-0",
            "--since",
            "3650d",
            "-o",
            "json",
        ],
    ] {
        let local = stdout(&run(
            &[&["flows", "--state-dir", &state][..], &args].concat()
        ));
        let r = stdout(&with(&[&["flows"][..], &args].concat()));
        assert!(!local.is_empty());
        assert_eq!(r, local, "flows {args:?}");
    }
    let local = stdout(&run(&[
        "events",
        "--state-dir",
        &state,
        "--all",
        "-o",
        "json",
    ]));
    assert_eq!(stdout(&with(&["events", "--all", "-o", "json"])), local);
    // YAML: one document per record, the same records as the JSON lines, locally and
    // through the server alike.
    for (cmd, all) in [("flows", None), ("events", Some("--all"))] {
        let args = |fmt: &'static str| {
            let mut v = vec![cmd];
            v.extend(all);
            v.extend(["-o", fmt]);
            v
        };
        let local = |fmt| stdout(&run(&[&args(fmt)[..], &["--state-dir", &state]].concat()));
        let (json, yaml) = (local("json"), local("yaml"));
        let docs: Vec<&str> = yaml.split("---\n").skip(1).collect();
        assert_eq!(docs.len(), json.lines().count(), "{cmd} -o yaml:\n{yaml}");
        assert!(yaml.is_empty() || yaml.starts_with("---\n") && yaml.ends_with('\n'));
        assert!(
            cmd == "events" || !yaml.is_empty(),
            "no flow records to print"
        );
        for (doc, line) in docs.iter().zip(json.lines()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let time = format!("time: \"{}\"\n", v["time"].as_str().unwrap());
            assert!(doc.contains(&time), "{cmd}: {doc} for {line}");
        }
        assert_eq!(stdout(&with(&args("yaml"))), yaml, "{cmd}");
    }
    let ex = examples();
    for (svc, code) in [("TCP/8080", 0), ("TCP/9999", 1)] {
        for fmt in ["json", "table"] {
            let args = [
                "explain",
                "eu/credit-check-0",
                "us/credit-status-1",
                svc,
                "--exit-code",
                "-o",
                fmt,
            ];
            let local = run(&[&args[..], &["-f", &ex]].concat());
            let r = with(&args);
            assert_eq!(
                r.status.code(),
                Some(code),
                "{}",
                String::from_utf8_lossy(&r.stderr)
            );
            assert_eq!(local.status.code(), Some(code));
            assert_eq!(stdout(&r), stdout(&local), "explain {svc} -o {fmt}");
        }
    }
    let local = stdout(&run(&[
        "analyze", "matrix", "-f", &ex, "--probe", "TCP/8080", "-o", "json",
    ]));
    assert_eq!(
        stdout(&with(&[
            "analyze", "matrix", "--probe", "TCP/8080", "-o", "json"
        ])),
        local
    );
    // A wrong token is refused.
    std::fs::write(dir.path().join("bad"), "nope\n").unwrap();
    let mut bad = remote.clone();
    bad[3] = dir.path().join("bad").display().to_string();
    let mut args: Vec<&str> = bad.iter().map(String::as_str).collect();
    args.extend(["flows", "-o", "json"]);
    let o = run(&args);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The web UI is served next to the API, without a token; the API is not.
    let pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let ca: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(ca)))
                .build(),
        )
        .build()
        .into();
    let mut page = agent.get(&format!("{}/ui/", remote[1])).call().unwrap();
    assert_eq!(page.status(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    assert!(html.to_ascii_lowercase().contains("<html"), "{html}");
    let api = agent
        .get(&format!("{}/api/v1/flows", remote[1]))
        .call()
        .unwrap();
    assert_eq!(api.status(), 401);
    // Commands that do not talk to a server say so.
    let o = with(&["policy", "lint"]);
    assert!(!o.status.success());
}

/// `bulkhead REMOTE... ARGS` left running (killed when dropped), and its output lines as
/// they come.
fn follow(remote: &[String], args: &[&str]) -> (Served, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Served(
        Command::new(BIN)
            .args(remote)
            .args(args)
            .env_remove("BULKHEAD_SERVER")
            .env_remove("BULKHEAD_TOKEN")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// `flows --follow --server`: the backlog, then the records the agent commits while it
/// runs, printed as they arrive (as the local `--follow` prints them).
#[test]
fn remote_follow_prints_new_records_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, remote) = setup(dir.path());
    let (_child, rx) = follow(
        &remote,
        &["flows", "--follow", "--verdict", "deny", "-o", "json"],
    );
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a line in time")
    };
    // The backlog: the three denials of setup (records 0, 4, 8).
    let backlog: Vec<String> = (0..3).map(|_| next()).collect();
    assert!(
        backlog.iter().all(|l| l.contains("\"verdict\":\"deny\"")),
        "{backlog:?}"
    );
    let state = dir.path().join("node-1");
    let mut store = bulkhead_store::Store::open(&state.join(bulkhead_store::FILE)).unwrap();
    store
        .write_flows(&[record(30, "allow"), record(31, "deny")])
        .unwrap();
    let line = next();
    assert!(
        line.contains("\"sport\":40031") && line.contains("\"verdict\":\"deny\""),
        "{line}"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(600)).is_err(),
        "the allowed record is filtered out"
    );
}

/// `events --follow --server`: the refusals there are, then each one the agent commits.
#[test]
fn remote_events_follow_prints_new_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, remote) = setup(dir.path());
    let (_child, rx) = follow(&remote, &["events", "--follow", "-o", "json"]);
    let state = dir.path().join("node-1");
    let mut store = bulkhead_store::Store::open(&state.join(bulkhead_store::FILE)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    store
        .write(&[bulkhead_store::Record::Event(serde_json::json!({
            "time": "2026-12-03T02:00:00.000Z", "event": "request", "protocol": "redis",
            "client": "10.0.0.1:40000", "server": "10.0.0.3:6379", "conn": 9,
            "request": "redis FLUSHALL", "decision": {"allowed": false}}))])
        .unwrap();
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a line in time");
    assert!(line.contains("redis FLUSHALL"), "{line}");
}
