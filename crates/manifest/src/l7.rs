//! Layer-7 conditions of a bulkhead rule: `http`, `grpc`, `dns`, `tls`, `redis`, `sql`,
//! `kafka`, `ldap`, `mqtt`. Each must fit the rule's `app:`.

use std::str::FromStr;

use bulkhead_policy::l7::{
    AppProtocol, GrpcMatch, HeaderMatch, HttpMatch, L7Match, LdapOp, MqttAction, PathRegex, SqlKind,
};
use bulkhead_policy::spec::NamePattern;

use crate::decode::{Cx, Fields, Obj, P};
use crate::names;
use crate::yaml::{Node, Value};

/// The rule keys that hold L7 conditions, in the order they are documented.
pub const KEYS: &[&str] = &[
    "http", "grpc", "dns", "tls", "redis", "sql", "kafka", "ldap", "mqtt",
];

/// The `app:` values a condition of this kind fits, for error messages.
fn fitting_apps(sample: &L7Match) -> Vec<&'static str> {
    AppProtocol::ALL
        .iter()
        .filter(|a| sample.fits(**a))
        .map(|a| a.as_str())
        .collect()
}

/// Decode every L7 key of a rule, in the order written, and check it fits `app`.
/// `app` is `None` when the rule has no `app:` (or it was invalid: `app_ok` false,
/// then fit errors would only repeat the problem and are not reported).
pub fn conditions(
    cx: &mut Cx,
    rule: &Obj,
    at: P,
    app: Option<AppProtocol>,
    app_ok: bool,
) -> Option<Vec<L7Match>> {
    let mut out = Vec::new();
    let mut ok = true;
    for e in rule
        .entries
        .iter()
        .filter(|e| KEYS.contains(&e.key.as_str()))
    {
        let at_k = at.f(&e.key);
        let Some(found) = decode_key(cx, &e.key, &e.value, at_k) else {
            ok = false;
            continue;
        };
        if let Some(first) = found.first() {
            let apps = fitting_apps(first).join(" or ");
            match app {
                None if app_ok => {
                    cx.err(
                        e.key_pos,
                        at_k,
                        format!("`{}` conditions need `app: {apps}` on the rule", e.key),
                    );
                    ok = false;
                }
                Some(a) if !first.fits(a) => {
                    cx.err(
                        e.key_pos,
                        at_k,
                        format!(
                            "`{}` conditions do not fit app: {a}; they need app: {apps}",
                            e.key
                        ),
                    );
                    ok = false;
                }
                _ => {}
            }
        }
        out.extend(found);
    }
    ok.then_some(out)
}

/// A non-empty list (or one item): an empty list of conditions would match nothing,
/// which is never what a rule means.
fn items<'n>(cx: &mut Cx, n: &'n Node, at: P) -> Option<&'n [Node]> {
    let list = cx.list_or_one(n);
    if list.is_empty() || n.is_null() {
        cx.err(
            n.pos,
            at,
            "an empty list of conditions matches nothing; remove the key to allow any request",
        );
        return None;
    }
    Some(list)
}

/// Decode every item of a non-empty list (or one item) with `f`; all or nothing.
fn each<T>(
    cx: &mut Cx,
    n: &Node,
    at: P,
    f: impl FnMut(&mut Cx, &Node, P) -> Option<T>,
) -> Option<Vec<T>> {
    items(cx, n, at)?;
    cx.one_or_seq_of(n, at, f)
}

fn pattern(cx: &mut Cx, n: &Node, at: P) -> Option<NamePattern> {
    let s = cx.str(n, at)?;
    cx.check(n, at, names::name_pattern(&s))
        .then_some(NamePattern(s))
}

fn enum_value<T: FromStr<Err = String> + Copy>(
    cx: &mut Cx,
    n: &Node,
    at: P,
    what: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Option<T> {
    let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
    cx.parsed(n, at, what, &names, |s| s.parse::<T>())
}

/// An optional list (or one) of non-empty strings; absent is empty ("any").
fn strings(cx: &mut Cx, o: &Obj, key: &str, at: P) -> Option<Vec<String>> {
    match o.get(key) {
        None => Some(Vec::new()),
        Some(v) => cx.one_or_seq_of(v, at.f(key), |cx, n, at| cx.nonempty_str(n, at)),
    }
}

fn decode_key(cx: &mut Cx, key: &str, n: &Node, at: P) -> Option<Vec<L7Match>> {
    Some(match key {
        "http" => each(cx, n, at, http)?
            .into_iter()
            .map(L7Match::Http)
            .collect(),
        "grpc" => each(cx, n, at, grpc)?
            .into_iter()
            .map(L7Match::Grpc)
            .collect(),
        "dns" => vec![L7Match::Dns {
            names: each(cx, n, at, pattern)?,
        }],
        "tls" => vec![L7Match::Tls {
            sni: each(cx, n, at, pattern)?,
        }],
        "redis" => vec![L7Match::Redis {
            commands: each(cx, n, at, redis_command)?,
        }],
        "sql" => vec![L7Match::Sql {
            statements: each(cx, n, at, |cx, n, at| {
                enum_value(
                    cx,
                    n,
                    at,
                    "SQL statement kind",
                    SqlKind::ALL,
                    SqlKind::as_str,
                )
            })?,
        }],
        "kafka" => each(cx, n, at, kafka)?,
        "ldap" => each(cx, n, at, ldap)?,
        "mqtt" => each(cx, n, at, mqtt)?,
        _ => return None,
    })
}

fn http(cx: &mut Cx, n: &Node, at: P) -> Option<HttpMatch> {
    let o = cx.obj(
        n,
        at,
        Fields::Strict(&["method", "methods", "path", "host", "headers"]),
    )?;
    let mut ok = true;
    let mut m = HttpMatch::default();
    if let (Some(_), Some(v)) = (o.get("method"), o.get("methods")) {
        cx.err(
            v.pos,
            at.f("methods"),
            "write `method` or `methods`, not both",
        );
        ok = false;
    }
    for key in ["method", "methods"] {
        let Some(v) = o.get(key) else { continue };
        let methods = cx.one_or_seq_of(v, at.f(key), |cx, item, at| {
            let s = cx.nonempty_str(item, at)?;
            if s.chars().all(|c| c.is_ascii_alphabetic()) {
                return Some(s.to_ascii_uppercase());
            }
            cx.err(
                item.pos,
                at,
                format!("{s:?} is not an HTTP method (GET, POST, ...)"),
            );
            None
        });
        match methods {
            Some(ms) => m.methods.extend(ms),
            None => ok = false,
        }
    }
    if let Some(v) = o.get("path") {
        let at_p = at.f("path");
        match cx.str(v, at_p).map(|s| PathRegex::new(&s)) {
            Some(Ok(re)) => m.path = Some(re),
            Some(Err(msg)) => {
                // The regex crate draws a caret diagram over several lines; keep its
                // last line, which names the problem.
                let msg = match msg.rsplit_once("error: ") {
                    Some((head, why)) => {
                        format!(
                            "{}: {why}",
                            head.split(": regex parse error").next().unwrap_or(head)
                        )
                    }
                    None => msg,
                };
                cx.err(v.pos, at_p, msg);
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(v) = o.get("host") {
        m.host = pattern(cx, v, at.f("host"));
        ok &= m.host.is_some();
    }
    if let Some(v) = o.get("headers") {
        let at_h = at.f("headers");
        for (i, item) in cx.list(v, at_h).unwrap_or_default().iter().enumerate() {
            let at_i = at_h.i(i);
            let Some(h) = cx.obj(item, at_i, Fields::Strict(&["name", "value"])) else {
                ok = false;
                continue;
            };
            let name = cx
                .required(&h, "name", at_i, "")
                .and_then(|x| cx.nonempty_str(x, at_i.f("name")));
            let value = match h.get("value") {
                Some(x) => cx.str(x, at_i.f("value")).map(Some),
                None => Some(None),
            };
            match (name, value) {
                (Some(name), Some(value)) => m.headers.push(HeaderMatch { name, value }),
                _ => ok = false,
            }
        }
        ok &= matches!(v.value, Value::Seq(_));
    }
    ok.then_some(m)
}

fn grpc(cx: &mut Cx, n: &Node, at: P) -> Option<GrpcMatch> {
    let o = cx.obj(n, at, Fields::Strict(&["service", "method"]))?;
    let service = match o.get("service") {
        Some(v) => cx.nonempty_str(v, at.f("service")).map(Some),
        None => Some(None),
    };
    let method = match o.get("method") {
        Some(v) => cx.nonempty_str(v, at.f("method")).map(Some),
        None => Some(None),
    };
    Some(GrpcMatch {
        service: service?,
        method: method?,
    })
}

fn redis_command(cx: &mut Cx, n: &Node, at: P) -> Option<String> {
    let s = cx.nonempty_str(n, at)?;
    if s == "*"
        || s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Some(s.to_ascii_uppercase());
    }
    cx.err(
        n.pos,
        at,
        format!("{s:?} is not a Redis command name (GET, SET, CONFIG, ... or *)"),
    );
    None
}

fn kafka(cx: &mut Cx, n: &Node, at: P) -> Option<L7Match> {
    let o = cx.obj(n, at, Fields::Strict(&["apis", "topics"]))?;
    // A misspelt API would never match a request: refused with the names it may be.
    let apis = match o.get("apis") {
        None => Some(Vec::new()),
        Some(v) => cx.one_or_seq_of(v, at.f("apis"), |cx, n, at| {
            cx.parsed(n, at, "Kafka API", bulkhead_policy::l7::KAFKA_APIS, |s| {
                bulkhead_policy::l7::kafka_api(s)
            })
        }),
    };
    let topics = strings(cx, &o, "topics", at);
    Some(L7Match::Kafka {
        apis: apis?,
        topics: topics?,
    })
}

fn ldap(cx: &mut Cx, n: &Node, at: P) -> Option<L7Match> {
    let o = cx.obj(n, at, Fields::Strict(&["operations", "baseDN"]))?;
    let mut operations = Some(Vec::new());
    if let Some(v) = o.get("operations") {
        operations = cx.one_or_seq_of(v, at.f("operations"), |cx, n, at| {
            enum_value(cx, n, at, "LDAP operation", LdapOp::ALL, LdapOp::as_str)
        });
    }
    let base_dn = match o.get("baseDN") {
        Some(v) => cx.nonempty_str(v, at.f("baseDN")).map(Some),
        None => Some(None),
    };
    Some(L7Match::Ldap {
        operations: operations?,
        base_dn: base_dn?,
    })
}

fn mqtt(cx: &mut Cx, n: &Node, at: P) -> Option<L7Match> {
    let o = cx.obj(n, at, Fields::Strict(&["actions", "topics"]))?;
    let mut actions = Some(Vec::new());
    if let Some(v) = o.get("actions") {
        actions = cx.one_or_seq_of(v, at.f("actions"), |cx, n, at| {
            enum_value(
                cx,
                n,
                at,
                "MQTT action",
                MqttAction::ALL,
                MqttAction::as_str,
            )
        });
    }
    let topics = strings(cx, &o, "topics", at);
    Some(L7Match::Mqtt {
        actions: actions?,
        topics: topics?,
    })
}
