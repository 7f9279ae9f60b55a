//! `bulkhead-bench l7 redis`: redis-benchmark between two lab workloads of the bundled
//! example (platform/node-api-0 -> a real redis-server in platform/redis-0), directly
//! (the agent's kernel rules only: the connection is allowed at layer 4) and through the
//! agent's transparent proxy enforcing the example's command rule, and at the client's
//! socket (`--redis-socket-path`: the same rule decided by the kernel), in one run,
//! rounds alternating so drift cancels out. With `--between-nodes` the lab has two
//! nodes and the client is the node-api replica on the other node from Redis (the
//! socket path's client node vouches for its connections; `crates/sockops` vouch).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const LAB: &str = "bhbench-l7";

pub struct Options {
    pub rounds: usize,
    pub requests: u32,
    pub between_nodes: bool,
}

/// Where the benchmark runs: the server's address and the client workload.
struct Target {
    ip: String,
    client: String,
}

pub(crate) fn bulkhead(bin: &Path, args: &[&str]) -> Result<String> {
    let o = Command::new(bin)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .with_context(|| format!("running bulkhead {}", args.join(" ")))?;
    if !o.status.success() {
        bail!(
            "bulkhead {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = bulkhead(self.0, &["lab", "down", "--name", LAB]);
    }
}

/// (requests/s, p50 ms, p99 ms) of one redis-benchmark test, from its CSV.
fn measure(
    bin: &Path,
    t: &Target,
    test: &str,
    pipeline: u32,
    requests: u32,
) -> Result<(f64, f64, f64)> {
    let n = requests.to_string();
    let p = pipeline.to_string();
    let out = bulkhead(
        bin,
        &[
            "lab",
            "exec",
            "--name",
            LAB,
            &t.client,
            "--",
            // A connection that hangs fails the run instead of stopping it.
            "timeout",
            "300",
            "redis-benchmark",
            "-h",
            &t.ip,
            "-t",
            test,
            "-n",
            &n,
            "-c",
            "50",
            "-P",
            &p,
            "--csv",
        ],
    )?;
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&format!("\"{test}\"")))
        .with_context(|| format!("no {test} row in: {out}"))?;
    let f: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|x| x.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Ok((f[0], f[3], f[5]))
}

/// The configurations, in the order of the table. The last one is the first with the L7
/// proxy on the nodes for the example's other rules (HTTP, LDAP...) but the Redis rule
/// an L4 one (and no protocol learning): what the nodes cost once L7 is on at all
/// (TPROXY's policy route, the divert chain), which the socket path pays and plain
/// "direct" does not.
const CONFIGS: [&str; 5] = [
    "direct (kernel rules)",
    "proxy, relay only",
    "proxy, command rules",
    "socket path, command rules",
    "direct, proxy on for other rules",
];

/// The bundled example without the Redis command list: the proxy detects the protocol,
/// then relays bytes without parsing them (the cost of the extra TCP hop alone).
fn relay_only_examples() -> Result<PathBuf> {
    examples_without("bulkhead-bench-l7-relay", &["redis: ["])
}

/// The bundled example with the Redis rule an L4 one (no `app:`, no commands), and
/// without protocol learning for Discover workloads (the client is one: by default the
/// proxy would detect the protocol of each of its connections, then splice).
fn redis_l4_examples() -> Result<PathBuf> {
    let dir = examples_without("bulkhead-bench-l7-redis-l4", &["redis: [", "app: redis"])?;
    std::fs::write(
        dir.join("settings.yaml"),
        "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: bench}\nspec: {discover: {detectProtocols: false}}\n",
    )?;
    Ok(dir)
}

/// A copy of the bundled example's YAML without the lines that start with `drop`.
fn examples_without(name: &str, drop: &[&str]) -> Result<PathBuf> {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for e in std::fs::read_dir(src)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let text: String = std::fs::read_to_string(&p)?
                .lines()
                .filter(|l| !drop.iter().any(|d| l.trim_start().starts_with(d)))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(dir.join(p.file_name().unwrap_or_default()), text)?;
        }
    }
    Ok(dir)
}

/// `examples/lab/l7.yaml` on two nodes.
fn two_nodes() -> Result<PathBuf> {
    let src = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/lab/l7.yaml"
    ));
    let spec = std::fs::read_to_string(src)?.replacen(
        "\nspec:\n",
        "\nspec:\n  nodes: [node-1, node-2]\n",
        1,
    );
    let file = std::env::temp_dir().join("bulkhead-bench-l7-two-nodes.yaml");
    std::fs::write(&file, spec)?;
    Ok(file)
}

fn up(bin: &Path, config: usize, edited: &[PathBuf; 2], nodes: Option<&Path>) -> Result<Target> {
    let examples = match config {
        1 => format!("{}/", edited[0].display()),
        4 => format!("{}/", edited[1].display()),
        _ => "examples/".to_string(),
    };
    let lab_spec = nodes.map_or("examples/lab/l7.yaml".to_string(), |p| {
        p.display().to_string()
    });
    let mut args = vec![
        "lab", "up", "-f", &examples, "-f", &lab_spec, "--name", LAB, "-o", "json",
    ];
    if config > 0 {
        args.push("--l7-proxy");
    }
    if config == 3 {
        args.push("--redis-socket-path");
    }
    let status: serde_json::Value = serde_json::from_str(&bulkhead(bin, &args)?)?;
    let workloads = status["workloads"].as_array().context("lab status")?;
    let redis = workloads
        .iter()
        .find(|w| w["name"] == "platform/redis-0")
        .context("no platform/redis-0")?;
    let ip = redis["ipv4"]
        .as_str()
        .context("platform/redis-0 has no address")?
        .to_string();
    // One node: node-api-0; two: the replica on the other node.
    let client = workloads
        .iter()
        .filter(|w| {
            w["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("platform/node-api-"))
        })
        .find(|w| nodes.is_none() || w["node"] != redis["node"])
        .and_then(|w| w["name"].as_str())
        .context("no node-api replica where the benchmark needs one")?
        .to_string();
    for _ in 0..100 {
        let pong = bulkhead(
            bin,
            &[
                "lab",
                "exec",
                "--name",
                LAB,
                &client,
                "--",
                "redis-cli",
                "-h",
                &ip,
                "PING",
            ],
        );
        if pong.is_ok_and(|p| p.trim() == "PONG") {
            return Ok(Target { ip, client });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("redis-server in {LAB} never answered")
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

type Sample = (f64, f64, f64);

pub fn redis(bin: &Path, o: &Options) -> Result<String> {
    let _down = Down(bin);
    let cases = [("set", 1), ("get", 1), ("get", 16)];
    let edited = [relay_only_examples()?, redis_l4_examples()?];
    let nodes = if o.between_nodes {
        Some(two_nodes()?)
    } else {
        None
    };
    // [case][config] -> samples of (rps, p50, p99)
    let n = CONFIGS.len();
    let mut samples: Vec<Vec<Vec<Sample>>> = cases.iter().map(|_| vec![Vec::new(); n]).collect();
    for round in 0..o.rounds {
        for k in 0..n {
            let config = (round + k) % n;
            let t = up(bin, config, &edited, nodes.as_deref())?;
            // Warm up, unmeasured: right after `lab up` the kernel's caches are cold
            // (profiles of the first seconds show new slabs being allocated).
            let cx = || {
                // The lab's logs outlive the failure (the lab goes down on return).
                let kept = std::env::temp_dir().join("bulkhead-bench-l7-failed");
                let _ = Command::new("cp")
                    .args(["-r", &format!("/run/bulkhead/labs/{LAB}")])
                    .arg(&kept)
                    .status();
                format!(
                    "round {round}, configuration {} (the lab's files: {})",
                    CONFIGS[config],
                    kept.display()
                )
            };
            measure(bin, &t, "set", 1, o.requests / 4).with_context(cx)?;
            for (i, (test, pipeline)) in cases.iter().enumerate() {
                samples[i][config]
                    .push(measure(bin, &t, test, *pipeline, o.requests).with_context(cx)?);
            }
        }
    }
    let from = if o.between_nodes {
        "the node-api replica on the other node of a two-node lab"
    } else {
        "platform/node-api-0"
    };
    let mut out = format!(
        "redis-benchmark -c 50 -n {} from {from} to a real redis-server in platform/redis-0; {} rounds, configurations in rotating order, median. With command rules every command is decided (rule: app redis, 15 allowed commands): by the proxy, or by the kernel at the client's socket.\n\n",
        o.requests, o.rounds
    );
    out.push_str(&format!(
        "| test | {} req/s | {} req/s | {} req/s | {} req/s | {} req/s | proxy rules / direct | socket rules / direct | socket rules / direct with proxy on | p50 ms (direct / relay / proxy / socket / direct, proxy on) | p99 ms (same order) | target >= 0.90 (proxy, socket) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        CONFIGS[0], CONFIGS[1], CONFIGS[2], CONFIGS[3], CONFIGS[4]
    ));
    for (i, (test, pipeline)) in cases.iter().enumerate() {
        let col = |c: usize, f: fn(&Sample) -> f64| median(samples[i][c].iter().map(f).collect());
        let rps: Vec<f64> = (0..n).map(|c| col(c, |s| s.0)).collect();
        let (proxy, socket, socket_on) = (rps[2] / rps[0], rps[3] / rps[0], rps[3] / rps[4]);
        let judge = |r: f64| if r >= 0.90 { "PASS" } else { "MISS" };
        let ms = |f: fn(&Sample) -> f64| {
            (0..n)
                .map(|c| format!("{:.3}", col(c, f)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        out.push_str(&format!(
            "| {} -P {pipeline} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {proxy:.3} | {socket:.3} | {socket_on:.3} | {} | {} | {}, {} |\n",
            test.to_uppercase(),
            rps[0],
            rps[1],
            rps[2],
            rps[3],
            rps[4],
            ms(|s| s.1),
            ms(|s| s.2),
            judge(proxy),
            judge(socket),
        ));
    }
    Ok(out)
}
