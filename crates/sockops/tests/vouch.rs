//! Vouching between two nodes: a client in one network namespace, a real redis-server in
//! another, a veth between them. The client's socket is decided by the path and its SYN
//! carries the tag; the server side's tc check marks exactly those SYNs, which nftables
//! count. Needs root; without it the test skips, unless `BULKHEAD_REQUIRE_PRIVILEGED=1`
//! (CI), where it fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_lab::netns;
use bulkhead_sockops::{RedisPath, Verdict};

mod common;
use common::{NOPERM, PORT, cgroup2, cmd, connect, sh};

const MARK: u32 = 0x5eed;

/// Both namespaces and the server, removed however the test ends.
struct Nodes {
    names: [String; 2],
    server: Option<Child>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        for n in &self.names {
            let _ = netns::delete(n);
        }
    }
}

/// One request and its whole answer (`want` bytes, within 10 s).
fn ask(s: &mut TcpStream, req: &[u8], want: usize) -> String {
    s.write_all(req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The nftables counters of marked SYNs and of all SYNs to the server port.
fn syn_counts(ns: &str) -> (u64, u64) {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "list", "table", "inet", "bhvouch",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let packets = |comment: &str| -> u64 {
        text.lines()
            .find(|l| l.contains(comment))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter {comment} in {text}"))
    };
    (packets("\"marked\""), packets("\"all\""))
}

#[test]
fn the_client_node_vouches_and_the_server_node_marks_exactly_that() {
    if !bulkhead_lab::privileged(&["redis-server", "ip", "nft"]) {
        return;
    }
    // Addresses no other test process uses meanwhile (see `common::subnet`).
    let subnet = common::subnet();
    let n = subnet.n;
    let (a, b) = (format!("bhva{n}"), format!("bhvb{n}"));
    netns::create(&a).unwrap();
    netns::create(&b).unwrap();
    let mut nodes = Nodes {
        names: [a.clone(), b.clone()],
        server: None,
    };
    let ip = |h: u8| Ipv4Addr::new(10, 232, n, h);
    let ip6 = |h: u16| Ipv6Addr::new(0xfd00, 0x232, u16::from(n), 0, 0, 0, 0, h);
    let (server, client, stranger) = (ip(2), ip(1), ip(3));
    sh(
        &a,
        &[
            "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b,
        ],
    );
    for (ns, dev, hosts) in [(&a, "va", [1u8, 3]), (&b, "vb", [2, 2])] {
        for h in hosts {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", ip(h)),
                    "dev",
                    dev,
                ])
                .status();
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ip", "-6", "addr", "add"])
                .args([&format!("{}/64", ip6(u16::from(h))), "dev", dev, "nodad"])
                .status();
        }
        sh(ns, &["ip", "link", "set", dev, "up"]);
        sh(ns, &["ip", "link", "set", "lo", "up"]);
    }
    let rules = format!(
        "table inet bhvouch {{\n chain pre {{\n  type filter hook prerouting priority -150;\n  \
         tcp dport {PORT} tcp flags syn meta mark {MARK:#x} counter comment \"marked\"\n  \
         tcp dport {PORT} tcp flags syn counter comment \"all\"\n }}\n}}\n"
    );
    let file = std::env::temp_dir().join(format!("{b}.nft"));
    std::fs::write(&file, rules).unwrap();
    sh(&b, &["nft", "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    nodes.server = Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &b,
                "redis-server",
                "--bind",
                &server.to_string(),
            ])
            .args([
                &ip6(2).to_string(),
                "--port",
                &PORT.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while netns::enter(&b, || Ok(TcpStream::connect((server, PORT))?)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // That probe was a SYN from the server's own node, not through the veth.
    let before = syn_counts(&b);

    let path = RedisPath::attach(&cgroup2()).unwrap();
    for s in [IpAddr::from(server), IpAddr::from(ip6(2))] {
        path.add_server(s, PORT).unwrap();
        path.set_identity(s, 2).unwrap();
    }
    // The stranger (10.232.n.3) has no identity: no table, not decided, not vouched.
    path.set_identity(client.into(), 1).unwrap();
    path.set_identity(ip6(1).into(), 1).unwrap();
    path.set_table(1, 2, PORT, 7).unwrap();
    path.set_verdict(7, Some("SET"), Verdict::Allow).unwrap();
    path.set_verdict(7, None, Verdict::Refuse).unwrap();
    path.set_vouching(*b"bulkhead-vouch!!", MARK).unwrap();
    let ifindex: i32 = {
        let out = Command::new("ip")
            .args(["-n", &b, "-o", "link", "show", "vb"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split(':').next().unwrap().trim().parse().unwrap()
    };
    let ingress = netns::enter(&b, || {
        Ok(path.vouch_ingress(ifindex).map_err(std::io::Error::other)?)
    })
    .unwrap();

    // Decided at the client's socket, and vouched for: IPv4 and IPv6.
    let mut c = connect(&a, client, server);
    assert_eq!(ask(&mut c, &cmd(&[b"SET", b"k", b"v"]), 5), "+OK\r\n");
    assert_eq!(ask(&mut c, &cmd(&[b"FLUSHALL"]), NOPERM.len()), NOPERM);
    let mut c6 = connect(&a, ip6(1), ip6(2));
    assert_eq!(ask(&mut c6, &cmd(&[b"SET", b"k", b"w"]), 5), "+OK\r\n");
    // Not on the path (no table): its SYN is not vouched for, and nothing decides it
    // here (on a node the proxy would).
    let mut s = connect(&a, stranger, server);
    assert_eq!(ask(&mut s, &cmd(&[b"FLUSHALL"]), 5), "+OK\r\n");

    let (marked, all) = syn_counts(&b);
    assert_eq!(
        (marked - before.0, all - before.1),
        (2, 3),
        "marked / all SYNs"
    );
    let k = path.counters().unwrap();
    assert_eq!(
        (k.vouched, k.verified, k.unverified, k.replayed),
        (2, 2, 1, 0),
        "{k:?}"
    );
    // Detached where it was attached.
    netns::enter(&b, move || {
        drop(ingress);
        Ok(())
    })
    .unwrap();
}
