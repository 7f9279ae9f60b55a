//! Where the shared test corpora are, for tests and benches (included with `#[path]`).
//!
//! `BULKHEAD_CORPORA` if set, else `<workspace>/../shared/corpora`, else
//! `/work/shared/corpora`. When none exists: a panic if `BULKHEAD_REQUIRE_CORPORA=1`
//! (CI), otherwise a note on stderr and `None`, so the caller skips.

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

/// Every capture of the pcap corpus (path relative to `pcap/`, bytes), sorted by name.
#[allow(dead_code)]
pub fn captures(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["ndpi", "grpc"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join("pcap").join(dir))
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".cap"))
            .collect();
        names.sort();
        for n in names {
            let rel = format!("{dir}/{n}");
            let bytes = std::fs::read(root.join("pcap").join(&rel)).unwrap();
            out.push((rel, bytes));
        }
    }
    out
}
