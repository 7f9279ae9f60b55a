//! `bulkhead learn`, `bulkhead analyze replay` and `bulkhead group mode` on the example:
//! flow records in JSON lines and in an agent's store, the proposal applied back as YAML.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use bulkhead_record::{Action, FlowRecord, Peer};

const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

fn examples() -> String {
    format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("bulkhead runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pod(ns: &str, name: &str, labels: &[(&str, &str)], ip: &str) -> Peer {
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("pod-template-hash".into(), "7c9d5f8b6".into());
    Peer {
        ip: ip.into(),
        workload: Some(format!("{ns}/{name}")),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        labels: l,
        entity: None,
    }
}

fn rec(src: Peer, dst: Peer, dport: u16, verdict: Action, l7: Option<&str>) -> FlowRecord {
    FlowRecord {
        sport: Some(41000),
        dport: Some(dport),
        generation: 1,
        l7: l7.map(|p| serde_json::json!({ "protocol": p })),
        ..FlowRecord::new("2026-12-03T01:02:03.000Z".into(), verdict, "TCP", src, dst)
    }
}

/// Replica `n - 10` of a Deployment (address 10.1.0.n).
fn replica(ns: &str, deployment: &str, labels: &[(&str, &str)], n: u8) -> Peer {
    let name = format!("{deployment}-{}", n % 10);
    pod(ns, &name, labels, &format!("10.1.0.{n}"))
}

/// What the example's agents could have seen: web calling creditCheck in both replicas,
/// node pods using redis, a client on the internet, and one denied lateral move.
fn records() -> Vec<FlowRecord> {
    let web = |i: u8| {
        replica(
            "eu",
            "order-web",
            &[("app", "orderInput"), ("component", "web")],
            10 + i,
        )
    };
    let cc = |i: u8| {
        replica(
            "eu",
            "credit-check",
            &[("app", "orderInput"), ("component", "creditCheck")],
            20 + i,
        )
    };
    let node = |i: u8| replica("platform", "node-api", &[("app", "node")], 40 + i);
    let redis = pod("platform", "redis-0", &[("app", "redis")], "10.1.1.30");
    let gw = pod(
        "payments",
        "payments-gw-0",
        &[("app", "payments-gw")],
        "10.1.2.10",
    );
    let vault = pod(
        "payments",
        "card-vault-0",
        &[("app", "card-vault"), ("pci", "cde")],
        "10.1.2.20",
    );
    let world = Peer {
        ip: "203.0.113.9".into(),
        entity: Some("world".into()),
        ..Peer::default()
    };
    let mut out = Vec::new();
    for i in 0..2 {
        for j in 0..2 {
            out.push(rec(web(i), cc(j), 8080, Action::Allow, Some("http")));
        }
        out.push(rec(
            node(i),
            redis.clone(),
            6379,
            Action::Allow,
            Some("redis"),
        ));
    }
    out.push(rec(world, gw, 8443, Action::Allow, None));
    out.push(rec(web(0), vault, 5432, Action::Deny, None));
    out
}

fn write_jsonl(path: &Path, records: &[FlowRecord]) {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn learn_proposes_apply_able_yaml_and_replay_and_group_mode_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.jsonl");
    write_jsonl(&flows, &records());
    let flows = flows.to_str().unwrap();
    let ex = examples();

    let o = run(&["learn", "--flows", flows, "-f", &ex, "-o", "yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    let yaml = String::from_utf8(o.stdout).unwrap();
    assert!(
        yaml.contains(
            "# coverage: 100.0% (7 of 7 allowed flows); denied flows it would allow: 0 of 1"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "selector: 'app == \"orderInput\" && component == \"creditCheck\" && !has(geo)'"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("cidr: \"203.0.113.9/32\""), "{yaml}");
    assert!(!yaml.contains("10.1."), "a pod address in\n{yaml}");
    let learned = dir.path().join("learned.yaml");
    std::fs::write(&learned, &yaml).unwrap();
    let learned = learned.to_str().unwrap();

    let replay = |more: &[&str]| {
        let mut args = vec!["analyze", "replay", "--flows", flows, "-f", &ex];
        args.extend(["--policy", learned, "--exit-code"]);
        args.extend(more);
        run(&args)
    };
    // Groups in Monitor let the lateral move through: replay says so, by rule and workload.
    let o = replay(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("1 newly allowed (1 conversations), 0 newly denied"),
        "{out}"
    );
    assert!(
        out.contains("Monitor mode (group payments-card-vault)"),
        "{out}"
    );
    assert!(
        out.contains("+ eu/order-web-0 -> payments/card-vault-0 TCP/5432"),
        "{out}"
    );

    // Protect it by command: one line of the file changes, and the replay is clean.
    let o = run(&[
        "group",
        "mode",
        "payments-card-vault",
        "protect",
        "-f",
        learned,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let after = std::fs::read_to_string(learned).unwrap();
    let changed: Vec<(&str, &str)> = yaml
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed, [("  mode: Monitor", "  mode: Protect")]);
    assert_eq!(yaml.lines().count(), after.lines().count());
    let o = replay(&["-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["newly_allowed_flows"], 0);
    assert_eq!(r["flows"], 8);

    // An unknown group changes nothing and fails.
    let o = run(&["group", "mode", "no-such-group", "protect", "-f", learned]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(learned).unwrap(), after);

    // Without the Redis command rule, the node pods' Redis connections are newly
    // denied: what allowed them was that rule (request by request), not the mode.
    let without = dir.path().join("without-redis-rule");
    std::fs::create_dir(&without).unwrap();
    for e in std::fs::read_dir(&ex).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let docs: Vec<String> = (std::fs::read_to_string(&p).unwrap().split("\n---\n"))
                .filter(|d| !d.contains("name: redis-from-node"))
                .map(str::to_string)
                .collect();
            std::fs::write(without.join(p.file_name().unwrap()), docs.join("\n---\n")).unwrap();
        }
    }
    let (w, f) = (without.to_str().unwrap(), flows);
    let o = run(&["analyze", "replay", "--flows", f, "-f", &ex, "--policy", w]);
    let out = text(&o);
    let line = (out.lines())
        .find(|l| l.contains("-> platform/redis-0 TCP/6379"))
        .unwrap_or_default();
    assert!(
        line.contains("was Policy redis-from-node ingress rule 1 (per request); now Protect mode (group redis)"),
        "{out}"
    );
}

#[test]
fn learn_reads_an_agents_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = bulkhead_store::Store::open(&dir.path().join(bulkhead_store::FILE)).unwrap();
    store.write_flows(&records()).unwrap();
    drop(store);
    let o = run(&[
        "learn",
        "--flows",
        dir.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["flows"]["records"], 8);
    assert_eq!(r["coverage"]["covered_flows"], 7);
    assert!(r["proposal"]["volatile"]["pod-template-hash"].is_string());
    let groups: Vec<&str> = r["proposal"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "eu-order-input-credit-check",
            "eu-order-input-web",
            "payments-card-vault",
            "payments-gw",
            "platform-node",
            "platform-redis"
        ]
    );
}

#[test]
fn quiet_groups_are_promoted_one_step() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "namespaces.yaml",
        "workloads.yaml",
        "groups.yaml",
        "policies.yaml",
        "sensors.yaml",
    ] {
        std::fs::copy(Path::new(&examples()).join(f), dir.path().join(f)).unwrap();
    }
    let groups = dir.path().join("groups.yaml");
    let g = groups.to_str().unwrap();
    assert!(
        run(&["group", "mode", "redis", "discover", "-f", g])
            .status
            .success()
    );
    assert!(
        run(&["group", "mode", "blue-ldap", "monitor", "-f", g])
            .status
            .success()
    );
    let flows = dir.path().join("flows.jsonl");
    write_jsonl(&flows, &records()); // all from 2026-12-03T01:02:03Z
    let cluster = dir.path().to_str().unwrap();
    let learn = |quiet: &str| {
        let o = run(&[
            "learn",
            "--flows",
            flows.to_str().unwrap(),
            "-f",
            cluster,
            "--quiet-period",
            quiet,
            "--promote",
            "-o",
            "json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["promotions"].clone()
    };
    // Not quiet for a century yet: nothing moves.
    assert_eq!(learn("36500days"), serde_json::Value::Null);
    assert!(
        std::fs::read_to_string(&groups)
            .unwrap()
            .contains("name: redis}\nspec:\n  selector: app == \"redis\"\n  mode: Discover")
    );
    // Quiet for an hour: redis Discover -> Monitor; blue-ldap (no record names a member:
    // nothing learned) stays; cde is in Protect already.
    let moved = learn("1h");
    assert_eq!(moved.as_array().unwrap().len(), 1, "{moved}");
    assert_eq!(moved[0]["group"], "redis");
    assert_eq!(moved[0]["to"], "Monitor");
    assert_eq!(moved[0]["applied"], true);
    let text = std::fs::read_to_string(&groups).unwrap();
    assert!(
        text.contains("name: redis}\nspec:\n  selector: app == \"redis\"\n  mode: Monitor"),
        "{text}"
    );
    assert!(
        text.contains("name: blue-ldap}\nspec:\n  selector: app == \"ldap\" && team == \"blue\"\n  mode: Monitor"),
        "{text}"
    );
    // The next run moves it on to Protect.
    assert_eq!(learn("1h")[0]["to"], "Protect");
}

/// A flow input where no line is a flow record (a wrong file) is an error, not a
/// proposal built from nothing; some bad lines among records are a warning.
#[test]
fn input_without_any_flow_record_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("notes.jsonl");
    std::fs::write(&wrong, "hello\n{\"not\": \"a record\"}\n").unwrap();
    let ex = examples();
    let w = wrong.to_str().unwrap();
    let o = run(&["learn", "--flows", w, "-f", &ex]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("no line of the flow input is a flow record (2 lines read)"),
        "{}",
        text(&o)
    );
    let mixed = dir.path().join("mixed.jsonl");
    write_jsonl(&mixed, &records());
    let mut body = std::fs::read_to_string(&mixed).unwrap();
    body.push_str("hello\n");
    std::fs::write(&mixed, body).unwrap();
    let o = run(&["learn", "--flows", mixed.to_str().unwrap(), "-f", &ex]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("warning: 1 lines were not flow records"));
}
