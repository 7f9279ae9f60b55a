//! Real OCI containers without a registry: runc (Debian's `runc`) on a busybox root file
//! system (Debian's `busybox-static`), joined to the workload's network namespace.
//!
//! The root file system is built once under `/var/lib/bulkhead/rootfs` and shared,
//! read-only, by every container of every lab; each container gets its own bundle
//! (`config.json`, a `/www` directory with a page naming the workload) in the lab's
//! directory. The config starts from `runc spec` (so it always suits the installed
//! runc) and is patched: command, read-only root, network namespace path, mounts.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use bulkhead_model::Protocol;
use serde_json::{Value, json};

use crate::names::{self, ROOTFS_DIR};
use crate::netns;
use crate::plan::WorkloadPlan;
use crate::process::{self, Process};

const BUSYBOX: &str = "/bin/busybox";
/// Marks a finished root file system: a crash while building leaves none behind.
const COMPLETE: &str = ".bulkhead-complete";

/// runc and busybox are installed.
pub fn check() -> Result<()> {
    if process::which("runc").is_none() {
        bail!("containers need runc: install Debian's runc package");
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("containers need {BUSYBOX}: install Debian's busybox-static package");
    }
    Ok(())
}

/// The shared busybox root file system, built on first use.
pub fn rootfs() -> Result<PathBuf> {
    let root = PathBuf::from(ROOTFS_DIR);
    if root.join(COMPLETE).exists() {
        return Ok(root);
    }
    let tmp = PathBuf::from(format!("{ROOTFS_DIR}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    build_rootfs(&tmp).with_context(|| format!("building {}", tmp.display()))?;
    // Another run may have finished first: then keep its copy.
    if fs::rename(&tmp, &root).is_err() {
        let _ = fs::remove_dir_all(&tmp);
        if !root.join(COMPLETE).exists() {
            bail!("{ROOTFS_DIR} exists but is incomplete; remove it and try again");
        }
    }
    Ok(root)
}

fn build_rootfs(dir: &Path) -> Result<()> {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "www", "root",
        "var", "run",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::copy(BUSYBOX, dir.join("bin/busybox"))?;
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", dir.join("bin").join(applet))?;
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    fs::write(dir.join(COMPLETE), "")?;
    Ok(())
}

/// The container's command: the given arguments, or busybox httpd serving the
/// workload's page on its first TCP port.
pub fn default_args(w: &WorkloadPlan, args: &[String]) -> Vec<String> {
    if !args.is_empty() {
        return args.to_vec();
    }
    let port = w
        .ports
        .iter()
        .find(|p| p.protocol == Protocol::Tcp)
        .map_or(80, |p| p.port);
    ["httpd", "-f", "-p", &port.to_string(), "-h", "/www"]
        .map(String::from)
        .to_vec()
}

/// Write the bundle and `runc run --detach` it; returns the container's first process.
pub fn start(
    lab: &str,
    dir: &Path,
    w: &WorkloadPlan,
    args: &[String],
) -> Result<(String, Process)> {
    let rootfs = rootfs()?;
    let id = names::container_id(lab, &w.key);
    let bundle = dir.join("containers").join(&id);
    let www = bundle.join("www");
    fs::create_dir_all(&www)?;
    fs::write(www.join("index.html"), format!("{}\n", w.key))?;
    let config_path = bundle.join("config.json");
    // `runc spec` refuses to overwrite: a bundle left by an earlier run goes first.
    let _ = fs::remove_file(&config_path);
    let out = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .context("runc spec")?;
    if !out.status.success() {
        bail!("runc spec: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut config: Value = serde_json::from_slice(&fs::read(&config_path)?)?;
    patch(&mut config, w, &rootfs, &www, &default_args(w, args));
    fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;

    let logs = dir.join("logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{}.log", w.netns));
    let pid_file = bundle.join("pid");
    let logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    // Detached: runc exits once the container runs; the container's output goes to
    // the log through the descriptors it inherits.
    let status = Command::new("runc")
        .args(["run", "--detach", "--bundle"])
        .arg(&bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .status()
        .context("runc run")?;
    if !status.success() {
        bail!("runc run {id} failed:\n{}", crate::state::tail(&log, 10));
    }
    let pid: i32 = fs::read_to_string(&pid_file)?
        .trim()
        .parse()
        .context("runc pid file")?;
    let p = Process {
        pid,
        start: process::start_time(pid).unwrap_or(0),
        role: "container".into(),
        owner: w.key.to_string(),
        log,
    };
    Ok((id, p))
}

fn patch(config: &mut Value, w: &WorkloadPlan, rootfs: &Path, www: &Path, args: &[String]) {
    let netns = netns::path(&w.netns).display().to_string();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    if let Some(env) = config["process"]["env"].as_array_mut() {
        env.push(json!(format!("BULKHEAD_LAB_WORKLOAD={}", w.key)));
    }
    config["root"] = json!({"path": rootfs.display().to_string(), "readonly": true});
    let host: String = w.key.name.chars().take(63).collect();
    config["hostname"] = json!(host);
    if let Some(mounts) = config["mounts"].as_array_mut() {
        mounts.push(json!({
            "destination": "/www", "type": "bind",
            "source": www.display().to_string(), "options": ["rbind", "ro"]
        }));
        mounts.push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]
        }));
    }
    if let Some(nss) = config["linux"]["namespaces"].as_array_mut() {
        nss.retain(|n| n["type"] != "network");
        nss.push(json!({"type": "network", "path": netns}));
    }
}

/// Containers of the lab with prefix `prefix` known to runc (also those of a crashed
/// run, whose bundle may be gone).
pub fn list(prefix: &str) -> Vec<String> {
    if process::which("runc").is_none() {
        return Vec::new();
    }
    let out = Command::new("runc").args(["list", "-q"]).output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|id| id.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// `runc kill ID KILL` then `runc delete --force ID`: the container and runc's record
/// of it are gone.
pub fn remove(id: &str) {
    let quiet = |args: &[&str]| {
        let _ = Command::new("runc")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet(&["kill", id, "KILL"]);
    quiet(&["delete", "--force", id]);
}
