//! The lab's inventory as Kubernetes YAML (`inventory.yaml` in the lab directory), the
//! form node agents read: Namespaces, Nodes (with their addresses) and one Pod per
//! workload with `spec.nodeName`, its container ports and `status.podIPs`.

use serde_json::{Value, json};

use crate::plan::Plan;
use crate::runner;

pub fn render(plan: &Plan) -> anyhow::Result<String> {
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
    for w in &plan.workloads {
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
        docs.push(json!({
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
        }));
    }
    let mut out = format!(
        "# Inventory of bulkhead lab {}: written by `bulkhead lab up`, read by its agents.\n",
        plan.lab
    );
    for d in &docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d)?);
    }
    Ok(out)
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
    }
}
