//! Processes a lab starts: spawned inside a workload's namespace (from a thread that
//! entered it), detached from the terminal, logging to a file, and known afterwards by
//! pid AND start time, so a recycled pid is never taken for ours. Also the /proc scans
//! `lab down` uses to find processes of a crashed run: every process inside one of the
//! lab's namespaces, and every agent whose state directory is in the lab's directory.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::netns;

/// A process the lab started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, an identity.
    pub start: u64,
    /// `responder`, `command`, `container`, `agent`.
    pub role: String,
    /// The workload (`ns/name`) or node it serves.
    pub owner: String,
    pub log: PathBuf,
}

impl Process {
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Start time of a live (not zombie) process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Spawn `cmd` detached (own process group, stdin from /dev/null, output to `log`),
/// inside network namespace `ns` when given.
pub fn spawn(
    ns: Option<&str>,
    mut cmd: Command,
    log: &Path,
    role: &str,
    owner: &str,
) -> Result<Process> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group: Ctrl-C in the terminal that ran `lab up` must not
        // reach the lab's servers.
        .process_group(0);
    let what = format!("{:?}", cmd.get_program());
    let child = match ns {
        Some(ns) => netns::enter(ns, || Ok(cmd.spawn()?)),
        None => Ok(cmd.spawn()?),
    }
    .with_context(|| format!("starting {what} for {owner}"))?;
    let pid = child.id() as i32;
    // Not waited for: it outlives us (the CLI exits; init adopts it). `terminate`
    // reaps it when the caller is still its parent (tests).
    drop(child);
    let start = start_time(pid).unwrap_or(0);
    Ok(Process {
        pid,
        start,
        role: role.to_string(),
        owner: owner.to_string(),
        log: log.to_path_buf(),
    })
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; reaps our own children.
pub fn terminate(pids: &[i32], grace: Duration) {
    let alive = |pid: i32| {
        // Reap it if it is our child and has exited; then ask /proc.
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        start_time(pid).is_some()
    };
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && left.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != std::process::id() as i32)
}

/// Processes whose network namespace is one of `inodes`.
pub fn in_namespaces(inodes: &HashSet<u64>) -> Vec<i32> {
    pids()
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .ok()
                .and_then(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("net:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|ino| inodes.contains(&ino))
        })
        .collect()
}

/// Processes started with `FLAG PATH` where PATH is `dir` or lies under it (agents:
/// `--state-dir <lab dir>/agents/<node>`). Only that flag counts, so a user's
/// `tail -f` of a lab log is left alone.
pub fn with_flag_under(flag: &str, dir: &Path) -> Vec<i32> {
    let dir = dir.to_string_lossy().into_owned();
    let under = format!("{dir}/");
    pids()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<String> = c
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.windows(2)
                    .any(|w| w[0] == flag && (w[1] == dir || w[1].starts_with(&under)))
            })
        })
        .collect()
}

/// Run `argv` in network namespace `ns`, attached to our terminal; its exit code
/// (128 + signal when killed by one, as shells report it).
pub fn exec(ns: &str, argv: &[String]) -> Result<i32> {
    let (program, args) = argv
        .split_first()
        .context("lab exec needs a command after --")?;
    let status = netns::enter(ns, || {
        Command::new(program)
            .args(args)
            .status()
            .with_context(|| format!("running {program}"))
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// Where `program` is: a path as given, or the first match on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| executable(p))
}
