//! Starts what runs in each workload and waits until it answers: the built-in responder
//! (`builtin`, `http`), a real program (`command`, only when installed), or a runc
//! container. Everything is checked before anything is started, so a missing program
//! fails `lab up` before a single namespace exists.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_model::{Protocol, WorkloadKey};
use bulkhead_policy::spec::LabRun;
use serde::{Deserialize, Serialize};

use crate::container;
use crate::netns;
use crate::plan::{Plan, WorkloadPlan};
use crate::process::{self, Process};
use crate::responder::ServeArgs;
use crate::state::{self, State};

/// How to run the responder: a program and the arguments before `ServeArgs`
/// (`bulkhead lab serve`, or the `bulkhead-lab-serve` test binary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Helper {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// How long a server may take to listen on its ports before `lab up` reports it.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The Debian package that provides a program, for the "not installed" message.
fn package_of(program: &str) -> Option<&'static str> {
    Some(match program {
        "redis-server" => "redis-server",
        "postgres" | "pg_ctl" | "initdb" => "postgresql",
        "mariadbd" | "mysqld" => "mariadb-server",
        "slapd" => "slapd",
        "mosquitto" => "mosquitto",
        "memcached" => "memcached",
        "nginx" => "nginx",
        "haproxy" => "haproxy",
        "etcd" => "etcd-server",
        "iperf3" => "iperf3",
        "socat" => "socat",
        "nc" => "netcat-openbsd",
        "tcpdump" => "tcpdump",
        _ => return None,
    })
}

/// Everything the plan runs can run here.
pub fn check(plan: &Plan) -> Result<()> {
    let mut problems = Vec::new();
    for w in &plan.workloads {
        match &w.run {
            LabRun::Command(argv) => {
                let program = &argv[0];
                if process::which(program).is_none() {
                    let hint = package_of(program)
                        .map(|p| format!(" (Debian package {p})"))
                        .unwrap_or_default();
                    problems.push(format!(
                        "{}: {program} is not installed{hint}; the lab installs nothing",
                        w.key
                    ));
                }
            }
            LabRun::Container { .. } => {
                if let Err(e) = container::check() {
                    problems.push(format!("{}: {e}", w.key));
                }
            }
            LabRun::Builtin | LabRun::Http => {}
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// What runs in `w`, in words (for `lab status`).
pub fn describe(run: &LabRun) -> String {
    match run {
        LabRun::Builtin => "builtin".into(),
        LabRun::Http => "http".into(),
        LabRun::Command(argv) => format!("command: {}", argv.join(" ")),
        LabRun::Container { image, args } if args.is_empty() => format!("container: {image}"),
        LabRun::Container { image, args } => format!("container: {image} {}", args.join(" ")),
    }
}

/// Start everything, recording each process in the state as it starts; then wait
/// until each listens. Returns warnings (servers still not listening).
pub fn start_all(state: &mut State, helper: &Helper) -> Result<Vec<String>> {
    let keys: Vec<WorkloadKey> = state.plan.workloads.iter().map(|w| w.key.clone()).collect();
    start_some(state, helper, &keys)
}

/// [`start_all`] for some workloads of the plan only (those `lab add` made).
pub fn start_some(state: &mut State, helper: &Helper, keys: &[WorkloadKey]) -> Result<Vec<String>> {
    let dir = state.dir();
    let mut waits = Vec::new();
    let chosen: Vec<WorkloadPlan> = state.plan.workloads_of(keys).into_iter().cloned().collect();
    for w in chosen {
        let started = start(&state.plan.lab, &dir, &w, helper)
            .with_context(|| format!("starting what runs in {}", w.key))?;
        if let Some((container, p, ready)) = started {
            if let Some(id) = container {
                state.containers.push(id);
            }
            waits.push((w, p.clone(), ready));
            state.processes.push(p);
            state.save()?;
        }
    }
    let mut warnings = Vec::new();
    for (w, p, ready) in &waits {
        if let Some(w) = wait_ready(w, p, ready.as_deref())? {
            warnings.push(w);
        }
    }
    Ok(warnings)
}

type Started = Option<(Option<String>, Process, Option<PathBuf>)>;

fn start(lab: &str, dir: &Path, w: &WorkloadPlan, helper: &Helper) -> Result<Started> {
    let log = dir.join("logs").join(format!("{}.log", w.netns));
    match &w.run {
        LabRun::Builtin | LabRun::Http => {
            let listen: BTreeSet<(Protocol, u16)> = w
                .ports
                .iter()
                .filter(|p| matches!(p.protocol, Protocol::Tcp | Protocol::Udp))
                .map(|p| (p.protocol, p.port))
                .collect();
            if listen.is_empty() {
                // Nothing to answer on; probes bring their own listeners.
                return Ok(None);
            }
            let ready = dir.join("ready").join(&w.netns);
            fs::create_dir_all(ready.parent().unwrap_or(dir))?;
            let _ = fs::remove_file(&ready);
            let args = ServeArgs {
                workload: w.key.to_string(),
                listen: listen.into_iter().collect(),
                http: w.run == LabRun::Http,
                ready: Some(ready.clone()),
            };
            let mut cmd = Command::new(&helper.program);
            cmd.args(&helper.args).args(args.to_args());
            let p = process::spawn(Some(&w.netns), cmd, &log, "responder", &w.key.to_string())?;
            Ok(Some((None, p, Some(ready))))
        }
        LabRun::Command(argv) => {
            let cwd = dir.join("workloads").join(&w.netns);
            fs::create_dir_all(&cwd)?;
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .current_dir(&cwd)
                .env("BULKHEAD_LAB_WORKLOAD", w.key.to_string());
            let p = process::spawn(Some(&w.netns), cmd, &log, "command", &w.key.to_string())?;
            Ok(Some((None, p, None)))
        }
        LabRun::Container { args, .. } => {
            let (id, p) = container::start(lab, dir, w, args)?;
            Ok(Some((Some(id), p, None)))
        }
    }
}

/// Wait until `p` is ready: its ready file (responder) or its TCP ports listening.
/// An exit is an error (with the end of its log); a slow server only a warning.
fn wait_ready(w: &WorkloadPlan, p: &Process, ready: Option<&Path>) -> Result<Option<String>> {
    let tcp: BTreeSet<u16> = w
        .ports
        .iter()
        .filter(|p| p.protocol == Protocol::Tcp)
        .map(|p| p.port)
        .collect();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let done = match ready {
            Some(file) => file.exists(),
            None => {
                let listening = listening_tcp(&w.netns)?;
                tcp.iter().all(|port| listening.contains(port))
            }
        };
        if done {
            return Ok(None);
        }
        if !p.alive() {
            bail!(
                "{} ({}) exited; the end of {}:\n{}",
                w.key,
                describe(&w.run),
                p.log.display(),
                state::tail(&p.log, 15)
            );
        }
        if Instant::now() > deadline {
            let ports: Vec<String> = tcp.iter().map(|p| format!("TCP/{p}")).collect();
            return Ok(Some(format!(
                "{}: not listening on {} after {} s; it keeps running (log: {})",
                w.key,
                ports.join(", "),
                START_TIMEOUT.as_secs(),
                p.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// TCP ports something listens on in namespace `ns`, from its /proc/net tables
/// (seen through a thread inside it).
pub fn listening_tcp(ns: &str) -> Result<BTreeSet<u16>> {
    netns::enter(ns, || {
        let mut ports = BTreeSet::new();
        for table in ["tcp", "tcp6"] {
            let text =
                fs::read_to_string(format!("/proc/thread-self/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                // local_address is ADDR:PORT in hex; st 0A is LISTEN.
                if f.get(3) == Some(&"0A")
                    && let Some(port) = f.get(1).and_then(|a| a.rsplit(':').next())
                    && let Ok(port) = u16::from_str_radix(port, 16)
                {
                    ports.insert(port);
                }
            }
        }
        Ok(ports)
    })
}
