//! The Redis socket path end to end: the bundled example in a lab whose agents decide
//! Redis commands between workloads of a node at the client's socket
//! (`--redis-socket-path`), with a real redis-server and redis-cli. The same answers as
//! through the proxy (GET and SET work, FLUSHALL gets Redis's own refusal and never
//! runs, another protocol on the Redis port is refused), the programs counted them, and
//! the refusal is an event with the deciding rule and a capture tshark reads.

mod common;

use std::process::Command;

use common::lab::{Lab, bulkhead, require};

const LAB: &str = "l7sock";

#[test]
fn redis_commands_are_decided_at_the_socket() {
    if !common::privileged("the socket path lab test") {
        return;
    }
    require(&["redis-server", "redis-cli", "curl", "tshark"]);
    let _lock = common::lab_lock();
    let lab = Lab::up_with(
        LAB,
        &["examples/", "examples/lab/l7.yaml"],
        &[],
        &["--redis-socket-path"],
    );
    let exec = |workload: &str, cmd: &[&str]| lab.run(workload, cmd);
    let ip = lab.ipv4("platform/redis-0");
    let mut ready = false;
    for _ in 0..50 {
        if exec("platform/node-api-0", &["redis-cli", "-h", &ip, "PING"]).1 == "PONG" {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "redis never answered PING");
    let set = exec(
        "platform/node-api-0",
        &["redis-cli", "-h", &ip, "SET", "k", "v1"],
    );
    assert_eq!(set.1, "OK");
    let (_, flush) = exec("platform/node-api-0", &["redis-cli", "-h", &ip, "FLUSHALL"]);
    assert!(flush.contains("NOPERM"), "FLUSHALL answered {flush:?}");
    let (_, piped) = exec(
        "platform/node-api-0",
        &[
            "sh",
            "-c",
            &format!("printf 'SET a 1\\r\\nFLUSHDB\\r\\nGET k\\r\\n' | redis-cli -h {ip}"),
        ],
    );
    let lines: Vec<&str> = piped.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{piped}");
    assert_eq!(lines[0], "OK");
    assert!(lines[1].contains("NOPERM"), "{piped}");
    assert_eq!(lines[2], "v1", "FLUSHALL or FLUSHDB reached the server");
    // Another protocol on the Redis port: the client's writes fail.
    let (ok, out) = exec(
        "platform/node-api-0",
        &["curl", "-sS", "-m", "5", &format!("http://{ip}:6379/")],
    );
    assert!(!ok, "HTTP to the Redis port got through: {out}");
    // A workload no rule allows: refused at layer 4, as without the path.
    let (ok, out) = exec("eu/order-web-0", &["redis-cli", "-h", &ip, "PING"]);
    assert!(
        !ok || !out.contains("PONG"),
        "order-web reached redis: {out}"
    );

    // The commands went through the programs, not the proxy.
    // (status.json is rewritten every 2 s when idle.)
    let counted = |s: &serde_json::Value, k: &str| s["socket_path"][k].as_u64().unwrap_or(0);
    let start = std::time::Instant::now();
    let status = loop {
        let all = lab.agent_statuses();
        let found = all.into_iter().find(|s| counted(s, "allowed") >= 3);
        if let Some(s) = found {
            break s;
        }
        assert!(start.elapsed().as_secs() < 10, "{:?}", lab.agent_statuses());
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(counted(&status, "pairs") >= 1, "{status}");
    assert!(counted(&status, "refused") >= 2, "{status}");
    assert!(counted(&status, "not_resp") >= 1, "{status}");

    // Each refusal is an event: the engine's deciding rule, the path, a capture.
    let start = std::time::Instant::now();
    let events: Vec<serde_json::Value> = loop {
        let o = bulkhead(&["events", "--lab", LAB, "--all", "-o", "json"]);
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let socket = |e: &&serde_json::Value| e["decision"]["detail"]["path"] == "socket";
        if events.iter().filter(socket).count() >= 3 || start.elapsed().as_secs() > 10 {
            break events.into_iter().filter(|e| socket(&e)).collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let flush = events
        .iter()
        .find(|e| e["event"] == "request" && e["request"] == "redis FLUSHALL")
        .unwrap_or_else(|| panic!("no socket-path event for FLUSHALL: {events:?}"));
    assert_eq!(flush["decision"]["allowed"], false);
    assert!(flush["refusal"].as_str().unwrap().starts_with("-NOPERM"));
    assert_eq!(
        flush["decision"]["detail"]["src"]["workload"],
        "platform/node-api-0"
    );
    let by = flush["decision"]["decided_by"].as_str().unwrap_or("");
    // No rule names FLUSHALL: the group's Protect mode refuses it (as `explain` says).
    assert_eq!(by, "ingress: Protect mode (group redis)");
    let pcap = flush["pcap"].as_str().expect("a capture");
    let t = Command::new("tshark")
        .args(["-r", pcap])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        t.status.success() && text.contains("FLUSHALL"),
        "tshark on {pcap}: {text}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "request" && e["request"] == "redis FLUSHDB"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "protocol" && e["protocol"] == "unknown"),
        "no event for the HTTP attempt: {events:?}"
    );
}
