//! From the input (inventory, policy, the `kind: Lab` document) to the lab to build:
//! which nodes, which workload goes on which node, every address, every name and what
//! runs where. Pure and deterministic: the same input always gives the same plan, so two
//! `lab up` of the same files give the same addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};
use bulkhead_model::{ContainerPort, Labels, Namespace, WorkloadKey};
use bulkhead_policy::spec::{Bundle, LabRun, LabRunRule};
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

impl Plan {
    /// The workloads with these keys, in plan order.
    pub fn workloads_of(&self, keys: &[WorkloadKey]) -> Vec<&WorkloadPlan> {
        self.workloads
            .iter()
            .filter(|w| keys.contains(&w.key))
            .collect()
    }
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

    let namespaces = namespaces_of(&bundle.inventory.namespaces, &planned);
    Ok(Plan {
        lab: lab.to_string(),
        nodes,
        workloads: planned,
        namespaces,
        router: multi.then(|| names::router_netns(lab)),
    })
}

/// Every namespace a workload lives in, with its labels: the declared ones (a later
/// declaration of a name wins), and an unlabelled one for each namespace no document
/// declares. Sorted by name.
fn namespaces_of(declared: &[Namespace], workloads: &[WorkloadPlan]) -> Vec<Namespace> {
    let mut namespaces: BTreeMap<String, Namespace> = declared
        .iter()
        .map(|n| (n.name.clone(), n.clone()))
        .collect();
    for w in workloads {
        namespaces
            .entry(w.key.namespace.clone())
            .or_insert_with(|| Namespace::new(&w.key.namespace, Labels::new()));
    }
    namespaces.into_values().collect()
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
/// whose selector (and namespaces) match, else the built-in responder.
struct Runs {
    own: Vec<(WorkloadKey, LabRun)>,
    rules: Vec<LabRunRule>,
}

impl Runs {
    fn new(bundle: &Bundle) -> Self {
        let Some(lab) = &bundle.lab else {
            return Runs {
                own: Vec::new(),
                rules: Vec::new(),
            };
        };
        Runs {
            own: lab
                .workloads
                .iter()
                .filter_map(|w| Some((w.workload.key.clone(), w.run.clone()?)))
                .collect(),
            rules: lab.run.clone(),
        }
    }

    fn of(&self, key: &WorkloadKey, labels: &Labels) -> LabRun {
        if let Some((_, run)) = self.own.iter().find(|(k, _)| k == key) {
            return run.clone();
        }
        self.rules
            .iter()
            .find(|r| {
                (r.namespaces.is_empty() || r.namespaces.contains(&key.namespace))
                    && r.selector.matches(labels)
            })
            .map(|r| r.run.clone())
            .unwrap_or_default()
    }
}

/// Workloads added to a running lab (`lab add`): the plan of each, and the lab's
/// namespaces after the addition (the input's Namespace documents replace the labels of
/// namespaces of the same name). Like [`plan`]: a workload's node is its own (which must
/// be a lab node), else the node with the fewest workloads; addresses the input fixes
/// are kept unless another workload or a node has them; the others are the lowest free
/// ones of the node's subnets, never one a workload of the lab still has. What runs: the
/// workload's own `run`, else the input's Lab `run` rules, else those of the Lab the lab
/// was made from (`rules`), else the responder.
pub fn plan_added(
    plan: &Plan,
    bundle: &Bundle,
    rules: &[LabRunRule],
) -> Result<(Vec<WorkloadPlan>, Vec<Namespace>)> {
    let mut workloads = bundle.inventory.workloads.clone();
    workloads.sort_by(|a, b| a.key.cmp(&b.key));
    if workloads.is_empty() {
        bail!("the input has no workloads: give Pods (or workloads in a kind: Lab document)");
    }
    let node_names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut load: BTreeMap<&str, usize> = node_names.iter().map(|n| (*n, 0)).collect();
    for w in &plan.workloads {
        *load.entry(w.node.as_str()).or_default() += 1;
    }
    let mut taken: BTreeMap<IpAddr, String> = BTreeMap::new();
    for n in &plan.nodes {
        taken.insert(IpAddr::V4(n.ipv4), format!("node {}", n.name));
        taken.insert(IpAddr::V6(n.ipv6), format!("node {}", n.name));
    }
    for w in &plan.workloads {
        taken.insert(w.ip(false), w.key.to_string());
        taken.insert(w.ip(true), w.key.to_string());
    }
    let mut problems = Vec::new();
    for w in &workloads {
        if plan.workloads.iter().any(|p| p.key == w.key) {
            problems.push(format!(
                "{} is already in lab {}: remove it first (bulkhead lab remove {})",
                w.key, plan.lab, w.key
            ));
        }
        if let Some(n) = &w.node
            && !node_names.contains(&n.as_str())
        {
            problems.push(format!(
                "{}: node {n:?} is not a node of lab {} (nodes: {})",
                w.key,
                plan.lab,
                node_names.join(", ")
            ));
        }
        for ip in &w.ips {
            if let Some(owner) = taken.get(ip) {
                problems.push(format!("{}: the address {ip} belongs to {owner}", w.key));
            }
        }
        for ip in &w.ips {
            taken.insert(*ip, w.key.to_string());
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    let mut alloc = Allocator::new(taken.keys().copied());
    let mut runs = Runs::new(bundle);
    runs.rules.extend(rules.iter().cloned());
    let mut planned = Vec::new();
    for w in &workloads {
        let node = match &w.node {
            Some(n) => n.clone(),
            // The least loaded node; ties go to the first in node order.
            None => node_names
                .iter()
                .min_by_key(|n| load.get(**n).copied().unwrap_or(0))
                .map(|n| n.to_string())
                .unwrap_or_else(|| DEFAULT_NODE.to_string()),
        };
        if let Some(l) = load.get_mut(node.as_str()) {
            *l += 1;
        }
        let n = plan
            .nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| anyhow::anyhow!("lab {} has no node {node}", plan.lab))?;
        let ipv4 = match w.ip(false) {
            Some(IpAddr::V4(a)) => a,
            _ => alloc.v4(&n.pod_cidr_v4)?,
        };
        let ipv6 = match w.ip(true) {
            Some(IpAddr::V6(a)) => a,
            _ => alloc.v6(&n.pod_cidr_v6)?,
        };
        planned.push(WorkloadPlan {
            key: w.key.clone(),
            labels: w.labels.clone(),
            ports: w.ports.clone(),
            node,
            netns: names::pod_netns(&plan.lab, &w.key),
            veth: names::link(&plan.lab, LinkRole::Pod, &w.key.to_string()),
            ipv4,
            ipv6,
            run: runs.of(&w.key, &w.labels),
        });
    }
    let declared: Vec<Namespace> = plan
        .namespaces
        .iter()
        .chain(&bundle.inventory.namespaces)
        .cloned()
        .collect();
    let namespaces = namespaces_of(&declared, &planned);
    Ok((planned, namespaces))
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

    #[test]
    fn added_workloads_take_free_addresses_and_the_least_loaded_node() {
        let text = format!(
            "{PODS}---\napiVersion: bulkhead.io/v1\nkind: Lab\nmetadata: {{name: t}}\nspec:\n  nodes: [n1, n2]\n  \
             run: [{{selector: app == \"db\", run: http}}]\n"
        );
        let b = bundle(&text);
        let mut p = plan(&b, "t").unwrap();
        let rules = b.lab.unwrap().run;
        // x/a and y/c on n1, x/b on n2: the next one goes to n2.
        let more = bundle(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: z, labels: {team: q}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: d, namespace: z, labels: {app: db}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: e, namespace: z}\nspec: {nodeName: n1}\n",
        );
        let (added, namespaces) = plan_added(&p, &more, &rules).unwrap();
        let got: Vec<(String, &str, String, LabRun)> = added
            .iter()
            .map(|w| {
                (
                    w.key.to_string(),
                    w.node.as_str(),
                    w.ipv4.to_string(),
                    w.run.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("z/d".into(), "n2", "10.244.1.3".into(), LabRun::Http),
                ("z/e".into(), "n1", "10.244.0.4".into(), LabRun::Builtin),
            ]
        );
        assert_eq!(added[0].netns, "bh-t.pod.z.d");
        let z = namespaces.iter().find(|n| n.name == "z").unwrap();
        assert_eq!(z.labels.get("team"), Some("q"));
        assert_eq!(namespaces.len(), 3);

        // An address goes again only once nobody has it.
        p.workloads.extend(added);
        let e = plan_added(&p, &more, &rules).unwrap_err().to_string();
        assert!(e.contains("z/d is already in lab t"), "{e}");
        let taken = bundle(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: f}\nstatus: {podIP: 10.244.1.3}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: g}\nspec: {nodeName: n9}\n",
        );
        let e = plan_added(&p, &taken, &rules).unwrap_err().to_string();
        assert!(
            e.contains("default/f: the address 10.244.1.3 belongs to z/d"),
            "{e}"
        );
        assert!(e.contains("node \"n9\" is not a node of lab t"), "{e}");
        p.workloads.retain(|w| w.key.name != "d");
        let again = bundle("apiVersion: v1\nkind: Pod\nmetadata: {name: h}\n");
        let (h, _) = plan_added(&p, &again, &rules).unwrap();
        assert_eq!(h[0].ipv4.to_string(), "10.244.1.3", "free again");
    }
}
