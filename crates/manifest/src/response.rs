//! `kind: ResponseRule` (bulkhead.io/v1): which events, and what to do about them.
//!
//! ```yaml
//! spec:
//!   match: {types: [sensor, deny], namespaces: [shop], minSeverity: high}
//!   actions:
//!     - webhook: {url: "https://hooks.example/bulkhead", retries: 5}
//!     - syslog: {address: "10.0.0.5:514", transport: tcp, facility: local3}
//!     - quarantine: {}
//!     - capture: {filter: "tcp port 5432", seconds: 30, maxBytes: 10000000}
//! ```
//!
//! Addresses, URLs and BPF-free limits are checked here so that a rule that could never
//! deliver is refused when it is read, not when the first event needs it.

use bulkhead_policy::response::{
    EventMatch, EventType, ResponseAction, ResponseRule, Severity, Transport,
};

use crate::bulkhead::{meta_rule, spec};
use crate::decode::{Cx, Fields, Obj, P};
use crate::k8s::{self, Scope};
use crate::yaml::Node;

const MATCH: &[&str] = &[
    "types",
    "namespaces",
    "groups",
    "minSeverity",
    "sensors",
    "policies",
];
const ACTIONS: &[&str] = &["webhook", "syslog", "quarantine", "capture"];
const TRANSPORTS: &[(&str, Transport)] = &[("udp", Transport::Udp), ("tcp", Transport::Tcp)];

pub fn response_rule(cx: &mut Cx, doc: &Obj, root: P) -> Option<ResponseRule> {
    let m = k8s::meta(
        cx,
        doc,
        root,
        meta_rule("ResponseRule", Scope::ClusterStrict),
    );
    let at = root.f("spec");
    let Some(s) = spec(cx, doc, root, &["match", "actions"])? else {
        cx.err(
            doc.pos(),
            root,
            "a ResponseRule needs a spec with `actions`",
        );
        return None;
    };
    let on = match s.get("match") {
        None => Some(EventMatch::default()),
        Some(n) => event_match(cx, n, at.f("match")),
    };
    let actions = match s.get("actions") {
        Some(n) => cx.seq_of(n, at.f("actions"), action),
        None => {
            cx.err(s.pos(), at, "missing field `actions`");
            None
        }
    };
    let actions = actions?;
    if actions.is_empty() {
        cx.err(
            s.pos(),
            at.f("actions"),
            "a ResponseRule needs at least one action",
        );
        return None;
    }
    Some(ResponseRule {
        name: m?.name,
        on: on?,
        actions,
        origin: cx.origin(doc.pos()),
    })
}

fn event_match(cx: &mut Cx, n: &Node, at: P) -> Option<EventMatch> {
    let o = cx.obj(n, at, Fields::Strict(MATCH))?;
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let severities: Vec<&str> = Severity::ALL.iter().map(|t| t.as_str()).collect();
    let list = |cx: &mut Cx, k: &'static str| match o.get(k) {
        None => Some(Vec::new()),
        Some(n) => cx.str_list(n, at.f(k)),
    };
    let event_types = match o.get("types") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("types"), |cx, n, at| {
            cx.parsed(n, at, "event type", &types, |s| s.parse::<EventType>())
        }),
    };
    let min_severity = match o.get("minSeverity") {
        None => Some(None),
        Some(n) => cx
            .parsed(n, at.f("minSeverity"), "severity", &severities, |s| {
                s.parse::<Severity>()
            })
            .map(Some),
    };
    let (namespaces, groups) = (list(cx, "namespaces"), list(cx, "groups"));
    let (sensors, policies) = (list(cx, "sensors"), list(cx, "policies"));
    Some(EventMatch {
        types: event_types?,
        namespaces: namespaces?,
        groups: groups?,
        min_severity: min_severity?,
        sensors: sensors?,
        policies: policies?,
    })
}

fn action(cx: &mut Cx, n: &Node, at: P) -> Option<ResponseAction> {
    let o = cx.obj(n, at, Fields::Strict(ACTIONS))?;
    if o.entries.len() != 1 {
        cx.err(
            o.pos(),
            at,
            format!(
                "an action is exactly one of: {}; got {}",
                ACTIONS.join(", "),
                o.entries.len()
            ),
        );
        return None;
    }
    let e = &o.entries[0];
    let here = at.f(&e.key);
    // `quarantine: {}` and a bare `quarantine:` alike.
    let body = match &e.value {
        v if v.is_null() => None,
        v => Some(cx.obj(v, here, Fields::Lenient)?),
    };
    match e.key.as_str() {
        "webhook" => webhook(cx, body, here, o),
        "syslog" => syslog(cx, body, here, o),
        "quarantine" => {
            if let Some(b) = body {
                cx.obj(b.node, here, Fields::Strict(&[]))?;
            }
            Some(ResponseAction::Quarantine)
        }
        _ => capture(cx, body, here),
    }
}

fn required<'n>(
    cx: &mut Cx,
    body: Option<Obj<'n>>,
    at: P,
    key: &str,
    pos: &Obj,
) -> Option<&'n Node> {
    let v = body.and_then(|b| b.get(key));
    if v.is_none() {
        cx.err(pos.pos(), at, format!("missing field `{key}`"));
    }
    v
}

fn webhook(cx: &mut Cx, body: Option<Obj>, at: P, pos: Obj) -> Option<ResponseAction> {
    let b = cx.obj(
        body?.node,
        at,
        Fields::Strict(&["url", "headers", "retries", "timeoutSeconds"]),
    )?;
    let url = required(cx, Some(b), at, "url", &pos).and_then(|n| {
        let u = cx.str(n, at.f("url"))?;
        let ok = (u.starts_with("http://") || u.starts_with("https://")) && u.len() > 8;
        cx.check(
            n,
            at.f("url"),
            if ok {
                Ok(())
            } else {
                Err(format!("{u:?}: expected an http:// or https:// URL"))
            },
        )
        .then_some(u)
    });
    let headers = match b.get("headers") {
        None => Some(Vec::new()),
        Some(n) => {
            let h = cx.obj(n, at.f("headers"), Fields::Lenient)?;
            let mut out = Vec::new();
            for e in h.entries {
                out.push((e.key.clone(), cx.str(&e.value, at.f("headers").f(&e.key))?));
            }
            Some(out)
        }
    };
    let retries = match b.get("retries") {
        None => Some(5),
        Some(n) => cx.int(n, at.f("retries"), 0, 100).map(|v| v as u32),
    };
    let timeout = match b.get("timeoutSeconds") {
        None => Some(5),
        Some(n) => cx.int(n, at.f("timeoutSeconds"), 1, 300),
    };
    Some(ResponseAction::Webhook {
        url: url?,
        headers: headers?,
        retries: retries?,
        timeout_ms: timeout? as u64 * 1000,
    })
}

/// RFC 5424 facility names (`local0`) or numbers.
fn facility(s: &str) -> Result<u8, String> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    if let Some(i) = NAMES.iter().position(|n| *n == s) {
        return Ok(i as u8);
    }
    match s.parse::<u8>() {
        Ok(n) if n < 24 => Ok(n),
        _ => Err(format!(
            "{s:?}: expected a facility (local0..local7, daemon, ...) or 0-23"
        )),
    }
}

fn syslog(cx: &mut Cx, body: Option<Obj>, at: P, pos: Obj) -> Option<ResponseAction> {
    let b = cx.obj(
        body?.node,
        at,
        Fields::Strict(&["address", "transport", "facility"]),
    )?;
    let address = required(cx, Some(b), at, "address", &pos).and_then(|n| {
        let a = cx.str(n, at.f("address"))?;
        let ok = a.parse::<std::net::SocketAddr>().is_ok();
        cx.check(
            n,
            at.f("address"),
            if ok {
                Ok(())
            } else {
                Err(format!("{a:?}: expected IP:PORT ([v6]:port for IPv6)"))
            },
        )
        .then_some(a)
    });
    let transport = match b.get("transport") {
        None => Some(Transport::Udp),
        Some(n) => cx.one_of(n, at.f("transport"), "transport", TRANSPORTS, false),
    };
    let facility = match b.get("facility") {
        None => Some(16),
        Some(n) => {
            let s = cx.str(n, at.f("facility"))?;
            let r = facility(&s);
            cx.check(n, at.f("facility"), r.clone().map(drop))
                .then(|| r.ok())
                .flatten()
        }
    };
    Some(ResponseAction::Syslog {
        address: address?,
        transport: transport?,
        facility: facility?,
    })
}

fn capture(cx: &mut Cx, body: Option<Obj>, at: P) -> Option<ResponseAction> {
    let fields = Fields::Strict(&["filter", "seconds", "maxBytes"]);
    let b = match body {
        Some(b) => Some(cx.obj(b.node, at, fields)?),
        None => None,
    };
    let get = |k: &str| b.and_then(|b| b.get(k));
    let filter = match get("filter") {
        None => Some(None),
        Some(n) => cx.str(n, at.f("filter")).map(Some),
    };
    let seconds = match get("seconds") {
        None => Some(30),
        Some(n) => cx.int(n, at.f("seconds"), 1, 3600),
    };
    let max_bytes = match get("maxBytes") {
        None => Some(10 << 20),
        Some(n) => cx.int(n, at.f("maxBytes"), 1024, 1 << 32),
    };
    Some(ResponseAction::Capture {
        filter: filter?,
        seconds: seconds? as u32,
        max_bytes: max_bytes? as u64,
    })
}
