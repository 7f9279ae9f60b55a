//! Whether a test that needs root (and some programs) can run here. Without them it
//! skips with the reason, unless `BULKHEAD_REQUIRE_PRIVILEGED=1` (CI), where it panics:
//! privileged tests must run there.

const REQUIRE: &str = "BULKHEAD_REQUIRE_PRIVILEGED";

pub fn privileged(needs: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    for program in needs {
        if crate::process::which(program).is_none() {
            missing.push(format!("the program {program}"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("this test needs {}", missing.join(", "));
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("{why} ({REQUIRE}=1: privileged tests must run)");
    }
    eprintln!("skipping: {why}");
    false
}
