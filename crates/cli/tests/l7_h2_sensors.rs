//! Sensors on HTTP/2 end to end: curl speaking h2c with prior knowledge to a real HTTP/2
//! server (nghttpd, which echoes POST bodies) behind the agents' proxy, whose group has
//! a blocking web-attacks sensor. A SQL injection in the query or in a form body gets
//! 403 from the proxy and is an event naming the sensor, the location and the masked
//! value; the body never reaches the server (nghttpd would echo it). Clean requests on
//! the same kind of connection pass. A gRPC call (grpcio, a protobuf message built by
//! hand: no generated code) with an injection in a string field gets PERMISSION_DENIED
//! and never reaches the server; a clean one is answered. A response leaking a card
//! number is a DLP event (response bodies are scanned stream by stream). (Before, HTTP/2 requests went
//! to the sensors only as raw bytes: switching to HTTP/2 walked an injection past them.)
//! A form in one DATA frame larger than the proxy holds, to a server that allows such
//! frames (Node.js's http2), is judged before the server has it whole; in padded frames,
//! the padding is no part of what the sensors read.

mod common;

use common::lab::{Lab, require, sensor_findings};

const LAB: &str = "l7h2test";
const CLIENT: &str = "shop/client-0";
const SQLI: &str = "1' UNION SELECT password FROM users--";
/// One demo.Users/Find call whose message has the name in field 1 (a protobuf string).
const GRPC: &str = "import grpc, sys
name = sys.argv[2].encode()
msg = bytes([0x0a, len(name)]) + name
with grpc.insecure_channel(sys.argv[1] + ':50051') as ch:
    try:
        reply = ch.unary_unary('/demo.Users/Find')(msg, timeout=10)
        print('OK', reply.decode(errors='replace'))
    except grpc.RpcError as e:
        print(e.code().name, e.details())";

/// One demo.Users/Upload call (client streaming): a message per argument after the
/// address, half a second apart.
const GRPC_STREAM: &str = "import grpc, sys, time
def messages():
    for name in sys.argv[2:]:
        n = name.encode()
        yield bytes([0x0a, len(n)]) + n
        time.sleep(0.5)
with grpc.insecure_channel(sys.argv[1] + ':50051') as ch:
    try:
        reply = ch.stream_unary('/demo.Users/Upload')(messages(), timeout=10)
        print('OK', reply.decode(errors='replace'))
    except grpc.RpcError as e:
        print(e.code().name, e.details())";

/// curl from the client over h2c with prior knowledge, `extra` before the URL: the
/// body, then the status code on a line of its own.
fn h2c(lab: &Lab, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "curl",
        "-sS",
        "-m5",
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_code}",
    ];
    args.extend(extra);
    args.push(url);
    lab.run(CLIENT, &args).1
}

/// `get()` again until it answers 200 (the server takes a moment to listen), 20 s at
/// most; the last answer.
fn once_up(get: impl Fn() -> String) -> String {
    let start = std::time::Instant::now();
    loop {
        let r = get();
        if r.ends_with("200") || start.elapsed().as_secs() > 20 {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn http2_requests_are_inspected_by_the_sensors() {
    if !common::privileged("the HTTP/2 sensors lab test") {
        return;
    }
    require(&["curl", "nghttpd"]);
    let _lock = common::lab_lock();
    let _ = std::fs::remove_dir_all("/tmp/bulkhead-h2grpc");
    let lab = Lab::up(
        LAB,
        &["crates/cli/tests/fixtures/h2sensors/"],
        &["/tmp/bulkhead-h2grpc"],
    );
    let ip = lab.ipv4("shop/web-0");
    let curl = |path: &str, form: Option<&str>| {
        let url = format!("http://{ip}:8080{path}");
        match form {
            Some(f) => h2c(&lab, &url, &["--data-urlencode", f]),
            None => h2c(&lab, &url, &[]),
        }
    };
    let items = once_up(|| curl("/items?page=2", None));
    assert_eq!(items, "item list\n\n200");
    // A clean form is echoed by the server.
    assert_eq!(curl("/login", Some("user=bob")), "user=bob\n200");

    // An injection in the query: refused before the server sees the request.
    let query = format!(
        "/items?id={}",
        SQLI.replace(' ', "%20").replace('\'', "%27")
    );
    let out = curl(&query, None);
    assert!(out.ends_with("403"), "{out}");
    // In a form body: refused, and the server never echoes it.
    let out = curl("/login", Some(&format!("user={SQLI}")));
    assert!(out.ends_with("403"), "{out}");
    assert!(!out.contains("UNION"), "the body reached the server: {out}");
    // The connection kind still works afterwards.
    assert_eq!(curl("/login", Some("user=alice")), "user=alice\n200");
    // A form the client compressed (`content-encoding: gzip`): judged inflated, refused.
    // (Before, HTTP/2 bodies were read as sent and the server echoed it.)
    let gz = std::env::temp_dir().join("bulkhead-h2-form.gz");
    let gzip = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' \"user=$1\" | gzip -c > {}",
            gz.display()
        ))
        .args(["sh", SQLI])
        .status()
        .expect("gzip");
    assert!(gzip.success());
    let form = format!("@{}", gz.display());
    let gzipped = |encoding: &str| {
        let url = format!("http://{ip}:8080/login");
        let headers = [
            "-H",
            encoding,
            "-H",
            "content-type: application/x-www-form-urlencoded",
            "--data-binary",
            &form,
        ];
        h2c(&lab, &url, &headers)
    };
    let out = gzipped("content-encoding: gzip");
    assert!(out.ends_with("403"), "{out}");
    let _ = std::fs::remove_file(&gz);
    // A response leaking a card number (DLP, Alert): the client gets it, it is an event.
    let card = curl("/card", None);
    assert!(
        card.contains("4111 1111 1111 1111") && card.ends_with("200"),
        "{card}"
    );

    // A card number in a request (Alert): it passes; its event names the request with
    // the number masked, as the finding is.
    let out = curl("/items?card=4111111111111111", None);
    assert!(out.ends_with("200"), "{out}");

    // gRPC: the server answers "found " and the message it got.
    let users = lab.ipv4("shop/users-0");
    let call = |name: &str| {
        lab.run(CLIENT, &["/usr/bin/python3", "-c", GRPC, &users, name])
            .1
    };
    let start = std::time::Instant::now();
    let found = loop {
        let r = call("alice");
        if r.starts_with("OK") || start.elapsed().as_secs() > 20 {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        found.starts_with("OK found") && found.contains("alice"),
        "{found}"
    );
    let out = call(SQLI);
    assert_eq!(
        out.trim(),
        "PERMISSION_DENIED bulkhead: demo.Users/Find was blocked by a sensor"
    );
    // A streaming call: the server takes each message as it comes, so each is judged
    // once whole. The clean first one reaches it, the injection never does, nor does
    // anything after it. (Before, messages were judged when the stream ended: the
    // server had written the injection by then.)
    let upload = |names: &[&str]| {
        let mut args = vec!["/usr/bin/python3", "-c", GRPC_STREAM, &users];
        args.extend_from_slice(names);
        lab.run(CLIENT, &args).1
    };
    assert_eq!(upload(&["first", "second"]), "OK got 2");
    let out = upload(&["third", SQLI, "fourth"]);
    assert_eq!(
        out.trim(),
        "PERMISSION_DENIED bulkhead: demo.Users/Upload was blocked by a sensor"
    );
    let log = std::fs::read_to_string("/tmp/bulkhead-h2grpc/messages.log").unwrap_or_default();
    assert_eq!(log, "first\nsecond\nthird\n");

    let events = lab.events();
    let blocked = sensor_findings(&events, Some(true));
    assert!(
        blocked.contains(&("sqli".into(), "query:id".into())),
        "{events:#?}"
    );
    assert!(
        blocked.contains(&("sqli".into(), "body:form:user".into())),
        "{events:#?}"
    );
    assert!(
        blocked.contains(&("sqli".into(), "body:grpc:1".into())),
        "{events:#?}"
    );
    let in_query: Vec<_> = (events.iter())
        .filter(|e| e["event"] == "sensor" && e.to_string().contains("\"query:card\""))
        .collect();
    assert_eq!(in_query.len(), 1, "{events:#?}");
    let request = in_query[0]["request"].as_str().unwrap();
    assert!(
        request.starts_with("http2 GET /items?card=4111") && request.contains("****"),
        "{request}"
    );
    // Nor does any flow record keep it whole (a connection's record names what detection
    // read of its first request).
    let flows = common::lab::bulkhead(&["flows", "--lab", LAB, "-o", "json"]);
    let flows = String::from_utf8_lossy(&flows.stdout);
    assert!(flows.contains("/items?card=4111"), "{flows}");
    assert!(!flows.contains("4111111111111111"), "{flows}");
    assert!(
        !in_query[0].to_string().contains("4111111111111111"),
        "{:#}",
        in_query[0]
    );
    assert!(
        sensor_findings(&events, Some(false))
            .contains(&("credit_card".into(), "response body".into())),
        "no DLP event for the HTTP/2 response: {events:#?}"
    );
    // Each curl and each gRPC call made one request on its connection, and each is
    // counted once (a blocked body was decided once, on head and body together; a
    // streaming call once, however many messages it sent).
    let counts: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "closed")
        .filter_map(|e| e["requests"].as_u64())
        .collect();
    assert!(counts.len() >= 6, "{counts:?} {events:#?}");
    assert!(counts.iter().all(|&c| c == 1), "{counts:?} {events:#?}");
}

/// No sensor, a rule on methods: over h2c a POST form whose `_method` field names
/// DELETE gets 403 and never reaches the server whole (nghttpd would echo it), while
/// a plain form is echoed. (Before, HTTP/2 bodies were not read for `_method`.)
#[test]
fn an_http2_forms_method_field_is_decided() {
    if !common::privileged("the HTTP/2 method lab test") {
        return;
    }
    require(&["curl", "nghttpd"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(
        "l7h2method",
        &[
            "crates/cli/tests/fixtures/h2sensors/lab.yaml",
            "crates/cli/tests/fixtures/h2method.yaml",
        ],
        &[],
    );
    let url = format!("http://{}:8080/items", lab.ipv4("shop/web-0"));
    let post = |form: &str| h2c(&lab, &url, &["-d", form]);
    let plain = once_up(|| post("name=bob"));
    assert!(
        plain.contains("name=bob") && plain.ends_with("200"),
        "{plain}"
    );
    let refused = post("id=7&_method=DELETE");
    assert!(refused.ends_with("403"), "{refused}");
    assert!(!refused.contains("id=7"), "echoed: {refused}");
    let events = lab.events_until(|e| e.iter().any(|x| x["event"] == "request"));
    let request: Vec<_> = events.iter().filter(|e| e["event"] == "request").collect();
    assert_eq!(request.len(), 1, "{events:#?}");
    assert!(
        request[0]["request"]
            .as_str()
            .unwrap()
            .contains("_method=DELETE"),
        "{:#}",
        request[0]
    );
}

/// One POST whose form body (`user=...` and 70 KiB of padding) goes in a single DATA
/// frame, as a client may once the server allows frames that large (python3-h2, which
/// sends what it is given as one frame): the status, the answer, how the stream ended.
/// With a third argument, the form as given in two DATA frames cut there, each padded
/// with 200 bytes (RFC 9113 6.1).
const ONE_FRAME_POST: &str = "import socket, sys, h2.connection, h2.events, h2.config
host, body = sys.argv[1], sys.argv[2].encode()
cut = int(sys.argv[3]) if len(sys.argv) > 3 else None
if cut is None:
    body += b'&pad=' + b'a' * (70 * 1024)
s = socket.create_connection((host, 8080), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
s.sendall(c.data_to_send())
def pump():
    data = s.recv(65536)
    if not data:
        sys.exit('closed')
    events = c.receive_data(data)
    s.sendall(c.data_to_send())
    return events
while c.max_outbound_frame_size < len(body) or c.outbound_flow_control_window < len(body):
    pump()
c.send_headers(1, [(':method', 'POST'), (':path', '/login'), (':scheme', 'http'),
    (':authority', host), ('content-type', 'application/x-www-form-urlencoded')])
if cut is None:
    c.send_data(1, body, end_stream=True)
else:
    c.send_data(1, body[:cut], pad_length=200)
    c.send_data(1, body[cut:], end_stream=True, pad_length=200)
s.sendall(c.data_to_send())
status, text = None, b''
while True:
    for e in pump():
        if isinstance(e, h2.events.ResponseReceived):
            status = dict(e.headers)[b':status'].decode()
        elif isinstance(e, h2.events.DataReceived):
            text += e.data
            c.acknowledge_received_data(e.flow_controlled_length, 1)
        elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
            print(status, text.decode(errors='replace').strip(), type(e).__name__)
            sys.exit(0)";

/// A body sent in one DATA frame larger than the proxy holds (64 KiB) to a server that
/// allows such frames (Node.js's http2, 1 MiB): an injection in it gets 403 and the
/// server never has the request whole (its stream never ends there), while a clean one
/// is received whole. (Before, such a frame went on with its end-of-stream flag while
/// the sensors read it: the server ran the request, the client got a reset.)
#[test]
fn a_body_in_one_frame_larger_than_is_held_is_judged_before_it_ends() {
    if !common::privileged("the HTTP/2 large-frame lab test") {
        return;
    }
    require(&["node", "/usr/bin/python3"]);
    let _lock = common::lab_lock();
    let log_dir = "/tmp/bulkhead-h2frames";
    let _ = std::fs::remove_dir_all(log_dir);
    let lab = Lab::up(
        "l7h2frames",
        &[
            "crates/cli/tests/fixtures/h2frames/",
            "crates/cli/tests/fixtures/h2sensors/policy.yaml",
        ],
        &[log_dir],
    );
    let ip = lab.ipv4("shop/web-0");
    let post = |user: &str| {
        let form = format!("user={user}");
        lab.run(
            CLIENT,
            &["/usr/bin/python3", "-c", ONE_FRAME_POST, &ip, &form],
        )
        .1
    };
    // The requests the server received whole (not those cancelled on the way).
    let ended = || {
        let log = std::fs::read_to_string(format!("{log_dir}/ended.log")).unwrap_or_default();
        log.lines()
            .filter(|l| !l.starts_with("cancelled "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    let size = 5 + 70 * 1024;
    let clean = once_up(|| {
        let r = post("bob");
        if r.starts_with("200 ") {
            "200".into()
        } else {
            r
        }
    });
    assert_eq!(clean, "200");
    assert_eq!(ended(), format!("POST /login {}\n", size + 8));

    let out = post(&SQLI.replace(' ', "+"));
    assert!(out.starts_with("403 "), "{out}");
    assert!(out.ends_with("StreamEnded"), "{out}");
    // The next request is received whole; the refused one never ended at the server.
    assert_eq!(
        post("alice"),
        format!("200 received {} StreamEnded", size + 10)
    );
    assert_eq!(
        ended(),
        format!("POST /login {}\nPOST /login {}\n", size + 8, size + 10)
    );
    let events = lab.events_until(|e| !sensor_findings(e, Some(true)).is_empty());
    assert!(
        sensor_findings(&events, Some(true)).contains(&("sqli".into(), "body:form:user".into())),
        "{events:#?}"
    );

    // Padded frames: the padding is no part of what the sensors read (before, 200 zeros
    // cut the card number below in two and the injection's UNION, and both passed).
    let padded = |form: &str, cut: usize| {
        let cut = cut.to_string();
        lab.run(
            CLIENT,
            &["/usr/bin/python3", "-c", ONE_FRAME_POST, &ip, form, &cut],
        )
        .1
    };
    let card = "user=carol&card=4111+1111+1111+1111";
    let out = padded(card, card.find("+1111+1111").unwrap());
    assert_eq!(out, format!("200 received {} StreamEnded", card.len()));
    let events = lab.events_until(|e| {
        sensor_findings(e, Some(false)).contains(&("credit_card".into(), "body:form:card".into()))
    });
    assert!(
        sensor_findings(&events, Some(false))
            .contains(&("credit_card".into(), "body:form:card".into())),
        "{events:#?}"
    );
    let form = format!("user={}", SQLI.replace(' ', "+"));
    let out = padded(&form, form.find("ION").unwrap());
    assert!(out.starts_with("403 "), "{out}");
    assert!(
        !ended().contains(&format!(" {}\n", form.len())),
        "{}",
        ended()
    );
}
