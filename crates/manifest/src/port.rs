//! Port entries: Kubernetes `NetworkPolicyPort` and bulkhead's `PORT` (a mapping or a
//! shorthand string such as `TCP/80`, `TCP/8000-8100`, `ICMP/8/0` or `http`).

use bulkhead_model::{PortRange, Protocol};
use bulkhead_policy::spec::{PortSel, PortSpec};

use crate::decode::{Cx, Fields, P};
use crate::names;
use crate::yaml::{Node, Resolved, Value};

const K8S_PROTOCOLS: &[(&str, Protocol)] = &[
    ("TCP", Protocol::Tcp),
    ("UDP", Protocol::Udp),
    ("SCTP", Protocol::Sctp),
];

const PROTOCOL_NAMES: &[&str] = &["TCP", "UDP", "SCTP", "ICMP", "ICMPv6"];

/// A port as written: a number or a name (Kubernetes' IntOrString).
enum IntOrName {
    Int(i64),
    Name(String),
}

/// Plain integers are numbers; anything else is a string (a port name, or for bulkhead
/// a range such as `"8000-8100"`).
fn int_or_name(cx: &mut Cx, n: &Node, at: P) -> Option<IntOrName> {
    if let Value::Scalar(s) = &n.value
        && let Resolved::Int(v) = s.resolve()
    {
        return Some(IntOrName::Int(v));
    }
    cx.str(n, at).map(IntOrName::Name)
}

fn port_number(cx: &mut Cx, n: &Node, at: P, v: i64) -> Option<u16> {
    match u16::try_from(v) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            cx.err(n.pos, at, format!("must be from 1 to 65535, got {v}"));
            None
        }
    }
}

/// Kubernetes `NetworkPolicyPort`, with the API server's validation.
pub fn k8s(cx: &mut Cx, n: &Node, at: P) -> Option<PortSpec> {
    let o = cx.obj(n, at, Fields::Strict(&["protocol", "port", "endPort"]))?;
    let protocol = match o.get("protocol") {
        Some(v) => cx.one_of(v, at.f("protocol"), "protocol", K8S_PROTOCOLS, true),
        None => Some(Protocol::Tcp),
    };
    let at_port = at.f("port");
    let port = match o.get("port") {
        Some(v) => match int_or_name(cx, v, at_port) {
            Some(IntOrName::Int(i)) => {
                port_number(cx, v, at_port, i).map(|p| Some(PortSel::Range(PortRange::single(p))))
            }
            Some(IntOrName::Name(s)) => match names::port_name(&s) {
                Ok(()) => Some(Some(PortSel::Named(s))),
                Err(msg) => {
                    let digits = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
                    let tip = if digits {
                        format!("; for a port number write {s} without quotes")
                    } else {
                        String::new()
                    };
                    cx.err(v.pos, at_port, format!("{msg}{tip}"));
                    None
                }
            },
            None => None,
        },
        None => Some(None),
    };
    let (protocol, port) = (protocol?, port?);
    let port = match o.get("endPort") {
        None => port.unwrap_or(PortSel::Any),
        Some(e) => end_port(cx, e, at.f("endPort"), port)?,
    };
    Some(PortSpec {
        protocol: Some(protocol),
        port,
    })
}

/// `endPort`: extends a single numeric `port` into the range `port..=endPort`.
fn end_port(cx: &mut Cx, e: &Node, at: P, port: Option<PortSel>) -> Option<PortSel> {
    let end = cx.int(e, at, 1, 65535)? as u16;
    let problem = match port {
        Some(PortSel::Range(r)) if r.lo == r.hi && end >= r.lo => {
            return Some(PortSel::Range(PortRange { lo: r.lo, hi: end }));
        }
        Some(PortSel::Range(r)) if r.lo == r.hi => {
            format!("must be greater than or equal to `port` ({})", r.lo)
        }
        Some(PortSel::Range(_)) => {
            "may not be used with a port range; write port: \"LO-HI\" or port and endPort".into()
        }
        Some(_) => "may not be specified when `port` is a name".into(),
        None => "requires a numeric `port` (the start of the range)".into(),
    };
    cx.err(e.pos, at, problem);
    None
}

/// A bulkhead `PORT`: a mapping or a shorthand string.
pub fn bulkhead(cx: &mut Cx, n: &Node, at: P) -> Option<PortSpec> {
    match &n.value {
        Value::Map(_) => port_map(cx, n, at),
        Value::Scalar(s) => match s.resolve() {
            // `ports: [80]`: a bare number is a TCP port.
            Resolved::Int(v) => port_number(cx, n, at, v).map(|p| PortSpec {
                protocol: Some(Protocol::Tcp),
                port: PortSel::Range(PortRange::single(p)),
            }),
            _ => {
                let text = cx.str(n, at)?;
                match shorthand(&text) {
                    Ok(p) => Some(p),
                    Err(msg) => {
                        cx.err(n.pos, at, msg);
                        None
                    }
                }
            }
        },
        Value::Seq(_) => {
            cx.err(n.pos, at, "expected a port: a mapping {protocol, port, endPort, icmp} or a string such as TCP/80, got a list");
            None
        }
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse::<Protocol>().map_err(|_| {
        let hint = crate::decode::hint(s, PROTOCOL_NAMES);
        format!("unknown protocol {s:?}{hint}")
    })
}

/// `80`, `8000-8100`: a port or an inclusive range.
fn parse_range(s: &str) -> Option<Result<PortRange, String>> {
    let num = |x: &str| -> Option<Result<u16, String>> {
        if x.is_empty() || !x.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(match x.parse::<u16>() {
            Ok(p) if p >= 1 => Ok(p),
            _ => Err(format!("port {x} is out of range (1 to 65535)")),
        })
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let p = num(s)?;
            (p.clone(), p)
        }
    };
    Some(lo.and_then(|lo| {
        let hi = hi?;
        if hi < lo {
            return Err(format!("port range {s:?} ends before it starts"));
        }
        Ok(PortRange { lo, hi })
    }))
}

/// A port written after a protocol, or alone: a number, a range or a name.
fn port_sel(s: &str) -> Result<PortSel, String> {
    match parse_range(s) {
        Some(r) => r.map(PortSel::Range),
        None => names::port_name(s).map(|()| PortSel::Named(s.to_string())),
    }
}

fn icmp_number(x: &str, what: &str) -> Result<u8, String> {
    x.parse::<u8>()
        .map_err(|_| format!("the ICMP {what} must be a number from 0 to 255, got {x:?}"))
}

/// `TCP/80`, `UDP/53`, `TCP/8000-8100`, `TCP/http`, `TCP` (every TCP port), `ICMP`,
/// `ICMP/8`, `ICMP/8/0`, or a bare port name `http`.
pub fn shorthand(s: &str) -> Result<PortSpec, String> {
    let mut parts = s.split('/');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        if let Ok(protocol) = first.parse::<Protocol>() {
            return Ok(PortSpec {
                protocol: Some(protocol),
                port: PortSel::Any,
            });
        }
        // A bare port (range) or name: numbers mean TCP, a name any protocol.
        return match port_sel(first) {
            Ok(PortSel::Named(n)) => Ok(PortSpec {
                protocol: None,
                port: PortSel::Named(n),
            }),
            Ok(p) => Ok(PortSpec {
                protocol: Some(Protocol::Tcp),
                port: p,
            }),
            Err(e) => Err(format!(
                "{s:?} is not a port: {e}; expected PROTOCOL/PORT (TCP/80, UDP/53, TCP/8000-8100, TCP/http, ICMP/8/0), a protocol or a port name"
            )),
        };
    }
    let protocol = parse_protocol(first)?;
    let port = if protocol.has_ports() {
        match rest.as_slice() {
            [p] => port_sel(p)?,
            _ => {
                return Err(format!(
                    "{s:?}: expected {protocol}/PORT, such as {protocol}/80"
                ));
            }
        }
    } else {
        match rest.as_slice() {
            [t] => PortSel::Icmp {
                icmp_type: icmp_number(t, "type")?,
                code: None,
            },
            [t, c] => PortSel::Icmp {
                icmp_type: icmp_number(t, "type")?,
                code: Some(icmp_number(c, "code")?),
            },
            _ => return Err(format!("{s:?}: expected {protocol}[/TYPE[/CODE]]")),
        }
    };
    Ok(PortSpec {
        protocol: Some(protocol),
        port,
    })
}

fn port_map(cx: &mut Cx, n: &Node, at: P) -> Option<PortSpec> {
    let o = cx.obj(
        n,
        at,
        Fields::Strict(&["protocol", "port", "endPort", "icmp"]),
    )?;
    let at_proto = at.f("protocol");
    let protocol = match o.get("protocol") {
        Some(v) => {
            let s = cx.str(v, at_proto)?;
            match parse_protocol(&s) {
                Ok(p) => Some(p),
                Err(msg) => {
                    cx.err(v.pos, at_proto, msg);
                    return None;
                }
            }
        }
        None => None,
    };
    let at_port = at.f("port");
    let port = match o.get("port") {
        Some(v) => Some(match int_or_name(cx, v, at_port)? {
            IntOrName::Int(i) => PortSel::Range(PortRange::single(port_number(cx, v, at_port, i)?)),
            IntOrName::Name(s) => match port_sel(&s) {
                Ok(p) => p,
                Err(msg) => {
                    cx.err(v.pos, at_port, msg);
                    return None;
                }
            },
        }),
        None => None,
    };
    let port = match o.get("endPort") {
        None => port,
        Some(e) => Some(end_port(cx, e, at.f("endPort"), port)?),
    };
    let icmp = match o.get("icmp") {
        None => None,
        Some(v) => Some(icmp_map(cx, v, at.f("icmp"))?),
    };
    let is_icmp = protocol.is_some_and(|p| !p.has_ports());
    match (protocol, port, icmp) {
        (_, _, Some(_)) if !is_icmp => {
            let v = o.get("icmp").unwrap_or(n);
            cx.err(v.pos, at.f("icmp"), "`icmp` needs protocol: ICMP or ICMPv6");
            None
        }
        (Some(p), Some(_), _) if is_icmp => {
            let v = o.get("port").unwrap_or(n);
            cx.err(
                v.pos,
                at_port,
                format!("{p} has no ports; use icmp: {{type: 8, code: 0}}"),
            );
            None
        }
        (Some(p), _, Some(sel)) => Some(PortSpec {
            protocol: Some(p),
            port: sel,
        }),
        (Some(p), None, None) => Some(PortSpec {
            protocol: Some(p),
            port: PortSel::Any,
        }),
        (p, Some(PortSel::Named(name)), _) => Some(PortSpec {
            protocol: p,
            port: PortSel::Named(name),
        }),
        (p, Some(sel), _) => Some(PortSpec {
            protocol: Some(p.unwrap_or(Protocol::Tcp)),
            port: sel,
        }),
        (None, None, _) => {
            cx.err(n.pos, at, "a port needs `protocol`, `port` or both");
            None
        }
    }
}

fn icmp_map(cx: &mut Cx, n: &Node, at: P) -> Option<PortSel> {
    let o = cx.obj(n, at, Fields::Strict(&["type", "code"]))?;
    let icmp_type = cx
        .required(&o, "type", at, "")
        .and_then(|v| cx.int(v, at.f("type"), 0, 255));
    let code = match o.get("code") {
        Some(v) => cx.int(v, at.f("code"), 0, 255).map(Some),
        None => Some(None),
    };
    Some(PortSel::Icmp {
        icmp_type: icmp_type? as u8,
        code: code?.map(|c| c as u8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: Option<Protocol>, port: PortSel) -> PortSpec {
        PortSpec { protocol: p, port }
    }

    #[test]
    fn shorthands() {
        use Protocol::*;
        let r = |lo, hi| PortSel::Range(PortRange { lo, hi });
        let cases = [
            ("TCP/80", spec(Some(Tcp), r(80, 80))),
            ("udp/53", spec(Some(Udp), r(53, 53))),
            ("TCP/8000-8100", spec(Some(Tcp), r(8000, 8100))),
            ("TCP/http", spec(Some(Tcp), PortSel::Named("http".into()))),
            ("SCTP", spec(Some(Sctp), PortSel::Any)),
            ("ICMP", spec(Some(Icmp), PortSel::Any)),
            (
                "ICMP/8",
                spec(
                    Some(Icmp),
                    PortSel::Icmp {
                        icmp_type: 8,
                        code: None,
                    },
                ),
            ),
            (
                "ICMPv6/128/0",
                spec(
                    Some(Icmpv6),
                    PortSel::Icmp {
                        icmp_type: 128,
                        code: Some(0),
                    },
                ),
            ),
            ("http", spec(None, PortSel::Named("http".into()))),
            ("8080", spec(Some(Tcp), r(8080, 8080))),
        ];
        for (s, want) in cases {
            assert_eq!(shorthand(s), Ok(want), "{s}");
        }
        for bad in [
            "TCP/0",
            "TCP/70000",
            "TCP/90-80",
            "TPC/80",
            "ICMP/300",
            "ICMP/1/2/3",
            "TCP/80/1",
            "Http",
            "",
        ] {
            assert!(shorthand(bad).is_err(), "{bad}");
        }
        assert_eq!(
            shorthand("TPC/80").unwrap_err(),
            "unknown protocol \"TPC\"; did you mean \"TCP\"?"
        );
    }
}
