//! gRPC and Kafka rules end to end (fixtures/grpc/): a real gRPC server (grpcio, h2c with
//! prior knowledge) and a Kafka-protocol sink behind the agents' transparent proxy.
//!
//! gRPC: on one channel (one HTTP/2 connection, the HPACK tables shared by every call),
//! demo.Greeter/SayHello works, demo.Admin/DropAll gets PERMISSION_DENIED from the proxy
//! and never reaches the server (its Stats say 0 admin calls), and the calls after the
//! refusal on the same connection still work.
//!
//! Kafka: requests encoded by kafka-python's protocol classes (Metadata v1, Produce v3 and
//! Fetch v4 for `orders`) reach the sink; a Produce for `payroll` gets the proxy's
//! ProduceResponse with TOPIC_AUTHORIZATION_FAILED (29, decoded by kafka-python) and the
//! connection goes on; a Produce for `orders` and `payroll` at once closes it; neither
//! reaches the sink (its list, read on a new connection, does not hold them).
//! There is no Kafka broker in Debian: the sink stands in for one, and the Kafka parser is
//! checked on real brokers' clients in crates/l7/tests/kafka.rs (the pcap corpus).
//!
//! Each refusal is an event and a flow record with the request's L7 detail. The gRPC
//! connection is recorded as `grpc` with its first call (though grpcio's client sends
//! the HTTP/2 preface, then waits for the server's SETTINGS before its first HEADERS:
//! detection relays them, it does not wait out its timeout), and `bulkhead learn`
//! proposes `app: grpc` for it. Plain h2c on the same port (curl) is recorded as http2,
//! and curl gets the proxy's 403 for its GET.

mod common;

use common::lab::{Lab, bulkhead, require, settled};

const LAB: &str = "l7grpc";
const CLIENT: &str = "apps/client-0";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/grpc/client.py");
const PYTHON: &str = "/usr/bin/python3";

fn python_has(module: &str) -> bool {
    std::process::Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn grpc_methods_and_kafka_topics_are_enforced_by_the_proxy() {
    if !common::privileged("the gRPC and Kafka lab test") {
        return;
    }
    for m in ["grpc", "kafka"] {
        assert!(
            python_has(m),
            "python3 module {m} is missing (scripts/setup installs python3-grpcio and python3-kafka)"
        );
    }
    require(&["curl"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/grpc/"], &[]);
    let greeter = lab.ipv4("apps/greeter-0");
    let kafka = lab.ipv4("apps/kafka-0");

    // Retried until the server listens.
    let client = |args: [&str; 2], ready: &str| {
        let mut out = (false, String::new());
        for _ in 0..40 {
            out = lab.run(CLIENT, &[PYTHON, SCRIPT, args[0], args[1]]);
            if out.1.contains(ready) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        out
    };
    let out = client(["grpc", &greeter], "/demo.Greeter/SayHello OK");
    let lines: Vec<&str> = out.1.lines().collect();
    assert_eq!(
        lines,
        [
            "/demo.Greeter/SayHello OK hello bob",
            "/demo.Admin/DropAll PERMISSION_DENIED bulkhead: demo.Admin/DropAll is not allowed by policy",
            "/demo.Greeter/SayHello OK hello alice",
            "/demo.Greeter/Stats OK admin=0",
        ],
        "{out:?}"
    );

    grpc_is_recorded_and_learned_as_grpc(&lab);

    // Kafka.
    let out = client(["kafka", &kafka], "metadata orders OK");
    let lines: Vec<&str> = out.1.lines().collect();
    assert_eq!(
        lines,
        [
            "metadata orders OK [[3, 1]]",
            "produce orders OK [[3, 1], [0, 3]]",
            "fetch orders OK [[3, 1], [0, 3], [1, 4]]",
            "produce payroll ERROR 29 correlation True",
            "fetch orders OK [[3, 1], [0, 3], [1, 4], [1, 4]]",
            "produce orders+payroll CLOSED",
            "apiversions OK [[3, 1], [0, 3], [1, 4], [1, 4], [18, 0]]",
        ],
        "{out:?}"
    );

    // The refusals, as events and as flow records with their L7 detail.
    let events = lab.events();
    let refused: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "request" && e["decision"]["allowed"] == false)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("request"), s("refusal"))
        })
        .collect();
    assert_eq!(
        refused,
        [
            (
                "grpc demo.Admin/DropAll".to_string(),
                "grpc-status 7 PERMISSION_DENIED".to_string()
            ),
            (
                "kafka produce payroll".to_string(),
                "TOPIC_AUTHORIZATION_FAILED (29)".to_string()
            ),
            (
                "kafka produce payroll".to_string(),
                "connection closed".to_string()
            ),
        ],
        "{events:#?}"
    );
    // explain says what the proxy did.
    for (dst, port, request, verdict) in [
        (
            "apps/greeter-0",
            "TCP/50051",
            "grpc demo.Admin/DropAll",
            "DENIED",
        ),
        (
            "apps/greeter-0",
            "TCP/50051",
            "grpc demo.Greeter/SayHello",
            "ALLOWED",
        ),
        (
            "apps/kafka-0",
            "TCP/9092",
            "kafka produce payroll",
            "DENIED",
        ),
        ("apps/kafka-0", "TCP/9092", "kafka fetch orders", "ALLOWED"),
    ] {
        let o = bulkhead(&[
            "explain",
            CLIENT,
            dst,
            port,
            "--request",
            request,
            "-f",
            "crates/cli/tests/fixtures/grpc/",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.starts_with(verdict), "explain {request}: {text}");
    }
    let flows = settled(&["flows", "--lab", LAB, "--verdict", "deny", "-o", "json"]);
    let flows = String::from_utf8_lossy(&flows.stdout);
    for want in ["demo.Admin", "DropAll", "payroll"] {
        assert!(
            flows.contains(want),
            "no denied flow record with {want}: {flows}"
        );
    }

    // Plain h2c to the same port stays http2, and curl (nghttp2) gets the proxy's 403:
    // after the server's SETTINGS, as a connection must start (it had dropped one that
    // started with the refusal: "Empty reply from server").
    let url = format!("http://{greeter}:50051/index.html");
    let curl = [
        "curl",
        "-sS",
        "-m5",
        "-o/dev/null",
        "-w%{http_code}",
        "--http2-prior-knowledge",
        &url,
    ];
    let (_, code) = lab.run(CLIENT, &curl);
    assert_eq!(code, "403");
    let protocols: Vec<(String, String)> = allowed_records(50051)
        .iter()
        .map(|r| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (s(&r["l7"]["protocol"]), s(&r["l7"]["detail"]["path"]))
        })
        .collect();
    assert_eq!(
        protocols,
        [
            ("grpc".to_string(), String::new()),
            ("http2".to_string(), "/index.html".to_string())
        ]
    );
}

/// The flow records of allowed connections to `port` that carry their protocol
/// (connections tried before the server listened have none).
fn allowed_records(port: u16) -> Vec<serde_json::Value> {
    let flows = settled(&["flows", "--lab", LAB, "--verdict", "allow", "-o", "json"]);
    String::from_utf8_lossy(&flows.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &serde_json::Value| r["dport"] == port && !r["l7"].is_null())
        .collect()
}

/// The gRPC channel's connection: its flow record says grpc, with the first call's
/// service and method; its detection took well under the 3 s timeout (the proxy's
/// latency histogram in status.json); the proposal from the lab's records has
/// `app: grpc` on TCP/50051 both ways.
fn grpc_is_recorded_and_learned_as_grpc(lab: &Lab) {
    let records = allowed_records(50051);
    assert_eq!(records.len(), 1, "{records:#?}");
    let l7 = &records[0]["l7"];
    assert_eq!(l7["protocol"], "grpc", "{records:#?}");
    assert_eq!(l7["detail"]["service"], "demo.Greeter", "{records:#?}");
    assert_eq!(l7["detail"]["method"], "SayHello", "{records:#?}");

    let path = format!("/run/bulkhead/labs/{}/agents/node-1/status.json", lab.name);
    let mut detect = serde_json::Value::Null;
    for _ in 0..60 {
        let status: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let hists = status["proxy_latency"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(h) = hists
            .into_iter()
            .find(|h| h["stage"] == "detect" && h["protocol"] == "grpc")
        {
            detect = h;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let count = detect["count"].as_f64().unwrap_or(0.0);
    let seconds = detect["sum"].as_f64().unwrap_or(f64::MAX);
    assert!(
        count >= 1.0 && seconds < count * 0.5,
        "gRPC detection latency (seconds): {detect}"
    );

    let o = bulkhead(&["learn", "--lab", LAB, "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The rules (the text before the first is the proposal's header).
    let on_port: Vec<&str> = yaml
        .split("- action:")
        .skip(1)
        .filter(|r| r.contains("TCP/50051"))
        .collect();
    assert_eq!(
        on_port.len(),
        2,
        "the client's egress, the server's ingress: {yaml}"
    );
    for rule in on_port {
        assert!(rule.contains("app: grpc"), "{rule}\n{yaml}");
    }
}
