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
use bulkhead_lab::{Helper, ProbeOptions, State, UpOptions, netns, privileged};
use bulkhead_manifest::{Source, parse_sources};
use bulkhead_model::L4;
use nix::fcntl::{Flock, FlockArg};

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
fn a_crashed_run_is_found_by_name_and_cleaned_up() {
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

    // What `lab down --all` does, for this lab only: other test binaries may have labs
    // up right now (they do not all take the lock), and `--all` would remove them too.
    let present = bulkhead_lab::cleanup::labs_present().unwrap();
    assert!(present.iter().any(|l| l == "t-crash"), "found by name");
    let r = bulkhead_lab::down("t-crash").unwrap();
    assert_eq!(r.namespaces, 6);
    assert!(r.processes >= 2, "{r:?}");
    assert_gone("t-crash", &pids);
    drop(guard);
}

/// `kubectl apply`-like input for `lab add`.
fn bundle_of(text: &str) -> bulkhead_policy::spec::Bundle {
    parse_sources(&lab_doc(text)).unwrap_or_else(|d| panic!("{d}"))
}

fn inventory_files(lab: &str) -> BTreeSet<String> {
    std::fs::read_dir(bulkhead_lab::inventory::dir(lab))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn workloads_come_and_go_in_a_running_lab() {
    if !privileged(&["ip"]) {
        return;
    }
    let _l = lock();
    let lab = "apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t-dyn}\nspec:\n  nodes: [n1, n2]\n  \
               workloads:\n    - {name: a, namespace: x, node: n1}\n    - {name: b, namespace: x, node: n2}\n  \
               run:\n    - {selector: app == \"web\", run: http}\n";
    let (guard, st) = up(lab_doc(lab));
    let name = guard.0.clone();
    assert_eq!(
        inventory_files(&name),
        ["cluster.yaml", "pod.x.a.yaml", "pod.x.b.yaml"]
            .map(String::from)
            .into()
    );
    let pids: Vec<i32> = st.processes.iter().map(|p| p.pid).collect();

    // Added: c with an address outside its node's subnet (the router gets a host
    // route), d served by the http responder (the Lab's run rule), in a new namespace.
    let added = bulkhead_lab::add(
        &name,
        &bundle_of(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {team: q}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: y}\nspec: {nodeName: n2}\n\
             status: {podIP: 10.99.0.7}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: y, labels: {app: web}}\n\
             spec: {containers: [{name: w, ports: [{containerPort: 8080}]}]}\n",
        ),
    )
    .unwrap_or_else(|e| panic!("lab add: {e:#}"));
    let got: Vec<(String, String, String)> = added
        .added
        .iter()
        .map(|w| (w.key.to_string(), w.node.clone(), w.ipv4.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("y/c".into(), "n2".into(), "10.99.0.7".into()),
            ("y/d".into(), "n1".into(), "10.244.0.3".into()),
        ]
    );
    let st = bulkhead_lab::load(&name).unwrap();
    assert_eq!(st.plan.workloads.len(), 4);
    assert_eq!(
        st.workload("y/d").unwrap().run,
        bulkhead_policy::spec::LabRun::Http
    );
    let y = st.plan.namespaces.iter().find(|n| n.name == "y").unwrap();
    assert_eq!(y.labels.get("team"), Some("q"));
    assert!(inventory_files(&name).contains("pod.y.c.yaml"));
    let single = std::fs::read_to_string(bulkhead_lab::inventory::file(&name)).unwrap();
    let back = parse_sources(&[Source {
        name: "inventory.yaml".into(),
        text: single,
    }])
    .unwrap();
    assert_eq!(back.inventory.workloads.len(), 4);
    // Wired like `lab up` wires: every pair, both families, across the router.
    let m = probe(&name, &["TCP/8080", "UDP/53"], Family::V4, 1000);
    assert_eq!(all_allowed(&m), Vec::<String>::new());
    let m = probe(&name, &["TCP/8080"], Family::V6, 1000);
    assert_eq!(all_allowed(&m), Vec::<String>::new());
    let d = st.workload("y/d").unwrap();
    let web = http_get(
        &st.workload("x/a").unwrap().netns,
        SocketAddr::new(d.ip(false), 8080),
        "/p",
    );
    assert!(web.contains("200 OK"), "{web}");
    let router = st.plan.router.clone().unwrap();
    assert!(ip(&["-n", &router, "route"]).contains("10.99.0.7 via 10.244.1.1"));

    // Staged: made and recorded (probeable), not yet in the inventory.
    let staged = bulkhead_lab::add::stage(
        &name,
        &bundle_of("apiVersion: v1\nkind: Pod\nmetadata: {name: e, namespace: x}\n"),
    )
    .unwrap();
    assert_eq!(staged.workloads()[0].key.to_string(), "x/e");
    assert!(!inventory_files(&name).contains("pod.x.e.yaml"));
    let r = bulkhead_lab::probe::probe_pairs(
        staged.state(),
        &[
            pair("x/e", "x/a", "TCP/80"),
            pair("x/a", "x/e", "UDP/53"),
            pair("x/e", "nothere", "TCP/80"),
        ],
        &probe_opts(),
    );
    assert_eq!(
        r[0].outcome,
        bulkhead_lab::Outcome::Allowed,
        "no agent: nothing isolates"
    );
    assert_eq!(r[1].outcome, bulkhead_lab::Outcome::Allowed);
    assert!(
        matches!(&r[2].outcome, bulkhead_lab::Outcome::Untestable(why) if why.contains("no workload"))
    );
    staged.publish().unwrap();
    assert!(inventory_files(&name).contains("pod.x.e.yaml"));

    // Relabelled: the workload's file and the state say so; nothing else is rewritten.
    let edits = bulkhead_lab::LabelEdits::parse(&["role=guest".into()], false).unwrap();
    let before = std::fs::metadata(bulkhead_lab::inventory::dir(&name).join("pod.x.a.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    let r = bulkhead_lab::label(&name, "e", &edits).unwrap();
    assert!(r.changed);
    let file = bulkhead_lab::inventory::dir(&name).join("pod.x.e.yaml");
    assert!(
        std::fs::read_to_string(file)
            .unwrap()
            .contains("role: guest")
    );
    assert_eq!(
        bulkhead_lab::load(&name)
            .unwrap()
            .workload("x/e")
            .unwrap()
            .labels
            .get("role"),
        Some("guest")
    );
    let after = std::fs::metadata(bulkhead_lab::inventory::dir(&name).join("pod.x.a.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // Removed: processes, namespaces, router routes and files go; addresses come free.
    let d_pid = st.processes.iter().find(|p| p.owner == "y/d").unwrap().pid;
    let r = bulkhead_lab::remove(&name, &["y/c".into(), "d".into()]).unwrap();
    assert_eq!(r.processes, 1, "d's responder");
    assert!(bulkhead_lab::process::start_time(d_pid).is_none());
    assert!(!netns::exists("bh-t-dyn.pod.y.c") && !netns::exists("bh-t-dyn.pod.y.d"));
    assert!(!ip(&["-n", &router, "route"]).contains("10.99.0.7"));
    assert_eq!(
        inventory_files(&name),
        [
            "cluster.yaml",
            "pod.x.a.yaml",
            "pod.x.b.yaml",
            "pod.x.e.yaml"
        ]
        .map(String::from)
        .into()
    );
    let st = bulkhead_lab::load(&name).unwrap();
    assert_eq!(st.plan.workloads.len(), 3);
    assert!(st.processes.iter().all(|p| p.owner != "y/d"));
    assert!(bulkhead_lab::remove(&name, &["nothere".into()]).is_err());
    let again = bulkhead_lab::add(
        &name,
        &bundle_of(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: f, namespace: x}\nspec: {nodeName: n1}\n",
        ),
    )
    .unwrap();
    assert_eq!(
        again.added[0].ipv4.to_string(),
        "10.244.0.3",
        "d's address, free again"
    );

    drop(guard);
    assert_gone("t-dyn", &[pids, vec![d_pid]].concat());
}

fn pair(src: &str, dst: &str, probe: &str) -> bulkhead_lab::PairProbe {
    bulkhead_lab::PairProbe {
        src: src.into(),
        dst: dst.into(),
        probe: probe.parse().unwrap(),
    }
}

fn probe_opts() -> ProbeOptions {
    ProbeOptions {
        probes: Vec::new(),
        family: Family::V4,
        timeout: Duration::from_millis(1000),
    }
}

/// `Netlink::wait_up`, which `lab up` and `lab add` wait with: a veth end that was up
/// before its peer does not read up until the kernel has finished bringing it up (until
/// then it drops what it is given to send), and once it reads up it carries packets.
#[test]
fn a_link_reads_up_only_once_it_carries_packets() {
    use bulkhead_lab::netlink::{FAR_MAC, Netlink, Via};
    use std::net::{Ipv4Addr, UdpSocket};
    if !privileged(&[]) {
        return;
    }
    /// Removes the namespaces when the test ends, however it ends.
    struct Spaces([&'static str; 2]);
    impl Drop for Spaces {
        fn drop(&mut self) {
            for ns in self.0 {
                if let Err(e) = netns::delete(ns) {
                    eprintln!("removing namespace {ns}: {e:#}");
                }
            }
        }
    }
    let spaces = Spaces(["bulkhead-test-link.node", "bulkhead-test-link.pod"]);
    let [node, pod] = spaces.0;
    for ns in [node, pod] {
        netns::delete(ns).unwrap();
        netns::create(ns).unwrap();
    }
    let (node_addr, pod_addr) = (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2));
    let pod_ns = File::open(netns::path(pod)).unwrap();
    // As a workload's link is made: the node's end up, routed, its peer `eth0` still down.
    netns::enter(node, || {
        let mut nl = Netlink::open()?;
        let lo = nl.up("lo")?;
        nl.add_address(lo, IpAddr::V4(node_addr), 32)?;
        nl.add_veth("v", "eth0", &pod_ns)?;
        let v = nl.index("v")?;
        nl.add_neighbour(v, IpAddr::V4(pod_addr), FAR_MAC)?;
        nl.add_route(IpAddr::V4(pod_addr), 32, v, Via::Link)
    })
    .unwrap();
    let rx = netns::enter(pod, || {
        netns::sysctl(&["net", "ipv4", "conf", "all", "rp_filter"], "0")?;
        netns::sysctl(&["net", "ipv4", "conf", "eth0", "rp_filter"], "0")?;
        let mut nl = Netlink::open()?;
        let eth0 = nl.index("eth0")?;
        nl.add_address(eth0, IpAddr::V4(pod_addr), 32)?;
        Ok(UdpSocket::bind((pod_addr, 9))?)
    })
    .unwrap();
    let wait = |timeout| netns::enter(node, || Netlink::open()?.wait_up("v", timeout));
    let e = wait(Duration::from_millis(50)).unwrap_err();
    assert!(format!("{e:#}").contains("link v is not up"), "{e:#}");

    netns::enter(pod, || Netlink::open()?.up("eth0")).unwrap();
    // At once, as a probe does: without the wait the node's end may still drop it.
    wait(Duration::from_secs(10)).unwrap();
    netns::enter(node, || {
        Ok(UdpSocket::bind((node_addr, 0))?.send_to(b"first", (pod_addr, 9))?)
    })
    .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = rx
        .recv_from(&mut buf)
        .expect("the first datagram over a link that reads up arrives");
    assert_eq!(&buf[..n], b"first");
}
