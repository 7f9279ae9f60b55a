//! The corpus's real requests, edited (byte flips, inserts, cuts, truncations, repeats:
//! `crates/detect/tests/common/edit.rs`), through every entry point that reads untrusted
//! bytes: whole HTTP requests (head parsing, multipart, JSON and XML bodies, decoding),
//! SQL text on the wire, bodies, streams. Random bytes rarely get past a request line;
//! edits of real requests reach every parser behind it. Never a panic, and masked
//! matches stay bounded.

mod common;

#[path = "../../detect/tests/common/edit.rs"]
mod edit;

use bulkhead_sensor::{Attack, DlpKind, Sensor, SensorSpec};
use proptest::prelude::*;
use std::sync::LazyLock;

static REQUESTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let Some(root) = common::corpora() else {
        return Vec::new();
    };
    common::rows(&root, "attacks/crs_requests.tsv")
        .into_iter()
        .map(|r| r.payload)
        .collect()
});

fn all() -> Sensor {
    Sensor::new(&SensorSpec {
        name: "all".into(),
        block: true,
        attacks: Attack::ALL.to_vec(),
        dlp: DlpKind::ALL.to_vec(),
        patterns: vec![],
    })
    .unwrap()
}

/// Where the head ends (after its blank line), or the whole request.
fn head_end(r: &[u8]) -> usize {
    r.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(r.len(), |p| p + 4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn edited_requests_never_panic(k in any::<usize>(), edits in proptest::collection::vec(edit::edit(), 1..8)) {
        if REQUESTS.is_empty() {
            return Ok(());
        }
        let mut r = REQUESTS[k % REQUESTS.len()].clone();
        for e in &edits {
            edit::apply(&mut r, e);
        }
        let s = all();
        let (head, body) = r.split_at(head_end(&r));
        for f in s.http_request(head, body) {
            prop_assert!(f.masked.chars().count() <= 96);
        }
        let _ = s.sql(&r);
        let _ = s.query(head);
        for ct in [None, Some("application/json"), Some("application/xml"),
                   Some("application/x-www-form-urlencoded"),
                   Some("multipart/form-data; boundary=----WebKitFormBoundaryABCDEFGIJKLMNOPQ")] {
            let _ = s.body(body, ct);
        }
        let mut st = s.stream(true);
        for chunk in r.chunks(7) {
            let _ = st.feed(chunk);
        }
    }
}
