//! A lab for one L7 test: brought up with the agents' proxy on, taken down (with the
//! servers' temporary files) when the test ends, passing or not.
#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::process::{Command, Output};

/// Run the `bulkhead` binary from the repository's root.
pub fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("running bulkhead")
}

/// `bulkhead` reading a lab's store (`flows`, `events`), once two reads 150 ms apart
/// agree: the agent's store commits what arrives within 25 ms of its last commit
/// together, so a read right after the traffic may not see its last records yet.
pub fn settled(args: &[&str]) -> Output {
    let start = std::time::Instant::now();
    let mut last = bulkhead(args);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let next = bulkhead(args);
        if next.stdout == last.stdout || start.elapsed().as_secs() > 10 {
            return next;
        }
        last = next;
    }
}

/// Is `program` on PATH (or in /usr/sbin)?
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || test -x /usr/sbin/{program}"),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fail unless every program is installed (scripts/setup installs them).
pub fn require(programs: &[&str]) {
    for p in programs {
        assert!(have(p), "{p} is not installed (scripts/setup installs it)");
    }
}

pub struct Lab {
    pub name: &'static str,
    /// `lab up -o json`.
    pub status: serde_json::Value,
    /// Directories the lab's servers write, removed with the lab.
    cleanup: Vec<PathBuf>,
}

impl Lab {
    /// `bulkhead lab up -f FILE... --l7-proxy --name NAME`; panics with lab up's error.
    pub fn up(name: &'static str, files: &[&str], cleanup: &[&str]) -> Lab {
        Lab::up_with(name, files, cleanup, &[])
    }

    /// [`Lab::up`] with more `lab up` flags.
    pub fn up_with(name: &'static str, files: &[&str], cleanup: &[&str], flags: &[&str]) -> Lab {
        let mut all = vec!["--l7-proxy"];
        all.extend_from_slice(flags);
        Lab::up_flags(name, files, cleanup, &all)
    }

    /// `bulkhead lab up -f FILE... --name NAME FLAGS...` (no proxy unless asked for).
    pub fn up_flags(name: &'static str, files: &[&str], cleanup: &[&str], flags: &[&str]) -> Lab {
        let _ = bulkhead(&["lab", "down", "--name", name]);
        let mut args = vec!["lab", "up"];
        for f in files {
            args.extend(["-f", f]);
        }
        args.extend(["--name", name, "-o", "json"]);
        args.extend(flags);
        let mut lab = Lab {
            name,
            status: serde_json::Value::Null,
            cleanup: cleanup.iter().map(PathBuf::from).collect(),
        };
        let up = bulkhead(&args);
        assert!(
            up.status.success(),
            "lab up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        lab.status = serde_json::from_slice(&up.stdout).expect("lab up -o json");
        lab
    }

    fn address(&self, workload: &str, family: &str) -> String {
        self.status["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .find(|w| w["name"] == workload)
            .and_then(|w| w[family].as_str())
            .unwrap_or_else(|| panic!("{workload} and its {family} address"))
            .to_string()
    }

    /// The node `workload` runs on.
    pub fn node_of(&self, workload: &str) -> String {
        self.status["workloads"]
            .as_array()
            .expect("workloads")
            .iter()
            .find(|w| w["name"] == workload)
            .and_then(|w| w["node"].as_str())
            .unwrap_or_else(|| panic!("{workload} and its node"))
            .to_string()
    }

    pub fn ipv4(&self, workload: &str) -> String {
        self.address(workload, "ipv4")
    }

    pub fn ipv6(&self, workload: &str) -> String {
        self.address(workload, "ipv6")
    }

    /// `bulkhead lab exec` in a workload.
    pub fn exec(&self, workload: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["lab", "exec", "--name", self.name, workload, "--"];
        args.extend_from_slice(cmd);
        bulkhead(&args)
    }

    /// [`Lab::exec`] with `input` on the command's standard input.
    #[allow(dead_code)]
    pub fn exec_with_input(&self, workload: &str, cmd: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .args(["lab", "exec", "--name", self.name, workload, "--"])
            .args(cmd)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running bulkhead lab exec");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).expect("writing the command's input");
        }
        child.wait_with_output().expect("bulkhead lab exec")
    }

    /// [`Lab::exec`]: (success, stdout and stderr, trimmed).
    pub fn run(&self, workload: &str, cmd: &[&str]) -> (bool, String) {
        let o = self.exec(workload, cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text.trim().to_string())
    }

    /// The `status.json` of each of the lab's agents.
    /// Connections the lab's agents cut so far (`connections_cut`, summed).
    pub fn connections_cut(&self) -> u64 {
        (self.agent_statuses().iter())
            .map(|s| s["connections_cut"].as_u64().unwrap_or(0))
            .sum()
    }

    pub fn agent_statuses(&self) -> Vec<serde_json::Value> {
        let dir = std::path::Path::new("/run/bulkhead/labs")
            .join(self.name)
            .join("agents");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if let Ok(b) = std::fs::read(e.path().join("status.json"))
                && let Ok(v) = serde_json::from_slice(&b)
            {
                out.push(v);
            }
        }
        out
    }

    /// Every event of the lab's agents (`bulkhead events --all -o json`).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let o = settled(&["events", "--lab", self.name, "--all", "-o", "json"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The events, read again every 200 ms until `done` says they hold what is awaited
    /// or 10 s have passed (the agent records them a moment after the traffic).
    #[allow(dead_code)]
    pub fn events_until(
        &self,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = std::time::Instant::now();
        loop {
            let events = self.events();
            if done(&events) || start.elapsed().as_secs() > 10 {
                return events;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = bulkhead(&["lab", "down", "--name", self.name]);
        for d in &self.cleanup {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Every finding of the sensor events among `events`, as (class, location): of the
/// blocking events, the alerting ones, or (None) all.
#[allow(dead_code)]
pub fn sensor_findings(
    events: &[serde_json::Value],
    blocked: Option<bool>,
) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "sensor")
        .filter(|e| blocked.is_none_or(|b| e["blocked"] == b))
        .flat_map(|e| e["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("class"), s("location"))
        })
        .collect()
}

/// A copy of the bundled example's YAML files, so that a test can edit its policy.
pub fn copy_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    for e in std::fs::read_dir(source).expect("examples/") {
        let p = e.expect("examples/ entry").path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// What tshark reads in a capture (`tshark -r PCAP EXTRA...`); fails the test if tshark
/// cannot open it.
pub fn capture_text(pcap: &str, extra: &[&str]) -> String {
    let t = std::process::Command::new("tshark")
        .args(["-r", pcap])
        .args(extra)
        .output()
        .expect("tshark");
    assert!(
        t.status.success(),
        "tshark on {pcap}: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    String::from_utf8_lossy(&t.stdout).into_owned()
}

impl Lab {
    /// Wait until redis-server at `ip` answers platform/node-api-0's PING (it may take a
    /// moment after the lab reports it running).
    pub fn wait_for_redis(&self, ip: &str) {
        for _ in 0..50 {
            if self
                .run("platform/node-api-0", &["redis-cli", "-h", ip, "PING"])
                .1
                == "PONG"
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("redis never answered PING");
    }

    /// The example's Redis rule keeps the rest out: HTTP on the Redis port is refused (the
    /// rule requires `app: redis`), and a workload no rule allows is refused.
    pub fn redis_refuses_others(&self, ip: &str) {
        let (ok, out) = self.run(
            "platform/node-api-0",
            &["curl", "-sS", "-m", "5", &format!("http://{ip}:6379/")],
        );
        assert!(!ok, "HTTP to the Redis port got through: {out}");
        let (ok, out) = self.run("eu/order-web-0", &["redis-cli", "-h", ip, "PING"]);
        assert!(
            !ok || !out.contains("PONG"),
            "order-web reached redis: {out}"
        );
    }
}

/// `examples/lab/l7.yaml` on two nodes, written into `dir`; the file's path.
pub fn two_nodes(dir: &std::path::Path) -> String {
    let spec = dir.join("two-nodes.yaml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/lab/l7.yaml"
    ))
    .expect("the example's lab");
    std::fs::write(
        &spec,
        text.replacen("\nspec:\n", "\nspec:\n  nodes: [node-1, node-2]\n", 1),
    )
    .expect("writing the lab");
    spec.to_string_lossy().into_owned()
}

/// A Redis connection from `workload` of lab `lab` to `ip`:6379 that a test holds (3 s
/// read timeout).
pub fn hold(lab: &str, ip: &str, workload: &str) -> std::net::TcpStream {
    // A lab's pods are the namespaces `bh-LAB.pod.NAMESPACE.NAME`.
    let ns = format!("bh-{lab}.pod.{}", workload.replace('/', "."));
    let addr: std::net::IpAddr = ip.parse().expect("an address");
    let held = bulkhead_lab::netns::enter(&ns, || Ok(std::net::TcpStream::connect((addr, 6379))?))
        .expect("connect");
    held.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("a read timeout");
    held
}

/// One Redis command on a held connection: the reply, or the write's or read's error.
pub fn ask(c: &mut std::net::TcpStream, args: &[&str]) -> Result<String, std::io::ErrorKind> {
    use std::io::{Read, Write};
    let mut b = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        b.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
    }
    c.write_all(&b).map_err(|e| e.kind())?;
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).map_err(|e| e.kind())?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Ask `args` on `held` until the reply is `want` (an agent's change takes effect), for
/// at most 10 s.
pub fn until_reply(held: &mut std::net::TcpStream, args: &[&str], want: String, what: &str) {
    let want = Ok(want);
    let start = std::time::Instant::now();
    while ask(held, args) != want {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What the socket path's program answers a refused Redis command.
pub const NOPERM: &str = bulkhead_agent::sockpath::NOPERM;

/// The example's policies (`text` of examples/policies.yaml) with GET taken out of the
/// Redis rule.
pub fn without_get(text: &str) -> String {
    let edited = text.replace("redis: [GET, SET,", "redis: [SET,");
    assert_ne!(text, edited, "the example's Redis rule moved");
    edited
}
