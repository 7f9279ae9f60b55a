//! The lab's inventory as Kubernetes YAML, the form node agents read: Namespaces, Nodes
//! (with their addresses) and one Pod per workload with `spec.nodeName`, its container
//! ports and `status.podIPs`. Written twice:
//!
//! - `inventory/` in the lab directory, what the agents watch: `cluster.yaml`
//!   (Namespaces and Nodes) and one `pod.<namespace>.<name>.yaml` per workload. An agent
//!   caches its parse per file and re-reads only the files its watcher names, so adding,
//!   removing or relabelling one workload costs it one small file, however big the lab;
//! - `inventory.yaml`, everything in one file, for `bulkhead analyze --inventory` and
//!   for people.
//!
//! Every file is written to a temporary file in the same directory, then renamed over
//! the old one, so an agent never reads half a file. The temporary names start with a
//! dot and end in `.tmp`: agents read only `*.yaml`, `*.yml` and `*.json`, so they never
//! even look at them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bulkhead_model::WorkloadKey;
use serde_json::{Value, json};

use crate::names;
use crate::plan::{Plan, WorkloadPlan};
use crate::runner;

/// The directory agents get with `--inventory`.
pub fn dir(lab: &str) -> PathBuf {
    names::lab_dir(lab).join("inventory")
}

/// The single-file inventory.
pub fn file(lab: &str) -> PathBuf {
    names::lab_dir(lab).join("inventory.yaml")
}

const CLUSTER_FILE: &str = "cluster.yaml";

/// A workload's file in [`dir`]. Namespaces are DNS labels (no `.`), so the name is
/// unambiguous; names too long for a file name fall back to a hash.
pub fn pod_file(key: &WorkloadKey) -> String {
    let name = format!("pod.{}.{}.yaml", key.namespace, key.name);
    if name.len() <= 200 {
        name
    } else {
        format!("pod.{:016x}.yaml", names::fnv(&key.to_string()))
    }
}

/// Write `text` to `dir/name` through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(name))
        .with_context(|| format!("writing {}", dir.join(name).display()))
}

/// Every file, at `lab up`: the directory is made afresh.
pub fn write_all(plan: &Plan) -> Result<()> {
    let d = dir(&plan.lab);
    if d.exists() {
        fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
    }
    fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    write_atomic(&d, CLUSTER_FILE, &render_cluster(plan)?)?;
    for w in &plan.workloads {
        write_atomic(&d, &pod_file(&w.key), &render_pod(plan, w)?)?;
    }
    write_single(plan)
}

/// After a change: the files of `upserted` workloads (and `cluster.yaml` when
/// namespaces changed) are rewritten, those of `removed` deleted, and `inventory.yaml`
/// rewritten from `plan`, which already is the lab after the change. `cluster.yaml`
/// goes first, so a workload never arrives in a namespace its agent has not seen.
pub fn publish(
    plan: &Plan,
    cluster_changed: bool,
    upserted: &[&WorkloadPlan],
    removed: &[WorkloadKey],
) -> Result<()> {
    let d = dir(&plan.lab);
    if cluster_changed {
        write_atomic(&d, CLUSTER_FILE, &render_cluster(plan)?)?;
    }
    for w in upserted {
        write_atomic(&d, &pod_file(&w.key), &render_pod(plan, w)?)?;
    }
    for key in removed {
        let p = d.join(pod_file(key));
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    write_single(plan)
}

fn write_single(plan: &Plan) -> Result<()> {
    write_atomic(&names::lab_dir(&plan.lab), "inventory.yaml", &render(plan)?)
}

/// Everything in one file (`inventory.yaml`).
pub fn render(plan: &Plan) -> Result<String> {
    let mut docs = cluster_docs(plan);
    docs.extend(plan.workloads.iter().map(pod_doc));
    to_yaml(plan, &docs)
}

fn render_cluster(plan: &Plan) -> Result<String> {
    to_yaml(plan, &cluster_docs(plan))
}

fn render_pod(plan: &Plan, w: &WorkloadPlan) -> Result<String> {
    to_yaml(plan, &[pod_doc(w)])
}

fn to_yaml(plan: &Plan, docs: &[Value]) -> Result<String> {
    let mut out = format!(
        "# Inventory of bulkhead lab {}: written by `bulkhead lab`, read by its agents.\n",
        plan.lab
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d)?);
    }
    Ok(out)
}

fn cluster_docs(plan: &Plan) -> Vec<Value> {
    let mut docs: Vec<Value> = Vec::new();
    for ns in &plan.namespaces {
        docs.push(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns.name, "labels": ns.labels},
        }));
    }
    for n in &plan.nodes {
        docs.push(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "labels": n.labels},
            "status": {"addresses": [
                {"type": "InternalIP", "address": n.ipv4.to_string()},
                {"type": "InternalIP", "address": n.ipv6.to_string()},
            ]},
        }));
    }
    docs
}

/// One workload as a Pod.
pub fn pod_doc(w: &WorkloadPlan) -> Value {
    let ports: Vec<Value> = w
        .ports
        .iter()
        .map(|p| {
            let mut v = json!({"containerPort": p.port, "protocol": p.protocol.as_str()});
            if let Some(name) = &p.name {
                v["name"] = json!(name);
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": w.key.name, "namespace": w.key.namespace, "labels": w.labels},
        "spec": {
            "nodeName": w.node,
            "containers": [{"name": "main", "image": runner::describe(&w.run), "ports": ports}],
        },
        "status": {
            "podIP": w.ipv4.to_string(),
            "podIPs": [{"ip": w.ipv4.to_string()}, {"ip": w.ipv6.to_string()}],
        },
    })
}

#[cfg(test)]
mod tests {
    use bulkhead_manifest::{Source, parse_sources};

    use crate::plan;

    #[test]
    fn the_inventory_reads_back_as_the_same_workloads_and_nodes() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {team: a}}\n---\n\
            apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a, \"app.kubernetes.io/version\": \"1.0\"}}\n\
            spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}, {containerPort: 53, protocol: UDP}]}]}\n---\n\
            apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: y}\n";
        let b = parse_sources(&[Source {
            name: "in.yaml".into(),
            text: text.into(),
        }])
        .unwrap();
        let p = plan::plan(&b, "t").unwrap();
        let yaml = super::render(&p).unwrap();
        let back = parse_sources(&[Source {
            name: "inventory.yaml".into(),
            text: yaml.clone(),
        }])
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(back.inventory.workloads.len(), 2);
        for (w, orig) in back.inventory.workloads.iter().zip(&p.workloads) {
            assert_eq!(w.key, orig.key);
            assert_eq!(w.labels, orig.labels);
            assert_eq!(w.ports, orig.ports);
            assert_eq!(w.node.as_deref(), Some(orig.node.as_str()));
            assert_eq!(w.ips, [orig.ip(false), orig.ip(true)]);
        }
        assert_eq!(back.inventory.nodes[0].addresses.len(), 2);
        let x = back
            .inventory
            .namespaces
            .iter()
            .find(|n| n.name == "x")
            .unwrap();
        assert_eq!(x.labels.get("team"), Some("a"));

        // The directory form (what agents read) says exactly the same, file by file.
        let mut files = vec![Source {
            name: "inventory/cluster.yaml".into(),
            text: super::render_cluster(&p).unwrap(),
        }];
        for w in &p.workloads {
            files.push(Source {
                name: format!("inventory/{}", super::pod_file(&w.key)),
                text: super::render_pod(&p, w).unwrap(),
            });
        }
        assert_eq!(files[1].name, "inventory/pod.x.a.yaml");
        let split = parse_sources(&files).unwrap();
        assert_eq!(split.inventory, back.inventory);
    }
}
