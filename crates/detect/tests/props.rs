//! Properties: no input makes detection panic, and feeding a stream in pieces gives the
//! answer feeding it whole gives.

use bulkhead_detect::capture::detect_capture;
use bulkhead_detect::{Detection, Detector, Dir, detect};
use proptest::prelude::*;

/// Real openings of each protocol, to split and to mutate.
fn samples() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n", b""),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b""),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
            b"",
        ),
        (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", b""),
        (b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-OpenSSH_9.2\r\n"),
        (b"", b"220 mail.example.com ESMTP Postfix\r\n"),
        (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", b""),
        (b"AMQP\x00\x00\x09\x01", b""),
        (b"0\x0c\x02\x01\x01`\x07\x02\x01\x03\x04\x00\x80\x00", b""),
    ]
}

#[test]
fn every_sample_is_detected() {
    let want = [
        "http",
        "redis",
        "http2",
        "postgresql",
        "ssh",
        "smtp",
        "mqtt",
        "amqp",
        "ldap",
    ];
    for ((c, s), want) in samples().into_iter().zip(want) {
        match detect(c, s) {
            Detection::Known { app, .. } => assert_eq!(app.as_str(), want, "{c:?} {s:?}"),
            d => panic!("{c:?}: {d:?}, expected {want}"),
        }
    }
}

fn fed_in_pieces(c: &[u8], s: &[u8], cuts: &[usize]) -> Detection {
    let mut d = Detector::new(64 * 1024);
    // Server first, then client, each in the given piece sizes.
    for (dir, data) in [(Dir::ToClient, s), (Dir::ToServer, c)] {
        let mut at: usize = 0;
        for &cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
            let end = at.saturating_add(cut).min(data.len());
            if at < end {
                d.feed(dir, &data[at..end]);
            }
            at = end;
        }
    }
    d.finish()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(c in proptest::collection::vec(any::<u8>(), 0..300),
                                   s in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = detect(&c, &s);
        let _ = detect_capture(&c);
        let mut d = Detector::datagrams(1024);
        d.feed(Dir::ToServer, &c);
        let _ = d.finish();
    }

    #[test]
    fn splitting_does_not_change_the_answer(k in 0usize..9, cuts in proptest::collection::vec(1usize..12, 0..8)) {
        let (c, s) = samples()[k];
        prop_assert_eq!(fed_in_pieces(c, s, &cuts), detect(c, s));
    }

    #[test]
    fn mutated_openings_never_panic(k in 0usize..9, at in 0usize..40, byte in any::<u8>()) {
        let (c, s) = samples()[k];
        let mut c = c.to_vec();
        if !c.is_empty() {
            let i = at % c.len();
            c[i] = byte;
        }
        let _ = detect(&c, s);
    }
}
