//! The L7 firewall end to end, for real: the bundled example in a lab with the agents'
//! transparent proxy on, a real redis-server in platform/redis-0 and redis-cli / curl as
//! clients. Node pods may read and write keys, FLUSHALL is refused with a Redis error
//! and never reaches the server, another protocol on the Redis port is refused, and the
//! denial is an event with the request, the refusal and a capture tshark reads.

mod common;

use common::lab::{Lab, bulkhead, capture_text, require, settled, two_nodes};

const LAB: &str = "l7test";

#[test]
fn redis_commands_are_enforced_by_the_proxy() {
    if !common::privileged("the L7 lab test") {
        return;
    }
    require(&["redis-server", "redis-cli", "curl", "tshark"]);
    let _lock = common::lab_lock();
    // A copy of the example, so that the test can change its policy (below).
    let examples = common::lab::copy_examples();
    // Node pods may use transactions too here.
    let policies = examples.path().join("policies.yaml");
    let text = std::fs::read_to_string(&policies).expect("policies.yaml");
    assert!(
        text.contains("redis: [GET, SET,"),
        "the example's Redis rule moved"
    );
    std::fs::write(
        &policies,
        text.replace(
            "redis: [GET, SET,",
            "redis: [GET, SET, MULTI, EXEC, DISCARD,",
        ),
    )
    .expect("policies.yaml");
    let dir = format!("{}/", examples.path().display());
    let lab = Lab::up(LAB, &[&dir, "examples/lab/l7.yaml"], &[]);
    let exec = |workload: &str, cmd: &[&str]| lab.run(workload, cmd);
    let ip = lab.ipv4("platform/redis-0");
    lab.wait_for_redis(&ip);

    assert_eq!(
        exec(
            "platform/node-api-0",
            &["redis-cli", "-h", &ip, "SET", "k", "hello"]
        )
        .1,
        "OK"
    );
    assert_eq!(
        exec("platform/node-api-0", &["redis-cli", "-h", &ip, "GET", "k"]).1,
        "hello"
    );
    let (_, flush) = exec("platform/node-api-0", &["redis-cli", "-h", &ip, "FLUSHALL"]);
    assert!(
        flush.contains("NOPERM") && flush.contains("FLUSHALL"),
        "FLUSHALL answered {flush:?}"
    );
    // Never reached the server: the key is still there. Pipelined too (one connection).
    assert_eq!(
        exec("platform/node-api-0", &["redis-cli", "-h", &ip, "GET", "k"]).1,
        "hello"
    );
    let (_, piped) = exec(
        "platform/node-api-0",
        &[
            "sh",
            "-c",
            &format!("printf 'SET a 1\\r\\nFLUSHDB\\r\\nGET a\\r\\n' | redis-cli -h {ip}"),
        ],
    );
    let lines: Vec<&str> = piped.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{piped}");
    assert_eq!(lines[0], "OK");
    assert!(lines[1].contains("NOPERM"), "{piped}");
    assert_eq!(lines[2], "1");
    // A refusal inside a transaction aborts it, as Redis's ACL does: the SET queued
    // with the FLUSHDB never runs.
    let (_, tx) = exec(
        "platform/node-api-0",
        &[
            "sh",
            "-c",
            &format!(
                "printf 'MULTI\\r\\nSET t 1\\r\\nFLUSHDB\\r\\nEXEC\\r\\nEXISTS t\\r\\n' | redis-cli -h {ip}"
            ),
        ],
    );
    let lines: Vec<&str> = tx.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 5, "{tx}");
    assert_eq!(lines[..2], ["OK", "QUEUED"], "{tx}");
    assert!(lines[2].contains("NOPERM"), "{tx}");
    assert!(lines[3].contains("EXECABORT"), "{tx}");
    assert_eq!(lines[4], "0", "{tx}");

    // The same over IPv6 (the divert chain and the proxy listen for both families).
    let ip6 = lab.ipv6("platform/redis-0");
    assert_eq!(
        exec(
            "platform/node-api-0",
            &["redis-cli", "-h", &ip6, "GET", "k"]
        )
        .1,
        "hello"
    );
    let (_, flush6) = exec(
        "platform/node-api-0",
        &["redis-cli", "-h", &ip6, "FLUSHALL"],
    );
    assert!(
        flush6.contains("NOPERM"),
        "FLUSHALL over IPv6 answered {flush6:?}"
    );

    // Another protocol on the Redis port, and a workload no rule allows: refused.
    lab.redis_refuses_others(&ip);

    // HTTP: creditStatus serves only its status API to creditCheck (method and path rule).
    let status_ip = lab.ipv4("us/credit-status-1");
    // The status code of curl's request from creditCheck with `args`.
    let code = |args: &[&str], path: &str| {
        let url = format!("http://{status_ip}:8080{path}");
        let out = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5"];
        let cmd: Vec<&str> = std::iter::once("curl")
            .chain(out)
            .chain(args.iter().copied())
            .chain([url.as_str()])
            .collect();
        exec("eu/credit-check-0", &cmd).1
    };
    let curl = |method: &str, path: &str| code(&["-X", method], path);
    assert_eq!(curl("GET", "/v1/status/7"), "200");
    assert_eq!(curl("POST", "/v1/status"), "200");
    assert_eq!(curl("DELETE", "/v1/accounts/42"), "403");
    assert_eq!(curl("GET", "/admin"), "403");
    // An upload whose client waits for `100 Continue` (curl asks past 1 MiB, SDKs for
    // every PUT) is told to go on by the proxy, which holds it for the sensors: without
    // that, curl waits out its --expect100-timeout (5 s here) first.
    let upload = format!(
        "head -c 100000 /dev/zero | tr '\\0' a > /tmp/bh-l7-upload && \
         curl -s -o /dev/null -w '%{{http_code}} %{{time_total}}' -m 20 --expect100-timeout 5 \
         -H 'Expect: 100-continue' --data-binary @/tmp/bh-l7-upload http://{status_ip}:8080/v1/status; \
         rm -f /tmp/bh-l7-upload"
    );
    let (_, timed) = exec("eu/credit-check-0", &["sh", "-c", &upload]);
    let (status, secs) = timed.split_once(' ').unwrap_or((&timed, "99"));
    assert_eq!(status, "200", "{timed}");
    assert!(secs.parse::<f64>().unwrap_or(99.0) < 4.0, "{timed}");
    // A POST the framework would run as DELETE is decided as DELETE too.
    assert_eq!(
        code(
            &["-X", "POST", "-H", "X-HTTP-Method-Override: DELETE"],
            "/v1/status"
        ),
        "403"
    );
    // So is a form whose `_method` field says DELETE (Rails, Laravel), in its body
    // (urlencoded, multipart) or query string; a plain form passes.
    for (args, path) in [
        (vec!["--data", "a=1&_method=DELETE"], "/v1/status"),
        (vec!["-F", "_method=delete", "-F", "a=1"], "/v1/status"),
        (vec!["-X", "POST"], "/v1/status?_method=DELETE"),
    ] {
        assert_eq!(code(&args, path), "403", "{args:?} {path}");
    }
    assert_eq!(code(&["--data", "a=1&_method=post"], "/v1/status"), "200");
    // Past the 64 KiB the proxy holds, the form is read as it passes: refused before
    // its end reaches nginx.
    let long = format!(
        "(printf 'pad='; head -c 100000 /dev/zero | tr '\\0' a; printf '&_method=DELETE') | \
         curl -s -o /dev/null -w '%{{http_code}}' -m 20 --data-binary @- http://{status_ip}:8080/v1/status"
    );
    assert_eq!(exec("eu/credit-check-0", &["sh", "-c", &long]).1, "403");
    // A path is decided where it lands (dot segments, escapes, backslashes), not by its
    // prefix: `/v1/status/../../admin` is `/admin` to the server.
    for climb in [
        "/v1/status/../../admin",
        "/v1/status/%2e%2e/%2e%2e/admin",
        "/v1/status/..%2f..%2fadmin",
    ] {
        assert_eq!(code(&["--path-as-is"], climb), "403", "{climb}");
    }
    // A request after an empty line (RFC 9112 2.2: servers ignore it) is still HTTP to
    // the detector and decided as any other.
    // The status line answering `request` (printf escapes), sent as it is with nc.
    let raw = |request: &str| {
        let cmd = format!("printf '{request}' | nc -w 5 {status_ip} 8080");
        let (_, out) = exec("eu/credit-check-0", &["sh", "-c", &cmd]);
        out.lines().next().unwrap_or_default().trim().to_string()
    };
    let get = |path: &str| {
        format!("\\r\\nGET {path} HTTP/1.1\\r\\nHost: s\\r\\nConnection: close\\r\\n\\r\\n")
    };
    assert_eq!(raw(&get("/v1/status/7")), "HTTP/1.1 200 OK");
    assert_eq!(raw(&get("/admin")), "HTTP/1.1 403 Forbidden");
    // Request smuggling (CL.TE): a body two servers could end in two places is refused,
    // and the request hidden in it never decided.
    assert_eq!(
        raw(
            "POST /v1/status HTTP/1.1\\r\\nHost: s\\r\\nContent-Length: 40\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nGET /admin HTTP/1.1\\r\\nHost: s\\r\\n\\r\\n"
        ),
        "HTTP/1.1 400 Bad Request"
    );

    // Sensors on what policy allows. custRecord's web-attacks sensor blocks an SQL
    // injection inside an allowed request (GET /v1/status...) ...
    assert_eq!(
        curl("GET", "/v1/status?id=1%27%20OR%20%271%27%3D%271"),
        "403"
    );
    assert_eq!(curl("GET", "/v1/status?id=42"), "200");
    // ... and the CDE's card-data sensor (Alert) reports a response leaking a card number.
    let tokenizer = lab.ipv4("payments/tokenizer-0");
    let (_, leaked) = exec(
        "payments/payments-gw-0",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://{tokenizer}:8443/tokens/42"),
        ],
    );
    assert!(leaked.contains("4111 1111 1111 1111"), "{leaked}");

    // The denial is an event with the request, the refusal and a capture.
    // The store commits what arrives within 25 ms together: read until the last event
    // (the card leak, reported after the response) is there.
    let start = std::time::Instant::now();
    let events = loop {
        let o = bulkhead(&["events", "--lab", LAB, "--all", "-o", "json"]);
        let events = String::from_utf8_lossy(&o.stdout).into_owned();
        if events.contains("\"credit_card\"") || start.elapsed().as_secs() > 10 {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let flush_event: serde_json::Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "request" && e["request"] == "redis FLUSHALL")
        .expect("an event for the refused FLUSHALL");
    assert_eq!(flush_event["decision"]["allowed"], false);
    assert!(
        flush_event["refusal"]
            .as_str()
            .unwrap()
            .starts_with("-NOPERM")
    );
    assert_eq!(
        flush_event["decision"]["detail"]["src"]["workload"],
        "platform/node-api-0"
    );
    let pcap = flush_event["pcap"].as_str().expect("a capture");
    let text = capture_text(pcap, &[]);
    assert!(text.contains("FLUSHALL"), "tshark on {pcap}: {text}");
    // The climbing paths were refused by the policy, not (only) by the path-traversal
    // sensor: each is a request event with the policy's denial.
    for climb in ["/v1/status/../../admin", "/v1/status/%2e%2e/%2e%2e/admin"] {
        assert!(
            events
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|e| e["event"] == "request"
                    && e["request"].as_str().is_some_and(|r| r.contains(climb))
                    && e["decision"]["allowed"] == false),
            "no policy denial for {climb}:\n{events}"
        );
    }
    // The smuggling attempt is an event too, saying why it was refused.
    assert!(
        events.lines().any(|l| l.contains("\"event\":\"request\"")
            && l.contains("POST /v1/status")
            && l.contains("400 Bad Request: Transfer-Encoding with Content-Length")),
        "no event for the smuggling attempt:\n{events}"
    );
    assert!(
        events.lines().any(|l| l.contains("\"event\":\"protocol\"")
            && l.contains("\"protocol\":\"http\"")
            && l.contains("\"allowed\":false")),
        "no refused-protocol event for the HTTP attempt"
    );
    let sensor_event = |class: &str| -> serde_json::Value {
        events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "sensor" && e["findings"][0]["class"] == class)
            .unwrap_or_else(|| panic!("no sensor event for {class}:\n{events}"))
    };
    let sqli = sensor_event("sqli");
    assert_eq!(sqli["blocked"], true);
    assert_eq!(sqli["findings"][0]["sensor"], "web-attacks");
    assert_eq!(sqli["findings"][0]["location"], "query:id");
    assert_eq!(sqli["findings"][0]["masked"], "1' OR '1'='1");
    assert_eq!(sqli["src"]["workload"], "eu/credit-check-0");
    assert_eq!(sqli["dst"]["workload"], "us/credit-status-1");
    let card = sensor_event("credit_card");
    assert_eq!(card["blocked"], false);
    assert_eq!(card["findings"][0]["sensor"], "card-data");
    let masked = card["findings"][0]["masked"].as_str().unwrap();
    assert!(
        masked.starts_with("4111") && masked.ends_with("1111") && masked.contains('*'),
        "{masked}"
    );
    for (e, want) in [(&sqli, "GET /v1/status?id=1"), (&card, "200 OK")] {
        let pcap = e["pcap"].as_str().expect("a capture");
        let text = capture_text(pcap, &[]);
        assert!(text.contains(want), "tshark on {pcap}: {text}");
    }
    let table = bulkhead(&["events", "--lab", LAB]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("block") && table.contains("Sensor web-attacks"),
        "{table}"
    );

    // And bulkhead flows shows the L7 denial with what decided.
    let flows = settled(&["flows", "--lab", LAB, "--verdict", "deny", "-o", "json"]);
    let flows = String::from_utf8_lossy(&flows.stdout);
    assert!(flows.contains("redis FLUSHALL"), "{flows}");
    // An allowed connection the proxy took for its rules and sensors, between two
    // Protect groups (not learning), is recorded with the protocol it detected: so
    // learning from groups with sensors or L7 rules writes `app:` too.
    let allowed = settled(&["flows", "--lab", LAB, "--verdict", "allow", "-o", "json"]);
    let allowed = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        allowed
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|r| r["src"]["workload"] == sqli["src"]["workload"]
                && r["dst"]["workload"] == sqli["dst"]["workload"]
                && r["l7"]["protocol"] == "http"),
        "no allowed record with its protocol from {} to {}:\n{allowed}",
        sqli["src"]["workload"],
        sqli["dst"]["workload"]
    );

    // A form with a file input (curl -F: multipart/form-data) is read part by part:
    // an attack in a field or in an upload's file name, or an upload of a server-side
    // script, is refused; a plain upload passes.
    let upload = |parts: &[&str]| {
        let args: Vec<&str> = parts.iter().flat_map(|p| ["-F", p]).collect();
        code(&args, "/v1/status")
    };
    assert_eq!(
        upload(&[
            "note=monthly report",
            "doc=@/etc/hostname;filename=report.txt"
        ]),
        "200"
    );
    assert_eq!(
        upload(&["note=1' UNION SELECT password FROM users--"]),
        "403"
    );
    assert_eq!(
        upload(&["doc=@/etc/hostname;filename=../../etc/cron.d/x"]),
        "403"
    );
    // A web shell by its name: an upload the server would run.
    assert_eq!(upload(&["doc=@/etc/hostname;filename=shell.php"]), "403");
    let start = std::time::Instant::now();
    while !String::from_utf8_lossy(
        &bulkhead(&["events", "--lab", LAB, "--all", "-o", "json"]).stdout,
    )
    .contains("\"location\":\"body:multipart:filename:doc\"")
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no sensor event names the upload's file name"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The records of allowed connections follow a policy change at once (the agent
    // keeps their explanations per policy generation): rename the Redis policy and the
    // next connection's record names the new one.
    let redis_records_by = |policy: &str| {
        let o = bulkhead(&["flows", "--lab", LAB, "--verdict", "allow", "-o", "json"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| {
                r["dst"]["workload"] == "platform/redis-0"
                    && r["decided_by"]["rule"]["policy"] == policy
            })
            .count()
    };
    assert!(redis_records_by("redis-from-node") > 0);
    let policies = examples.path().join("policies.yaml");
    let text = std::fs::read_to_string(&policies).expect("policies.yaml");
    let renamed = text.replace(
        "metadata: {name: redis-from-node}",
        "metadata: {name: redis-from-node-renamed}",
    );
    assert_ne!(text, renamed, "the example's Redis policy was renamed");
    std::fs::write(&policies, renamed).expect("write policies.yaml");
    let start = std::time::Instant::now();
    loop {
        exec("platform/node-api-0", &["redis-cli", "-h", &ip, "PING"]);
        if redis_records_by("redis-from-node-renamed") > 0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no record names the renamed policy"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The proxy's connection to a server carries the client's address; its port must never
/// be one the client itself picks next for the same server, or the client's new SYN
/// lands in the proxy's connection and is reset (seen as rare `Connection reset by
/// peer` under redis-benchmark). Here the connection is taken twice, between two nodes
/// (the client's node for an egress L7 rule, the server's node for Redis's ingress
/// rule), and the second proxy must not pick the first one's port either (it did: the
/// same 4-tuple on both legs, a connection that hangs). Made likely here: both nodes and the client pick
/// ports from the same 50, while 20 connections stay open and 20 more are opened one
/// after another. Every PING must be answered, and the ports the server sees lie below
/// the range clients pick from.
#[test]
fn proxied_connections_leave_the_clients_ports_alone() {
    if !common::privileged("the L7 lab test") {
        return;
    }
    require(&["redis-server", "python3", "ss"]);
    let _lock = common::lab_lock();
    const PORTS_LAB: &str = "l7ports";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = two_nodes(dir.path());
    // An egress L7 rule for the clients too: the client's node takes the connection for
    // it, the server's node for Redis's ingress rule.
    let egress = dir.path().join("node-egress.yaml");
    std::fs::write(
        &egress,
        "apiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {name: node-egress-redis}\n\
         spec:\n  appliesTo: [{selector: app == \"node\"}]\n  egress:\n\
         \x20   - {action: Allow, to: [{group: redis}], ports: [TCP/redis], app: redis}\n",
    )
    .expect("writing the policy");
    let lab = Lab::up(
        PORTS_LAB,
        &["examples/", &spec, &egress.to_string_lossy()],
        &[],
    );
    let (client_name, client_node, redis_node) = across(&lab);
    let ip = lab.ipv4("platform/redis-0");
    let client = lab.ipv4(&client_name);
    for _ in 0..50 {
        if lab.run(&client_name, &["redis-cli", "-h", &ip, "PING"]).1 == "PONG" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let range = "net.ipv4.ip_local_port_range=40000 40049";
    let (ok, out) = lab.run(&client_name, &["sysctl", "-w", range]);
    assert!(ok, "{out}");
    for node in ["node-1", "node-2"] {
        let ns = format!("bh-{PORTS_LAB}.node.{node}");
        let (ok, out) = netns_run(&ns, &["sysctl", "-w", range]);
        assert!(ok, "{out}");
    }

    const CLIENT: &str = "import socket, sys\n\
        def ping():\n    s = socket.create_connection((sys.argv[1], 6379), timeout=3)\n\
        \x20   s.sendall(b'PING\\r\\n')\n    return s, s.recv(64).startswith(b'+PONG')\n\
        live, bad = [], 0\n\
        for i in range(40):\n    try:\n        s, ok = ping()\n        bad += not ok\n\
        \x20       live.append(s) if i < 20 else s.close()\n\
        \x20   except OSError:\n        bad += 1\n\
        print('failed', bad)\n\
        sys.stdout.flush()\n\
        sys.stdin.read()\n";
    // The client keeps its first 20 connections until the server's view was read.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["lab", "exec", "--name", PORTS_LAB, &client_name, "--"])
        .args(["python3", "-c", CLIENT, &ip])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running the client");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = child.stdout.as_mut().expect("the client's stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("the client's result");
    }
    let (_, seen) = lab.run("platform/redis-0", &["ss", "-tnH", "state", "established"]);
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(line.trim(), "failed 0", "connections failed: {line}");
    let ports: Vec<u16> = seen
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|peer| peer.strip_prefix(&format!("{client}:")))
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(ports.len() >= 20, "the server sees {ports:?}:\n{seen}");
    assert!(
        ports.iter().all(|p| (1024..32768).contains(p)),
        "the proxy took ports clients pick from: {ports:?}"
    );
    // Both proxies took the connections.
    for node in [&client_node, &redis_node] {
        let n = proxied(&lab, node, 20);
        assert!(n >= 20, "{node} proxied {n} connections");
    }
    drop(lab);
}

/// The node-api replica on the other node from Redis: (its name, its node, Redis's).
fn across(lab: &Lab) -> (String, String, String) {
    let redis_node = lab.node_of("platform/redis-0");
    let client = ["platform/node-api-0", "platform/node-api-1"]
        .into_iter()
        .find(|c| lab.node_of(c) != redis_node)
        .expect("a node-api replica on the other node")
        .to_string();
    let client_node = lab.node_of(&client);
    (client, client_node, redis_node)
}

/// Each node's proxy takes the connections of its own workloads' rules: a node-api pod
/// on one node reaching Redis on the other goes through the Redis node's proxy only
/// (the rule is Redis's ingress), which enforces the command list. The client is in
/// Discover mode, whose protocol learning would take its connections on its own node:
/// it leaves those the server's node takes (which detects the protocol just as well).
#[test]
fn a_connection_between_nodes_is_proxied_by_the_rules_node_only() {
    if !common::privileged("the L7 lab test") {
        return;
    }
    require(&["redis-server", "redis-cli"]);
    let _lock = common::lab_lock();
    const ONCE_LAB: &str = "l7once";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = two_nodes(dir.path());
    let lab = Lab::up(ONCE_LAB, &["examples/", &spec], &[]);
    let (client, client_node, redis_node) = across(&lab);
    let ip = lab.ipv4("platform/redis-0");
    let mut pong = String::new();
    for _ in 0..50 {
        pong = lab.run(&client, &["redis-cli", "-h", &ip, "PING"]).1;
        if pong == "PONG" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(pong, "PONG");
    assert_eq!(
        lab.run(&client, &["redis-cli", "-h", &ip, "SET", "k", "v"])
            .1,
        "OK"
    );
    let flush = lab.run(&client, &["redis-cli", "-h", &ip, "FLUSHALL"]).1;
    assert!(flush.contains("NOPERM"), "FLUSHALL answered {flush:?}");
    assert!(
        proxied(&lab, &redis_node, 3) >= 3,
        "{redis_node} proxied them"
    );
    assert_eq!(
        proxied(&lab, &client_node, 0),
        0,
        "{client_node} proxied none"
    );
}

/// How many connections `node`'s proxy took, from its agent's status, once it says at
/// least `want` (the status is rewritten every few hundred milliseconds) or after 5 s.
fn proxied(lab: &Lab, node: &str, want: u64) -> u64 {
    let start = std::time::Instant::now();
    loop {
        let n = (lab.agent_statuses().iter())
            .find(|s| s["node"] == node)
            .and_then(|s| s["proxy"]["connections"].as_u64())
            .unwrap_or_else(|| panic!("{node}'s status"));
        if n >= want || start.elapsed().as_secs() >= 5 {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A connection through the proxy is two conntrack entries on the node (the client's,
/// diverted, and the proxy's own to the server); the flow records end it once, with the
/// client's port, as the kernel's path would (before, the proxy's entry was a second
/// `end` record, from a port the client never used).
#[test]
fn a_proxied_connection_ends_once_in_the_flow_records() {
    if !common::privileged("the L7 lab test") {
        return;
    }
    require(&["redis-server", "python3", "conntrack"]);
    let _lock = common::lab_lock();
    const ENDS_LAB: &str = "l7ends";
    let lab = Lab::up(ENDS_LAB, &["examples/", "examples/lab/l7.yaml"], &[]);
    let ip = lab.ipv4("platform/redis-0");
    lab.wait_for_redis(&ip);
    const CLIENT: &str = "import socket, sys\n\
        s = socket.create_connection((sys.argv[1], 6379), timeout=3)\n\
        s.sendall(b'PING\\r\\n')\n\
        assert s.recv(64).startswith(b'+PONG')\n\
        print(s.getsockname()[1])\n\
        s.close()\n";
    let (ok, port) = lab.run("platform/node-api-0", &["python3", "-c", CLIENT, &ip]);
    assert!(ok, "{port}");
    let client = lab.ipv4("platform/node-api-0");
    // The connection's entries leave conntrack now rather than after TIME_WAIT's two
    // minutes and the kernel's next sweep.
    let node = format!("bh-{ENDS_LAB}.node.node-1");
    let start = std::time::Instant::now();
    loop {
        let (_, listed) = netns_run(&node, &["conntrack", "-L", "-p", "tcp", "--dport", "6379"]);
        if listed.matches("TIME_WAIT").count() >= 2 || start.elapsed().as_secs() >= 10 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, out) = netns_run(&node, &["conntrack", "-D", "-p", "tcp", "--dport", "6379"]);
    assert!(ok, "{out}");
    // The records of connections from the client to Redis: (event, client port).
    let records = || -> Vec<(String, String)> {
        let o = bulkhead(&["flows", "--lab", ENDS_LAB, "-o", "json"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["dport"] == 6379 && r["src"]["ip"] == client)
            .map(|r| {
                (
                    r["event"].as_str().unwrap_or("").to_string(),
                    r["sport"].to_string(),
                )
            })
            .collect()
    };
    let ended = |r: &[(String, String)]| r.iter().any(|(e, p)| e == "end" && p == port.trim());
    let start = std::time::Instant::now();
    while !ended(&records()) && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // Both entries' events have come by now.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let records = records();
    let mine = records
        .iter()
        .filter(|(e, p)| e == "end" && p == port.trim())
        .count();
    assert_eq!(mine, 1, "{records:?}");
    // Every end is a connection a client opened (the earlier ones: the wait for Redis).
    let opened: Vec<&String> = (records.iter())
        .filter(|(e, _)| e == "new")
        .map(|(_, p)| p)
        .collect();
    assert!(
        records
            .iter()
            .all(|(e, p)| e != "end" || opened.contains(&p)),
        "an end record of a connection no client opened: {records:?}"
    );
    drop(lab);
}

/// `cmd` in network namespace `ns`: (success, stdout and stderr).
fn netns_run(ns: &str, cmd: &[&str]) -> (bool, String) {
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}
