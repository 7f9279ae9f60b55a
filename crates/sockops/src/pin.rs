//! Pinning: the programs and maps outlive the agent on the BPF file system (as its
//! nftables rules outlive it), and are found again, adopted or retired by path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use libbpf_rs::MapCore;

/// Remove what [`RedisPath::attach_pinned`] pinned under `dir`: the programs detach
/// once no process holds them. Ok(false): nothing was there.
pub fn unpin(dir: &Path) -> Result<bool> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Retire what [`RedisPath::attach_pinned`] pinned under `dir` when no process will
/// drive it any more: empty its tables, so every connection it still holds has its next
/// write refused (sockets in a sockhash keep its programs until they close: unpinning
/// alone would leave them decided by tables nobody updates), then unpin. Returns the
/// number of tables it held; Ok(None) when nothing was pinned there.
pub fn retire(dir: &Path) -> Result<Option<usize>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut n = 0;
    for name in ["tables", "identities"] {
        let m = libbpf_rs::MapHandle::from_pinned_path(dir.join(name))
            .with_context(|| format!("opening {}", dir.join(name).display()))?;
        let keys: Vec<Vec<u8>> = m.keys().collect();
        if name == "tables" {
            n = keys.len();
        }
        for k in keys {
            m.delete(&k)
                .with_context(|| format!("emptying the pinned map {name}"))?;
        }
    }
    unpin(dir)?;
    Ok(Some(n))
}

/// Where bulkhead pins the programs of the agent whose state directory is `state_dir`
/// (its absolute path, `/` written `_`: one place per agent, found again by it and by
/// whoever removes its state).
pub fn pin_dir(state_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    Path::new(PIN_ROOT).join(abs.to_string_lossy().replace('/', "_"))
}

/// Remove the pins of every agent whose state directory is under `dir` (a lab's).
pub fn unpin_under(dir: &Path) -> Result<usize> {
    let prefix = pin_dir(dir).to_string_lossy().into_owned();
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.to_string_lossy().starts_with(&prefix) && unpin(&p)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Where pins go: bulkhead's directory on the BPF file system.
pub const PIN_ROOT: &str = "/sys/fs/bpf/bulkhead";

/// Mount the BPF file system at /sys/fs/bpf if it is not there (as Cilium does).
pub(crate) fn mount_bpffs(dir: &Path) -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
    {
        return Ok(());
    }
    if !dir.starts_with("/sys/fs/bpf") {
        bail!(
            "{} is not on a BPF file system, and none is mounted",
            dir.display()
        );
    }
    let st = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .context("running mount")?;
    if !st.success() {
        bail!("cannot mount the BPF file system at /sys/fs/bpf");
    }
    Ok(())
}
