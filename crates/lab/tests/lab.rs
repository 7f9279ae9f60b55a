//! Real labs: namespaces, veths, responders, containers and probes, as root.
//!
//! Without root these tests skip with a reason, unless `BULKHEAD_REQUIRE_PRIVILEGED=1`
//! (CI), where not being able to run is a failure. They take a file lock so that only
//! one builds labs at a time (test runners run tests in parallel processes, and one of
//! them removes every lab). Each uses its own lab name and removes its lab in a guard,
//! also when it fails.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_analyze::matrix::{Family, Matrix};
use bulkhead_lab::{Helper, ProbeOptions, State, UpOptions, netns};
use bulkhead_manifest::{Source, parse_sources};
use bulkhead_model::L4;
use nix::fcntl::{Flock, FlockArg};

const REQUIRE: &str = "BULKHEAD_REQUIRE_PRIVILEGED";

/// Whether privileged tests can run here; panics when they must and cannot.
fn privileged(needs: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    for program in needs {
        if bulkhead_lab::process::which(program).is_none() {
            missing.push(format!("the program {program}"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("this test needs {}", missing.join(", "));
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("{why} ({REQUIRE}=1: privileged tests must run)");
    }
    eprintln!("skipping: {why}");
    false
}

/// One lab-building test at a time, across processes.
fn lock() -> Flock<File> {
    std::fs::create_dir_all("/run/bulkhead").unwrap();
    let f = File::create("/run/bulkhead/lab-tests.lock").unwrap();
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap()
}

/// Removes the lab when the test ends, however it ends.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = bulkhead_lab::down(&self.0) {
            eprintln!("cleaning up lab {}: {e:#}", self.0);
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn helper() -> Helper {
    Helper {
        program: env!("CARGO_BIN_EXE_bulkhead-lab-serve").into(),
        args: Vec::new(),
    }
}

/// A conformance scenario's files plus a Lab document.
fn scenario(dir: &str, lab: &str) -> Vec<Source> {
    let mut sources =
        bulkhead_manifest::read_paths(&[repo().join("conformance/scenarios").join(dir)], false)
            .unwrap();
    sources.push(Source {
        name: "lab.yaml".into(),
        text: lab.into(),
    });
    sources
}

fn up(sources: Vec<Source>) -> (Guard, State) {
    let bundle = parse_sources(&sources).unwrap_or_else(|d| panic!("{d}"));
    let name = bundle.lab.as_ref().map(|l| l.name.clone()).unwrap();
    // Left over from an earlier, killed run of this very test: gone first.
    bulkhead_lab::down(&name).unwrap();
    let guard = Guard(name);
    let opts = UpOptions {
        name: None,
        helper: helper(),
        agent: None,
        sources: Vec::new(),
    };
    let report = bulkhead_lab::up(&bundle, &opts).unwrap_or_else(|e| panic!("lab up: {e:#}"));
    (guard, report.state)
}

fn probe(lab: &str, probes: &[&str], family: Family, timeout_ms: u64) -> Matrix {
    let opts = ProbeOptions {
        probes: probes.iter().map(|p| p.parse::<L4>().unwrap()).collect(),
        family,
        timeout: Duration::from_millis(timeout_ms),
    };
    let r = bulkhead_lab::probe(lab, &opts).unwrap_or_else(|e| panic!("probe: {e:#}"));
    assert!(r.untestable.is_empty(), "untestable: {:?}", r.untestable);
    r.matrix
}

/// Every ordered pair allowed for every probe.
fn all_allowed(m: &Matrix) -> Vec<String> {
    m.allowed
        .iter()
        .filter(|(_, v)| **v != m.probes)
        .map(|(k, v)| format!("{k}: {v:?}"))
        .collect()
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of lab `lab` is left: namespaces, host links, state, processes.
fn assert_gone(lab: &str, pids: &[i32]) {
    let prefix = bulkhead_lab::names::prefix(lab);
    let left: Vec<String> = netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        !ip(&["netns", "list"]).contains(&prefix),
        "ip netns list still shows {prefix}"
    );
    // The host never gets a link of ours, not even for a moment.
    let links = ip(&["-o", "link"]);
    assert!(
        !links.lines().any(|l| l
            .split(':')
            .nth(1)
            .is_some_and(|n| n.trim().starts_with("bh"))),
        "host links: {links}"
    );
    assert!(!bulkhead_lab::names::lab_dir(lab).exists());
    for &pid in pids {
        assert!(
            bulkhead_lab::process::start_time(pid).is_none(),
            "process {pid} still runs"
        );
    }
}

const TWO_NODES: &str = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-allow}\nspec: {nodes: [node-1, node-2]}\n";

#[test]
fn two_nodes_from_kubernetes_yaml_allow_everything_without_an_agent() {
    if !privileged(&["ip"]) {
        return;
    }
    let _l = lock();
    let sources = scenario("01-default-allow", TWO_NODES);
    let t = Instant::now();
    let (guard, st) = up(sources.clone());
    let up_time = t.elapsed();
    let lab = guard.0.clone();

    // Addresses: unique, in the pools, on the pods' eth0; both nodes used.
    assert_eq!(st.plan.workloads.len(), 9);
    assert_eq!(st.plan.nodes.len(), 2);
    let addrs: BTreeSet<IpAddr> = st
        .plan
        .workloads
        .iter()
        .flat_map(|w| [w.ip(false), w.ip(true)])
        .collect();
    assert_eq!(addrs.len(), 18);
    let nodes: BTreeSet<&str> = st.plan.workloads.iter().map(|w| w.node.as_str()).collect();
    assert_eq!(nodes.len(), 2);
    for w in &st.plan.workloads {
        let shown = ip(&["-n", &w.netns, "-o", "addr", "show", "dev", "eth0"]);
        assert!(
            shown.contains(&format!(" {}/32 ", w.ipv4)),
            "{}: {shown}",
            w.key
        );
        assert!(
            shown.contains(&format!(" {}/128 ", w.ipv6)),
            "{}: {shown}",
            w.key
        );
    }
    // Same input, same plan: addresses are deterministic.
    let again = bulkhead_lab::plan::plan(&parse_sources(&sources).unwrap(), &lab).unwrap();
    assert_eq!(again, st.plan);

    // No agent, no policy in any kernel: every pair, every probe, both families.
    let t = Instant::now();
    let m = probe(
        &lab,
        &["TCP/80", "TCP/81", "UDP/53", "SCTP/80"],
        Family::V4,
        1000,
    );
    let probe_time = t.elapsed();
    assert_eq!(m.allowed.len(), 72);
    assert_eq!(all_allowed(&m), Vec::<String>::new());
    // Exactly `analyze matrix`'s JSON for the same input (which allows everything).
    let engine = bulkhead_policy::Engine::new(&parse_sources(&sources).unwrap()).unwrap();
    let expected =
        bulkhead_analyze::matrix(&engine, &bulkhead_analyze::default_probes(), Family::V4);
    assert_eq!(
        serde_json::to_string_pretty(&m).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
    let m6 = probe(
        &lab,
        &[
            "TCP/80", "UDP/53", "SCTP/80", "ICMPv6", "ICMP", "TCP/8080", "UDP/5353",
        ],
        Family::V6,
        1000,
    );
    assert_eq!(all_allowed(&m6), Vec::<String>::new());

    // exec: in the workload's namespace, exit code passed through.
    let w = st.workload("x/a").unwrap();
    let check = format!("ip -o addr show dev eth0 | grep -qF ' {}/32 '", w.ipv4);
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    assert_eq!(bulkhead_lab::exec(&lab, "x/a", &sh(&check)).unwrap(), 0);
    assert!(
        bulkhead_lab::exec(&lab, "a", &sh("exit 7")).is_err(),
        "a is ambiguous"
    );
    assert_eq!(bulkhead_lab::exec(&lab, "x/a", &sh("exit 7")).unwrap(), 7);

    // Down: nothing left; again: nothing to do.
    let pids: Vec<i32> = st.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 9, "one responder per workload");
    let t = Instant::now();
    let report = bulkhead_lab::down(&lab).unwrap();
    let down_time = t.elapsed();
    assert_eq!(report.namespaces, 12, "router, 2 nodes, 9 pods");
    assert_gone(&lab, &pids);
    assert!(bulkhead_lab::down(&lab).unwrap().is_empty());
    eprintln!(
        "9 pods on 2 nodes: up {up_time:?}, probe 72 pairs x 4 {probe_time:?}, down {down_time:?}"
    );
    assert!(probe_time < Duration::from_secs(5), "{probe_time:?}");
}

#[test]
fn probes_see_drops_and_refusals_made_in_a_node() {
    if !privileged(&["ip", "nft"]) {
        return;
    }
    let _l = lock();
    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-deny}\nspec:\n  workloads:\n    \
               - {name: a, namespace: x, ports: [{port: 80}, {port: 53, protocol: UDP}]}\n    \
               - {name: b, namespace: x, ports: [{port: 80}, {port: 53, protocol: UDP}]}\n    \
               - {name: c, namespace: y}\n";
    let (guard, st) = up(lab_doc(lab));
    let ip_of = |k: &str| st.workload(k).unwrap().ipv4.to_string();
    let (a, b, c) = (ip_of("x/a"), ip_of("x/b"), ip_of("y/c"));
    // Rules a node agent could make: silent drops and active refusals.
    let rules = format!(
        "table inet bhtest {{ chain filter {{ type filter hook forward priority 0;
           ip saddr {a} ip daddr {b} tcp dport 80 drop
           ip saddr {a} ip daddr {b} udp dport 53 reject
           ip saddr {a} ip daddr {b} meta l4proto sctp drop
           ip saddr {a} ip daddr {c} tcp dport 80 reject with tcp reset
           ip saddr {a} ip daddr {c} udp dport 53 drop
           ip saddr {a} ip daddr {c} icmp type echo-request drop
           ip saddr {b} ip daddr {a} tcp dport 80 reject with icmp type admin-prohibited
           ct state invalid counter
         }}
         }}"
    );
    let node = &st.plan.nodes[0].netns;
    let mut nft = Command::new("ip")
        .args(["netns", "exec", node, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success());

    let t = Instant::now();
    let m = probe(
        &guard.0,
        &["TCP/80", "UDP/53", "SCTP/80", "ICMP"],
        Family::V4,
        500,
    );
    let took = t.elapsed();
    let got = |k: &str| m.allowed[k].join(" ");
    assert_eq!(got("x/a -> x/b"), "ICMP/8/0");
    assert_eq!(got("x/a -> y/c"), "SCTP/80");
    assert_eq!(got("x/b -> x/a"), "UDP/53 SCTP/80 ICMP/8/0");
    assert_eq!(got("y/c -> x/a"), "TCP/80 UDP/53 SCTP/80 ICMP/8/0");
    assert_eq!(got("x/b -> y/c"), "TCP/80 UDP/53 SCTP/80 ICMP/8/0");
    // Silent drops cost one timeout, in parallel: not one per probe.
    assert!(took < Duration::from_secs(3), "{took:?}");
    // SCTP INITs carry a valid CRC32c: conntrack, which checks it, saw none invalid.
    let listed = Command::new("ip")
        .args([
            "netns", "exec", node, "nft", "list", "table", "inet", "bhtest",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("invalid counter packets 0 "), "{listed}");
}

/// `GET path` from inside namespace `from`; the whole answer.
fn http_get(from: &str, to: SocketAddr, path: &str) -> String {
    let path = path.to_string();
    netns::enter(from, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    })
    .unwrap_or_else(|e| panic!("GET {to}: {e:#}"))
}

fn lab_doc(text: &str) -> Vec<Source> {
    vec![Source {
        name: "lab.yaml".into(),
        text: text.into(),
    }]
}

#[test]
fn a_runc_container_and_the_http_responder_answer() {
    if !privileged(&["ip", "runc", "busybox"]) {
        return;
    }
    let _l = lock();
    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-box}\nspec:\n  workloads:\n    \
               - {name: box, namespace: apps, labels: {app: box}, ports: [{port: 80}]}\n    \
               - {name: web, namespace: apps, ports: [{port: 8080}], run: http}\n    \
               - {name: client, namespace: apps}\n  \
               run:\n    - {selector: app == \"box\", run: {container: {image: busybox}}}\n";
    let (guard, st) = up(lab_doc(lab));
    assert_eq!(st.containers.len(), 1);
    let status = bulkhead_lab::status(&guard.0).unwrap();
    assert!(
        status.workloads.iter().all(|w| w.alive != Some(false)),
        "{status:?}"
    );

    // busybox httpd in runc serves the workload's page; the http responder any path.
    let client = &st.workload("apps/client").unwrap().netns;
    let at = |w: &str, port| SocketAddr::new(st.workload(w).unwrap().ip(false), port);
    let page = http_get(client, at("apps/box", 80), "/index.html");
    assert!(
        page.starts_with("HTTP/1.") && page.contains("apps/box"),
        "{page}"
    );
    let answer = http_get(client, at("apps/web", 8080), "/any/path");
    assert!(
        answer.contains("200 OK") && answer.contains("GET /any/path"),
        "{answer}"
    );
    let m = probe(&guard.0, &["TCP/80", "TCP/8080"], Family::V6, 1000);
    assert_eq!(all_allowed(&m), Vec::<String>::new());

    let container_pid = st
        .processes
        .iter()
        .find(|p| p.role == "container")
        .unwrap()
        .pid;
    drop(guard);
    assert_gone("t-box", &[container_pid]);
    let runc = Command::new("runc").args(["list", "-q"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&runc.stdout).contains("bh-t-box."));
}

#[test]
fn a_real_server_runs_and_a_missing_one_fails_before_anything_is_made() {
    if !privileged(&["ip", "iperf3"]) {
        return;
    }
    let _l = lock();
    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-real}\nspec:\n  workloads:\n    \
               - {name: perf, ports: [{port: 5201}], run: {command: [iperf3, -s, -p, \"5201\"]}}\n    \
               - {name: client}\n    - {name: other}\n";
    let (guard, st) = up(lab_doc(lab));
    let perf = st.processes.iter().find(|p| p.role == "command").unwrap();
    assert!(perf.alive());
    // iperf3 resets connections that do not speak its protocol: still allowed.
    let m = probe(&guard.0, &["TCP/5201"], Family::V4, 1000);
    assert_eq!(all_allowed(&m), Vec::<String>::new());
    let pid = perf.pid;
    drop(guard);
    assert_gone("t-real", &[pid]);

    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-missing}\nspec:\n  workloads:\n    \
               - {name: r, run: {command: [redis-server-not-installed, --port, \"6379\"]}}\n";
    let bundle = parse_sources(&lab_doc(lab)).unwrap();
    let opts = UpOptions {
        name: None,
        helper: helper(),
        agent: None,
        sources: Vec::new(),
    };
    let e = bulkhead_lab::up(&bundle, &opts).unwrap_err().to_string();
    assert!(
        e.contains("default/r: redis-server-not-installed is not installed"),
        "{e}"
    );
    assert_gone("t-missing", &[]);
}

#[test]
fn a_crashed_run_is_cleaned_up_by_down_all() {
    if !privileged(&["ip"]) {
        return;
    }
    let _l = lock();
    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-crash}\nspec:\n  nodes: [n1, n2]\n  workloads:\n    \
               - {name: a, ports: [{port: 80}]}\n    - {name: b, ports: [{port: 80}]}\n    \
               - {name: c, run: {command: [sleep, \"3600\"]}}\n";
    let (guard, st) = up(lab_doc(lab));
    let pids: Vec<i32> = st.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 3);
    // The crash: one server killed, the state directory gone, the rest still running.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::remove_dir_all(bulkhead_lab::names::lab_dir("t-crash")).unwrap();
    assert!(netns::exists(&st.plan.workloads[0].netns));
    assert!(bulkhead_lab::state::labs().iter().all(|l| l != "t-crash"));

    let reports = bulkhead_lab::down_all().unwrap();
    let r = reports
        .iter()
        .find(|r| r.lab == "t-crash")
        .expect("found by name");
    assert_eq!(r.namespaces, 6);
    assert!(r.processes >= 2, "{r:?}");
    assert_gone("t-crash", &pids);
    drop(guard);
}
