//! Bad documents and the exact diagnostics they produce: one table, one mistake a row
//! (each row's document is otherwise valid, so the row shows exactly what it tests).

use bulkhead_manifest::{Source, parse_sources};

const NP: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n";
const POLICY: &str = "apiVersion: bulkhead.io/v1\nkind: Policy\nmetadata: {name: p}\n";
const GROUP: &str = "apiVersion: bulkhead.io/v1\nkind: Group\n";
const POD: &str = "apiVersion: v1\nkind: Pod\n";
const SENSOR: &str = "apiVersion: bulkhead.io/v1\nkind: Sensor\nmetadata: {name: s}\n";

/// The input files, as (name, text).
type Files = Vec<(&'static str, String)>;

/// (what, the files, the exact output).
fn cases() -> Vec<(&'static str, Files, &'static str)> {
    let one = |text: String| vec![("bad.yaml", text)];
    let np = |spec: &str| one(format!("{NP}spec:\n{spec}"));
    let policy = |spec: &str| one(format!("{POLICY}spec:\n{spec}"));
    let sensor = |spec: &str| one(format!("{SENSOR}spec:\n{spec}"));
    vec![
        ("unknown detector with did-you-mean", sensor("  detect: [sqli, credit-crad]\n"), "bad.yaml:5:18: spec.detect[1]: unknown detector \"credit-crad\"; did you mean \"credit-card\"?"),
        ("sensor action", sensor("  action: Deny\n  detect: [sqli]\n"), "bad.yaml:5:11: spec.action: unknown action \"Deny\"; expected one of: Alert, Block"),
        ("sensor oversize", sensor("  oversize: Reject\n  detect: [sqli]\n"), "bad.yaml:5:13: spec.oversize: unknown oversize \"Reject\"; expected one of: Partial, Block"),
        ("bad sensor regex", sensor("  patterns:\n    - {name: tok, regex: 'tok_[a-z'}\n"), "bad.yaml:6:26: spec.patterns[0].regex: invalid regex: unclosed character class"),
        ("pattern context", sensor("  patterns:\n    - {name: tok, regex: 'tok_', context: [bdy]}\n"), "bad.yaml:6:44: spec.patterns[0].context[0]: unknown context \"bdy\"; did you mean \"body\"?"),
        ("sensor with nothing to detect", sensor("  action: Block\n"), "bad.yaml:5:3: spec: a Sensor needs at least one of `detect` or `patterns`"),
        ("group inspect direction", one(format!("{GROUP}metadata: {{name: g}}\nspec:\n  inspect: [Ingres]\n")), "bad.yaml:5:13: spec.inspect[0]: unknown direction \"Ingres\"; did you mean \"Ingress\"?"),
        ("group inspect empty", one(format!("{GROUP}metadata: {{name: g}}\nspec:\n  inspect: []\n")), "bad.yaml:5:12: spec.inspect: expected Ingress, Egress or both (leave `sensors` out for no inspection)"),
        ("unknown field with did-you-mean", np("  podselector: {}\n"), "bad.yaml:5:3: spec.podselector: unknown field \"podselector\"; did you mean \"podSelector\"?"),
        ("unknown ObjectMeta field", one(format!("{POD}metadata:\n  name: web\n  lables: {{app: web}}\n")), "bad.yaml:5:3: metadata.lables: unknown field \"lables\"; did you mean \"labels\"?"),
        ("unknown kind with did-you-mean", one("apiVersion: bulkhead.io/v1\nkind: Polciy\nmetadata: {name: p}\n".into()), "bad.yaml:2:7: kind: unknown kind \"Polciy\"; did you mean \"Policy\"?"),
        ("kind under the wrong apiVersion", one("apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n".into()), "bad.yaml:1:13: apiVersion: Deployment is apps/v1, not \"v1\""),
        ("misspelt apiVersion", one("apiVersion: bulkhead.io/v2\nkind: Group\nmetadata: {name: g}\n".into()), "bad.yaml:1:13: apiVersion: unknown apiVersion \"bulkhead.io/v2\" for Group; did you mean \"bulkhead.io/v1\"?"),
        ("missing apiVersion and kind", one("metadata: {name: x}\n".into()), "bad.yaml:1:1: apiVersion: missing required field \"apiVersion\"\nbad.yaml:1:1: kind: missing required field \"kind\""),
        ("missing metadata.name", one(format!("{POD}metadata:\n  namespace: shop\n")), "bad.yaml:4:3: metadata.name: missing required field \"name\""),
        ("name is not DNS-1123", one(format!("{POD}metadata: {{name: Web_1}}\n")), "bad.yaml:3:18: metadata.name: \"Web_1\" is not a valid DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"),
        ("wrong type: map for a list", np("  podSelector: {}\n  ingress: {from: []}\n"), "bad.yaml:6:12: spec.ingress: expected a list, got a mapping"),
        ("wrong type: list for a string", one(format!("{GROUP}metadata:\n  name: [g]\n")), "bad.yaml:4:9: metadata.name: expected a string, got a list"),
        ("bad selector expression, column mapped (plain)", one(format!("{GROUP}metadata: {{name: g}}\nspec:\n  selector: app == \"web\" && tier = \"x\"\n")), "bad.yaml:5:34: spec.selector: invalid selector: unexpected character '='; use `==` to compare"),
        ("bad selector expression, column mapped (quoted)", one(format!("{GROUP}metadata: {{name: g}}\nspec:\n  selector: 'app == web'\n")), "bad.yaml:5:21: spec.selector: invalid selector: expected a quoted value; write \"web\""),
        ("bad CIDR", np("  podSelector: {}\n  egress:\n    - to: [{ipBlock: {cidr: 10.0.0.0/33}}]\n"), "bad.yaml:7:29: spec.egress[0].to[0].ipBlock.cidr: \"10.0.0.0/33\" is not a valid CIDR (such as 10.0.0.0/8 or fd00::/8)"),
        ("address instead of CIDR", policy("  egress:\n    - {action: Allow, to: [{cidr: 10.1.2.3}]}\n"), "bad.yaml:6:35: spec.egress[0].to[0].cidr: \"10.1.2.3\" is an address, not a CIDR; write 10.1.2.3/32"),
        ("except outside cidr", np("  podSelector: {}\n  egress:\n    - to:\n        - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}\n"), "bad.yaml:8:49: spec.egress[0].to[0].ipBlock.except[0]: 10.1.0.0/24 must be a strict subset of the cidr 10.0.0.0/16"),
        ("except of the other family", policy("  egress:\n    - action: Allow\n      to: [{cidr: 10.0.0.0/8, except: [\"fd00::/64\"]}]\n"), "bad.yaml:7:40: spec.egress[0].to[0].except[0]: fd00::/64 is IPv6 but the cidr 10.0.0.0/8 is IPv4"),
        ("except without cidr", policy("  egress:\n    - action: Allow\n      to: [{except: [10.0.0.0/8]}]\n"), "bad.yaml:7:13: spec.egress[0].to[0].except: `except` needs a `cidr`"),
        ("endPort without port", np("  podSelector: {}\n  ingress:\n    - ports: [{protocol: TCP, endPort: 90}]\n"), "bad.yaml:7:40: spec.ingress[0].ports[0].endPort: requires a numeric `port` (the start of the range)"),
        ("endPort below port", np("  podSelector: {}\n  ingress:\n    - ports: [{port: 90, endPort: 80}]\n"), "bad.yaml:7:35: spec.ingress[0].ports[0].endPort: must be greater than or equal to `port` (90)"),
        ("endPort with a named port", policy("  ingress:\n    - action: Allow\n      ports: [{port: http, endPort: 90}]\n"), "bad.yaml:7:37: spec.ingress[0].ports[0].endPort: may not be specified when `port` is a name"),
        ("L7 condition without app", policy("  ingress:\n    - action: Allow\n      http: [{method: GET}]\n"), "bad.yaml:7:7: spec.ingress[0].http: `http` conditions need `app: http or http2` on the rule"),
        ("L7 condition with the wrong app", policy("  ingress:\n    - action: Allow\n      app: redis\n      sql: [select]\n"), "bad.yaml:8:7: spec.ingress[0].sql: `sql` conditions do not fit app: redis; they need app: postgresql or mysql"),
        ("dns peer in from", policy("  ingress:\n    - action: Allow\n      from: [{dns: \"*.example.com\"}]\n"), "bad.yaml:7:15: spec.ingress[0].from[0].dns: dns peers name destinations: use them in egress `to`, not in `from`"),
        ("unquoted numeric label value", one(format!("{POD}metadata:\n  name: web\n  labels:\n    version: 1.0\n")), "bad.yaml:6:14: metadata.labels.version: expected a string, got the number 1.0; quote it: \"1.0\""),
        ("unquoted boolean label value", one(format!("{POD}metadata:\n  name: web\n  labels: {{enabled: true}}\n")), "bad.yaml:5:21: metadata.labels.enabled: expected a string, got the boolean true; quote it: \"true\""),
        ("duplicate key", one(format!("{POD}metadata:\n  name: web\n  name: api\n")), "bad.yaml:5:3: duplicate key \"name\" (first at line 4)"),
        ("tab indentation", one(format!("{POD}metadata:\n\tname: web\n")), "bad.yaml:4:1: tabs disallowed within this context (block indentation)"),
        ("unclosed flow sequence", one(format!("{POD}metadata: {{name: web, labels: [a, b}}\n")), "bad.yaml:3:36: while parsing a flow sequence, expected ',' or ']'"),
        ("merge keys", one(format!("{POD}metadata:\n  <<: {{name: web}}\n")), "bad.yaml:4:3: merge keys (`<<`) are not supported; write the fields out"),
        ("duplicate Pod across files", vec![("a.yaml", format!("{POD}metadata: {{name: web}}\n")), ("b.yaml", format!("\n{POD}metadata: {{name: web, namespace: default}}\n"))], "b.yaml:4:18: duplicate Pod default/web; also defined at a.yaml:3:18"),
        ("duplicate Pod from a controller", one(format!("{POD}metadata: {{name: api-1}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api}}\nspec:\n  replicas: 2\n  template: {{}}\n")), "bad.yaml:7:18: Deployment api creates Pod default/api-1, also defined at bad.yaml:3:18"),
        ("duplicate Namespace", one("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".into()), "bad.yaml:7:18: duplicate Namespace a; also defined at bad.yaml:3:18"),
        ("two Settings", vec![("a.yaml", "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: one}\n".into()), ("b.yaml", "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: two}\nspec: {ungroupedMode: Protect}\n".into())], "b.yaml:1:1: only one Settings document is allowed; the first is at a.yaml:1:1"),
        ("In without values", np("  podSelector:\n    matchExpressions: [{key: app, operator: In}]\n"), "bad.yaml:6:24: spec.podSelector.matchExpressions[0].values: must be specified (non-empty) when operator is In or NotIn"),
        ("Exists with values", np("  podSelector:\n    matchExpressions: [{key: app, operator: Exists, values: [x]}]\n"), "bad.yaml:6:61: spec.podSelector.matchExpressions[0].values: may not be specified when operator is Exists or DoesNotExist"),
        ("operator in the wrong case", np("  podSelector:\n    matchExpressions: [{key: app, operator: in, values: [x]}]\n"), "bad.yaml:6:45: spec.podSelector.matchExpressions[0].operator: unknown operator \"in\"; did you mean \"In\"?"),
        ("bad policy type", np("  podSelector: {}\n  policyTypes: [ingress, Egress]\n"), "bad.yaml:6:17: spec.policyTypes[0]: unknown policy type \"ingress\"; did you mean \"Ingress\"?"),
        ("duplicate policy type", np("  podSelector: {}\n  policyTypes: [Egress, Egress]\n"), "bad.yaml:6:25: spec.policyTypes[1]: duplicate policy type \"Egress\""),
        ("ipBlock with podSelector", np("  podSelector: {}\n  ingress:\n    - from:\n        - podSelector: {}\n          ipBlock: {cidr: 10.0.0.0/8}\n"), "bad.yaml:9:20: spec.ingress[0].from[0].ipBlock: may not be specified with podSelector or namespaceSelector"),
        ("empty NetworkPolicy peer", np("  podSelector: {}\n  ingress:\n    - from: [{}]\n"), "bad.yaml:7:14: spec.ingress[0].from[0]: must specify a peer: podSelector, namespaceSelector or ipBlock"),
        ("empty bulkhead peer", policy("  ingress:\n    - {action: Allow, from: [{}]}\n"), "bad.yaml:6:30: spec.ingress[0].from[0]: an empty peer; write group, selector, namespaceSelector, namespaces, cidr, dns or entity (or leave out `from` to match any peer)"),
        ("peer with two kinds", policy("  ingress:\n    - action: Allow\n      from: [{group: web, cidr: 10.0.0.0/8}]\n"), "bad.yaml:7:27: spec.ingress[0].from[0]: a peer has exactly one of group, selector/namespaceSelector/namespaces, cidr, dns or entity; this one has group and cidr"),
        ("invalid IANA port name", np("  podSelector: {}\n  ingress:\n    - ports: [{port: web--admin}]\n"), "bad.yaml:7:22: spec.ingress[0].ports[0].port: port name \"web--admin\" must not begin or end with '-' or contain '--'"),
        ("quoted port number in NetworkPolicy", np("  podSelector: {}\n  ingress:\n    - ports: [{port: \"80\"}]\n"), "bad.yaml:7:22: spec.ingress[0].ports[0].port: port name \"80\" must contain at least one letter; for a port number write 80 without quotes"),
        ("lower-case protocol in NetworkPolicy", np("  podSelector: {}\n  ingress:\n    - ports: [{protocol: tcp, port: 80}]\n"), "bad.yaml:7:26: spec.ingress[0].ports[0].protocol: unknown protocol \"tcp\"; did you mean \"TCP\"?"),
        ("bad port shorthand", policy("  ingress:\n    - {action: Allow, ports: [TPC/80, TCP/0]}\n"), "bad.yaml:6:31: spec.ingress[0].ports[0]: unknown protocol \"TPC\"; did you mean \"TCP\"?\nbad.yaml:6:39: spec.ingress[0].ports[1]: port 0 is out of range (1 to 65535)"),
        ("icmp with TCP", policy("  ingress:\n    - {action: Allow, ports: [{protocol: TCP, icmp: {type: 8}}]}\n"), "bad.yaml:6:53: spec.ingress[0].ports[0].icmp: `icmp` needs protocol: ICMP or ICMPv6"),
        ("mode with did-you-mean", one(format!("{GROUP}metadata: {{name: g}}\nspec: {{mode: Protekt}}\n")), "bad.yaml:4:14: spec.mode: unknown mode \"Protekt\"; did you mean \"Protect\"?"),
        ("missing action", policy("  ingress:\n    - from: [{group: web}]\n"), "bad.yaml:6:7: spec.ingress[0].action: missing required field \"action\" (Allow, Deny, Pass or Log)"),
        ("Group with a namespace", one(format!("{GROUP}metadata: {{name: g, namespace: shop}}\n")), "bad.yaml:3:32: metadata.namespace: Group is cluster-scoped; remove metadata.namespace"),
        ("namespaces with namespaceSelector", one(format!("{GROUP}metadata: {{name: g}}\nspec:\n  namespaces: [a]\n  namespaceSelector: all()\n")), "bad.yaml:5:15: spec.namespaces: write `namespaces` or `namespaceSelector`, not both"),
        ("from in an egress rule", np("  podSelector: {}\n  egress:\n    - from: []\n"), "bad.yaml:7:7: spec.egress[0].from: unknown field \"from\"; egress rules list their peers under `to`"),
        ("containerPort out of range", one(format!("{POD}metadata: {{name: web}}\nspec:\n  containers:\n    - ports: [{{containerPort: 70000}}]\n")), "bad.yaml:6:31: spec.containers[0].ports[0].containerPort: must be from 1 to 65535, got 70000"),
        ("quoted replicas", one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: \"3\"\n  template: {}\n".into()), "bad.yaml:5:13: spec.replicas: expected an integer, got a string; remove the quotes: 3"),
        ("bad pod IP", one(format!("{POD}metadata: {{name: web}}\nstatus: {{podIP: 10.0.0.300}}\n")), "bad.yaml:4:17: status.podIP: \"10.0.0.300\" is not a valid IP address"),
        ("bad HTTP path regex", policy("  ingress:\n    - {action: Allow, app: http, http: [{path: \"/api/(\"}]}\n"), "bad.yaml:6:48: spec.ingress[0].http[0].path: invalid path regex \"/api/(\": unclosed group"),
        ("appliesTo with a cidr", policy("  appliesTo: [{cidr: 10.0.0.0/8}]\n"), "bad.yaml:5:15: spec.appliesTo[0]: appliesTo selects workloads: use group, or selector/namespaceSelector/namespaces"),
        ("unknown Settings field", one("apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec: {ungroupedmode: Protect}\n".into()), "bad.yaml:4:8: spec.ungroupedmode: unknown field \"ungroupedmode\"; did you mean \"ungroupedMode\"?"),
        ("detectProtocols not a boolean", one("apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec:\n  discover: {detectProtocols: \"no\"}\n".into()), "bad.yaml:5:31: spec.discover.detectProtocols: expected a boolean (true or false), got a string"),
        ("a document that is not a mapping", one("just a string\n".into()), "bad.yaml:1:1: expected a mapping, got a string"),
        ("bad label key", one(format!("{POD}metadata:\n  name: web\n  labels: {{\"-app\": web}}\n")), "bad.yaml:5:12: metadata.labels.-app: key \"-app\" must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
        ("unknown Kafka API with did-you-mean", policy("  ingress:\n    - {action: Allow, app: kafka, kafka: [{apis: [Fetch, prodcue]}]}\n"), "bad.yaml:6:58: spec.ingress[0].kafka[0].apis[1]: unknown Kafka API \"prodcue\"; did you mean \"produce\"?"),
        ("unknown app with did-you-mean", policy("  ingress:\n    - {action: Allow, app: htpp}\n"), "bad.yaml:6:28: spec.ingress[0].app: unknown application protocol \"htpp\"; did you mean \"http\"?"),
        ("empty L7 list", policy("  egress:\n    - {action: Allow, app: dns, dns: []}\n"), "bad.yaml:6:38: spec.egress[0].dns: an empty list of conditions matches nothing; remove the key to allow any request"),
        ("PolicyTest with a bad request and port", one("apiVersion: bulkhead.io/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n  cases:\n    - {from: a, to: b, port: TCP/http, request: gopher x, expect: allow}\n".into()), "bad.yaml:6:30: spec.cases[0].port: \"TCP/http\": the port must be a number from 0 to 65535, got \"http\"\nbad.yaml:6:49: spec.cases[0].request: invalid request \"gopher x\": unknown AppProtocol \"gopher\"; expected one of: http, http2, grpc, tls, dns, redis, postgresql, mysql, mongodb, kafka, ldap, ssh, mqtt, amqp, memcached, smtp"),
        ("PolicyTest case without expect", one("apiVersion: bulkhead.io/v1\nkind: PolicyTest\nmetadata: {name: t}\nspec:\n  cases:\n    - {from: a, to: {selector: all()}, port: 80}\n".into()), "bad.yaml:6:7: spec.cases[0].expect: missing required field \"expect\" (allow or deny)"),
        ("to in a bulkhead ingress rule", policy("  ingress:\n    - {action: Allow, to: [{group: web}]}\n"), "bad.yaml:6:23: spec.ingress[0].to: unknown field \"to\"; ingress rules list their peers under `from`"),
        ("misspelt rule field", policy("  ingress:\n    - {action: Allow, port: [TCP/80]}\n"), "bad.yaml:6:23: spec.ingress[0].port: unknown field \"port\"; did you mean \"ports\"?"),
        ("several mistakes in several files, in order", vec![("a.yaml", format!("{GROUP}metadata: {{name: G}}\nspec: {{mode: x, selectr: all()}}\n")), ("b.yaml", "kind: Pod\n".into())], "a.yaml:3:18: metadata.name: \"G\" is not a valid DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit\na.yaml:4:14: spec.mode: unknown mode \"x\"; expected one of: Discover, Monitor, Protect\na.yaml:4:17: spec.selectr: unknown field \"selectr\"; did you mean \"selector\"?\nb.yaml:1:1: apiVersion: missing required field \"apiVersion\""),
    ]
}

fn render(files: &[(&str, String)]) -> String {
    let sources: Vec<Source> = files
        .iter()
        .map(|(name, text)| Source {
            name: name.to_string(),
            text: text.clone(),
        })
        .collect();
    match parse_sources(&sources) {
        Ok(_) => "OK".to_string(),
        Err(e) => {
            assert!(!e.is_empty());
            e.to_string()
        }
    }
}

#[test]
fn every_mistake_is_reported_exactly() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (what, files, want) in &cases {
        let got = render(files);
        if got != *want {
            failures.push(format!("{what}:\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `oversize` on a Sensor: Partial unless said otherwise.
#[test]
fn sensor_oversize_is_read() {
    use bulkhead_policy::sensor::Oversize;
    let parse = |spec: &str| {
        let text = format!("{SENSOR}spec:\n{spec}");
        let b = parse_sources(&[Source {
            name: "s.yaml".into(),
            text,
        }])
        .expect("a valid sensor");
        b.policy.sensors[0].oversize
    };
    assert_eq!(parse("  detect: [sqli]\n"), Oversize::Partial);
    assert_eq!(
        parse("  oversize: Block\n  detect: [sqli]\n"),
        Oversize::Block
    );
}

/// `inspect` on a Group: connections to the members unless said otherwise.
#[test]
fn group_inspect_is_read() {
    use bulkhead_policy::spec::Inspect;
    let parse = |spec: &str| {
        let text = format!("{GROUP}metadata: {{name: g}}\nspec:\n{spec}");
        let b = parse_sources(&[Source {
            name: "g.yaml".into(),
            text,
        }])
        .expect("a valid group");
        b.policy.groups[0].inspect
    };
    let (ingress, egress) = (true, true);
    assert_eq!(
        parse("  mode: Protect\n"),
        Inspect {
            ingress,
            egress: false
        }
    );
    assert_eq!(
        parse("  inspect: [Egress]\n"),
        Inspect {
            ingress: false,
            egress
        }
    );
    assert_eq!(
        parse("  inspect: [Egress, Ingress]\n"),
        Inspect { ingress, egress }
    );
}
