//! From the input (inventory, policy, the `kind: Lab` document) to the lab to build:
//! which nodes, which workload goes on which node, every address, every name and what
//! runs where. Pure and deterministic: the same input always gives the same plan, so two
//! `lab up` of the same files give the same addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};
use bulkhead_model::{ContainerPort, Labels, Namespace, WorkloadKey};
use bulkhead_policy::spec::{Bundle, LabRun};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::addressing::{self, Allocator, NodeNets};
use crate::names::{self, LinkRole};

/// The node every workload goes on when the input names no node.
pub const DEFAULT_NODE: &str = "node-1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub netns: String,
    pub pod_cidr_v4: Ipv4Net,
    pub pod_cidr_v6: Ipv6Net,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    /// Labels of the input's Node document, if any (for the inventory).
    #[serde(default)]
    pub labels: Labels,
    /// The node end and the router end of the uplink (multi-node labs only).
    pub uplink: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadPlan {
    pub key: WorkloadKey,
    pub labels: Labels,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub node: String,
    pub netns: String,
    /// The node end of the pod's veth (the pod end is `eth0`).
    pub veth: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
    pub run: LabRun,
}

impl WorkloadPlan {
    pub fn ip(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.ipv6)
        } else {
            IpAddr::V4(self.ipv4)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub lab: String,
    pub nodes: Vec<NodePlan>,
    /// Sorted by namespace/name.
    pub workloads: Vec<WorkloadPlan>,
    /// Every namespace a workload lives in, with its labels.
    pub namespaces: Vec<Namespace>,
    /// The router namespace, when there is more than one node.
    pub router: Option<String>,
}

/// The lab name: `--name`, else the Lab document's, else `lab`.
pub fn lab_name(bundle: &Bundle, requested: Option<&str>) -> Result<String> {
    let name = requested
        .map(str::to_string)
        .or_else(|| bundle.lab.as_ref().map(|l| l.name.clone()))
        .unwrap_or_else(|| "lab".to_string());
    names::check_lab(&name)?;
    Ok(name)
}

pub fn plan(bundle: &Bundle, lab: &str) -> Result<Plan> {
    let spec = bundle
        .lab
        .clone()
        .unwrap_or_else(|| bulkhead_policy::spec::LabSpec {
            name: lab.to_string(),
            nodes: Vec::new(),
            pools: Default::default(),
            workloads: Vec::new(),
            run: Vec::new(),
            origin: Default::default(),
        });
    let mut workloads = bundle.inventory.workloads.clone();
    workloads.sort_by(|a, b| a.key.cmp(&b.key));
    if workloads.is_empty() {
        bail!("the input has no workloads: give Pods (or workloads in a kind: Lab document)");
    }

    // Nodes: the Lab's list; else every node the input names; else one.
    let node_names: Vec<String> = if !spec.nodes.is_empty() {
        spec.nodes.clone()
    } else {
        let named: BTreeSet<String> = bundle
            .inventory
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .chain(workloads.iter().filter_map(|w| w.node.clone()))
            .collect();
        if named.is_empty() {
            vec![DEFAULT_NODE.to_string()]
        } else {
            named.into_iter().collect()
        }
    };
    for w in &workloads {
        if let Some(n) = &w.node
            && !node_names.contains(n)
        {
            bail!(
                "{}: node {n:?} is not a node of this lab (nodes: {})",
                w.key,
                node_names.join(", ")
            );
        }
    }
    let pool4: Ipv4Net = match spec.pools.ipv4 {
        Some(p) => p,
        None => addressing::DEFAULT_POOL_V4.parse()?,
    };
    let pool6: Ipv6Net = match spec.pools.ipv6 {
        Some(p) => p,
        None => addressing::DEFAULT_POOL_V6.parse()?,
    };
    let nets = addressing::node_nets(pool4, pool6, node_names.len())?;
    let multi = node_names.len() > 1;
    let nodes: Vec<NodePlan> = node_names
        .iter()
        .zip(&nets)
        .map(|(name, n)| node_plan(lab, name, n, bundle, multi))
        .collect();

    // Addresses the input fixed are kept; each may be used once.
    let mut fixed: BTreeMap<IpAddr, &WorkloadKey> = BTreeMap::new();
    for w in &workloads {
        for ip in &w.ips {
            if let Some(other) = fixed.insert(*ip, &w.key) {
                bail!("{} and {} both have the address {ip}", other, w.key);
            }
        }
    }
    let node_addrs = nodes
        .iter()
        .flat_map(|n| [IpAddr::V4(n.ipv4), IpAddr::V6(n.ipv6)]);
    for a in node_addrs.clone() {
        if let Some(w) = fixed.get(&a) {
            bail!("{w} has the address {a}, which the lab gives to a node; change the pools");
        }
    }
    let mut alloc = Allocator::new(node_addrs.chain(fixed.keys().copied()));

    let runs = Runs::new(bundle);
    let mut spread = 0usize;
    let mut planned = Vec::new();
    for w in &workloads {
        let node = match &w.node {
            Some(n) => n.clone(),
            None => {
                spread += 1;
                node_names[(spread - 1) % node_names.len()].clone()
            }
        };
        let i = node_names.iter().position(|n| *n == node).unwrap_or(0);
        let ipv4 = match w.ip(false) {
            Some(IpAddr::V4(a)) => a,
            _ => alloc.v4(&nets[i].v4)?,
        };
        let ipv6 = match w.ip(true) {
            Some(IpAddr::V6(a)) => a,
            _ => alloc.v6(&nets[i].v6)?,
        };
        planned.push(WorkloadPlan {
            key: w.key.clone(),
            labels: w.labels.clone(),
            ports: w.ports.clone(),
            node,
            netns: names::pod_netns(lab, &w.key),
            veth: names::link(lab, LinkRole::Pod, &w.key.to_string()),
            ipv4,
            ipv6,
            run: runs.of(&w.key, &w.labels),
        });
    }

    let mut namespaces: BTreeMap<String, Namespace> = bundle
        .inventory
        .namespaces
        .iter()
        .map(|n| (n.name.clone(), n.clone()))
        .collect();
    for w in &planned {
        namespaces
            .entry(w.key.namespace.clone())
            .or_insert_with(|| Namespace::new(&w.key.namespace, Labels::new()));
    }
    Ok(Plan {
        lab: lab.to_string(),
        nodes,
        workloads: planned,
        namespaces: namespaces.into_values().collect(),
        router: multi.then(|| names::router_netns(lab)),
    })
}

fn node_plan(lab: &str, name: &str, nets: &NodeNets, bundle: &Bundle, multi: bool) -> NodePlan {
    let labels = bundle
        .inventory
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.labels.clone())
        .unwrap_or_default();
    NodePlan {
        name: name.to_string(),
        netns: names::node_netns(lab, name),
        pod_cidr_v4: nets.v4,
        pod_cidr_v6: nets.v6,
        ipv4: nets.node_v4(),
        ipv6: nets.node_v6(),
        labels,
        uplink: multi.then(|| {
            (
                names::link(lab, LinkRole::Uplink, name),
                names::link(lab, LinkRole::Router, name),
            )
        }),
    }
}

/// What runs in each workload: its own `run` (lab workloads), else the first `run` rule
/// of the Lab whose selector (and namespaces) match, else the built-in responder.
struct Runs<'b> {
    bundle: &'b Bundle,
}

impl<'b> Runs<'b> {
    fn new(bundle: &'b Bundle) -> Self {
        Runs { bundle }
    }

    fn of(&self, key: &WorkloadKey, labels: &Labels) -> LabRun {
        let Some(lab) = &self.bundle.lab else {
            return LabRun::Builtin;
        };
        if let Some(run) = lab
            .workloads
            .iter()
            .find(|w| w.workload.key == *key)
            .and_then(|w| w.run.clone())
        {
            return run;
        }
        lab.run
            .iter()
            .find(|r| {
                (r.namespaces.is_empty() || r.namespaces.contains(&key.namespace))
                    && r.selector.matches(labels)
            })
            .map(|r| r.run.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_manifest::{Source, parse_sources};

    fn bundle(text: &str) -> Bundle {
        parse_sources(&[Source {
            name: "t.yaml".into(),
            text: text.into(),
        }])
        .unwrap()
    }

    const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {app: db}}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: y}\nstatus: {podIPs: [{ip: 10.244.0.2}]}\n";

    #[test]
    fn one_node_by_default_addresses_in_name_order_keeping_given_ones() {
        let p = plan(&bundle(PODS), "t").unwrap();
        assert_eq!(p.nodes.len(), 1);
        assert_eq!(p.nodes[0].name, "node-1");
        assert!(p.router.is_none());
        let got: Vec<(String, String, String)> = p
            .workloads
            .iter()
            .map(|w| (w.key.to_string(), w.ipv4.to_string(), w.ipv6.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("x/a".into(), "10.244.0.3".into(), "fd00:10:244::2".into()),
                ("x/b".into(), "10.244.0.4".into(), "fd00:10:244::3".into()),
                ("y/c".into(), "10.244.0.2".into(), "fd00:10:244::4".into()),
            ]
        );
        assert_eq!(p.workloads[0].netns, "bh-t.pod.x.a");
        assert_eq!(p.namespaces.len(), 2);
        assert_eq!(p, plan(&bundle(PODS), "t").unwrap(), "deterministic");
    }

    #[test]
    fn lab_nodes_spread_workloads_and_run_rules_pick_what_runs() {
        let text = format!(
            "{PODS}---\napiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {{name: t}}\nspec:\n  nodes: [n1, n2]\n  \
             workloads: [{{name: r, namespace: z, node: n2, run: http}}]\n  \
             run: [{{selector: app == \"db\", run: {{command: [sleep, \"1000\"]}}}}]\n"
        );
        let p = plan(&bundle(&text), "t").unwrap();
        let nodes: Vec<&str> = p.workloads.iter().map(|w| w.node.as_str()).collect();
        assert_eq!(nodes, ["n1", "n2", "n1", "n2"]);
        assert_eq!(p.router.as_deref(), Some("bh-t.router"));
        assert_eq!(
            p.workloads[1].run,
            LabRun::Command(vec!["sleep".into(), "1000".into()])
        );
        assert_eq!(p.workloads[3].run, LabRun::Http);
        assert_eq!(p.workloads[0].run, LabRun::Builtin);
        assert_eq!(p.workloads[1].ipv4.to_string(), "10.244.1.2");
        assert!(p.nodes[0].uplink.is_some());
    }

    #[test]
    fn unknown_nodes_and_reused_addresses_are_refused() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: n9}\n---\n\
            apiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: [n1]}\n";
        let e = plan(&bundle(text), "t").unwrap_err().to_string();
        assert!(
            e.contains("node \"n9\" is not a node of this lab (nodes: n1)"),
            "{e}"
        );
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 10.244.0.1}\n";
        let e = plan(&bundle(text), "t").unwrap_err().to_string();
        assert!(e.contains("which the lab gives to a node"), "{e}");
    }
}
