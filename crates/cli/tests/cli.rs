//! The `bulkhead` binary as users run it: outputs, exit codes and errors.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run bulkhead");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.display().to_string()
}

const INVENTORY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, ports: [{name: pg, containerPort: 5432}]}]}
"#;

#[test]
fn lint_reports_every_kind_of_finding_and_exits_1_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inventory.yaml", INVENTORY);
    write(
        dir.path(),
        "policy.yaml",
        r#"
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: nobody}
spec: {selector: app == "ghost", mode: Protect}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: unused}
spec: {selector: app == "web"}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: watchers}
spec: {selector: app == "api", inspect: [Egress]}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-access}
spec:
  priority: 10
  appliesTo: [{selector: app == "db"}]
  ingress:
    - {action: Allow, from: [{selector: app == "api"}], ports: [TCP/5432]}
    - {action: Deny, from: [{selector: app == "api"}], ports: [TCP/5432]}
    - {action: Allow, from: [{selector: app == "api"}], ports: [TCP/5432]}
    - {action: Allow, from: [{group: nobody}]}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-lockdown}
spec:
  priority: 20
  appliesTo: [{selector: app == "db"}]
  ingress:
    - {action: Deny, from: [{selector: has(app)}]}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-lockdown}
spec:
  appliesTo: [{selector: app == "nothing-has-this"}]
---
apiVersion: bulkhead.io/v1
kind: Sensor
metadata: {name: lonely}
spec: {detect: [sqli]}
"#,
    );
    let r = run(&[
        "policy",
        "lint",
        "-f",
        &dir.path().display().to_string(),
        "-o",
        "json",
    ]);
    assert_eq!(
        r.code, 1,
        "duplicate names are errors: {}{}",
        r.stdout, r.stderr
    );
    let findings: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let codes: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for code in [
        "duplicate-name",
        "selects-nothing",
        "shadowed-rule",
        "redundant-rule",
        "conflict",
        "unused-group",
        "unused-sensor",
        "inspect-without-sensors",
    ] {
        assert!(codes.contains(&code), "missing {code} in {codes:?}");
    }
    // Every finding points into the file.
    for f in findings.as_array().unwrap() {
        assert!(f["origin"]["line"].as_u64().unwrap() > 0, "{f}");
    }

    // A reference to an unknown group is an error too, with a suggestion.
    let bad = write(
        dir.path(),
        "policy.yaml",
        r#"
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: web-tier}
spec: {selector: app == "web"}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: p}
spec:
  ingress: [{action: Allow, from: [{group: web-teir}]}]
"#,
    );
    let r = run(&[
        "policy",
        "lint",
        "-f",
        &bad,
        "-f",
        &dir.path().join("inventory.yaml").display().to_string(),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("invalid-reference") && r.stdout.contains("did you mean \"web-tier\""),
        "{}",
        r.stdout
    );
    // And with it what needs no compiled policy: the group nothing references.
    assert!(r.stdout.contains("unused-group"), "{}", r.stdout);
}

#[test]
fn lint_is_clean_on_the_example_and_strict_passes() {
    let r = run(&["policy", "lint", "-f", "examples/", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 errors, 0 warnings"));
}

#[test]
fn bad_input_exits_3_with_file_line_column_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelectr: {}\n",
    );
    let r = run(&["analyze", "matrix", "-f", &f]);
    assert_eq!(r.code, 3);
    assert!(r.stdout.is_empty(), "nothing analyzed: {}", r.stdout);
    assert!(r.stderr.contains("bad.yaml:5:3:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("did you mean \"podSelector\""),
        "{}",
        r.stderr
    );

    let r = run(&[
        "explain",
        "shop/wbe",
        "shop/db",
        "TCP/5432",
        "-f",
        &write(dir.path(), "inv.yaml", INVENTORY),
    ]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("did you mean shop/web?"), "{}", r.stderr);

    let r = run(&[
        "explain",
        "shop/web",
        "shop/db",
        "TCP/99999",
        "-f",
        &dir.path().join("inv.yaml").display().to_string(),
    ]);
    // A malformed argument is a usage error, found before any file is read.
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("from 0 to 65535"), "{}", r.stderr);

    // A DNS name names a destination only.
    let inv = dir.path().join("inv.yaml").display().to_string();
    let r = run(&[
        "explain",
        "api.example.com",
        "shop/db",
        "TCP/443",
        "-f",
        &inv,
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("can only be the destination"),
        "{}",
        r.stderr
    );

    let r = run(&["analyze", "matrix"]);
    assert_eq!(r.code, 2, "usage error: {}", r.stderr);
}

/// A Redis connection the socket path can decide: explain says where its commands are
/// decided, with the engine's table; one it cannot (HTTP rules) keeps the proxy alone.
#[test]
fn explain_names_the_redis_socket_path() {
    let explain = |src: &str, dst: &str, service: &str| -> serde_json::Value {
        let r = run(&[
            "explain",
            src,
            dst,
            service,
            "-f",
            "examples/",
            "-o",
            "json",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let x = explain("platform/node-api-0", "platform/redis-0", "TCP/6379");
    let at = x["enforced_at"].as_str().unwrap_or_default();
    assert!(at.contains("--redis-socket-path"), "{at}");
    assert!(
        at.contains(" GET ") && at.contains("any other refused"),
        "{at}"
    );
    assert!(!at.contains("FLUSHALL"), "{at}");
    let x = explain("eu/credit-check-0", "us/credit-status-1", "TCP/8080");
    assert_eq!(x["l7_enforced"], true, "{x}");
    assert!(x.get("enforced_at").is_none(), "{x}");
}

/// With the Redis group in Monitor mode the socket path still decides, and `explain`
/// says what it does with the commands no rule names: they run and are reported.
#[test]
fn explain_names_monitor_verdicts_on_the_socket_path() {
    let dir = std::env::temp_dir().join(format!("bulkhead-explain-monitor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let groups = dir.join("groups.yaml");
    let text = std::fs::read_to_string(&groups).unwrap();
    let protect = "selector: app == \"redis\"\n  mode: Protect";
    assert!(text.contains(protect));
    std::fs::write(
        &groups,
        text.replace(protect, "selector: app == \"redis\"\n  mode: Monitor"),
    )
    .unwrap();
    let d = format!("{}/", dir.display());
    let r = run(&[
        "explain",
        "platform/node-api-0",
        "platform/redis-0",
        "TCP/6379",
        "-f",
        &d,
        "-o",
        "json",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let x: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let at = x["enforced_at"].as_str().unwrap_or_default();
    assert!(
        at.contains(" GET ") && at.contains("any other allowed and reported (Monitor)"),
        "{at}"
    );
}

#[test]
fn explain_says_why_in_words_and_json() {
    let r = run(&[
        "explain",
        "eu/credit-check-1",
        "eu/ip-map-0",
        "TCP/8080",
        "-f",
        "examples/",
        "--exit-code",
    ]);
    assert_eq!(r.code, 1, "denied with --exit-code");
    assert!(
        r.stdout
            .starts_with("DENIED: eu/credit-check-1 -> eu/ip-map-0 TCP/8080"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("geo absent"),
        "names the missing label: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("group order-input is in Protect mode"),
        "{}",
        r.stdout
    );

    let r = run(&[
        "explain",
        "eu/credit-check-geo-0",
        "us/ip-map-1",
        "TCP/8080",
        "-f",
        "examples/",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let x: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(x["allowed"], true);
    assert_eq!(x["l7_enforced"], true);
    assert_eq!(
        x["ingress"]["l7"][0]["rule"]["policy"],
        "ip-map-accepts-geo-callers"
    );
    assert_eq!(
        x["ingress"]["l7"][0]["rule"]["origin"]["file"],
        "examples/policies.yaml"
    );

    let r = run(&[
        "explain",
        "platform/node-api-0",
        "platform/redis-0",
        "TCP/6379",
        "--request",
        "redis GET",
        "-f",
        "examples/",
    ]);
    assert!(r.stdout.starts_with("ALLOWED"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("allowed by Policy redis-from-node ingress rule 1"),
        "{}",
        r.stdout
    );

    let r = run(&[
        "explain",
        "203.0.113.9",
        "payments/tokenizer-0",
        "TCP/8443",
        "-f",
        "examples/",
    ]);
    assert!(
        r.stdout
            .contains("denied by Policy pci-cde-boundary ingress rule 3 \"everyone-else\""),
        "{}",
        r.stdout
    );
}

#[test]
fn diff_lists_what_a_change_opens_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    fs::create_dir_all(&old).unwrap();
    fs::create_dir_all(&new).unwrap();
    write(&old, "inv.yaml", INVENTORY);
    write(&new, "inv.yaml", INVENTORY);
    write(
        &new,
        "np.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: pg}]}]
"#,
    );
    let (o, n) = (old.display().to_string(), new.display().to_string());
    let r = run(&[
        "analyze",
        "diff",
        "--old",
        &o,
        "--new",
        &n,
        "--probe",
        "TCP/5432",
        "--exit-code",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("- denied   shop/web -> shop/db  TCP/5432"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("shop/api -> shop/db"),
        "api keeps access: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("0 newly allowed, 1 newly denied"),
        "{}",
        r.stdout
    );
    let r = run(&["analyze", "diff", "--old", &o, "--new", &o, "--exit-code"]);
    assert_eq!(r.code, 0);
}

#[test]
fn blast_radius_follows_allowed_paths() {
    let r = run(&[
        "analyze",
        "blast-radius",
        "eu/order-web-0",
        "-f",
        "examples/",
        "--probe",
        "TCP/8080",
        "--probe",
        "TCP/5432",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let direct: Vec<&str> = b["direct"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["workload"].as_str().unwrap())
        .collect();
    assert!(
        direct.contains(&"us/credit-check-0"),
        "same application is one hop: {direct:?}"
    );
    assert!(!direct.iter().any(|w| w.contains("cust-db")), "{direct:?}");
    let db = b["transitive"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["workload"] == "eu/cust-db-0")
        .expect("the customer database is reachable through creditCheck and creditStatus");
    let path: Vec<&str> = db["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(path.len(), 3, "{path:?}");
    assert!(
        path[0].contains("credit-check") && path[1].contains("credit-status"),
        "{path:?}"
    );
    // Nothing reaches the CDE from there.
    assert!(!r.stdout.contains("card-vault"));
}

#[test]
fn policy_tests_report_failures_with_the_deciding_rule() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(
        dir.path(),
        "t.yaml",
        r#"
apiVersion: bulkhead.io/v1
kind: PolicyTest
metadata: {name: wrong-expectations}
spec:
  cases:
    - {name: web reaches the card vault, from: {selector: app == "orderInput"}, to: payments/card-vault-0, port: TCP/5432, expect: allow}
    - {name: credit check reaches redis, from: eu/credit-check-0, to: platform/redis-0, port: TCP/6379, expect: allow}
"#,
    );
    let r = run(&["test", "-f", "examples/", &t]);
    assert_eq!(r.code, 1);
    // The line that decided, not the first rule skipped on the way to it.
    let redis = (r.stdout.lines())
        .skip_while(|l| !l.contains("credit check reaches redis"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        redis.contains("group order-input is in Protect mode")
            && redis.contains("group redis is in Protect mode")
            && !redis.contains("skipped"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("FAIL  wrong-expectations / web reaches the card vault"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("pci-cde-boundary"),
        "names the deciding rule: {}",
        r.stdout
    );
    assert!(r.stdout.contains("24 passed, 2 failed"), "{}", r.stdout);

    let r = run(&["test", "-f", "examples/"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A file named twice is read once.
    let r = run(&["test", "-f", "examples/", "examples/tests.yaml"]);
    assert!(r.stdout.contains("24 passed, 0 failed"), "{}", r.stdout);
}

#[test]
fn resolved_size_is_flat_when_replicas_grow() {
    let r = run(&[
        "analyze",
        "resolve",
        "-f",
        "examples/",
        "--scale",
        "1",
        "--scale",
        "100",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!(
        b["stats"]["workloads"].as_u64(),
        a["stats"]["workloads"].as_u64().map(|w| w * 100)
    );
    assert_eq!(a["stats"]["identities"], b["stats"]["identities"]);
    assert_eq!(a["resolved_size"], b["resolved_size"]);
}

#[test]
fn matrix_outputs_table_json_and_yaml() {
    let scenario = "conformance/scenarios/02-deny-all-ingress";
    let j = run(&["analyze", "matrix", "-f", scenario, "-o", "json"]);
    let y = run(&["analyze", "matrix", "-f", scenario, "-o", "yaml"]);
    let t = run(&["analyze", "matrix", "-f", scenario]);
    assert_eq!((j.code, y.code, t.code), (0, 0, 0));
    let m: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(
        m["probes"],
        serde_json::json!(["TCP/80", "TCP/81", "UDP/53", "SCTP/80"])
    );
    assert_eq!(m["allowed"].as_object().unwrap().len(), 9 * 8);
    assert!(
        y.stdout.contains("probes:") && y.stdout.contains("x/a -> x/b"),
        "{}",
        y.stdout
    );
    assert!(
        t.stdout.contains("TCP/80: 48 of 72 pairs allowed"),
        "{}",
        t.stdout
    );
}

/// `--proxy-busy-poll` is a short duration for the proxy: a bad one is refused before
/// the agent touches anything, as is one without the proxy.
#[test]
fn proxy_busy_poll_is_checked() {
    let common = [
        "--inventory",
        "examples",
        "-f",
        "examples",
        "--state-dir",
        "/nonexistent",
    ];
    for (flags, says) in [
        (
            vec!["--l7-proxy", "--proxy-busy-poll", "20ms"],
            "at most 10ms",
        ),
        (
            vec!["--l7-proxy", "--proxy-busy-poll", "soon"],
            "expected e.g. 100us",
        ),
        (vec!["--proxy-busy-poll", "100us"], "--l7-proxy"),
    ] {
        let mut args = vec!["agent"];
        args.extend(&flags);
        args.extend(common);
        let r = run(&args);
        assert_eq!(r.code, 2, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{flags:?}: {}", r.stderr);
    }
    let r = run(&["lab", "up", "-f", "examples", "--proxy-busy-poll", "100us"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--l7-proxy"), "{}", r.stderr);
}
