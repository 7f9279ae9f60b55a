//! Reading a scenario: the Kubernetes objects in `namespaces.yaml`, `pods.yaml`
//! and `policies.yaml`.
//!
//! The structs below mirror the Kubernetes API field for field (only the fields
//! reachability depends on), keeping `Option`s where the API distinguishes a
//! missing field from an empty one. Interpreting them is the oracle's job; this
//! module only parses and rejects what the API server would reject, so the oracle
//! never sees an object a real cluster could not hold.
//!
//! Parsing goes through a generic JSON value first because a document's shape
//! depends on its `kind`, and `kind: List` wraps further documents in `items`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::matrix::Protocol;

/// The label the control plane puts on every namespace; its value is the name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The files a scenario directory holds, in the order they are read.
pub const SCENARIO_FILES: [&str; 3] = ["namespaces.yaml", "pods.yaml", "policies.yaml"];

pub type Labels = BTreeMap<String, String>;

/// Why a scenario could not be loaded; `file` names the file at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    pub message: String,
}

impl Error {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            file: file.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for Error {}

/// Everything a reachability question depends on.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub policies: Vec<NetworkPolicy>,
}

#[derive(Clone, Debug)]
pub struct Namespace {
    pub name: String,
    /// Includes the implicit `kubernetes.io/metadata.name` label.
    pub labels: Labels,
}

#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// The ports of all containers; named ones are what named policy ports resolve to.
    pub ports: Vec<ContainerPort>,
    /// The first of `status.podIPs` (or `status.podIP`); `None` before scheduling.
    pub ip: Option<IpAddr>,
}

impl Pod {
    /// `"namespace/name"`, the way matrices and `expected.yaml` name pods.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub number: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub spec: NetworkPolicySpec,
}

// ---- The NetworkPolicy API, as written in YAML ----------------------------------
//
// `deny_unknown_fields` mirrors the API server's strict field validation (kubectl's
// default), and catches typos such as `podselector` that would otherwise silently
// widen a policy.

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    pub pod_selector: Option<LabelSelector>,
    pub policy_types: Option<Vec<PolicyType>>,
    pub ingress: Option<Vec<IngressRule>>,
    pub egress: Option<Vec<EgressRule>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    pub from: Option<Vec<Peer>>,
    pub ports: Option<Vec<PolicyPort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    pub to: Option<Vec<Peer>>,
    pub ports: Option<Vec<PolicyPort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peer {
    pub pod_selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: Cidr,
    pub except: Option<Vec<Cidr>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPort {
    pub protocol: Option<Protocol>,
    pub port: Option<PortSpec>,
    pub end_port: Option<u16>,
}

/// `port` is an int-or-string: a number, or the name of a container port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a port number (1-65535) or a port name")]
pub enum PortSpec {
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: Option<Labels>,
    pub match_expressions: Option<Vec<Requirement>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// An IPv4 or IPv6 prefix such as `10.0.0.0/8`. Host bits are ignored, the way
/// Kubernetes' own `net.ParseCIDR` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/64\"");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { address, prefix })
    }
}

impl Cidr {
    /// Whether `ip` lies inside this prefix (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Compare the leading `prefix` bits of both addresses, as 128-bit numbers.
        let (net, ip, width) = match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u32::from(net) as u128, u32::from(ip) as u128, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => (u128::from(net), u128::from(ip), 128),
            _ => return false,
        };
        let ignored_bits = width - u32::from(self.prefix);
        net.checked_shr(ignored_bits).unwrap_or(0) == ip.checked_shr(ignored_bits).unwrap_or(0)
    }
}

// ---- Namespaces and pods, as written in YAML ---------------------------------------

#[derive(Deserialize)]
struct ObjectMeta {
    name: String,
    namespace: Option<String>,
    labels: Option<Labels>,
}

#[derive(Deserialize)]
struct NamespaceDoc {
    metadata: ObjectMeta,
}

#[derive(Deserialize)]
struct PodDoc {
    metadata: ObjectMeta,
    spec: PodSpec,
    status: Option<PodStatus>,
}

#[derive(Deserialize)]
struct PodSpec {
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[allow(dead_code)] // required by the API; read only to insist it is there
    name: String,
    #[allow(dead_code)]
    image: String,
    ports: Option<Vec<ContainerPortDoc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPortDoc {
    name: Option<String>,
    container_port: u16,
    protocol: Option<Protocol>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIp>>,
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

#[derive(Deserialize)]
struct NetworkPolicyDoc {
    metadata: ObjectMeta,
    spec: Option<NetworkPolicySpec>,
}

// ---- Loading -------------------------------------------------------------------------

/// Reads `namespaces.yaml`, `pods.yaml` and `policies.yaml` from `dir`.
pub fn load_scenario(dir: impl AsRef<Path>) -> Result<Scenario, Error> {
    let dir = dir.as_ref();
    let mut files = Vec::new();
    for name in SCENARIO_FILES {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::new(path.display().to_string(), format!("cannot read: {e}")))?;
        files.push((path.display().to_string(), text));
    }
    let named: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Scenario::from_yaml(&named)
}

impl Scenario {
    /// Builds a scenario from `(file name, YAML text)` pairs. Any file may hold any
    /// of the supported kinds (`Namespace`, `Pod`, `NetworkPolicy`, `List` of them);
    /// errors name the file they come from.
    pub fn from_yaml(files: &[(&str, &str)]) -> Result<Scenario, Error> {
        let mut scenario = Scenario::default();
        // The file each namespace, pod and policy came from, for error messages.
        let mut origins = Origins::default();
        for (file, text) in files {
            for (index, doc) in parse_documents(file, text)?.into_iter().enumerate() {
                let place = format!("document {}", index + 1);
                scenario
                    .add_document(doc, &place)
                    .map_err(|m| Error::new(*file, m))?;
            }
            origins.record(&scenario, file);
        }
        scenario.check_references(&origins)?;
        Ok(scenario)
    }

    fn add_document(&mut self, doc: Value, place: &str) -> Result<(), String> {
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected_api = match kind.as_str() {
            "List" | "Namespace" | "Pod" => "v1",
            "NetworkPolicy" => "networking.k8s.io/v1",
            "" => return Err(format!("{place} has no `kind`")),
            other => {
                return Err(format!(
                    "{place}: unsupported kind {other:?} (expected Namespace, Pod, NetworkPolicy or List)"
                ));
            }
        };
        if api_version != expected_api {
            return Err(format!(
                "{place} ({kind}): apiVersion must be {expected_api:?}, found {api_version:?}"
            ));
        }
        match kind.as_str() {
            "List" => {
                let Some(Value::Array(items)) = doc.get("items") else {
                    return Err(format!("{place} (List) has no `items` list"));
                };
                for (index, item) in items.iter().enumerate() {
                    self.add_document(item.clone(), &format!("{place}, items[{index}]"))?;
                }
            }
            "Namespace" => {
                let ns: NamespaceDoc = typed(doc, place, &kind)?;
                let mut labels = ns.metadata.labels.unwrap_or_default();
                // "The Kubernetes control plane sets an immutable label
                // kubernetes.io/metadata.name on all namespaces, the value of the
                // label is the namespace name." (Network Policies concept page)
                labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.metadata.name.clone());
                check_dns_label(&ns.metadata.name)
                    .map_err(|m| format!("{place} (Namespace): {m}"))?;
                self.namespaces.push(Namespace {
                    name: ns.metadata.name,
                    labels,
                });
            }
            "Pod" => {
                let pod: PodDoc = typed(doc, place, &kind)?;
                let pod = convert_pod(pod).map_err(|m| format!("{place} (Pod): {m}"))?;
                self.pods.push(pod);
            }
            // "NetworkPolicy", the only kind left.
            _ => {
                let policy: NetworkPolicyDoc = typed(doc, place, &kind)?;
                // As with `kubectl apply`, an object without a namespace lands in "default".
                let namespace = policy
                    .metadata
                    .namespace
                    .unwrap_or_else(|| "default".into());
                let name = policy.metadata.name;
                let spec = policy.spec.unwrap_or_default();
                validate_spec(&spec)
                    .map_err(|m| format!("{place} (NetworkPolicy {namespace}/{name}): {m}"))?;
                self.policies.push(NetworkPolicy {
                    namespace,
                    name,
                    spec,
                });
            }
        }
        Ok(())
    }

    /// Cross-document checks: unique names, and every pod and policy lives in a
    /// namespace the scenario declares (a typo there would silently select nothing).
    fn check_references(&self, origins: &Origins) -> Result<(), Error> {
        let mut names = BTreeSet::new();
        for (ns, file) in self.namespaces.iter().zip(&origins.namespaces) {
            if !names.insert(ns.name.as_str()) {
                return Err(Error::new(
                    file,
                    format!("namespace {} is declared twice", ns.name),
                ));
            }
        }
        let objects = self
            .pods
            .iter()
            .map(|p| ("pod", &p.namespace, &p.name))
            .zip(&origins.pods);
        let policies = self
            .policies
            .iter()
            .map(|p| ("NetworkPolicy", &p.namespace, &p.name));
        let mut seen = BTreeSet::new();
        for ((kind, namespace, name), file) in objects.chain(policies.zip(&origins.policies)) {
            if !names.contains(namespace.as_str()) {
                return Err(Error::new(
                    file,
                    format!("{kind} {namespace}/{name} is in an undeclared namespace"),
                ));
            }
            if !seen.insert((kind, namespace, name)) {
                return Err(Error::new(
                    file,
                    format!("{kind} {namespace}/{name} is declared twice"),
                ));
            }
        }
        Ok(())
    }
}

/// Which file each object of a [`Scenario`] was read from, index for index.
#[derive(Default)]
struct Origins {
    namespaces: Vec<String>,
    pods: Vec<String>,
    policies: Vec<String>,
}

impl Origins {
    /// Attributes every object added since the last call to `file`.
    fn record(&mut self, scenario: &Scenario, file: &str) {
        let grow = |list: &mut Vec<String>, len: usize| list.resize(len, file.to_string());
        grow(&mut self.namespaces, scenario.namespaces.len());
        grow(&mut self.pods, scenario.pods.len());
        grow(&mut self.policies, scenario.policies.len());
    }
}

/// Splits a multi-document YAML file into documents, skipping empty ones.
fn parse_documents(file: &str, text: &str) -> Result<Vec<Value>, Error> {
    // YAML 1.1 would read `ns: y` as a boolean; Kubernetes keeps it a string for
    // string fields, and so do we by accepting only true/false as booleans.
    let options = serde_saphyr::options! { strict_booleans: true };
    let docs: Vec<Value> = serde_saphyr::from_str_multiple_with_options(text, options)
        .map_err(|e| Error::new(file, format!("invalid YAML: {e}")))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Deserialises one document into `T`, naming the offending field on failure.
fn typed<T: DeserializeOwned>(doc: Value, place: &str, kind: &str) -> Result<T, String> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        format!("{place} ({kind} {name}): at `{path}`: {}", e.inner())
    })
}

fn convert_pod(pod: PodDoc) -> Result<Pod, String> {
    // As with `kubectl apply`, an object without a namespace lands in "default".
    let namespace = pod.metadata.namespace.unwrap_or_else(|| "default".into());
    let name = pod.metadata.name;
    check_dns_label(&name)?;
    let mut ports: Vec<ContainerPort> = Vec::new();
    for port in pod
        .spec
        .containers
        .into_iter()
        .flat_map(|c| c.ports.unwrap_or_default())
    {
        if port.container_port == 0 {
            return Err(format!(
                "pod {namespace}/{name}: containerPort must be 1-65535"
            ));
        }
        if let Some(port_name) = &port.name {
            check_port_name(port_name).map_err(|m| format!("pod {namespace}/{name}: {m}"))?;
            if ports.iter().any(|p| p.name.as_ref() == Some(port_name)) {
                return Err(format!(
                    "pod {namespace}/{name}: port name {port_name:?} is used twice"
                ));
            }
        }
        ports.push(ContainerPort {
            name: port.name,
            number: port.container_port,
            // "protocol: Protocol for port. Must be UDP, TCP, or SCTP. Defaults to "TCP"." (ContainerPort API)
            protocol: port.protocol.unwrap_or(Protocol::Tcp),
        });
    }
    let ip_text = pod.status.and_then(|s| {
        s.pod_ips
            .and_then(|ips| ips.into_iter().next().map(|i| i.ip))
            .or(s.pod_ip)
    });
    let ip = match ip_text {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("pod {namespace}/{name}: {text:?} is not an IP address"))?,
        ),
    };
    Ok(Pod {
        namespace,
        name,
        labels: pod.metadata.labels.unwrap_or_default(),
        ports,
        ip,
    })
}

// ---- Validation: what the API server would refuse ----------------------------------

fn validate_spec(spec: &NetworkPolicySpec) -> Result<(), String> {
    if let Some(selector) = &spec.pod_selector {
        validate_selector(selector).map_err(|m| format!("spec.podSelector: {m}"))?;
    }
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        validate_rule("from", rule.from.as_deref(), rule.ports.as_deref())
            .map_err(|m| format!("spec.ingress[{i}].{m}"))?;
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        validate_rule("to", rule.to.as_deref(), rule.ports.as_deref())
            .map_err(|m| format!("spec.egress[{i}].{m}"))?;
    }
    Ok(())
}

/// `peers_field` is `from` or `to`, for messages.
fn validate_rule(
    peers_field: &str,
    peers: Option<&[Peer]>,
    ports: Option<&[PolicyPort]>,
) -> Result<(), String> {
    for (i, peer) in peers.unwrap_or_default().iter().enumerate() {
        validate_peer(peer).map_err(|m| format!("{peers_field}[{i}]: {m}"))?;
    }
    for (i, port) in ports.unwrap_or_default().iter().enumerate() {
        validate_port(port).map_err(|m| format!("ports[{i}]: {m}"))?;
    }
    Ok(())
}

fn validate_peer(peer: &Peer) -> Result<(), String> {
    match (&peer.ip_block, &peer.pod_selector, &peer.namespace_selector) {
        (None, None, None) => {
            Err("a peer must set podSelector, namespaceSelector or ipBlock".into())
        }
        // "ipBlock ... If this field is set then neither of the other fields can be."
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("ipBlock cannot be combined with a selector".into())
        }
        (Some(block), None, None) => {
            // "Except values will be rejected if they are outside the cidr range";
            // the API server also requires each to be strictly narrower.
            for except in block.except.iter().flatten() {
                let inside = except.address.is_ipv4() == block.cidr.address.is_ipv4()
                    && except.prefix > block.cidr.prefix
                    && block.cidr.contains(except.address);
                if !inside {
                    return Err(format!(
                        "ipBlock except {}/{} is not strictly inside cidr {}/{}",
                        except.address, except.prefix, block.cidr.address, block.cidr.prefix
                    ));
                }
            }
            Ok(())
        }
        (None, pods, namespaces) => {
            for selector in [pods, namespaces].into_iter().flatten() {
                validate_selector(selector)?;
            }
            Ok(())
        }
    }
}

fn validate_port(port: &PolicyPort) -> Result<(), String> {
    match (&port.port, port.end_port) {
        (Some(PortSpec::Number(0)), _) => Err("port must be 1-65535".into()),
        (Some(PortSpec::Name(name)), None) => check_port_name(name),
        // "This field cannot be defined if the port field is not defined or if the
        // port field is defined as a named (string) port." (NetworkPolicyPort.endPort)
        (None | Some(PortSpec::Name(_)), Some(_)) => Err("endPort needs a numeric port".into()),
        // "The endPort must be equal or greater than port."
        (Some(PortSpec::Number(start)), Some(end)) if end < *start => {
            Err(format!("endPort {end} is below port {start}"))
        }
        _ => Ok(()),
    }
}

fn validate_selector(selector: &LabelSelector) -> Result<(), String> {
    for requirement in selector.match_expressions.iter().flatten() {
        let has_values = requirement.values.as_ref().is_some_and(|v| !v.is_empty());
        // "If the operator is In or NotIn, the values array must be non-empty. If the
        // operator is Exists or DoesNotExist, the values array must be empty."
        match requirement.operator {
            Operator::In | Operator::NotIn if !has_values => {
                return Err(format!(
                    "matchExpressions on {:?}: In/NotIn need values",
                    requirement.key
                ));
            }
            Operator::Exists | Operator::DoesNotExist if has_values => {
                return Err(format!(
                    "matchExpressions on {:?}: Exists/DoesNotExist take no values",
                    requirement.key
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Pod and namespace names: lowercase letters, digits and '-', at most 63 characters.
fn check_dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid DNS label"))
    }
}

/// Port names (IANA_SVC_NAME): at most 15 lowercase letters, digits and '-', with at
/// least one letter, so a name can never be mistaken for a number.
fn check_port_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 15
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && check_dns_label(name).is_ok()
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid port name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::try_from(text.to_string()).unwrap()
    }

    #[test]
    fn cidr_contains_by_prefix_bits() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(cidr("10.1.0.3/32").contains(ip("10.1.0.3")));
        assert!(!cidr("10.1.0.3/32").contains(ip("10.1.0.4")));
        assert!(cidr("2001:db8::/64").contains(ip("2001:db8::5")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::5")));
        assert!(cidr("::/0").contains(ip("2001:db8::5")));
        for bad in ["10.0.0.0", "10.0.0.0/33", "banana/8", "::/129"] {
            assert!(Cidr::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(check_dns_label("x").is_ok());
        assert!(check_dns_label("X").is_err());
        assert!(check_dns_label("-a").is_err());
        assert!(check_port_name("serve-80-tcp").is_ok());
        assert!(check_port_name("8080").is_err());
        assert!(check_port_name("a-very-long-port-name").is_err());
    }
}
