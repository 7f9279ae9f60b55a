//! Every kind decodes to what its documents say.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bulkhead_manifest::{Source, parse_sources};
use bulkhead_model::L4;
use bulkhead_model::selector::parse as sel;
use bulkhead_model::{CidrBlock, ContainerPort, PortRange, Protocol, Selector};
use bulkhead_policy::l7::{AppProtocol, L7Match, LdapOp, MqttAction, SqlKind};
use bulkhead_policy::spec::{
    Action, Bundle, Entity, Expect, Mode, NamePattern, Origin, PeerSpec, PolicyType, PortSel,
    PortSpec, TestEndpoint,
};

fn src(name: &str, text: &str) -> Source {
    Source {
        name: name.into(),
        text: text.into(),
    }
}

fn parse(text: &str) -> Bundle {
    match parse_sources(&[src("t.yaml", text)]) {
        Ok(b) => b,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(port: u16) -> PortSpec {
    PortSpec {
        protocol: Some(Protocol::Tcp),
        port: PortSel::Range(PortRange::single(port)),
    }
}

#[test]
fn namespace_gets_the_implicit_name_label() {
    let b =
        parse("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {team: blue}\n");
    let ns = &b.inventory.namespaces[0];
    assert_eq!(ns.name, "shop");
    assert_eq!(ns.labels.get("team"), Some("blue"));
    assert_eq!(ns.labels.get("kubernetes.io/metadata.name"), Some("shop"));
}

#[test]
fn pod_ports_node_and_addresses() {
    let b = parse(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, "app.kubernetes.io/version": "1.0"}
  annotations: {note: anything at all}
spec:
  nodeName: n1
  initContainers:
    - name: init
      ports: [{containerPort: 9000, name: admin}]
  containers:
    - name: main
      image: nginx                 # unknown to us, tolerated
      ports:
        - {containerPort: 80, name: http}
        - {containerPort: 53, protocol: UDP}
status:
  podIP: 10.0.0.5
  podIPs: [{ip: 10.0.0.5}, {ip: "fd00::5"}]
  phase: Running
"#,
    );
    let w = &b.inventory.workloads[0];
    assert_eq!(w.key.to_string(), "default/web");
    assert_eq!(w.labels.get("app.kubernetes.io/version"), Some("1.0"));
    assert_eq!(w.node.as_deref(), Some("n1"));
    assert_eq!(w.ips, [ip("10.0.0.5"), ip("fd00::5")]);
    let port = |name: Option<&str>, port, protocol| ContainerPort {
        name: name.map(String::from),
        port,
        protocol,
    };
    assert_eq!(
        w.ports,
        [
            port(Some("admin"), 9000, Protocol::Tcp),
            port(Some("http"), 80, Protocol::Tcp),
            port(None, 53, Protocol::Udp),
        ]
    );
}

#[test]
fn node_addresses() {
    let b = parse(
        r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
status:
  addresses:
    - {type: Hostname, address: n1}
    - {type: InternalIP, address: 192.168.0.1}
    - {type: ExternalIP, address: 203.0.113.1}
    - {type: InternalIP, address: 192.168.0.1}
"#,
    );
    let n = &b.inventory.nodes[0];
    assert_eq!((n.name.as_str(), n.labels.get("zone")), ("n1", Some("a")));
    assert_eq!(n.addresses, [ip("192.168.0.1"), ip("203.0.113.1")]);
}

const TEMPLATE: &str = r#"
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: c, ports: [{containerPort: 8080, name: http}]}]
"#;

#[test]
fn controllers_expand_into_pods() {
    let docs = [
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api, namespace: shop}}\nspec:\n  replicas: 3\n{TEMPLATE}"
        ),
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n{TEMPLATE}"
        ),
        format!(
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: rs}}\nspec:\n  replicas: 0\n{TEMPLATE}"
        ),
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: job}}\nspec:\n  parallelism: 2\n{TEMPLATE}"
        ),
    ];
    let b = parse(&docs.join("---\n"));
    let names: Vec<String> = b
        .inventory
        .workloads
        .iter()
        .map(|w| w.key.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "shop/api-0",
            "shop/api-1",
            "shop/api-2",
            "default/db-0",
            "default/job-0",
            "default/job-1"
        ]
    );
    for w in &b.inventory.workloads {
        assert_eq!(w.labels.get("app"), Some("api"));
        assert_eq!(w.ports[0].port, 8080);
    }
}

#[test]
fn daemonsets_run_one_pod_per_node() {
    let ds = format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n{TEMPLATE}"
    );
    let b = parse(&ds);
    assert_eq!(b.inventory.workloads.len(), 1);
    assert_eq!(b.inventory.workloads[0].node, None);
    // Nodes written after the DaemonSet, even in another file, count.
    let nodes = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n";
    let b = parse_sources(&[src("ds.yaml", &ds), src("nodes.yaml", nodes)]).unwrap();
    let placed: Vec<(String, Option<String>)> = b
        .inventory
        .workloads
        .iter()
        .map(|w| (w.key.name.clone(), w.node.clone()))
        .collect();
    assert_eq!(
        placed,
        [
            ("agent-0".to_string(), Some("n1".to_string())),
            ("agent-1".to_string(), Some("n2".to_string()))
        ]
    );
}

#[test]
fn network_policy_keeps_absent_null_and_empty_apart() {
    let b = parse(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
    - {}
    - from: []
      ports: null
    - from:
        - podSelector: {matchLabels: {app: web}}
          namespaceSelector:
            matchExpressions: [{key: team, operator: In, values: [blue, red]}]
        - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
      ports:
        - {port: 80}
        - {protocol: UDP, port: 5000, endPort: 5010}
        - {port: http}
        - {protocol: SCTP}
"#,
    );
    let np = &b.policy.network_policies[0];
    assert_eq!((np.name.as_str(), np.namespace.as_str()), ("np", "shop"));
    assert_eq!(np.pod_selector, Selector::All);
    assert_eq!(
        np.policy_types,
        Some(vec![PolicyType::Ingress, PolicyType::Egress])
    );
    assert_eq!(np.egress, None);
    let rules = np.ingress.as_ref().unwrap();
    assert_eq!(
        (rules[0].peers.clone(), rules[0].ports.clone()),
        (None, None)
    );
    assert_eq!(
        (rules[1].peers.clone(), rules[1].ports.clone()),
        (Some(vec![]), None)
    );
    let peers = rules[2].peers.as_ref().unwrap();
    assert_eq!(peers[0].pod_selector, Some(sel(r#"app == "web""#).unwrap()));
    assert_eq!(
        peers[0].namespace_selector,
        Some(sel(r#"team in {"blue", "red"}"#).unwrap())
    );
    let mut block = CidrBlock::new("10.0.0.0/8".parse().unwrap());
    block.except = vec!["10.1.0.0/16".parse().unwrap()];
    assert_eq!(peers[1].ip_block, Some(block));
    assert_eq!(peers[1].pod_selector, None);
    assert_eq!(
        rules[2].ports.clone().unwrap(),
        [
            tcp(80),
            PortSpec {
                protocol: Some(Protocol::Udp),
                port: PortSel::Range(PortRange { lo: 5000, hi: 5010 })
            },
            PortSpec {
                protocol: Some(Protocol::Tcp),
                port: PortSel::Named("http".into())
            },
            PortSpec {
                protocol: Some(Protocol::Sctp),
                port: PortSel::Any
            },
        ]
    );
    assert_eq!(np.origin, Origin::new("t.yaml", 2, 1));
    assert_eq!(rules[1].origin, Origin::new("t.yaml", 10, 7));
    assert_eq!(peers[1].origin, Origin::new("t.yaml", 16, 11));
}

#[test]
fn network_policy_null_and_empty_top_level_lists() {
    let b = parse(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n  policyTypes: []\n  ingress: []\n  egress: ~\n",
    );
    let np = &b.policy.network_policies[0];
    assert_eq!(np.namespace, "default");
    assert_eq!(np.policy_types, Some(vec![]));
    assert_eq!(np.ingress, Some(vec![]));
    assert_eq!(np.egress, None);
}

#[test]
fn groups_and_settings() {
    let b = parse(
        r#"
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: order-input}
spec:
  selector: app == "orderInput"
  namespaceSelector: {matchLabels: {team: blue}}
  mode: protect
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: everything}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: shop}
spec: {namespaces: [shop, web], mode: Monitor}
---
apiVersion: bulkhead.io/v1
kind: Settings
metadata: {name: default}
spec: {ungroupedMode: Protect}
"#,
    );
    let g = &b.policy.groups;
    assert_eq!(g[0].name, "order-input");
    assert_eq!(g[0].mode, Mode::Protect);
    assert_eq!(
        g[0].members.selector,
        Some(sel(r#"app == "orderInput""#).unwrap())
    );
    assert_eq!(
        g[0].members.namespace_selector,
        Some(sel(r#"team == "blue""#).unwrap())
    );
    assert_eq!(g[0].origin, Origin::new("t.yaml", 2, 1));
    assert_eq!(
        (g[1].members.selector.clone(), g[1].mode),
        (None, Mode::Discover)
    );
    assert_eq!(g[2].members.namespaces, ["shop", "web"]);
    assert_eq!(g[2].mode, Mode::Monitor);
    assert_eq!(b.policy.settings.ungrouped_mode, Mode::Protect);
    assert_eq!(b.policy.settings.origin, Some(Origin::new("t.yaml", 19, 1)));
    assert!(b.policy.settings.discover.detect_protocols, "on by default");
}

#[test]
fn settings_turn_protocol_detection_for_discover_off() {
    let b = parse(
        "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec:\n  discover: {detectProtocols: false}\n",
    );
    assert!(!b.policy.settings.discover.detect_protocols);
    let b = parse(
        "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec:\n  discover: {}\n",
    );
    assert!(b.policy.settings.discover.detect_protocols);
}

#[test]
fn policies_with_every_peer_port_and_l7_form() {
    let b = parse(
        r#"
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: shop, namespace: shop}
spec:
  priority: 100
  appliesTo: {group: cde}
  ingress:
    - action: Allow
      name: web-to-api
      from:
        - group: web
        - selector: 'pci == "cde"'
          namespaces: [shop]
        - cidr: 10.0.0.0/8
          except: [10.0.0.0/16]
        - entity: World
      ports: [TCP/80, UDP/53, TCP/8000-8100, TCP/http, ICMP, ICMP/8/0, http, 443,
              {port: 9000, endPort: 9010}, {protocol: ICMPv6, icmp: {type: 128}}, {port: metrics}, {protocol: udp}]
      app: http
      http:
        - {method: get, path: "/api/.*", host: api.example.com, headers: [{name: X-Env, value: prod}, {name: X-Trace}]}
        - {methods: [PUT, post]}
    - action: deny
      app: postgres
      sql: [select, DDL]
    - {action: Log, app: redis, redis: [get, set]}
    - {action: Pass, app: grpc, grpc: [{service: pkg.Svc, method: Get}]}
    - {action: Allow, app: kafka, kafka: [{apis: [produce], topics: ["orders.*"]}]}
    - {action: Allow, app: ldap, ldap: {operations: [search, bind], baseDN: "dc=blue,dc=example"}}
    - {action: Allow, app: mqtt, mqtt: [{actions: [publish], topics: ["sensors/+/temp"]}]}
  egress:
    - action: Allow
      to: [{dns: "*.example.com"}, {entity: host}]
      app: dns
      dns: ["*.example.com"]
    - {action: Allow, app: tls, tls: [api.example.com]}
"#,
    );
    let p = &b.policy.policies[0];
    assert_eq!((p.namespace.as_deref(), p.priority), (Some("shop"), 100));
    assert_eq!(p.applies_to, [PeerSpec::Group("cde".into())]);
    let r = &p.ingress[0];
    assert_eq!(
        (r.action, r.name.as_deref()),
        (Action::Allow, Some("web-to-api"))
    );
    assert_eq!(r.origin, Origin::new("t.yaml", 9, 7));
    assert_eq!(r.peers[1].origin, Origin::new("t.yaml", 13, 11));
    let specs: Vec<&PeerSpec> = r.peers.iter().map(|p| &p.spec).collect();
    assert_eq!(specs[0], &PeerSpec::Group("web".into()));
    let PeerSpec::Workloads(w) = specs[1] else {
        panic!()
    };
    assert_eq!(w.selector, Some(sel(r#"pci == "cde""#).unwrap()));
    assert_eq!(
        (w.namespace_selector.clone(), w.namespaces.clone()),
        (None, vec!["shop".to_string()])
    );
    let PeerSpec::Cidr(c) = specs[2] else {
        panic!()
    };
    assert_eq!(c.to_string(), "10.0.0.0/8 except 10.0.0.0/16");
    assert_eq!(specs[3], &PeerSpec::Entity(Entity::World));
    let range = |protocol, lo, hi| PortSpec {
        protocol: Some(protocol),
        port: PortSel::Range(PortRange { lo, hi }),
    };
    let named = |protocol, n: &str| PortSpec {
        protocol,
        port: PortSel::Named(n.into()),
    };
    let icmp = |protocol, icmp_type, code| PortSpec {
        protocol: Some(protocol),
        port: PortSel::Icmp { icmp_type, code },
    };
    assert_eq!(
        r.ports,
        [
            tcp(80),
            range(Protocol::Udp, 53, 53),
            range(Protocol::Tcp, 8000, 8100),
            named(Some(Protocol::Tcp), "http"),
            PortSpec {
                protocol: Some(Protocol::Icmp),
                port: PortSel::Any
            },
            icmp(Protocol::Icmp, 8, Some(0)),
            named(None, "http"),
            tcp(443),
            range(Protocol::Tcp, 9000, 9010),
            icmp(Protocol::Icmpv6, 128, None),
            named(None, "metrics"),
            PortSpec {
                protocol: Some(Protocol::Udp),
                port: PortSel::Any
            },
        ]
    );
    assert_eq!(r.app, Some(AppProtocol::Http));
    let [L7Match::Http(h0), L7Match::Http(h1)] = r.l7.as_slice() else {
        panic!("{:?}", r.l7)
    };
    assert_eq!(h0.methods, ["GET"]);
    assert_eq!(h0.path.as_ref().map(|p| p.as_str()), Some("/api/.*"));
    assert_eq!(h0.host, Some(NamePattern("api.example.com".into())));
    assert_eq!(h0.headers.len(), 2);
    assert_eq!(h0.headers[1].value, None);
    assert_eq!(h1.methods, ["PUT", "POST"]);

    let l7 = |i: usize| (p.ingress[i].app, p.ingress[i].l7.clone());
    assert_eq!(p.ingress[1].action, Action::Deny);
    assert_eq!(
        l7(1),
        (
            Some(AppProtocol::Postgresql),
            vec![L7Match::Sql {
                statements: vec![SqlKind::Select, SqlKind::Ddl]
            }]
        )
    );
    assert_eq!(
        l7(2).1,
        [L7Match::Redis {
            commands: vec!["GET".into(), "SET".into()]
        }]
    );
    assert_eq!(p.ingress[3].action, Action::Pass);
    let L7Match::Grpc(g) = &l7(3).1[0] else {
        panic!()
    };
    assert_eq!(
        (g.service.as_deref(), g.method.as_deref()),
        (Some("pkg.Svc"), Some("Get"))
    );
    assert_eq!(
        l7(4).1,
        [L7Match::Kafka {
            apis: vec!["produce".into()],
            topics: vec!["orders.*".into()]
        }]
    );
    assert_eq!(
        l7(5).1,
        [L7Match::Ldap {
            operations: vec![LdapOp::Search, LdapOp::Bind],
            base_dn: Some("dc=blue,dc=example".into())
        }]
    );
    assert_eq!(
        l7(6).1,
        [L7Match::Mqtt {
            actions: vec![MqttAction::Publish],
            topics: vec!["sensors/+/temp".into()]
        }]
    );
    let e = &p.egress[0];
    assert_eq!(
        e.peers[0].spec,
        PeerSpec::Dns(NamePattern("*.example.com".into()))
    );
    assert_eq!(e.peers[1].spec, PeerSpec::Entity(Entity::Host));
    assert_eq!(
        e.l7,
        [L7Match::Dns {
            names: vec![NamePattern("*.example.com".into())]
        }]
    );
    assert_eq!(
        p.egress[1].l7,
        [L7Match::Tls {
            sni: vec![NamePattern("api.example.com".into())]
        }]
    );
}

#[test]
fn policy_defaults_and_applies_to_lists() {
    let b = parse(
        "apiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  appliesTo: [{group: a}, {selector: {matchLabels: {x: z}}, namespaceSelector: 'all()'}]\n",
    );
    let p = &b.policy.policies[0];
    assert_eq!(
        (p.namespace.clone(), p.priority),
        (None, bulkhead_policy::spec::DEFAULT_PRIORITY)
    );
    assert!(p.ingress.is_empty() && p.egress.is_empty());
    let PeerSpec::Workloads(w) = &p.applies_to[1] else {
        panic!()
    };
    assert_eq!(w.namespace_selector, Some(Selector::All));
    assert_eq!(w.selector, Some(sel(r#"x == "z""#).unwrap()));
}

#[test]
fn lists_multi_documents_and_json() {
    let text = r#"
---
# nothing in this one
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: a}}
  - {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: a}}
---
apiVersion: v1
kind: PodList
items:
  - metadata: {name: q, namespace: a}
...
"#;
    let json = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b", "labels": {"x": "1"}}}"#;
    let b = parse_sources(&[src("list.yaml", text), src("ns.json", json)]).unwrap();
    let ns: Vec<&str> = b
        .inventory
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(ns, ["a", "b"]);
    let pods: BTreeSet<String> = b
        .inventory
        .workloads
        .iter()
        .map(|w| w.key.to_string())
        .collect();
    assert_eq!(pods, BTreeSet::from(["a/p".to_string(), "a/q".to_string()]));
    assert_eq!(b.inventory.namespaces[1].labels.get("x"), Some("1"));
}

#[test]
fn stdin_is_named_dash_in_diagnostics_and_origins() {
    let group = "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: g}\n";
    let b = parse_sources(&[src("-", group)]).unwrap();
    assert_eq!(b.policy.groups[0].origin.to_string(), "-:1:1");
    let err = parse_sources(&[src("-", "kind: Group\n")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "-:1:1: apiVersion: missing required field \"apiVersion\""
    );
}

#[test]
fn nothing_in_nothing_out() {
    assert_eq!(parse_sources(&[]).unwrap(), Bundle::default());
    assert_eq!(parse(""), Bundle::default());
}

#[test]
fn policy_tests() {
    let b = parse(
        r#"
apiVersion: bulkhead.io/v1
kind: PolicyTest
metadata: {name: intent}
spec:
  cases:
    - name: web reaches api
      from: {selector: app == "web", namespaces: [shop]}
      to: shop/api-0
      port: TCP/8080
      request: http GET /api
      expect: allow
    - {from: 10.0.0.1, to: db, port: 5432, expect: Deny}
"#,
    );
    let t = &b.tests[0];
    assert_eq!((t.name.as_str(), t.cases.len()), ("intent", 2));
    let c = &t.cases[0];
    assert_eq!(c.name.as_deref(), Some("web reaches api"));
    let TestEndpoint::Workloads(w) = &c.from else {
        panic!("{:?}", c.from)
    };
    assert_eq!(w.namespaces, ["shop"]);
    assert_eq!(c.to, TestEndpoint::Named("shop/api-0".into()));
    assert_eq!((c.service, c.expect), (L4::tcp(8080), Expect::Allow));
    assert_eq!(c.request.as_deref(), Some("http GET /api"));
    assert_eq!(c.origin, Origin::new("t.yaml", 7, 7));
    let c = &t.cases[1];
    assert_eq!(
        (c.service, c.expect, c.request.clone()),
        (L4::tcp(5432), Expect::Deny, None)
    );
}

#[test]
fn documents_that_are_not_objects_are_skipped() {
    // A scenario directory keeps its expected results next to the manifests.
    let b = parse(
        "description: what this scenario shows
rules: []
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
",
    );
    // `y` is a string in YAML 1.2 (it is a boolean only in YAML 1.1).
    assert_eq!(b.inventory.namespaces[0].name, "y");
}
