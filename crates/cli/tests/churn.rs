//! Churn: "a churn test (add/remove/relabel 200 workloads while probing continuously)
//! finds no connection that policy forbids", in a real lab with the real agents.
//!
//! The lab (two nodes, one agent each, fail-closed on every workload link):
//! - `vault/vault-0`, `vault/vault-1` (one per node): servers on TCP/8200 and UDP/8200,
//!   in a Protect group whose only ingress rule allows `role == "client"`;
//! - `apps/client-0..3` (two per node): `role: client`, never changed: they must reach
//!   the vault at EVERY probe; a failure means churn elsewhere blocked them wrongly;
//! - `open/open-0`, `open/open-1`: ungrouped (Discover, allows), the witnesses that a
//!   new workload's link works once its agent knows it.
//!
//! While two prober threads probe continuously (TCP and UDP, IPv4 and IPv6 rounds
//! alternating) every stable client -> every vault server and every churned workload ->
//! every vault server, the test adds, relabels and removes 200 churned workloads in
//! interleaved batches, in the namespaces `churn`, `apps` (next to the clients) and
//! `vault` (some relabelled into the vault's Protect group). Churned workloads only ever
//! carry forbidden roles (`role in {"intruder", "guest"}`), so ANY probe of theirs that
//! reaches the vault, at any instant (right after being added, while being relabelled
//! between forbidden roles, while being removed), is a violation.
//!
//! Fail-closed is checked per batch: each batch is staged (made, running, recorded, not
//! yet in the inventory) and probed in that state: it must reach nothing (not even the
//! open witnesses, which allow everyone) and nothing may reach it. Once published (the
//! lab waits until every agent's kernel maps the new addresses) the same links must
//! work: the denials were fail-closed, not broken wiring.
//!
//! The test can fail: a canary first shows the probes see a change of verdict (relabelled
//! to `role: client`, it must get through; relabelled back, it must not). The kernel's
//! own records are checked too: no `allow` flow record to a vault address from anything
//! but a stable client. At the end: counts, zero violations, zero wrongly blocked
//! probes, no agent error, and `lab down` leaves nothing.
//!
//! Root only (network namespaces, nftables); with BULKHEAD_REQUIRE_PRIVILEGED=1 not
//! being able to run is a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_analyze::matrix::Family;
use bulkhead_lab::{LabelEdits, Outcome, PairProbe, ProbeOptions, State};
use bulkhead_model::{L4, Labels};

const LAB: &str = "churn";
/// Churned workloads, in all.
const CHURNED: usize = 200;
const VAULTS: [&str; 2] = ["vault/vault-0", "vault/vault-1"];
const CLIENTS: [&str; 4] = [
    "apps/client-0",
    "apps/client-1",
    "apps/client-2",
    "apps/client-3",
];
const OPEN: [&str; 2] = ["open/open-0", "open/open-1"];
/// Outside every node's subnet: never handed to a churned workload, so the kernel's
/// records of the canary's allowed phase cannot be mistaken for a churned one's.
const CANARY_IP: &str = "10.245.0.9";

const LAB_YAML: &str = "apiVersion: bulkhead.io/v1
kind: Lab
metadata: {name: churn}
spec:
  nodes: [node-1, node-2]
  workloads:
    - {name: vault-0, namespace: vault, labels: {app: vault}, node: node-1,
       ports: [{port: 8200}, {port: 8200, protocol: UDP}]}
    - {name: vault-1, namespace: vault, labels: {app: vault}, node: node-2,
       ports: [{port: 8200}, {port: 8200, protocol: UDP}]}
    - {name: client-0, namespace: apps, labels: {role: client}, node: node-1}
    - {name: client-1, namespace: apps, labels: {role: client}, node: node-2}
    - {name: client-2, namespace: apps, labels: {role: client, tier: web}, node: node-1}
    - {name: client-3, namespace: apps, labels: {role: client, tier: web}, node: node-2}
    - {name: open-0, namespace: open, labels: {app: open}, node: node-1,
       ports: [{port: 80}, {port: 53, protocol: UDP}]}
    - {name: open-1, namespace: open, labels: {app: open}, node: node-2,
       ports: [{port: 80}, {port: 53, protocol: UDP}]}
";

const POLICY_YAML: &str = "apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: vault}
spec:
  selector: app == \"vault\"
  namespaces: [vault]
  mode: Protect
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: vault-clients}
spec:
  appliesTo: [{group: vault}]
  ingress:
    - {action: Allow, name: clients, from: [{selector: role == \"client\"}]}
";

fn bulkhead(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .expect("run bulkhead");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Brings the lab down when the test ends, however it ends; when it fails, the agents'
/// logs and state files are kept first (the path is printed).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            keep_agent_files();
        }
        let _ = bulkhead(&["lab", "down", "--name", LAB]);
    }
}

/// Copy the agents' logs, flow records and state files out of the lab (which `lab down`
/// removes), to look into a failure.
fn keep_agent_files() {
    let keep = std::env::temp_dir().join(format!("bulkhead-churn-{}", std::process::id()));
    let agents = bulkhead_lab::names::lab_dir(LAB).join("agents");
    let _ = Command::new("cp")
        .arg("-r")
        .arg(&agents)
        .arg(&keep)
        .status();
    eprintln!(
        "the agents' logs and state files are kept in {}",
        keep.display()
    );
}

/// xorshift64*: the same schedule on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.range(0, v.len() - 1)]
    }
}

fn pair(src: &str, dst: &str, probe: &str) -> PairProbe {
    PairProbe {
        src: src.into(),
        dst: dst.into(),
        probe: probe.parse::<L4>().unwrap(),
    }
}

fn opts(family: Family, timeout_ms: u64) -> ProbeOptions {
    ProbeOptions {
        probes: Vec::new(),
        family,
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn yaml_labels(labels: &Labels) -> String {
    let items: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// Pods as `lab add` takes them.
fn pods(list: &[(String, String, Labels, bool)], extra: &str) -> bulkhead_policy::spec::Bundle {
    let mut text = String::new();
    for (name, ns, labels, serves) in list {
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {}}}\n{extra}",
            yaml_labels(labels)
        );
        if *serves {
            text.push_str(
                "spec: {containers: [{name: c, ports: [{containerPort: 9000}, \
                 {containerPort: 9000, protocol: UDP}]}]}\n",
            );
        }
    }
    bulkhead_manifest::parse_sources(&[bulkhead_manifest::Source {
        name: "churn.yaml".into(),
        text,
    }])
    .unwrap_or_else(|d| panic!("{d}"))
}

/// What the prober saw.
#[derive(Default)]
struct Tally {
    stable_rounds: u64,
    churned_rounds: u64,
    probes: u64,
    stable_allowed: u64,
    churned_denied: u64,
    /// Churned probes whose source went away while probed (not a verdict).
    churned_gone: u64,
    violations: Vec<String>,
    wrongly_blocked: Vec<String>,
}

/// How often the stable clients are probed (each pair, TCP and UDP).
const STABLE_PERIOD: Duration = Duration::from_millis(250);

/// Which sources a prober thread probes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sources {
    /// The stable clients: 3 s to answer, so a slow moment of a loaded machine is not
    /// taken for a denial.
    Stable,
    /// Every churned workload (not the canary): 500 ms, so the probes of a workload
    /// whose link is deleted while they wait (they can only time out) do not slow the
    /// rounds down. Allowed connections answer within milliseconds; the kernel's own
    /// flow records are checked as well.
    Churned,
}

/// Probe until `stop`: from `sources` to every vault server, TCP and UDP, IPv4 and
/// IPv6 rounds alternating.
fn prober(sources: Sources, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>, t0: Instant) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let Ok(st) = bulkhead_lab::load(LAB) else {
            continue;
        };
        let churned: Vec<(String, Labels)> = st
            .plan
            .workloads
            .iter()
            .filter(|w| w.key.name.starts_with("churn-"))
            .map(|w| (w.key.to_string(), w.labels.clone()))
            .collect();
        let srcs: Vec<String> = match sources {
            Sources::Stable => CLIENTS.iter().map(|c| c.to_string()).collect(),
            Sources::Churned => churned.iter().map(|(k, _)| k.clone()).collect(),
        };
        let mut pairs = Vec::new();
        for src in &srcs {
            for dst in VAULTS {
                for p in ["TCP/8200", "UDP/8200"] {
                    pairs.push(pair(src, dst, p));
                }
            }
        }
        let family = if round.is_multiple_of(2) {
            Family::V4
        } else {
            Family::V6
        };
        let timeout = match sources {
            Sources::Stable => 3000,
            Sources::Churned => 500,
        };
        let results = bulkhead_lab::probe::probe_pairs(&st, &pairs, &opts(family, timeout));
        let at = t0.elapsed().as_secs_f64();
        let mut t = tally.lock().unwrap();
        match sources {
            Sources::Stable => t.stable_rounds += 1,
            Sources::Churned => t.churned_rounds += 1,
        }
        for r in results {
            t.probes += 1;
            let what = format!(
                "t={at:.2}s {:?} {} -> {} {}",
                family, r.pair.src, r.pair.dst, r.pair.probe
            );
            match (sources, &r.outcome) {
                (Sources::Stable, Outcome::Allowed) => t.stable_allowed += 1,
                (Sources::Stable, o) => t.wrongly_blocked.push(format!("{what}: {o:?}")),
                (Sources::Churned, Outcome::Allowed) => {
                    let labels = churned
                        .iter()
                        .find(|(k, _)| *k == r.pair.src)
                        .map(|(_, l)| l.to_string())
                        .unwrap_or_default();
                    t.violations
                        .push(format!("{what} REACHED the vault (labels {labels})"));
                }
                (Sources::Churned, Outcome::Denied) => t.churned_denied += 1,
                (Sources::Churned, Outcome::Untestable(_)) => t.churned_gone += 1,
            }
        }
        drop(t);
        round += 1;
        if sources == Sources::Stable {
            // Every allowed probe is a new connection the nodes' conntrack tables keep
            // for a while (10 s for TCP, 30 s for UDP), and agents scan those tables
            // after every change: four rounds a second keep them at about a thousand.
            std::thread::sleep(STABLE_PERIOD.saturating_sub(started.elapsed()));
        }
    }
}

/// Probe `pairs` until each has outcome `want` (or the deadline): how long it took.
fn until(pairs: &[PairProbe], want: &Outcome, within: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    loop {
        let st = bulkhead_lab::load(LAB).unwrap();
        let r = bulkhead_lab::probe::probe_pairs(&st, pairs, &opts(Family::V4, 1000));
        let wrong: Vec<String> = r
            .iter()
            .filter(|r| r.outcome != *want)
            .map(|r| {
                format!(
                    "{} -> {} {}: {:?}",
                    r.pair.src, r.pair.dst, r.pair.probe, r.outcome
                )
            })
            .collect();
        if wrong.is_empty() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > within {
            return Err(wrong.join("; "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The canary shows the probes see a verdict change both ways.
fn canary() -> (Duration, Duration) {
    let labels: Labels = [("role", "intruder")].into_iter().collect();
    let bundle = pods(
        &[("canary".into(), "churn".into(), labels, false)],
        &format!("status: {{podIP: {CANARY_IP}}}\n"),
    );
    bulkhead_lab::add(LAB, &bundle).unwrap_or_else(|e| panic!("adding the canary: {e:#}"));
    let to_vault: Vec<PairProbe> = VAULTS
        .iter()
        .flat_map(|v| [pair("canary", v, "TCP/8200"), pair("canary", v, "UDP/8200")])
        .collect();
    until(&to_vault, &Outcome::Denied, Duration::ZERO).expect("an intruder is denied");
    let client = LabelEdits::parse(&["role=client".into()], true).unwrap();
    bulkhead_lab::label(LAB, "churn/canary", &client).unwrap();
    let opened = until(&to_vault, &Outcome::Allowed, Duration::from_secs(10))
        .expect("relabelled to role=client, the canary reaches the vault");
    let intruder = LabelEdits::parse(&["role=intruder".into()], true).unwrap();
    bulkhead_lab::label(LAB, "churn/canary", &intruder).unwrap();
    let closed = until(&to_vault, &Outcome::Denied, Duration::from_secs(10))
        .expect("relabelled back, the canary is denied again");
    bulkhead_lab::remove(LAB, &["churn/canary".into()]).unwrap();
    (opened, closed)
}

/// Checks a staged batch (made, not yet in the inventory), then publishes it and checks
/// its links work. Returns the number of probes made.
fn fail_closed(staged: bulkhead_lab::Staged, failures: &mut Vec<String>) -> usize {
    let new: Vec<String> = staged
        .workloads()
        .iter()
        .map(|w| w.key.to_string())
        .collect();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (i, w) in new.iter().enumerate() {
        let open = OPEN[i % 2];
        before.extend([
            pair(w, open, "TCP/80"),
            pair(w, OPEN[(i + 1) % 2], "UDP/53"),
            pair(w, VAULTS[i % 2], "TCP/8200"),
            pair(w, VAULTS[(i + 1) % 2], "UDP/8200"),
            pair(open, w, "TCP/9100"),
        ]);
        after.extend([pair(w, open, "TCP/80"), pair(open, w, "TCP/9100")]);
    }
    let r = bulkhead_lab::probe::probe_pairs(staged.state(), &before, &opts(Family::V4, 1000));
    for r in &r {
        if r.outcome != Outcome::Denied {
            failures.push(format!(
                "fail-closed: {} -> {} {} before its agent knew it: {:?}\n{}",
                r.pair.src,
                r.pair.dst,
                r.pair.probe,
                r.outcome,
                why_not_closed(staged.state(), &r.pair)
            ));
        }
    }
    staged
        .publish()
        .unwrap_or_else(|e| panic!("publishing {new:?}: {e:#}"));
    let st = bulkhead_lab::load(LAB).unwrap();
    let r2 = bulkhead_lab::probe::probe_pairs(&st, &after, &opts(Family::V4, 2000));
    for r in &r2 {
        if r.outcome != Outcome::Allowed {
            failures.push(format!(
                "once enforced, {} -> {} {} should work: {:?}",
                r.pair.src, r.pair.dst, r.pair.probe, r.outcome
            ));
        }
    }
    r.len() + r2.len()
}

/// What the nodes held when a staged workload's probe was not denied, taken at once
/// (the workload still staged): the same probe three times more, then each node's
/// conntrack entries and identity-map elements for the destination's address. A
/// failure here has been seen once in many runs and never reproduced by hand.
fn why_not_closed(st: &State, p: &PairProbe) -> String {
    let again: Vec<String> = (0..3)
        .map(|_| {
            let r = bulkhead_lab::probe::probe_pairs(
                st,
                std::slice::from_ref(p),
                &opts(Family::V4, 1000),
            );
            format!("{:?}", r[0].outcome)
        })
        .collect();
    let mut out = format!("    probed again: {}\n", again.join(", "));
    let dst = st.workload(&p.dst).map(|w| w.ip(false).to_string());
    let Ok(dst) = dst else {
        return out;
    };
    for node in &st.plan.nodes {
        for cmd in [
            format!("conntrack -L -d {dst} 2>&1; conntrack -L -s {dst} 2>&1"),
            format!(
                "nft get element inet bulkhead dst4 '{{ {dst} }}' 2>&1; \
                 nft get element inet bulkhead id4 '{{ {dst} }}' 2>&1"
            ),
            format!("ip route get {dst} 2>&1"),
        ] {
            let o = Command::new("ip")
                .args(["netns", "exec", &node.netns, "sh", "-c", &cmd])
                .output();
            let text = o
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| e.to_string());
            let _ = writeln!(out, "    {} $ {cmd}\n{}", node.name, text.trim_end());
        }
    }
    out
}

/// Counts of what the churn did.
#[derive(Default, Debug)]
struct Changes {
    added: usize,
    removed: usize,
    relabelled: usize,
    batches: usize,
    fail_closed_probes: usize,
    add_time: Duration,
    remove_time: Duration,
}

impl Changes {
    fn total(&self) -> usize {
        self.added + self.removed + self.relabelled
    }
}

const NAMESPACES: [&str; 3] = ["churn", "apps", "vault"];
const ROLES: [&str; 2] = ["intruder", "guest"];

fn churn(rng: &mut Rng, failures: &mut Vec<String>) -> Changes {
    let mut c = Changes::default();
    // Live churned workloads: key -> its namespace.
    let mut live: Vec<(String, String)> = Vec::new();
    while c.added < CHURNED || !live.is_empty() {
        c.batches += 1;
        if c.added < CHURNED {
            let k = rng.range(4, 10).min(CHURNED - c.added);
            let mut batch = Vec::new();
            for _ in 0..k {
                let name = format!("churn-{:03}", c.added + batch.len());
                let ns = rng.pick(&NAMESPACES).to_string();
                let mut labels: Labels = [("role", *rng.pick(&ROLES))].into_iter().collect();
                if rng.range(0, 2) == 0 {
                    labels.insert("tier", format!("t{}", rng.range(0, 3)));
                }
                let serves = rng.range(0, 3) == 0;
                batch.push((name, ns, labels, serves));
            }
            let t = Instant::now();
            let staged = bulkhead_lab::add::stage(LAB, &pods(&batch, ""))
                .unwrap_or_else(|e| panic!("staging a batch: {e:#}"));
            c.fail_closed_probes += fail_closed(staged, failures);
            c.add_time += t.elapsed();
            c.added += batch.len();
            live.extend(
                batch
                    .into_iter()
                    .map(|(n, ns, _, _)| (format!("{ns}/{n}"), ns)),
            );
        }
        // Relabels are not waited for: they pile into the agents' next transaction
        // together with the removals and additions that follow.
        for _ in 0..rng.range(2, 8).min(live.len()) {
            let (key, ns) = rng.pick(&live).clone();
            let role = *rng.pick(&ROLES);
            let r = if rng.range(0, 1) == 0 {
                // kubectl style: role flips (or stays), tier comes or goes, the vault's
                // namespace joins or leaves the vault's Protect group.
                let mut args = vec![format!("role={role}")];
                args.push(match rng.range(0, 2) {
                    0 => "tier-".to_string(),
                    n => format!("tier=t{n}"),
                });
                if ns == "vault" {
                    args.push(if rng.range(0, 1) == 0 {
                        "app=vault".into()
                    } else {
                        "app-".into()
                    });
                }
                let edits = LabelEdits::parse(&args, true).unwrap();
                bulkhead_lab::label(LAB, &key, &edits)
            } else {
                let labels: Labels = [("role", role), ("gen", &c.relabelled.to_string())]
                    .into_iter()
                    .collect();
                bulkhead_lab::relabel(LAB, &key, labels)
            };
            let r = r.unwrap_or_else(|e| panic!("relabelling {key}: {e:#}"));
            if r.changed {
                c.relabelled += 1;
            }
        }
        if live.len() > 24 || c.added == CHURNED {
            let m = if c.added == CHURNED {
                rng.range(5, 12)
            } else {
                rng.range(3, 8)
            }
            .min(live.len());
            let mut gone = Vec::new();
            for _ in 0..m {
                let i = rng.range(0, live.len() - 1);
                gone.push(live.swap_remove(i).0);
            }
            let t = Instant::now();
            let r = bulkhead_lab::remove(LAB, &gone)
                .unwrap_or_else(|e| panic!("removing {gone:?}: {e:#}"));
            c.remove_time += t.elapsed();
            c.removed += r.removed.len();
        }
    }
    c
}

fn agent_dir(node: &str) -> PathBuf {
    bulkhead_lab::names::lab_dir(LAB).join("agents").join(node)
}

/// The kernel's own word: `allow` flow records, on a vault server's node, of
/// connections to it from anything that is not a stable client. (Only that node decides
/// the server's ingress: the source's node allows a churned workload's egress, which is
/// in Discover mode, and records that.) Also the agents' health.
fn kernel_checks(st: &State, failures: &mut Vec<String>) -> String {
    let addrs = |names: &[&str], node: Option<&str>| -> BTreeSet<String> {
        names
            .iter()
            .map(|n| st.workload(n).unwrap())
            .filter(|w| node.is_none_or(|n| w.node == n))
            .flat_map(|w| [w.ipv4.to_string(), w.ipv6.to_string()])
            .collect()
    };
    let clients = addrs(&CLIENTS, None);
    let mut report = String::new();
    for node in &st.plan.nodes {
        let vaults = addrs(&VAULTS, Some(&node.name));
        let dir = agent_dir(&node.name);
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
        if !status["last_error"].is_null() {
            failures.push(format!("agent {}: {}", node.name, status["last_error"]));
        }
        // Every flow record of the agent's store.
        let (ok, flows) = bulkhead(&["flows", "--state-dir", &dir.to_string_lossy(), "-o", "json"]);
        assert!(ok, "bulkhead flows: {flows}");
        let mut allowed_to_vault = 0;
        let mut inconsistent = Vec::new();
        for line in flows.lines() {
            let f: serde_json::Value = serde_json::from_str(line).unwrap();
            if f["consistent"] == false {
                inconsistent.push(line.to_string());
            }
            if f["event"] != "new" || f["verdict"] != "allow" {
                continue;
            }
            let (src, dst) = (
                f["src"]["ip"].as_str().unwrap_or(""),
                f["dst"]["ip"].as_str().unwrap_or(""),
            );
            if vaults.contains(dst) {
                allowed_to_vault += 1;
                if !clients.contains(src) && src != CANARY_IP {
                    failures.push(format!("the kernel of {} allowed {line}", node.name));
                }
            }
        }
        let latency = std::fs::read_to_string(dir.join("latency.jsonl")).unwrap_or_default();
        let mut ms: Vec<f64> = latency
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["latency_ms"].as_f64())
            .collect();
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| {
            ms.get(((ms.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let _ = writeln!(
            report,
            "  agent {}: {} transactions (change -> programmed p50 {:.0} ms, max {:.0} ms), \
             {} flow records, {} allowed to the vault, {} connections cut, {} flow errors",
            node.name,
            ms.len(),
            q(0.5),
            q(1.0),
            status["flows"],
            allowed_to_vault,
            status["connections_cut"],
            status["flow_errors"]
        );
        // The store took every record (a full disk or a broken file would show here).
        assert_eq!(status["store"]["open"], true, "{status}");
        assert_eq!(status["store"]["failed"], 0, "{status}");
        assert!(status["store"]["written"].as_u64() > Some(0), "{status}");
        // The agent judges a record against its engine when it reads the packet, and
        // leaves records read within 100 ms of a change unjudged; a reader that lags
        // behind the kernel by more than that under load judges a packet the previous
        // rules decided against the new ones. Such records are shown, not failed on:
        // what the kernel allowed into the vault is checked above, record by record.
        for r in &inconsistent {
            let _ = writeln!(report, "    inconsistent record: {r}");
        }
    }
    report
}

/// Nothing of the lab is left: namespaces, host links, directory, processes.
fn assert_gone(pids: &[i32]) {
    let prefix = bulkhead_lab::names::prefix(LAB);
    let left: Vec<String> = bulkhead_lab::netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let hash = format!("bh{:04x}", bulkhead_lab::names::fnv(LAB) as u16);
    assert!(!links.contains(&hash), "host links: {links}");
    assert!(!bulkhead_lab::names::lab_dir(LAB).exists());
    for &pid in pids {
        assert!(
            bulkhead_lab::process::start_time(pid).is_none(),
            "process {pid} still runs"
        );
    }
}

#[test]
fn churning_200_workloads_opens_nothing_policy_forbids() {
    if !common::privileged("the churn test") {
        return;
    }
    let _lock = common::lab_lock();
    let t0 = Instant::now();
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("lab.yaml"), LAB_YAML).unwrap();
    std::fs::write(input.path().join("policy.yaml"), POLICY_YAML).unwrap();
    let _ = bulkhead(&["lab", "down", "--name", LAB]);
    let guard = Guard;
    let dir = input.path().display().to_string();
    let (ok, out) = bulkhead(&["lab", "up", "-f", &dir, "--name", LAB]);
    assert!(ok, "lab up: {out}");
    assert!(out.contains("agent of node-1: pid"), "agents run: {out}");
    let up_time = t0.elapsed();

    // Before any churn: the policy as intended, and probes that see a verdict change.
    let base: Vec<PairProbe> = CLIENTS
        .iter()
        .flat_map(|c| VAULTS.map(|v| pair(c, v, "TCP/8200")))
        .collect();
    until(&base, &Outcome::Allowed, Duration::ZERO).expect("clients reach the vault");
    let (opened, closed) = canary();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let probing: Vec<_> = [Sources::Stable, Sources::Churned]
        .into_iter()
        .map(|sources| {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || prober(sources, stop, tally, t0))
        })
        .collect();
    let rounds = || {
        let t = tally.lock().unwrap();
        t.stable_rounds.min(t.churned_rounds)
    };
    // Let the probers get going before the churn starts.
    while rounds() < 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let churn_start = Instant::now();
    let mut failures = Vec::new();
    let mut rng = Rng(0x6275_6c6b_6865_6164);
    let changes = churn(&mut rng, &mut failures);
    let churn_time = churn_start.elapsed();
    // A few more rounds over the lab as it ends.
    let done = rounds();
    while rounds() < done + 3 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for p in probing {
        p.join().expect("a prober panicked");
    }
    let t = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();

    let st = bulkhead_lab::load(LAB).unwrap();
    let kernel = kernel_checks(&st, &mut failures);
    let left: BTreeMap<String, usize> =
        st.plan.workloads.iter().fold(BTreeMap::new(), |mut m, w| {
            *m.entry(w.key.namespace.clone()).or_default() += 1;
            m
        });
    let files = std::fs::read_dir(bulkhead_lab::inventory::dir(LAB))
        .unwrap()
        .count();
    let pids: Vec<i32> = st.processes.iter().map(|p| p.pid).collect();

    if !(t.violations.is_empty() && t.wrongly_blocked.is_empty() && failures.is_empty()) {
        keep_agent_files();
    }
    let (ok, out) = bulkhead(&["lab", "down", "--name", LAB]);
    assert!(ok, "lab down: {out}");
    std::mem::forget(guard);
    assert_gone(&pids);

    eprintln!(
        "churn: {} changes ({} added, {} relabelled, {} removed) in {} batches over {:.1} s \
         (adding {:.1} s incl. fail-closed probes, removing {:.1} s); lab up {:.1} s, total {:.1} s\n\
         canary: allowed {:?} after its relabel to client, denied {:?} after its relabel back\n\
         probers: {} probes in {} + {} rounds: stable clients -> vault {} allowed, {} wrongly blocked; \
         churned -> vault {} denied, {} VIOLATIONS, {} from workloads removed while probed\n\
         fail-closed: {} probes of staged workloads\n{kernel}",
        changes.total(),
        changes.added,
        changes.relabelled,
        changes.removed,
        changes.batches,
        churn_time.as_secs_f64(),
        changes.add_time.as_secs_f64(),
        changes.remove_time.as_secs_f64(),
        up_time.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        opened,
        closed,
        t.probes,
        t.stable_rounds,
        t.churned_rounds,
        t.stable_allowed,
        t.wrongly_blocked.len(),
        t.churned_denied,
        t.violations.len(),
        t.churned_gone,
        changes.fail_closed_probes,
    );
    let show = |v: &[String]| v.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ");
    assert!(
        t.violations.is_empty(),
        "violations:\n  {}",
        show(&t.violations)
    );
    assert!(
        t.wrongly_blocked.is_empty(),
        "wrongly blocked:\n  {}",
        show(&t.wrongly_blocked)
    );
    assert!(failures.is_empty(), "{}", show(&failures));
    assert_eq!(changes.added, CHURNED);
    assert_eq!(changes.removed, CHURNED);
    assert!(changes.relabelled >= 100, "{changes:?}");
    // The probers really ran alongside: many rounds, churned workloads among the sources.
    assert!(
        t.stable_rounds >= 50 && t.churned_rounds >= 50 && t.churned_denied >= 1000,
        "too few probes: {} + {} rounds",
        t.stable_rounds,
        t.churned_rounds
    );
    // Only the stable workloads are left, each with its file (and cluster.yaml).
    assert_eq!(
        left,
        BTreeMap::from([("apps".into(), 4), ("open".into(), 2), ("vault".into(), 2)])
    );
    assert_eq!(files, 9);
}
