//! DNS query-name rules end to end: a real dnsmasq behind the agents' transparent proxy
//! (UDP by TPROXY, and TCP), real dig clients. The client may ask for names under
//! example.com only: those are answered by the server; any other name gets REFUSED from
//! the proxy over UDP and TCP, IPv4 and IPv6, and each refusal is an event.

mod common;

use common::lab::{Lab, require};

const LAB: &str = "l7dnstest";

/// dig from the client pod: (status, answer section).
fn dig(lab: &Lab, server: &str, name: &str, tcp: bool) -> (String, String) {
    let mut args = vec!["dig"];
    if tcp {
        args.push("+tcp");
    }
    let at = format!("@{server}");
    args.extend(["+time=2", "+tries=1", &at, name]);
    let o = lab.exec("apps/client-0", &args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string();
    let answer = text
        .lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n");
    (status, answer)
}

#[test]
fn dns_query_names_are_enforced_by_the_proxy() {
    if !common::privileged("the DNS lab test") {
        return;
    }
    require(&["dnsmasq", "dig", "tshark"]);
    let _lock = common::lab_lock();
    let lab = Lab::up(LAB, &["crates/cli/tests/fixtures/dns/"], &[]);
    let (v4, v6) = (lab.ipv4("infra/dns-0"), lab.ipv6("infra/dns-0"));
    for server in [&v4, &v6] {
        for tcp in [false, true] {
            let (st, answer) = dig(&lab, server, "api.example.com", tcp);
            assert_eq!(st, "NOERROR", "api.example.com via {server} tcp={tcp}");
            assert!(answer.contains("192.0.2.10"), "{answer}");
            let (st, answer) = dig(&lab, server, "evil.example.net", tcp);
            assert_eq!(st, "REFUSED", "evil.example.net via {server} tcp={tcp}");
            assert!(answer.is_empty(), "a refused query has no answer: {answer}");
        }
    }
    // Each allowed UDP query's flow (dig takes a socket per run) is a flow record, as
    // the kernel would have written had it not been diverted: the protocol read and
    // the rule that allowed it. (Before, only refused datagrams left a record.)
    let flows = common::lab::settled(&["flows", "--lab", LAB, "-o", "json"]);
    let opened: Vec<serde_json::Value> = String::from_utf8_lossy(&flows.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == "new" && r["protocol"] == "UDP" && r["dport"] == 53)
        .collect();
    assert_eq!(opened.len(), 2, "one per allowed UDP query:\n{opened:#?}");
    for r in &opened {
        assert!(
            r["verdict"] == "allow"
                && r["l7"]["protocol"] == "dns"
                && r["src"]["workload"] == "apps/client-0"
                && r["dst"]["workload"] == "infra/dns-0"
                && r["decided_by"]["rule"]["policy"] == "dns-from-client",
            "{r:#}"
        );
    }
    let events = lab.events();
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "request" && e["request"] == "dns evil.example.net")
        .collect();
    assert_eq!(
        refused.len(),
        4,
        "one event per refused query:\n{events:#?}"
    );
    assert!(refused.iter().all(|e| e["refusal"] == "REFUSED"
        && e["decision"]["allowed"] == false
        && e["decision"]["detail"]["src"]["workload"] == "apps/client-0"));
    // Each refusal has its evidence, over UDP as over TCP: tshark reads the query, and
    // for UDP (datagrams written as sent) the REFUSED answer too.
    for e in &refused {
        let pcap = e["pcap"]
            .as_str()
            .unwrap_or_else(|| panic!("no capture: {e}"));
        let text = common::lab::capture_text(pcap, &[]);
        assert!(
            text.contains("evil.example.net"),
            "tshark on {pcap}: {text}"
        );
        if pcap.contains("/udp-") {
            assert!(
                text.contains("response") && text.contains("Refused"),
                "tshark on {pcap}: {text}"
            );
        }
    }
}
