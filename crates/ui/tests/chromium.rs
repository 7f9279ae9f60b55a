//! The UI in a real browser (Debian's chromium, headless) against the real server
//! (`bulkhead-server` with the UI mounted as `bulkhead serve` mounts it) over the
//! example policy and a store filled with flow records and events whose verdicts the
//! server's own explain computed. The rendered DOM of every page is checked, and a
//! screenshot of the graph is decoded: the right size, not blank, and red and orange
//! where the denied and the violating connections are drawn.
//!
//! Without chromium the test is skipped with a message, unless
//! `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), where it fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bulkhead_record::{Action, Decided, FlowRecord, Peer, Rule};
use bulkhead_store::{Record, Store};
use serde_json::{Value, json};

// Shaped like a base64 token, with the `+` a query string turns into a blank.
const TOKEN: &str = "ui+test/token+0123456789==";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// The graph's drawing: left of the 400-pixel panel, below the 48-pixel header.
const DRAWING_RIGHT: u32 = WIDTH - 400;
const DRAWING_TOP: u32 = 48;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        let ok = Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(PathBuf::from(name));
        }
    }
    None
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The real server and the UI, as `bulkhead serve` runs them, on a free port.
fn serve(policy: PathBuf, state: PathBuf) -> SocketAddr {
    let config = bulkhead_server::Config {
        state_dirs: vec![state],
        policy: vec![policy],
        inventory: Vec::new(),
        recursive: false,
        token: TOKEN.into(),
        promote_after: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (api, _) = bulkhead_server::app(config).unwrap();
            let app = api.merge(bulkhead_ui::router());
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            bulkhead_server::serve(l, app, None).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    fn get(&self, path: &str) -> Value {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        r.body_mut().read_json().unwrap()
    }
    fn put(&self, path: &str, body: Value) -> Value {
        let mut r = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send_json(body)
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        r.body_mut().read_json().unwrap()
    }
}

fn peer(w: &Value) -> Peer {
    let ns = w["namespace"].as_str().unwrap();
    let name = w["name"].as_str().unwrap();
    Peer {
        // The example's pods have no addresses (a lab gives them some): make one up.
        ip: w["ips"][0]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("10.77.0.{}", name.len() + ns.len())),
        workload: Some(format!("{ns}/{name}")),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        labels: serde_json::from_value::<BTreeMap<String, String>>(w["labels"].clone()).unwrap(),
        entity: None,
    }
}

/// What decided, from the side of an explanation that decided (as `explain` reports).
fn decided(x: &Value) -> Decided {
    let allowed = x["allowed"].as_bool().unwrap();
    let side = if !allowed {
        if x["egress"]["allowed"] == false {
            "egress"
        } else {
            "ingress"
        }
    } else if !x["ingress"]["rule"].is_null()
        || x["egress"]["rule"].is_null() && x["ingress"]["decided_at"] == "mode"
    {
        "ingress"
    } else {
        "egress"
    };
    let s = &x[side];
    let str_of = |v: &Value| v.as_str().map(str::to_string);
    Decided {
        side: side.into(),
        tier: s["decided_at"].as_str().unwrap().into(),
        rule: s.get("rule").filter(|r| !r.is_null()).map(|r| Rule {
            kind: r["kind"].as_str().unwrap().into(),
            policy: r["policy"].as_str().unwrap().into(),
            direction: str_of(&r["direction"]).unwrap_or_default().to_lowercase(),
            rule: r["rule"].as_u64().unwrap() as u32,
            name: str_of(&r["rule_name"]),
            action: r["action"].as_str().unwrap().into(),
            origin: format!(
                "{}:{}:{}",
                r["origin"]["file"].as_str().unwrap_or(""),
                r["origin"]["line"],
                r["origin"]["column"]
            ),
        }),
        mode: str_of(&s["mode"]),
        group: str_of(&s["group"]),
        isolated_by: Vec::new(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// How chromium runs here: headless, as root (no sandbox), without a GPU.
const HEADLESS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
];

/// Run chromium headless on `url` with the extra arguments; its stdout.
fn browse(chrome: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(chrome)
        .args(HEADLESS)
        .args(["--hide-scrollbars", "--virtual-time-budget=8000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stdout = reader.join().unwrap();
            let stderr = err_reader.join().unwrap();
            assert!(status.success(), "chromium {url}: {status}\n{stderr}");
            return stdout;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {url}: no answer in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn pages_render_in_headless_chromium_against_the_real_server() {
    let Some(chrome) = chromium() else {
        if std::env::var("BULKHEAD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("chromium is not installed (scripts/setup installs it): the UI test cannot run");
        }
        eprintln!("SKIP: chromium is not installed; run scripts/setup to test the UI in a browser");
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("bulkhead-ui-")
        .tempdir()
        .unwrap();
    let policy = tmp.path().join("policy");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    for e in std::fs::read_dir(examples()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, policy.join(p.file_name().unwrap())).unwrap();
        }
    }
    let addr = serve(policy.clone(), state.clone());
    let api = Api {
        base: format!("http://{addr}/api/v1"),
        agent: ureq::Agent::config_builder().build().new_agent(),
    };

    // Two groups to Monitor through the API the mode switches use: a connection between
    // them that no rule allows becomes a violation; one from a Protect group stays denied.
    for g in ["order-input", "cust-record"] {
        let r = api.put(&format!("/groups/{g}/mode"), json!({"mode": "monitor"}));
        assert_eq!(r["to"], "Monitor", "{r}");
    }

    let workloads: BTreeMap<String, Value> = api
        .get("/workloads")
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                format!(
                    "{}/{}",
                    w["namespace"].as_str().unwrap(),
                    w["name"].as_str().unwrap()
                ),
                w.clone(),
            )
        })
        .collect();
    // (from, to, port, connections)
    let talks = [
        ("eu/order-web-0", "eu/credit-check-0", 8080, 5),
        ("eu/credit-check-0", "eu/credit-status-0", 8080, 4),
        ("eu/credit-status-0", "eu/cust-db-0", 8080, 3),
        ("eu/order-web-0", "eu/cust-db-0", 8080, 2),
        ("eu/ip-map-0", "eu/credit-status-0", 8080, 3),
    ];
    let now = SystemTime::now();
    let mut records = Vec::new();
    let mut kinds = BTreeMap::new();
    for (i, (src, dst, port, n)) in talks.iter().enumerate() {
        let x = api.get(&format!("/explain?src={src}&dst={dst}&service=TCP/{port}"));
        let allowed = x["allowed"].as_bool().unwrap();
        let violation = x["violation"].as_bool().unwrap();
        let kind = match (allowed, violation) {
            (false, _) => "denied",
            (true, true) => "violation",
            (true, false) => "allowed",
        };
        kinds.insert((*src, *dst), kind);
        for k in 0..*n {
            let secs = 600 - (i as u64) * 60 - k;
            let side = if allowed { "ingress" } else { "egress" };
            let record: FlowRecord = serde_json::from_value(json!({
                "time": rfc3339(now - Duration::from_secs(secs)),
                "event": "new",
                "verdict": if allowed { Action::Allow } else { Action::Deny },
                "protocol": "TCP",
                "src": peer(&workloads[*src]),
                "dst": peer(&workloads[*dst]),
                "sport": 40000 + k,
                "dport": port,
                "decided_by": decided(&x),
                "mode": x[side]["mode"],
                "violation": violation,
                "consistent": true,
                "generation": 1,
            }))
            .unwrap();
            records.push(Record::Flow(Box::new(record)));
        }
    }
    assert_eq!(kinds[&("eu/ip-map-0", "eu/credit-status-0")], "denied");
    assert_eq!(kinds[&("eu/order-web-0", "eu/cust-db-0")], "violation");
    assert_eq!(kinds[&("eu/order-web-0", "eu/credit-check-0")], "allowed");
    // A SQL injection the sensor blocked and a refused request, as the proxy reports them.
    records.push(Record::Event(json!({
        "time": rfc3339(now - Duration::from_secs(30)), "conn": 7,
        "client": "10.9.0.1:41000", "server": "10.9.0.2:8080",
        "event": "sensor", "protocol": "http", "request": "http GET /records?id=1%27%20OR%201=1",
        "findings": [{"sensor": "web-attacks", "class": "sqli", "location": "query:id", "masked": "1' OR 1=1", "block": true}],
        "blocked": true, "pcap": "/var/lib/bulkhead/captures/conn-7-sensor.pcap",
        "src": {"workload": "eu/order-web-0"}, "dst": {"workload": "eu/cust-db-0"}
    })));
    records.push(Record::Event(json!({
        "time": rfc3339(now - Duration::from_secs(20)), "conn": 8,
        "client": "10.9.0.3:41001", "server": "10.9.0.4:6379",
        "event": "request", "protocol": "redis", "request": "redis FLUSHALL",
        "decision": {"allowed": false, "decided_by": "ingress: Policy redis ingress rule 1",
            "detail": {"src": {"workload": "platform/node-api-0", "namespace": "platform"},
                       "dst": {"workload": "platform/redis-0", "namespace": "platform"}}}
    })));
    let mut store = Store::open(&state.join(bulkhead_store::FILE)).unwrap();
    store.write(&records).unwrap();
    store.commit_conversations().unwrap();
    drop(store);

    let graph = api.get("/graph");
    let convs = graph.as_array().unwrap();
    assert_eq!(convs.len(), talks.len(), "{graph}");
    let edge_of = |src: &str, dst: &str| -> String {
        let id = |w: &str| bulkhead_store::identity(&peer(&workloads[w]));
        let c = convs
            .iter()
            .find(|c| c["src"] == id(src) && c["dst"] == id(dst))
            .unwrap_or_else(|| panic!("no conversation {src} -> {dst} in {graph}"));
        format!(
            "{}>{}|TCP/8080|",
            c["src"].as_str().unwrap(),
            c["dst"].as_str().unwrap()
        )
    };
    let denied_edge = edge_of("eu/ip-map-0", "eu/credit-status-0");

    let base = format!("http://{addr}");
    let profile = tmp.path().join("chromium-profile");
    let dump = |url: &str| browse(&chrome, &profile, &["--dump-dom".to_string()], url);
    let esc = |s: &str| -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };

    // The graph: through the `/` redirect, the token from the address.
    let dom = dump(&format!("{base}/?token={TOKEN}#/graph"));
    assert!(
        !dom.contains("class=\"login\""),
        "the token was not taken:\n{dom}"
    );
    assert!(!dom.contains("error-box"), "{dom}");
    let n = |k: &str| kinds.values().filter(|v| **v == k).count();
    assert_eq!(count(&dom, "class=\"edge denied"), n("denied"), "{dom}");
    assert_eq!(
        count(&dom, "class=\"edge violation"),
        n("violation"),
        "{dom}"
    );
    assert_eq!(count(&dom, "class=\"edge allowed"), n("allowed"), "{dom}");
    assert!(
        dom.contains("eu: geoLocation · ipMap → eu: custRecord · creditStatus"),
        "{dom}"
    );
    assert!(dom.contains("TCP/8080"));
    let status = format!(
        "5 identities, 5 connections ({} denied, {} violations)",
        n("denied"),
        n("violation")
    );
    assert!(dom.contains(&status), "{dom}");

    // A connection selected (what a click does): explained with the deciding rule.
    let dom = dump(&format!(
        "{base}/ui/?token={TOKEN}#/graph?edge={}",
        esc(&denied_edge)
    ));
    assert!(dom.contains("class=\"edge denied selected\""), "{dom}");
    assert!(dom.contains("data-verdict=\"denied\""), "{dom}");
    assert!(
        dom.contains("DENIED: eu/ip-map-0 → eu/credit-status-0 TCP/8080"),
        "{dom}"
    );
    assert!(dom.contains("Protect mode of group geo-location"), "{dom}");

    // Flows, filtered: only the denied records.
    let dom = dump(&format!("{base}/ui/?token={TOKEN}#/flows?verdict=deny"));
    assert_eq!(count(&dom, "class=\"flow deny\""), 3, "{dom}");
    assert_eq!(count(&dom, "class=\"flow allow\""), 0);
    assert_eq!(count(&dom, "class=\"flow violation\""), 0);
    assert!(
        dom.contains("egress: Protect mode (group geo-location)"),
        "{dom}"
    );
    let dom = dump(&format!(
        "{base}/ui/?token={TOKEN}#/flows?workload=eu/cust-db-0"
    ));
    assert_eq!(count(&dom, "class=\"flow violation\""), 2, "{dom}");
    assert_eq!(count(&dom, "class=\"flow allow\""), 3, "{dom}");
    assert!(dom.contains("5 flow records"), "{dom}");

    // Events: the sensor hit and the refused request.
    let dom = dump(&format!("{base}/ui/?token={TOKEN}#/events"));
    assert_eq!(count(&dom, "class=\"event refusal\""), 2, "{dom}");
    // The finding itself (class, where, the match), as `bulkhead_sensor::Finding` has it.
    assert!(
        dom.contains("blocked: web-attacks: sqli in query:id \"1' OR 1=1\""),
        "{dom}"
    );
    assert!(dom.contains("redis FLUSHALL"));
    assert!(
        dom.contains("class=\"capture\" title=\"/var/lib/bulkhead/captures/conn-7-sensor.pcap\">conn-7-sensor.pcap"),
        "{dom}"
    );
    let dom = dump(&format!("{base}/ui/?token={TOKEN}#/events?kind=sensor"));
    assert_eq!(count(&dom, "class=\"event refusal\""), 1, "{dom}");

    // Policies: the modes as the server now has them, and explain.
    let dom = dump(&format!(
        "{base}/ui/?token={TOKEN}#/policies?src=eu/order-web-0&dst=eu/cust-db-0&service=TCP/8080&file=groups.yaml"
    ));
    assert!(
        dom.contains("data-group=\"order-input\" data-mode=\"Monitor\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-group=\"geo-location\" data-mode=\"Protect\""),
        "{dom}"
    );
    assert!(
        dom.contains("ALLOWED (violation: Monitor mode): eu/order-web-0 → eu/cust-db-0 TCP/8080"),
        "{dom}"
    );
    assert!(dom.contains("id=\"yaml\""), "{dom}");
    assert!(
        dom.contains("mode: Monitor") || dom.contains("mode: monitor"),
        "{dom}"
    );

    // Learn: the proposal, its coverage and what it changes.
    let dom = dump(&format!("{base}/ui/?token={TOKEN}#/learn"));
    assert!(dom.contains("id=\"proposal-yaml\""), "{dom}");
    assert!(dom.contains("kind: Group"), "{dom}");
    assert!(dom.contains("id=\"coverage\""));
    assert!(
        dom.contains("id=\"replay-summary\">Of 17 recorded flows"),
        "{dom}"
    );
    assert!(count(&dom, "class=\"proposed-group\"") >= 4, "{dom}");
    // The reachability diff against the current rules, as `bulkhead learn` prints it.
    assert!(dom.contains("id=\"reachability-summary\">On TCP/"), "{dom}");

    // The graph as a picture.
    let shoot = |name: &str, route: &str| -> Picture {
        let shot = tmp.path().join(format!("{name}.png"));
        browse(
            &chrome,
            &profile,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
            &format!("{base}/ui/?token={TOKEN}#/{route}"),
        );
        let p = Picture::read(&shot);
        assert_eq!((p.width, p.height), (WIDTH, HEIGHT), "{name}");
        let colours = p.colours();
        eprintln!("screenshot {}: {colours} colours", shot.display());
        assert!(colours > 50, "{name}: a blank page? {colours} colours");
        p
    };
    let graph = shoot("graph", "graph");
    // #d62728: a denied connection; #ff8c00: a violation.
    let drawing = |x: u32, y: u32| x < DRAWING_RIGHT && y >= DRAWING_TOP;
    let red = graph.count(|x, y, (r, g, b)| drawing(x, y) && r >= 190 && g <= 80 && b <= 80);
    let orange = graph
        .count(|x, y, (r, g, b)| drawing(x, y) && r >= 230 && (115..=165).contains(&g) && b <= 50);
    eprintln!("graph: {red} red and {orange} orange pixels in the drawing");
    assert!(
        red > 150,
        "the denied connection is not drawn red: {red} pixels"
    );
    assert!(
        orange > 150,
        "the violation is not drawn orange: {orange} pixels"
    );
    // With only denials and violations asked for, the grey allowed edges are gone.
    let grey =
        |p: &Picture| p.count(|x, y, (r, g, b)| drawing(x, y) && (r, g, b) == (0x87, 0x96, 0xa8));
    let filtered = shoot("graph-violations", "graph?violations=1");
    assert!(
        grey(&graph) > 50,
        "allowed edges are not drawn: {}",
        grey(&graph)
    );
    assert_eq!(
        grey(&filtered),
        0,
        "allowed edges drawn with only violations asked for"
    );

    // The tables and pages: drawn, and the denied flows' verdicts in red.
    let flows = shoot("flows", "flows?verdict=deny");
    let red_text =
        flows.count(|_, y, (r, g, b)| y >= DRAWING_TOP && r >= 140 && g <= 70 && b <= 60);
    assert!(
        red_text > 20,
        "denied verdicts are not shown in red: {red_text} pixels"
    );
    shoot("events", "events");
    shoot(
        "policies",
        "policies?src=eu/order-web-0&dst=eu/cust-db-0&service=TCP/8080",
    );
    shoot("learn", "learn");
    // Real clicks and typing, through the DevTools protocol.
    interact(&chrome, tmp.path(), &base, &api, &denied_edge);

    if std::env::var_os("BULKHEAD_UI_KEEP").is_some() {
        eprintln!("kept {}", tmp.keep().display());
    }
}

/// A decoded screenshot.
struct Picture {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Picture {
    fn read(path: &Path) -> Picture {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let channels = info.color_type.samples();
        assert!(channels >= 3, "{:?}", info.color_type);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        Picture {
            width: info.width,
            height: info.height,
            channels,
            pixels,
        }
    }

    fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let i = (y * self.width + x) as usize * self.channels;
        (self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
    }

    fn colours(&self) -> usize {
        let mut all = std::collections::HashSet::new();
        for y in 0..self.height {
            for x in 0..self.width {
                all.insert(self.rgb(x, y));
            }
        }
        all.len()
    }

    fn count(&self, f: impl Fn(u32, u32, (u8, u8, u8)) -> bool) -> usize {
        let mut n = 0;
        for y in 0..self.height {
            for x in 0..self.width {
                n += usize::from(f(x, y, self.rgb(x, y)));
            }
        }
        n
    }
}

/// A page of a headless chromium driven over the DevTools protocol.
struct Browser {
    child: std::process::Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn open(chrome: &Path, profile: &Path, url: &str) -> Browser {
        use std::io::BufRead;
        let mut child = Command::new(chrome)
            .args(HEADLESS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromium ended before it listened")
                .unwrap();
            if let Some(rest) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        // Keep draining stderr so chromium never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let list: Value = ureq::get(format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (ws, _) = tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap()).unwrap();
        Browser { child, ws, next: 0 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(tungstenite::Message::text(msg)).unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Wait until the expression is true (20 s at most).
    fn wait(&mut self, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.eval(&format!("!!({expr})")) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "waited 20 s for {expr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A left click at a point of the viewport, as a mouse makes it.
    fn click(&mut self, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseMoved", "x": x, "y": y}),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Click the middle of the element a CSS selector finds.
    fn click_on(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        self.wait(&format!("document.querySelector({sel})"));
        let r = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); e.scrollIntoView({{block: 'center'}}); \
               const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        self.click(r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
    }

    fn text(&mut self, selector: &str) -> String {
        let sel = serde_json::to_string(selector).unwrap();
        self.eval(&format!(
            "(document.querySelector({sel}) || {{}}).textContent || ''"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }
}

/// Click an arrow of the drawing, switch a mode, filter the flows: as a user does.
fn interact(chrome: &Path, tmp: &Path, base: &str, api: &Api, denied_edge: &str) {
    let mut b = Browser::open(
        chrome,
        &tmp.join("chromium-devtools"),
        &format!("{base}/ui/?token={TOKEN}#/graph"),
    );
    b.wait("document.querySelectorAll('#edges tr.edge').length === 5");
    b.wait("window.bulkheadGraph && window.bulkheadGraph.edges().length === 5");
    // A point on the denied arrow, a third of the way from its source.
    let id = serde_json::to_string(denied_edge).unwrap();
    let p = b.eval(&format!(
        "(() => {{ const e = window.bulkheadGraph.getElementById({id}); \
           const s = e.renderedSourceEndpoint(), t = e.renderedTargetEndpoint(); \
           const r = document.getElementById('cy').getBoundingClientRect(); \
           return [r.left + s.x + (t.x - s.x) / 3, r.top + s.y + (t.y - s.y) / 3]; }})()"
    ));
    b.click(p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
    b.wait("document.querySelector('#explain .explain')");
    let explained = b.text("#explain");
    assert!(
        explained.contains("DENIED: eu/ip-map-0 → eu/credit-status-0 TCP/8080"),
        "{explained}"
    );
    assert!(
        explained.contains("Protect mode of group geo-location"),
        "{explained}"
    );
    assert!(
        b.eval("location.hash").as_str().unwrap().contains("edge="),
        "the selection is not in the address"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#edges tr.selected').length"),
        json!(1)
    );

    // The mode switch: geo-location to Monitor, written by the server.
    b.eval("location.hash = '#/policies'");
    b.click_on("span.modes[data-group='geo-location'] button.mode-Monitor");
    b.wait("document.querySelector(\"span.modes[data-group='geo-location']\").dataset.mode === 'Monitor'");
    let groups = api.get("/groups");
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "geo-location")
        .unwrap();
    assert_eq!(g["mode"], "Monitor", "{g}");
    // A group's sensors, without a direction when they read connections to it only.
    let row = b.text("#groups tr.group[data-group='cust-record']");
    assert!(
        row.contains("web-attacks") && !row.contains("egress"),
        "{row}"
    );
    assert!(
        b.text("#status")
            .contains("geo-location: Protect → Monitor"),
        "{}",
        b.text("#status")
    );

    // The flow filter form: type a workload, press Filter.
    b.eval("location.hash = '#/flows'");
    b.click_on("#flows-filters input[name=workload]");
    b.call("Input.insertText", json!({"text": "eu/cust-db-0"}));
    b.click_on("#flows-filters button[type=submit]");
    b.wait("location.hash.includes('workload=eu%2Fcust-db-0')");
    b.wait("document.querySelectorAll('#flows-table tr.flow').length === 5");
    assert_eq!(
        b.eval("document.querySelectorAll('#flows-table tr.flow.violation').length"),
        json!(2)
    );
}
