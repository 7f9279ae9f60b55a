//! Throughput (iperf3) and new connections per second (CRR) between two lab workloads:
//! no bulkhead at all vs Protect mode with a synthetic cluster of ~1k identities and
//! ~10k rules loaded into the same node, alternating in one run.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use bulkhead_dataplane::kernel::Nft;
use bulkhead_dataplane::{KernelIds, RenderOptions, diff, render};
use bulkhead_model::selector::parse;
use bulkhead_model::{L4, PortRange, Protocol};
use bulkhead_policy::spec::*;
use bulkhead_policy::{Connection, Endpoint, Engine};

use crate::lab::{Guard, Lab, run_in, spawn_in};

const IPERF_PORT: u16 = 5201;
const CRR_PORT: u16 = 19000;
const CLOSED_PORT: u16 = 19001;

const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: bench, labels: {env: bench}}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: bench, labels: {app: bench-server}}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench, labels: {app: bench-client}}
"#;

pub struct Options {
    pub seconds: f64,
    pub rounds: usize,
    pub workloads: usize,
    pub policies: usize,
}

fn origin() -> Origin {
    Origin::new("bench", 0, 0)
}

fn tcp(ports: &[u16]) -> Vec<PortSpec> {
    ports
        .iter()
        .map(|p| PortSpec {
            protocol: Some(Protocol::Tcp),
            port: PortSel::Range(PortRange::single(*p)),
        })
        .collect()
}

fn peer(sel: &str) -> Peer {
    Peer {
        spec: PeerSpec::Workloads(WorkloadSelector {
            selector: Some(parse(sel).unwrap_or(bulkhead_model::Selector::All)),
            namespace_selector: None,
            namespaces: vec![],
        }),
        origin: origin(),
    }
}

fn rule(peers: Vec<Peer>, ports: Vec<PortSpec>) -> Rule {
    Rule {
        action: Action::Allow,
        name: None,
        peers,
        ports,
        app: None,
        l7: vec![],
        origin: origin(),
    }
}

/// The synthetic cluster plus the two lab workloads in a Protect group that allows
/// client -> server on the iperf and CRR ports only.
fn bundle(lab: &Lab, o: &Options) -> Result<Bundle> {
    let lab_inv = bulkhead_manifest::load(std::slice::from_ref(&lab.inventory), false)
        .map_err(|d| anyhow::anyhow!("{d}"))?
        .inventory;
    let mut b = bulkhead_synth::cluster(o.workloads, o.policies, 7);
    b.inventory.workloads.extend(lab_inv.workloads);
    b.inventory.namespaces.extend(lab_inv.namespaces);
    let pair = r#"app in {"bench-server", "bench-client"}"#;
    b.policy.groups.push(Group {
        name: "bench".into(),
        members: WorkloadSelector {
            selector: Some(parse(pair)?),
            namespace_selector: None,
            namespaces: vec![],
        },
        mode: Mode::Protect,
        sensors: Vec::new(),
        inspect: Default::default(),
        origin: origin(),
    });
    b.policy.policies.push(Policy {
        name: "bench".into(),
        namespace: None,
        priority: 500,
        applies_to: vec![PeerSpec::Workloads(WorkloadSelector {
            selector: Some(parse(pair)?),
            namespace_selector: None,
            namespaces: vec![],
        })],
        ingress: vec![rule(
            vec![peer(r#"app == "bench-client""#)],
            tcp(&[IPERF_PORT, CRR_PORT]),
        )],
        egress: vec![rule(
            vec![peer(r#"app == "bench-server""#)],
            tcp(&[IPERF_PORT, CRR_PORT]),
        )],
        origin: origin(),
    });
    Ok(b)
}

fn iperf(lab: &Lab, seconds: f64) -> Result<f64> {
    let out = run_in(
        &lab.client_netns,
        "iperf3",
        &[
            "-c",
            &lab.server_ip.to_string(),
            "-t",
            &format!("{seconds}"),
            "-J",
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| anyhow::anyhow!("iperf3 printed no result"))
}

fn crr(lab: &Lab, me: &Path, port: u16, seconds: f64) -> Result<f64> {
    let out = run_in(
        &lab.client_netns,
        &me.display().to_string(),
        &[
            "crr-client",
            "--target",
            &format!("{}:{port}", lab.server_ip),
            "--seconds",
            &format!("{seconds}"),
            "--threads",
            "2",
        ],
    )?;
    Ok(out.trim().parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(bulkhead: &Path, me: &Path, o: &Options) -> Result<String> {
    let dir = std::env::temp_dir().join("bulkhead-bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("pods.yaml"), PODS)?;
    let lab = Lab::up(bulkhead, "bhbench", &dir)?;
    let _iperf = Guard(spawn_in(&lab.server_netns, Path::new("iperf3"), &["-s"])?);
    let _crr = Guard(spawn_in(
        &lab.server_netns,
        me,
        &["crr-server", "--port", &CRR_PORT.to_string()],
    )?);
    let _closed = Guard(spawn_in(
        &lab.server_netns,
        me,
        &["crr-server", "--port", &CLOSED_PORT.to_string()],
    )?);
    std::thread::sleep(Duration::from_millis(500));

    let b = bundle(&lab, o)?;
    let engine = Engine::new(&b).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let stats = engine.stats();
    // The engine must agree with what we are about to measure.
    let id = |k: &str| {
        let (ns, n) = k.split_once('/').unwrap_or_default();
        Endpoint::Workload {
            id: engine
                .workload_id(&bulkhead_model::WorkloadKey::new(ns, n))
                .unwrap_or(u32::MAX),
            addr: None,
        }
    };
    let (c, s) = (id("bench/client"), id("bench/server"));
    let allowed = |port| {
        engine
            .verdict(&Connection {
                src: &c,
                dst: &s,
                l4: L4::tcp(port),
                l7: None,
            })
            .allowed
    };
    if !allowed(CRR_PORT) || !allowed(IPERF_PORT) || allowed(CLOSED_PORT) {
        bail!("the benchmark policy does not say what the benchmark expects");
    }
    let desired = render(&engine, &RenderOptions::default(), &mut KernelIds::new());
    let objects = desired.object_count();
    let nft = Nft::in_netns(&lab.node_netns);

    // The middle configuration: a stateful table that accepts everything, so that the
    // cost of connection tracking itself (which any stateful firewall pays, and which the
    // kernel only enables in a namespace once a rule needs it) shows apart from ours.
    let conntrack_only = "table inet bhct { chain forward { type filter hook forward priority filter; policy accept; ct state established,related accept; }; }";
    let ct_file = std::env::temp_dir().join("bulkhead-bench-conntrack-only.nft");
    std::fs::write(&ct_file, format!("{conntrack_only}\n"))?;
    let ct_path = ct_file.display().to_string();
    let ct = |on: bool| -> Result<()> {
        let _ = run_in(&lab.node_netns, "nft", &["delete", "table", "inet", "bhct"]);
        if on {
            run_in(&lab.node_netns, "nft", &["-f", &ct_path])?;
        }
        Ok(())
    };
    let (mut base_bw, mut base_crr, mut ct_bw, mut ct_crr, mut pol_bw, mut pol_crr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Every measurement starts from an empty connection table (a CRR run leaves tens of
    // thousands of closing entries that would slow whatever runs next), and the order of
    // the three configurations rotates from round to round so drift cancels out.
    let flush = || run_in(&lab.node_netns, "conntrack", &["-F"]).map(drop);
    let measure = |bw: &mut Vec<f64>, crr_rates: &mut Vec<f64>| -> Result<()> {
        let _ = flush();
        bw.push(iperf(&lab, o.seconds)?);
        let _ = flush();
        crr_rates.push(crr(&lab, me, CRR_PORT, o.seconds)?);
        Ok(())
    };
    for round in 0..o.rounds {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => {
                    nft.delete_table()?;
                    ct(false)?;
                    measure(&mut base_bw, &mut base_crr)?;
                }
                1 => {
                    nft.delete_table()?;
                    ct(true)?;
                    measure(&mut ct_bw, &mut ct_crr)?;
                }
                _ => {
                    ct(false)?;
                    nft.apply(&diff(&nft.read()?, &desired))?;
                    measure(&mut pol_bw, &mut pol_crr)?;
                }
            }
        }
    }
    // Protect really is on: the port no rule allows is refused.
    ct(false)?;
    nft.apply(&diff(&nft.read()?, &desired))?;
    let refused = crr(&lab, me, CLOSED_PORT, 0.5)?;
    nft.delete_table()?;
    let open = crr(&lab, me, CLOSED_PORT, 0.5)?;
    if refused > 0.0 || open == 0.0 {
        bail!(
            "policy check failed: port {CLOSED_PORT} gave {refused}/s under Protect, {open}/s without"
        );
    }

    let (bb, pb, bc, pc) = (
        median(base_bw),
        median(pol_bw),
        median(base_crr),
        median(pol_crr),
    );
    let (cb, cc) = (median(ct_bw), median(ct_crr));
    let verdict = |ratio: f64, target: f64| if ratio >= target { "PASS" } else { "MISS" };
    Ok(format!(
        "Loaded policy: {} workloads, {} identities, {} policies + {} NetworkPolicies, {} compiled rules -> \
         {} nft chains, {} nft rules, {} sets, {} set elements. The measured pair is in a Protect group; \
         a port no rule allows is refused (checked).\n\n\
         | measurement ({} rounds of {} s, median) | no bulkhead | conntrack only | Protect, policy loaded | ratio to no bulkhead | ratio to conntrack only | target |\n\
         |---|---|---|---|---|---|---|\n\
         | iperf3 throughput | {bb:.2} Gbit/s | {cb:.2} Gbit/s | {pb:.2} Gbit/s | {:.3} | {:.3} | >= 0.95 {} |\n\
         | new connections/s (CRR, 2 threads) | {bc:.0} | {cc:.0} | {pc:.0} | {:.3} | {:.3} | >= 0.90 {} |\n",
        stats.workloads,
        stats.identities,
        stats.policies,
        stats.network_policies,
        stats.rules,
        objects.chains,
        objects.rules,
        objects.sets,
        objects.elements,
        o.rounds,
        o.seconds,
        pb / bb,
        pb / cb,
        verdict(pb / bb, 0.95),
        pc / bc,
        pc / cc,
        verdict(pc / bc, 0.90),
    ))
}
