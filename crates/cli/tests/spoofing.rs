//! Identity comes from the source address, so a workload must not be able to send with
//! another workload's address. In a lab of the bundled example (where only blue LDAP
//! clients may reach the blue LDAP server), the red client opens a connection to the blue
//! server with the blue client's address (IPv4 and IPv6): the SYN must not reach the
//! server (a capture in the server's pod sees nothing), while the same SYN from the blue
//! client itself does; and the drop is a flow record decided by the source check, with
//! the forged address marked as such and the red client named as its sender; a response
//! rule on `spoof` quarantines the red client. Once with the kernel deciding alone, once
//! with the L7 proxy on (which would otherwise answer the forged SYN as the blue
//! client's: the example's LDAP rule goes through it). Root only.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::lab::{Lab, settled};

const LAB: &str = "spoof";
const SERVER: &str = "platform/ldap-blue-0";
const BLUE: &str = "platform/ldap-client-blue-0";
const RED: &str = "platform/ldap-client-red-0";

/// Open a TCP connection from `workload` to `dst` port 389 with source address `src`,
/// which need not be the workload's own (`IP_FREEBIND`, as an attacker with root in its
/// container would); gives up after a second (a forged connection never completes).
fn send_syn(lab: &Lab, workload: &str, src: &str, dst: &str) {
    // IP_TRANSPARENT / IPV6_TRANSPARENT: the route lookup accepts any source address
    // (IP_FREEBIND alone binds but then finds the network unreachable).
    const SEND: &str = "import socket, sys\n\
        v6 = ':' in sys.argv[1]\n\
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)\n\
        s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 75 if v6 else 19, 1)\n\
        s.bind((sys.argv[1], 0))\n\
        s.settimeout(1)\n\
        try:\n    s.connect((sys.argv[2], 389))\n    print('connected')\n\
        except socket.timeout:\n    print('timed out')\n";
    let o = lab.exec(workload, &["python3", "-c", SEND, src, dst]);
    let out = String::from_utf8_lossy(&o.stdout);
    // Sent: the connection opened (the workload's own address) or nobody answered.
    assert!(
        o.status.success() && (out.contains("connected") || out.contains("timed out")),
        "sending from {workload} as {src}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// tcpdump in the server's pod, for SYNs to port 389 from `src`; ready when it listens.
fn capture(src: &str) -> Child {
    let filter = format!("src host {src} and dst port 389 and tcp[tcpflags] & tcp-syn != 0");
    let filter = if src.contains(':') {
        // tcpdump's tcp[] offsets do not reach past an IPv6 header.
        format!("src host {src} and dst port 389 and ip6[53] & 2 != 0")
    } else {
        filter
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["lab", "exec", "--name", LAB, SERVER, "--"])
        .args(["timeout", "4", "tcpdump", "-ni", "eth0", "-c", "1", &filter])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tcpdump");
    // tcpdump says "listening on" on stderr once its filter is in place.
    let mut err = child.stderr.take().expect("tcpdump's stderr");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        use std::io::Read;
        match err.read(&mut buf) {
            Ok(0) | Err(_) => panic!("tcpdump: {}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    child
}

/// How many SYNs the capture saw (it stops at the first, or after 4 s).
fn captured(child: Child) -> usize {
    let out = child.wait_with_output().expect("waiting for tcpdump");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" > "))
        .count()
}

#[test]
fn a_workload_cannot_send_with_another_workloads_address() {
    if !common::privileged("source check needs root, nft and network namespaces") {
        return;
    }
    common::lab::require(&["tcpdump", "python3"]);
    let _lock = common::lab_lock();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rule = dir.path().join("respond.yaml");
    std::fs::write(
        &rule,
        "apiVersion: bulkhead.io/v1\nkind: ResponseRule\nmetadata: {name: forgers}\n\
         spec:\n  match: {types: [spoof]}\n  actions:\n    - quarantine: {}\n",
    )
    .expect("writing the response rule");
    let rule = rule.to_string_lossy();
    for proxy in [false, true] {
        let flags: &[&str] = if proxy { &["--l7-proxy"] } else { &[] };
        let lab = Lab::up_flags(LAB, &["examples/", &rule], &[], flags);
        forged_syns_are_dropped(&lab);
        // The response rule isolated the sender, not the workload it pretended to be.
        let start = std::time::Instant::now();
        loop {
            let o = common::lab::bulkhead(&["quarantine", "list", "--lab", LAB, "-o", "json"]);
            let text = String::from_utf8_lossy(&o.stdout);
            if text.contains(RED) {
                assert!(!text.contains(BLUE), "{text}");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{RED} is not quarantined: {text}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn forged_syns_are_dropped(lab: &Lab) {
    for (family, addr) in [
        ("IPv4", Lab::ipv4 as fn(&Lab, &str) -> String),
        ("IPv6", Lab::ipv6),
    ] {
        let (blue, server) = (addr(lab, BLUE), addr(lab, SERVER));
        // The control: the blue client's own SYN arrives, so the capture works.
        let cap = capture(&blue);
        send_syn(lab, BLUE, &blue, &server);
        assert_eq!(captured(cap), 1, "{family}: the blue client's SYN arrives");
        // The red client with the blue client's address: dropped at its node.
        let cap = capture(&blue);
        send_syn(lab, RED, &blue, &server);
        assert_eq!(
            captured(cap),
            0,
            "{family}: a SYN from the red client with the blue client's address reached the blue server"
        );
        // The drop is recorded, the address marked forged, not named after its owner.
        let start = std::time::Instant::now();
        loop {
            let o = settled(&["flows", "--lab", LAB, "-o", "json"]);
            let text = String::from_utf8_lossy(&o.stdout);
            let found = text.lines().any(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                r["decided_by"]["tier"] == "source-check"
                    && r["verdict"] == "deny"
                    && r["src"]["ip"] == blue.as_str()
                    && r["src"]["entity"] == "forged"
                    && r["src"]["workload"].is_null()
                    && r["sender"]["workload"] == RED
                    && r["dst"]["workload"] == SERVER
            });
            if found {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{family}: no source-check record for {blue} -> {server} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
