//! MySQL sessions: CLIENT_SSL hidden from the client, authentication untouched,
//! COM_QUERY / COM_STMT_PREPARE decided per statement, ERR 1142 in order after result
//! sets (with and without CLIENT_DEPRECATE_EOF), split invariance, no panics.

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{MysqlSession, Output, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request, SqlKind};
use proptest::prelude::*;

const PROTOCOL_41: u32 = 0x200;
const SSL: u32 = 0x800;
const MULTI_STATEMENTS: u32 = 0x10000;
const DEPRECATE_EOF: u32 = 1 << 24;

/// SELECT only.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Sql { kind } = &r.detail else {
        panic!("{r:?}")
    };
    Verdict {
        allowed: *kind == SqlKind::Select,
    }
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

fn greeting(caps: u32) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"10.11.6-MariaDB\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    packet(0, &p)
}

fn handshake_response(caps: u32) -> Vec<u8> {
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(b"app\0\x00");
    packet(1, &p)
}

fn ok(seq: u8, status: u16) -> Vec<u8> {
    packet(
        seq,
        &[vec![0, 0, 0], status.to_le_bytes().to_vec(), vec![0, 0]].concat(),
    )
}

fn eof(seq: u8, status: u16) -> Vec<u8> {
    packet(
        seq,
        &[vec![0xFE, 0, 0], status.to_le_bytes().to_vec()].concat(),
    )
}

/// The terminating OK of CLIENT_DEPRECATE_EOF (0xFE header).
fn eof_ok(seq: u8, status: u16) -> Vec<u8> {
    packet(
        seq,
        &[vec![0xFE, 0, 0], status.to_le_bytes().to_vec(), vec![0, 0]].concat(),
    )
}

fn query(q: &str) -> Vec<u8> {
    packet(0, &[&[3u8][..], q.as_bytes()].concat())
}

fn err(message: &str) -> Vec<u8> {
    packet(
        1,
        &[&[0xFF, 0x76, 0x04][..], b"#42000", message.as_bytes()].concat(),
    )
}

/// A one-column, `rows`-row result set; `more`: another result follows.
fn result_set(rows: &[&str], deprecate: bool, more: bool) -> Vec<u8> {
    let status = if more { 0x0008 | 2 } else { 2 };
    let mut v = [
        packet(1, &[1]),
        packet(2, b"\x03def\0\0\0\x011\0\x0c?\0\x01\0\0\0\x08\x81\0\0\0\0"),
    ]
    .concat();
    let mut seq = 3;
    if !deprecate {
        v.extend(eof(seq, 2));
        seq += 1;
    }
    for r in rows {
        v.extend(packet(seq, &[&[r.len() as u8][..], r.as_bytes()].concat()));
        seq += 1;
    }
    v.extend(if deprecate {
        eof_ok(seq, status)
    } else {
        eof(seq, status)
    });
    v
}

type Run = (Vec<u8>, Vec<u8>, Vec<(String, bool)>);

fn run(client: &[u8], server: &[u8], cuts: &[usize]) -> Run {
    let mut s = MysqlSession::new();
    let mut all = Output::default();
    // The greeting first (the server speaks first), then the client, then the rest.
    let g = server.len().min(server.get(..3).map_or(0, |h| {
        4 + (h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16)
    }));
    for (data, from_client) in [(&server[..g], false), (client, true), (&server[g..], false)] {
        let (mut at, mut k) = (0, 0);
        while at < data.len() {
            let n = cuts
                .get(k)
                .copied()
                .unwrap_or(data.len())
                .clamp(1, data.len() - at);
            k += 1;
            all.merge(if from_client {
                s.client_bytes(&data[at..at + n], &mut policy)
            } else {
                s.server_bytes(&data[at..at + n])
            });
            at += n;
        }
    }
    let decided = all
        .decided
        .iter()
        .map(|d| (d.request.to_string(), d.allowed))
        .collect();
    (all.to_server, all.to_client, decided)
}

const CAPS: u32 = PROTOCOL_41 | MULTI_STATEMENTS | 0x8000;

#[test]
fn greeting_loses_ssl_and_queries_are_refused_in_order() {
    for deprecate in [false, true] {
        let caps = CAPS | if deprecate { DEPRECATE_EOF } else { 0 };
        let client = [
            handshake_response(caps),
            query("SELECT 1"),
            query("DELETE FROM t"),
            query("SELECT 1; DROP TABLE t"),
            query("SELECT 2"),
            packet(0, &[0x0e]), // COM_PING
        ]
        .concat();
        let server = [
            greeting(caps | SSL),
            ok(2, 2),
            result_set(&["1"], deprecate, false),
            result_set(&["2", "3"], deprecate, false),
            ok(1, 2),
        ]
        .concat();
        let (to_server, to_client, decided) = run(&client, &server, &[]);
        assert_eq!(
            to_server,
            [
                handshake_response(caps),
                query("SELECT 1"),
                query("SELECT 2"),
                packet(0, &[0x0e])
            ]
            .concat()
        );
        let expected = [
            greeting(caps),
            ok(2, 2),
            result_set(&["1"], deprecate, false),
            err("bulkhead: DELETE statements are not allowed by policy"),
            err("bulkhead: DDL statements are not allowed by policy"),
            result_set(&["2", "3"], deprecate, false),
            ok(1, 2),
        ]
        .concat();
        assert_eq!(to_client, expected, "deprecate_eof {deprecate}");
        assert_eq!(decided.len(), 5);
    }
}

#[test]
fn refusal_waits_for_multi_results_and_prepare_replies() {
    let client = [
        handshake_response(CAPS),
        query("SELECT 1; SELECT 2"),
        packet(0, &[&[0x16][..], b"SELECT ?"].concat()),
        packet(0, &[&[0x16][..], b"UPDATE t SET a = ?"].concat()),
    ]
    .concat();
    // Prepare OK: statement 1, one column, one parameter; a definition + EOF each.
    let def = packet(2, b"\x03def\0\0\0\x01?\0\x0c?\0\0\0\0\0\xfd\x80\0\0\0\0");
    let prepared = [
        packet(1, &[0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]),
        def.clone(),
        eof(3, 2),
        def,
        eof(5, 2),
    ]
    .concat();
    let server = [
        greeting(CAPS),
        ok(2, 2),
        result_set(&["1"], false, true),
        result_set(&["2"], false, false),
        prepared.clone(),
    ]
    .concat();
    let (_, to_client, decided) = run(&client, &server, &[]);
    assert!(
        to_client.ends_with(
            &[
                prepared,
                err("bulkhead: UPDATE statements are not allowed by policy")
            ]
            .concat()
        )
    );
    assert_eq!(decided.last(), Some(&("mysql update".to_string(), false)));
}

#[test]
fn local_infile_and_binary_rows_and_cursors_are_framed() {
    // LOAD DATA LOCAL: the server asks for the file (0xFB), the client sends it (seq 2+)
    // and an empty packet, the server answers OK; the refusal waits for that OK. (A
    // SELECT stands in for LOAD DATA under this SELECT-only policy: framing is the same.)
    let load = query("SELECT 1 INTO @x");
    let client = [
        handshake_response(CAPS),
        load.clone(),
        packet(2, b"1\n2\n"),
        packet(3, b""),
        query("DELETE FROM t"),
    ]
    .concat();
    let server = [
        greeting(CAPS),
        ok(2, 2),
        packet(1, b"\xfbdata.txt"),
        ok(4, 2),
    ]
    .concat();
    let (to_server, to_client, _) = run(&client, &server, &[]);
    assert!(to_server.ends_with(&[load, packet(2, b"1\n2\n"), packet(3, b"")].concat()));
    assert!(
        to_client.ends_with(
            &[
                ok(4, 2),
                err("bulkhead: DELETE statements are not allowed by policy")
            ]
            .concat()
        )
    );

    // COM_STMT_EXECUTE: binary rows start with 0x00 (not an OK); with a cursor the reply
    // ends at the EOF after the column definitions (SERVER_STATUS_CURSOR_EXISTS).
    let execute = packet(0, &[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
    let cursor = packet(0, &[0x17, 1, 0, 0, 0, 1, 1, 0, 0, 0]);
    let def = packet(2, b"\x03def\0\0\0\x01a\0\x0c?\0\x0b\0\0\0\x03\0\0\0\0\0");
    let rows = [
        packet(1, &[1]),
        def.clone(),
        eof(3, 2),
        packet(4, &[0, 0, 7, 0, 0, 0]),
        eof(5, 2),
    ]
    .concat();
    let opened = [packet(1, &[1]), def, eof(3, 0x0040 | 2)].concat();
    let client = [
        handshake_response(CAPS),
        execute,
        query("UPDATE t SET a = 1"),
        cursor,
        query("DELETE FROM t"),
    ]
    .concat();
    let server = [greeting(CAPS), ok(2, 2), rows.clone(), opened.clone()].concat();
    let (_, to_client, _) = run(&client, &server, &[]);
    let expected = [
        ok(2, 2),
        rows,
        err("bulkhead: UPDATE statements are not allowed by policy"),
        opened,
        err("bulkhead: DELETE statements are not allowed by policy"),
    ]
    .concat();
    assert!(to_client.ends_with(&expected));
}

/// Commands other than queries are decided as the statement they stand for (audit):
/// KILL, SHUTDOWN, FLUSH and a binlog dump are `other`, refused under this policy with
/// the usual ERR; what an ordinary session sends (COM_INIT_DB, COM_PING) passes.
#[test]
fn commands_are_decided_as_their_statements() {
    let kill = packet(0, &[0x0c, 7, 0, 0, 0]);
    let shutdown = packet(0, &[0x08, 0]);
    let refresh = packet(0, &[0x07, 1]);
    let binlog = packet(0, &[0x12, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    let init_db = packet(0, b"\x02shop");
    let ping = packet(0, &[0x0e]);
    let client = [
        handshake_response(CAPS),
        kill,
        shutdown,
        refresh,
        binlog,
        init_db.clone(),
        ping.clone(),
    ]
    .concat();
    let server = [greeting(CAPS), ok(2, 2), ok(1, 2), ok(1, 2)].concat();
    let (to_server, to_client, decided) = run(&client, &server, &[]);
    assert_eq!(
        to_server,
        [handshake_response(CAPS), init_db, ping].concat()
    );
    let other = err("bulkhead: OTHER statements are not allowed by policy");
    let expected = [
        greeting(CAPS),
        ok(2, 2),
        other.clone(),
        other.clone(),
        other.clone(),
        other,
        ok(1, 2),
        ok(1, 2),
    ]
    .concat();
    assert_eq!(to_client, expected);
    assert_eq!(decided, vec![("mysql other".to_string(), false); 4]);
}

#[test]
fn a_client_that_insists_on_tls_is_cut_off() {
    let mut s = MysqlSession::new();
    let _ = s.server_bytes(&greeting(CAPS | SSL));
    let out = s.client_bytes(&packet(1, &(CAPS | SSL).to_le_bytes()), &mut policy);
    assert!(out.close && out.to_server.is_empty());
}

proptest! {
    #[test]
    fn splitting_changes_nothing(cuts in proptest::collection::vec(1usize..16, 0..40), deprecate: bool) {
        let caps = CAPS | if deprecate { DEPRECATE_EOF } else { 0 };
        let client = [handshake_response(caps), query("SELECT 'a;b'"), query("DROP TABLE t"),
                      query("SELECT 2"), packet(0, &[0x01])].concat();
        let server = [greeting(caps | SSL), ok(2, 2), result_set(&["a;b"], deprecate, false),
                      result_set(&["2"], deprecate, false)].concat();
        prop_assert_eq!(run(&client, &server, &cuts), run(&client, &server, &[]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..600),
                                   s in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = run(&c, &s, &[5, 1, 9]);
        let _ = run(&[handshake_response(CAPS), c.clone()].concat(), &[greeting(CAPS), s.clone()].concat(), &[3]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cuts in proptest::collection::vec(1usize..16, 0..40), deprecate: bool) {
        let caps = CAPS | if deprecate { DEPRECATE_EOF } else { 0 };
        let mut client = [handshake_response(caps), query("SELECT 'a;b'"), query("DROP TABLE t"),
                          query("SELECT 2"), packet(0, &[0x01])].concat();
        let mut server = [greeting(caps | SSL), ok(2, 2), result_set(&["a;b"], deprecate, false),
                          result_set(&["2"], deprecate, false)].concat();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cuts);
    }
}
