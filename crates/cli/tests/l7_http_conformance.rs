//! `explain` says what the proxy does, request by request: a policy of HTTP rules
//! (methods, path regexes, hosts, headers) in a lab, and a few hundred requests built
//! from the forms that make HTTP rules hard (dot segments, escapes, backslashes and
//! repeated slashes in paths, method overrides in headers and query strings, hosts
//! with ports and case, absolute-form targets, two Host fields, header case). Each is
//! sent as raw bytes through the agent's proxy to the lab's HTTP responder, and its
//! answer (403 or not) must be what `bulkhead explain --request` says of the same
//! request. The requests are drawn with a fixed seed: a failure names the request.

mod common;

use common::lab::{Lab, bulkhead, require};

const LAB: &str = "l7httpconf";

const LAB_YAML: &str = "apiVersion: bulkhead.io/v1
kind: Lab
metadata: {name: l7httpconf}
spec:
  workloads:
    - {name: client-0, namespace: apps, labels: {app: client}}
    - {name: web-0, namespace: apps, labels: {app: web}, ports: [{port: 8080, protocol: TCP}], run: http}
";

const POLICY_YAML: &str = r#"apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: web}
spec:
  selector: app == "web"
  mode: Protect
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: web-http}
spec:
  appliesTo: [{selector: app == "web"}]
  ingress:
    - action: Allow
      from: [{selector: app == "client"}]
      ports: [TCP/8080]
      app: http
      http:
        - {methods: [GET, HEAD], path: "/static/.*"}
        - {methods: [GET, POST], path: "/api(/v[12])?(/.*)?", host: api.example.com}
        - {path: "/admin(/.*)?", headers: [{name: X-Role, value: admin}]}
        - {methods: [PUT, PATCH], path: "/api/v2/items/[0-9]+"}
"#;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PATHS: &[&str] = &[
    "/static/app.css",
    "/static/../admin",
    "/static/%2e%2e/admin/users",
    "/static//app.js",
    "/api",
    "/api/v1/orders?id=7",
    "/api/v3/orders",
    "/api/v2/items/42",
    "/api/v2/items/42/../43",
    "/api/v2/items/4x",
    "/admin",
    "/admin/users?_method=DELETE",
    "/Admin",
    "/admin%2fusers",
    "/api/v1/../../admin",
    "/api\\v1\\orders",
    "/api/v1/orders?_method=PUT",
    "/admin;x/users",
    "/api/v2/items/42;jsessionid=1",
    "/",
];
const HOSTS: &[Option<&str>] = &[
    Some("api.example.com"),
    Some("API.Example.com:8080"),
    Some("other.example"),
    None,
];
const EXTRA: &[&[(&str, &str)]] = &[
    &[],
    &[("X-Role", "admin")],
    &[("x-role", "admin")],
    &[("X-Role", "user")],
    &[("X-HTTP-Method-Override", "DELETE")],
    &[("X-Method-Override", "GET")],
    &[("Host", "other.example")],
];

/// A request: method, target, Host value, other header fields.
struct Request {
    method: &'static str,
    target: String,
    host: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Request {
    /// As sent on the wire.
    fn wire(&self) -> String {
        let mut r = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if let Some(h) = self.host {
            r.push_str(&format!("Host: {h}\r\n"));
        }
        for (n, v) in &self.headers {
            r.push_str(&format!("{n}: {v}\r\n"));
        }
        r.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        r
    }

    /// In `explain --request`'s one-line form: what the proxy reads from the wire (the
    /// host an absolute-form target names, else the Host field; every field).
    fn explained(&self) -> String {
        let authority = self
            .target
            .strip_prefix("http://")
            .and_then(|t| t.split('/').next());
        let mut r = format!("http {} {}", self.method, self.target);
        if let Some(h) = authority.or(self.host) {
            r.push_str(&format!(" host={}", bulkhead_policy::l7::host_name(h)));
        }
        if let Some(h) = self.host {
            r.push_str(&format!(" header:host={h}"));
        }
        for (n, v) in &self.headers {
            r.push_str(&format!(" header:{}={v}", n.to_ascii_lowercase()));
        }
        r
    }
}

/// The requests, drawn with a fixed seed (a linear congruential generator: no crate
/// needed for this, and the same draw on every machine).
fn requests(n: usize) -> Vec<Request> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut pick = |len: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % len
    };
    (0..n)
        .map(|_| {
            let method = METHODS[pick(METHODS.len())];
            let mut target = PATHS[pick(PATHS.len())].to_string();
            let host = HOSTS[pick(HOSTS.len())];
            let headers = EXTRA[pick(EXTRA.len())].to_vec();
            // One in eight targets in absolute form, naming a host of its own.
            if pick(8) == 0 {
                target = format!(
                    "http://{}{target}",
                    ["api.example.com", "other.example"][pick(2)]
                );
            }
            Request {
                method,
                target,
                host,
                headers,
            }
        })
        .collect()
}

#[test]
fn explain_says_what_the_proxy_does_for_every_request() {
    if !common::privileged("the HTTP conformance lab test") {
        return;
    }
    require(&["nc", "python3"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), LAB_YAML).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY_YAML).unwrap();
    let files = format!("{}/", dir.path().display());
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &[&files], &[]);
    let ip = lab.ipv4("apps/web-0");

    let all = requests(240);
    // All the requests in one exec: each on its own connection, its status line out.
    let script = "import socket,sys\n\
        ip=sys.argv[1]\n\
        for line in sys.stdin.read().split('\\0')[:-1]:\n\
        \x20   s=socket.create_connection((ip,8080),timeout=5)\n\
        \x20   s.sendall(line.encode('latin-1'))\n\
        \x20   data=b''\n\
        \x20   while b'\\r\\n' not in data:\n\
        \x20       chunk=s.recv(4096)\n\
        \x20       if not chunk: break\n\
        \x20       data+=chunk\n\
        \x20   print(data.split(b'\\r\\n')[0].decode('latin-1') or 'closed')\n\
        \x20   s.close()\n";
    let input: String = all.iter().map(|r| r.wire() + "\0").collect();
    let out = lab.exec_with_input(
        "apps/client-0",
        &["python3", "-c", script, &ip],
        input.as_bytes(),
    );
    let statuses: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(statuses.len(), all.len(), "{statuses:?}");

    let mut wrong = Vec::new();
    let (mut allowed, mut denied) = (0, 0);
    for (r, status) in all.iter().zip(&statuses) {
        let o = bulkhead(&[
            "explain",
            "apps/client-0",
            "apps/web-0",
            "TCP/8080",
            "--request",
            &r.explained(),
            "-f",
            &files,
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        let says_allowed = text.starts_with("ALLOWED");
        assert!(says_allowed || text.starts_with("DENIED"), "{text}");
        // 400: a request the proxy refuses as malformed (two Host fields).
        let proxy_allowed = status.starts_with("HTTP/1.1 200");
        if status.starts_with("HTTP/1.1 400") {
            continue;
        }
        if proxy_allowed {
            allowed += 1;
        } else {
            denied += 1;
        }
        if proxy_allowed != says_allowed {
            wrong.push(format!(
                "{:?}: proxy {status:?}, explain {}",
                r.wire(),
                text.lines().next().unwrap_or_default()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    eprintln!(
        "{allowed} allowed, {denied} denied, {} malformed",
        all.len() - allowed - denied
    );
    // The draw covers both answers, many times each.
    assert!(
        allowed >= 20 && denied >= 20,
        "allowed {allowed}, denied {denied}"
    );
}
