//! Layer-7 vocabulary: application protocols, the conditions rules put on requests,
//! the requests themselves, and matching between the two.
//!
//! Pure functions, no I/O: the L7 proxy feeds parsed requests in, the analyzer feeds in
//! what the user asked `explain` about. Matching is three-valued because a connection
//! whose requests are not known yet (the kernel's view) can neither match nor miss an
//! L7 condition: it must be sent to the proxy.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::spec::NamePattern;

pub mod dn;
pub mod http_path;
pub mod method_override;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            /// Case-insensitive.
            fn from_str(s: &str) -> Result<Self, String> {
                let l = s.to_ascii_lowercase();
                match l.as_str() {
                    $($text $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} {s:?}; expected one of: {}",
                        stringify!($name),
                        $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Application protocols bulkhead detects from the bytes (the names `dpi detect` prints).
    AppProtocol {
        Http = "http",
        Http2 = "http2" | "h2c",
        Grpc = "grpc",
        Tls = "tls",
        Dns = "dns",
        Redis = "redis",
        Postgresql = "postgresql" | "postgres" | "pgsql",
        Mysql = "mysql" | "mariadb",
        Mongodb = "mongodb" | "mongo",
        Kafka = "kafka",
        Ldap = "ldap",
        Ssh = "ssh",
        Mqtt = "mqtt",
        Amqp = "amqp",
        Memcached = "memcached",
        Smtp = "smtp",
    }
);

impl AppProtocol {
    /// Does a connection detected as `detected` satisfy `app: self`?
    /// `http` accepts any HTTP (HTTP/1.x, h2c, gRPC); `http2` accepts h2c and gRPC.
    pub fn accepts(self, detected: AppProtocol) -> bool {
        use AppProtocol::*;
        match self {
            Http => matches!(detected, Http | Http2 | Grpc),
            Http2 => matches!(detected, Http2 | Grpc),
            other => other == detected,
        }
    }
}

string_enum!(
    /// What kind of SQL statement a query is (PostgreSQL and MySQL wire protocols).
    SqlKind {
        Select = "select",
        Insert = "insert",
        Update = "update",
        Delete = "delete",
        /// CREATE, ALTER, DROP, TRUNCATE, RENAME, COMMENT
        Ddl = "ddl",
        /// GRANT, REVOKE
        Dcl = "dcl",
        /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT
        Transaction = "transaction",
        /// SET, SHOW, EXPLAIN, USE, COPY, ...
        Utility = "utility",
        Other = "other",
    }
);

string_enum!(
    /// LDAP protocol operations (RFC 4511).
    LdapOp {
        Bind = "bind",
        Unbind = "unbind",
        Search = "search",
        Modify = "modify",
        Add = "add",
        Delete = "delete",
        ModifyDn = "modifydn" | "modrdn",
        Compare = "compare",
        Abandon = "abandon",
        Extended = "extended",
    }
);

string_enum!(
    /// MQTT client actions that carry a topic.
    MqttAction {
        Publish = "publish",
        Subscribe = "subscribe",
    }
);

impl SqlKind {
    /// Classify a statement by its leading keyword (comments and parentheses skipped).
    /// Good enough to restrict statement kinds; the proxy's SQL parser refines it.
    pub fn classify(sql: &str) -> SqlKind {
        let mut rest = sql.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix("--") {
                rest = r.split_once('\n').map_or("", |x| x.1).trim_start();
            } else if let Some(r) = rest.strip_prefix("/*") {
                rest = r.split_once("*/").map_or("", |x| x.1).trim_start();
            } else if let Some(r) = rest.strip_prefix('(') {
                rest = r.trim_start();
            } else {
                break;
            }
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_uppercase();
        match word.as_str() {
            "SELECT" | "WITH" | "VALUES" | "TABLE" => SqlKind::Select,
            "INSERT" | "REPLACE" => SqlKind::Insert,
            "UPDATE" => SqlKind::Update,
            "DELETE" => SqlKind::Delete,
            "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "COMMENT" => SqlKind::Ddl,
            "GRANT" | "REVOKE" => SqlKind::Dcl,
            "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "END" => {
                SqlKind::Transaction
            }
            "SET" | "SHOW" | "EXPLAIN" | "USE" | "COPY" | "DESCRIBE" | "DESC" | "ANALYZE"
            | "VACUUM" | "LISTEN" | "NOTIFY" | "PREPARE" | "EXECUTE" | "DEALLOCATE" => {
                SqlKind::Utility
            }
            _ => SqlKind::Other,
        }
    }
}

/// A regular expression over an HTTP path, anchored at both ends (as Cilium's `path`).
#[derive(Clone, Debug)]
pub struct PathRegex {
    text: String,
    re: Regex,
}

impl PathRegex {
    pub fn new(text: &str) -> Result<Self, String> {
        let re = regex::RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid path regex {text:?}: {e}"))?;
        Ok(PathRegex {
            text: text.to_string(),
            re,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.re.is_match(path)
    }
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for PathRegex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PathRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathRegex::new(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Case-insensitive header name.
    pub name: String,
    /// Exact value; None: the header must be present.
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpMatch {
    /// Upper-case methods; empty: any.
    pub methods: Vec<String>,
    pub path: Option<PathRegex>,
    pub host: Option<NamePattern>,
    pub headers: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrpcMatch {
    /// Fully qualified service (`pkg.Service`); None: any.
    pub service: Option<String>,
    pub method: Option<String>,
}

/// One L7 condition of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum L7Match {
    Http(HttpMatch),
    Grpc(GrpcMatch),
    /// DNS query names.
    Dns {
        names: Vec<NamePattern>,
    },
    /// TLS server names (SNI).
    Tls {
        sni: Vec<NamePattern>,
    },
    /// Redis commands, upper-case (`GET`, `CONFIG`); `*` for any.
    Redis {
        commands: Vec<String>,
    },
    /// SQL statement kinds (PostgreSQL and MySQL).
    Sql {
        statements: Vec<SqlKind>,
    },
    /// Kafka API keys by name (`produce`, `fetch`, ...; empty: any) and topic globs.
    Kafka {
        apis: Vec<String>,
        topics: Vec<String>,
    },
    /// LDAP operations (empty: any) under a base DN (suffix match).
    Ldap {
        operations: Vec<LdapOp>,
        base_dn: Option<String>,
    },
    /// MQTT topic filters (`+`, `#`) for the given actions (empty: any).
    Mqtt {
        actions: Vec<MqttAction>,
        topics: Vec<String>,
    },
}

impl L7Match {
    /// The `app:` values this condition can be used with.
    pub fn fits(&self, app: AppProtocol) -> bool {
        use AppProtocol as A;
        match self {
            L7Match::Http(_) => matches!(app, A::Http | A::Http2),
            L7Match::Grpc(_) => matches!(app, A::Grpc | A::Http2),
            L7Match::Dns { .. } => app == A::Dns,
            L7Match::Tls { .. } => app == A::Tls,
            L7Match::Redis { .. } => app == A::Redis,
            L7Match::Sql { .. } => matches!(app, A::Postgresql | A::Mysql),
            L7Match::Kafka { .. } => app == A::Kafka,
            L7Match::Ldap { .. } => app == A::Ldap,
            L7Match::Mqtt { .. } => app == A::Mqtt,
        }
    }

    /// The YAML key this condition is written under.
    pub fn kind(&self) -> &'static str {
        match self {
            L7Match::Http(_) => "http",
            L7Match::Grpc(_) => "grpc",
            L7Match::Dns { .. } => "dns",
            L7Match::Tls { .. } => "tls",
            L7Match::Redis { .. } => "redis",
            L7Match::Sql { .. } => "sql",
            L7Match::Kafka { .. } => "kafka",
            L7Match::Ldap { .. } => "ldap",
            L7Match::Mqtt { .. } => "mqtt",
        }
    }
}

impl fmt::Display for L7Match {
    /// `HTTP GET, POST path /api/.* host api.example.com`, `Redis commands GET, SET`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(xs: &[T]) -> String {
            xs.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        fn names(xs: &[NamePattern]) -> String {
            xs.iter()
                .map(|x| x.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            L7Match::Http(m) => {
                f.write_str("HTTP")?;
                if m.methods.is_empty() {
                    f.write_str(" any method")?;
                } else {
                    write!(f, " {}", list(&m.methods))?;
                }
                if let Some(p) = &m.path {
                    write!(f, " path {}", p.as_str())?;
                }
                if let Some(h) = &m.host {
                    write!(f, " host {}", h.0)?;
                }
                for h in &m.headers {
                    match &h.value {
                        Some(v) => write!(f, " header {}={v}", h.name)?,
                        None => write!(f, " header {}", h.name)?,
                    }
                }
                Ok(())
            }
            L7Match::Grpc(m) => write!(
                f,
                "gRPC {}/{}",
                m.service.as_deref().unwrap_or("*"),
                m.method.as_deref().unwrap_or("*")
            ),
            L7Match::Dns { names: n } => write!(f, "DNS names {}", names(n)),
            L7Match::Tls { sni } => write!(f, "TLS server names {}", names(sni)),
            L7Match::Redis { commands } => write!(f, "Redis commands {}", list(commands)),
            L7Match::Sql { statements } => write!(f, "SQL statements {}", list(statements)),
            L7Match::Kafka { apis, topics } => {
                f.write_str("Kafka")?;
                if !apis.is_empty() {
                    write!(f, " APIs {}", list(apis))?;
                }
                if !topics.is_empty() {
                    write!(f, " topics {}", list(topics))?;
                }
                Ok(())
            }
            L7Match::Ldap {
                operations,
                base_dn,
            } => {
                f.write_str("LDAP")?;
                if !operations.is_empty() {
                    write!(f, " operations {}", list(operations))?;
                }
                if let Some(dn) = base_dn {
                    write!(f, " under {dn}")?;
                }
                Ok(())
            }
            L7Match::Mqtt { actions, topics } => {
                f.write_str("MQTT")?;
                if !actions.is_empty() {
                    write!(f, " {}", list(actions))?;
                }
                if !topics.is_empty() {
                    write!(f, " topics {}", list(topics))?;
                }
                Ok(())
            }
        }
    }
}

/// What is known about one request (or about the connection only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct L7Request {
    pub app: AppProtocol,
    pub detail: L7Detail,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum L7Detail {
    /// Only the protocol is known.
    None,
    Http {
        method: String,
        path: String,
        host: Option<String>,
        headers: Vec<(String, String)>,
    },
    Grpc {
        service: String,
        method: String,
    },
    Dns {
        name: String,
    },
    Tls {
        sni: Option<String>,
    },
    Redis {
        command: String,
    },
    Sql {
        kind: SqlKind,
    },
    Kafka {
        api: String,
        topic: Option<String>,
    },
    Ldap {
        operation: LdapOp,
        base_dn: Option<String>,
    },
    Mqtt {
        action: MqttAction,
        topic: String,
    },
}

impl fmt::Display for L7Request {
    /// The same one-line syntax [`parse_request`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.app)?;
        match &self.detail {
            L7Detail::None => Ok(()),
            L7Detail::Http {
                method,
                path,
                host,
                headers,
            } => {
                write!(f, " {method} {path}")?;
                if let Some(h) = host {
                    write!(f, " host={h}")?;
                }
                for (n, v) in headers {
                    write!(f, " header:{n}={v}")?;
                }
                Ok(())
            }
            L7Detail::Grpc { service, method } => write!(f, " {service}/{method}"),
            L7Detail::Dns { name } => write!(f, " {name}"),
            L7Detail::Tls { sni } => write!(f, " {}", sni.as_deref().unwrap_or("")),
            L7Detail::Redis { command } => write!(f, " {command}"),
            L7Detail::Sql { kind } => write!(f, " {kind}"),
            L7Detail::Kafka { api, topic } => {
                write!(f, " {api}")?;
                topic.as_ref().map_or(Ok(()), |t| write!(f, " {t}"))
            }
            L7Detail::Ldap { operation, base_dn } => {
                write!(f, " {operation}")?;
                base_dn.as_ref().map_or(Ok(()), |d| write!(f, " {d}"))
            }
            L7Detail::Mqtt { action, topic } => write!(f, " {action} {topic}"),
        }
    }
}

/// API keys 0-68 by name, as rules write them (`produce`, `apiversions`, ...).
pub const KAFKA_APIS: &[&str] = &[
    "produce",
    "fetch",
    "listoffsets",
    "metadata",
    "leaderandisr",
    "stopreplica",
    "updatemetadata",
    "controlledshutdown",
    "offsetcommit",
    "offsetfetch",
    "findcoordinator",
    "joingroup",
    "heartbeat",
    "leavegroup",
    "syncgroup",
    "describegroups",
    "listgroups",
    "saslhandshake",
    "apiversions",
    "createtopics",
    "deletetopics",
    "deleterecords",
    "initproducerid",
    "offsetforleaderepoch",
    "addpartitionstotxn",
    "addoffsetstotxn",
    "endtxn",
    "writetxnmarkers",
    "txnoffsetcommit",
    "describeacls",
    "createacls",
    "deleteacls",
    "describeconfigs",
    "alterconfigs",
    "alterreplicalogdirs",
    "describelogdirs",
    "saslauthenticate",
    "createpartitions",
    "createdelegationtoken",
    "renewdelegationtoken",
    "expiredelegationtoken",
    "describedelegationtoken",
    "deletegroups",
    "electleaders",
    "incrementalalterconfigs",
    "alterpartitionreassignments",
    "listpartitionreassignments",
    "offsetdelete",
    "describeclientquotas",
    "alterclientquotas",
    "describeuserscramcredentials",
    "alteruserscramcredentials",
    "vote",
    "beginquorumepoch",
    "endquorumepoch",
    "describequorum",
    "alterpartition",
    "updatefeatures",
    "envelope",
    "fetchsnapshot",
    "describecluster",
    "describeproducers",
    "brokerregistration",
    "brokerheartbeat",
    "unregisterbroker",
    "describetransactions",
    "listtransactions",
    "allocateproducerids",
    "consumergroupheartbeat",
];

/// A Kafka API as rules and requests name it: one of [`KAFKA_APIS`] in any case, or
/// `api-N` for a key past them (what the proxy reports for one), lower-cased.
pub fn kafka_api(name: &str) -> Result<String, String> {
    let n = name.to_ascii_lowercase();
    let numbered = n
        .strip_prefix("api-")
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()));
    if KAFKA_APIS.contains(&n.as_str()) || numbered {
        Ok(n)
    } else {
        Err(format!(
            "unknown Kafka API {name:?}: expected an API name (produce, fetch, metadata, ...) or api-N"
        ))
    }
}

/// Parse the one-line request syntax of `explain --request` and `PolicyTest` cases:
///
/// ```text
/// http GET /api/orders [host=H] [header:Name=Value]...     (also http2)
/// grpc pkg.Service/Method
/// redis COMMAND [args ignored]
/// postgresql select            (a statement kind)  |  mysql DELETE FROM t  (SQL text)
/// dns NAME   tls SNI   kafka API [TOPIC]   ldap OPERATION [BASE-DN]   mqtt publish|subscribe TOPIC
/// APP                          (only the protocol is known)
/// ```
pub fn parse_request(text: &str) -> Result<L7Request, String> {
    let mut words = text.split_whitespace();
    let app: AppProtocol = words
        .next()
        .ok_or("empty request; expected an application protocol such as `http GET /`")?
        .parse()?;
    let rest: Vec<&str> = words.collect();
    let need = |n: usize, form: &str| -> Result<(), String> {
        if rest.len() < n {
            Err(format!("expected `{form}`"))
        } else {
            Ok(())
        }
    };
    use AppProtocol as A;
    let detail = if rest.is_empty() {
        L7Detail::None
    } else {
        match app {
            A::Http | A::Http2 => {
                need(2, "http METHOD PATH [host=H] [header:Name=Value]")?;
                let mut host = None;
                let mut headers = Vec::new();
                for w in &rest[2..] {
                    if let Some(h) = w.strip_prefix("host=") {
                        host = Some(h.to_string());
                    } else if let Some((n, v)) =
                        w.strip_prefix("header:").and_then(|x| x.split_once('='))
                    {
                        headers.push((n.to_string(), v.to_string()));
                    } else {
                        return Err(format!(
                            "unexpected {w:?}; expected host=H or header:Name=Value"
                        ));
                    }
                }
                L7Detail::Http {
                    method: rest[0].to_ascii_uppercase(),
                    path: rest[1].to_string(),
                    host,
                    headers,
                }
            }
            A::Grpc => {
                let (service, method) = rest[0]
                    .trim_start_matches('/')
                    .split_once('/')
                    .ok_or("expected `grpc pkg.Service/Method`")?;
                L7Detail::Grpc {
                    service: service.to_string(),
                    method: method.to_string(),
                }
            }
            A::Dns => L7Detail::Dns {
                name: rest[0].to_string(),
            },
            A::Tls => L7Detail::Tls {
                sni: Some(rest[0].to_string()),
            },
            A::Redis => L7Detail::Redis {
                command: rest[0].to_ascii_uppercase(),
            },
            A::Postgresql | A::Mysql => L7Detail::Sql {
                kind: match rest.as_slice() {
                    [one] => one.parse().unwrap_or_else(|_| SqlKind::classify(one)),
                    _ => SqlKind::classify(&rest.join(" ")),
                },
            },
            A::Kafka => L7Detail::Kafka {
                api: kafka_api(rest[0])?,
                topic: rest.get(1).map(|t| t.to_string()),
            },
            A::Ldap => L7Detail::Ldap {
                operation: rest[0].parse()?,
                base_dn: (rest.len() > 1).then(|| rest[1..].join(" ")),
            },
            A::Mqtt => {
                need(2, "mqtt publish|subscribe TOPIC")?;
                L7Detail::Mqtt {
                    action: rest[0].parse()?,
                    topic: rest[1].to_string(),
                }
            }
            other => {
                return Err(format!(
                    "{other} requests carry no details bulkhead rules look at; write just `{other}`"
                ));
            }
        }
    };
    Ok(L7Request { app, detail })
}

/// The outcome of matching one rule's L7 part against what is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L7Outcome {
    Match,
    NoMatch,
    /// The rule looks at requests and none is known: the proxy must decide.
    Undecided,
}

/// Match a rule's `app` and L7 conditions against the known request, if any.
/// A rule without `app` matches everything at layer 7.
pub fn match_rule(
    app: Option<AppProtocol>,
    conditions: &[L7Match],
    known: Option<&L7Request>,
) -> L7Outcome {
    let Some(app) = app else {
        return L7Outcome::Match;
    };
    let Some(req) = known else {
        return L7Outcome::Undecided;
    };
    if !app.accepts(req.app) {
        return L7Outcome::NoMatch;
    }
    if conditions.is_empty() {
        return L7Outcome::Match;
    }
    if req.detail == L7Detail::None {
        return L7Outcome::Undecided;
    }
    if conditions.iter().any(|c| condition_matches(c, &req.detail)) {
        L7Outcome::Match
    } else {
        L7Outcome::NoMatch
    }
}

fn any_or<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

/// Does a rule's method list allow the request's method and every method it names by
/// an override (headers, a POST's `_method` fields: [`method_override`])?
fn methods_allow(
    methods: &[String],
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> bool {
    if methods.is_empty() {
        // No method list: any method, overridden or not (nothing to read).
        return true;
    }
    let allows = |m: &str| methods.iter().any(|x| x.eq_ignore_ascii_case(m.trim()));
    allows(method) && method_override::overrides(method, target, headers).all(|m| allows(&m))
}

/// Does a `host` condition hold for every host a request names: the one it was decided
/// on (HTTP/2's `:authority`, an absolute-form target's, else `Host`) and a `Host` field
/// besides, when that says another? Servers differ on which of two they serve (RFC 9113
/// 8.3.1 only says they SHOULD refuse such a request), so both must be allowed.
fn hosts_allow(pattern: &NamePattern, host: Option<&str>, headers: &[(String, String)]) -> bool {
    host.is_some_and(|v| name_matches(pattern, &host_name(v)))
        && (headers.iter())
            .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
            .all(|(_, v)| name_matches(pattern, &host_name(v)))
}

/// The host a `Host` value (or an authority) names, lower-cased, without a port: rules
/// name hosts, not host:port. `[v6]:port` gives the address; a bare IPv6 literal (more
/// than one colon) stays whole.
pub fn host_name(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_string()
        }
        _ => h,
    }
}

fn condition_matches(c: &L7Match, d: &L7Detail) -> bool {
    match (c, d) {
        (
            L7Match::Http(m),
            L7Detail::Http {
                method,
                path,
                host,
                headers,
            },
        ) => {
            methods_allow(&m.methods, method, path, headers)
                && m.path
                    .as_ref()
                    .is_none_or(|p| p.is_match(&http_path::normalize(path)))
                && m.host
                    .as_ref()
                    .is_none_or(|h| hosts_allow(h, host.as_deref(), headers))
                && m.headers.iter().all(|hm| {
                    headers.iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case(&hm.name) && hm.value.as_ref().is_none_or(|x| x == v)
                    })
                })
        }
        (L7Match::Grpc(m), L7Detail::Grpc { service, method }) => {
            m.service.as_ref().is_none_or(|s| s == "*" || s == service)
                && m.method.as_ref().is_none_or(|x| x == "*" || x == method)
        }
        (L7Match::Dns { names }, L7Detail::Dns { name }) => {
            names.iter().any(|p| name_matches(p, name))
        }
        (L7Match::Tls { sni }, L7Detail::Tls { sni: Some(s) }) => {
            sni.iter().any(|p| name_matches(p, s))
        }
        (L7Match::Redis { commands }, L7Detail::Redis { command }) => commands
            .iter()
            .any(|c| c == "*" || c.eq_ignore_ascii_case(command)),
        (L7Match::Sql { statements }, L7Detail::Sql { kind }) => statements.contains(kind),
        (L7Match::Kafka { apis, topics }, L7Detail::Kafka { api, topic }) => {
            any_or(apis, |a| a.eq_ignore_ascii_case(api))
                && (topics.is_empty()
                    || topic
                        .as_deref()
                        .is_some_and(|t| topics.iter().any(|g| glob_matches(g, t))))
        }
        (
            L7Match::Ldap {
                operations,
                base_dn,
            },
            L7Detail::Ldap {
                operation,
                base_dn: req_dn,
            },
        ) => {
            any_or(operations, |o| o == operation)
                && base_dn.as_ref().is_none_or(|want| {
                    // Binds, unbinds and abandons carry no base DN to restrict.
                    matches!(operation, LdapOp::Bind | LdapOp::Unbind | LdapOp::Abandon)
                        || req_dn.as_deref().is_some_and(|dn| dn_within(dn, want))
                })
        }
        (L7Match::Mqtt { actions, topics }, L7Detail::Mqtt { action, topic }) => {
            any_or(actions, |a| a == action) && any_or(topics, |f| mqtt_covers(f, topic))
        }
        _ => false,
    }
}

/// DNS name pattern match: `*` within one label, `**` for one or more whole labels,
/// a lone `*` for any name. Case-insensitive; a trailing dot is ignored.
pub fn name_matches(pattern: &NamePattern, name: &str) -> bool {
    let p = pattern.0.trim_end_matches('.').to_ascii_lowercase();
    if p == "*" || p == "**" {
        return true;
    }
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let pl: Vec<&str> = p.split('.').collect();
    let nl: Vec<&str> = n.split('.').collect();
    labels_match(&pl, &nl)
}

fn labels_match(p: &[&str], n: &[&str]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(&"**") => (1..=n.len()).any(|k| labels_match(&p[1..], &n[k..])),
        Some(first) => !n.is_empty() && glob_matches(first, n[0]) && labels_match(&p[1..], &n[1..]),
    }
}

/// `*` matches any run of characters; everything else is literal.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    // Iterative wildcard matching with backtracking to the last star: linear in practice,
    // never exponential on hostile patterns.
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Normalise a DN for comparison: lower case, no spaces around `=` and `,`.
pub use dn::dn_within;

/// Does the MQTT topic filter `allowed` cover `topic` (a topic name for publish, or a
/// filter for subscribe)? `+` covers one level (but not a `#` request), `#` the rest.
pub fn mqtt_covers(allowed: &str, topic: &str) -> bool {
    let mut a = allowed.split('/');
    let mut t = topic.split('/');
    loop {
        match (a.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(x)) if x != "#" => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(s: &str) -> NamePattern {
        NamePattern(s.into())
    }

    #[test]
    fn request_syntax_round_trips() {
        for text in [
            "http GET /api/orders host=shop.example header:X-Env=prod",
            "grpc shop.Orders/Get",
            "redis FLUSHALL",
            "postgresql ddl",
            "dns api.example.com",
            "kafka produce orders",
            "ldap search dc=blue,dc=example",
            "mqtt publish sensors/k1/temp",
            "ssh",
        ] {
            let r = parse_request(text).unwrap();
            assert_eq!(r.to_string(), text);
            assert_eq!(parse_request(&r.to_string()).unwrap(), r);
        }
        let r = parse_request("mysql /* x */ DROP TABLE users").unwrap();
        assert_eq!(r.detail, L7Detail::Sql { kind: SqlKind::Ddl });
        assert!(parse_request("http GET").is_err());
        assert!(parse_request("gopher x").is_err());
        assert!(parse_request("").is_err());
    }

    #[test]
    fn sql_kinds() {
        assert_eq!(SqlKind::classify("  select 1"), SqlKind::Select);
        assert_eq!(
            SqlKind::classify("-- hi\n(WITH x AS (select 1) SELECT * FROM x)"),
            SqlKind::Select
        );
        assert_eq!(SqlKind::classify("TRUNCATE t"), SqlKind::Ddl);
        assert_eq!(SqlKind::classify("begin"), SqlKind::Transaction);
        assert_eq!(SqlKind::classify("/* unterminated"), SqlKind::Other);
    }

    #[test]
    fn every_host_a_request_names_must_be_allowed() {
        let p = np("api.example.com");
        let h = |v: &str| vec![("host".to_string(), v.to_string())];
        assert!(hosts_allow(&p, Some("api.example.com"), &[]));
        assert!(hosts_allow(
            &p,
            Some("api.example.com"),
            &h("API.example.com:8443")
        ));
        assert!(!hosts_allow(
            &p,
            Some("api.example.com"),
            &h("internal.example.com")
        ));
        assert!(!hosts_allow(
            &p,
            Some("internal.example.com"),
            &h("api.example.com")
        ));
        assert!(!hosts_allow(&p, None, &[]));
        assert!(hosts_allow(&np("::1"), Some("::1"), &h("[::1]:80")));
    }

    #[test]
    fn method_overrides_must_be_allowed_too() {
        let h = |v: &str| vec![("X-HTTP-Method-Override".to_string(), v.to_string())];
        let get_post = ["GET".to_string(), "POST".to_string()];
        assert!(methods_allow(&get_post, "POST", "/", &[]));
        assert!(methods_allow(&get_post, "POST", "/", &h("get")));
        assert!(!methods_allow(&get_post, "POST", "/", &h("DELETE")));
        assert!(!methods_allow(&get_post, "DELETE", "/", &h("GET")));
        let x = vec![("x-method-override".to_string(), "PUT".to_string())];
        assert!(!methods_allow(&get_post, "GET", "/", &x));
        // A POST's `_method`, in its query string or (as the proxy read it) its body.
        assert!(!methods_allow(
            &get_post,
            "POST",
            "/posts/1?_method=delete",
            &[]
        ));
        assert!(methods_allow(&get_post, "POST", "/posts?_method=post", &[]));
        let body = vec![("_method".to_string(), "DELETE".to_string())];
        assert!(!methods_allow(&get_post, "POST", "/posts/1", &body));
        // A rule that names no method allows any, overridden or not.
        assert!(methods_allow(&[], "POST", "/?_method=DELETE", &h("DELETE")));
    }

    #[test]
    fn dns_patterns() {
        assert!(name_matches(&np("*.example.com"), "api.example.com."));
        assert!(!name_matches(&np("*.example.com"), "a.b.example.com"));
        assert!(name_matches(&np("**.example.com"), "a.b.example.com"));
        assert!(!name_matches(&np("**.example.com"), "example.com"));
        assert!(name_matches(&np("API.Example.com"), "api.example.COM"));
        assert!(name_matches(&np("*"), "anything.at.all"));
        assert!(name_matches(&np("web-*.svc"), "web-1.svc"));
    }

    #[test]
    fn globs_and_topics() {
        assert!(glob_matches("orders.*", "orders.eu"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("a*b", "ac"));
        assert!(glob_matches(&"*a".repeat(20), &"a".repeat(40)));
        assert!(mqtt_covers("sensors/+/temp", "sensors/k1/temp"));
        assert!(!mqtt_covers("sensors/+/temp", "sensors/k1/hum"));
        assert!(mqtt_covers("sensors/#", "sensors/k1/temp"));
        assert!(!mqtt_covers("sensors/+", "sensors/#"));
        assert!(dn_within(
            "cn=x, ou=People,DC=blue,dc=example",
            "dc=blue,dc=example"
        ));
        assert!(!dn_within("dc=notblue,dc=example", "dc=blue,dc=example"));
    }

    #[test]
    fn three_valued_matching() {
        let redis_get = [L7Match::Redis {
            commands: vec!["GET".into()],
        }];
        let req = |cmd: &str| L7Request {
            app: AppProtocol::Redis,
            detail: L7Detail::Redis {
                command: cmd.into(),
            },
        };
        let app = Some(AppProtocol::Redis);
        assert_eq!(match_rule(app, &redis_get, None), L7Outcome::Undecided);
        assert_eq!(
            match_rule(app, &redis_get, Some(&req("get"))),
            L7Outcome::Match
        );
        assert_eq!(
            match_rule(app, &redis_get, Some(&req("SET"))),
            L7Outcome::NoMatch
        );
        let http = L7Request {
            app: AppProtocol::Http,
            detail: L7Detail::None,
        };
        assert_eq!(match_rule(app, &[], Some(&http)), L7Outcome::NoMatch);
        assert_eq!(match_rule(None, &redis_get, Some(&http)), L7Outcome::Match);
        assert!(AppProtocol::Http.accepts(AppProtocol::Grpc));
        // Kafka APIs by name in any case, or by number past the named ones.
        assert_eq!(kafka_api("Produce").as_deref(), Ok("produce"));
        assert_eq!(kafka_api("api-99").as_deref(), Ok("api-99"));
        assert!(kafka_api("prodcue").is_err() && kafka_api("api-").is_err());
        assert!(parse_request("kafka bogusapi orders").is_err());
        assert!(!AppProtocol::Grpc.accepts(AppProtocol::Http));
    }
}
