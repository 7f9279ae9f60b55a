//! Time from a file change to the kernel being programmed, through the real agent:
//! inventories of 1k and 10k workloads (one file per workload, as the lab and a
//! Kubernetes watcher would write them), policy with hundreds to thousands of rules;
//! relabels (identity changes) and policy edits; p50/p99 from the agent's own record
//! (`latency.jsonl`: from the watcher's event to the end of the nft transaction).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lab::{Guard, Netns};

pub struct Options {
    pub sizes: Vec<(usize, usize)>,
    pub relabels: usize,
    pub policy_edits: usize,
}

fn pod(i: usize, variant: &str) -> String {
    // Ten replicas per application, all in the application's namespace: identities are
    // about workloads / 10, as in real clusters.
    let app = i / 10;
    let ns = app % 20;
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{i:06}, namespace: ns-{ns}, labels: {{app: app-{app}, tier: t{t}, variant: {variant}}}}}\n\
         spec: {{nodeName: node-1, containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}]}}]}}\n\
         status: {{podIPs: [{{ip: 172.{a}.{b}.{c}}}]}}\n",
        t = app % 3,
        a = 16 + (i >> 16),
        b = (i >> 8) & 255,
        c = i & 255,
    )
}

fn policy(j: usize, apps: usize, port: u16) -> String {
    let (a, b, c) = (j % apps, (j * 7 + 1) % apps, (j * 13 + 2) % apps);
    if j.is_multiple_of(2) {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np-{j}, namespace: ns-{ns}}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: app-{a}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: app-{b}}}}}}}]\n    ports: [{{port: http}}, {{port: {port}}}]\n",
            ns = a % 20
        )
    } else {
        format!(
            "apiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {{name: p-{j}}}\nspec:\n  priority: {j}\n  appliesTo: [{{selector: 'app == \"app-{a}\"'}}]\n  ingress:\n  \
             - {{action: Allow, from: [{{selector: 'app == \"app-{b}\"'}}], ports: [TCP/{port}]}}\n  \
             - {{action: Deny, from: [{{selector: 'app == \"app-{c}\"'}}]}}\n  egress:\n  \
             - {{action: Allow, to: [{{selector: 'tier == \"t1\"'}}], ports: [TCP/http]}}\n"
        )
    }
}

/// Write `path` the way careful writers do: a temporary file, then a rename.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn latencies(state: &Path, kind: &str) -> Vec<f64> {
    std::fs::read_to_string(state.join("latency.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["change"] == kind)
        .filter_map(|v| v["latency_ms"].as_f64())
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let t = Instant::now();
    while !ok() {
        if t.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn run(bulkhead: &Path, o: &Options) -> Result<String> {
    let mut out = String::from(
        "| workloads | policies | identities | change | n | p50 | p99 | max | target |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for &(workloads, policies) in &o.sizes {
        let root = std::env::temp_dir().join(format!("bulkhead-bench-latency-{workloads}"));
        let _ = std::fs::remove_dir_all(&root);
        let (inv, pol, state) = (
            root.join("inventory"),
            root.join("policy"),
            root.join("state"),
        );
        for d in [&inv, &pol, &state] {
            std::fs::create_dir_all(d)?;
        }
        let mut ns = String::new();
        for n in 0..20 {
            let _ = write!(
                ns,
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{n}}}\n"
            );
        }
        std::fs::write(inv.join("namespaces.yaml"), ns)?;
        for i in 0..workloads {
            std::fs::write(inv.join(format!("pod-{i:06}.yaml")), pod(i, "a"))?;
        }
        let apps = workloads / 10;
        for j in 0..policies {
            std::fs::write(
                pol.join(format!("policy-{j:05}.yaml")),
                policy(j, apps, 9000),
            )?;
        }
        let netns = Netns::new("bhbench-latency")?;
        let agent = std::process::Command::new(bulkhead)
            .args([
                "agent",
                "--netns",
                &netns.0,
                "--no-log-allowed",
                "--state-dir",
            ])
            .arg(&state)
            .arg("--inventory")
            .arg(&inv)
            .arg("-f")
            .arg(&pol)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(root.join("agent.log"))?)
            .spawn()
            .context("starting the agent")?;
        let _agent = Guard(agent);
        wait_for(
            "the agent to program the node",
            Duration::from_secs(300),
            || state.join("status.json").exists(),
        )?;
        let status: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("status.json"))?)?;
        let identities = status["identities"].as_u64().unwrap_or(0);

        // Relabels: a workload's identity changes (to one its replicas may not have).
        let before = latencies(&state, "inventory").len();
        // Each relabel flips a different workload's variant (a -> b), so every write is
        // a real change of identity.
        for k in 0..o.relabels {
            let i = (k * 7919) % workloads;
            write_atomic(&inv.join(format!("pod-{i:06}.yaml")), &pod(i, "b"))?;
            std::thread::sleep(Duration::from_millis(300));
        }
        wait_for("relabels to be programmed", Duration::from_secs(60), || {
            latencies(&state, "inventory").len() >= before + o.relabels
        })?;
        // Policy edits: one policy's port changes.
        for k in 0..o.policy_edits {
            let j = (k * 31) % policies;
            write_atomic(
                &pol.join(format!("policy-{j:05}.yaml")),
                &policy(j, apps, 9001 + k as u16),
            )?;
            std::thread::sleep(Duration::from_millis(400));
        }
        wait_for(
            "policy edits to be programmed",
            Duration::from_secs(60),
            || latencies(&state, "policy").len() >= o.policy_edits,
        )?;
        for (kind, skip) in [("inventory", before), ("policy", 0)] {
            let mut l: Vec<f64> = latencies(&state, kind).into_iter().skip(skip).collect();
            if l.is_empty() {
                continue;
            }
            let n = l.len();
            let (p50, p99, max) = (
                percentile(&mut l, 0.5),
                percentile(&mut l, 0.99),
                percentile(&mut l, 1.0),
            );
            let target = if workloads >= 10_000 {
                if p99 < 50.0 {
                    "p99 < 50 ms PASS"
                } else {
                    "p99 < 50 ms MISS"
                }
            } else {
                "-"
            };
            let what = if kind == "inventory" {
                "relabel a workload"
            } else {
                "edit a policy"
            };
            let _ = writeln!(
                out,
                "| {workloads} | {policies} | {identities} | {what} | {n} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {target} |"
            );
        }
    }
    Ok(out)
}
