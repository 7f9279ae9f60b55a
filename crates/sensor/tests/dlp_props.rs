//! Properties: decoders and the DLP scanner never panic, whatever the bytes, and a
//! stream fed in arbitrary chunks finds exactly what one scan of the whole finds.

use bulkhead_sensor::{decode, dlp::DlpScanner};
use proptest::prelude::*;
use std::sync::LazyLock;

static SCANNER: LazyLock<DlpScanner> = LazyLock::new(DlpScanner::builtin);

/// Bytes that mix secrets, near-misses and noise, so matches straddle chunk borders.
fn secretish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"4111 1111 1111 1111".to_vec()),
        Just(b"378282246310005".to_vec()),
        Just(b"123-45-6789".to_vec()),
        Just(b"SSN: 123456789".to_vec()),
        Just(b"AKIAIOSFODNN7EXAMPLE".to_vec()),
        Just(b"-----BEGIN RSA PRIVATE KEY-----".to_vec()),
        Just(b"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----".to_vec()),
        Just(b"PuTTY-User-Key-File-3: ssh-ed25519".to_vec()),
        Just(b"2200 0000 0000 0004".to_vec()),
        Just(b"jane.doe@example.com".to_vec()),
        Just(b"x".to_vec()),
        Just(b" ".to_vec()),
        Just(b"7".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// What every decoder makes of `b`.
fn every_decoding(b: &[u8]) -> [Vec<u8>; 7] {
    [
        decode::percent_decode(b),
        decode::form_decode(b),
        decode::url_decode_deep(b),
        decode::fold_overlong(b),
        decode::backslash_unescape(b),
        decode::json_unescape(b),
        decode::html_decode(b),
    ]
}

proptest! {
    #[test]
    fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        for out in every_decoding(&b) {
            // Output stays linear in the input: work downstream is bounded.
            prop_assert!(out.len() <= b.len() * 2 + 4);
        }
    }

    /// The same over bytes made of escapes' own characters, so every branch of every
    /// decoder is taken (`\u{...}` of any length, octal, `%u`, entities, cut anywhere).
    #[test]
    fn decoders_never_panic_on_escapes(
        b in proptest::collection::vec(
            prop::sample::select(b"\\u{}x0123789afAF%&#;.-/ ".to_vec()),
            0..256,
        )
    ) {
        for out in every_decoding(&b) {
            prop_assert!(out.len() <= b.len() * 2 + 4);
        }
    }

    #[test]
    fn scanner_never_panics(b in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = SCANNER.scan(&b);
        let _ = SCANNER.scan_decoded(&b);
    }

    #[test]
    fn chunked_stream_equals_whole(data in secretish(), cuts in proptest::collection::vec(1usize..64, 1..32)) {
        let whole = SCANNER.scan(&data);
        let mut st = SCANNER.stream();
        let mut got = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < data.len() {
            let n = cuts[i % cuts.len()].min(data.len() - at);
            got.extend(st.feed(&data[at..at + n]));
            at += n;
            i += 1;
        }
        got.extend(st.finish());
        prop_assert_eq!(got, whole);
    }
}
