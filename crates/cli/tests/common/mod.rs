//! Shared by the privileged test binaries (enforcement, churn, the L7 labs).

pub mod lab;

use std::fs::File;
use std::process::Command;

/// True when root and nft are available. Otherwise the test skips with a reason, or,
/// with `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), fails: privileged tests must run there.
pub fn privileged(what: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let nft = Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && nft {
        return true;
    }
    let why = format!("{what} needs root and nft (root: {root}, nft: {nft})");
    if std::env::var("BULKHEAD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why} (BULKHEAD_REQUIRE_PRIVILEGED=1: privileged tests must run)");
    }
    eprintln!("skipping: {why}");
    false
}

/// Labs of different test binaries must not run at once (probe timing, conntrack load,
/// and a test that cleans up leftovers): every lab test holds this lock while it runs.
pub fn lab_lock() -> File {
    std::fs::create_dir_all("/run/bulkhead").expect("creating /run/bulkhead");
    let f = File::create("/run/bulkhead/lab-tests.lock").expect("creating the lab tests lock");
    f.lock().expect("taking the lab tests lock");
    f
}
