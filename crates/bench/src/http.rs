//! `bulkhead-bench http`: wrk against a real nginx, from one lab workload to another on
//! the same node, four ways side by side in ONE lab (the agent runs with its L7 proxy;
//! nginx listens on three ports the policy treats differently):
//!
//! - **direct** (port 8082): an L4 rule only, so the kernel rules allow it and the proxy
//!   never sees it;
//! - **HAProxy**: Debian's HAProxy in `mode http` in the node's network namespace; the
//!   client connects to it on the node's address and it connects to nginx's direct port,
//!   deciding every request with the same method + path rule as ours
//!   (`http-request deny unless ...`);
//! - **bulkhead, relay** (port 8081): rule `app: http` only: the proxy detects the
//!   protocol, then relays bytes without parsing;
//! - **bulkhead, HTTP rule** (port 8080): the proxy parses and decides every request with
//!   `http: [{methods: [GET, POST], path: "/v1/status(/.*)?"}]`.
//!
//! Each proxied configuration is one extra hop in user space in the node's namespace
//! (client pod -> node namespace -> server pod) on the same CPUs. wrk runs rotate the
//! order per round; the low-load probe interleaves the four request by request, so noise
//! from other processes on the machine hits all four alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lab::run;

const LAB: &str = "bhbench-http";
/// nginx's ports: decided per request, relayed by the proxy, not diverted.
const PORT: u16 = 8080;
const RELAY_PORT: u16 = 8081;
const DIRECT_PORT: u16 = 8082;
const HAPROXY_PORT: u16 = 18080;
const PATH: &str = "/v1/status/ok";

pub struct Options {
    pub rounds: usize,
    pub seconds: u32,
    /// The agent's `--proxy-busy-poll` (none: off, the default).
    pub busy_poll: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Direct,
    Haproxy,
    Relay,
    Rules,
}

const CONFIGS: [Config; 4] = [
    Config::Direct,
    Config::Haproxy,
    Config::Relay,
    Config::Rules,
];

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Direct => "direct",
            Config::Haproxy => "HAProxy (mode http, rule)",
            Config::Relay => "bulkhead (relay)",
            Config::Rules => "bulkhead (HTTP rule)",
        }
    }
}

/// The wrk runs of each configuration.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    connections: u32,
    close: bool,
    /// Not wrk: `http-client` at this many requests/s on one connection.
    rate: Option<f64>,
    /// Keep every CPU out of its idle state meanwhile (see [`Awake`]).
    awake: bool,
}

const CASES: [Case; 4] = [
    Case {
        name: "keep-alive, 32 connections",
        connections: 32,
        close: false,
        rate: None,
        awake: false,
    },
    Case {
        name: "connection per request, 32 connections",
        connections: 32,
        close: true,
        rate: None,
        awake: false,
    },
    Case {
        name: "low load: 2000 req/s in all, 1 connection each, interleaved",
        connections: 1,
        close: false,
        rate: Some(2000.0),
        awake: false,
    },
    Case {
        name: "low load, CPUs kept awake (a SCHED_IDLE spinner per CPU)",
        connections: 1,
        close: false,
        rate: Some(2000.0),
        awake: true,
    },
];

/// One `SCHED_IDLE` busy loop per CPU while it lives. At low load a VM's idle vCPU
/// halts, and waking it (an exit to the host, whose scheduler runs it again) costs tens
/// to hundreds of microseconds, once per thread a request wakes: every hop pays it, the
/// direct path (client, server) too. A spinner that runs only when nothing else wants
/// the CPU keeps it from halting, as `idle=poll` would for the whole guest: what stays is
/// the hop itself. It never delays other threads (any of them preempts it at once).
struct Awake(Vec<Child>);

impl Awake {
    fn start() -> Result<Awake> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut kids = Vec::new();
        for cpu in 0..cpus {
            let child = Command::new("chrt")
                .args(["--idle", "0", "taskset", "-c", &cpu.to_string()])
                .args(["sh", "-c", "while :; do :; done"])
                .spawn()
                .context("starting a SCHED_IDLE spinner (chrt, taskset: util-linux)")?;
            kids.push(child);
        }
        Ok(Awake(kids))
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        for k in &mut self.0 {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}

/// One wrk run: requests/s, p50 and p99 in microseconds.
#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50: f64,
    p99: f64,
}

fn lab_input(dir: &Path) -> String {
    format!(
        r#"apiVersion: bulkhead.io/v1
kind: Lab
metadata: {{name: {LAB}}}
spec:
  nodes: [node-1]
  workloads:
    - {{name: client, namespace: bench, labels: {{app: bench-client}}, node: node-1}}
    - name: server
      namespace: bench
      labels: {{app: bench-http}}
      node: node-1
      ports: [{{name: http, port: {PORT}}}, {{name: relay, port: {RELAY_PORT}}}, {{name: direct, port: {DIRECT_PORT}}}]
      run: {{command: [nginx, -e, {dir}/nginx-error.log, -c, {dir}/nginx.conf]}}
"#,
        dir = dir.display()
    )
}

/// The policy: client -> server per port as above, client -> node (HAProxy) and node ->
/// server's direct port.
const POLICY: &str = r#"# Protect: what no rule allows is denied (an ungrouped workload would be in Discover).
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: bench}
spec:
  selector: app in {"bench-client", "bench-http"}
  mode: Protect
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: client-calls-server}
spec:
  appliesTo: [{selector: 'app == "bench-client"'}]
  egress:
    - action: Allow
      to: [{selector: 'app == "bench-http"'}]
      ports: [TCP/http, TCP/relay]
      app: http
    - action: Allow
      to: [{selector: 'app == "bench-http"'}]
      ports: [TCP/direct]
    - action: Allow
      to: [{entity: host}]
      ports: [TCP/18080]
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: server-accepts-client}
spec:
  appliesTo: [{selector: 'app == "bench-http"'}]
  ingress:
    - action: Allow
      from: [{selector: 'app == "bench-client"'}]
      ports: [TCP/http]
      app: http
      http: [{methods: [GET, POST], path: "/v1/status(/.*)?"}]
    - action: Allow
      from: [{selector: 'app == "bench-client"'}]
      ports: [TCP/relay]
      app: http
    - action: Allow
      from: [{selector: 'app == "bench-client"'}, {entity: host}]
      ports: [TCP/direct]
"#;

fn nginx_conf(dir: &Path) -> String {
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 1000000;
    default_type application/json;
    server {{
        listen {PORT} reuseport;
        listen {RELAY_PORT} reuseport;
        listen {DIRECT_PORT} reuseport;
        root {dir}/www;
    }}
}}
"#,
        dir = dir.display()
    )
}

/// HAProxy in HTTP mode with the same rule as ours: anything but GET/POST on
/// /v1/status(/.*)? gets a 403 and never reaches the server.
fn haproxy_conf(dir: &Path, server: &str) -> String {
    format!(
        r#"global
    maxconn 4096
    pidfile {dir}/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind :{HAPROXY_PORT}
    http-request deny unless {{ method GET POST }} {{ path_reg ^/v1/status(/.*)?$ }}
    default_backend nginx
backend nginx
    server nginx {server}:{DIRECT_PORT}
"#,
        dir = dir.display()
    )
}

fn prepare() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("bulkhead-bench-http");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www/v1/status"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::write(
        dir.join("www/v1/status/ok"),
        "{\"status\":\"ok\",\"score\":712,\"checked\":\"2026-12-02T00:00:00Z\"}\n",
    )?;
    std::fs::write(dir.join("lab.yaml"), lab_input(&dir))?;
    std::fs::write(dir.join("nginx.conf"), nginx_conf(&dir))?;
    std::fs::write(dir.join("policy.yaml"), POLICY)?;
    // nginx's workers run as nobody.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX", &dir.display().to_string()])
        .status();
    let _ = Command::new("chmod")
        .args(["a+rwx", &dir.join("tmp").display().to_string()])
        .status();
    Ok(dir)
}

struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = run(self.0, &["lab", "down", "--name", LAB]);
    }
}

/// HAProxy, stopped (by its pid) when dropped.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Up {
    /// host:port per configuration (in `CONFIGS` order).
    addrs: Vec<String>,
    _haproxy: Haproxy,
}

fn exec(bin: &Path, args: &[&str]) -> Result<String> {
    let mut a = vec!["lab", "exec", "--name", LAB, "bench/client", "--"];
    a.extend_from_slice(args);
    run(bin, &a)
}

fn up(bin: &Path, dir: &Path, busy_poll: Option<&str>) -> Result<Up> {
    let lab = dir.join("lab.yaml").display().to_string();
    let policy = dir.join("policy.yaml").display().to_string();
    let busy_poll = busy_poll.map(|d| format!("--proxy-busy-poll={d}"));
    let mut args = vec![
        "lab",
        "up",
        "-f",
        &lab,
        "-f",
        &policy,
        "--name",
        LAB,
        "-o",
        "json",
        "--l7-proxy",
    ];
    args.extend(busy_poll.as_deref());
    let status: serde_json::Value = serde_json::from_str(&run(bin, &args)?)?;
    let server = status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == "bench/server"))
        .and_then(|w| w["ipv4"].as_str())
        .context("bench/server has no address")?
        .to_string();
    let node = &status["nodes"][0];
    let (netns, address) = node["netns"]
        .as_str()
        .zip(node["ipv4"].as_str())
        .context("the lab's node has no namespace or address")?;
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_conf(dir, &server))?;
    let haproxy = Haproxy(
        Command::new("ip")
            .args(["netns", "exec", netns, "haproxy", "-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting haproxy (apt-get install haproxy)")?,
    );
    let addrs: Vec<String> = CONFIGS
        .iter()
        .map(|c| match c {
            Config::Direct => format!("{server}:{DIRECT_PORT}"),
            Config::Haproxy => format!("{address}:{HAPROXY_PORT}"),
            Config::Relay => format!("{server}:{RELAY_PORT}"),
            Config::Rules => format!("{server}:{PORT}"),
        })
        .collect();
    let code = |url: &str| {
        exec(
            bin,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-m",
                "1",
                "-w",
                "%{http_code}",
                url,
            ],
        )
        .unwrap_or_default()
        .trim()
        .to_string()
    };
    // Each path answers the file, and a request the rule refuses gets 403 from the
    // bulkhead proxy and HAProxy, 404 from nginx elsewhere. Awaited: the agent may still
    // be applying the policy.
    for (c, addr) in CONFIGS.iter().zip(&addrs) {
        let want = if matches!(c, Config::Haproxy | Config::Rules) {
            "403"
        } else {
            "404"
        };
        let mut last = String::new();
        for _ in 0..100 {
            if code(&format!("http://{addr}{PATH}")) == "200" {
                last = code(&format!("http://{addr}/admin"));
                if last == want {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if last != want {
            bail!(
                "{}: GET /admin answered {last:?}, not {want} (empty: {PATH} never answered 200)",
                c.name()
            );
        }
    }
    Ok(Up {
        addrs,
        _haproxy: haproxy,
    })
}

/// "123.45us" / "1.20ms" / "2.00s" -> microseconds.
fn micros(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn parse_wrk(out: &str) -> Result<Sample> {
    let mut s = Sample::default();
    for l in out.lines().map(str::trim) {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => s.p50 = micros(v).context("p50")?,
            ["99%", v] => s.p99 = micros(v).context("p99")?,
            ["Requests/sec:", v] => s.rps = v.parse()?,
            ["Non-2xx", ..] => bail!("wrk got errors: {l}\n{out}"),
            _ => {}
        }
    }
    if s.rps == 0.0 || s.p99 == 0.0 {
        bail!("no results in wrk's output:\n{out}");
    }
    Ok(s)
}

/// The low-load probe over every configuration at once, interleaved.
fn probe(bin: &Path, me: &Path, up: &Up, rate: f64, seconds: u32) -> Result<Vec<Sample>> {
    let me = me.display().to_string();
    let (r, d) = (rate.to_string(), seconds.to_string());
    let mut args = vec![
        me.as_str(),
        "http-client",
        "--path",
        PATH,
        "--rate",
        &r,
        "--seconds",
        &d,
    ];
    for a in &up.addrs {
        args.extend(["--target", a.as_str()]);
    }
    let out = exec(bin, &args)?;
    let samples: Vec<Sample> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<f64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match f.as_slice() {
                [p50, p99, n] => Some(Sample {
                    rps: n / seconds as f64,
                    p50: *p50,
                    p99: *p99,
                }),
                _ => None,
            }
        })
        .collect();
    if samples.len() != up.addrs.len() {
        bail!("http-client said {out:?}");
    }
    Ok(samples)
}

fn wrk(bin: &Path, url: &str, case: Case, seconds: u32) -> Result<Sample> {
    let c = case.connections.to_string();
    let d = format!("{seconds}s");
    let mut args = vec!["wrk", "-t1", "-c", &c, "-d", &d, "--latency"];
    if case.close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    parse_wrk(&exec(bin, &args)?)
}

/// `bulkhead-bench http-client`: GET `path` over one keep-alive connection per target,
/// `rate` requests/s in all at fixed times, the targets taking turns request by request,
/// each request timed alone: latency at low load, which wrk (closed loop, as fast as it
/// can) does not measure. Per target: p50 and p99 in microseconds, number of requests.
pub fn client(
    targets: &[SocketAddr],
    path: &str,
    rate: f64,
    seconds: f64,
) -> Result<Vec<(f64, f64, usize)>> {
    let mut conns = targets
        .iter()
        .map(|t| {
            let s = TcpStream::connect(t).with_context(|| format!("connecting to {t}"))?;
            s.set_nodelay(true)?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bulkhead-bench\r\n\r\n");
    let mut buf = vec![0u8; 16 * 1024];
    let mut lat: Vec<Vec<f64>> = targets.iter().map(|_| Vec::new()).collect();
    let gap = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut next = start;
    let mut k = 0;
    while start.elapsed().as_secs_f64() < seconds {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += gap;
        let s = &mut conns[k];
        let t = Instant::now();
        s.write_all(request.as_bytes())?;
        // One response: its head, then Content-Length bytes of body.
        let mut have = 0;
        loop {
            let n = s.read(&mut buf[have..])?;
            if n == 0 {
                bail!("{} closed the connection", targets[k]);
            }
            have += n;
            let got = &buf[..have];
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                if !head.starts_with("http/1.1 200") {
                    bail!("{}: {}", targets[k], head.lines().next().unwrap_or(""));
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .context("no content-length")?;
                if have >= end + 4 + len {
                    break;
                }
            }
            if have == buf.len() {
                bail!("response too long");
            }
        }
        lat[k].push(t.elapsed().as_secs_f64() * 1e6);
        k = (k + 1) % conns.len();
    }
    Ok(lat
        .into_iter()
        .map(|mut l| {
            l.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))];
            if l.is_empty() {
                (f64::NAN, f64::NAN, 0)
            } else {
                (pct(0.50), pct(0.99), l.len())
            }
        })
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run_bench(bin: &Path, me: &Path, o: &Options) -> Result<String> {
    let dir = prepare()?;
    let _down = Down(bin);
    let up = up(bin, &dir, o.busy_poll.as_deref())?;
    // [case][config] -> samples
    let mut samples: Vec<[Vec<Sample>; 4]> = CASES.iter().map(|_| Default::default()).collect();
    for round in 0..o.rounds {
        for (i, case) in CASES.iter().enumerate() {
            if let Some(rate) = case.rate {
                let _awake = if case.awake {
                    Some(Awake::start()?)
                } else {
                    None
                };
                let s = probe(bin, me, &up, rate, o.seconds).context(case.name)?;
                for (c, s) in s.into_iter().enumerate() {
                    samples[i][c].push(s);
                }
                continue;
            }
            for k in 0..CONFIGS.len() {
                let c = (round + k) % CONFIGS.len();
                let url = format!("http://{}{PATH}", up.addrs[c]);
                let s = wrk(bin, &url, *case, o.seconds)
                    .with_context(|| format!("{}, {}", CONFIGS[c].name(), case.name))?;
                samples[i][c].push(s);
            }
        }
    }
    Ok(table(&samples, o))
}

fn table(samples: &[[Vec<Sample>; 4]], o: &Options) -> String {
    let mut out = format!(
        "wrk -t1 -d{}s --latency (32 connections; with `-H \"Connection: close\"` for connection per request) and, at low load, `bulkhead-bench http-client` (one keep-alive connection per configuration, 2000 requests/s in all at fixed times, the four configurations taking turns request by request, each request timed alone; once more with every CPU kept out of its idle state by a SCHED_IDLE spinner, for all four alike), from bench/client to nginx (1 worker, a 63-byte static file at {PATH}) in bench/server, same node, one lab; {} round(s), wrk runs in rotating order, median of the rounds. Added = minus direct. The proxy's busy polling: {}.\n\n",
        o.seconds,
        o.rounds,
        o.busy_poll
            .as_deref()
            .map_or("off".to_string(), |d| format!("`--proxy-busy-poll {d}`"))
    );
    out.push_str("| case | configuration | req/s | p50 us | p99 us | added p50 us | added p99 us |\n|---|---|---|---|---|---|---|\n");
    let mut verdicts = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let col = |c: usize, f: fn(&Sample) -> f64| median(samples[i][c].iter().map(f).collect());
        let direct = (col(0, |s| s.p50), col(0, |s| s.p99));
        for (c, config) in CONFIGS.iter().enumerate() {
            let (rps, p50, p99) = (col(c, |s| s.rps), col(c, |s| s.p50), col(c, |s| s.p99));
            let added = if c == 0 {
                "-".to_string()
            } else {
                format!("{:.0}", p50 - direct.0)
            };
            let added99 = if c == 0 {
                "-".to_string()
            } else {
                format!("{:.0}", p99 - direct.1)
            };
            out.push_str(&format!(
                "| {} | {} | {rps:.0} | {p50:.0} | {p99:.0} | {added} | {added99} |\n",
                case.name,
                config.name(),
            ));
        }
        if case.rate.is_none() {
            let ratio = col(3, |s| s.rps) / col(1, |s| s.rps);
            verdicts.push(format!(
                "- {}: req/s bulkhead (HTTP rule) / HAProxy = **{ratio:.2}** (relay {:.2}); target >= 1.0: **{}**",
                case.name,
                col(2, |s| s.rps) / col(1, |s| s.rps),
                if ratio >= 1.0 { "PASS" } else { "MISS" }
            ));
        }
        if case.rate.is_some() {
            let added = col(3, |s| s.p99) - direct.1;
            verdicts.push(format!(
                "- {}: added p99 (HTTP rule) = **{added:.0} us** (HAProxy {:.0} us, relay {:.0} us); target < 100 us: **{}**",
                case.name,
                col(1, |s| s.p99) - direct.1,
                col(2, |s| s.p99) - direct.1,
                if added < 100.0 { "PASS" } else { "MISS" }
            ));
        }
    }
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk() {
        let out = "Running 1s test @ http://10.244.0.3:8080/v1/status/ok
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.53us  101.23us   4.10ms   90.12%
    Req/Sec    75.10k     3.21k   80.00k    70.00%
  Latency Distribution
     50%  398.00us
     75%  450.00us
     90%  520.00us
     99%    1.02ms
  74563 requests in 1.00s, 20.11MB read
Requests/sec:  74501.23
Transfer/sec:     20.09MB
";
        let s = parse_wrk(out).unwrap();
        assert_eq!(s.p50, 398.0);
        assert_eq!(s.p99, 1020.0);
        assert_eq!(s.rps, 74501.23);
        assert!(parse_wrk(&format!("{out}  Non-2xx or 3xx responses: 3\n")).is_err());
        assert_eq!(micros("2.00s"), Some(2e6));
    }
}
