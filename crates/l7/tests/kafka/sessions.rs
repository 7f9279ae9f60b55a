//! Fetch sessions (v7+): an idle consumer's incremental fetch names no topic but reads
//! every partition of its session; the proxy follows the sessions the broker opens on
//! the connection and decides such a fetch on the session's topics.

use super::*;
use kafka_protocol::messages::FetchResponse;

/// Topics under `orders` only: a fetch deciding no topic is denied.
fn strict(r: &L7Request) -> Verdict {
    let L7Detail::Kafka { topic, .. } = &r.detail else {
        panic!("{r:?}")
    };
    Verdict {
        allowed: topic.as_deref().is_some_and(|t| t.starts_with("orders")),
    }
}

/// The broker's answer to a fetch: the session it opened (or kept), with an error.
fn answer(v: i16, session: i32, error: i16) -> Vec<u8> {
    let r = FetchResponse::default()
        .with_session_id(session)
        .with_error_code(error)
        .with_throttle_time_ms(5);
    response(ApiKey::Fetch, v, 3, &r)
}

#[test]
fn an_incremental_fetch_is_decided_on_its_sessions_topics() {
    for v in [7, 11, 12] {
        let mut sess = KafkaSession::new();
        let mut out = sess.client_bytes(
            &fetch_in(v, (0, 0), &["orders", "orders.eu"], &[]),
            &mut strict,
        );
        // Before the broker's answer the session is not known: decided on nothing.
        out.merge(sess.client_bytes(&fetch_in(v, (77, 1), &[], &[]), &mut strict));
        for p in pieces(&answer(v, 77, 0), &[3; 100]) {
            out.merge(sess.server_bytes(&p));
        }
        assert_eq!(
            decided(&out),
            [
                ("kafka fetch orders".to_string(), true),
                ("kafka fetch orders.eu".to_string(), true),
                ("kafka fetch".to_string(), false),
            ],
            "v{v}"
        );
        // The refusal follows the broker's answer to the first fetch.
        assert!(!out.close);
        assert_eq!(out.to_client[..answer(v, 77, 0).len()], answer(v, 77, 0));
        let (_, r): (_, FetchResponse) =
            decode(ApiKey::Fetch, v, &out.to_client[answer(v, 77, 0).len()..]);
        assert_eq!((r.error_code, r.session_id), (29, 0), "v{v}");
        // The proxy's answer closed that session for the client: it opens a new one.
        sess.client_bytes(
            &fetch_in(v, (77, 0), &["orders", "orders.eu"], &[]),
            &mut strict,
        );
        sess.server_bytes(&answer(v, 77, 0));
        // Now idle: the session's topics decide it, and it passes.
        let idle = fetch_in(v, (77, 1), &[], &[]);
        let out = sess.client_bytes(&idle, &mut strict);
        assert_eq!(out.to_server, idle, "v{v}");
        assert_eq!(
            decided(&out),
            [
                ("kafka fetch orders".to_string(), true),
                ("kafka fetch orders.eu".to_string(), true)
            ],
            "v{v}"
        );
        sess.server_bytes(&answer(v, 77, 0));
        // Forgetting orders.eu leaves orders; adding payroll to it is a mixed request.
        let out = sess.client_bytes(&fetch_in(v, (77, 2), &[], &["orders.eu"]), &mut strict);
        assert_eq!(
            decided(&out),
            [
                ("kafka fetch orders.eu".to_string(), true),
                ("kafka fetch orders".to_string(), true)
            ],
            "v{v}"
        );
        sess.server_bytes(&answer(v, 77, 0));
        let out = sess.client_bytes(&fetch_in(v, (77, 3), &[], &[]), &mut strict);
        assert_eq!(
            decided(&out),
            [("kafka fetch orders".to_string(), true)],
            "v{v}"
        );
        sess.server_bytes(&answer(v, 77, 0));
        let out = sess.client_bytes(&fetch_in(v, (77, 4), &["payroll"], &[]), &mut strict);
        assert!(out.close && out.to_server.is_empty(), "v{v}");
    }
}

#[test]
fn only_a_session_the_broker_opened_here_is_followed() {
    let v = 12;
    // A session from another connection, one the broker refused to open (error), and
    // one closed by a sessionless fetch (epoch -1) are not followed: an idle fetch in
    // them decides no topic, and is answered as a whole (error 29, session 0).
    for (open, error, then) in [
        (None, 0, None),
        (Some(55), 70, None),
        (Some(55), 0, Some(-1)),
    ] {
        let mut sess = KafkaSession::new();
        if let Some(id) = open {
            sess.client_bytes(&fetch_in(v, (0, 0), &["orders"], &[]), &mut strict);
            sess.server_bytes(&answer(v, id, error));
        }
        if let Some(epoch) = then {
            sess.client_bytes(&fetch_in(v, (55, epoch), &["orders"], &[]), &mut strict);
            sess.server_bytes(&answer(v, 0, 0));
        }
        let out = sess.client_bytes(&fetch_in(v, (55, 1), &[], &[]), &mut strict);
        assert_eq!(decided(&out), [("kafka fetch".to_string(), false)]);
        assert!(!out.close && out.to_server.is_empty());
        let (_, r): (_, FetchResponse) = decode(ApiKey::Fetch, v, &out.to_client);
        assert_eq!((r.error_code, r.session_id), (29, 0));
    }
}

proptest! {
    /// Whatever the broker answers a full fetch with, cut anywhere, the idle fetch after
    /// it is decided the same, and nothing panics.
    #[test]
    fn any_answer_to_a_full_fetch_is_read_safely(
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        at in 0usize..80,
        cut in 1usize..20,
    ) {
        let mut answered = answer(12, 77, 0);
        let at = at.min(answered.len());
        answered.truncate(at);
        answered.extend_from_slice(&junk);
        let run = |cuts: &[usize]| {
            let mut sess = KafkaSession::new();
            let mut out = sess.client_bytes(&fetch_in(12, (0, 0), &["orders"], &[]), &mut strict);
            for p in pieces(&answered, cuts) {
                out.merge(sess.server_bytes(&p));
            }
            out.merge(sess.client_bytes(&fetch_in(12, (77, 1), &[], &[]), &mut strict));
            out
        };
        let whole = run(&[]);
        let split = run(&[cut; 300]);
        prop_assert_eq!(&whole.decided, &split.decided);
        prop_assert_eq!(&whole.to_client, &split.to_client);
    }
}
