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
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/h2sensors/"], &[]);
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
    // Each curl made one request on its connection, and each is counted once (the
    // blocked form was decided once, on head and body together).
    let counts: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "closed")
        .filter_map(|e| e["requests"].as_u64())
        .collect();
    assert_eq!(counts, [1, 1, 1, 1, 1], "{events:#?}");
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
