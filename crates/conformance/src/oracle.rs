//! A deliberately naive NetworkPolicy evaluator, written straight from the
//! Kubernetes documentation:
//!
//! - the concept page, <https://kubernetes.io/docs/concepts/services-networking/network-policies/>
//!   (quoted below as "concepts");
//! - the API reference for NetworkPolicySpec and friends,
//!   <https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/>
//!   (quoted as "API");
//! - the label selector rules, <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/>
//!   (quoted as "labels").
//!
//! It answers one question, one connection at a time, by walking every policy: no
//! indexes, no precomputation, no cleverness. It is meant to be obviously right
//! and slow; it is the yardstick the real engine is measured against.
//!
//! Things a real cluster has that this model leaves out, because no scenario needs
//! them: traffic from a pod's own node (always allowed), host-network pods, and
//! traffic to or from outside the cluster.

use std::net::IpAddr;

use crate::matrix::{Matrix, Probe, Protocol};
use crate::scenario::{
    LabelSelector, Labels, NetworkPolicy, NetworkPolicySpec, Operator, Peer, Pod, PolicyPort,
    PolicyType, PortSpec, Scenario,
};

/// The reachability matrix of `scenario` for `probes`.
pub fn oracle_matrix(scenario: &Scenario, probes: &[Probe]) -> Matrix {
    Matrix::build(
        &scenario.pods,
        Pod::key,
        probes,
        |source, destination, probe| is_allowed(scenario, source, destination, probe),
    )
}

/// Whether `source` may open a connection to `destination` with `probe`.
pub fn is_allowed(scenario: &Scenario, source: &Pod, destination: &Pod, probe: Probe) -> bool {
    // "For a connection from a source pod to a destination pod to be allowed, both
    // the egress policy on the source pod and the ingress policy on the destination
    // pod need to allow the connection. If either side does not allow the
    // connection, it will not happen." (concepts)
    let connection = Connection {
        source,
        destination,
        probe,
    };
    side_allows(scenario, &connection, PolicyType::Egress)
        && side_allows(scenario, &connection, PolicyType::Ingress)
}

/// One connection attempt, looked at from either end.
struct Connection<'a> {
    source: &'a Pod,
    destination: &'a Pod,
    probe: Probe,
}

/// Whether the source's egress side (`Egress`) or the destination's ingress side
/// (`Ingress`) allows `connection`.
fn side_allows(scenario: &Scenario, connection: &Connection, direction: PolicyType) -> bool {
    // The pod whose policies decide, and the pod at the other end, which the
    // rules' `from` (ingress) or `to` (egress) must match.
    let (pod, peer) = match direction {
        PolicyType::Ingress => (connection.destination, connection.source),
        PolicyType::Egress => (connection.source, connection.destination),
    };
    // "A pod is isolated for ingress if there is any NetworkPolicy that both selects
    // the pod and has "Ingress" in its policyTypes; we say that such a policy applies
    // to the pod for ingress." (concepts; and word for word the same for egress)
    let applying: Vec<&NetworkPolicy> = scenario
        .policies
        .iter()
        .filter(|policy| applies_to(policy, pod, direction))
        .collect();
    // "By default, a pod is non-isolated for ingress; all inbound connections are
    // allowed." "By default, a pod is non-isolated for egress; all outbound
    // connections are allowed." (concepts)
    if applying.is_empty() {
        return true;
    }
    // "When a pod is isolated for egress, the only allowed connections from the pod
    // are those allowed by the egress list of some NetworkPolicy that applies to the
    // pod for egress. [...] The effects of those egress lists combine additively."
    // (concepts; likewise for ingress) -- so: any rule of any applying policy.
    applying.iter().any(|policy| {
        rules(policy, direction).into_iter().any(|(peers, ports)| {
            // "Each rule allows traffic which matches both the from and ports
            // sections." (concepts)
            peers_match(scenario, policy, peers, peer)
                // Ingress ports are ports of the pod being protected, egress ports
                // are "destination ports for outgoing traffic" (API egress[].ports):
                // either way the destination's, so named ports resolve there.
                && ports_match(ports, connection.destination, connection.probe)
        })
    })
}

/// One rule, reduced to what matters here: its `from` (or `to`) and its `ports`.
type Rule<'a> = (Option<&'a [Peer]>, Option<&'a [PolicyPort]>);

/// A policy's rules in `direction`.
fn rules(policy: &NetworkPolicy, direction: PolicyType) -> Vec<Rule<'_>> {
    // "If this field is empty then this NetworkPolicy does not allow any traffic"
    // (API spec.ingress) / "limits all outgoing traffic" (API spec.egress): an
    // absent or empty list simply yields no rule.
    match direction {
        PolicyType::Ingress => (policy.spec.ingress.iter().flatten())
            .map(|rule| (rule.from.as_deref(), rule.ports.as_deref()))
            .collect(),
        PolicyType::Egress => (policy.spec.egress.iter().flatten())
            .map(|rule| (rule.to.as_deref(), rule.ports.as_deref()))
            .collect(),
    }
}

/// Whether `policy` selects `pod` and affects traffic in `direction`.
fn applies_to(policy: &NetworkPolicy, pod: &Pod, direction: PolicyType) -> bool {
    // A NetworkPolicy is namespaced: its podSelector "selects the pods to which this
    // NetworkPolicy object applies. [...] An empty podSelector matches all pods in
    // this namespace." (API) -- never pods of another namespace.
    if policy.namespace != pod.namespace {
        return false;
    }
    // "This field is optional. If it is not specified, it defaults to an empty
    // selector." (API, podSelector)
    let selects = match &policy.spec.pod_selector {
        None => true,
        Some(selector) => selector_matches(selector, &pod.labels),
    };
    selects && policy_types(&policy.spec).contains(&direction)
}

/// The policy's effective policyTypes, after the API server's defaulting.
pub fn policy_types(spec: &NetworkPolicySpec) -> Vec<PolicyType> {
    match &spec.policy_types {
        // An explicit list is taken as written: a policyTypes of [Egress] makes the
        // policy ignore whatever `ingress` rules it also carries.
        Some(types) if !types.is_empty() => types.clone(),
        // "If this field is not specified, it will default based on the existence of
        // ingress or egress rules; policies that contain an egress section are
        // assumed to affect egress, and all policies (whether or not they contain an
        // ingress section) are assumed to affect ingress." (API, policyTypes)
        //
        // The API server's defaulting (SetDefaults_NetworkPolicy) runs when the list
        // has length zero, so `policyTypes: []` defaults exactly like an absent
        // field, and "contains an egress section" means `len(egress) != 0`: an
        // `egress: []` does not make the policy affect egress.
        _ => {
            let has_egress_rules = spec.egress.as_ref().is_some_and(|rules| !rules.is_empty());
            if has_egress_rules {
                vec![PolicyType::Ingress, PolicyType::Egress]
            } else {
                vec![PolicyType::Ingress]
            }
        }
    }
}

/// Whether `pod` is one of `peers` (the `from` of an ingress rule, or the `to` of an
/// egress rule) of a rule in `policy`.
fn peers_match(
    scenario: &Scenario,
    policy: &NetworkPolicy,
    peers: Option<&[Peer]>,
    pod: &Pod,
) -> bool {
    match peers {
        // "If this field is empty or missing, this rule matches all sources (traffic
        // not restricted by source)." (API, ingress[].from; likewise egress[].to for
        // destinations)
        None | Some([]) => true,
        // "Items in this list are combined using a logical OR operation." (API)
        Some(peers) => peers
            .iter()
            .any(|peer| peer_matches(scenario, policy, peer, pod)),
    }
}

fn peer_matches(scenario: &Scenario, policy: &NetworkPolicy, peer: &Peer, pod: &Pod) -> bool {
    if let Some(block) = &peer.ip_block {
        // "ipBlock: This selects particular IP CIDR ranges to allow as ingress
        // sources or egress destinations." (concepts) A pod is in the block when its
        // IP is in `cidr` and in none of `except`: "except is a slice of CIDRs that
        // should not be included within an IPBlock" (API). A pod that has no IP yet
        // is in no block.
        return match pod.ip {
            None => false,
            Some(ip) => ip_in_block(ip, block),
        };
    }
    match (&peer.namespace_selector, &peer.pod_selector) {
        // A peer with nothing set is rejected when the scenario is loaded; should one
        // ever get here, it allows nothing.
        (None, None) => false,
        // "podSelector [...] Otherwise it selects the pods matching podSelector in the
        // policy's own namespace." (API, NetworkPolicyPeer.podSelector)
        (None, Some(pods)) => {
            pod.namespace == policy.namespace && selector_matches(pods, &pod.labels)
        }
        // "namespaceSelector [...] Otherwise it selects all pods in the namespaces
        // selected by namespaceSelector." (API) and "if present but empty, it selects
        // all namespaces." (API)
        (Some(namespaces), None) => namespace_matches(scenario, namespaces, &pod.namespace),
        // "If podSelector is also set, then the NetworkPolicyPeer as a whole selects
        // the pods matching podSelector in the namespaces selected by
        // namespaceSelector." (API) -- both must hold, within one peer.
        (Some(namespaces), Some(pods)) => {
            namespace_matches(scenario, namespaces, &pod.namespace)
                && selector_matches(pods, &pod.labels)
        }
    }
}

fn ip_in_block(ip: IpAddr, block: &crate::scenario::IpBlock) -> bool {
    block.cidr.contains(ip)
        && !block
            .except
            .iter()
            .flatten()
            .any(|except| except.contains(ip))
}

/// "namespaceSelector selects namespaces using cluster-scoped labels." (API)
fn namespace_matches(scenario: &Scenario, selector: &LabelSelector, namespace: &str) -> bool {
    scenario
        .namespaces
        .iter()
        .find(|ns| ns.name == namespace)
        // Namespace labels include kubernetes.io/metadata.name, added at load time.
        .is_some_and(|ns| selector_matches(selector, &ns.labels))
}

/// Standard label selector semantics.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    // "The result of matchLabels and matchExpressions are ANDed. An empty label
    // selector matches all objects." (API, LabelSelector)
    //
    // "A single {key,value} in the matchLabels map is equivalent to an element of
    // matchExpressions, whose key field is "key", the operator is "In", and the
    // values array contains only "value"." (API)
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|requirement| {
            let value = labels.get(&requirement.key);
            let values = requirement.values.as_deref().unwrap_or_default();
            match requirement.operator {
                // "environment in (production, qa)" selects resources whose label has one
                // of the values (labels) -- a missing label is not among them.
                Operator::In => value.is_some_and(|v| values.contains(v)),
                // "tier notin (frontend, backend) selects all resources with key equal to
                // tier and values other than frontend and backend, and all resources with
                // no labels with the tier key" (labels)
                Operator::NotIn => value.is_none_or(|v| !values.contains(v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        });
    labels_match && expressions_match
}

/// Whether a rule's `ports` list admits `probe` towards `destination`.
fn ports_match(ports: Option<&[PolicyPort]>, destination: &Pod, probe: Probe) -> bool {
    match ports {
        // "If this field is empty or missing, this rule matches all ports (traffic not
        // restricted by port)." (API, ingress[].ports and egress[].ports)
        None | Some([]) => true,
        // "If this field is present and contains at least one item, then this rule
        // allows traffic only if the traffic matches at least one port in the list."
        Some(ports) => ports
            .iter()
            .any(|port| port_matches(port, destination, probe)),
    }
}

fn port_matches(port: &PolicyPort, destination: &Pod, probe: Probe) -> bool {
    // "protocol represents the protocol (TCP, UDP, or SCTP) which traffic must match.
    // If not specified, this field defaults to TCP." (API, NetworkPolicyPort) -- so
    // even an entry `{}` is TCP-only.
    let protocol = port.protocol.unwrap_or(Protocol::Tcp);
    if probe.protocol != protocol {
        return false;
    }
    match &port.port {
        // "If this field is not provided, this matches all port names and numbers."
        // (API, NetworkPolicyPort.port)
        None => true,
        Some(PortSpec::Number(start)) => match port.end_port {
            None => probe.port == *start,
            // "endPort indicates that the range of ports from port to endPort if set,
            // inclusive, should be allowed by the policy." (API)
            Some(end) => (*start..=end).contains(&probe.port),
        },
        // "This can either be a numerical or named port on a pod." (API) A name means
        // whatever port number the pod receiving the traffic gives that name, for
        // this protocol: a TCP rule naming a port the pod declares as UDP matches
        // nothing, and a pod without the name matches nothing.
        Some(PortSpec::Name(name)) => destination.ports.iter().any(|declared| {
            declared.name.as_deref() == Some(name.as_str())
                && declared.protocol == protocol
                && declared.number == probe.port
        }),
    }
}
