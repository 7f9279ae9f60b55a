//! FQDN egress end to end: a real dnsmasq in the lab, external HTTP servers outside the
//! inventory (a network namespace routed from the node: `world` addresses), a client
//! whose policy allows TCP/8080 to `dns: "*.example.com"` only. Before any resolution
//! the kernel refuses the address; `curl http://api.example.com:8080/` (resolved by
//! glibc through the proxy) works; evil.example.org's address is refused; the DNS set
//! holds the address with the answer's TTL and the kernel drops it when it expires; the
//! flow record names the rule and the DNS name. The agents trust only resolvers in the
//! cluster (`--dns-resolver`): a resolver outside it that the policy lets the client ask
//! (a real dnsmasq, in the external namespace) answers api.example.com with
//! evil.example.org's address; the answer is relayed, but the address stays refused.
//! Also measures answer -> programmed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, require};

const LAB: &str = "fqdntest";
const NODE: &str = "bh-fqdntest.node.node-1";
const CLIENT: &str = "bh-fqdntest.pod.apps.client-0";
/// Named like the lab's own namespaces, so `lab down` removes it even after a crash.
const EXT: &str = "bh-fqdntest.pod.external.servers";
const API: &str = "203.0.113.10";
const EVIL: &str = "203.0.113.20";
/// A resolver outside the cluster (in the external namespace) that lies.
const ROGUE: &str = "203.0.113.53";

fn sh(args: &[&str]) -> (bool, String) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text.trim().to_string())
}

fn must(args: &[&str]) {
    let (ok, out) = sh(args);
    assert!(ok, "{args:?}: {out}");
}

/// The external servers and the client's resolv.conf; removed on drop (before the lab,
/// which is dropped after: declared first).
struct External {
    http: Option<Child>,
    rogue: Option<Child>,
    www: std::path::PathBuf,
}

impl External {
    fn up(dns: &str) -> External {
        let www = std::env::temp_dir().join("bulkhead-fqdn-www");
        let mut ext = External {
            http: None,
            rogue: None,
            www,
        };
        std::fs::create_dir_all(&ext.www).unwrap();
        std::fs::write(ext.www.join("index.html"), "hello from outside\n").unwrap();
        let _ = sh(&["ip", "netns", "del", EXT]);
        must(&["ip", "netns", "add", EXT]);
        must(&[
            "ip", "link", "add", "bhfqdnx0", "netns", NODE, "type", "veth", "peer", "name", "eth0",
            "netns", EXT,
        ]);
        let (api, evil, rogue) = (
            format!("{API}/32"),
            format!("{EVIL}/32"),
            format!("{ROGUE}/32"),
        );
        for a in [
            ["-n", EXT, "link", "set", "lo", "up"].as_slice(),
            &["-n", EXT, "link", "set", "eth0", "up"],
            &["-n", EXT, "addr", "add", &api, "dev", "eth0"],
            &["-n", EXT, "addr", "add", &evil, "dev", "eth0"],
            &["-n", EXT, "addr", "add", &rogue, "dev", "eth0"],
            &["-n", EXT, "route", "add", "default", "dev", "eth0"],
            &["-n", NODE, "link", "set", "bhfqdnx0", "up"],
            &["-n", NODE, "route", "add", &api, "dev", "bhfqdnx0"],
            &["-n", NODE, "route", "add", &evil, "dev", "bhfqdnx0"],
            &["-n", NODE, "route", "add", &rogue, "dev", "bhfqdnx0"],
        ] {
            let mut args = vec!["ip"];
            args.extend_from_slice(a);
            must(&args);
        }
        must(&[
            "ip",
            "netns",
            "exec",
            NODE,
            "sysctl",
            "-qw",
            "net.ipv4.conf.bhfqdnx0.proxy_arp=1",
        ]);
        // `ip netns exec` puts /etc/netns/NAME/resolv.conf over /etc/resolv.conf.
        let etc = format!("/etc/netns/{CLIENT}");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(format!("{etc}/resolv.conf"), format!("nameserver {dns}\n")).unwrap();
        ext.http = Some(
            Command::new("ip")
                .args(["netns", "exec", EXT, "python3", "-m", "http.server", "8080"])
                .arg("-d")
                .arg(&ext.www)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m http.server"),
        );
        ext.rogue = Some(
            Command::new("ip")
                .args(["netns", "exec", EXT, "dnsmasq", "--keep-in-foreground"])
                .args([
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--user=root",
                ])
                .args(["--port=53", "--bind-interfaces", "--local-ttl=300"])
                .arg(format!("--listen-address={ROGUE}"))
                .arg(format!("--host-record=api.example.com,{EVIL}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq"),
        );
        // Listening (from inside its namespace).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sh(&[
            "ip",
            "netns",
            "exec",
            EXT,
            "curl",
            "-s",
            "-m",
            "1",
            "http://127.0.0.1:8080/",
        ])
        .0
        {
            assert!(
                Instant::now() < deadline,
                "the external HTTP server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ext
    }
}

impl Drop for External {
    fn drop(&mut self) {
        for mut c in [self.http.take(), self.rogue.take()].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", EXT]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{CLIENT}"));
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

/// curl in the client's namespace (with its resolv.conf): (success, output).
fn curl(url: &str) -> (bool, String) {
    sh(&[
        "ip",
        "netns",
        "exec",
        CLIENT,
        "curl",
        "-s",
        "-m",
        "3",
        "--noproxy",
        "*",
        url,
    ])
}

/// `dig api.example.com` from the client, asking `resolver` (`transport`: `+tcp` or
/// `+notcp`).
fn dig(resolver: &str, transport: &str) -> (bool, String) {
    let at = format!("@{resolver}");
    sh(&[
        "ip",
        "netns",
        "exec",
        CLIENT,
        "dig",
        transport,
        "+time=2",
        "+tries=1",
        &at,
        "api.example.com",
    ])
}

/// The elements of a set of the node's table (`nft list set`), as text.
fn set_text(name: &str) -> String {
    sh(&[
        "ip", "netns", "exec", NODE, "nft", "list", "set", "inet", "bulkhead", name,
    ])
    .1
}

/// The DNS sets of the policy's one `dns:` pattern (`d4_*`, `d6_*`), from the table.
fn dns_sets() -> (String, String) {
    let table = sh(&[
        "ip", "netns", "exec", NODE, "nft", "list", "table", "inet", "bulkhead",
    ])
    .1;
    let find = |prefix: &str| {
        table
            .lines()
            .filter_map(|l| l.trim().strip_prefix("set ")?.strip_suffix(" {"))
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} set in the table:\n{table}"))
            .to_string()
    };
    (find("d4_"), find("d6_"))
}

fn status(lab: &Lab) -> serde_json::Value {
    let dir = lab.status["directory"].as_str().expect("lab directory");
    let path = format!("{dir}/agents/node-1/status.json");
    serde_json::from_slice(&std::fs::read(&path).expect(&path)).expect("status.json")
}

#[test]
fn dns_peers_allow_what_allowed_names_resolved_to_for_their_ttl() {
    if !common::privileged("the FQDN egress lab test") {
        return;
    }
    require(&["dnsmasq", "curl", "python3", "dig"]);
    let _lock = common::lab_lock();
    // The agents inherit the floor: answers' 2 s TTL is kept as is.
    // SAFETY: no other thread of this test binary reads the environment meanwhile.
    unsafe { std::env::set_var("BULKHEAD_DNS_MIN_TTL", "1") };
    // And learn only from resolvers in the cluster (the lab's address pool).
    // SAFETY: as above.
    unsafe { std::env::set_var("BULKHEAD_DNS_RESOLVERS", "10.244.0.0/16,fd00:10:244::/48") };
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/fqdn/"], &[]);
    let dns = lab.ipv4("infra/dns-0");
    let _ext = External::up(&dns);
    let (d4, d6) = dns_sets();

    // 1. Before any resolution the kernel refuses the address.
    let (ok, out) = curl(&format!("http://{API}:8080/"));
    assert!(!ok, "reached {API} before resolving a name: {out}");
    assert!(!set_text(&d4).contains(API), "{}", set_text(&d4));

    // 2. Resolved through the proxy: works, and the set holds the address (v4 and v6)
    //    with the answer's TTL.
    let (ok, out) = curl("http://api.example.com:8080/");
    assert!(ok && out.contains("hello from outside"), "{out}");
    let set = set_text(&d4);
    assert!(set.contains(API) && set.contains("timeout 2s"), "{set}");
    assert!(
        set_text(&d6).contains("2001:db8:f::10"),
        "{}",
        set_text(&d6)
    );
    assert!(!set.contains(EVIL), "{set}");

    // 3. A name no dns: peer matches: resolved (the resolver rule allows the query),
    //    but its address stays refused by the kernel.
    let (ok, out) = curl("http://evil.example.org:8080/");
    assert!(!ok, "evil.example.org was reachable: {out}");
    assert!(!set_text(&d4).contains(EVIL));

    // 4. The flow record of the allowed connection names the rule and the name.
    let o = common::lab::settled(&["flows", "--lab", LAB, "-o", "json"]);
    let flows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let allowed: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| f["verdict"] == "allow" && f["dst"]["ip"] == API)
        .collect();
    assert!(!allowed.is_empty(), "{flows:#?}");
    for f in &allowed {
        assert_eq!(f["dst"]["name"], "api.example.com", "{f}");
        assert_eq!(f["decided_by"]["rule"]["name"], "example-apis", "{f}");
        assert_eq!(f["consistent"], true, "{f}");
    }
    let table = common::lab::bulkhead(&["flows", "--lab", LAB]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&format!("api.example.com ({API})")),
        "{table}"
    );
    assert!(
        flows
            .iter()
            .filter(|f| f["dst"]["ip"] == EVIL || f["dst"]["ip"] == API)
            .all(|f| f["consistent"] != false),
        "{flows:#?}"
    );

    // 5. After the TTL the kernel has dropped the element, and the address is refused
    //    again (a new connection: the old one is closed).
    std::thread::sleep(Duration::from_millis(2600));
    assert!(!set_text(&d4).contains(API), "{}", set_text(&d4));
    let (ok, out) = curl(&format!("http://{API}:8080/"));
    assert!(!ok, "reached {API} after the TTL: {out}");

    // 6. DNS over TCP teaches the same (dig +tcp through the proxy), and every answer
    //    was confirmed before it was relayed.
    let (ok, out) = dig(&dns, "+tcp");
    assert!(ok && out.contains(API), "{out}");
    assert!(set_text(&d4).contains(API), "{}", set_text(&d4));

    // 7. A resolver outside the cluster, which the policy lets the client ask, says
    //    api.example.com is evil.example.org's address: the answer is relayed (the
    //    query was allowed) but teaches nothing, over UDP and TCP; the address stays
    //    refused. (Without --dns-resolver the agent would have opened it: the counter
    //    says the answers reached it.)
    for tcp in ["+notcp", "+tcp"] {
        let (ok, out) = dig(ROGUE, tcp);
        assert!(
            ok && out.contains(EVIL),
            "the rogue resolver's answer ({tcp}): {out}"
        );
    }
    assert!(!set_text(&d4).contains(EVIL), "{}", set_text(&d4));
    let (ok, out) = curl(&format!("http://{EVIL}:8080/"));
    assert!(!ok, "reached {EVIL} after a rogue resolver's answer: {out}");
    let fqdn = &status_after_refresh(&lab);
    assert!(fqdn["answers"].as_u64().unwrap_or(0) >= 3, "{fqdn}");
    assert_eq!(fqdn["untrusted"], 2, "{fqdn}");
    assert_eq!(fqdn["late"], 0, "{fqdn}");
    assert_eq!(fqdn["errors"], 0, "{fqdn}");
}

/// Answer -> programmed latency over many answers (UDP, distinct names so each writes
/// an element): printed, and kept in docs/BENCHMARKS.md. Run by hand:
/// `cargo test -p bulkhead-cli --test fqdn -- --ignored --nocapture`.
#[test]
#[ignore]
fn answer_to_programmed_latency() {
    if !common::privileged("the FQDN latency measurement") {
        return;
    }
    require(&["dnsmasq", "dig"]);
    let _lock = common::lab_lock();
    unsafe { std::env::set_var("BULKHEAD_DNS_MIN_TTL", "1") };
    // The fixture's lab with 400 more names, each with its own address (a hosts file
    // dnsmasq reads), so that every answer writes an element.
    let n = 400;
    let dir = std::env::temp_dir().join("bulkhead-fqdn-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut hosts, mut names) = (String::new(), String::new());
    for i in 0..n {
        hosts.push_str(&format!(
            "198.18.{}.{} api{i}.example.com\n",
            i / 250,
            1 + i % 250
        ));
        names.push_str(&format!("api{i}.example.com\n"));
    }
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    std::fs::write(dir.join("names"), names).unwrap();
    let lab_yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fqdn/lab.yaml"
    ))
    .expect("the fixture lab");
    let lab_yaml = lab_yaml.replace(
        "          - --local-ttl=2\n",
        &format!(
            "          - --local-ttl=2\n          - --addn-hosts={}\n",
            dir.join("hosts").display()
        ),
    );
    std::fs::write(dir.join("lab.yaml"), lab_yaml).unwrap();
    let lab_file = dir.join("lab.yaml").display().to_string();
    let dir_text = dir.display().to_string();
    let lab = Lab::up(
        LAB,
        &[&lab_file, "crates/cli/tests/fixtures/fqdn/policy.yaml"],
        &[&dir_text],
    );
    let dns = lab.ipv4("infra/dns-0");
    let t = Instant::now();
    let (ok, out) = sh(&[
        "ip",
        "netns",
        "exec",
        CLIENT,
        "dig",
        "+time=2",
        "+tries=1",
        &format!("@{dns}"),
        "-f",
        dir.join("names").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("198.18.").count(), n, "{out}");
    let fqdn = status_after_refresh(&lab);
    eprintln!(
        "{n} answers in {:?}: fqdn {}",
        t.elapsed(),
        serde_json::to_string(&fqdn).unwrap()
    );
    assert_eq!(fqdn["answers"].as_u64(), Some(n as u64), "{fqdn}");
    assert_eq!(fqdn["late"], 0, "{fqdn}");
}

fn status_after_refresh(lab: &Lab) -> serde_json::Value {
    // status.json is rewritten every 2 s (checked every 500 ms): two rounds.
    std::thread::sleep(Duration::from_millis(4600));
    status(lab)["fqdn"].clone()
}
