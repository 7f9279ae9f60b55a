//! Compressed bodies end to end: nginx with `gzip on` behind the agents' proxy, whose
//! group has a DLP sensor (Alert) and a SQL injection sensor (Block). curl asks for
//! `deflate, gzip, br, zstd`; the proxy offers the server only what it can read (gzip,
//! deflate), nginx answers gzip'd, and the card number in the JSON, invisible in the
//! compressed bytes, is an event, as is the one in a header nginx adds; curl still gets
//! the whole document. A form body
//! gzip'd by the client (`Content-Encoding: gzip`) carrying an injection gets 403, and
//! so does one padded past what the proxy holds (the sensor says `oversize: Block`).
//! (Before, a compressed answer hid every card number from DLP, and a compressed
//! request body every injection.)

mod common;

use common::lab::{Lab, require, sensor_findings};

const LAB: &str = "l7gztest";
const CLIENT: &str = "shop/client-0";

#[test]
fn compressed_bodies_are_inspected() {
    if !common::privileged("the compressed bodies lab test") {
        return;
    }
    require(&["curl", "nginx", "gzip"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/compressed/"], &[]);
    let ip = lab.ipv4("shop/web-0");
    let url = format!("http://{ip}:8080/card.json");
    // Headers and the (decompressed) document.
    let get = || {
        lab.run(
            CLIENT,
            &["curl", "-sS", "-m5", "-D", "-", "--compressed", &url],
        )
        .1
    };
    let start = std::time::Instant::now();
    let out = loop {
        let r = get();
        if r.contains("200 OK") || start.elapsed().as_secs() > 20 {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(
        out.to_ascii_lowercase().contains("content-encoding: gzip"),
        "nginx did not compress: {out}"
    );
    assert!(out.contains("\"card\": \"4111 1111 1111 1111\""), "{out}");

    // A gzip'd form body with an injection, and a clean one (nginx: 405 for a POST to a
    // file, which shows it reached the server).
    let post = |form: &str| {
        let script = format!(
            "printf '%s' \"$1\" | gzip -c | curl -sS -m5 -o /dev/null -w '%{{http_code}}' \
             -H 'Content-Encoding: gzip' -H 'Content-Type: application/x-www-form-urlencoded' \
             --data-binary @- {url}"
        );
        lab.run(CLIENT, &["/bin/sh", "-c", &script, "sh", form]).1
    };
    assert_eq!(post("user=alice"), "405");
    assert_eq!(post("user=1' UNION SELECT password FROM users--"), "403");
    // The sensor refuses what it cannot read whole (`oversize: Block`): an injection
    // behind 100 kB of padding is not let through on the strength of its first 64 KiB.
    let padded = format!(
        "(printf 'pad='; head -c 100000 /dev/zero | tr '\\0' a; printf '&user=1%%27%%20OR%%201=1--') \
         | curl -sS -m5 -o /dev/null -w '%{{http_code}}' --data-binary @- {url}"
    );
    assert_eq!(lab.run(CLIENT, &["/bin/sh", "-c", &padded]).1, "403");

    // The events: the card in the gzip'd answer (Alert), the injection (Block).
    let found = sensor_findings(
        &lab.events_until(|e| sensor_findings(e, None).len() >= 4),
        None,
    );
    assert!(
        found.contains(&("credit_card".into(), "response body".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("sqli".into(), "body:form:user".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("oversize".into(), "body".into())),
        "{found:?}"
    );
    // The response's head goes through DLP too (nginx adds a header that leaks a card).
    assert!(
        found.contains(&("credit_card".into(), "response header:x-last-card".into())),
        "{found:?}"
    );

    // The same over HTTP/2 (h2c): nginx's header block is HPACK-coded (the header's
    // value Huffman-coded, not in the bytes) and its body gzip'd; the proxy decodes the
    // one and inflates the other, and curl gets both intact.
    let h2 = format!(
        "curl -sS -m5 --http2-prior-knowledge -D - -o /tmp/bh-h2-card.gz {};          gzip -dc /tmp/bh-h2-card.gz; rm -f /tmp/bh-h2-card.gz",
        url.replace(":8080", ":8081")
    );
    let out = lab.run(CLIENT, &["/bin/sh", "-c", &h2]).1;
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.contains("content-encoding: gzip"), "{out}");
    assert!(out.contains("\"card\": \"4111 1111 1111 1111\""), "{out}");
    let h2 = |events: &[serde_json::Value]| {
        let h2: Vec<serde_json::Value> = (events.iter())
            .filter(|e| e["server"].as_str().is_some_and(|s| s.ends_with(":8081")))
            .cloned()
            .collect();
        sensor_findings(&h2, None)
    };
    let found = h2(&lab.events_until(|e| h2(e).len() >= 2));
    for location in ["response body", "response header:x-last-card"] {
        assert!(
            found.contains(&("credit_card".into(), location.into())),
            "HTTP/2 {location}: {found:?}"
        );
    }
}
