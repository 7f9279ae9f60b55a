//! Datagram protocols other than DNS on port 53, end to end: a real memcached answering
//! over UDP behind a rule that requires `app: memcached`, and a real dnsmasq on port 5353
//! behind a rule on query names, both reached by a client that keeps one socket for
//! several datagrams (as memcached clients and stub resolvers do). Every datagram is
//! judged, not only a flow's first: once the server has answered, the kernel counts the
//! flow as established, and a later datagram of another protocol, or a refused name,
//! must not pass by the proxy on that account.

mod common;

use common::lab::{Lab, require};

const LAB: &str = "l7udptest";

/// Sends each datagram (hex) from one socket of the client pod to `ip`:`port`, in turn,
/// and says what came back for each: its bytes (hex), or `timeout`.
fn exchange(lab: &Lab, ip: &str, port: u16, datagrams: &[Vec<u8>]) -> Vec<String> {
    const CLIENT: &str = "import socket,sys\n\
        ip,port=sys.argv[1],int(sys.argv[2])\n\
        s=socket.socket(socket.AF_INET6 if ':' in ip else socket.AF_INET,socket.SOCK_DGRAM)\n\
        s.settimeout(2)\n\
        for h in sys.argv[3:]:\n\
        \x20   s.sendto(bytes.fromhex(h),(ip,port))\n\
        \x20   try:\n\
        \x20       print(s.recvfrom(65536)[0].hex())\n\
        \x20   except socket.timeout:\n\
        \x20       print('timeout')\n";
    let port = port.to_string();
    let hex: Vec<String> = datagrams.iter().map(|d| hex(d)).collect();
    let mut args = vec!["python3", "-c", CLIENT, ip, &port];
    args.extend(hex.iter().map(String::as_str));
    let o = lab.exec("apps/client-0", &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A memcached UDP request: the 8-byte frame header (request id, sequence 0 of 1), then
/// the text command.
fn memcached(id: u16, command: &str) -> Vec<u8> {
    let mut d = id.to_be_bytes().to_vec();
    d.extend([0, 0, 0, 1, 0, 0]);
    d.extend(command.as_bytes());
    d
}

/// A DNS query for `name`, type A.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut d = id.to_be_bytes().to_vec();
    d.extend([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        d.push(label.len() as u8);
        d.extend(label.as_bytes());
    }
    d.extend([0, 0, 1, 0, 1]);
    d
}

/// The response code of a DNS answer given in hex.
fn rcode(answer: &str) -> Option<u8> {
    let b = u8::from_str_radix(answer.get(6..8)?, 16).ok()?;
    Some(b & 0x0f)
}

fn says(answer: &str, text: &str) -> bool {
    answer.contains(&hex(text.as_bytes()))
}

#[test]
fn every_datagram_of_a_flow_is_judged_by_the_proxy() {
    if !common::privileged("the UDP lab test") {
        return;
    }
    require(&["memcached", "dnsmasq", "python3", "tshark"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/udp/"], &[]);
    let version = memcached(1, "version\r\n");
    let stray = dns_query(0x4242, "api.example.com");
    for ip in [lab.ipv4("infra/cache-0"), lab.ipv6("infra/cache-0")] {
        // memcached, then another protocol on the same socket once the flow is
        // established (memcached would answer it `ERROR`), then memcached again.
        let got = exchange(
            &lab,
            &ip,
            11211,
            &[version.clone(), stray.clone(), version.clone()],
        );
        assert!(says(&got[0], "VERSION "), "memcached via {ip}: {got:?}");
        assert_eq!(
            got[1], "timeout",
            "a DNS query to memcached via {ip}: {got:?}"
        );
        assert!(
            says(&got[2], "VERSION "),
            "memcached again via {ip}: {got:?}"
        );
        // Another protocol first: dropped; memcached after it on that socket passes.
        let got = exchange(&lab, &ip, 11211, &[stray.clone(), version.clone()]);
        assert_eq!(got[0], "timeout", "a DNS query first via {ip}: {got:?}");
        assert!(
            says(&got[1], "VERSION "),
            "memcached after it via {ip}: {got:?}"
        );
    }
    for ip in [lab.ipv4("infra/dns-0"), lab.ipv6("infra/dns-0")] {
        let got = exchange(
            &lab,
            &ip,
            5353,
            &[
                dns_query(1, "api.example.com"),
                dns_query(2, "evil.example.net"),
                dns_query(3, "api.example.com"),
            ],
        );
        assert_eq!(rcode(&got[0]), Some(0), "api.example.com via {ip}: {got:?}");
        assert_eq!(
            rcode(&got[1]),
            Some(5),
            "evil.example.net via {ip}: {got:?}"
        );
        assert_eq!(
            rcode(&got[2]),
            Some(0),
            "api.example.com again via {ip}: {got:?}"
        );
    }

    let events = lab.events();
    let request = |e: &&serde_json::Value| e["event"] == "request";
    let dropped: Vec<_> = (events.iter().filter(request))
        .filter(|e| e["refusal"] == "dropped")
        .collect();
    assert_eq!(
        dropped.len(),
        4,
        "one event per dropped datagram:\n{events:#?}"
    );
    assert!(dropped.iter().all(|e| e["protocol"] == "dns"
        && e["decision"]["allowed"] == false
        && e["decision"]["detail"]["dst"]["workload"] == "infra/cache-0"));
    let refused: Vec<_> = (events.iter().filter(request))
        .filter(|e| e["request"] == "dns evil.example.net")
        .collect();
    assert_eq!(refused.len(), 2, "one event per refused name:\n{events:#?}");
    // A flood of refused datagrams: every one is dropped and counted, but captures are
    // written within their budget (a burst of 200, then 20 a second), not one each.
    let flood = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         for i in range(600):\n    s.sendto(bytes.fromhex('{}'),('{}',11211))\n",
        hex(&stray),
        lab.ipv4("infra/cache-0")
    );
    assert!(
        lab.exec("apps/client-0", &["python3", "-c", &flood])
            .status
            .success()
    );
    let skipped = (0..50)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let s = lab.agent_statuses();
            let n = s[0]["proxy"]["captures_skipped"].as_u64().unwrap_or(0);
            (n > 0).then_some(n)
        })
        .expect("no capture skipped under the flood");
    let captures = std::fs::read_dir(format!("/run/bulkhead/labs/{LAB}/agents/node-1/captures"))
        .unwrap()
        .count();
    eprintln!("flood: {captures} captures in the directory, {skipped} skipped");
    // (The kernel may drop some of the 600 before the proxy reads them.)
    assert!(
        captures < 320 && skipped > 0,
        "{captures} captures written, {skipped} skipped"
    );

    // explain says what the proxy did.
    for (dst, port, request, verdict) in [
        ("infra/cache-0", "UDP/11211", "memcached", "ALLOWED"),
        (
            "infra/cache-0",
            "UDP/11211",
            "dns api.example.com",
            "DENIED",
        ),
        ("infra/dns-0", "UDP/5353", "dns api.example.com", "ALLOWED"),
        ("infra/dns-0", "UDP/5353", "dns evil.example.net", "DENIED"),
    ] {
        let o = common::lab::bulkhead(&[
            "explain",
            "apps/client-0",
            dst,
            port,
            "--request",
            request,
            "-f",
            "crates/cli/tests/fixtures/udp/",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.starts_with(verdict), "explain {request}: {text}");
    }
    // The evidence of a dropped datagram is the datagram (tshark would read port
    // 11211 as memcached: it goes by ports).
    let pcap = dropped[0]["pcap"].as_str().expect("a capture");
    let text = common::lab::capture_text(pcap, &["-d", "udp.port==11211,dns"]);
    assert!(text.contains("api.example.com"), "tshark on {pcap}: {text}");
}

/// Sensors read datagrams as they read connections: every datagram to a member of a
/// group with sensors, and every answer, each on its own; a Block sensor's finding
/// drops it (UDP has no refusal) and every finding is an event with the datagram as
/// its capture. Before, UDP to such a group passed unread while `explain` said it was
/// inspected.
#[test]
fn sensors_read_every_datagram_both_ways() {
    if !common::privileged("the UDP sensors lab test") {
        return;
    }
    require(&["memcached", "dnsmasq", "python3", "tshark"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(
        "l7udpsensor",
        &[
            "crates/cli/tests/fixtures/udp/",
            "crates/cli/tests/fixtures/udp_sensors.yaml",
        ],
        &[],
    );
    for ip in [lab.ipv4("infra/cache-0"), lab.ipv6("infra/cache-0")] {
        let got = exchange(
            &lab,
            &ip,
            11211,
            &[
                // A card number in a request: dropped, never stored.
                memcached(1, "set card 0 0 16\r\n4111111111111111\r\n"),
                memcached(2, "get card\r\n"),
                // One digit short of a card's checksum: stored; `incr` then answers
                // with a valid card number, and that answer is dropped.
                memcached(3, "set n 0 0 16\r\n4111111111111110\r\n"),
                memcached(4, "incr n 1\r\n"),
                // An e-mail address: reported, not stopped (an Alert sensor).
                memcached(5, "set mail 0 0 17\r\nalice@example.com\r\n"),
                memcached(6, "get mail\r\n"),
            ],
        );
        assert_eq!(got[0], "timeout", "a card in a request via {ip}: {got:?}");
        assert!(says(&got[1], "END"), "nothing stored via {ip}: {got:?}");
        assert!(says(&got[2], "STORED"), "{ip}: {got:?}");
        assert_eq!(got[3], "timeout", "a card in an answer via {ip}: {got:?}");
        assert!(says(&got[4], "STORED"), "{ip}: {got:?}");
        assert!(says(&got[5], "alice@example.com"), "{ip}: {got:?}");
    }

    let events = lab.events_until(|e| common::lab::sensor_findings(e, None).len() >= 8);
    let sensor: Vec<_> = events.iter().filter(|e| e["event"] == "sensor").collect();
    let blocked = common::lab::sensor_findings(&events, Some(true));
    let pair = |class: &str| {
        let f = |at: &str| (class.to_string(), at.to_string());
        let one = vec![f("request body"), f("response body")];
        [one.clone(), one].concat()
    };
    assert_eq!(blocked, pair("credit_card"), "{sensor:#?}");
    let alerts = common::lab::sensor_findings(&events, Some(false));
    assert_eq!(alerts, pair("email"), "{sensor:#?}");
    // The same events as YAML documents.
    let o = common::lab::bulkhead(&["events", "--lab", "l7udpsensor", "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&o.stdout);
    assert_eq!(yaml.matches("---\n").count(), sensor.len(), "{yaml}");
    assert_eq!(
        yaml.matches("event: sensor\n").count(),
        sensor.len(),
        "{yaml}"
    );
    for e in &sensor {
        assert_eq!(e["protocol"], "memcached", "{e:#}");
        assert_eq!(
            e["refusal"].as_str(),
            e["blocked"].as_bool().unwrap().then_some("dropped"),
            "{e:#}"
        );
        // Masked in the event; whole in the capture, which tshark reads.
        let masked = e["findings"][0]["masked"].as_str().unwrap();
        assert!(!masked.contains("4111111111111111"), "{e:#}");
        let pcap = e["pcap"].as_str().expect("a capture");
        let text = common::lab::capture_text(pcap, &["-V"]);
        assert!(
            text.contains("User Datagram Protocol"),
            "tshark on {pcap}: {text}"
        );
    }

    // explain says so.
    let o = common::lab::bulkhead(&[
        "explain",
        "apps/client-0",
        "infra/cache-0",
        "UDP/11211",
        "--request",
        "memcached",
        "-f",
        "crates/cli/tests/fixtures/udp/",
        "-f",
        "crates/cli/tests/fixtures/udp_sensors.yaml",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("inspected by sensor card-data (Block)"),
        "{text}"
    );
}

/// `inspect: [Egress]`: the sensors of the client's group read what it sends out, over
/// TCP and UDP, to servers no sensor watches: a card number in a memcached `set` over
/// TCP closes the connection before the server reads it, and one in a DNS name (data
/// leaving through DNS) is dropped, while the name without it is answered.
#[test]
fn egress_sensors_read_what_members_send() {
    if !common::privileged("the egress sensors lab test") {
        return;
    }
    require(&["memcached", "dnsmasq", "python3", "tshark"]);
    let _lock = common::lab_lock();
    let files = [
        "crates/cli/tests/fixtures/udp/",
        "crates/cli/tests/fixtures/egress_sensors.yaml",
    ];
    let lab = Lab::up("l7egress", &files, &[]);
    // TCP: one connection per command; what the server answered (empty: closed).
    const TCP: &str = "import socket,sys\n\
        s=socket.create_connection((sys.argv[1],11211),timeout=3)\n\
        s.sendall(sys.argv[2].encode().decode('unicode_escape').encode())\n\
        out=b''\n\
        try:\n\
        \x20   while not out.endswith(b'\\r\\n'):\n\
        \x20       d=s.recv(4096)\n\
        \x20       if not d: break\n\
        \x20       out+=d\n\
        except (socket.timeout, ConnectionResetError):\n\
        \x20   pass\n\
        print(out.decode() or 'closed')\n";
    let cache = lab.ipv4("infra/cache-0");
    let tcp = |command: &str| {
        let o = lab.exec("apps/client-0", &["python3", "-c", TCP, &cache, command]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(tcp("set card 0 0 16\\r\\n4111111111111111\\r\\n"), "closed");
    assert_eq!(
        tcp("get card\\r\\n"),
        "END",
        "the card never reached the cache"
    );
    assert_eq!(tcp("set n 0 0 4\\r\\n1234\\r\\n"), "STORED");
    for ip in [lab.ipv4("infra/dns-0"), lab.ipv6("infra/dns-0")] {
        let got = exchange(
            &lab,
            &ip,
            5353,
            &[
                dns_query(1, "4111111111111111.api.example.com"),
                dns_query(2, "www.api.example.com"),
            ],
        );
        assert_eq!(got[0], "timeout", "a card in a DNS name via {ip}: {got:?}");
        assert_eq!(rcode(&got[1]), Some(0), "a plain name via {ip}: {got:?}");
    }
    let events = lab.events_until(|e| common::lab::sensor_findings(e, Some(true)).len() >= 3);
    let sensor: Vec<_> = events.iter().filter(|e| e["event"] == "sensor").collect();
    let protocols: Vec<_> = sensor.iter().map(|e| e["protocol"].clone()).collect();
    assert_eq!(protocols, ["memcached", "dns", "dns"], "{sensor:#?}");
    for e in &sensor {
        assert_eq!(e["blocked"], true, "{e:#}");
        assert_eq!(e["findings"][0]["sensor"], "card-out", "{e:#}");
        assert!(!e.to_string().contains("4111111111111111"), "masked: {e:#}");
        let pcap = e["pcap"].as_str().expect("a capture");
        common::lab::capture_text(pcap, &[]);
    }
    // explain names the client's sensor for what it sends, and no sensor for what it
    // receives.
    let explain = |src: &str, dst: &str, port: &str| {
        let mut args = vec!["explain", src, dst, port];
        for f in files {
            args.extend(["-f", f]);
        }
        let o = common::lab::bulkhead(&args);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = explain("apps/client-0", "infra/dns-0", "UDP/5353");
    assert!(
        out.contains("inspected by sensor card-out (Block)"),
        "{out}"
    );
    let back = explain("infra/cache-0", "apps/client-0", "TCP/8080");
    assert!(!back.contains("inspected by sensor"), "{back}");
}

/// Between two nodes each node reads with its own workloads' sensors: the client's node
/// with the client's egress sensors, the server's with the server's ingress ones, and
/// neither with the other's (the client's node diverting for its own reasons once also
/// read with the server's sensors, which the server's node read with again).
#[test]
fn each_node_reads_with_its_own_ends_sensors() {
    if !common::privileged("the two-node sensors lab test") {
        return;
    }
    require(&["memcached", "dnsmasq", "python3"]);
    let _lock = common::lab_lock();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/udp/lab.yaml"
    ))
    .unwrap();
    let spec = spec.replacen("\nspec:\n", "\nspec:\n  nodes: [node-1, node-2]\n", 1);
    let senders = "apiVersion: bulkhead.io/v1
kind: Sensor
metadata: {name: mail-out}
spec: {detect: [email]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: senders}
spec: {selector: app == \"client\", sensors: [mail-out], inspect: [Egress]}
";
    let files = [("lab.yaml", spec.as_str()), ("senders.yaml", senders)];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let lab = Lab::up(
        "l7sensornodes",
        &[
            &p("lab.yaml"),
            "crates/cli/tests/fixtures/udp/policy.yaml",
            "crates/cli/tests/fixtures/udp_sensors.yaml",
            &p("senders.yaml"),
        ],
        &[],
    );
    assert_ne!(lab.node_of("apps/client-0"), lab.node_of("infra/cache-0"));
    let got = exchange(
        &lab,
        &lab.ipv4("infra/cache-0"),
        11211,
        &[
            memcached(1, "set mail 0 0 17\r\nalice@example.com\r\n"),
            memcached(2, "get mail\r\n"),
            memcached(3, "set card 0 0 16\r\n4111111111111111\r\n"),
        ],
    );
    assert!(
        says(&got[0], "STORED") && says(&got[1], "alice@"),
        "{got:?}"
    );
    assert_eq!(
        got[2], "timeout",
        "the server's node blocks the card: {got:?}"
    );
    let events = lab.events_until(|e| common::lab::sensor_findings(e, None).len() >= 5);
    let by = |sensor: &str| -> Vec<String> {
        (events.iter())
            .filter(|e| e["event"] == "sensor")
            .flat_map(|e| e["findings"].as_array().cloned().unwrap_or_default())
            .filter(|f| f["sensor"] == sensor)
            .map(|f| f["location"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let both = ["request body", "response body"];
    assert_eq!(by("mail-out"), both, "the client's node, once: {events:#?}");
    assert_eq!(
        by("mail-watch"),
        both,
        "the server's node, once: {events:#?}"
    );
    assert_eq!(by("card-data"), ["request body"], "{events:#?}");
}
