//! The server for real: bound on 127.0.0.1 (random port), asked over TCP with HTTP/1.1,
//! and over TLS with a certificate made for the test.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bulkhead_server::{Config, RouteTable};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-token-for-tests";

const INVENTORY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
status: {podIPs: [{ip: 10.0.0.2}]}
"#;

const GROUPS: &str = r#"apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: web}
spec:
  selector: app == "web"
  mode: Protect
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: db}
spec:
  selector: app == "db"
  mode: Protect
"#;

const WEB_TO_DB: &str = r#"apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: web-to-db}
spec:
  appliesTo: [{group: web}]
  egress:
    - {action: Allow, name: to-db, to: [{group: db}], ports: [TCP/5432]}
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: db-from-web}
spec:
  appliesTo: [{group: db}]
  ingress:
    - {action: Allow, name: from-web, from: [{group: web}], ports: [TCP/5432]}
"#;

struct Server {
    base: String,
    agent: ureq::Agent,
    policy: PathBuf,
    state: PathBuf,
    table: RouteTable,
    _dir: tempfile::TempDir,
}

fn flow(
    time: &str,
    verdict: &str,
    src: &str,
    dst: &str,
    port: u16,
    policy: Option<&str>,
    violation: bool,
) -> Value {
    let peer = |w: &str, ip: &str| {
        let (ns, name) = w.split_once('/').unwrap();
        json!({"ip": ip, "workload": w, "namespace": ns, "name": name, "labels": {"app": name.trim_end_matches("-0")}})
    };
    let mut decided = json!({"side": "ingress", "tier": "mode", "mode": "Protect", "group": "db"});
    if let Some(p) = policy {
        decided = json!({"side": "ingress", "tier": "policy", "rule": {
            "kind": "Policy", "policy": p, "direction": "ingress", "rule": 1, "name": "from-web",
            "action": "Allow", "origin": "policy/web.yaml:10:7"}});
    }
    json!({"time": time, "event": "new", "verdict": verdict, "protocol": "TCP",
           "src": peer(src, "10.0.0.1"), "dst": peer(dst, "10.0.0.2"),
           "sport": 40000, "dport": port, "decided_by": decided, "mode": "Protect",
           "violation": violation, "generation": 1})
}

fn fill_store(state: &Path) {
    let mut store = bulkhead_store::Store::open(&state.join(bulkhead_store::FILE)).unwrap();
    let mut records = Vec::new();
    for i in 0..30 {
        let t = format!("2026-12-01T10:00:{i:02}.000Z");
        let r = if i % 3 == 0 {
            flow(&t, "deny", "shop/web-0", "shop/db-0", 22, None, false)
        } else {
            flow(
                &t,
                "allow",
                "shop/web-0",
                "shop/db-0",
                5432,
                Some("db-from-web"),
                i == 1,
            )
        };
        records.push(bulkhead_store::Record::Flow(Box::new(
            serde_json::from_value(r).unwrap(),
        )));
    }
    let mut denied = flow(
        "2026-12-01T10:00:59.000Z",
        "deny",
        "shop/web-0",
        "shop/db-0",
        5432,
        Some("db-from-web"),
        false,
    );
    denied["event"] = json!("l7");
    denied["l7"] = json!({"protocol": "postgresql", "request": "postgresql drop"});
    records.push(bulkhead_store::Record::Flow(Box::new(
        serde_json::from_value(denied).unwrap(),
    )));
    records.push(bulkhead_store::Record::Event(json!({
        "time": "2026-12-01T10:01:00.000Z", "event": "sensor", "protocol": "http",
        "src": {"ip": "10.0.0.1", "workload": "shop/web-0"}, "dst": {"ip": "10.0.0.2", "workload": "shop/db-0"},
        "request": "http GET /search", "blocked": true,
        "findings": [{"sensor": "web-attacks", "class": "sqli", "location": "query:q", "masked": "1' OR '1'='1"}]
    })));
    store.write(&records).unwrap();
    store.commit_conversations().unwrap();
    std::fs::write(
        state.join("status.json"),
        serde_json::to_string(&json!({"pid": std::process::id(), "generation": 7,
            "time": "2026-12-01T10:00:00.000Z", "node": "node-1", "reconcile_ms": 12.5,
            "workloads": 2, "local_workloads": 2, "identities": 2, "input_files": 3,
            "objects": {"chains": 10, "rules": 20, "sets": 4, "elements": 8},
            "flows": 30, "inconsistent_flows": 0, "connections_cut": 0, "flow_errors": 0,
            "proxy": {"connections": 5, "requests": 9, "refusals": 1, "sensor_events": 1},
            "socket_path": {"pairs": 2, "allowed": 40, "refused": 3, "replies": 43,
                "not_resp": 1, "no_table": 0, "reported": 6, "lost": 2},
            "last_error": null}))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        state.join("latency.jsonl"),
        "{\"time\":\"2026-12-01T10:00:00Z\",\"generation\":1,\"change\":\"policy\",\"latency_ms\":40.0,\"apply_ms\":12.0,\"files\":1,\"commands\":9}\n\
         {\"time\":\"2026-12-01T10:00:01Z\",\"generation\":2,\"change\":\"workload\",\"latency_ms\":3.0,\"apply_ms\":1.0,\"files\":1,\"commands\":2}\n",
    )
    .unwrap();
    std::fs::create_dir_all(state.join("captures")).unwrap();
    std::fs::write(
        state.join("captures/conn-7-request.pcap"),
        b"\xd4\xc3\xb2\xa1pcap",
    )
    .unwrap();
}

fn tls_material(dir: &Path) -> (bulkhead_server::tls::TlsFiles, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (
        bulkhead_server::tls::TlsFiles { cert, key },
        ck.cert.der().to_vec(),
    )
}

/// The inventory, a policy directory (`groups` and web-to-db) and an agent state
/// directory with a filled store, under `dir`: (policy dir, state dir).
fn files_in(dir: &Path, groups: &str) -> (PathBuf, PathBuf) {
    let policy = dir.join("policy");
    let state = dir.join("node-1");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(dir.join("inventory.yaml"), INVENTORY).unwrap();
    std::fs::write(policy.join("groups.yaml"), groups).unwrap();
    std::fs::write(policy.join("web.yaml"), WEB_TO_DB).unwrap();
    fill_store(&state);
    (policy, state)
}

fn start(tls: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (policy, state) = files_in(dir.path(), GROUPS);
    let config = Config {
        state_dirs: vec![state.clone()],
        policy: vec![policy.clone()],
        inventory: vec![dir.path().join("inventory.yaml")],
        recursive: false,
        token: TOKEN.into(),
        promote_after: None,
    };
    let (router, table) = bulkhead_server::app(config).unwrap();
    let (files, der) = if tls {
        let (f, d) = tls_material(dir.path());
        (Some(f), Some(d))
    } else {
        (None, None)
    };
    let acceptor = files
        .as_ref()
        .map(|f| bulkhead_server::tls::acceptor(f).unwrap());
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = std_listener.local_addr().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
            bulkhead_server::serve(l, router, acceptor).await.unwrap();
        });
    });
    let mut cfg = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(der) = der {
        cfg = cfg.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
                    ureq::tls::Certificate::from_der(&der).to_owned(),
                ])))
                .build(),
        );
    }
    Server {
        base: format!("{}://{}", if tls { "https" } else { "http" }, addr),
        agent: cfg.build().into(),
        policy,
        state,
        table,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Server {
    fn req(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let url = format!("{}{}", self.base, path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut resp = match (method, body) {
            ("GET", _) | ("DELETE", _) => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call().unwrap()
            }
            (m, b) => {
                let mut r = if m == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                let b = b.unwrap_or("");
                if b.starts_with('{') {
                    r = r.header("Content-Type", "application/json");
                }
                r.send(b).unwrap()
            }
        };
        let mut bytes = Vec::new();
        resp.body_mut().as_reader().read_to_end(&mut bytes).unwrap();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: resp.status().as_u16(),
            body,
        }
    }
    fn get(&self, path: &str) -> Reply {
        self.req("GET", path, Some(TOKEN), None)
    }
}

#[test]
fn tokens_are_required_and_checked() {
    let s = start(false);
    for path in [
        "/api/v1/flows",
        "/api/v1/policies",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        let r = s.req("GET", path, None, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.body);
        let r = s.req("GET", path, Some("s3cret-token-for-testz"), None);
        assert_eq!(r.status, 401, "{path} with a wrong token");
        assert_eq!(s.get(path).status, 200, "{path} with the token");
    }
    // A write without a token changes nothing.
    let before = std::fs::read_to_string(s.policy.join("web.yaml")).unwrap();
    let r = s.req("DELETE", "/api/v1/policies/web.yaml", None, None);
    assert_eq!(r.status, 401);
    assert_eq!(
        std::fs::read_to_string(s.policy.join("web.yaml")).unwrap(),
        before
    );
    // Liveness is open.
    assert_eq!(s.req("GET", "/healthz", None, None).status, 200);
}

#[test]
fn tls_serves_and_refuses_without_token() {
    let s = start(true);
    assert!(s.base.starts_with("https://"));
    assert_eq!(s.req("GET", "/api/v1/flows", None, None).status, 401);
    let r = s.get("/api/v1/flows?limit=5");
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 5);
    // Plain HTTP to the TLS port gets no answer.
    let plain = ureq::get(&s.base.replace("https://", "http://")).call();
    assert!(plain.is_err(), "plain HTTP answered on the TLS port");
}

#[test]
fn openapi_document_covers_exactly_the_router() {
    let s = start(false);
    let doc = s.get("/api/v1/openapi.json").json();
    let documented = bulkhead_server::openapi::operations(&doc);
    let mut served: Vec<(String, String)> = s
        .table
        .0
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    let missing: Vec<_> = served.iter().filter(|o| !documented.contains(o)).collect();
    let extra: Vec<_> = documented.iter().filter(|o| !served.contains(o)).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
}

#[test]
fn every_route_answers() {
    let s = start(false);
    let table = s.table.0.clone();
    for (m, p) in table {
        let path = p
            .replace("{namespace}/{name}", "shop/web-0")
            .replace(
                "{name}",
                if p.contains("groups") {
                    "db"
                } else {
                    "conn-7-request.pcap"
                },
            )
            .replace("{file}", "web.yaml");
        let (path, body) = match (m.as_str(), p) {
            ("GET", "/api/v1/explain") => (format!("{path}?src=shop/web-0&dst=shop/db-0&service=TCP/5432"), None),
            ("POST", "/api/v1/explain") => (path, Some(r#"{"src":"shop/web-0","dst":"shop/db-0","service":"TCP/5432"}"#.to_string())),
            ("PUT", "/api/v1/quarantine/{namespace}/{name}") => {
                (path, Some(r#"{"reason":"test"}"#.to_string()))
            }
            ("PUT", "/api/v1/groups/{name}/mode") => (path, Some(r#"{"mode":"protect"}"#.to_string())),
            ("POST", "/api/v1/policies") => (format!("{path}?dry_run=true"), Some(json!({"file": "new.yaml", "text": GROUPS.replace("name: web}", "name: web2}").replace("name: db}", "name: db2}")}).to_string())),
            ("PUT", _) => (format!("{path}?dry_run=true"), Some(WEB_TO_DB.to_string())),
            ("DELETE", _) => (format!("{path}?dry_run=true"), None),
            ("POST", "/api/v1/replay") => (path, Some(format!("{GROUPS}---\n{WEB_TO_DB}"))),
            ("GET", "/api/v1/flows/follow" | "/api/v1/events/follow") => {
                (format!("{path}?seconds=1"), None)
            }
            _ => (path, None),
        };
        let r = s.req(m.as_str(), &path, Some(TOKEN), body.as_deref());
        assert!(
            (200..300).contains(&r.status),
            "{m} {path}: {} {}",
            r.status,
            r.body
        );
    }
    // The dry runs changed nothing.
    assert_eq!(
        std::fs::read_to_string(s.policy.join("web.yaml")).unwrap(),
        WEB_TO_DB
    );
    assert!(!s.policy.join("new.yaml").exists());
}

/// Every file of a directory with its text.
fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect()
}

#[test]
fn a_bad_policy_is_refused_with_diagnostics_and_changes_nothing() {
    let s = start(false);
    let before = files(&s.policy);
    // A field that does not exist: a decode diagnostic with line, column and path.
    let bad = WEB_TO_DB.replace(
        "appliesTo: [{group: web}]",
        "appliesTo: [{group: web}]\n  egres: []",
    );
    let r = s.req("PUT", "/api/v1/policies/web.yaml", Some(TOKEN), Some(&bad));
    assert_eq!(r.status, 422, "{}", r.body);
    let d = &r.json()["diagnostics"][0];
    assert!(d["file"].as_str().unwrap().ends_with("web.yaml"), "{d}");
    assert_eq!(d["line"], 6, "{d}");
    assert!(d["column"].as_u64().unwrap() > 0);
    assert!(d["path"].as_str().unwrap().contains("egres"), "{d}");
    assert!(
        d["message"].as_str().unwrap().contains("egress"),
        "a suggestion: {d}"
    );
    // Decodes, but names a group that does not exist: refused by the engine.
    let unknown = WEB_TO_DB.replace("to: [{group: db}]", "to: [{group: dbx}]");
    let r = s.req(
        "PUT",
        "/api/v1/policies/web.yaml",
        Some(TOKEN),
        Some(&unknown),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("dbx"), "{}", r.body);
    // A new file that duplicates a policy name.
    let r = s.req(
        "POST",
        "/api/v1/policies",
        Some(TOKEN),
        Some(&json!({"file": "dup.yaml", "text": WEB_TO_DB}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // Deleting the groups file leaves policies naming missing groups.
    let r = s.req("DELETE", "/api/v1/policies/groups.yaml", Some(TOKEN), None);
    assert_eq!(r.status, 422, "{}", r.body);
    // A name outside the directory.
    let r = s.req(
        "PUT",
        "/api/v1/policies/..%2Fx.yaml",
        Some(TOKEN),
        Some(WEB_TO_DB),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let after = files(&s.policy);
    assert_eq!(before.len(), after.len(), "no file was added or removed");
    for (p, t) in &before {
        assert!(
            after.contains(&(p.clone(), t.clone())),
            "{} changed",
            p.display()
        );
    }
}

#[test]
fn a_good_policy_is_written_and_then_explained() {
    let s = start(false);
    let explain = "/api/v1/explain?src=shop/web-0&dst=shop/db-0&service=TCP/6379";
    let x = s.get(explain).json();
    assert_eq!(x["allowed"], false, "{x}");
    let wider = WEB_TO_DB.replace("ports: [TCP/5432]", "ports: [TCP/5432, TCP/6379]");
    let r = s.req(
        "PUT",
        "/api/v1/policies/web.yaml",
        Some(TOKEN),
        Some(&wider),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        std::fs::read_to_string(s.policy.join("web.yaml")).unwrap(),
        wider
    );
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&s.policy).unwrap().count(), 2);
    let got = s.get("/api/v1/policies/web.yaml").json();
    assert_eq!(got["text"], wider);
    assert_eq!(got["documents"].as_array().unwrap().len(), 2);
    let x = s.get(explain).json();
    assert_eq!(x["allowed"], true, "{x}");
    let text = s.get(&format!("{explain}&format=text"));
    assert!(text.body.starts_with("ALLOWED"), "{}", text.body);
    // POST creates, DELETE removes.
    let extra = "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: other}\nspec:\n  selector: app == \"other\"\n  mode: Monitor\n";
    let r = s.req(
        "POST",
        "/api/v1/policies",
        Some(TOKEN),
        Some(&json!({"file": "other.yaml", "text": extra}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let warnings = r.json()["findings"].as_array().unwrap().len();
    assert!(
        warnings > 0,
        "the new group selects nothing: a lint warning"
    );
    let r = s.req(
        "POST",
        "/api/v1/policies",
        Some(TOKEN),
        Some(&json!({"file": "other.yaml", "text": extra}).to_string()),
    );
    assert_eq!(r.status, 409);
    let groups = s.get("/api/v1/groups").json();
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "other")
    );
    let r = s.req("DELETE", "/api/v1/policies/other.yaml", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!s.policy.join("other.yaml").exists());
    // Mode change edits one line.
    let r = s.req(
        "PUT",
        "/api/v1/groups/db/mode",
        Some(TOKEN),
        Some(r#"{"mode":"monitor"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let text = std::fs::read_to_string(s.policy.join("groups.yaml")).unwrap();
    assert_eq!(
        text,
        GROUPS.replace(
            "selector: app == \"db\"\n  mode: Protect",
            "selector: app == \"db\"\n  mode: Monitor"
        )
    );
    let groups = s.get("/api/v1/groups").json();
    let db = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "db")
        .unwrap();
    assert_eq!(db["mode"], "Monitor");
    assert_eq!(db["workloads"], json!(["shop/db-0"]));
}

#[test]
fn flows_events_graph_come_from_the_store() {
    let s = start(false);
    let all = s.get("/api/v1/flows?limit=1000").json();
    assert_eq!(all.as_array().unwrap().len(), 31);
    let denied = s.get("/api/v1/flows?verdict=deny").json();
    assert_eq!(denied.as_array().unwrap().len(), 11);
    assert!(
        denied
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["verdict"] == "deny")
    );
    let by_rule = s.get("/api/v1/flows?rule=db-from-web%231").json();
    assert_eq!(by_rule.as_array().unwrap().len(), 21);
    let last = s.get("/api/v1/flows?workload=shop/db-0&limit=3").json();
    let times: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-12-01T10:00:28.000Z",
            "2026-12-01T10:00:29.000Z",
            "2026-12-01T10:00:59.000Z"
        ]
    );
    assert_eq!(
        s.get("/api/v1/flows?workload=shop/none-0").json(),
        json!([])
    );
    assert_eq!(s.get("/api/v1/flows?verdict=maybe").status, 400);
    let events = s.get("/api/v1/events").json();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["event"], "sensor");
    let graph = s.get("/api/v1/graph").json();
    let total: u64 = graph
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connections"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 30, "{graph}");
    let caps = s.get("/api/v1/captures").json();
    assert_eq!(caps[0]["name"], "conn-7-request.pcap");
    let cap = s.get("/api/v1/captures/conn-7-request.pcap");
    assert!(cap.body.ends_with("pcap"));
    assert_eq!(s.get("/api/v1/captures/..%2Fstore.db").status, 400);
    // Learning proposes a rule for what was allowed; replay against the current policy
    // changes nothing.
    let learn = s.get("/api/v1/learn").json();
    assert!(
        learn["proposal"]["yaml"]
            .as_str()
            .unwrap()
            .contains("kind: Policy"),
        "{learn}"
    );
    assert_eq!(learn["flows"]["records"], 31);
    let mut current = String::from(GROUPS);
    current.push_str("---\n");
    current.push_str(WEB_TO_DB);
    let replay = s
        .req("POST", "/api/v1/replay", Some(TOKEN), Some(&current))
        .json();
    assert_eq!(replay["flows"], 31, "{replay}");
    assert_eq!(replay["newly_denied_flows"], 0, "{replay}");
    let open = current.replace("mode: Protect", "mode: Discover");
    let replay = s
        .req("POST", "/api/v1/replay", Some(TOKEN), Some(&open))
        .json();
    assert_eq!(replay["newly_allowed_flows"], 10, "{replay}");
}

/// Parse the text exposition format: every sample line is `name{labels} value`, names
/// are declared by `# TYPE` before use, the document ends with `# EOF`.
/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut declared: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "unknown", "info"].contains(&kind),
                "{line}"
            );
            declared.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut out = Vec::new();
                let mut rest = l;
                while !rest.is_empty() {
                    let (k, v) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label: {line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    let end = v.find('"').unwrap();
                    out.push((k.to_string(), v[..end].to_string()));
                    rest = v[end + 1..].trim_start_matches(',');
                }
                (n, out)
            }
            None => (series, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(
            declared.iter().any(|d| name == d
                || name
                    .strip_prefix(d.as_str())
                    .is_some_and(
                        |s| ["_total", "_bucket", "_sum", "_count", "_created"].contains(&s)
                    )),
            "{name} used before # TYPE"
        );
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.2)
        .sum()
}

#[test]
fn metrics_count_what_was_stored() {
    let s = start(false);
    let m = parse_metrics(&s.get("/metrics").body);
    assert_eq!(sum(&m, "bulkhead_flows_total", &[]), 31.0);
    assert_eq!(
        sum(&m, "bulkhead_flows_total", &[("verdict", "deny")]),
        11.0
    );
    assert_eq!(
        sum(
            &m,
            "bulkhead_flows_total",
            &[("policy", "db-from-web"), ("rule", "1")]
        ),
        21.0
    );
    assert_eq!(
        sum(
            &m,
            "bulkhead_l7_denials_total",
            &[("app", "postgresql"), ("policy", "db-from-web")]
        ),
        1.0
    );
    assert_eq!(sum(&m, "bulkhead_l7_denials_total", &[]), 1.0);
    assert_eq!(sum(&m, "bulkhead_violations_total", &[]), 1.0);
    assert_eq!(
        sum(
            &m,
            "bulkhead_sensor_hits_total",
            &[
                ("sensor", "web-attacks"),
                ("class", "sqli"),
                ("action", "block")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(&m, "bulkhead_dataplane_programming_seconds_count", &[]),
        2.0
    );
    assert_eq!(
        sum(
            &m,
            "bulkhead_dataplane_programming_seconds_bucket",
            &[("change", "policy"), ("le", "0.05")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "bulkhead_dataplane_programming_seconds_bucket",
            &[("change", "policy"), ("le", "0.02")]
        ),
        0.0
    );
    assert_eq!(
        sum(&m, "bulkhead_agent_up", &[("agent", "node-1")]),
        1.0,
        "our own pid is alive"
    );
    assert_eq!(
        sum(&m, "bulkhead_agent_total", &[("counter", "proxy_requests")]),
        9.0
    );
    for (counter, n) in [
        ("socket_allowed", 40.0),
        ("socket_refused", 3.0),
        ("socket_reported", 6.0),
        ("socket_reports_lost", 2.0),
    ] {
        assert_eq!(sum(&m, "bulkhead_agent_total", &[("counter", counter)]), n);
    }
    assert!(sum(&m, "bulkhead_store_bytes", &[("kind", "used")]) > 0.0);
    assert_eq!(sum(&m, "bulkhead_policy_ok", &[]), 1.0);
    // The server's own requests: the scrape before this one, a refused one.
    assert_eq!(s.req("GET", "/api/v1/flows", None, None).status, 401);
    let m = parse_metrics(&s.get("/metrics").body);
    let ok = [("route", "/metrics"), ("method", "GET"), ("status", "200")];
    assert_eq!(sum(&m, "bulkhead_api_requests_total", &ok), 1.0);
    let refused = [("route", "/api/v1/flows"), ("status", "401")];
    assert_eq!(sum(&m, "bulkhead_api_requests_total", &refused), 1.0);
    assert_eq!(
        sum(
            &m,
            "bulkhead_api_request_duration_seconds_count",
            &[("route", "/metrics")]
        ),
        1.0
    );
    // New records are added to the counters, not counted twice.
    let mut store = bulkhead_store::Store::open(&s.state.join(bulkhead_store::FILE)).unwrap();
    let r: bulkhead_store::FlowRecord = serde_json::from_value(flow(
        "2026-12-01T11:00:00.000Z",
        "deny",
        "shop/web-0",
        "shop/db-0",
        22,
        None,
        false,
    ))
    .unwrap();
    store.write_flows(&[r]).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(s.state.join("latency.jsonl"))
        .and_then(|mut f| {
            std::io::Write::write_all(
                &mut f,
                b"{\"change\":\"policy\",\"latency_ms\":70.0,\"apply_ms\":20.0}\n",
            )
        })
        .unwrap();
    let m = parse_metrics(&s.get("/metrics").body);
    assert_eq!(
        sum(&m, "bulkhead_flows_total", &[("verdict", "deny")]),
        12.0
    );
    assert_eq!(sum(&m, "bulkhead_flows_total", &[]), 32.0);
    assert_eq!(
        sum(
            &m,
            "bulkhead_dataplane_programming_seconds_count",
            &[("change", "policy")]
        ),
        2.0
    );
}

#[test]
fn plain_http_only_on_loopback() {
    let l = |addr: &str, allow| bulkhead_server::Listen {
        addr: addr.parse().unwrap(),
        tls: None,
        allow_plain_http: allow,
    };
    assert!(bulkhead_server::check_listen(&l("127.0.0.1:8443", false)).is_ok());
    assert!(bulkhead_server::check_listen(&l("[::1]:8443", false)).is_ok());
    assert!(bulkhead_server::check_listen(&l("0.0.0.0:8443", false)).is_err());
    assert!(bulkhead_server::check_listen(&l("0.0.0.0:8443", true)).is_ok());
}

#[test]
fn response_rules_are_served() {
    let s = start(false);
    assert_eq!(s.get("/api/v1/responses").json(), json!([]));
    let rule = "apiVersion: bulkhead.io/v1\nkind: ResponseRule\nmetadata: {name: lateral-move}\nspec:\n  match:\n    types: [deny]\n    groups: [db]\n  actions:\n    - webhook: {url: \"http://127.0.0.1:9/hook\"}\n";
    let r = s.req(
        "PUT",
        "/api/v1/policies/respond.yaml",
        Some(TOKEN),
        Some(rule),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let rules = s.get("/api/v1/responses").json();
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    assert!(rules.to_string().contains("lateral-move"), "{rules}");
    // A rule naming a group that does not exist is refused.
    let bad = rule.replace("groups: [db]", "groups: [dbx]");
    let r = s.req(
        "PUT",
        "/api/v1/policies/respond.yaml",
        Some(TOKEN),
        Some(&bad),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        std::fs::read_to_string(s.policy.join("respond.yaml")).unwrap(),
        rule
    );
}

#[test]
fn quarantine_by_hand_through_the_api() {
    let s = start(false);
    assert_eq!(s.get("/api/v1/quarantine").json(), json!([]));
    let r = s.req(
        "PUT",
        "/api/v1/quarantine/shop/db-0",
        Some(TOKEN),
        Some(r#"{"reason":"lateral move"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["changed"], true);
    // Written where the agent reads it.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(s.state.join("quarantine.json")).unwrap())
            .unwrap();
    assert_eq!(file["workloads"][0]["workload"], "shop/db-0");
    assert_eq!(file["workloads"][0]["reason"], "lateral move");
    let list = s.get("/api/v1/quarantine").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Again: nothing to change.
    let r = s.req("PUT", "/api/v1/quarantine/shop/db-0", Some(TOKEN), None);
    assert_eq!(r.json()["changed"], false);
    // Unknown workloads are refused; nothing is written.
    let r = s.req("PUT", "/api/v1/quarantine/shop/nope-0", Some(TOKEN), None);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.req("DELETE", "/api/v1/quarantine/shop/db-0", Some(TOKEN), None);
    assert_eq!(r.json()["changed"], true);
    assert_eq!(s.get("/api/v1/quarantine").json(), json!([]));
}

/// `serve --promote-after`: a quiet Discover group moves to Monitor, and to Protect only
/// after a quiet period in Monitor too; Protect is the last step; the file keeps
/// everything but the `mode:` line.
#[test]
fn quiet_groups_move_one_step_per_quiet_period() {
    use bulkhead_server::promote::{Clock, tick};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let groups = GROUPS.replacen("mode: Protect", "mode: Discover", 1);
    // Conversations first seen 2026-12-01T10:00:00..59.
    let (policy, state) = files_in(dir.path(), &groups);
    let s = bulkhead_server::state(Config {
        state_dirs: vec![state],
        policy: vec![policy.clone()],
        inventory: vec![dir.path().join("inventory.yaml")],
        recursive: false,
        token: TOKEN.into(),
        promote_after: Some(Duration::from_secs(3600)),
    })
    .unwrap();
    let at = |t: &str| humantime::parse_rfc3339(t).unwrap();
    let quiet = Duration::from_secs(3600);
    let mut clock = Clock::new(at("2026-12-01T10:00:00Z"));
    let mode_of_web = || {
        let text = std::fs::read_to_string(policy.join("groups.yaml")).unwrap();
        let web = text.split("---").next().unwrap().to_string();
        web.lines()
            .find(|l| l.trim_start().starts_with("mode:"))
            .unwrap()
            .trim()
            .to_string()
    };

    assert!(
        tick(&s, &mut clock, quiet, at("2026-12-01T10:30:00Z"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(mode_of_web(), "mode: Discover");

    let moved = tick(&s, &mut clock, quiet, at("2026-12-01T11:01:00Z")).unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (
            moved[0].group.as_str(),
            moved[0].from.as_str(),
            moved[0].to.as_str()
        ),
        ("web", "Discover", "Monitor")
    );
    assert_eq!(mode_of_web(), "mode: Monitor");
    // Everything else in the file is as written.
    let text = std::fs::read_to_string(policy.join("groups.yaml")).unwrap();
    assert_eq!(text, groups.replacen("mode: Discover", "mode: Monitor", 1));

    // Monitor is a step of its own: not Protect at once, though the traffic is as quiet.
    assert!(
        tick(&s, &mut clock, quiet, at("2026-12-01T11:30:00Z"))
            .unwrap()
            .is_empty()
    );
    let moved = tick(&s, &mut clock, quiet, at("2026-12-01T12:01:00Z")).unwrap();
    assert_eq!(
        (moved[0].from.as_str(), moved[0].to.as_str()),
        ("Monitor", "Protect")
    );
    assert_eq!(mode_of_web(), "mode: Protect");
    // Protect is the last step.
    assert!(
        tick(&s, &mut clock, quiet, at("2026-12-02T12:00:00Z"))
            .unwrap()
            .is_empty()
    );
}

/// Reads a streamed (`application/x-ndjson`) answer whole on a thread of its own.
fn stream(s: &Server, url: String) -> std::thread::JoinHandle<String> {
    let agent = s.agent.clone();
    std::thread::spawn(move || {
        let mut r = agent
            .get(&url)
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/x-ndjson"
        );
        r.body_mut().read_to_string().unwrap()
    })
}

/// `flows/follow`: the backlog (with the filters), then the records committed while it
/// streams, each once, as JSON lines; a filtered-out record is not sent.
#[test]
fn follow_streams_the_backlog_then_new_records() {
    let s = start(false);
    let url = format!(
        "{}/api/v1/flows/follow?verdict=deny&limit=3&seconds=3",
        s.base
    );
    let reader = stream(&s, url);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let mut store = bulkhead_store::Store::open(&s.state.join(bulkhead_store::FILE)).unwrap();
    let new = |t: &str, verdict: &str, port: u16| {
        bulkhead_store::Record::Flow(Box::new(
            serde_json::from_value(flow(
                t,
                verdict,
                "shop/web-0",
                "shop/db-0",
                port,
                None,
                false,
            ))
            .unwrap(),
        ))
    };
    store
        .write(&[
            new("2026-12-01T11:00:00.000Z", "deny", 2222),
            new("2026-12-01T11:00:01.000Z", "allow", 5432),
        ])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    store
        .write(&[new("2026-12-01T11:00:02.000Z", "deny", 3333)])
        .unwrap();
    let body = reader.join().unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ports: Vec<u64> = lines.iter().map(|l| l["dport"].as_u64().unwrap()).collect();
    // The last 3 denials of the backlog (the newest of them at 10:00:59), then the two new
    // denials in commit order, and not the allowed record between them.
    assert_eq!(ports.len(), 5, "{body}");
    assert!(lines[..3].iter().all(|l| l["verdict"] == "deny"), "{body}");
    assert_eq!(lines[2]["time"], "2026-12-01T10:00:59.000Z", "{body}");
    assert_eq!(&ports[3..], &[2222, 3333], "{body}");
}

/// `events/follow`: the backlog of refusals and sensor hits, then those committed while
/// it streams, as JSON lines; an event `all` would add (a close) is not sent.
#[test]
fn follow_streams_new_events() {
    let s = start(false);
    let url = format!("{}/api/v1/events/follow?seconds=2", s.base);
    let reader = stream(&s, url);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let mut store = bulkhead_store::Store::open(&s.state.join(bulkhead_store::FILE)).unwrap();
    let event = |t: &str, kind: &str| {
        bulkhead_store::Record::Event(json!({
            "time": t, "event": kind, "protocol": "redis",
            "src": {"ip": "10.0.0.1", "workload": "shop/web-0"},
            "dst": {"ip": "10.0.0.2", "workload": "shop/db-0"},
            "request": "redis FLUSHALL", "decision": {"allowed": false}
        }))
    };
    store
        .write(&[
            event("2026-12-01T11:00:00.000Z", "request"),
            event("2026-12-01T11:00:01.000Z", "closed"),
        ])
        .unwrap();
    let body = reader.join().unwrap();
    let kinds: Vec<String> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].to_string())
        .collect();
    // The sensor hit of the setup, then the new refusal; not the close.
    assert_eq!(kinds, [r#""sensor""#, r#""request""#], "{body}");
}
