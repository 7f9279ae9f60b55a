//! What the divert chain takes to the L7 proxy. UDP only for rules whose protocol can
//! be a datagram (DNS, memcached, connectionless LDAP): a rule on HTTP can never match
//! one, and the filter chains decide UDP past it as the proxy would, without the
//! detour. And every rule whose requests decide, whatever its action.

use bulkhead_dataplane::{KernelIds, RenderOptions, render};
use bulkhead_manifest::{Source, parse_sources};
use bulkhead_policy::Engine;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: shop, labels: {app: server}}
spec: {nodeName: n1}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: server}
spec: {selector: app == "server", mode: Protect}
"#;

/// The divert chain's TPROXY rules for an ingress rule of the server, as JSON text.
fn tproxy_rules(rule: &str) -> Vec<String> {
    rules_of("Allow", rule)
}

/// The same for a rule with `action` (and what follows it: `rest`, more rules too).
fn rules_of(action: &str, rest: &str) -> Vec<String> {
    let text = format!(
        "{CLUSTER}---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {{name: p}}
spec:
  appliesTo: [{{group: server}}]
  ingress:
    - action: {action}
      from: [{{selector: app == \"client\"}}]
{rest}
"
    );
    (divert_chain(text).into_iter())
        .filter(|s| s.contains("tproxy"))
        .collect()
}

/// Node n1's divert chain for these documents, a rule per line of JSON text.
fn divert_chain(text: String) -> Vec<String> {
    let bundle = parse_sources(&[Source {
        name: "t.yaml".into(),
        text,
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(&bundle).unwrap();
    let opts = RenderOptions {
        node: Some("n1".into()),
        l7_proxy: Some(15001),
        ..Default::default()
    };
    let r = render(&engine, &opts, &mut KernelIds::new());
    r.chains["divert"]
        .rules
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect()
}

/// The rules that match UDP (`meta l4proto 17`).
fn udp(rules: &[String]) -> usize {
    let udp = r#"{"meta":{"key":"l4proto"}},"right":17"#;
    rules.iter().filter(|r| r.contains(udp)).count()
}

#[test]
fn udp_is_diverted_only_for_protocols_that_travel_in_datagrams() {
    // HTTP on any port: TCP only.
    let http = tproxy_rules("      app: http");
    assert!(!http.is_empty() && udp(&http) == 0, "{http:#?}");
    // memcached and DNS on UDP ports, LDAP on any port: UDP too.
    for rule in [
        "      ports: [UDP/11211]\n      app: memcached",
        "      ports: [UDP/53, TCP/53]\n      app: dns\n      dns: [\"*.example.com\"]",
        "      app: ldap",
    ] {
        let rules = tproxy_rules(rule);
        assert!(udp(&rules) > 0, "{rule}: {rules:#?}");
    }
}

#[test]
fn udp_to_a_group_with_sensors_is_diverted_whatever_the_rule() {
    // An L4 rule: the kernel would decide it, but the server's sensors read every
    // datagram sent to it (as every TCP connection), so explain's "inspected by
    // sensor" holds for UDP too.
    let sensor = "---
apiVersion: bulkhead.io/v1
kind: Sensor
metadata: {name: card-data}
spec: {action: Block, detect: [credit-card]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: watched}
spec: {selector: app == \"server\", mode: Protect, sensors: [card-data]}
";
    let rules = tproxy_rules(&format!("      ports: [UDP/514]\n{sensor}"));
    // Without the sensor no UDP is diverted (only the Discover client's TCP, to learn).
    let without = tproxy_rules("      ports: [UDP/514]");
    assert_eq!(udp(&without), 0, "{without:#?}");
    // With it, one rule per family and protocol.
    assert_eq!(udp(&rules), 2, "{rules:#?}");
    assert_eq!(rules.len(), without.len() + 4, "{rules:#?}");
}

#[test]
fn a_group_that_inspects_egress_diverts_what_its_members_send() {
    let sensor = |inspect: &str| {
        format!(
            "---
apiVersion: bulkhead.io/v1
kind: Sensor
metadata: {{name: card-data}}
spec: {{action: Block, detect: [credit-card]}}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {{name: senders}}
spec: {{selector: app == \"client\", mode: Protect, sensors: [card-data]{inspect}}}
"
        )
    };
    let rules =
        |inspect: &str| tproxy_rules(&format!("      ports: [UDP/514]\n{}", sensor(inspect)));
    // By default a group's sensors read connections to its members: nothing the
    // client sends is diverted for them. With Egress, what it sends (TCP and UDP, both
    // families); with both, the two sets of rules.
    let ingress = rules("");
    let egress = rules(", inspect: [Egress]");
    let both = rules(", inspect: [Ingress, Egress]");
    // Egress: rules matching the members as sources (`meta mark`, the egress id).
    let by_source = |r: &[String]| {
        r.iter()
            .filter(|x| x.contains(r#"{"meta":{"key":"mark"}},262143]},"right":"@s_"#))
            .count()
    };
    assert_eq!(by_source(&ingress), 0, "{ingress:#?}");
    assert_eq!(by_source(&egress), 4, "{egress:#?}");
    assert_eq!(both.len(), ingress.len() + 4, "{both:#?}");
    assert_eq!(udp(&egress), 2, "{egress:#?}");
}

/// A Discover server's protocol learning leaves to the client's node the connections
/// that node takes for the client's egress sensors (one proxy, not two), as a Discover
/// client's learning leaves to the server's node those it takes for its own.
#[test]
fn learning_leaves_to_the_clients_node_what_its_egress_sensors_take() {
    let text = |inspect: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: shop, labels: {{app: client}}}}
spec: {{nodeName: n2}}
status: {{podIPs: [{{ip: 10.0.0.1}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: shop, labels: {{app: server}}}}
spec: {{nodeName: n1}}
status: {{podIPs: [{{ip: 10.0.0.2}}]}}
---
apiVersion: bulkhead.io/v1
kind: Sensor
metadata: {{name: card-data}}
spec: {{detect: [credit-card]}}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {{name: senders}}
spec: {{selector: app == "client", sensors: [card-data]{inspect}}}
"#
        )
    };
    // The server's node (n1): its Discover server learns from remote clients.
    let divert = |inspect: &str| divert_chain(text(inspect));
    // Rules that leave a connection from the client's set (its source mark) to
    // another node: mark 0, accept, no tproxy.
    let by_source = r#"{"meta":{"key":"mark"}},262143]},"right":"@s_"#;
    let leave = |r: &&String| {
        r.contains(r#"{"accept":null}"#) && r.contains(by_source) && !r.contains("tproxy")
    };
    assert_eq!(divert("").iter().filter(leave).count(), 0);
    let with = divert(", inspect: [Egress]");
    assert_eq!(with.iter().filter(leave).count(), 2, "{with:#?}");
    // Before the learning rules that would take them (by signature, not by set).
    let first_learning = (with.iter())
        .position(|r| r.contains("tproxy") && !r.contains(r#""right":"@s_"#))
        .unwrap();
    let last_leave = with.iter().rposition(|r| leave(&r)).unwrap();
    assert!(last_leave < first_learning, "{with:#?}");
}

/// A rule on requests decides whatever its action: a Deny of DELETE requests before an
/// Allow of the port (or a Pass, or a Log) must see the requests, so its connections go
/// to the proxy. (Before, only gated Allows were diverted: the kernel took the Allow,
/// and `DELETE` reached the server while `explain` said denied.)
#[test]
fn rules_on_requests_are_diverted_whatever_their_action() {
    for action in ["Deny", "Pass", "Log", "Allow"] {
        let rules = rules_of(
            action,
            "      ports: [TCP/8080]
      app: http
      http: [{methods: [DELETE]}]
    - action: Allow
      from: [{selector: app == \"client\"}]
      ports: [TCP/8080]",
        );
        let port = r#""field":"dport"}},"right":8080"#;
        assert!(
            rules.iter().any(|r| r.contains(port)),
            "{action}: {rules:#?}"
        );
    }
}
