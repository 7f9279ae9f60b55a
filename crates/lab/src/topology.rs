//! Builds the routed (Calico-style) topology of a plan. Nothing is created in the
//! host's namespace: every link is made inside a lab namespace, its peer directly in
//! another lab namespace.
//!
//! ```text
//!   pod ns (x/a)              node ns (node-1)                 router ns   node ns (node-2)
//!  +-------------+          +-----------------------+          +------+   +--------------+
//!  | eth0        |--veth----| bhXXXXp.. (fe80::1)   |          |      |   |              |
//!  | 10.244.0.2  |          | lo: 169.254.1.1,      |--veth----| bh..r|---| bh..u  ...    |
//!  | default via |          |     10.244.0.1        |  uplink  | lo:  |   | lo: 10.244.1.1
//!  | 169.254.1.1 |          | 10.244.0.2/32 dev ... |          | 169.254.2.1  pods ...   |
//!  +-------------+          +-----------------------+          +------+   +--------------+
//! ```
//! Every pod packet goes through its node's namespace (where an agent enforces policy);
//! between nodes it also crosses the router namespace.

use std::fs::File;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::addressing::{GATEWAY_V4, GATEWAY_V6, NODE_LINK_V6, ROUTER_LINK_V6, ROUTER_V4};
use crate::netlink::{FAR_MAC, NEAR_MAC, Netlink, Via};
use crate::netns;
use crate::plan::{NodePlan, Plan, WorkloadPlan};

/// How long a link may take to come up once both its ends are up (the kernel takes
/// microseconds; a loaded machine may be slower).
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every namespace of the plan, router first, then nodes, then pods.
pub fn namespaces(plan: &Plan) -> Vec<String> {
    plan.router
        .iter()
        .cloned()
        .chain(plan.nodes.iter().map(|n| n.netns.clone()))
        .chain(plan.workloads.iter().map(|w| w.netns.clone()))
        .collect()
}

/// Create and wire everything; returns once every link carries packets. On error the
/// caller tears the lab down.
pub fn build(plan: &Plan) -> Result<()> {
    for ns in namespaces(plan) {
        netns::create(&ns).with_context(|| format!("creating network namespace {ns}"))?;
    }
    if let Some(router) = &plan.router {
        netns::enter(router, || base(true))?;
    }
    for node in &plan.nodes {
        netns::enter(&node.netns, || base(true))?;
    }
    for w in &plan.workloads {
        netns::enter(&w.netns, || base(false))?;
    }
    if let Some(router) = &plan.router {
        netns::enter(router, || wire_router(plan)).context("wiring the router")?;
    }
    for node in &plan.nodes {
        netns::enter(&node.netns, || wire_node(plan, node))
            .with_context(|| format!("wiring node {}", node.name))?;
    }
    for w in &plan.workloads {
        netns::enter(&w.netns, || wire_pod(w)).with_context(|| format!("wiring {}", w.key))?;
    }
    let all: Vec<&WorkloadPlan> = plan.workloads.iter().collect();
    links_up(plan, &all, true)
}

/// Return only once the link ends that came up before their peers are up for real: the
/// router's ends of the uplinks (`uplinks`) and the node ends of the workloads' links.
/// Each was up, without a carrier, before the other end (the node's uplink, the pod's
/// `eth0`) came up; the kernel finishes its coming up later, in the background, and
/// until then drops every packet sent out of it (see [`Netlink::wait_up`]). Without
/// this wait a workload's first packets in could vanish: a probe made right after `lab
/// add` saw no SYN-ACK and called an allowed connection denied. The other ends came up
/// last, with their peers already up: they carry packets at once (`wire_pod` still
/// waits for `eth0`, so `ip link` shows it UP too).
fn links_up(plan: &Plan, ws: &[&WorkloadPlan], uplinks: bool) -> Result<()> {
    if uplinks && let Some(router) = &plan.router {
        netns::enter(router, || {
            let mut nl = Netlink::open()?;
            for (_, router_end) in plan.nodes.iter().filter_map(|n| n.uplink.as_ref()) {
                nl.wait_up(router_end, LINK_UP_TIMEOUT)?;
            }
            Ok(())
        })
        .context("bringing up the router's links")?;
    }
    in_nodes(plan, ws, "bringing up the link of", |nl, w| {
        nl.wait_up(&w.veth, LINK_UP_TIMEOUT)
    })
}

/// `f` for each of `ws`, in the namespace of its node; errors say `what` and the
/// workload.
fn in_nodes(
    plan: &Plan,
    ws: &[&WorkloadPlan],
    what: &str,
    f: impl Fn(&mut Netlink, &WorkloadPlan) -> Result<()> + Sync,
) -> Result<()> {
    for node in &plan.nodes {
        let here: Vec<&&WorkloadPlan> = ws.iter().filter(|w| w.node == node.name).collect();
        if here.is_empty() {
            continue;
        }
        netns::enter(&node.netns, || {
            let mut nl = Netlink::open()?;
            for w in &here {
                f(&mut nl, w).with_context(|| format!("{what} {}", w.key))?;
            }
            Ok(())
        })
        .with_context(|| format!("in node {}", node.name))?;
    }
    Ok(())
}

/// Settings every lab namespace needs before its links exist.
fn base(forwarding: bool) -> Result<()> {
    // No duplicate address detection: it keeps IPv6 addresses unusable for a second
    // or two, and lab addresses are unique by construction. Set on `default` before
    // links are made so the links inherit it.
    for scope in ["all", "default"] {
        netns::sysctl(&["net", "ipv6", "conf", scope, "accept_dad"], "0")?;
    }
    if forwarding {
        netns::sysctl(&["net", "ipv4", "ip_forward"], "1")?;
        netns::sysctl(&["net", "ipv6", "conf", "all", "forwarding"], "1")?;
        // Pod addresses are routed on-link through proxy ARP: no reverse-path checks.
        for scope in ["all", "default"] {
            netns::sysctl(&["net", "ipv4", "conf", scope, "rp_filter"], "0")?;
        }
        // Agents reject what policy denies with ICMP errors (and TCP resets). The kernel
        // sends at most about one error per second to a given address by default, so a
        // workload denied again and again (a prober) would mostly wait for timeouts
        // instead of being refused at once. Per namespace: the host keeps its limits.
        netns::sysctl(&["net", "ipv4", "icmp_ratelimit"], "0")?;
        netns::sysctl(&["net", "ipv6", "icmp", "ratelimit"], "0")?;
    } else {
        // Unprivileged ICMP echo sockets for every group: probes ping without raw sockets.
        netns::sysctl(&["net", "ipv4", "ping_group_range"], "0 2147483647")?;
    }
    Netlink::open()?.up("lo")?;
    Ok(())
}

fn wire_router(plan: &Plan) -> Result<()> {
    let mut nl = Netlink::open()?;
    let lo = nl.index("lo")?;
    nl.add_address(lo, IpAddr::V4(ROUTER_V4), 32)?;
    for node in &plan.nodes {
        let Some((uplink, router_end)) = &node.uplink else {
            continue;
        };
        let node_ns = File::open(netns::path(&node.netns))?;
        nl.add_veth(router_end, uplink, &node_ns)?;
        let i = nl.index(router_end)?;
        nl.add_address(i, IpAddr::V6(ROUTER_LINK_V6), 64)?;
        let v4 = Via::onlink(node.ipv4);
        let v6 = Via::gateway(NODE_LINK_V6);
        let net4 = node.pod_cidr_v4;
        let net6 = node.pod_cidr_v6;
        nl.add_route(IpAddr::V4(net4.network()), net4.prefix_len(), i, v4)?;
        nl.add_route(IpAddr::V6(net6.network()), net6.prefix_len(), i, v6)?;
        // Addresses the input fixed outside the node's subnets get their own routes.
        for w in plan.workloads.iter().filter(|w| w.node == node.name) {
            for (dest, prefix, via) in host_routes(node, w) {
                nl.add_route(dest, prefix, i, via)?;
            }
        }
    }
    Ok(())
}

fn wire_node(plan: &Plan, node: &NodePlan) -> Result<()> {
    let mut nl = Netlink::open()?;
    let lo = nl.index("lo")?;
    nl.add_address(lo, IpAddr::V4(GATEWAY_V4), 32)?;
    nl.add_address(lo, IpAddr::V4(node.ipv4), 32)?;
    nl.add_address(lo, IpAddr::V6(node.ipv6), 128)?;
    if let Some((uplink, _)) = &node.uplink {
        let i = nl.up(uplink)?;
        nl.add_address(i, IpAddr::V6(NODE_LINK_V6), 64)?;
        nl.add_default(i, Via::onlink(ROUTER_V4))?;
        nl.add_default(i, Via::gateway(ROUTER_LINK_V6))?;
    }
    for w in plan.workloads.iter().filter(|w| w.node == node.name) {
        wire_link(&mut nl, w)?;
    }
    Ok(())
}

/// The node side of a workload's link (run inside the node's namespace): the veth with
/// its other end made directly in the pod's namespace, proxy ARP, the gateway address,
/// routes to the pod and permanent neighbour entries.
fn wire_link(nl: &mut Netlink, w: &WorkloadPlan) -> Result<()> {
    let pod_ns = File::open(netns::path(&w.netns))?;
    nl.add_veth(&w.veth, "eth0", &pod_ns)?;
    netns::sysctl(&["net", "ipv4", "conf", &w.veth, "proxy_arp"], "1")?;
    let i = nl.index(&w.veth)?;
    nl.add_address(i, IpAddr::V6(GATEWAY_V6), 64)?;
    // Neighbours before routes: nothing is ever sent towards the pod unresolved.
    nl.add_neighbour(i, IpAddr::V4(w.ipv4), FAR_MAC)?;
    nl.add_neighbour(i, IpAddr::V6(w.ipv6), FAR_MAC)?;
    nl.add_route(IpAddr::V4(w.ipv4), 32, i, Via::Link)?;
    nl.add_route(IpAddr::V6(w.ipv6), 128, i, Via::Link)?;
    Ok(())
}

/// Workloads added to a running lab (`lab add`), made exactly as `lab up` makes them:
/// their namespaces, links, addresses, routes and neighbour entries, and the router's
/// host routes for addresses outside their node's subnets; returns once their links
/// carry packets. `plan` already holds them. On error the caller removes them again
/// ([`remove_workload`]).
pub fn add_workloads(plan: &Plan, added: &[&WorkloadPlan]) -> Result<()> {
    for w in added {
        netns::create(&w.netns)
            .with_context(|| format!("creating network namespace {}", w.netns))?;
        netns::enter(&w.netns, || base(false))?;
    }
    in_nodes(plan, added, "wiring", wire_link)?;
    for w in added {
        netns::enter(&w.netns, || wire_pod(w)).with_context(|| format!("wiring {}", w.key))?;
    }
    if let Some(router) = &plan.router {
        netns::enter(router, || router_routes(plan, added, true))
            .context("routing the new workloads in the router")?;
    }
    links_up(plan, added, false)
}

/// Remove a workload's link (the node's end, and with it `eth0` and the node's routes
/// and neighbour entries over it), the router's host routes for it, and its namespace.
/// The link is deleted explicitly rather than left to go with the namespace: the kernel
/// dismantles a namespace in the background, so its links would linger for a moment
/// and a workload given the address next could not get its route. Processes inside must
/// be gone first. Idempotent.
pub fn remove_workload(plan: &Plan, w: &WorkloadPlan) -> Result<()> {
    if let Some(node) = plan.nodes.iter().find(|n| n.name == w.node)
        && netns::exists(&node.netns)
    {
        netns::enter(&node.netns, || Netlink::open()?.del_link(&w.veth))
            .with_context(|| format!("removing the link of {}", w.key))?;
    }
    if let Some(router) = &plan.router
        && netns::exists(router)
    {
        netns::enter(router, || router_routes(plan, &[w], false))
            .with_context(|| format!("removing the router's routes to {}", w.key))?;
    }
    netns::delete(&w.netns)
}

/// Add (or delete) the router's host routes for addresses of `ws` outside their node's
/// subnets (the subnets themselves are routed once per node).
fn router_routes(plan: &Plan, ws: &[&WorkloadPlan], add: bool) -> Result<()> {
    let mut nl = Netlink::open()?;
    for w in ws {
        let Some(node) = plan.nodes.iter().find(|n| n.name == w.node) else {
            continue;
        };
        let Some((_, router_end)) = &node.uplink else {
            continue;
        };
        let routes = host_routes(node, w);
        if routes.is_empty() {
            continue;
        }
        let i = nl.index(router_end)?;
        for (dest, prefix, via) in routes {
            if add {
                nl.add_route(dest, prefix, i, via)?;
            } else {
                nl.del_route(dest, prefix)?;
            }
        }
    }
    Ok(())
}

fn wire_pod(w: &WorkloadPlan) -> Result<()> {
    let mut nl = Netlink::open()?;
    let eth0 = nl.up("eth0")?;
    nl.add_address(eth0, IpAddr::V4(w.ipv4), 32)?;
    nl.add_address(eth0, IpAddr::V6(w.ipv6), 128)?;
    // Neighbours before routes: the first packet out already finds its gateway.
    nl.add_neighbour(eth0, IpAddr::V4(GATEWAY_V4), NEAR_MAC)?;
    nl.add_neighbour(eth0, IpAddr::V6(GATEWAY_V6), NEAR_MAC)?;
    nl.add_route(IpAddr::V4(GATEWAY_V4), 32, eth0, Via::Link)?;
    nl.add_default(eth0, Via::gateway(GATEWAY_V4))?;
    nl.add_default(eth0, Via::gateway(GATEWAY_V6))?;
    nl.wait_up("eth0", LINK_UP_TIMEOUT)
}

/// The router's routes to a workload's addresses that lie outside its node's subnets
/// (addresses a Pod's `status.podIPs` fixed): towards the node, as the subnets are.
fn host_routes(node: &NodePlan, w: &WorkloadPlan) -> Vec<(IpAddr, u8, Via)> {
    let mut routes = Vec::new();
    if !node.pod_cidr_v4.contains(&w.ipv4) {
        routes.push((IpAddr::V4(w.ipv4), 32, Via::onlink(node.ipv4)));
    }
    if !node.pod_cidr_v6.contains(&w.ipv6) {
        routes.push((IpAddr::V6(w.ipv6), 128, Via::gateway(NODE_LINK_V6)));
    }
    routes
}
