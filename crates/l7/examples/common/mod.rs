//! Shared by the examples.

/// This thread's CPU time so far, ns (`/proc/thread-self/schedstat`): rates per
/// CPU-second hold up on a shared machine where wall-clock rates swing with the load.
pub fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
