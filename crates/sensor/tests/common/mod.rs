//! Where the shared test corpora are (same rules as crates/detect's tests) and how
//! their rows read.
//!
//! `BULKHEAD_CORPORA` if set, else `<workspace>/../shared/corpora`, else
//! `/work/shared/corpora`. When none exists: a panic if `BULKHEAD_REQUIRE_CORPORA=1`
//! (CI), otherwise a note on stderr and `None`, so the caller skips.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn corpora() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("BULKHEAD_CORPORA").map(PathBuf::from),
        Some(workspace.join("../shared/corpora")),
        Some(PathBuf::from("/work/shared/corpora")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_dir());
    if found.is_none() {
        assert!(
            std::env::var("BULKHEAD_REQUIRE_CORPORA").as_deref() != Ok("1"),
            "corpora not found (set BULKHEAD_CORPORA) and BULKHEAD_REQUIRE_CORPORA=1"
        );
        eprintln!("skipped: corpora not found (set BULKHEAD_CORPORA)");
    }
    found
}

/// One TSV row: label, decoded payload, source.
pub struct Row {
    pub label: String,
    pub payload: Vec<u8>,
    pub source: String,
}

/// The rows of `rel` (e.g. `attacks/httpparams.tsv`), payloads percent-decoded with no
/// `+` step, as the corpora README says.
pub fn rows(root: &std::path::Path, rel: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(root.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", root.join(rel).display()));
    text.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            Row {
                label: f.next().unwrap_or("").to_string(),
                payload: bulkhead_sensor::decode::percent_decode(f.next().unwrap_or("").as_bytes()),
                source: f.next().unwrap_or("").to_string(),
            }
        })
        .collect()
}
