//! Redis sessions: decisions per command, refusals in order, bytes of allowed commands
//! unchanged, the same result however the stream is split.

mod common;
#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{Output, RedisSession, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request};
use proptest::prelude::*;

fn allow_all_but_flush(r: &L7Request) -> Verdict {
    let L7Detail::Redis { command } = &r.detail else {
        panic!("{r:?}")
    };
    Verdict {
        allowed: !command.starts_with("FLUSH"),
    }
}

fn cmd(words: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        v.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    v
}

/// Feed the client stream, then the server stream, in the given piece sizes.
fn run(client: &[u8], server: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>, Vec<(String, bool)>) {
    let mut s = RedisSession::new();
    let mut all = Output::default();
    let feed = |data: &[u8], from_client: bool, s: &mut RedisSession, all: &mut Output| {
        let mut at = 0;
        let mut k = 0;
        while at < data.len() {
            let n = cuts
                .get(k)
                .copied()
                .unwrap_or(data.len())
                .max(1)
                .min(data.len() - at);
            k += 1;
            let out = if from_client {
                s.client_bytes(&data[at..at + n], &mut allow_all_but_flush)
            } else {
                s.server_bytes(&data[at..at + n])
            };
            all.merge(out);
            at += n;
        }
    };
    feed(client, true, &mut s, &mut all);
    feed(server, false, &mut s, &mut all);
    let decided = all
        .decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed))
        .collect();
    (all.to_server, all.to_client, decided)
}

#[test]
fn denied_command_is_refused_in_order_and_never_forwarded() {
    let client = [
        cmd(&["SET", "k", "v"]),
        cmd(&["FLUSHALL"]),
        cmd(&["GET", "k"]),
    ]
    .concat();
    let server = b"+OK\r\n$1\r\nv\r\n";
    let (to_server, to_client, decided) = run(&client, server, &[]);
    assert_eq!(
        to_server,
        [cmd(&["SET", "k", "v"]), cmd(&["GET", "k"])].concat()
    );
    let text = String::from_utf8(to_client).unwrap();
    assert_eq!(
        text,
        "+OK\r\n-NOPERM bulkhead: command 'FLUSHALL' is not allowed by policy\r\n$1\r\nv\r\n"
    );
    assert_eq!(
        decided,
        vec![
            ("redis SET".into(), true),
            ("redis FLUSHALL".into(), false),
            ("redis GET".into(), true)
        ]
    );
}

/// A command refused inside MULTI dirties the transaction, as Redis's ACL refusal
/// does: EXEC answers EXECABORT, and the server gets DISCARD, so the allowed commands
/// queued with it never run; the connection goes on.
#[test]
fn a_refusal_inside_a_transaction_aborts_it() {
    let client = [
        cmd(&["MULTI"]),
        cmd(&["SET", "k", "v"]),
        cmd(&["FLUSHALL"]),
        cmd(&["EXEC"]),
        cmd(&["GET", "k"]),
    ]
    .concat();
    // MULTI, SET queued, DISCARD, GET.
    let server = b"+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n";
    for cuts in [&[][..], &[1; 200], &[7, 3, 11, 2, 5, 40]] {
        let (to_server, to_client, _) = run(&client, server, cuts);
        assert_eq!(
            to_server,
            [
                cmd(&["MULTI"]),
                cmd(&["SET", "k", "v"]),
                cmd(&["DISCARD"]),
                cmd(&["GET", "k"])
            ]
            .concat(),
            "{cuts:?}"
        );
        assert_eq!(
            String::from_utf8(to_client).unwrap(),
            "+OK\r\n+QUEUED\r\n-NOPERM bulkhead: command 'FLUSHALL' is not allowed by policy\r\n\
             -EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n",
            "{cuts:?}"
        );
    }
    // A clean transaction runs as sent.
    let client = [cmd(&["MULTI"]), cmd(&["SET", "k", "v"]), cmd(&["EXEC"])].concat();
    let (to_server, to_client, _) = run(&client, b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n", &[]);
    assert_eq!(to_server, client);
    assert_eq!(to_client, b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n");
}

#[test]
fn inline_commands_and_large_values_stream() {
    let big = "x".repeat(100_000);
    let client = [
        b"PING\r\n".to_vec(),
        cmd(&["SET", "k", &big]),
        b"flushdb\r\n".to_vec(),
    ]
    .concat();
    let (to_server, to_client, decided) = run(&client, b"+PONG\r\n+OK\r\n", &[7, 3, 5000]);
    assert_eq!(
        to_server,
        [b"PING\r\n".to_vec(), cmd(&["SET", "k", &big])].concat()
    );
    assert!(
        String::from_utf8(to_client)
            .unwrap()
            .ends_with("+OK\r\n-NOPERM bulkhead: command 'FLUSHDB' is not allowed by policy\r\n")
    );
    assert_eq!(decided.len(), 3);
}

#[test]
fn resp3_pushes_are_not_replies() {
    let client = [cmd(&["GET", "a"]), cmd(&["FLUSHALL"])].concat();
    // A push arrives before the GET's reply: the refusal must still wait for the reply.
    let server = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n$1\r\n1\r\n";
    let (_, to_client, _) = run(&client, server, &[]);
    let text = String::from_utf8(to_client).unwrap();
    assert!(
        text.ends_with(
            "$1\r\n1\r\n-NOPERM bulkhead: command 'FLUSHALL' is not allowed by policy\r\n"
        ),
        "{text}"
    );
}

proptest! {
    #[test]
    fn splitting_changes_nothing(cuts in proptest::collection::vec(1usize..20, 0..30)) {
        let client = [cmd(&["SET", "k", "hello world"]), cmd(&["FLUSHALL"]), b"GET k\r\n".to_vec(), cmd(&["FLUSHDB", "ASYNC"]), cmd(&["MGET", "a", "b"])].concat();
        let server = b"+OK\r\n$11\r\nhello world\r\n*2\r\n$1\r\n1\r\n$-1\r\n";
        prop_assert_eq!(run(&client, server, &cuts), run(&client, server, &[]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..400),
                                   s in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = run(&c, &s, &[3, 7, 1]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cuts in proptest::collection::vec(1usize..20, 0..30)) {
        let mut client = [cmd(&["SET", "k", "hello world"]), cmd(&["FLUSHALL"]), b"GET k\r\n".to_vec(), cmd(&["FLUSHDB", "ASYNC"]), cmd(&["MGET", "a", "b"])].concat();
        let mut server = b"+OK\r\n$11\r\nhello world\r\n*2\r\n$1\r\n1\r\n$-1\r\n".to_vec();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cuts);
    }
}

/// Sensors see what a Redis session carries both ways (a value SET, a value read back),
/// and a blocking finding closes before those bytes are passed on.
#[test]
fn sensors_scan_redis_values_both_ways() {
    use bulkhead_policy::l7::AppProtocol;
    use std::sync::Arc;
    for block in [false, true] {
        let mut s =
            bulkhead_l7::session_for(AppProtocol::Redis, Some(Arc::new(common::Sensors(block))))
                .unwrap();
        let out = s.client_bytes(
            &cmd(&["SET", "k", "a SECRET value"]),
            &mut allow_all_but_flush,
        );
        assert_eq!(out.findings.len(), 1, "{out:?}");
        assert_eq!((out.close, out.to_server.is_empty()), (block, block));
        let mut s =
            bulkhead_l7::session_for(AppProtocol::Redis, Some(Arc::new(common::Sensors(block))))
                .unwrap();
        let out = s.client_bytes(&cmd(&["GET", "k"]), &mut allow_all_but_flush);
        assert!(out.findings.is_empty() && !out.to_server.is_empty());
        let out = s.server_bytes(b"$14\r\na SECRET value\r\n");
        assert_eq!(out.findings.len(), 1, "{out:?}");
        assert_eq!((out.close, out.to_client.is_empty()), (block, block));
    }
}

/// Inline commands are split as Redis splits them (`sdssplitargs`): a vertical tab is a
/// blank, and a quoted word is unquoted (`"FLUSHALL"`, `FLUSH"ALL"` and `"\x46LUSHALL"`
/// all run FLUSHALL). A quoted name is not decided: the connection closes with an
/// error. (Before, each of these passed a rule that denies FLUSHALL.)
#[test]
fn inline_names_are_read_as_redis_reads_them() {
    for line in [
        &b"\x0bFLUSHALL\r\n"[..],
        b"\"FLUSHALL\"\r\n",
        b"FLUSH\"ALL\"\r\n",
        b"\"\\x46LUSHALL\"\r\n",
        b"'FLUSHALL'\r\n",
    ] {
        for cuts in [&[][..], &[1, 2, 3]] {
            let (to_server, to_client, decided) = run(line, b"", cuts);
            let text = String::from_utf8_lossy(line);
            assert!(to_server.is_empty(), "{text:?}");
            assert!(
                decided.iter().all(|(_, allowed)| !allowed),
                "{text:?}: {decided:?}"
            );
            assert!(to_client.starts_with(b"-"), "{text:?}");
        }
    }
    // Quotes in the arguments are the arguments' business.
    let (to_server, _, decided) = run(b"SET k \"a b\"\r\n", b"+OK\r\n", &[]);
    assert_eq!(to_server, b"SET k \"a b\"\r\n");
    assert_eq!(decided, [("redis SET".to_string(), true)]);
}
