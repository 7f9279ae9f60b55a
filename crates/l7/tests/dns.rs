//! DNS: queries decided on their name, REFUSED built from the query (same ID, opcode, RD,
//! question), TCP framing independent of how the bytes are split, no panic on any input.

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{DnsSession, Output, Session, Verdict, dns_refused, dns_request};
use bulkhead_policy::l7::{L7Detail, L7Request};
use proptest::prelude::*;

/// `dig evil.example.net A` with EDNS0 (as dig sends it), ID 0x1234, RD set.
fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT record: root name, type 41, UDP size 1232, no options.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

#[test]
fn a_query_names_its_question() {
    let r = dns_request(&query("Api.Example.com", 7)).expect("a query");
    assert_eq!(
        r.detail,
        L7Detail::Dns {
            name: "Api.Example.com".into()
        }
    );
}

/// A query with two questions (dnsmasq may answer the second from its cache) is not
/// decided on its first name alone: it names no request, so a rule on names refuses it.
/// (Before, an allowed first name carried a denied second one.)
#[test]
fn a_query_with_more_than_one_question_is_not_read_as_its_first() {
    let mut q = query("api.example.com", 7);
    q.truncate(12 + 17 + 4);
    q[5] = 2;
    q[11] = 0;
    q.extend_from_slice(b"\x04evil\x07example\x03net\x00\x00\x01\x00\x01");
    assert!(dns_request(&q).is_none());
    q[5] = 0;
    assert!(dns_request(&q).is_none());
}

#[test]
fn refused_echoes_the_question_with_rcode_5() {
    let q = query("evil.example.net", 0x1234);
    let r = dns_refused(&q).expect("REFUSED");
    assert_eq!(&r[..2], &[0x12, 0x34]);
    assert_eq!(r[2] & 0x80, 0x80, "QR");
    assert_eq!(r[2] & 0x01, 0x01, "RD kept");
    assert_eq!(r[3] & 0x0f, 5, "RCODE REFUSED");
    assert_eq!(&r[4..6], &[0, 1]);
    assert_eq!(&r[6..12], &[0; 6]);
    // The question, and nothing after it (the OPT record is not echoed).
    assert_eq!(&r[12..], &q[12..12 + 18 + 4]);
    // It parses as a response to the same question.
    assert!(dns_request(&r).is_none());
}

fn tcp(frames: &[Vec<u8>]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| {
            let mut v = (f.len() as u16).to_be_bytes().to_vec();
            v.extend_from_slice(f);
            v
        })
        .collect()
}

fn run(client: &[u8], server: &[u8], cut: usize) -> Output {
    let mut s = DnsSession::new();
    let mut out = Output::default();
    let mut policy = |r: &L7Request| Verdict {
        allowed: matches!(&r.detail, L7Detail::Dns { name } if name.ends_with("example.com")),
    };
    for c in client.chunks(cut.max(1)) {
        out.merge(s.client_bytes(c, &mut policy));
    }
    for c in server.chunks(cut.max(1)) {
        out.merge(s.server_bytes(c));
    }
    out
}

#[test]
fn over_tcp_allowed_queries_pass_and_denied_ones_are_refused() {
    let ok = query("api.example.com", 1);
    let bad = query("evil.example.net", 2);
    let client = tcp(&[ok.clone(), bad.clone()]);
    let out = run(&client, &tcp(&[b"answer".to_vec()]), 3);
    assert_eq!(out.to_server, tcp(&[ok]));
    let refused = tcp(&[dns_refused(&bad).unwrap()]);
    assert!(out.to_client.starts_with(&refused));
    assert!(out.to_client.ends_with(&tcp(&[b"answer".to_vec()])));
    assert_eq!(out.decided.len(), 2);
    assert!(out.decided[0].allowed && !out.decided[1].allowed);
}

proptest! {
    #[test]
    fn split_invariance(cut in 1usize..40) {
        let client = tcp(&[query("a.example.com", 1), query("b.evil.org", 2), query("c.example.com", 3)]);
        let server = tcp(&[b"one".to_vec(), b"three".to_vec()]);
        let whole = run(&client, &server, client.len() + server.len());
        let split = run(&client, &server, cut);
        prop_assert_eq!(whole.to_server, split.to_server);
        let mut a = whole.to_client.clone();
        let mut b = split.to_client.clone();
        a.sort_unstable();
        b.sort_unstable();
        // The same messages reach the client (a refusal may overtake an answer: TCP DNS
        // answers are matched by ID, RFC 7766).
        prop_assert_eq!(a, b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..600),
                                   s in proptest::collection::vec(any::<u8>(), 0..600),
                                   cut in 1usize..64) {
        let _ = dns_request(&c);
        let _ = dns_refused(&c);
        let _ = run(&c, &s, cut);
    }

    /// Edits of valid traffic reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in edit::edits(),
                                   cut in 1usize..40) {
        let mut client = tcp(&[query("a.example.com", 1), query("b.evil.org", 2), query("c.example.com", 3)]);
        let mut server = tcp(&[b"one".to_vec(), b"three".to_vec()]);
        edit::apply_both(&edits, &mut client, &mut server);
        // The first query without its TCP length, as a UDP datagram.
        let _ = dns_request(client.get(2..).unwrap_or_default());
        let _ = dns_refused(client.get(2..).unwrap_or_default());
        let _ = run(&client, &server, cut);
    }
}
