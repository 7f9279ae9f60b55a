//! Entering a network namespace. `setns` acts on the calling thread only, and threads
//! inherit the namespace of the thread that creates them: so the agent calls this from
//! `main` before it creates any thread, and everything it does afterwards (the `nft`
//! children, the NFLOG and ctnetlink sockets) happens in that namespace.

use std::fs::File;

use anyhow::{Context, Result};
use nix::sched::{CloneFlags, setns};

/// Enter `/run/netns/NAME` (as created by `ip netns add NAME`) on the calling thread.
pub fn enter(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let f = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    setns(&f, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("cannot enter network namespace {name}"))?;
    Ok(())
}
