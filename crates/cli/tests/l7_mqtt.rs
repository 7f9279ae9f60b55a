//! MQTT topic rules end to end: a real mosquitto broker behind the agents' transparent
//! proxy, real mosquitto_pub/mosquitto_sub clients. The sensor may publish under sensors/
//! and subscribe to sensors/+/temp; the monitor may subscribe to everything. A publish to
//! sensors/a/temp reaches subscribers; a publish to admin/reset is acknowledged by the
//! proxy (3.1.1: a plain PUBACK; 5.0: Not authorized) and never reaches the broker, so the
//! monitor's `#` never sees it; a subscription to admin/# gets a SUBACK failure. Each
//! refusal is an event.
//!
//! Publishes are retained: a subscriber that connects later still gets what reached the
//! broker, so the test does not depend on who connects first (every connection waits
//! for protocol detection).

mod common;

use common::lab::{bulkhead, settled};

use std::process::Command;

const LAB: &str = "l7mqtttest";

struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", LAB]);
    }
}

/// Run a command in a pod of the lab: (exit success, stdout, stderr).
fn exec(pod: &str, cmd: &[&str]) -> (bool, String, String) {
    let mut args = vec!["lab", "exec", "--name", LAB, pod, "--"];
    args.extend_from_slice(cmd);
    let o = bulkhead(&args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn mqtt_topics_are_enforced_by_the_proxy() {
    if !common::privileged("the MQTT lab test") {
        return;
    }
    for p in ["mosquitto", "mosquitto_pub", "mosquitto_sub"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
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
        "crates/cli/tests/fixtures/mqtt/",
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
    let ip = status["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .find(|w| w["name"] == "iot/broker-0")
        .and_then(|w| w["ipv4"].as_str())
        .expect("iot/broker-0 and its address")
        .to_string();
    let ip = ip.as_str();
    let sensor = "iot/sensor-0";

    // The allowed publish, retried until the broker listens.
    let mut published = (false, String::new(), String::new());
    for _ in 0..30 {
        published = exec(
            sensor,
            &[
                "mosquitto_pub",
                "-h",
                ip,
                "-t",
                "sensors/a/temp",
                "-m",
                "21.5",
                "-q",
                "1",
                "-r",
            ],
        );
        if published.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(published.0, "publish to sensors/a/temp: {published:?}");

    // 3.1.1 has no negative PUBACK: the client believes it published.
    let v3 = exec(
        sensor,
        &[
            "mosquitto_pub",
            "-h",
            ip,
            "-t",
            "admin/reset",
            "-m",
            "v3",
            "-q",
            "1",
            "-r",
        ],
    );
    assert!(v3.0, "a 3.1.1 QoS 1 publish gets a PUBACK: {v3:?}");
    let v5 = exec(
        sensor,
        &[
            "mosquitto_pub",
            "-h",
            ip,
            "-t",
            "admin/reset",
            "-m",
            "v5",
            "-q",
            "1",
            "-r",
            "-V",
            "5",
        ],
    );
    assert!(
        v5.2.contains("Not authorized"),
        "a 5.0 publish gets PUBACK Not authorized: {v5:?}"
    );

    // A subscription the policy allows gets the retained message that reached the broker.
    let sub = exec(
        sensor,
        &[
            "mosquitto_sub",
            "-h",
            ip,
            "-t",
            "sensors/+/temp",
            "-v",
            "-C",
            "1",
            "-W",
            "15",
        ],
    );
    assert!(
        sub.0 && sub.1.contains("sensors/a/temp 21.5"),
        "subscriber of sensors/+/temp: {sub:?}"
    );
    // Everything that reached the broker, seen by the monitor's `#` until its timeout.
    let all = exec(
        "iot/monitor-0",
        &["mosquitto_sub", "-h", ip, "-t", "#", "-v", "-W", "8"],
    );
    assert!(all.1.contains("sensors/a/temp 21.5"), "monitor: {all:?}");
    assert!(
        !all.1.contains("admin/reset"),
        "a refused publish reached the broker: {all:?}"
    );

    // A will (published by the broker when the client goes away) on a topic the
    // client may not publish to: the connection is refused before the broker has it.
    let will = exec(
        sensor,
        &[
            "mosquitto_pub",
            "-h",
            ip,
            "-t",
            "sensors/a/temp",
            "-m",
            "22",
            "--will-topic",
            "admin/reset",
            "--will-payload",
            "will",
            "--will-retain",
        ],
    );
    assert!(
        !will.0 && will.2.contains("not authori"),
        "a will to admin/reset must be refused: {will:?}"
    );

    let denied = exec(
        sensor,
        &["mosquitto_sub", "-h", ip, "-t", "admin/#", "-W", "15"],
    );
    assert!(
        denied.2.contains("subscription requests were denied"),
        "subscribe to admin/# must fail: {denied:?}"
    );

    let events = settled(&["events", "--lab", LAB, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let refused: Vec<(String, String)> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "request" && e["decision"]["allowed"] == false)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("request"), s("refusal"))
        })
        .collect();
    let want = [
        (
            "mqtt publish admin/reset",
            "PUBACK (3.1.1 has no negative ack), message dropped",
        ),
        ("mqtt publish admin/reset", "PUBACK 0x87 not authorized"),
        ("mqtt subscribe admin/#", "SUBACK failure"),
        (
            "mqtt publish admin/reset",
            "CONNACK not authorized (the will's topic), connection closed",
        ),
    ];
    for (request, refusal) in want {
        assert!(
            refused.iter().any(|(q, r)| q == request && r == refusal),
            "no event for {request} refused with {refusal}: {refused:?}\n{events}"
        );
    }
    assert_eq!(refused.len(), 4, "only the four refusals: {refused:?}");
}
