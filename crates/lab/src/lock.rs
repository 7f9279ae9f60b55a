//! One change to a running lab at a time. `lab add`, `lab remove` and `lab label` read
//! `state.json`, change the lab and write it back; two of them at once (two shells, a
//! test's threads) would lose one's record or hand out one address twice. Each holds an
//! exclusive `flock` on `<lab dir>/lock` from reading the state to writing it. Readers
//! (`status`, `probe`) take no lock: the state file is replaced atomically.

use std::fs::{File, OpenOptions};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

use crate::names;

/// Held while a lab is being changed; released when dropped.
pub struct LabLock {
    _held: Flock<File>,
}

/// Wait for, then take, lab `lab`'s lock. The lab must be up (its directory exists).
pub fn lock(lab: &str) -> Result<LabLock> {
    let dir = names::lab_dir(lab);
    if !dir.is_dir() {
        bail!("lab {lab} is not up");
    }
    let path = dir.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let held = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(LabLock { _held: held })
}
