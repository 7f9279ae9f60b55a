//! A capture of an overlay network, as on a node's uplink: two namespaces joined by a
//! veth (the "nodes") and a kernel VXLAN device on each (the pods' network, as Flannel
//! and Calico build it), a real HTTP server and redis-server behind the overlay, curl and
//! redis-cli in front of it, `tcpdump` on the underlay. `bulkhead dpi detect` must name
//! the pods' flows inside the tunnel, with the pods' addresses, and no VXLAN flow.

mod common;

use common::lab::{bulkhead, require};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const A: &str = "bhvx-a";
const B: &str = "bhvx-b";
const PCAP: &str = "/tmp/bulkhead-dpi-overlay.pcap";

fn sh(args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn in_ns(ns: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(cmd);
    c
}

/// The namespaces and what runs in them; all gone on drop, also after a failure.
struct World(Vec<Child>);

impl World {
    fn clean() {
        for ns in [A, B] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }

    fn spawn(&mut self, ns: &str, cmd: &[&str]) {
        let child = in_ns(ns, cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        self.0.push(child);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        World::clean();
        let _ = std::fs::remove_file(PCAP);
    }
}

fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn flows_inside_a_vxlan_overlay_are_the_pods() {
    if !common::privileged("the overlay capture test") {
        return;
    }
    require(&["tcpdump", "curl", "python3", "redis-server", "redis-cli"]);
    let _lock = common::lab_lock();
    World::clean();
    let mut w = World(Vec::new());
    for ns in [A, B] {
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    sh(&[
        "ip", "-n", A, "link", "add", "under", "type", "veth", "peer", "name", "under", "netns", B,
    ]);
    for (ns, me, peer) in [
        (A, "192.168.231.1", "192.168.231.2"),
        (B, "192.168.231.2", "192.168.231.1"),
    ] {
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{me}/24"),
            "dev",
            "under",
        ]);
        sh(&["ip", "-n", ns, "link", "set", "under", "up"]);
        // Linux's own port (8472) on one run of the test would be as good; 4789 is IANA's.
        sh(&[
            "ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "42", "local", me,
            "remote", peer, "dstport", "4789",
        ]);
        let pod = if ns == A {
            "10.231.7.1/24"
        } else {
            "10.231.7.2/24"
        };
        sh(&["ip", "-n", ns, "addr", "add", pod, "dev", "vx0"]);
        sh(&["ip", "-n", ns, "link", "set", "vx0", "up"]);
    }
    w.spawn(
        B,
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "10.231.7.2",
        ],
    );
    w.spawn(
        B,
        &[
            "redis-server",
            "--port",
            "6379",
            "--bind",
            "10.231.7.2",
            "--save",
            "",
            "--protected-mode",
            "no",
        ],
    );
    let up = |port: &str| {
        in_ns(B, &["ss", "-Hltn", "sport", "=", &format!(":{port}")])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    };
    until("the servers listen", || up("8080") && up("6379"));
    w.spawn(A, &["tcpdump", "-i", "under", "-U", "-w", PCAP]);
    until("tcpdump writes", || {
        std::fs::metadata(PCAP).is_ok_and(|m| m.len() > 0)
    });
    // (The file's header comes a moment before the capture sees packets.)
    std::thread::sleep(Duration::from_millis(500));

    let curl = in_ns(
        A,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.231.7.2:8080/",
        ],
    )
    .output()
    .expect("curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200");
    let ping = in_ns(A, &["redis-cli", "-h", "10.231.7.2", "PING"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&ping.stdout).trim(), "PONG");
    // Let tcpdump write the last packets, then stop it (it is the last child).
    std::thread::sleep(Duration::from_millis(500));
    if let Some(mut t) = w.0.pop() {
        // SIGINT: tcpdump writes what it holds and exits.
        let _ = Command::new("kill")
            .args(["-INT", &t.id().to_string()])
            .status();
        let _ = t.wait();
    }

    let size = std::fs::metadata(PCAP).map_or(0, |m| m.len());
    let out = bulkhead(&["dpi", "detect", PCAP, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("dpi detect -o json lines"))
        .collect();
    let tcp: Vec<(&str, &str, &str)> = flows
        .iter()
        .filter(|f| f["l4"] == "TCP")
        .map(|f| {
            (
                f["dst"].as_str().unwrap_or(""),
                f["protocol"].as_str().unwrap_or(""),
                f["src"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for (dst, protocol) in [("10.231.7.2:8080", "http"), ("10.231.7.2:6379", "redis")] {
        assert!(
            tcp.iter()
                .any(|(d, p, s)| *d == dst && *p == protocol && s.starts_with("10.231.7.1:")),
            "{protocol} to {dst} inside the tunnel, from the client pod ({size} bytes \
             captured): {flows:#?}"
        );
    }
    assert!(
        !flows
            .iter()
            .any(|f| f["dst"].as_str().is_some_and(|d| d.ends_with(":4789"))),
        "a VXLAN flow reported as one: {flows:#?}"
    );
}
