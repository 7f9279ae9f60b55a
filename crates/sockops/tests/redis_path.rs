//! The socket path against a real redis-server, in a network namespace of its own (two
//! addresses on its loopback: the server's and a client's). Needs root; without it the
//! test skips, unless `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), where it fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_lab::netns;
use bulkhead_sockops::{RedisPath, Refused, Verdict};

mod common;
use common::{NOPERM, PORT, cgroup2, cmd, connect, sh};

/// The namespace and the server, removed however the test ends.
struct Lab {
    ns: String,
    server: Option<Child>,
    _subnet: common::Subnet,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = netns::delete(&self.ns);
    }
}

/// Writes `data` (in `chunk`-byte writes), then reads until `want` bytes came (within
/// 10 s: a loaded CI machine may be slow) and a little longer, for bytes beyond them.
/// Returns what came back and whether a write was refused.
fn exchange(s: &mut TcpStream, data: &[u8], chunk: usize, want: usize) -> (String, bool) {
    let mut refused = false;
    for piece in data.chunks(chunk) {
        match s.write_all(piece) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                refused = true;
                break;
            }
            Err(e) => panic!("write: {e}"),
        }
        if chunk < data.len() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if got.len() >= want || Instant::now() > deadline {
                    break;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), refused)
}

/// A namespace with a redis-server on one loopback address and a client's address.
/// Tables in which `client` may only SET on `server`.
fn set_only(server: IpAddr, client: IpAddr) -> bulkhead_sockops::Tables {
    let mut want = bulkhead_sockops::Tables::default();
    want.servers.insert(SocketAddr::new(server, PORT));
    want.identities.extend([(server, 2), (client, 1)]);
    want.tables.insert((1, 2, PORT), 7);
    want.verdicts
        .insert((7, Some("SET".into())), Verdict::Allow);
    want.verdicts.insert((7, None), Verdict::Refuse);
    want
}

/// One command on a new connection between the IPv6 twins of `client` and `server`,
/// which no table names (not taken): what Redis holds, seen past the program.
fn untaken(ns: &str, client: Ipv4Addr, server: Ipv4Addr, args: &[&[u8]]) -> String {
    let mut c = connect(ns, v6(client), v6(server));
    exchange(&mut c, &cmd(args), usize::MAX, 4).0
}

/// [`set_only`] for a server on "another node" (the client's bytes go on to TCP), with
/// `also` allowed too.
fn remote_set_and(server: Ipv4Addr, client: Ipv4Addr, also: &str) -> bulkhead_sockops::Tables {
    let mut want = set_only(server.into(), client.into());
    want.remote_servers
        .insert(SocketAddr::new(server.into(), PORT));
    want.verdicts.insert((7, Some(also.into())), Verdict::Allow);
    want
}

/// The IPv6 address the lab gives the holder of IPv4 address `ip` too.
fn v6(ip: Ipv4Addr) -> Ipv6Addr {
    let [_, _, n, h] = ip.octets();
    Ipv6Addr::new(0xfd00, 0x233, u16::from(n), 0, 0, 0, 0, u16::from(h))
}

/// `k` tells a process's namespaces apart; the addresses are unique among the tests
/// running at once ([`common::subnet`]). Each address has an IPv6 twin ([`v6`]).
fn lab(k: u32) -> (Lab, String, Ipv4Addr, Ipv4Addr) {
    let subnet = common::subnet();
    let n = subnet.n;
    let ns = format!("bhso{}x{k}", std::process::id());
    let (server_ip, client_ip) = (Ipv4Addr::new(10, 233, n, 1), Ipv4Addr::new(10, 233, n, 2));
    netns::create(&ns).unwrap();
    let mut lab = Lab {
        ns: ns.clone(),
        server: None,
        _subnet: subnet,
    };
    sh(&ns, &["ip", "link", "set", "lo", "up"]);
    for ip in [server_ip, client_ip] {
        sh(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"],
        );
        sh(
            &ns,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{}/128", v6(ip)),
                "dev",
                "lo",
                "nodad",
            ],
        );
    }
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "redis-server",
            "--bind",
            &server_ip.to_string(),
            &v6(server_ip).to_string(),
        ])
        .args([
            "--port",
            &PORT.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--protected-mode", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    lab.server = Some(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while netns::enter(&ns, || Ok(TcpStream::connect((server_ip, PORT))?)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    (lab, ns, server_ip, client_ip)
}

/// [`lab`] with the programs attached to the root cgroup; None (the test skips) without
/// root, unless CI requires it.
fn attached(k: u32) -> Option<(Lab, String, Ipv4Addr, Ipv4Addr, RedisPath)> {
    if !bulkhead_lab::privileged(&["redis-server", "ip"]) {
        return None;
    }
    let (lab, ns, server_ip, client_ip) = lab(k);
    let path = RedisPath::attach(&cgroup2()).unwrap();
    Some((lab, ns, server_ip, client_ip, path))
}

#[test]
fn commands_are_decided_at_the_socket() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(0) else {
        return;
    };
    path.add_server(server_ip.into(), PORT).unwrap();
    path.set_identity(server_ip.into(), 2).unwrap();
    path.set_identity(client_ip.into(), 1).unwrap();
    path.set_table(1, 2, PORT, 7).unwrap();
    for c in ["GET", "set"] {
        path.set_verdict(7, Some(c), Verdict::Allow).unwrap();
    }
    // STRLEN runs and is reported (a Monitor group's violation).
    path.set_verdict(7, Some("STRLEN"), Verdict::Report)
        .unwrap();
    path.set_verdict(7, Some("FLUSHALL"), Verdict::Refuse)
        .unwrap();
    path.set_verdict(7, None, Verdict::Refuse).unwrap();

    let mut c = connect(&ns, client_ip, server_ip);
    // Allowed commands, one write each.
    let (got, refused) = exchange(&mut c, &cmd(&[b"SET", b"a", b"1"]), usize::MAX, 5);
    assert_eq!((got.as_str(), refused), ("+OK\r\n", false));
    // A pipeline with a refused command: Redis's own refusal, in order, and the
    // commands around it run.
    let mut p = cmd(&[b"SET", b"b", b"2"]);
    p.extend(cmd(&[b"FLUSHALL"]));
    p.extend(cmd(&[b"SET", b"c", b"3"]));
    let want = format!("+OK\r\n{NOPERM}+OK\r\n");
    let (got, refused) = exchange(&mut c, &p, usize::MAX, want.len());
    assert_eq!((got.as_str(), refused), (want.as_str(), false));
    // A command the table does not name: "any other", refused here.
    let (got, refused) = exchange(&mut c, &cmd(&[b"KEYS", b"*"]), usize::MAX, NOPERM.len());
    assert_eq!((got.as_str(), refused), (NOPERM, false));
    // A reported command after a refused one in one write: it runs, reported once.
    let mut p = cmd(&[b"FLUSHALL"]);
    p.extend(cmd(&[b"STRLEN", b"b"]));
    let want = format!("{NOPERM}:1\r\n");
    let (got, refused) = exchange(&mut c, &p, usize::MAX, want.len());
    assert_eq!((got.as_str(), refused), (want.as_str(), false));
    // The same command again on that connection: counted, not reported again.
    let p = cmd(&[b"STRLEN", b"b"]).repeat(3);
    let (got, _) = exchange(&mut c, &p, usize::MAX, 12);
    assert_eq!(got, ":1\r\n".repeat(3));
    // A refused command larger than a write: its name is spoiled in the first write
    // (Redis answers an unknown command, `#`), the rest of it goes, and it never ran.
    let mut c = connect(&ns, client_ip, server_ip);
    let big = cmd(&[b"APPEND", b"a", &vec![b'y'; 1 << 20]]);
    let (got, refused) = exchange(&mut c, &big, 64 * 1024, 1);
    assert!(!refused);
    assert!(got.starts_with("-ERR unknown command '#PPEND'"), "{got:?}");
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"e", b"1"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");
    assert_eq!(
        untaken(&ns, client_ip, server_ip, &[b"STRLEN", b"a"]),
        ":1\r\n"
    );
    // One byte per write: every header is cut somewhere.
    let mut c = connect(&ns, client_ip, server_ip);
    let mut p = cmd(&[b"SET", b"d", b"0123456789"]);
    p.extend(cmd(&[b"GET", b"d"]));
    let (got, refused) = exchange(&mut c, &p, 1, 22);
    assert_eq!(
        (got.as_str(), refused),
        ("+OK\r\n$10\r\n0123456789\r\n", false)
    );
    // 200 pipelined commands in one write, and a 1 MiB value across writes.
    let (got, _) = exchange(
        &mut c,
        &cmd(&[b"GET", b"d"]).repeat(200),
        usize::MAX,
        17 * 200,
    );
    assert_eq!(got, "$10\r\n0123456789\r\n".repeat(200));
    let mut p = cmd(&[b"SET", b"big", &vec![b'x'; 1 << 20]]);
    p.extend(cmd(&[b"STRLEN", b"big"]));
    let (got, refused) = exchange(&mut c, &p, 64 * 1024, 15);
    assert_eq!((got.as_str(), refused), ("+OK\r\n:1048576\r\n", false));
    // Inline commands (telnet style) are framed and decided too: a connection's first
    // line must look like Redis to the proxy's detector, later ones are any line.
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut c, b"set i 1\r\nGET i\r\n", usize::MAX, 12);
    assert_eq!(got, "+OK\r\n$1\r\n1\r\n");
    let (got, _) = exchange(
        &mut c,
        b"STRLEN i\r\nPING\r\n",
        usize::MAX,
        4 + NOPERM.len(),
    );
    assert_eq!(got, format!(":1\r\n{NOPERM}"));
    // A quoted inline name (Redis unquotes it: `"FLUSH"ALL` runs FLUSHALL) is refused
    // as unreadable, even where other commands are allowed and only FLUSHALL is not.
    // (Before, it passed such a table as a command named `"FLUSH"ALL`.)
    path.set_verdict(7, None, Verdict::Allow).unwrap();
    for line in [
        &b"\"FLUSHALL\"\r\n"[..],
        b"FLUSH\"ALL\"\r\n",
        b"'FLUSHALL'\r\n",
    ] {
        let mut c = connect(&ns, client_ip, server_ip);
        let (got, _) = exchange(&mut c, b"set q 1\r\n", usize::MAX, 5);
        assert_eq!(got, "+OK\r\n");
        assert!(exchange(&mut c, line, usize::MAX, 0).1, "{line:?}");
        let mut c = connect(&ns, client_ip, server_ip);
        let (got, _) = exchange(&mut c, &cmd(&[b"GET", b"q"]), usize::MAX, 7);
        assert_eq!(got, "$1\r\n1\r\n", "FLUSHALL ran after {line:?}");
    }
    path.set_verdict(7, None, Verdict::Refuse).unwrap();
    // Not Redis (an HTTP request on the Redis port): refused.
    let mut c = connect(&ns, client_ip, server_ip);
    assert!(exchange(&mut c, b"GET / HTTP/1.1\r\nHost: r\r\n\r\n", usize::MAX, 0).1);
    // Where the table lets such a stream through (a Monitor group's), it reaches the
    // server (an SSH client's banner, which Redis reads as an unknown inline command),
    // reported once.
    path.set_not_resp(7, Verdict::Report).unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, refused) = exchange(&mut c, b"SSH-2.0-OpenSSH_9.2p1\r\n", usize::MAX, 1);
    assert!(!refused && got.starts_with("-ERR"), "{got:?}");
    path.set_not_resp(7, Verdict::Refuse).unwrap();
    // A connection whose pair has no table is not taken: the nftables rules send it to
    // the proxy. (A workload to itself is never policed.)
    let mut c = connect(&ns, server_ip, server_ip);
    let (got, refused) = exchange(&mut c, &cmd(&[b"SET", b"self", b"1"]), usize::MAX, 5);
    assert_eq!((got.as_str(), refused), ("+OK\r\n", false));
    // A table removed under a live connection: its commands are refused.
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"a", b"1"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");
    let mut tables = bulkhead_sockops::Tables::default();
    tables
        .servers
        .insert(SocketAddr::new(server_ip.into(), PORT));
    tables
        .identities
        .extend([(server_ip.into(), 2), (client_ip.into(), 1)]);
    tables.tables.insert((1, 2, PORT), 7);
    tables
        .verdicts
        .insert((7, Some("SET".into())), Verdict::Allow);
    path.apply(&tables).unwrap();
    tables.verdicts.clear();
    path.apply(&tables).unwrap();
    let (got, _) = exchange(
        &mut c,
        &cmd(&[b"SET", b"a", b"1"]),
        usize::MAX,
        NOPERM.len(),
    );
    assert_eq!(got, NOPERM);
    // Its pair's table removed (a quarantine, a changed policy): its writes fail.
    tables.tables.clear();
    path.apply(&tables).unwrap();
    assert!(exchange(&mut c, &cmd(&[b"GET", b"a"]), usize::MAX, 0).1);
    // Each refusal was reported once, with its command and its two ends.
    let refused: Vec<(Refused, String)> = path
        .refusals()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind != Refused::Taken)
        .inspect(|r| {
            assert_eq!(
                (r.server.ip(), r.server.port(), r.client.ip()),
                (IpAddr::from(server_ip), PORT, IpAddr::from(client_ip))
            )
        })
        .map(|r| (r.kind, r.command))
        .collect();
    let c = |s: &str| (Refused::Command, s.to_string());
    let strlen = (Refused::Reported, "STRLEN".to_string());
    assert_eq!(
        refused,
        [
            c("FLUSHALL"),
            c("KEYS"),
            c("FLUSHALL"),
            strlen.clone(),
            c("APPEND"),
            strlen.clone(),
            strlen,
            c("PING"),
            // The three quoted names, then the HTTP request.
            (Refused::NotResp, String::new()),
            (Refused::NotResp, String::new()),
            (Refused::NotResp, String::new()),
            (Refused::NotResp, String::new()),
            (Refused::ReportedStream, String::new()),
            c("SET"),
            (Refused::NoTable, String::new()),
        ]
    );
    let counted = path.counters().unwrap();
    assert!(
        counted.allowed >= 205 && counted.refused >= 2,
        "{counted:?}"
    );
    assert!(
        counted.malformed >= 1 && counted.no_table >= 1,
        "{counted:?}"
    );
    assert_eq!((counted.reported, counted.lost), (7, 0), "{counted:?}");

    // What the path kept out was the server's to run: a, b, c and d are there (a
    // without the refused APPEND), FLUSHALL never ran. And without the path, FLUSHALL
    // runs (the test can fail).
    drop(path);
    let mut c = connect(&ns, client_ip, server_ip);
    let mut p = cmd(&[b"EXISTS", b"a", b"b", b"c", b"d"]);
    p.extend(cmd(&[b"STRLEN", b"a"]));
    p.extend(cmd(&[b"FLUSHALL"]));
    p.extend(cmd(&[b"DBSIZE"]));
    let want = ":4\r\n:1\r\n+OK\r\n:0\r\n";
    let (got, refused) = exchange(&mut c, &p, usize::MAX, want.len());
    assert_eq!((got.as_str(), refused), (want, false));
}

/// A pin directory of this test process, unpinned however the test ends.
struct Unpin(PathBuf);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = bulkhead_sockops::unpin(&self.0);
    }
}

fn pin_dir(name: &str) -> (PathBuf, Unpin) {
    let dir = PathBuf::from(format!(
        "/sys/fs/bpf/bulkhead/{name}-{}",
        std::process::id()
    ));
    (dir.clone(), Unpin(dir))
}

/// Pinned, the programs outlive the process that attached them (an agent restarting):
/// connections stay decided by the last tables, and the next process adopts the maps.
#[test]
fn pinned_programs_outlive_their_process() {
    if !bulkhead_lab::privileged(&["redis-server", "ip"]) {
        return;
    }
    let (_lab, ns, server_ip, client_ip) = lab(1);
    let (dir, _unpin) = pin_dir("test-sockops");
    let want = set_only(server_ip.into(), client_ip.into());
    let mut path = RedisPath::attach_pinned(&cgroup2(), &dir).unwrap();
    path.apply(&want).unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    drop(path);
    // No process holds the programs: still decided.
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"k", b"v"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");
    let (got, _) = exchange(&mut c, &cmd(&[b"FLUSHALL"]), usize::MAX, NOPERM.len());
    assert_eq!(got, NOPERM);
    let mut fresh = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut fresh, &cmd(&[b"FLUSHALL"]), usize::MAX, NOPERM.len());
    assert_eq!(got, NOPERM, "a connection opened meanwhile is taken too");
    // The next process adopts: it reads back what is there and changes only the rest.
    let mut path = RedisPath::attach_pinned(&cgroup2(), &dir).unwrap();
    let mut more = want.clone();
    more.verdicts
        .insert((7, Some("GET".into())), Verdict::Allow);
    path.apply(&more).unwrap();
    let (got, _) = exchange(&mut c, &cmd(&[b"GET", b"k"]), usize::MAX, 7);
    assert_eq!(got, "$1\r\nv\r\n");
    // Unpinned and dropped: gone (FLUSHALL runs, so the test can fail).
    assert!(bulkhead_sockops::unpin(&dir).unwrap());
    drop(path);
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, refused) = exchange(&mut c, &cmd(&[b"FLUSHALL"]), usize::MAX, 5);
    assert_eq!((got.as_str(), refused), ("+OK\r\n", false));
}

/// IPv6 connections are decided the same way (the programs key every address by 16
/// bytes, IPv4 mapped), and their reports carry IPv6 addresses.
#[test]
fn ipv6_commands_are_decided_too() {
    if !bulkhead_lab::privileged(&["redis-server", "ip"]) {
        return;
    }
    let (_lab, ns, server4, client4) = lab(2);
    let (server_ip, client_ip) = (v6(server4), v6(client4));
    let mut path = RedisPath::attach(&cgroup2()).unwrap();
    let want = set_only(server_ip.into(), client_ip.into());
    path.apply(&want).unwrap();
    assert_eq!(path.applied(), &want);
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"k", b"6"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");
    let (got, _) = exchange(&mut c, &cmd(&[b"FLUSHALL"]), usize::MAX, NOPERM.len());
    assert_eq!(got, NOPERM);
    // The IPv4 twins have no table: not taken (the proxy's, in an agent).
    let mut c4 = connect(&ns, client4, server4);
    let (got, _) = exchange(&mut c4, &cmd(&[b"DBSIZE"]), usize::MAX, 4);
    assert_eq!(got, ":1\r\n");
    let reports: Vec<_> = path
        .refusals()
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, r.client.ip(), r.server))
        .collect();
    let (client, server) = (
        IpAddr::from(client_ip),
        SocketAddr::new(server_ip.into(), PORT),
    );
    assert_eq!(
        reports,
        [
            (Refused::Taken, client, server),
            (Refused::Command, client, server)
        ]
    );
}

/// A command refused inside MULTI makes Redis discard the transaction, as Redis's own
/// ACL refusal does: the allowed commands queued with it never run (with the EVAL
/// refusal they would: it is queued, and run by EXEC with the rest).
#[test]
fn a_refusal_inside_a_transaction_aborts_it() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(4) else {
        return;
    };
    let mut want = set_only(server_ip.into(), client_ip.into());
    for c in ["GET", "MULTI", "EXEC"] {
        want.verdicts.insert((7, Some(c.into())), Verdict::Allow);
    }
    path.apply(&want).unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    let unknown =
        "-ERR unknown command 'bulkhead-refused-by-policy', with args beginning with: \r\n";
    let abort = "-EXECABORT Transaction discarded because of previous errors.\r\n";
    for chunk in [usize::MAX, 1] {
        let mut p = cmd(&[b"MULTI"]);
        p.extend(cmd(&[b"SET", b"t", b"1"]));
        p.extend(cmd(&[b"FLUSHALL"]));
        p.extend(cmd(&[b"EXEC"]));
        p.extend(cmd(&[b"GET", b"t"]));
        let want = format!("+OK\r\n+QUEUED\r\n{unknown}{abort}$-1\r\n");
        let (got, refused) = exchange(&mut c, &p, chunk, want.len());
        // One byte per write: FLUSHALL's name began in an earlier write, and Redis
        // refuses it (and so the transaction) as an unknown command by its spoiled name.
        let got = got.replace(
            "-ERR unknown command 'FLUSHAL#', with args beginning with: \r\n",
            unknown,
        );
        assert_eq!(
            (got.as_str(), refused),
            (want.as_str(), false),
            "chunk {chunk}"
        );
    }
    // Outside a transaction the refusal is the usual one, and a clean transaction runs.
    let (got, _) = exchange(&mut c, &cmd(&[b"FLUSHALL"]), usize::MAX, NOPERM.len());
    assert_eq!(got, NOPERM);
    let mut p = cmd(&[b"MULTI"]);
    p.extend(cmd(&[b"SET", b"t", b"2"]));
    p.extend(cmd(&[b"EXEC"]));
    let (got, _) = exchange(&mut c, &p, usize::MAX, 23);
    assert_eq!(got, "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n");
}

/// An agent of an earlier build left maps pinned whose layout differs (before IPv6 the
/// address maps had 4-byte keys): the next agent discards them and starts afresh, and
/// the path works.
#[test]
fn pins_of_an_older_layout_are_replaced() {
    if !bulkhead_lab::privileged(&["redis-server", "ip"]) {
        return;
    }
    let (_lab, ns, server_ip, client_ip) = lab(3);
    let (dir, _unpin) = pin_dir("test-sockops-old");
    // (A first attach mounts the BPF file system if need be; then only the old
    // `identities` map, with IPv4 keys, is left pinned.)
    let mut path = RedisPath::attach_pinned(&cgroup2(), &dir).unwrap();
    drop(path);
    assert!(bulkhead_sockops::unpin(&dir).unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let mut old = libbpf_rs::MapHandle::create(
        libbpf_rs::MapType::Hash,
        Some("identities"),
        4,
        4,
        262_144,
        &opts,
    )
    .unwrap();
    old.pin(dir.join("identities")).unwrap();
    drop(old);
    path = RedisPath::attach_pinned(&cgroup2(), &dir).unwrap();
    assert_eq!(path.applied(), &bulkhead_sockops::Tables::default());
    use libbpf_rs::MapCore;
    let pinned = libbpf_rs::MapHandle::from_pinned_path(dir.join("identities")).unwrap();
    assert_eq!(pinned.key_size(), 16, "the old map was replaced");
    path.apply(&set_only(server_ip.into(), client_ip.into()))
        .unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut c, &cmd(&[b"FLUSHALL"]), usize::MAX, NOPERM.len());
    assert_eq!(got, NOPERM);
}

/// Bytes a client writes while its connection is still being set up go to TCP before the
/// socket joins the sockhash, so the program never reads them: a blocking send issued
/// after a non-blocking connect, and TCP Fast Open data in the SYN. Before the guard,
/// both ran FLUSHALL on a server whose table allows SET only. Now they never leave, the
/// connection's later writes fail, and each is reported.
#[test]
fn bytes_written_before_the_connection_is_up_never_leave() {
    if !bulkhead_lab::privileged(&["redis-server", "ip", "nft", "sysctl"]) {
        return;
    }
    let (_lab, ns, server_ip, client_ip) = lab(5);
    let mut path = RedisPath::attach(&cgroup2()).unwrap();
    path.apply(&set_only(server_ip.into(), client_ip.into()))
        .unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"k", b"1"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");
    // The IPv6 twins have no table: not taken, so they can count the keys.
    let keys = || {
        let mut c = connect(&ns, v6(client_ip), v6(server_ip));
        exchange(&mut c, &cmd(&[b"DBSIZE"]), usize::MAX, 4).0
    };
    let flushall = cmd(&[b"FLUSHALL"]);

    // The server's SYN-ACKs are held back while the client's send waits for the
    // connection (inside TCP's own sendmsg: the socket is not in the sockhash yet).
    sh(
        &ns,
        &[
            "nft",
            "add table inet hold; add chain inet hold out { type filter hook output priority 0; }; \
             add rule inet hold out tcp sport 6379 tcp flags & (syn | ack) == syn | ack drop",
        ],
    );
    let s = netns::enter(&ns, || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.bind(&SocketAddr::from((client_ip, 0)).into())?;
        s.set_nonblocking(true)?;
        let _ = s.connect(&SocketAddr::from((server_ip, PORT)).into());
        s.set_nonblocking(false)?;
        Ok(s)
    })
    .unwrap();
    let mut early: TcpStream = s.into();
    early
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut writer = early.try_clone().unwrap();
    let sent = std::thread::spawn(move || writer.write_all(&flushall).is_ok());
    std::thread::sleep(Duration::from_millis(300));
    sh(&ns, &["nft", "delete table inet hold"]);
    assert!(sent.join().unwrap(), "the early write failed outright");
    let mut buf = [0u8; 256];
    match early.read(&mut buf) {
        Ok(n) => panic!(
            "the early FLUSHALL reached the server: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
    }
    // The connection is spent: even an allowed command is refused on it.
    let e = early.write_all(&cmd(&[b"SET", b"k", b"2"])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(keys(), ":1\r\n");

    // TCP Fast Open, without a cookie: the command rides in the SYN.
    sh(&ns, &["sysctl", "-qw", "net.ipv4.tcp_fastopen=5"]);
    let s = netns::enter(&ns, || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.bind(&SocketAddr::from((client_ip, 0)).into())?;
        s.set_nonblocking(true)?;
        const MSG_FASTOPEN: i32 = 0x2000_0000;
        let to = SocketAddr::from((server_ip, PORT)).into();
        let n = s.send_to_with_flags(&cmd(&[b"FLUSHALL"]), &to, MSG_FASTOPEN)?;
        assert!(n > 0, "no data in the SYN");
        Ok(s)
    })
    .unwrap();
    let mut fast: TcpStream = s.into();
    fast.set_nonblocking(false).unwrap();
    fast.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    match fast.read(&mut buf) {
        Ok(n) => panic!(
            "the Fast Open FLUSHALL reached the server: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
    }
    assert_eq!(keys(), ":1\r\n");
    // The connections that were set up in time still work.
    let (got, _) = exchange(&mut c, &cmd(&[b"SET", b"k", b"3"]), usize::MAX, 5);
    assert_eq!(got, "+OK\r\n");

    let unread: Vec<_> = path
        .refusals()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == Refused::Unread)
        .map(|r| (r.client.ip(), r.server))
        .collect();
    let pair = (
        IpAddr::from(client_ip),
        SocketAddr::new(server_ip.into(), PORT),
    );
    assert_eq!(unread, [pair, pair]);
    assert!(path.counters().unwrap().unread >= 3);
}

/// A server on another node: the client's bytes go on to TCP, each one the program
/// passed counted by the guard, so a large value, a pipeline and a rewritten refusal all
/// leave (none is held back as unread).
#[test]
fn through_tcp_every_passed_byte_leaves() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(6) else {
        return;
    };
    path.apply(&remote_set_and(server_ip, client_ip, "STRLEN"))
        .unwrap();
    let mut c = connect(&ns, client_ip, server_ip);
    let mut p = cmd(&[b"SET", b"big", &vec![b'x'; 1 << 20]]);
    p.extend(cmd(&[b"FLUSHALL"]));
    p.extend(cmd(&[b"STRLEN", b"big"]));
    let want = format!("+OK\r\n{NOPERM}:1048576\r\n");
    let (got, refused) = exchange(&mut c, &p, 64 * 1024, want.len());
    assert_eq!((got.as_str(), refused), (want.as_str(), false));
    let (got, _) = exchange(
        &mut c,
        &cmd(&[b"STRLEN", b"big"]).repeat(300),
        usize::MAX,
        300 * 10,
    );
    assert_eq!(got, ":1048576\r\n".repeat(300));
    // Each command's first two bytes in a write of their own: the program passes them
    // and reads the header on in the next write (FLUSHALL's spoiled name gets Redis's
    // unknown-command answer), and what it passes is counted once.
    let mut got = String::new();
    for args in [
        &[&b"SET"[..], b"d", b"0123456789"][..],
        &[b"FLUSHALL"],
        &[b"STRLEN", b"d"],
    ] {
        let p = cmd(args);
        c.write_all(&p[..2]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        let want = if args[0] == b"FLUSHALL" {
            NOPERM.len()
        } else {
            5
        };
        got.push_str(&exchange(&mut c, &p[2..], usize::MAX, want).0);
    }
    assert_eq!(spoiled_as_refused(&got), format!("+OK\r\n{NOPERM}:10\r\n"));
    let c = path.counters().unwrap();
    assert_eq!(c.unread, 0, "{c:?}");
    assert_eq!(c.replies, 0, "the server's end was taken: {c:?}");
}

/// A stream cut across two writes at any byte: a pipeline of SET, FLUSHALL, DEL, SET split at
/// every position, on one node (bytes straight into the server's socket) and to a server
/// on "another node" (bytes on through TCP). Every command is answered in order, the
/// refused one with the refusal (or Redis's unknown-command answer to its spoiled name
/// when the name began in the first write), and it never runs. (Before, where the first
/// write ended inside a header just after a pass, the program held the header back and
/// this kernel (6.18) appended the second write at the wrong place in the message it
/// held: Redis read other bytes than the client wrote and answered a protocol error.)
#[test]
fn a_refused_command_never_runs_however_the_writes_are_cut() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(7) else {
        return;
    };
    // A key the pipeline never writes, set and read through the IPv6 twins (no table:
    // not taken): gone only if FLUSHALL ran.
    let sentinel = |args: &[&[u8]]| untaken(&ns, client_ip, server_ip, args);
    assert_eq!(sentinel(&[b"SET", b"sentinel", b"1"]), "+OK\r\n");
    let mut p = cmd(&[b"SET", b"k", b"1"]);
    p.extend(cmd(&[b"FLUSHALL"]));
    p.extend(cmd(&[b"DEL", b"k"]));
    p.extend(cmd(&[b"SET", b"j", b"2"]));
    for remote in [false, true] {
        let mut want = set_only(server_ip.into(), client_ip.into());
        if remote {
            want.remote_servers
                .insert(SocketAddr::new(server_ip.into(), PORT));
        }
        path.apply(&want).unwrap();
        for cut in 1..p.len() {
            let mut c = connect(&ns, client_ip, server_ip);
            // Two writes (each written whole: a write may take part of its bytes).
            let w1 = c.write_all(&p[..cut]);
            std::thread::sleep(Duration::from_millis(1));
            let w2 = c.write_all(&p[cut..]);
            let want = format!("+OK\r\n{NOPERM}{NOPERM}+OK\r\n");
            // What comes back within a second (a garbled stream gets a protocol error).
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            let deadline = Instant::now() + Duration::from_secs(1);
            while got.len() < want.len() && Instant::now() < deadline {
                match c.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            let got = spoiled_as_refused(&String::from_utf8_lossy(&got));
            assert_eq!(
                got, want,
                "remote {remote}, cut at {cut}: writes {w1:?} {w2:?}"
            );
            assert_eq!(
                sentinel(&[b"EXISTS", b"sentinel", b"k"]),
                ":2\r\n",
                "FLUSHALL or DEL ran (remote {remote}, cut at {cut}); the client read {got:?}"
            );
        }
    }
}

/// Urgent data: the byte a `send(MSG_OOB)` ends with is taken out of the server's stream
/// (Redis does not read it inline) although the program read it in the stream. Sent as
/// the last byte of an argument, it made Redis read one byte further into what came
/// next (it skips the two bytes after an argument without looking at them), so the
/// program read GET with an argument where Redis read a few unknown inline commands and
/// then the FLUSHALL hidden in that argument. Now a guarded connection's urgent segment
/// never leaves (between nodes; on one node the bytes go straight into the server's
/// socket, where nothing is urgent).
#[test]
fn urgent_data_never_leaves() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(8) else {
        return;
    };
    path.apply(&remote_set_and(server_ip, client_ip, "GET"))
        .unwrap();
    let sentinel = |args: &[&[u8]]| untaken(&ns, client_ip, server_ip, args);
    assert_eq!(sentinel(&[b"SET", b"sentinel", b"1"]), "+OK\r\n");
    let c = connect(&ns, client_ip, server_ip);
    let s = socket2::Socket::from(c.try_clone().unwrap());
    const MSG_OOB: i32 = 1;
    let mut sent = vec![s.send(b"*2\r\n$3\r\nGET\r\n$3\r\nab")];
    std::thread::sleep(Duration::from_millis(5));
    sent.push(s.send_with_flags(b"X", MSG_OOB));
    std::thread::sleep(Duration::from_millis(5));
    // The program: GET with an 18-byte argument. Redis, one byte on: "2", "$3", "GET",
    // "$18" (errors), then FLUSHALL.
    let hidden = b"*1\r\n$8\r\nFLUSHALL\r\n";
    let mut rest = format!("\r\n*2\r\n$3\r\nGET\r\n${}\r\n", hidden.len()).into_bytes();
    rest.extend_from_slice(hidden);
    rest.extend_from_slice(b"\r\n");
    sent.push(s.send(&rest));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sentinel(&[b"EXISTS", b"sentinel"]),
        ":1\r\n",
        "FLUSHALL ran: the urgent byte took the server's stream apart from the program's \
         (sends: {sent:?})"
    );
    let unread = path.refusals().unwrap();
    assert!(
        unread.iter().any(|r| r.kind == Refused::Unread),
        "sends {sent:?}, reports {unread:?}"
    );
}

/// On one node, a connection's first bytes go on to TCP when the server's socket is not
/// in the sockhash yet (its end of the handshake not done), and later ones straight into
/// that socket. Redis reads what came straight in first, so it read the two out of
/// order: the program read GET and an argument holding a FLUSHALL, Redis the argument
/// first, FLUSHALL and all. Now a connection that once went on to TCP stays on it.
#[test]
fn a_connection_keeps_its_bytes_in_order() {
    if !bulkhead_lab::privileged(&["redis-server", "ip", "nft"]) {
        return;
    }
    let (mut lab, ns, server_ip, client_ip) = lab(9);
    let mut path = RedisPath::attach(&cgroup2()).unwrap();
    let mut want = set_only(server_ip.into(), client_ip.into());
    want.verdicts
        .insert((7, Some("GET".into())), Verdict::Allow);
    path.apply(&want).unwrap();
    let sentinel = |args: &[&[u8]]| untaken(&ns, client_ip, server_ip, args);
    assert_eq!(sentinel(&[b"SET", b"sentinel", b"1"]), "+OK\r\n");
    // Redis reads nothing for a while, and the client's last handshake segment is held
    // back: the server's end is done only with the first data segment.
    let redis = nix::unistd::Pid::from_raw(lab.server.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(redis, nix::sys::signal::Signal::SIGSTOP).unwrap();
    sh(
        &ns,
        &[
            "nft",
            "add table inet hold; add chain inet hold out { type filter hook output priority 0; }; \
             add rule inet hold out tcp dport 6379 tcp flags == ack drop",
        ],
    );
    let mut c = connect(&ns, client_ip, server_ip);
    let hidden = b"*1\r\n$8\r\nFLUSHALL\r\n";
    let first = format!("*2\r\n$3\r\nGET\r\n${}\r\n", hidden.len());
    let a = c.write(first.as_bytes());
    std::thread::sleep(Duration::from_millis(20));
    let mut rest = hidden.to_vec();
    rest.extend_from_slice(b"\r\n");
    let b = c.write(&rest);
    sh(&ns, &["nft", "delete table inet hold"]);
    nix::sys::signal::kill(redis, nix::sys::signal::Signal::SIGCONT).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sentinel(&[b"EXISTS", b"sentinel"]),
        ":1\r\n",
        "FLUSHALL ran: Redis read the connection's bytes out of order (writes {a:?} {b:?})"
    );
    let (got, _) = exchange(&mut c, b"", usize::MAX, 5);
    assert!(got.starts_with("$-1\r\n"), "GET's answer: {got:?}");
    lab.server.take().map(|mut s| s.kill());
}

/// Redis's answer to a refused command whose name began in an earlier write (the
/// program spoiled a byte of it, `#`, so that Redis does not know it), read as the
/// refusal it stands for.
fn spoiled_as_refused(answers: &str) -> String {
    let mut out = String::new();
    let mut rest = answers;
    while let Some(i) = rest.find("-ERR unknown command '") {
        let end = rest[i..].find("\r\n").map_or(rest.len(), |e| i + e + 2);
        out.push_str(&rest[..i]);
        let error = &rest[i..end];
        out.push_str(if error.contains('#') { NOPERM } else { error });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A client that writes a long pipeline in pieces (`redis-cli --pipe` writes 16 KiB at
/// a time, client libraries flush their buffers when full) cuts commands anywhere: in
/// a bulk string, in a header, in a command's name. Every command is answered, in
/// order, the refused one with the refusal (or, when its name began in an earlier
/// write, Redis's answer to an unknown command: the program spoiled its name), and
/// every allowed one ran. (Before, a
/// piece that ended inside a header right after whole commands garbled the stream:
/// the program read the rest as not RESP and refused every write after it, so a bulk
/// load stopped after a few thousand keys.)
#[test]
fn a_pipeline_written_in_pieces_is_answered_whole() {
    let Some((_lab, ns, server_ip, client_ip, mut path)) = attached(9) else {
        return;
    };
    const N: usize = 3000;
    let mut p = Vec::new();
    let mut want = String::new();
    for i in 0..N {
        if i == N / 2 {
            p.extend(cmd(&[b"FLUSHALL"]));
            want.push_str(NOPERM);
        }
        p.extend(cmd(&[b"SET", format!("key:{i}").as_bytes(), b"value"]));
        want.push_str("+OK\r\n");
    }
    let sentinel = |args: &[&[u8]]| untaken(&ns, client_ip, server_ip, args);
    for remote in [false, true] {
        let mut tables = set_only(server_ip.into(), client_ip.into());
        if remote {
            tables
                .remote_servers
                .insert(SocketAddr::new(server_ip.into(), PORT));
        }
        path.apply(&tables).unwrap();
        for piece in [16384, 4096, 1000, 61, 7] {
            assert_eq!(sentinel(&[b"FLUSHALL"]), "+OK\r\n");
            assert_eq!(sentinel(&[b"SET", b"sentinel", b"1"]), "+OK\r\n");
            let mut c = connect(&ns, client_ip, server_ip);
            let mut reader = c.try_clone().unwrap();
            let expected = want.len();
            let read = std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 1 << 16];
                let deadline = Instant::now() + Duration::from_secs(20);
                while got.len() < expected && Instant::now() < deadline {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => break,
                    }
                }
                String::from_utf8_lossy(&got).into_owned()
            });
            let mut written = Ok(());
            for w in p.chunks(piece) {
                written = c.write_all(w);
                if written.is_err() {
                    break;
                }
            }
            let got = spoiled_as_refused(&read.join().unwrap());
            let at = got
                .bytes()
                .zip(want.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            assert!(
                got == want,
                "remote {remote}, {piece}-byte writes ({written:?}): {} of {} bytes answered, \
                 first difference at byte {at}: {:?}",
                got.len(),
                want.len(),
                &got[at.saturating_sub(20)..(at + 60).min(got.len())]
            );
            assert_eq!(sentinel(&[b"DBSIZE"]), format!(":{}\r\n", N + 1));
        }
    }
}
