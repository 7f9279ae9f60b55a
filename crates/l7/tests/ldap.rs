//! LDAP sessions: requests decided on operation and DN (the messages are the ones
//! ldapsearch, ldapadd and ldapdelete send, BER-encoded here), refusals as the
//! operation's own response with the request's messageID, written between server
//! messages; StartTLS; limits; the same result however the streams are split.

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{LdapSession, Output, Session, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request, LdapOp, dn_within};
use proptest::prelude::*;

const PEOPLE: &str = "ou=people,dc=example,dc=org";
const ADMINS: &str = "ou=admins,dc=example,dc=org";
const START_TLS: &[u8] = b"1.3.6.1.4.1.1466.20037";

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else if n < 0x10000 {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    } else {
        v.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn msg(id: u8, op: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[tlv(0x02, &[id]), op].concat())
}

/// A simple bind, as `ldapsearch -x -D DN -w PW` sends it.
fn bind(id: u8, dn: &str, pw: &str) -> Vec<u8> {
    let op = [
        tlv(0x02, &[3]),
        tlv(0x04, dn.as_bytes()),
        tlv(0x80, pw.as_bytes()),
    ]
    .concat();
    msg(id, tlv(0x60, &op))
}

/// `ldapsearch -b BASE` (subtree, no limits, filter `(objectClass=*)`, all attributes).
fn search(id: u8, base: &str) -> Vec<u8> {
    let op = [
        tlv(0x04, base.as_bytes()),
        tlv(0x0a, &[2]),
        tlv(0x0a, &[0]),
        tlv(0x02, &[0]),
        tlv(0x02, &[0]),
        tlv(0x01, &[0]),
        tlv(0x87, b"objectClass"),
        tlv(0x30, b""),
    ]
    .concat();
    msg(id, tlv(0x63, &op))
}

fn delete(id: u8, dn: &str) -> Vec<u8> {
    msg(id, tlv(0x4a, dn.as_bytes()))
}

/// An add whose entry carries `extra` bytes of a binary attribute.
fn add(id: u8, dn: &str, extra: usize) -> Vec<u8> {
    let attr = |name: &str, value: &[u8]| {
        tlv(
            0x30,
            &[tlv(0x04, name.as_bytes()), tlv(0x31, &tlv(0x04, value))].concat(),
        )
    };
    let attrs = [
        attr("objectClass", b"person"),
        attr("photo", &vec![0xab; extra]),
    ]
    .concat();
    msg(
        id,
        tlv(
            0x68,
            &[tlv(0x04, dn.as_bytes()), tlv(0x30, &attrs)].concat(),
        ),
    )
}

fn unbind(id: u8) -> Vec<u8> {
    msg(id, tlv(0x42, b""))
}

fn result(tag: u8, id: u8, code: u8, text: &str) -> Vec<u8> {
    let r = [
        tlv(0x0a, &[code]),
        tlv(0x04, b""),
        tlv(0x04, text.as_bytes()),
    ]
    .concat();
    msg(id, tlv(tag, &r))
}

fn entry(id: u8, dn: &str) -> Vec<u8> {
    msg(
        id,
        tlv(0x64, &[tlv(0x04, dn.as_bytes()), tlv(0x30, b"")].concat()),
    )
}

/// The lab's policy: bind, and search or add under ou=people.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Ldap { operation, base_dn } = &r.detail else {
        panic!("{r:?}")
    };
    let under = base_dn.as_deref().is_some_and(|d| dn_within(d, PEOPLE));
    Verdict {
        allowed: *operation == LdapOp::Bind
            || (matches!(operation, LdapOp::Search | LdapOp::Add) && under)
            || (*operation == LdapOp::Extended && base_dn.is_none()),
    }
}

fn feed(s: &mut LdapSession, data: &[u8], client: bool, cuts: &[usize], all: &mut Output) {
    let (mut at, mut k) = (0, 0);
    while at < data.len() {
        let n = cuts
            .get(k)
            .copied()
            .unwrap_or(data.len())
            .max(1)
            .min(data.len() - at);
        k += 1;
        all.merge(if client {
            s.client_bytes(&data[at..at + n], &mut policy)
        } else {
            s.server_bytes(&data[at..at + n])
        });
        at += n;
    }
}

/// Client stream, then server stream: what each side got and the decisions.
fn run(client: &[u8], server: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>, bool, Vec<String>) {
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, client, true, cuts, &mut all);
    feed(&mut s, server, false, cuts, &mut all);
    let decided = all
        .decided
        .iter()
        .map(|d| format!("{} {}", d.request, d.allowed))
        .collect();
    (all.to_server, all.to_client, all.close, decided)
}

fn refusal(tag: u8, id: u8, op: &str, dn: &str) -> Vec<u8> {
    let text = format!("bulkhead: {op} on {dn} is not allowed by policy");
    result(tag, id, 50, &text)
}

/// Captured between ldapsearch 2.5 and slapd 2.5 (`ldapsearch -x -D cn=admin,dc=example,dc=org
/// -w secret -b ou=people,dc=example,dc=org`): bind, search, unbind; then the bind
/// response, three entries and the SearchResultDone.
const REAL_CLIENT: &str = "302c0201016027020103041a636e3d61646d696e2c64633d6578616d706c652c64633d6f726780067365637265743040020102633b041b6f753d70656f706c652c64633d6578616d706c652c64633d6f72670a01020a0100020100020100010100870b6f626a656374636c617373300030050201034200";
const REAL_SERVER: &str = "300c02010161070a01000400040030590201026454041b6f753d70656f706c652c64633d6578616d706c652c64633d6f726730353023040b6f626a656374436c617373311404126f7267616e697a6174696f6e616c556e6974300e04026f753108040670656f706c653078020102647304237569643d626f622c6f753d70656f706c652c64633d6578616d706c652c64633d6f7267304c301e040b6f626a656374436c617373310f040d696e65744f7267506572736f6e300c040375696431050403626f62300b0402636e31050403426f62300f0402736e310904074275696c646572307e020102647904257569643d616c6963652c6f753d70656f706c652c64633d6578616d706c652c64633d6f72673050301e040b6f626a656374436c617373310f040d696e65744f7267506572736f6e300e040375696431070405616c696365300d0402636e31070405416c696365300f0402736e310904074c696464656c6c300c02010265070a010004000400";
/// `ldapdelete -x -D cn=admin,dc=example,dc=org -w secret uid=nobody,ou=admins,...`.
const REAL_DELETE: &str = "302c0201016027020103041a636e3d61646d696e2c64633d6578616d706c652c64633d6f72678006736563726574302b0201024a267569643d6e6f626f64792c6f753d61646d696e732c64633d6578616d706c652c64633d6f726730050201034200";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn real_ldapsearch_and_ldapdelete_streams() {
    let (client, server) = (hex(REAL_CLIENT), hex(REAL_SERVER));
    for cut in [1, 3, 64, 1000] {
        let (to_server, to_client, close, decided) = run(&client, &server, &[cut; 400]);
        assert_eq!(
            (to_server, &to_client, close),
            (client.clone(), &server, false)
        );
        assert_eq!(decided.len(), 2, "{decided:?}");
    }
    let del = hex(REAL_DELETE);
    let bind_response = hex("300c02010161070a010004000400");
    let (to_server, to_client, _, decided) = run(&del, &bind_response, &[]);
    let dn = "uid=nobody,ou=admins,dc=example,dc=org";
    assert_eq!(
        to_server,
        [bind(1, "cn=admin,dc=example,dc=org", "secret"), unbind(3)].concat()
    );
    assert_eq!(
        to_client,
        [refusal(0x6b, 2, "delete", dn), bind_response].concat()
    );
    assert_eq!(decided[1], format!("ldap delete {dn} false"));
}

#[test]
fn a_search_outside_the_base_is_refused_with_its_own_message_id() {
    let client = [
        bind(1, "cn=admin,dc=example,dc=org", "secret"),
        search(2, PEOPLE),
        search(3, ADMINS),
        unbind(4),
    ]
    .concat();
    let server = [
        result(0x61, 1, 0, ""),
        entry(2, &format!("uid=alice,{PEOPLE}")),
        result(0x65, 2, 0, ""),
    ]
    .concat();
    let (to_server, to_client, close, decided) = run(&client, &server, &[]);
    assert_eq!(
        to_server,
        [
            bind(1, "cn=admin,dc=example,dc=org", "secret"),
            search(2, PEOPLE),
            unbind(4)
        ]
        .concat()
    );
    // No server message was half written when the search came: refused at once.
    assert_eq!(
        to_client,
        [refusal(0x65, 3, "search", ADMINS), server].concat()
    );
    assert!(!close);
    assert_eq!(
        decided,
        [
            "ldap bind cn=admin,dc=example,dc=org true",
            "ldap search ou=people,dc=example,dc=org true",
            "ldap search ou=admins,dc=example,dc=org false",
        ]
    );
}

#[test]
fn a_refusal_waits_for_the_end_of_the_server_message_being_written() {
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, &search(2, PEOPLE), true, &[], &mut all);
    let e = entry(2, &format!("uid=alice,{PEOPLE}"));
    feed(&mut s, &e[..10], false, &[], &mut all);
    feed(&mut s, &delete(3, PEOPLE), true, &[], &mut all);
    assert_eq!(all.to_client, e[..10]);
    feed(&mut s, &e[10..], false, &[], &mut all);
    assert_eq!(
        all.to_client,
        [e, refusal(0x6b, 3, "delete", PEOPLE)].concat()
    );
    assert_eq!(all.to_server, search(2, PEOPLE));
}

#[test]
fn each_operation_is_refused_with_its_response() {
    let dn = "cn=x,ou=admins,dc=example,dc=org";
    let op = |tag: u8, content: Vec<u8>| msg(9, tlv(tag, &content));
    let dn_first = [tlv(0x04, dn.as_bytes()), tlv(0x30, b"")].concat();
    let compare = [
        tlv(0x04, dn.as_bytes()),
        tlv(0x30, &[tlv(0x04, b"cn"), tlv(0x04, b"x")].concat()),
    ]
    .concat();
    let moddn = [
        tlv(0x04, dn.as_bytes()),
        tlv(0x04, b"cn=y"),
        tlv(0x01, &[0xff]),
    ]
    .concat();
    for (request, response, name) in [
        (op(0x66, dn_first.clone()), 0x67, "modify"),
        (op(0x68, dn_first), 0x69, "add"),
        (op(0x4a, dn.as_bytes().to_vec()), 0x6b, "delete"),
        (op(0x6c, moddn), 0x6d, "modifydn"),
        (op(0x6e, compare), 0x6f, "compare"),
        (search(9, dn), 0x65, "search"),
    ] {
        let (to_server, to_client, close, decided) = run(&request, b"", &[]);
        assert!(to_server.is_empty(), "{name}");
        assert_eq!(to_client, refusal(response, 9, name, dn), "{name}");
        assert!(!close);
        assert_eq!(decided, [format!("ldap {name} {dn} false")]);
    }
}

#[test]
fn abandon_refused_is_dropped_unbind_always_passes() {
    let abandon = msg(5, tlv(0x50, &[2]));
    let (to_server, to_client, _, decided) = run(&[abandon, unbind(6)].concat(), b"", &[]);
    assert_eq!(to_server, unbind(6));
    assert!(to_client.is_empty());
    assert_eq!(decided, ["ldap abandon false"]);
}

#[test]
fn a_denied_bind_gets_a_bind_response() {
    let mut s = LdapSession::new();
    let out = s.client_bytes(&bind(1, "cn=admin", "pw"), &mut |_| Verdict {
        allowed: false,
    });
    assert!(out.to_server.is_empty());
    assert_eq!(out.to_client, refusal(0x61, 1, "bind", "cn=admin"));
}

#[test]
fn start_tls_accepted_turns_both_sides_to_raw_tls() {
    let st = msg(1, tlv(0x77, &tlv(0x80, START_TLS)));
    let hello = b"\x16\x03\x01\x00\x05hello".to_vec();
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, &st, true, &[], &mut all);
    assert_eq!(all.decided[0].request.to_string(), "ldap extended");
    feed(&mut s, &result(0x78, 1, 0, ""), false, &[3], &mut all);
    feed(&mut s, &hello, true, &[], &mut all);
    feed(&mut s, b"\x16\x03\x03server", false, &[], &mut all);
    assert_eq!(all.to_server, [st, hello].concat());
    assert_eq!(
        all.to_client,
        [result(0x78, 1, 0, ""), b"\x16\x03\x03server".to_vec()].concat()
    );
    assert!(!all.close);
}

#[test]
fn start_tls_declined_by_the_server_stays_ldap() {
    let st = msg(1, tlv(0x77, &tlv(0x80, START_TLS)));
    let client = [st, search(2, ADMINS)].concat();
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, &client[..st_len()], true, &[], &mut all);
    feed(&mut s, &result(0x78, 1, 2, "no"), false, &[], &mut all);
    feed(&mut s, &client[st_len()..], true, &[], &mut all);
    assert_eq!(all.decided.len(), 2);
    assert!(all.to_client.ends_with(&refusal(0x65, 2, "search", ADMINS)));
}

fn st_len() -> usize {
    msg(1, tlv(0x77, &tlv(0x80, START_TLS))).len()
}

#[test]
fn a_request_before_the_start_tls_response_closes() {
    let st = msg(1, tlv(0x77, &tlv(0x80, START_TLS)));
    let (to_server, _, close, _) = run(&[st.clone(), search(2, PEOPLE)].concat(), b"", &[]);
    assert_eq!(to_server, st);
    assert!(close);
}

#[test]
fn part_of_a_request_sent_before_the_start_tls_answer_closes() {
    let st = msg(1, tlv(0x77, &tlv(0x80, START_TLS)));
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, &st, true, &[], &mut all);
    feed(&mut s, &delete(2, ADMINS)[..5], true, &[], &mut all);
    feed(&mut s, &result(0x78, 1, 0, ""), false, &[], &mut all);
    assert_eq!(all.to_server, st);
    assert!(all.close);
}

#[test]
fn refusals_piling_up_behind_a_long_response_are_bounded() {
    let mut s = LdapSession::new();
    let mut all = Output::default();
    feed(&mut s, &search(2, PEOPLE), true, &[], &mut all);
    feed(&mut s, &entry(2, PEOPLE)[..4], false, &[], &mut all);
    let denied = delete(3, ADMINS);
    for _ in 0..20_000 {
        let out = s.client_bytes(&denied, &mut policy);
        let close = out.close;
        all.merge(out);
        if close {
            break;
        }
    }
    assert!(all.close, "1 MiB of refusals never closed the connection");
    assert_eq!(all.to_server, search(2, PEOPLE));
    assert_eq!(all.to_client, entry(2, PEOPLE)[..4]);
}

#[test]
fn a_denied_start_tls_is_an_extended_response() {
    let st = msg(4, tlv(0x77, &tlv(0x80, START_TLS)));
    let mut s = LdapSession::new();
    let out = s.client_bytes(&st, &mut |_| Verdict { allowed: false });
    let text = "bulkhead: extended operation 1.3.6.1.4.1.1466.20037 is not allowed by policy";
    assert_eq!(out.to_client, result(0x78, 4, 50, text));
    assert!(out.to_server.is_empty());
}

#[test]
fn long_lengths_and_a_large_allowed_add_stream_through() {
    let dn = format!("cn={},{PEOPLE}", "x".repeat(300));
    let client = [add(1, &dn, 300_000), search(2, &dn)].concat();
    let (to_server, _, close, decided) = run(&client, b"", &[4096; 200]);
    assert_eq!(to_server, client);
    assert!(!close);
    assert_eq!(decided.len(), 2);
}

#[test]
fn a_message_over_the_limit_is_refused_and_closed() {
    let huge = b"\x30\x84\x00\x20\x00\x00\x02\x01\x01\x68";
    let (to_server, to_client, close, decided) = run(huge, b"", &[]);
    assert!(to_server.is_empty() && close && decided.is_empty());
    // A notice of disconnection: messageID 0, an ExtendedResponse with protocolError.
    assert!(to_client.starts_with(&[0x30]), "{to_client:?}");
    assert!(String::from_utf8_lossy(&to_client).contains("bulkhead: message too large"));
}

#[test]
fn garbage_from_the_client_closes_from_the_server_passes() {
    let (to_server, _, close, _) = run(b"GET / HTTP/1.1\r\n\r\n", b"", &[]);
    assert!(to_server.is_empty() && close);
    let (_, to_client, close, _) = run(b"", b"\x00garbage", &[]);
    assert_eq!(to_client, b"\x00garbage");
    assert!(!close);
}

proptest! {
    #[test]
    fn splitting_changes_nothing(cuts in proptest::collection::vec(1usize..40, 0..60)) {
        let client = [bind(1, "cn=a", "b"), search(2, PEOPLE), delete(3, PEOPLE), add(4, ADMINS, 200), search(5, ADMINS), unbind(6)].concat();
        let server = [result(0x61, 1, 0, ""), entry(2, PEOPLE), result(0x65, 2, 0, "")].concat();
        prop_assert_eq!(run(&client, &server, &cuts), run(&client, &server, &[]));
    }

    #[test]
    fn interleaving_keeps_server_messages_whole(cuts in proptest::collection::vec(1usize..30, 1..40)) {
        // Refusals land between server messages, whatever the interleaving.
        let server = [entry(2, PEOPLE), entry(2, PEOPLE), result(0x65, 2, 0, "")].concat();
        let mut s = LdapSession::new();
        let mut all = Output::default();
        feed(&mut s, &search(2, PEOPLE), true, &[], &mut all);
        let mut at = 0;
        for (k, c) in cuts.iter().enumerate() {
            let n = (*c).min(server.len() - at);
            all.merge(s.server_bytes(&server[at..at + n]));
            at += n;
            all.merge(s.client_bytes(&delete(10 + k as u8, ADMINS), &mut policy));
        }
        all.merge(s.server_bytes(&server[at..]));
        // Walk the client's stream: every message a whole LDAPMessage.
        let b = &all.to_client;
        let (mut i, mut entries, mut refusals) = (0, 0, 0);
        while i < b.len() {
            prop_assert_eq!(b[i], 0x30);
            let len = b[i + 1] as usize;
            let op = b[i + 5];
            if op == 0x64 { entries += 1 } else if op == 0x6b { refusals += 1 }
            i += 2 + len;
        }
        prop_assert_eq!(i, b.len());
        prop_assert_eq!((entries, refusals), (2, cuts.len()));
    }

    #[test]
    fn all_allowed_passes_byte_for_byte(ids in proptest::collection::vec(1u8..100, 1..8), cut in 1usize..50) {
        let client: Vec<u8> = ids.iter().flat_map(|&i| search(i, PEOPLE)).collect();
        let server: Vec<u8> = ids.iter().flat_map(|&i| result(0x65, i, 0, "")).collect();
        let (to_server, to_client, close, _) = run(&client, &server, &[cut; 100]);
        prop_assert_eq!(to_server, client);
        prop_assert_eq!(to_client, server);
        prop_assert!(!close);
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..400),
                                   s in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = run(&c, &s, &[3, 7, 1]);
        let mut prefixed = search(1, PEOPLE);
        prefixed.extend_from_slice(&c);
        let _ = run(&prefixed, &s, &[5]);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cuts in proptest::collection::vec(1usize..40, 0..60)) {
        let mut client = [bind(1, "cn=a", "b"), search(2, PEOPLE), delete(3, PEOPLE), add(4, ADMINS, 200), search(5, ADMINS), unbind(6)].concat();
        let mut server = [result(0x61, 1, 0, ""), entry(2, PEOPLE), result(0x65, 2, 0, "")].concat();
        edit::apply_both(&edits, &mut client, &mut server);
        let _ = run(&client, &server, &cuts);
    }
}

/// A ModifyDN moves an entry: the rule must allow it where the entry is and where it
/// goes (its new RDN under its new superior, or under its own parent). Before, only the
/// entry was decided: a user under ou=people could be moved under ou=admins.
#[test]
fn a_modify_dn_is_decided_where_the_entry_goes_too() {
    let within_people = |r: &L7Request| {
        let L7Detail::Ldap { operation, base_dn } = &r.detail else {
            panic!("{r:?}")
        };
        Verdict {
            allowed: *operation == LdapOp::ModifyDn
                && base_dn.as_deref().is_some_and(|d| dn_within(d, PEOPLE)),
        }
    };
    let moddn = |superior: Option<&str>| {
        let mut c = vec![
            tlv(0x04, format!("uid=me,{PEOPLE}").as_bytes()),
            tlv(0x04, b"uid=me2"),
            tlv(0x01, &[0xff]),
        ];
        if let Some(s) = superior {
            c.push(tlv(0x80, s.as_bytes()));
        }
        msg(4, tlv(0x6c, &c.concat()))
    };
    for (request, allowed, decided) in [
        (
            moddn(Some(ADMINS)),
            false,
            format!("ldap modifydn uid=me2,{ADMINS} false"),
        ),
        (
            moddn(None),
            true,
            format!("ldap modifydn uid=me,{PEOPLE} true"),
        ),
        (
            moddn(Some(PEOPLE)),
            true,
            format!("ldap modifydn uid=me,{PEOPLE} true"),
        ),
    ] {
        for cuts in [&[][..], &[5, 1, 30]] {
            let mut s = LdapSession::new();
            let mut out = Output::default();
            let (mut at, mut k) = (0, 0);
            while at < request.len() {
                let n = cuts
                    .get(k)
                    .copied()
                    .unwrap_or(request.len())
                    .min(request.len() - at);
                k += 1;
                out.merge(
                    s.client_bytes(&request[at..at + n], &mut |r: &L7Request| within_people(r)),
                );
                at += n;
            }
            assert_eq!(out.to_server.is_empty(), !allowed, "{decided}");
            let got: Vec<String> = (out.decided.iter())
                .map(|d| format!("{} {}", d.request, d.allowed))
                .collect();
            assert_eq!(got, std::slice::from_ref(&decided));
        }
    }
}
