//! MQTT sessions on 3.1.1 and 5.0 byte sequences (built, and captured from mosquitto):
//! publishes decided on the topic, subscriptions on every filter, refusals written by the
//! proxy between server packets, large payloads streamed, and the same result however
//! both streams are split.

mod common;
#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{MqttSession, Output, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request, mqtt_covers};
use common::pieces;
use proptest::prelude::*;

/// Publish under sensors/#, subscribe to sensors/+/temp.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Mqtt { action, topic } = &r.detail else {
        panic!("{r:?}")
    };
    let filter = match action.as_str() {
        "publish" => "sensors/#",
        _ => "sensors/+/temp",
    };
    Verdict {
        allowed: mqtt_covers(filter, topic),
    }
}

fn pkt(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let c = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { c | 0x80 } else { c });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn s(text: &str) -> Vec<u8> {
    let mut v = (text.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(text.as_bytes());
    v
}

/// CONNECT as mosquitto clients send it (clean session, keepalive 60, client id "c").
fn connect(v5: bool) -> Vec<u8> {
    let mut b = [s("MQTT"), vec![if v5 { 5 } else { 4 }, 0x02, 0, 60]].concat();
    if v5 {
        b.push(0); // no properties
    }
    b.extend(s("c"));
    pkt(0x10, &b)
}

fn publish(v5: bool, qos: u8, pid: u16, topic: &str, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut b = s(topic);
    if qos > 0 {
        b.extend(pid.to_be_bytes());
    }
    if v5 {
        b.push(props.len() as u8);
        b.extend_from_slice(props);
    }
    b.extend_from_slice(payload);
    pkt(0x30 | (qos << 1), &b)
}

fn subscribe(v5: bool, pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    if v5 {
        b.push(0);
    }
    for f in filters {
        b.extend(s(f));
        b.push(1);
    }
    pkt(0x82, &b)
}

/// Feed all of `client`, then all of `server`, cut into pieces of the given sizes.
fn run(client: &[u8], server: &[u8], cc: &[usize], sc: &[usize]) -> Output {
    let mut sess = MqttSession::new();
    let mut all = Output::default();
    for p in pieces(client, cc) {
        all.merge(sess.client_bytes(&p, &mut policy));
    }
    for p in pieces(server, sc) {
        all.merge(sess.server_bytes(&p));
    }
    all
}

fn decided(out: &Output) -> Vec<(String, bool, Option<String>)> {
    out.decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed, d.refusal.clone()))
        .collect()
}

#[test]
fn v311_allowed_publish_passes_and_denied_ones_get_the_3_1_1_answers() {
    let ok = publish(false, 1, 7, "sensors/a/temp", &[], b"21.5");
    let q0 = publish(false, 0, 0, "admin/reset", &[], b"now");
    let q1 = publish(false, 1, 8, "admin/reset", &[], b"now");
    let client = [connect(false), ok.clone(), q0, q1, vec![0xc0, 0]].concat();
    let out = run(&client, &[], &[], &[]);
    assert_eq!(out.to_server, [connect(false), ok, vec![0xc0, 0]].concat());
    assert_eq!(
        out.to_client,
        [0x40, 2, 0, 8],
        "a positive PUBACK, as brokers do"
    );
    assert!(!out.close);
    let d = decided(&out);
    assert_eq!(d[0], ("mqtt publish sensors/a/temp".into(), true, None));
    assert_eq!(d[1].2.as_deref(), Some("dropped (QoS 0)"));
    assert!(!d[2].1 && d[2].2.as_deref().unwrap().starts_with("PUBACK"));

    let q2 = publish(false, 2, 9, "admin/reset", &[], b"now");
    let out = run(&[connect(false), q2, vec![0xc0, 0]].concat(), &[], &[], &[]);
    assert_eq!(out.to_server, connect(false));
    assert!(out.close && out.to_client.is_empty());
}

#[test]
fn v5_denied_publishes_get_not_authorized() {
    let q1 = publish(true, 1, 3, "admin/reset", &[], b"x");
    let q2 = publish(true, 2, 4, "admin/reset", &[], b"x");
    let ok = publish(true, 2, 5, "sensors/b", &[0x01, 1], b"payload");
    let client = [connect(true), q1, q2, ok.clone()].concat();
    let out = run(&client, &[], &[], &[]);
    assert_eq!(out.to_server, [connect(true), ok].concat());
    assert_eq!(out.to_client, [0x40, 3, 0, 3, 0x87, 0x50, 3, 0, 4, 0x87]);
    assert!(!out.close);
    let refusals: Vec<_> = decided(&out).into_iter().map(|d| d.2).collect();
    assert_eq!(
        refusals,
        [
            Some("PUBACK 0x87 not authorized".into()),
            Some("PUBREC 0x87 not authorized".into()),
            None
        ]
    );
}

#[test]
fn a_subscribe_with_a_denied_filter_is_answered_by_the_proxy_with_failures() {
    for v5 in [false, true] {
        let good = subscribe(v5, 1, &["sensors/+/temp", "sensors/k/temp"]);
        let bad = subscribe(v5, 2, &["sensors/+/temp", "admin/#"]);
        let client = [connect(v5), good.clone(), bad].concat();
        let out = run(&client, &[], &[], &[]);
        assert_eq!(out.to_server, [connect(v5), good].concat());
        let want = if v5 {
            vec![0x90, 5, 0, 2, 0, 0x87, 0x87]
        } else {
            vec![0x90, 4, 0, 2, 0x80, 0x80]
        };
        assert_eq!(out.to_client, want);
        let d = decided(&out);
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[3],
            (
                "mqtt subscribe admin/#".into(),
                false,
                Some("SUBACK failure".into())
            )
        );
        assert!(
            d[2].1 && d[2].2.is_some(),
            "refused with its packet: {:?}",
            d[2]
        );
    }
}

#[test]
fn answers_wait_for_the_end_of_the_server_packet_being_relayed() {
    let mut sess = MqttSession::new();
    let server_pub = publish(false, 0, 0, "sensors/a/temp", &[], &[7; 300]);
    let client = [connect(false), publish(false, 1, 9, "admin/x", &[], b"")].concat();
    let mut out = sess.server_bytes(&server_pub[..100]);
    out.merge(sess.client_bytes(&client, &mut policy));
    assert_eq!(
        out.to_client,
        server_pub[..100],
        "nothing inside a server packet"
    );
    out.merge(sess.server_bytes(&server_pub[100..]));
    out.merge(sess.server_bytes(&[0xd0, 0]));
    assert_eq!(
        out.to_client,
        [server_pub, vec![0x40, 2, 0, 9, 0xd0, 0]].concat()
    );
}

#[test]
fn large_payloads_stream_and_a_denied_one_is_skipped_whole() {
    let big = vec![b'x'; 3 << 20];
    let ok = publish(true, 0, 0, "sensors/blob", &[], &big);
    let denied = publish(true, 1, 2, "admin/blob", &[], &big);
    let client = [connect(true), denied, ok.clone(), vec![0xe0, 0]].concat();
    let out = run(&client, &[], &[4096; 2000], &[]);
    assert_eq!(out.to_server, [connect(true), ok, vec![0xe0, 0]].concat());
    assert_eq!(out.to_client, [0x40, 3, 0, 2, 0x87]);
}

#[test]
fn v5_topic_aliases_are_resolved_and_only_learned_from_forwarded_publishes() {
    let set = publish(true, 0, 0, "sensors/a", &[0x23, 0, 1], b"1");
    let use_ = publish(true, 0, 0, "", &[0x23, 0, 1], b"2");
    let denied_set = publish(true, 0, 0, "admin/x", &[0x23, 0, 2], b"3");
    let client = [connect(true), set.clone(), use_.clone(), denied_set].concat();
    let out = run(&client, &[], &[], &[]);
    assert_eq!(out.to_server, [connect(true), set.clone(), use_].concat());
    let d = decided(&out);
    assert_eq!(d[1], ("mqtt publish sensors/a".into(), true, None));
    assert!(!d[2].1);
    // Alias 2 never reached the broker: a publish by it cannot be decided.
    let client = [client, publish(true, 0, 0, "", &[0x23, 0, 2], b"4")].concat();
    assert!(run(&client, &[], &[], &[]).close);
}

#[test]
fn malformed_packets_close() {
    let five_byte_length = [0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert!(run(&five_byte_length, &[], &[], &[]).close);
    let topic_past_end = [0x30, 3, 0, 9, b'a'];
    let out = run(
        &[connect(false), topic_past_end.to_vec()].concat(),
        &[],
        &[],
        &[],
    );
    assert!(out.close && out.to_server == connect(false));
    let qos3 = publish(false, 3, 1, "sensors/a", &[], b"");
    assert!(run(&qos3, &[], &[], &[]).close);
    // A broker whose packets cannot be framed leaves the proxy's answers nowhere to go.
    let broken_server = [0x20, 2, 0, 0, 0x30, 0xff, 0xff, 0xff, 0xff, 1];
    assert!(run(&connect(false), &broken_server, &[], &[3]).close);
}

fn conversation() -> (Vec<u8>, Vec<u8>) {
    let client = [
        connect(true),
        publish(
            true,
            1,
            1,
            "sensors/a/temp",
            &[0x26, 0, 1, b'k', 0, 1, b'v'],
            &[1; 200],
        ),
        publish(true, 1, 2, "admin/reset", &[], b"x"),
        subscribe(true, 3, &["sensors/+/temp", "admin/#"]),
        subscribe(true, 4, &["sensors/+/temp"]),
        publish(true, 2, 5, "admin/reset", &[], &[2; 300]),
        vec![0xc0, 0, 0xe0, 0],
    ]
    .concat();
    let server = [
        pkt(0x20, &[0, 0, 0]),
        pkt(0x40, &[0, 1]),
        publish(true, 0, 0, "sensors/a/temp", &[], &[3; 400]),
        pkt(0x90, &[0, 4, 0, 1]),
        vec![0xd0, 0],
    ]
    .concat();
    (client, server)
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(
        cc in proptest::collection::vec(1usize..64, 0..80),
        sc in proptest::collection::vec(1usize..64, 0..40),
    ) {
        let (client, server) = conversation();
        let whole = run(&client, &server, &[], &[]);
        let cut = run(&client, &server, &cc, &sc);
        prop_assert_eq!(&cut.to_server, &whole.to_server);
        prop_assert_eq!(&cut.to_client, &whole.to_client);
        prop_assert_eq!(decided(&cut), decided(&whole));
        prop_assert!(!whole.close);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        c in proptest::collection::vec(any::<u8>(), 0..2048),
        sv in proptest::collection::vec(any::<u8>(), 0..2048),
        cut in 1usize..100,
        v5: bool,
    ) {
        let _ = run(&[connect(v5), c].concat(), &sv, &[cut; 100], &[cut; 100]);
    }

    #[test]
    fn a_corrupted_conversation_never_panics(i in 0usize..2000, v: u8, cut in 1usize..64) {
        let (mut client, mut server) = conversation();
        if i < client.len() { client[i] = v; }
        if i < server.len() { server[i] = v; }
        let _ = run(&client, &server, &[cut; 200], &[cut; 200]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(
        edits in edit::edits(),
        cc in proptest::collection::vec(1usize..64, 0..80),
        sc in proptest::collection::vec(1usize..64, 0..40),
    ) {
        let (mut client, mut server) = conversation();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cc, &sc);
    }
}

/// Split a stream into whole packets; None if it does not frame exactly.
fn frame(mut b: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    while !b.is_empty() {
        let (mut rem, mut k) = (0usize, 1);
        loop {
            let c = *b.get(k)?;
            rem |= usize::from(c & 0x7f) << (7 * (k - 1));
            k += 1;
            if c & 0x80 == 0 {
                break;
            }
        }
        packets.push(b.get(..k + rem)?.to_vec());
        b = &b[k + rem..];
    }
    Some(packets)
}

proptest! {
    /// Client and server bytes interleaved at random: the proxy's answers still land
    /// between whole server packets, and the server's packets reach the client in order.
    #[test]
    fn answers_land_between_server_packets_however_the_sides_interleave(
        steps in proptest::collection::vec((any::<bool>(), 1usize..48), 0..120),
    ) {
        let (client, server) = conversation();
        let whole = run(&client, &server, &[], &[]);
        let mut sess = MqttSession::new();
        let mut out = Output::default();
        let (mut c, mut s) = (0, 0);
        let mut steps = steps.into_iter();
        while c < client.len() || s < server.len() {
            let (to_client_side, n) = steps.next().unwrap_or((c < client.len(), usize::MAX));
            if to_client_side && c < client.len() {
                let n = n.min(client.len() - c);
                out.merge(sess.client_bytes(&client[c..c + n], &mut policy));
                c += n;
            } else if s < server.len() {
                let n = n.min(server.len() - s);
                out.merge(sess.server_bytes(&server[s..s + n]));
                s += n;
            }
        }
        prop_assert_eq!(&out.to_server, &whole.to_server);
        prop_assert_eq!(decided(&out), decided(&whole));
        let got = frame(&out.to_client).expect("the client's stream frames");
        let mut answers = frame(&whole.to_client).unwrap();
        let from_server = frame(&server).unwrap();
        for p in &from_server {
            let i = answers.iter().position(|a| a == p).unwrap();
            answers.remove(i);
        }
        // Without the proxy's answers, what the client got is the server's packets.
        let mut rest = got.clone();
        for a in &answers {
            let i = rest.iter().rposition(|p| p == a);
            prop_assert!(i.is_some(), "answer {:?} missing from {:?}", a, got);
            rest.remove(i.unwrap_or_default());
        }
        prop_assert_eq!(rest, from_server);
    }
}

/// Conversations captured between mosquitto 2.0.11 clients and broker (both directions).
fn captured(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mqtt/");
    let read = |side: &str| std::fs::read(format!("{dir}{name}.{side}")).expect("fixture");
    (read("client"), read("server"))
}

#[test]
fn captured_conversations_the_policy_allows_pass_byte_for_byte() {
    // mosquitto_pub -V 5 -q 2 with a user property: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    let (client, server) = captured("pub5");
    for cut in [1, 3, 1000] {
        let out = run(&client, &server, &[cut; 100], &[cut; 100]);
        assert_eq!((&out.to_server, &out.to_client), (&client, &server));
        assert_eq!(
            decided(&out),
            [("mqtt publish sensors/a/temp".into(), true, None)]
        );
    }
}

#[test]
fn captured_conversations_the_policy_denies_get_the_proxys_answers() {
    // Only the broker's CONNACK: what follows it answered what the proxy now refuses.
    let connack = |server: &[u8]| server[..usize::from(server[1]) + 2].to_vec();
    let disconnect_at = |client: &[u8]| client.iter().rposition(|&b| b == 0xe0).unwrap();
    for (name, answer) in [
        ("pub311", vec![0x40, 2, 0, 1]),
        ("sub311", vec![0x90, 4, 0, 1, 0x80, 0x80]),
        ("sub5", vec![0x90, 5, 0, 1, 0, 0x87, 0x87]),
    ] {
        let (client, server) = captured(name);
        let mut sess = MqttSession::new();
        let mut out = sess.server_bytes(&connack(&server));
        for c in client.chunks(5) {
            out.merge(sess.client_bytes(c, &mut policy));
        }
        let connect_len = usize::from(client[1]) + 2;
        let expect_server = [&client[..connect_len], &client[disconnect_at(&client)..]].concat();
        assert_eq!(out.to_server, expect_server, "{name}");
        assert_eq!(out.to_client, [connack(&server), answer].concat(), "{name}");
        assert!(!out.close, "{name}");
    }
}

/// CONNECT with a will: `topic` and a payload, QoS 1, retained (client id "c").
fn connect_with_will(v5: bool, topic: &str) -> Vec<u8> {
    let flags = 0x02 | 0x04 | 0x08 | 0x20;
    let mut b = [s("MQTT"), vec![if v5 { 5 } else { 4 }, flags, 0, 60]].concat();
    if v5 {
        b.push(0); // no properties
    }
    b.extend(s("c"));
    if v5 {
        // Will properties (5 bytes): a will delay interval of 5 s.
        b.extend([5, 0x18, 0, 0, 0, 5]);
    }
    b.extend(s(topic));
    b.extend(s("goodbye"));
    pkt(0x10, &b)
}

/// A will is a message the broker publishes for the client once it goes away, to the
/// topic its CONNECT names: it is decided as a publish there. Refused: CONNACK "not
/// authorized" and the connection closes before the broker has it. (Before, a CONNECT
/// was forwarded unread past its protocol level: mosquitto published a will to any
/// topic.)
#[test]
fn a_wills_topic_is_decided_as_a_publish() {
    for v5 in [false, true] {
        for cuts in [&[][..], &[3, 9, 14, 20, 21]] {
            let denied = connect_with_will(v5, "secret/cmd");
            let out = run(&denied, b"", cuts, &[]);
            assert!(out.to_server.is_empty(), "v5 {v5}");
            let connack = if v5 {
                vec![0x20, 3, 0, 0x87, 0]
            } else {
                vec![0x20, 2, 0, 5]
            };
            assert_eq!(out.to_client, connack, "v5 {v5}");
            assert!(out.close);
            assert_eq!(
                decided(&out)[0].0,
                "mqtt publish secret/cmd",
                "v5 {v5}: {:?}",
                decided(&out)
            );
            assert!(!decided(&out)[0].1);
            let allowed = connect_with_will(v5, "sensors/c/status");
            let out = run(&allowed, b"", cuts, &[]);
            assert_eq!(out.to_server, allowed, "v5 {v5}");
            assert!(!out.close && out.decided[0].allowed);
        }
        // Without a will, nothing to decide.
        let out = run(&connect(v5), b"", &[], &[]);
        assert_eq!(out.to_server, connect(v5));
        assert!(out.decided.is_empty());
    }
}

/// A shared subscription (`$share/GROUP/FILTER`) receives what FILTER matches, so it is
/// decided on FILTER: `$share/g/admin/#` is refused where `admin/#` is, and
/// `$share/g/sensors/+/temp` allowed where `sensors/+/temp` is. (Before, the prefix made
/// it another filter: past a rule that denies `admin/#`, and refused by one that allows
/// `sensors/+/temp`.)
#[test]
fn shared_subscriptions_are_decided_on_their_filter() {
    for v5 in [false, true] {
        let denied = [connect(v5), subscribe(v5, 3, &["$share/g/admin/#"])].concat();
        let out = run(&denied, b"", &[], &[]);
        assert_eq!(out.to_server, connect(v5), "v5 {v5}");
        assert_eq!(decided(&out)[0].0, "mqtt subscribe admin/#");
        assert!(!decided(&out)[0].1);
        let ok = [connect(v5), subscribe(v5, 4, &["$share/g/sensors/+/temp"])].concat();
        let out = run(&ok, b"", &[], &[]);
        assert_eq!(out.to_server, ok, "v5 {v5}");
        assert!(decided(&out)[0].1);
    }
}
