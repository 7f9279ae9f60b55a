//! TLS sessions: decided once on the SNI of a real ClientHello (captured from
//! `openssl s_client -servername api.example.com`), however its bytes are split; a denied
//! name gets a fatal access_denied alert and nothing reaches the server.

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_l7::{Output, Session, TlsSession, Verdict};
use bulkhead_policy::l7::{L7Detail, L7Request};
use proptest::prelude::*;

const HELLO: &[u8] = include_bytes!("fixtures/client_hello_openssl.bin");

fn run(allow: &str, client: &[u8], cut: usize) -> (Output, Vec<Option<String>>) {
    let mut s = TlsSession::new();
    let mut seen = Vec::new();
    let mut out = Output::default();
    for c in client.chunks(cut.max(1)) {
        out.merge(s.client_bytes(c, &mut |r: &L7Request| {
            let L7Detail::Tls { sni } = &r.detail else {
                panic!("{r:?}")
            };
            seen.push(sni.clone());
            Verdict {
                allowed: sni.as_deref() == Some(allow),
            }
        }));
    }
    out.merge(s.server_bytes(b"\x16\x03\x03server"));
    (out, seen)
}

#[test]
fn an_allowed_name_passes_byte_for_byte() {
    let client = [HELLO, b"\x17\x03\x03appdata"].concat();
    for cut in [1, 5, 100, client.len()] {
        let (out, seen) = run("api.example.com", &client, cut);
        assert_eq!(seen, vec![Some("api.example.com".to_string())], "cut {cut}");
        assert_eq!(out.to_server, client);
        assert_eq!(out.to_client, b"\x16\x03\x03server");
        assert!(!out.close && out.decided[0].allowed);
    }
}

#[test]
fn a_denied_name_gets_an_alert_and_nothing_reaches_the_server() {
    let (out, _) = run("other.example.com", HELLO, 7);
    assert!(out.to_server.is_empty());
    assert_eq!(out.to_client, [21, 3, 3, 0, 2, 2, 49]);
    assert!(out.close);
    assert_eq!(
        out.decided[0].refusal.as_deref(),
        Some("TLS alert access_denied")
    );
}

#[test]
fn bytes_that_are_not_a_client_hello_are_refused() {
    let (out, seen) = run(
        "api.example.com",
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",
        3,
    );
    assert!(seen.is_empty());
    assert!(out.close && out.to_server.is_empty());
}

/// An SSL 2.0-compatible CLIENT-HELLO (what old clients and scanners open with, and what
/// detection names `tls`) is decided as a ClientHello without a server name, not refused
/// as something else: a rule that requires TLS takes it, one on names does not.
#[test]
fn an_sslv2_compatible_hello_is_decided_without_a_name() {
    // RFC 6101 appendix E.2: TLS 1.0 offered, three cipher specs, a 16-byte challenge.
    let mut hello = vec![0x80, 0x22, 1, 3, 1, 0, 9, 0, 0, 0, 16];
    hello.extend_from_slice(&[0, 0, 0x2f, 0, 0, 0x35, 1, 0, 0x80]);
    hello.extend_from_slice(&[0x5a; 16]);
    assert_eq!(hello.len(), 2 + 0x22);
    for allowed in [true, false] {
        for cut in [1, 4, hello.len()] {
            let mut s = TlsSession::new();
            let mut seen = Vec::new();
            let mut out = Output::default();
            for c in hello.chunks(cut) {
                out.merge(s.client_bytes(c, &mut |r: &L7Request| {
                    seen.push(r.detail.clone());
                    Verdict { allowed }
                }));
            }
            assert_eq!(seen, vec![L7Detail::Tls { sni: None }], "cut {cut}");
            assert_eq!(out.close, !allowed);
            assert_eq!(out.to_server.is_empty(), !allowed);
            if allowed {
                assert_eq!(out.to_server, hello);
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048), cut in 1usize..300) {
        let _ = run("api.example.com", &b, cut);
    }

    #[test]
    fn a_corrupted_hello_never_panics(i in 0usize..321, v: u8, cut in 1usize..64) {
        let mut h = HELLO.to_vec();
        if i < h.len() { h[i] = v; }
        let _ = run("api.example.com", &h, cut);
    }

    /// Edits of the real ClientHello (the server's bytes are only relayed) reach the inner fields (lengths, counts, names) random bytes never get to.
    #[test]
    fn edited_traffic_never_panics(edits in proptest::collection::vec(edit::edit(), 1..6), cut in 1usize..64) {
        let mut client = [HELLO, b"\x17\x03\x03appdata"].concat();
        for e in &edits {
            edit::apply(&mut client, e);
        }
        let _ = run("api.example.com", &client, cut);
    }
}
