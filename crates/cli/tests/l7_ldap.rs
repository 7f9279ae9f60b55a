//! LDAP enforcement end to end, for real: OpenLDAP's slapd in a lab with the agents'
//! transparent proxy on (fixtures/ldap/), ldapsearch and ldapdelete as clients in the app
//! pod. The policy allows bind, and search under ou=people: such a search returns its
//! entries; a search elsewhere gets result 50 with bulkhead's message, a delete is
//! refused and the entry stays, StartTLS (an extended operation) is refused and the
//! client goes on in clear; each refusal is an event whose capture holds the request.

mod common;

use common::lab::{bulkhead, have, settled};

use std::time::Duration;

const LAB: &str = "l7ldap";
const FIXTURES: &str = "crates/cli/tests/fixtures/ldap/";
const APP: &str = "dir/app-0";
const DATA: &str = "/tmp/bulkhead-l7ldap";
const ADMIN: &str = "cn=admin,dc=example,dc=org";

/// Run `cmd` in `workload`: exit code and stdout + stderr.
fn exec(workload: &str, cmd: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["lab", "exec", "--name", LAB, workload, "--"];
    args.extend_from_slice(cmd);
    let o = bulkhead(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text.trim().to_string())
}

/// Brings the lab down (slapd with it) and removes its files, however the test ends.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", LAB]);
        let _ = std::fs::remove_dir_all(DATA);
    }
}

/// `ldapsearch` as the admin from `workload` against `host` (`-LLL`: entries only).
fn search(workload: &str, host: &str, base: &str, extra: &[&str]) -> (Option<i32>, String) {
    let url = format!("ldap://{host}/");
    let mut cmd = vec![
        "ldapsearch",
        "-x",
        "-LLL",
        "-H",
        &url,
        "-D",
        ADMIN,
        "-w",
        "secret",
        "-b",
        base,
    ];
    cmd.extend_from_slice(extra);
    exec(workload, &cmd)
}

#[test]
fn ldap_operations_are_enforced_by_the_proxy() {
    if !common::privileged("the L7 LDAP lab test") {
        return;
    }
    for p in ["slapd", "slapadd", "ldapsearch", "ldapdelete", "tshark"] {
        assert!(have(p), "{p} is not installed (scripts/setup installs it)");
    }
    let _lock = common::lab_lock();
    let _ = bulkhead(&["lab", "down", "--name", LAB]);
    // KEEP_LAB=1 leaves the lab up to look into a failure (`lab down --name l7ldap`).
    let _lab = if std::env::var("KEEP_LAB").is_ok() {
        None
    } else {
        Some(Lab)
    };
    let up = bulkhead(&[
        "lab",
        "up",
        "-f",
        FIXTURES,
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
        .find(|w| w["name"] == "dir/ldap-0")
        .and_then(|w| w["ipv4"].as_str())
        .expect("the LDAP server's address")
        .to_string();

    // slapd is up once it answers on its own loopback (no proxy on that path).
    let mut last = String::new();
    let ready = (0..100).any(|_| {
        let (code, out) = search(
            "dir/ldap-0",
            "127.0.0.1",
            "dc=example,dc=org",
            &["-s", "base"],
        );
        last = out;
        code == Some(0) || {
            std::thread::sleep(Duration::from_millis(200));
            false
        }
    });
    assert!(ready, "slapd never answered: {last}");

    // Allowed: bind and a search under ou=people, with its entries.
    let (code, out) = search(APP, &ip, "ou=people,dc=example,dc=org", &["uid"]);
    assert_eq!(code, Some(0), "{out}");
    for dn in [
        "dn: uid=alice,ou=people,dc=example,dc=org",
        "dn: uid=bob,ou=people,dc=example,dc=org",
    ] {
        assert!(out.contains(dn), "{dn} missing: {out}");
    }

    // A search of ou=admins: slapd would answer it; the proxy answers 50 instead.
    let (code, out) = search(APP, &ip, "ou=admins,dc=example,dc=org", &[]);
    assert_eq!(code, Some(50), "{out}");
    assert!(
        out.contains("Insufficient access (50)")
            && out.contains(
                "bulkhead: search on ou=admins,dc=example,dc=org is not allowed by policy"
            ),
        "{out}"
    );
    assert!(!out.contains("dn: cn=root"), "{out}");

    // A delete is refused and never reaches slapd: the entry is still there.
    let url = format!("ldap://{ip}/");
    let victim = "cn=root,ou=admins,dc=example,dc=org";
    let (code, out) = exec(
        APP,
        &[
            "ldapdelete",
            "-x",
            "-H",
            &url,
            "-D",
            ADMIN,
            "-w",
            "secret",
            victim,
        ],
    );
    assert_eq!(code, Some(50), "{out}");
    assert!(
        out.contains(&format!(
            "bulkhead: delete on {victim} is not allowed by policy"
        )),
        "{out}"
    );
    let (code, out) = search("dir/ldap-0", "127.0.0.1", victim, &["-s", "base", "dn"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), format!("dn: {victim}").as_str()),
        "the delete reached slapd"
    );

    // StartTLS is an extended operation, not allowed here: with -Z (try, go on without)
    // the client is told why and the search goes on in clear on the same connection.
    let (code, out) = search(APP, &ip, "ou=people,dc=example,dc=org", &["-Z", "uid"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("bulkhead: extended operation 1.3.6.1.4.1.1466.20037 is not allowed")
            && out.contains("dn: uid=alice,ou=people,dc=example,dc=org"),
        "{out}"
    );

    // Each refusal is an event, with the refusal and a capture tshark reads as LDAP.
    let events = settled(&["events", "--lab", LAB, "-o", "json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    let events: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "request")
        .collect();
    for (request, refusal, dissected) in [
        (
            "ldap search ou=admins,dc=example,dc=org",
            "search on ou=admins",
            "searchRequest",
        ),
        (
            "ldap delete cn=root,ou=admins,dc=example,dc=org",
            "delete on cn=root",
            "delRequest",
        ),
        ("ldap extended", "extended operation", "extendedReq"),
    ] {
        let e = events
            .iter()
            .find(|e| e["request"] == request)
            .unwrap_or_else(|| panic!("no event for {request}: {events:?}"));
        assert_eq!(e["decision"]["allowed"], false, "{e}");
        assert!(
            e["refusal"].as_str().is_some_and(|r| r.contains(refusal)),
            "{e}"
        );
        let pcap = e["pcap"].as_str().expect("a capture");
        let text = common::lab::capture_text(pcap, &["-V"]);
        assert!(text.contains(dissected), "tshark on {pcap}: {text}");
    }
    // Allowed requests are no refusal events.
    assert!(
        !events.iter().any(
            |e| e["request"] == "ldap search ou=people,dc=example,dc=org"
                && e["decision"]["allowed"] == false
        ),
        "{events:?}"
    );
}
