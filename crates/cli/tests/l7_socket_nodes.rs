//! The Redis socket path between nodes: the bundled example in a two-node lab whose
//! agents share a vouching key (`lab up --redis-socket-path` writes one). A client on one
//! node and redis-server on the other: the client's node decides every command at the
//! client's socket (FLUSHALL gets the program's refusal, whose wording is not the
//! proxy's) and vouches for the connection in its SYN; the server's node verifies it and
//! lets it past its proxy, which never sees the connection. IPv4 and IPv6.

mod common;

use std::time::{Duration, Instant};

use common::lab::{Lab, NOPERM, ask, hold, require, until_reply, without_get};

const LAB: &str = "l7socknodes";

#[test]
fn clients_on_other_nodes_are_decided_at_their_socket() {
    if !common::privileged("the socket path lab test between nodes") {
        return;
    }
    require(&["redis-server", "redis-cli"]);
    let _lock = common::lab_lock();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = common::lab::two_nodes(dir.path());
    // A copy of the example, so that the test can change its policy (below).
    let examples = common::lab::copy_examples();
    let lab = Lab::up_with(
        LAB,
        &[&format!("{}/", examples.path().display()), &spec],
        &[],
        &["--redis-socket-path"],
    );
    let server_node = lab.node_of("platform/redis-0");
    let client = ["platform/node-api-0", "platform/node-api-1"]
        .into_iter()
        .find(|c| lab.node_of(c) != server_node)
        .expect("a node-api workload on the other node");
    let (ip, ip6) = (lab.ipv4("platform/redis-0"), lab.ipv6("platform/redis-0"));
    lab.wait_for_redis(&ip);
    // Before: what the server node's proxy has seen (the readiness probe above).
    let proxy_of = |node: &str| -> u64 {
        lab.agent_statuses()
            .iter()
            .find(|s| s["node"] == node)
            .map_or(0, |s| s["proxy"]["connections"].as_u64().unwrap_or(0))
    };
    let proxy_before = proxy_of(&server_node);

    for addr in [&ip, &ip6] {
        let (_, set) = lab.run(client, &["redis-cli", "-h", addr, "SET", "k", "v"]);
        assert_eq!(set, "OK", "SET over {addr}");
        let (_, flush) = lab.run(client, &["redis-cli", "-h", addr, "FLUSHALL"]);
        let counters = || -> Vec<String> {
            lab.agent_statuses()
                .iter()
                .map(|s| format!("{}: {}", s["node"], s["socket_path"]))
                .collect()
        };
        assert_eq!(
            flush,
            NOPERM[1..].trim_end(),
            "FLUSHALL over {addr}: the program's refusal (the proxy's names the command); \
             the programs' counters: {:#?}",
            counters()
        );
        let (_, get) = lab.run(client, &["redis-cli", "-h", addr, "GET", "k"]);
        assert_eq!(get, "v", "FLUSHALL never ran");
    }

    // The client's node vouched for the six connections, the server's verified them,
    // and the server's proxy saw none of them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = lab.agent_statuses();
        let counter = |on_server: bool, key: &str| {
            st.iter()
                .find(|s| (s["node"] == server_node.as_str()) == on_server)
                .map_or(0, |s| s["socket_path"][key].as_u64().unwrap_or(0))
        };
        let (vouched, verified) = (counter(false, "vouched"), counter(true, "verified"));
        if vouched >= 6 && verified >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vouched {vouched}, verified {verified} (statuses: {st:#?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        proxy_of(&server_node),
        proxy_before,
        "the server node's proxy took connections the client's node had decided"
    );

    // A policy change cuts the live connections it makes the proxy's to read, but not
    // one the socket path decides: its conntrack entries carry the path's mark. (Without
    // it the server's node found the connection on its kernel path under a rule on
    // requests, cut it, and its proxy reset it.)
    let mut held = hold(LAB, &ip, client);
    assert_eq!(ask(&mut held, &["SET", "k", "v"]), Ok("+OK\r\n".into()));
    let policies = examples.path().join("policies.yaml");
    let text = std::fs::read_to_string(&policies).unwrap();
    // GET no longer allowed, and a port more (a change the kernel's rules see, so the
    // agents cut what it concerns).
    let mut edited = without_get(&text);
    edited.push_str(
        "---\napiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {name: one-port-more}\n\
         spec:\n  appliesTo: [{group: redis}]\n  ingress:\n    - action: Allow\n      \
         from: [{selector: app == \"node\"}]\n      ports: [TCP/16379]\n",
    );
    let cut_before = lab.connections_cut();
    std::fs::write(&policies, &edited).unwrap();
    until_reply(&mut held, &["GET", "k"], NOPERM.into(), "GET still allowed");
    // Both nodes reconciled (and cut) by now, or soon: the connection stays.
    let generations = || -> Vec<u64> {
        (lab.agent_statuses().iter())
            .map(|s| s["generation"].as_u64().unwrap_or(0))
            .collect()
    };
    let settled = generations();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(generations(), settled, "the agents went on changing");
    let cut_after = lab.connections_cut();
    assert_eq!(
        ask(&mut held, &["SET", "k", "w"]),
        Ok("+OK\r\n".into()),
        "the held socket-path connection was cut by the policy change (cuts: {cut_before} -> {cut_after})"
    );
}
