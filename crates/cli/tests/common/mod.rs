//! Shared by the privileged test binaries (enforcement, churn, the L7 labs).

pub mod lab;

use std::fs::File;

/// True when root and nft are available. Otherwise the test skips with a reason, or,
/// with `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), fails: privileged tests must run there
/// (`bulkhead_lab::privileged`, shared with the other crates' privileged tests).
pub fn privileged(what: &str) -> bool {
    let ok = bulkhead_lab::privileged(&["nft"]);
    if !ok {
        eprintln!("  (skipped: {what})");
    }
    ok
}

/// Labs of different test binaries must not run at once (probe timing, conntrack load,
/// and a test that cleans up leftovers): every lab test holds this lock while it runs.
pub fn lab_lock() -> File {
    std::fs::create_dir_all("/run/bulkhead").expect("creating /run/bulkhead");
    let f = File::create("/run/bulkhead/lab-tests.lock").expect("creating the lab tests lock");
    f.lock().expect("taking the lab tests lock");
    f
}
