//! Small constructors for the nftables JSON statements bulkhead writes, so the renderer
//! reads like the nft rules it produces.

use std::borrow::Cow;

use nftables::expr::{
    BinaryOperation, CT, Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression,
    Payload, PayloadField,
};
use nftables::stmt::{
    JumpTarget, Log, Mangle, Match, Operator, Reject, RejectType, Statement, VerdictMap,
};

use crate::names::ID_MASK;

pub type Stmts = Vec<Statement<'static>>;

fn s(x: &str) -> Cow<'static, str> {
    Cow::Owned(x.to_string())
}

pub fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub fn ct(key: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: s(key),
        family: None,
        dir: None,
    }))
}

pub fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: s(protocol),
            field: s(field),
        },
    )))
}

pub fn and(e: Expression<'static>, mask: u32) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::AND(e, Expression::Number(mask))))
}

/// `@name`: a reference to a named set.
pub fn set_ref(name: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(format!("@{name}")))
}

pub fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

pub fn ne(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

/// The source identity (`meta mark`, without the pass flags).
pub fn src_id() -> Expression<'static> {
    and(meta(MetaKey::Mark), ID_MASK)
}

/// The destination identity (`ct mark`).
pub fn dst_id() -> Expression<'static> {
    and(ct("mark"), ID_MASK)
}

/// `ct mark & DIVERTED_MASK`: equal to `DIVERT_MARK` for a connection the proxy owns
/// (a client's diverted one, or the proxy's own to a server).
pub fn diverted() -> Expression<'static> {
    and(ct("mark"), crate::names::DIVERTED_MASK)
}

/// `meta l4proto N`
pub fn l4proto(n: u8) -> Statement<'static> {
    eq(meta(MetaKey::L4proto), Expression::Number(u32::from(n)))
}

/// `meta nfproto ipv4|ipv6`
pub fn nfproto(v6: bool) -> Statement<'static> {
    eq(
        meta(MetaKey::Nfproto),
        Expression::String(s(if v6 { "ipv6" } else { "ipv4" })),
    )
}

pub fn addr_field(v6: bool, field: &str) -> Expression<'static> {
    payload(if v6 { "ip6" } else { "ip" }, field)
}

/// `meta mark set ip saddr map @m` (and the `ct mark` / daddr variant).
pub fn set_mark_from_map(ct_mark: bool, v6: bool, field: &str, map: &str) -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: if ct_mark {
            ct("mark")
        } else {
            meta(MetaKey::Mark)
        },
        value: Expression::Named(NamedExpression::Map(Box::new(Map {
            key: addr_field(v6, field),
            data: set_ref(map),
        }))),
    })
}

/// `meta mark set N` or `ct mark set N`.
pub fn set_mark(ct_mark: bool, value: u32) -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: if ct_mark {
            ct("mark")
        } else {
            meta(MetaKey::Mark)
        },
        value: Expression::Number(value),
    })
}

/// `meta mark set meta mark | flag`
pub fn set_flag(flag: u32) -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            meta(MetaKey::Mark),
            Expression::Number(flag),
        ]))),
    })
}

pub fn vmap(key: Expression<'static>, map: &str) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key,
        data: set_ref(map),
    })
}

pub fn goto(chain: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget { target: s(chain) })
}

pub fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget { target: s(chain) })
}

pub fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

pub fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

pub fn ret() -> Statement<'static> {
    Statement::Return(None)
}

pub fn log(prefix: &str, group: u32) -> Statement<'static> {
    Statement::Log(Some(Log {
        prefix: Some(s(prefix)),
        group: Some(group),
        snaplen: Some(128),
        queue_threshold: None,
        level: None,
        flags: None,
    }))
}

pub fn reject_tcp_reset() -> Statement<'static> {
    Statement::Reject(Some(Reject {
        _type: Some(RejectType::TCPReset),
        expr: None,
    }))
}

/// `reject with icmpx admin-prohibited`: the fastest "no" for UDP, SCTP and ICMP.
pub fn reject_icmpx() -> Statement<'static> {
    Statement::Reject(Some(Reject {
        _type: Some(RejectType::ICMPX),
        expr: Some(nftables::types::RejectCode::AdminProhibited),
    }))
}

/// `ct state established,related` / `ct state invalid`.
pub fn ct_state(states: &[&str]) -> Statement<'static> {
    let right = if states.len() == 1 {
        Expression::String(s(states[0]))
    } else {
        Expression::List(states.iter().map(|x| Expression::String(s(x))).collect())
    };
    Statement::Match(Match {
        left: ct("state"),
        right,
        op: Operator::IN,
    })
}

/// ICMPv6 neighbour discovery and multicast listener messages: link plumbing (IPv6's
/// ARP), never connections, so policy must not touch them or IPv6 stops working.
pub fn icmpv6_link_plumbing() -> Stmts {
    const TYPES: [u32; 9] = [130, 131, 132, 133, 134, 135, 136, 137, 143];
    vec![
        l4proto(58),
        Statement::Match(Match {
            left: payload("icmpv6", "type"),
            right: Expression::Named(NamedExpression::Set(
                TYPES
                    .iter()
                    .map(|t| nftables::expr::SetItem::Element(Expression::Number(*t)))
                    .collect(),
            )),
            op: Operator::EQ,
        }),
        accept(),
    ]
}

/// `fib saddr . iif oif missing`: the routing table has no route back to the source
/// address through the interface the packet came in on (strict reverse-path check).
/// Each workload's address is routed through its own interface, so this is true of a
/// packet from a workload that carries another workload's address.
pub fn no_route_back_to_source() -> Statement<'static> {
    eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Oif,
            flags: [FibFlag::Saddr, FibFlag::Iif].into_iter().collect(),
        })),
        Expression::Boolean(false),
    )
}

pub fn iifname(glob: &str) -> Statement<'static> {
    eq(meta(MetaKey::Iifname), Expression::String(s(glob)))
}

pub fn oifname(glob: &str) -> Statement<'static> {
    eq(meta(MetaKey::Oifname), Expression::String(s(glob)))
}
