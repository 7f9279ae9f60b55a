//! `bulkhead-bench dns`: dnsperf between two lab workloads of the DNS test's lab
//! (`crates/cli/tests/fixtures/dns`: apps/client-0 -> a real dnsmasq in infra/dns-0),
//! directly (the same rule without its `app:` and `dns:` lines: the kernel decides, no
//! proxy on the node) and through the agent's transparent proxy deciding every query's
//! name, in one run, rounds alternating so drift cancels out. Throughput: one client
//! socket, 100 queries in flight (dnsperf's default); latency: 2,000 queries a second,
//! each query's time from dnsperf's verbose lines.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::l7::{bulkhead, median};

const LAB: &str = "bhbench-dns";
const FIXTURE: &str = "crates/cli/tests/fixtures/dns";
/// The fixed rate of the latency runs, queries a second.
const RATE: u32 = 2000;

pub struct Options {
    pub rounds: usize,
    pub seconds: u32,
}

struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = bulkhead(self.0, &["lab", "down", "--name", LAB]);
    }
}

const CONFIGS: [&str; 2] = ["direct (kernel rules)", "proxy, query names decided"];

/// The fixture without its layer-7 lines, and the queries dnsperf sends.
fn prepare() -> Result<(PathBuf, PathBuf)> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let dir = std::env::temp_dir().join("bulkhead-bench-dns-l4");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for f in ["lab.yaml", "policy.yaml"] {
        let text: String = std::fs::read_to_string(root.join(FIXTURE).join(f))?
            .lines()
            .filter(|l| {
                !["app: dns", "dns: ["]
                    .iter()
                    .any(|d| l.trim_start().starts_with(d))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.join(f), text)?;
    }
    let queries = std::env::temp_dir().join("bulkhead-bench-dns-queries.txt");
    std::fs::write(&queries, "api.example.com A\n".repeat(64))?;
    Ok((dir, queries))
}

/// Up with `config`; the server's address.
fn up(bin: &Path, config: usize, l4: &Path) -> Result<String> {
    let files = if config == 0 {
        format!("{}/", l4.display())
    } else {
        format!("{FIXTURE}/")
    };
    let mut args = vec!["lab", "up", "-f", &files, "--name", LAB, "-o", "json"];
    if config == 1 {
        args.push("--l7-proxy");
    }
    let status: serde_json::Value = serde_json::from_str(&bulkhead(bin, &args)?)?;
    let ip = status["workloads"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == "infra/dns-0"))
        .and_then(|w| w["ipv4"].as_str())
        .context("no infra/dns-0 address")?
        .to_string();
    // dnsmasq is up once it answers.
    for _ in 0..100 {
        let a = dnsperf(bin, &ip, &["-n", "1", "-t", "1"], None);
        let done = |o: &str| {
            o.lines()
                .any(|l| l.contains("Queries completed:") && l.contains("(100.00%)"))
        };
        if a.is_ok_and(|o| done(&o)) {
            return Ok(ip);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("dnsmasq in {LAB} never answered")
}

fn dnsperf(bin: &Path, ip: &str, extra: &[&str], queries: Option<&Path>) -> Result<String> {
    let default = std::env::temp_dir().join("bulkhead-bench-dns-queries.txt");
    let file = queries.unwrap_or(&default).display().to_string();
    let mut args = vec![
        "lab",
        "exec",
        "--name",
        LAB,
        "apps/client-0",
        "--",
        "timeout",
        "120",
        "dnsperf",
        "-s",
        ip,
        "-d",
        &file,
        "-c",
        "1",
    ];
    args.extend(extra);
    bulkhead(bin, &args)
}

/// (queries/s, lost %) of a throughput run.
fn throughput(out: &str) -> Result<(f64, f64)> {
    let field = |name: &str| -> Result<f64> {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .with_context(|| format!("no {name} in: {out}"))?;
        let v = line[line.find(':').unwrap_or(0) + 1..].trim();
        let v = v
            .split([' ', '%', '('])
            .find(|s| !s.is_empty())
            .unwrap_or("");
        Ok(v.parse()?)
    };
    let lost = out
        .lines()
        .find(|l| l.trim_start().starts_with("Queries lost:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|p| p.trim_end_matches([')', '%']).parse().ok())
        .unwrap_or(f64::NAN);
    Ok((field("Queries per second:")?, lost))
}

/// (p50, p99) in microseconds of the answered queries of a verbose run.
fn latency(out: &str) -> Result<(f64, f64)> {
    let mut v: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with("> NOERROR"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|s| s * 1e6)
        .collect();
    anyhow::ensure!(v.len() > 100, "too few answers: {}", v.len());
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    Ok((at(0.50), at(0.99)))
}

type Sample = (f64, f64, f64, f64);

pub fn run(bin: &Path, o: &Options) -> Result<String> {
    let (l4, queries) = prepare()?;
    let secs = o.seconds.to_string();
    let rate = RATE.to_string();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); CONFIGS.len()];
    for round in 0..o.rounds {
        for k in 0..CONFIGS.len() {
            // Alternate which configuration goes first.
            let config = (k + round) % CONFIGS.len();
            let _ = bulkhead(bin, &["lab", "down", "--name", LAB]);
            let _down = Down(bin);
            let ip = up(bin, config, &l4)?;
            let t = throughput(&dnsperf(bin, &ip, &["-l", &secs], Some(&queries))?)?;
            let l = latency(&dnsperf(
                bin,
                &ip,
                &["-l", &secs, "-Q", &rate, "-v"],
                Some(&queries),
            )?)?;
            eprintln!(
                "round {}: {}: {:.0} q/s, lost {:.2} %, p50 {:.0} us, p99 {:.0} us",
                round + 1,
                CONFIGS[config],
                t.0,
                t.1,
                l.0,
                l.1
            );
            samples[config].push((t.0, t.1, l.0, l.1));
        }
    }
    let col = |k: usize, f: fn(&Sample) -> f64| median(samples[k].iter().map(f).collect());
    let mut out = format!(
        "dnsperf from apps/client-0 to dnsmasq in infra/dns-0 (`{FIXTURE}`), one lab, one node; \
{} round(s) of {} s per run, median of the rounds. Throughput: one client socket, 100 \
queries in flight; latency: {RATE} queries/s.\n\n\
| configuration | queries/s | lost | p50 us | p99 us | queries/s / direct |\n|---|---:|---:|---:|---:|---:|\n",
        o.rounds, o.seconds
    );
    let direct = col(0, |s| s.0);
    for (k, name) in CONFIGS.iter().enumerate() {
        let qps = col(k, |s| s.0);
        out.push_str(&format!(
            "| {name} | {qps:.0} | {:.2} % | {:.0} | {:.0} | {:.2} |\n",
            col(k, |s| s.1),
            col(k, |s| s.2),
            col(k, |s| s.3),
            qps / direct
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dnsperf() {
        let out = "  Queries sent:         75192\n  Queries completed:    75192 (100.00%)\n  Queries lost:         12 (0.02%)\n\n  Queries per second:   15022.761305\n";
        assert_eq!(throughput(out).unwrap(), (15022.761305, 0.02));
        let lines: String = (1..=200)
            .map(|i| format!("> NOERROR api.example.com A 0.{i:06}\n"))
            .collect();
        let (p50, p99) = latency(&lines).unwrap();
        assert_eq!((p50.round(), p99.round()), (100.0, 198.0));
    }
}
