//! Driving `bulkhead lab` and namespaces for the benchmarks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Run a command, fail with its stderr if it fails, return stdout.
pub fn run(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Start a program inside a network namespace, in the background.
pub fn spawn_in(netns: &str, program: &Path, args: &[&str]) -> Result<Child> {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} in {netns}", program.display()))
}

pub fn run_in(netns: &str, program: &str, args: &[&str]) -> Result<String> {
    let mut a = vec!["netns", "exec", netns, program];
    a.extend_from_slice(args);
    run(Path::new("ip"), &a)
}

/// A two-workload lab (`bench/client`, `bench/server`) without an agent.
pub struct Lab {
    pub bulkhead: PathBuf,
    pub name: String,
    pub node_netns: String,
    pub client_netns: String,
    pub server_netns: String,
    pub server_ip: IpAddr,
    pub inventory: PathBuf,
}

impl Lab {
    pub fn up(bulkhead: &Path, name: &str, input: &Path) -> Result<Lab> {
        let _ = run(bulkhead, &["lab", "down", "--name", name]);
        run(
            bulkhead,
            &[
                "lab",
                "up",
                "-f",
                &input.display().to_string(),
                "--name",
                name,
                "--no-agent",
            ],
        )?;
        let dir = PathBuf::from(format!("/run/bulkhead/labs/{name}"));
        let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("state.json"))?)?;
        let workload = |key: &str| -> Result<(String, IpAddr)> {
            let w = state["plan"]["workloads"]
                .as_array()
                .and_then(|ws| {
                    ws.iter().find(|w| {
                        format!(
                            "{}/{}",
                            w["key"]["namespace"].as_str().unwrap_or(""),
                            w["key"]["name"].as_str().unwrap_or("")
                        ) == key
                    })
                })
                .with_context(|| format!("{key} is not in the lab"))?;
            Ok((
                w["netns"].as_str().unwrap_or_default().to_string(),
                w["ipv4"].as_str().unwrap_or_default().parse()?,
            ))
        };
        let (client_netns, _) = workload("bench/client")?;
        let (server_netns, server_ip) = workload("bench/server")?;
        Ok(Lab {
            bulkhead: bulkhead.to_path_buf(),
            name: name.to_string(),
            node_netns: state["plan"]["nodes"][0]["netns"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            client_netns,
            server_netns,
            server_ip,
            inventory: dir.join("inventory.yaml"),
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(&self.bulkhead, &["lab", "down", "--name", &self.name]);
    }
}

/// A scratch network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Result<Netns> {
        let _ = run(Path::new("ip"), &["netns", "del", name]);
        run(Path::new("ip"), &["netns", "add", name])?;
        Ok(Netns(name.to_string()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Path::new("ip"), &["netns", "del", &self.0]);
    }
}

/// Kill a child when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
