//! Named network namespaces, made the way `ip netns add` makes them (a bind mount of a
//! namespace on a file under `/run/netns`), so `ip netns list/exec` see ours and we see
//! theirs. Done with nix rather than by running `ip`: no process per namespace, errors
//! we can word ourselves, and the same code enters namespaces for everything else.
//!
//! A network namespace is a property of a thread: [`enter`] always runs its closure on
//! a new OS thread that enters the namespace and ends with the closure, so no other code
//! (and never an async runtime's worker) runs in a namespace it did not ask for.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::names::NETNS_DIR;

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Every named network namespace.
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(NETNS_DIR),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// `ip netns add NAME`.
pub fn create(name: &str) -> Result<()> {
    prepare_dir()?;
    let target = path(name);
    // The mount point: an empty file, created exclusively so two runs never share it.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&target)
        .with_context(|| format!("creating {}", target.display()))?;
    let bound = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("bind-mounting the new namespace on {}", target.display()))
        })
        .join()
        .map_err(|_| anyhow!("namespace thread panicked"))?
    });
    if bound.is_err() {
        let _ = fs::remove_file(&target);
    }
    bound
}

/// `ip netns del NAME`; nothing to do when it does not exist. The namespace itself goes
/// away once no process and no socket holds it any more.
pub fn delete(name: &str) -> Result<()> {
    let target = path(name);
    match umount2(&target, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a half-created namespace); ENOENT: already gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", target.display())),
    }
    match fs::remove_file(&target) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", target.display()))
        }
        _ => Ok(()),
    }
}

/// The namespace's inode: what `/proc/PID/ns/net` of a process inside it shows.
pub fn inode(name: &str) -> Result<u64> {
    Ok(fs::metadata(path(name))
        .with_context(|| format!("network namespace {name}"))?
        .ino())
}

/// Run `f` on a new OS thread inside the named namespace. Sockets `f` opens stay in the
/// namespace wherever they are used later; processes `f` spawns start in it.
pub fn enter<T: Send>(name: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            join(name)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("thread in network namespace {name} panicked"))?
    })
}

/// Move the calling thread into the named namespace. Only for threads made for it
/// ([`enter`], probe threads, a process about to run a command there).
pub fn join(name: &str) -> Result<()> {
    let file = File::open(path(name)).with_context(|| format!("network namespace {name}"))?;
    setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering {name}"))
}

/// Write a sysctl of the calling thread's namespace, given as path components
/// (`["net", "ipv4", "ip_forward"]`): interface names may contain dots.
pub fn sysctl(key: &[&str], value: &str) -> Result<()> {
    let mut p = PathBuf::from("/proc/sys");
    p.extend(key);
    fs::write(&p, value).with_context(|| format!("setting {} = {value}", key.join(".")))
}

/// `/run/netns` as `ip netns add` leaves it: a shared mount, so namespaces mounted
/// later also appear in mount namespaces made since (such as `ip netns exec`'s).
fn prepare_dir() -> Result<()> {
    fs::create_dir_all(NETNS_DIR).context(NETNS_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: make it one (a bind mount on itself), then share it.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context("bind-mounting /run/netns on itself")?;
            shared().context("making /run/netns a shared mount")
        }
        Err(e) => Err(e).context("making /run/netns a shared mount"),
    }
}
