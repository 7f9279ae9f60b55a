//! Rules: the statements bulkhead renders, compiled to nf_tables expressions the way
//! nft 1.0.6 compiles them (same registers, lengths, byte orders, and the implicit
//! dependency matches nft inserts, e.g. `meta nfproto ipv4` before `ip saddr` in an inet
//! table).

use nftables::expr::{BinaryOperation, Expression, MetaKey, NamedExpression, Payload, SetItem};
use nftables::schema::Rule;
use nftables::stmt::{Mangle, Match, Operator, RejectType, Statement};
use nftables::types::RejectCode;

use super::objects::*;
use super::wire::*;
use super::{BatchError, Encoder, unsupported};

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;

const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

// Keys of the meta, ct and socket expressions.
const META_MARK: u32 = 3;
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const CT_STATE: u32 = 0;
const CT_MARK: u32 = 3;
const CT_DIRECTION: u32 = 1;
const SOCKET_TRANSPARENT: u32 = 0;
const SOCKET_MARK: u32 = 1;
// The fib expression: its attributes, result and input flags.
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_OIF: u32 = 1;
const NFTA_FIB_F_SADDR: u32 = 1;
const NFTA_FIB_F_DADDR: u32 = 2;
const NFTA_FIB_F_MARK: u32 = 4;
const NFTA_FIB_F_IIF: u32 = 8;
const NFTA_FIB_F_OIF: u32 = 16;
/// The result is whether there is one (`fib ... oif missing` / `exists`).
const NFTA_FIB_F_PRESENT: u32 = 32;

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IFNAMSIZ: usize = 16;

/// One attribute of an expression.
enum A {
    Be32(u16, u32),
    Be16(u16, u16),
    U8(u16, u8),
    Str(u16, String),
    /// A nested NFTA_DATA_VALUE.
    Value(u16, Vec<u8>),
    /// A nested NFTA_DATA_VERDICT.
    Verdict(u16, u32, Option<String>),
    /// A set reference: the set's name attribute and, if created in this batch, its id.
    Set(SetRef),
}

enum SetRef {
    Named(String, Option<u32>),
    /// The index of an anonymous set of this rule.
    Anon(usize),
}

struct Ex {
    name: &'static str,
    attrs: Vec<A>,
}

/// An anonymous set (`{ 133, 134 }`), created just before its rule.
struct AnonSet {
    key_type: u32,
    key_len: u32,
    udata: Vec<u8>,
    elems: Vec<Vec<u8>>,
}

/// What a loaded value is, which decides how the right-hand side is laid out.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    /// Marks: host byte order, 4 bytes.
    HostU32,
    /// One byte (socket transparent, ICMP type and code).
    U8,
    /// `fib ... oif` compared with a boolean (`missing`, `exists`): nft compares the
    /// whole 32-bit register.
    Present,
    L4proto,
    Nfproto,
    Ifname,
    CtState,
    /// `ct direction`: one byte, 0 original, 1 reply.
    CtDirection,
    Ip4,
    Ip6,
    /// Ports: network order, 2 bytes.
    Port,
    Concat(Vec<Ty>),
    /// ICMP / ICMPv6 type: one byte; the anonymous-set key (datatype, payload desc).
    IcmpType {
        v6: bool,
    },
}

/// What nft knows from earlier matches of the rule (its protocol context).
#[derive(Default)]
struct Ctx {
    nfproto: Option<u8>,
    l4: Option<u8>,
}

struct Compiler<'e, 'a> {
    enc: &'e Encoder<'a>,
    ctx: Ctx,
    out: Vec<Ex>,
    anon: Vec<AnonSet>,
    pending: Option<PendingCmp>,
}

fn meta_load(key: u32, dreg: u32) -> Ex {
    Ex {
        name: "meta",
        attrs: vec![A::Be32(2, key), A::Be32(1, dreg)],
    }
}

fn cmp(op: u32, data: Vec<u8>) -> Ex {
    Ex {
        name: "cmp",
        attrs: vec![A::Be32(1, REG_1), A::Be32(2, op), A::Value(3, data)],
    }
}

fn bitwise(len: u32, mask: Vec<u8>, xor: Vec<u8>) -> Ex {
    Ex {
        name: "bitwise",
        attrs: vec![
            A::Be32(1, REG_1),
            A::Be32(2, REG_1),
            A::Be32(3, len),
            A::Value(4, mask),
            A::Value(5, xor),
        ],
    }
}

fn immediate_verdict(code: u32, chain: Option<&str>) -> Ex {
    Ex {
        name: "immediate",
        attrs: vec![
            A::Be32(1, REG_VERDICT),
            A::Verdict(2, code, chain.map(str::to_string)),
        ],
    }
}

fn immediate_value(data: Vec<u8>) -> Ex {
    Ex {
        name: "immediate",
        attrs: vec![A::Be32(1, REG_1), A::Value(2, data)],
    }
}

/// nft numbers registers in 32-bit units internally and sends the 128-bit names
/// (NFT_REG_1..4) when a value starts on one, NFT_REG32_xx otherwise.
fn reg_of_unit(unit: u32) -> u32 {
    let r = unit - 1;
    if r.is_multiple_of(4) {
        1 + r / 4
    } else {
        8 + r
    }
}

fn op_code(op: Operator) -> Result<u32, BatchError> {
    Ok(match op {
        Operator::EQ | Operator::IN => 0,
        Operator::NEQ => 1,
        Operator::LT => 2,
        Operator::LEQ => 3,
        Operator::GT => 4,
        Operator::GEQ => 5,
        other => return unsupported(format!("operator {other:?}")),
    })
}

fn ct_state_bit(s: &str) -> Option<u32> {
    Some(match s {
        "invalid" => 1,
        "established" => 2,
        "related" => 4,
        "new" => 8,
        "untracked" => 64,
        _ => return None,
    })
}

fn l4_number(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        _ => return None,
    })
}

/// A scalar of type `ty` as nft lays it out.
fn value(ty: &Ty, e: &Expression) -> Result<Vec<u8>, BatchError> {
    let bad = || unsupported(format!("value {e:?} for {ty:?}"));
    Ok(match (ty, e) {
        (Ty::HostU32, Expression::Number(n)) => n.to_ne_bytes().to_vec(),
        (Ty::U8 | Ty::IcmpType { .. } | Ty::L4proto | Ty::Nfproto, Expression::Number(n)) => {
            match u8::try_from(*n) {
                Ok(b) => vec![b],
                Err(_) => return bad(),
            }
        }
        (Ty::Present, Expression::Boolean(b)) => u32::from(*b).to_ne_bytes().to_vec(),
        (Ty::L4proto, Expression::String(s)) => match l4_number(s) {
            Some(n) => vec![n],
            None => return bad(),
        },
        (Ty::Nfproto, Expression::String(s)) => match s.as_ref() {
            "ipv4" => vec![NFPROTO_IPV4],
            "ipv6" => vec![NFPROTO_IPV6],
            _ => return bad(),
        },
        (Ty::Port, Expression::Number(n)) => match u16::try_from(*n) {
            Ok(p) => p.to_be_bytes().to_vec(),
            Err(_) => return bad(),
        },
        (Ty::Ip4, Expression::String(s)) => match s.parse::<std::net::Ipv4Addr>() {
            Ok(a) => a.octets().to_vec(),
            Err(_) => return bad(),
        },
        (Ty::Ip6, Expression::String(s)) => match s.parse::<std::net::Ipv6Addr>() {
            Ok(a) => a.octets().to_vec(),
            Err(_) => return bad(),
        },
        (Ty::CtState, Expression::String(s)) => match ct_state_bit(s) {
            Some(b) => b.to_ne_bytes().to_vec(),
            None => return bad(),
        },
        (Ty::CtDirection, Expression::String(s)) => match s.as_ref() {
            "original" => vec![0],
            "reply" => vec![1],
            _ => return bad(),
        },
        _ => return bad(),
    })
}

fn payload_load(dreg: u32, base: u32, off: u32, len: u32) -> Ex {
    Ex {
        name: "payload",
        attrs: vec![
            A::Be32(1, dreg),
            A::Be32(2, base),
            A::Be32(3, off),
            A::Be32(4, len),
        ],
    }
}

/// A payload equality nft may merge with the next one (see [`Compiler::pending`]).
struct PendingCmp {
    base: u32,
    off: u32,
    data: Vec<u8>,
}

impl Compiler<'_, '_> {
    /// A header field: (base, offset, length, type), after the dependency match nft
    /// inserts for it when the rule has not matched its protocol yet.
    fn payload_field(
        &mut self,
        proto: &str,
        field: &str,
    ) -> Result<(u32, u32, u32, Ty), BatchError> {
        let f = match (proto, field) {
            ("ip", "saddr") => (1, 12, 4, Ty::Ip4),
            ("ip", "daddr") => (1, 16, 4, Ty::Ip4),
            ("ip6", "saddr") => (1, 8, 16, Ty::Ip6),
            ("ip6", "daddr") => (1, 24, 16, Ty::Ip6),
            ("th", "sport") => (2, 0, 2, Ty::Port),
            ("th", "dport") => (2, 2, 2, Ty::Port),
            ("icmp", "type") => (2, 0, 1, Ty::IcmpType { v6: false }),
            ("icmp", "code") => (2, 1, 1, Ty::U8),
            ("icmpv6", "type") => (2, 0, 1, Ty::IcmpType { v6: true }),
            ("icmpv6", "code") => (2, 1, 1, Ty::U8),
            (p, f) => return unsupported(format!("payload {p} {f}")),
        };
        match proto {
            "ip" => self.need_nfproto(NFPROTO_IPV4)?,
            "ip6" => self.need_nfproto(NFPROTO_IPV6)?,
            "icmp" => self.need_l4(1)?,
            "icmpv6" => self.need_l4(58)?,
            // `th` is the raw transport header: no dependency.
            _ => {}
        }
        Ok(f)
    }

    fn flush_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            self.out
                .push(payload_load(REG_1, p.base, p.off, p.data.len() as u32));
            self.out.push(cmp(0, p.data));
        }
    }

    /// `PAYLOAD == VALUE`, which nft merges with an adjacent one of the same header into
    /// one load and one comparison (`icmp type 8 icmp code 0`: 2 bytes at offset 0).
    fn payload_eq(&mut self, m: &Match) -> Result<bool, BatchError> {
        let Expression::Named(NamedExpression::Payload(Payload::PayloadField(f))) = &m.left else {
            return Ok(false);
        };
        if !matches!(m.op, Operator::EQ | Operator::IN)
            || !matches!(&m.right, Expression::Number(_) | Expression::String(_))
            || matches!(&m.right, Expression::String(s) if s.starts_with('@'))
        {
            return Ok(false);
        }
        let known = (self.ctx.nfproto, self.ctx.l4);
        let (base, off, len, ty) = self.payload_field(&f.protocol, &f.field)?;
        if (self.ctx.nfproto, self.ctx.l4) != known {
            // A dependency was just emitted: it belongs before any pending comparison.
            let dep = self.out.split_off(self.out.len() - 2);
            self.flush_pending();
            self.out.extend(dep);
        }
        let data = value(&ty, &m.right)?;
        debug_assert_eq!(data.len() as u32, len);
        match &mut self.pending {
            Some(p)
                if p.base == base
                    && p.off + p.data.len() as u32 == off
                    && p.data.len() + data.len() <= 16 =>
            {
                p.data.extend(data);
            }
            _ => {
                self.flush_pending();
                self.pending = Some(PendingCmp { base, off, data });
            }
        }
        Ok(true)
    }

    /// The match nft inserts when a header needs a protocol the rule has not matched.
    fn need_nfproto(&mut self, want: u8) -> Result<(), BatchError> {
        match self.ctx.nfproto {
            Some(p) if p == want => Ok(()),
            Some(_) => unsupported("conflicting network protocols in one rule"),
            None => {
                self.out.push(meta_load(META_NFPROTO, REG_1));
                self.out.push(cmp(0, vec![want]));
                self.ctx.nfproto = Some(want);
                Ok(())
            }
        }
    }

    fn need_l4(&mut self, want: u8) -> Result<(), BatchError> {
        match self.ctx.l4 {
            Some(p) if p == want => Ok(()),
            Some(_) => unsupported("conflicting transport protocols in one rule"),
            None => {
                self.out.push(meta_load(META_L4PROTO, REG_1));
                self.out.push(cmp(0, vec![want]));
                self.ctx.l4 = Some(want);
                Ok(())
            }
        }
    }

    /// Load `e` into the register of 32-bit unit `unit`; its type.
    fn load(&mut self, e: &Expression, unit: u32) -> Result<Ty, BatchError> {
        let dreg = reg_of_unit(unit);
        match e {
            Expression::Named(NamedExpression::Meta(m)) => {
                let (key, ty) = match m.key {
                    MetaKey::Mark => (META_MARK, Ty::HostU32),
                    MetaKey::L4proto => (META_L4PROTO, Ty::L4proto),
                    MetaKey::Nfproto => (META_NFPROTO, Ty::Nfproto),
                    MetaKey::Iifname => (META_IIFNAME, Ty::Ifname),
                    MetaKey::Oifname => (META_OIFNAME, Ty::Ifname),
                    other => return unsupported(format!("meta {other:?}")),
                };
                self.out.push(meta_load(key, dreg));
                Ok(ty)
            }
            Expression::Named(NamedExpression::CT(c)) => {
                if c.family.is_some() || c.dir.is_some() {
                    return unsupported("ct with family or direction");
                }
                let (key, ty) = match c.key.as_ref() {
                    "mark" => (CT_MARK, Ty::HostU32),
                    "state" => (CT_STATE, Ty::CtState),
                    "direction" => (CT_DIRECTION, Ty::CtDirection),
                    other => return unsupported(format!("ct {other}")),
                };
                self.out.push(Ex {
                    name: "ct",
                    attrs: vec![A::Be32(2, key), A::Be32(1, dreg)],
                });
                Ok(ty)
            }
            Expression::Named(NamedExpression::Payload(Payload::PayloadField(f))) => {
                let (base, off, len, ty) = self.payload_field(&f.protocol, &f.field)?;
                self.out.push(payload_load(dreg, base, off, len));
                Ok(ty)
            }
            Expression::Named(NamedExpression::Socket(s)) => {
                let (key, ty) = match s.key.as_ref() {
                    nftables::expr::SocketAttr::Transparent => (SOCKET_TRANSPARENT, Ty::U8),
                    nftables::expr::SocketAttr::Mark => (SOCKET_MARK, Ty::HostU32),
                    other => return unsupported(format!("socket {other:?}")),
                };
                self.out.push(Ex {
                    name: "socket",
                    attrs: vec![A::Be32(1, key), A::Be32(2, dreg)],
                });
                Ok(ty)
            }
            // Only as nft compiles `fib ... oif missing|exists`: the comparison's right
            // side must be a boolean (`value` refuses anything else).
            Expression::Named(NamedExpression::Fib(f)) => {
                use nftables::expr::{FibFlag, FibResult};
                if f.result != FibResult::Oif {
                    return unsupported(format!("fib {:?}", f.result));
                }
                let flags = f.flags.iter().fold(NFTA_FIB_F_PRESENT, |acc, fl| {
                    acc | match fl {
                        FibFlag::Saddr => NFTA_FIB_F_SADDR,
                        FibFlag::Daddr => NFTA_FIB_F_DADDR,
                        FibFlag::Mark => NFTA_FIB_F_MARK,
                        FibFlag::Iif => NFTA_FIB_F_IIF,
                        FibFlag::Oif => NFTA_FIB_F_OIF,
                    }
                });
                self.out.push(Ex {
                    name: "fib",
                    attrs: vec![
                        A::Be32(NFTA_FIB_DREG, dreg),
                        A::Be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_OIF),
                        A::Be32(NFTA_FIB_FLAGS, flags),
                    ],
                });
                Ok(Ty::Present)
            }
            Expression::BinaryOperation(op) => match op.as_ref() {
                // `meta mark & MASK`, `ct mark & MASK`.
                BinaryOperation::AND(inner, Expression::Number(mask)) if unit == 1 => {
                    let ty = self.load(inner, unit)?;
                    if ty != Ty::HostU32 {
                        return unsupported(format!("& on {ty:?}"));
                    }
                    self.out.push(bitwise(
                        4,
                        mask.to_ne_bytes().to_vec(),
                        0u32.to_ne_bytes().to_vec(),
                    ));
                    Ok(Ty::HostU32)
                }
                // `meta mark | FLAG`
                BinaryOperation::OR(items) if unit == 1 => match items.as_slice() {
                    [inner, Expression::Number(flag)] => {
                        let ty = self.load(inner, unit)?;
                        if ty != Ty::HostU32 {
                            return unsupported(format!("| on {ty:?}"));
                        }
                        self.out.push(bitwise(
                            4,
                            (!flag).to_ne_bytes().to_vec(),
                            flag.to_ne_bytes().to_vec(),
                        ));
                        Ok(Ty::HostU32)
                    }
                    _ => unsupported("| with other than two operands"),
                },
                other => unsupported(format!("binary operation {other:?}")),
            },
            Expression::Named(NamedExpression::Concat(items)) if unit == 1 => {
                let mut unit = unit;
                let mut tys = Vec::new();
                for it in items {
                    let ty = self.load(it, unit)?;
                    let len = match ty {
                        Ty::Ip4 | Ty::Port | Ty::HostU32 => 4,
                        Ty::Ip6 => 16,
                        _ => return unsupported(format!("{ty:?} in a concatenation")),
                    };
                    unit += len / 4;
                    tys.push(ty);
                }
                Ok(Ty::Concat(tys))
            }
            other => unsupported(format!("expression {other:?}")),
        }
    }

    fn set_ref(&self, name: &str) -> Result<SetRef, BatchError> {
        let info = self.enc.set_info(name)?;
        Ok(SetRef::Named(name.to_string(), info.id))
    }

    fn lookup(&mut self, set: SetRef, dreg: Option<u32>, inv: bool) {
        let mut attrs = vec![A::Be32(2, REG_1), A::Set(set)];
        if let Some(d) = dreg {
            attrs.push(A::Be32(3, d));
        }
        if inv {
            attrs.push(A::Be32(5, 1));
        }
        self.out.push(Ex {
            name: "lookup",
            attrs,
        });
    }

    fn matches(&mut self, m: &Match) -> Result<(), BatchError> {
        let ty = self.load(&m.left, 1)?;
        let neq = m.op == Operator::NEQ;
        match &m.right {
            Expression::String(s) if s.starts_with('@') => {
                if !matches!(m.op, Operator::EQ | Operator::IN | Operator::NEQ) {
                    return unsupported(format!("{:?} on a set", m.op));
                }
                let r = self.set_ref(&s[1..])?;
                self.lookup(r, None, neq);
            }
            Expression::Named(NamedExpression::Set(items)) => {
                let Ty::IcmpType { v6 } = ty else {
                    return unsupported(format!("anonymous set of {ty:?}"));
                };
                let mut elems = Vec::new();
                for it in items {
                    match it {
                        SetItem::Element(e) => elems.push(value(&ty, e)?),
                        _ => return unsupported("mapping in an anonymous set"),
                    }
                }
                // nft's user data for a set keyed by `icmp(v6) type`: big-endian key,
                // typeof payload (expression 7) of protocol desc 4/14, field 1.
                let desc = if v6 { 14 } else { 4 };
                let mut ud = Udata::default();
                ud.u32(UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG);
                let mut typeof_data = Udata::default();
                typeof_data.u32(0, desc).u32(1, 1);
                let mut typeof_ = Udata::default();
                typeof_.u32(0, 7).put(1, &typeof_data.0);
                ud.put(UDATA_SET_KEY_TYPEOF, &typeof_.0);
                self.anon.push(AnonSet {
                    key_type: if v6 { 29 } else { 14 },
                    key_len: 1,
                    udata: ud.0,
                    elems,
                });
                self.lookup(SetRef::Anon(self.anon.len() - 1), None, neq);
            }
            Expression::Range(r) => {
                let from = value(&ty, &r.range[0])?;
                let to = value(&ty, &r.range[1])?;
                match m.op {
                    // nft compares a range as two bounds; only a negated range is a
                    // `range` expression.
                    Operator::EQ | Operator::IN => {
                        self.out.push(cmp(5, from));
                        self.out.push(cmp(3, to));
                    }
                    Operator::NEQ => self.out.push(Ex {
                        name: "range",
                        attrs: vec![
                            A::Be32(1, REG_1),
                            A::Be32(2, 1),
                            A::Value(3, from),
                            A::Value(4, to),
                        ],
                    }),
                    other => return unsupported(format!("{other:?} on a range")),
                }
            }
            right if ty == Ty::CtState => {
                // A flag test: `ct state established,related` is (state & mask) != 0.
                let names: Vec<&Expression> = match right {
                    Expression::List(l) => l.iter().collect(),
                    other => vec![other],
                };
                let mut mask = 0u32;
                for n in names {
                    match n {
                        Expression::String(s) => match ct_state_bit(s) {
                            Some(b) => mask |= b,
                            None => return unsupported(format!("ct state {s}")),
                        },
                        other => return unsupported(format!("ct state {other:?}")),
                    }
                }
                match m.op {
                    Operator::IN => {
                        self.out.push(bitwise(
                            4,
                            mask.to_ne_bytes().to_vec(),
                            0u32.to_ne_bytes().to_vec(),
                        ));
                        self.out.push(cmp(1, 0u32.to_ne_bytes().to_vec()));
                    }
                    Operator::EQ | Operator::NEQ => {
                        self.out
                            .push(cmp(op_code(m.op)?, mask.to_ne_bytes().to_vec()));
                    }
                    other => return unsupported(format!("{other:?} on ct state")),
                }
            }
            Expression::String(s) if ty == Ty::Ifname => {
                // A trailing `*` matches the prefix: compare only its bytes. Otherwise the
                // whole (NUL-padded) name.
                let data = match s.strip_suffix('*') {
                    Some(prefix) if !prefix.contains(['*', '\\']) => prefix.as_bytes().to_vec(),
                    Some(_) => return unsupported(format!("interface pattern {s}")),
                    None if s.len() < IFNAMSIZ && !s.contains('\\') => {
                        let mut v = s.as_bytes().to_vec();
                        v.resize(IFNAMSIZ, 0);
                        v
                    }
                    None => return unsupported(format!("interface name {s}")),
                };
                if data.is_empty() {
                    return unsupported("interface pattern `*`");
                }
                self.out.push(cmp(op_code(m.op)?, data));
            }
            right => {
                if matches!(ty, Ty::Concat(_)) {
                    return unsupported("concatenation compared to a value");
                }
                let data = value(&ty, right)?;
                self.out.push(cmp(op_code(m.op)?, data.clone()));
                if m.op == Operator::EQ || m.op == Operator::IN {
                    match (&ty, &m.left) {
                        (Ty::Nfproto, _) => self.ctx.nfproto = Some(data[0]),
                        (Ty::L4proto, _) => self.ctx.l4 = Some(data[0]),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The register a `set` statement writes: `meta mark set ...` / `ct mark set ...`.
    fn mangle(&mut self, m: &Mangle) -> Result<(), BatchError> {
        let (name, key, sreg_attr) = match &m.key {
            Expression::Named(NamedExpression::Meta(x)) if x.key == MetaKey::Mark => {
                ("meta", META_MARK, 3)
            }
            Expression::Named(NamedExpression::CT(c))
                if c.key == "mark" && c.family.is_none() && c.dir.is_none() =>
            {
                ("ct", CT_MARK, 4)
            }
            other => return unsupported(format!("set {other:?}")),
        };
        match &m.value {
            Expression::Number(n) => self.out.push(immediate_value(n.to_ne_bytes().to_vec())),
            Expression::Named(NamedExpression::Map(map)) => {
                let Expression::String(s) = &map.data else {
                    return unsupported("map with inline data");
                };
                let Some(set) = s.strip_prefix('@') else {
                    return unsupported("map with inline data");
                };
                let ty = self.load(&map.key, 1)?;
                if !matches!(ty, Ty::Ip4 | Ty::Ip6) {
                    return unsupported(format!("map keyed by {ty:?}"));
                }
                let r = self.set_ref(set)?;
                self.lookup(r, Some(REG_1), false);
            }
            v @ Expression::BinaryOperation(_) => {
                let ty = self.load(v, 1)?;
                if ty != Ty::HostU32 {
                    return unsupported("mark set to a non-mark");
                }
            }
            other => return unsupported(format!("set mark to {other:?}")),
        }
        self.out.push(Ex {
            name,
            attrs: vec![A::Be32(2, key), A::Be32(sreg_attr, REG_1)],
        });
        Ok(())
    }

    fn statement(&mut self, s: &Statement) -> Result<(), BatchError> {
        if let Statement::Match(m) = s
            && self.payload_eq(m)?
        {
            return Ok(());
        }
        self.flush_pending();
        match s {
            Statement::Match(m) => self.matches(m)?,
            Statement::Accept(_) => self.out.push(immediate_verdict(1, None)),
            Statement::Drop(_) => self.out.push(immediate_verdict(0, None)),
            Statement::Continue(_) => self.out.push(immediate_verdict(-1i32 as u32, None)),
            Statement::Return(_) => self.out.push(immediate_verdict(-5i32 as u32, None)),
            Statement::Jump(t) => self
                .out
                .push(immediate_verdict(-3i32 as u32, Some(&t.target))),
            Statement::Goto(t) => self
                .out
                .push(immediate_verdict(-4i32 as u32, Some(&t.target))),
            Statement::Mangle(m) => self.mangle(m)?,
            Statement::VerdictMap(v) => {
                let Expression::String(s) = &v.data else {
                    return unsupported("verdict map with inline data");
                };
                let Some(set) = s.strip_prefix('@') else {
                    return unsupported("verdict map with inline data");
                };
                let ty = self.load(&v.key, 1)?;
                if ty != Ty::HostU32 {
                    return unsupported(format!("verdict map keyed by {ty:?}"));
                }
                let r = self.set_ref(set)?;
                self.lookup(r, Some(REG_VERDICT), false);
            }
            Statement::Log(l) => {
                let mut attrs = Vec::new();
                if let Some(l) = l {
                    if l.level.is_some() || l.flags.is_some() {
                        return unsupported("log level or flags");
                    }
                    if let Some(p) = &l.prefix {
                        attrs.push(A::Str(2, p.to_string()));
                    }
                    if let Some(g) = l.group {
                        let Ok(g) = u16::try_from(g) else {
                            return unsupported("log group");
                        };
                        attrs.push(A::Be16(1, g));
                    }
                    if let Some(s) = l.snaplen {
                        attrs.push(A::Be32(3, s));
                    }
                    if let Some(q) = l.queue_threshold {
                        let Ok(q) = u16::try_from(q) else {
                            return unsupported("log queue threshold");
                        };
                        attrs.push(A::Be16(4, q));
                    }
                }
                self.out.push(Ex { name: "log", attrs });
            }
            Statement::Reject(r) => {
                let (ty, code) = match r {
                    Some(r) => match (&r._type, &r.expr) {
                        (Some(RejectType::TCPReset), None) => {
                            self.need_l4(6)?;
                            (1, 0)
                        }
                        (Some(RejectType::ICMPX), code) => (
                            2,
                            match code {
                                None | Some(RejectCode::PortUnreach) => 1,
                                Some(RejectCode::NoRoute) => 0,
                                Some(RejectCode::HostUnreach) => 2,
                                Some(RejectCode::AdminProhibited) => 3,
                                Some(other) => {
                                    return unsupported(format!("reject code {other:?}"));
                                }
                            },
                        ),
                        other => return unsupported(format!("reject {other:?}")),
                    },
                    None => (2, 1),
                };
                self.out.push(Ex {
                    name: "reject",
                    attrs: vec![A::Be32(1, ty), A::U8(2, code)],
                });
            }
            Statement::TProxy(t) => {
                if t.addr.is_some() {
                    return unsupported("tproxy to an address");
                }
                let family = match t.family.as_deref() {
                    Some("ip") => NFPROTO_IPV4,
                    Some("ip6") => NFPROTO_IPV6,
                    other => return unsupported(format!("tproxy family {other:?}")),
                };
                // nft wants the network and transport protocols matched before.
                if self.ctx.nfproto != Some(family) || !matches!(self.ctx.l4, Some(6 | 17)) {
                    return unsupported("tproxy without its protocol matches");
                }
                self.out
                    .push(immediate_value(t.port.to_be_bytes().to_vec()));
                self.out.push(Ex {
                    name: "tproxy",
                    attrs: vec![A::Be32(1, u32::from(family)), A::Be32(3, REG_1)],
                });
            }
            other => {
                return unsupported(format!(
                    "statement {}",
                    serde_json::to_string(other).unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

impl Encoder<'_> {
    pub(super) fn add_rule(&mut self, r: &Rule) -> Result<(), BatchError> {
        if r.handle.is_some() || r.index.is_some() {
            return unsupported("rule with handle or index");
        }
        if !matches!(r.family, nftables::types::NfFamily::INet) {
            return unsupported(format!("family {:?}", r.family));
        }
        let mut c = Compiler {
            enc: self,
            ctx: Ctx::default(),
            out: Vec::new(),
            anon: Vec::new(),
            pending: None,
        };
        for s in r.expr.iter() {
            c.statement(s)?;
        }
        c.flush_pending();
        let (exprs, anon) = (c.out, c.anon);
        // Anonymous sets first, each with its elements, as nft sends them.
        let mut anon_ids = Vec::new();
        for a in &anon {
            self.next_id += 1;
            let id = self.next_id;
            anon_ids.push(id);
            self.b.begin(NEWSET, NLM_F_CREATE);
            self.b.str(NFTA_SET_TABLE, &r.table);
            self.b.str(NFTA_SET_NAME, "__set%d");
            self.b
                .be32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
            self.b.be32(NFTA_SET_KEY_TYPE, a.key_type);
            self.b.be32(NFTA_SET_KEY_LEN, a.key_len);
            self.b.be32(NFTA_SET_ID, id);
            let d = self.b.nest(NFTA_SET_DESC);
            self.b.be32(NFTA_SET_DESC_SIZE, a.elems.len() as u32);
            self.b.close(d);
            self.b.attr(NFTA_SET_USERDATA, &a.udata);
            self.b.end_msg();
            self.b.begin(NEWSETELEM, NLM_F_CREATE);
            self.b.str(NFTA_SET_ELEM_LIST_TABLE, &r.table);
            self.b.str(NFTA_SET_ELEM_LIST_SET, "__set%d");
            self.b.be32(NFTA_SET_ELEM_LIST_SET_ID, id);
            let l = self.b.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in &a.elems {
                let el = self.b.nest(NFTA_LIST_ELEM);
                put_value(&mut self.b, NFTA_SET_ELEM_KEY, e);
                self.b.close(el);
            }
            self.b.close(l);
            self.b.end_msg();
        }
        self.b.begin(NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        self.b.str(NFTA_RULE_TABLE, &r.table);
        self.b.str(NFTA_RULE_CHAIN, &r.chain);
        let list = self.b.nest(NFTA_RULE_EXPRESSIONS);
        for ex in &exprs {
            let el = self.b.nest(NFTA_LIST_ELEM);
            self.b.str(NFTA_EXPR_NAME, ex.name);
            let data = self.b.nest(NFTA_EXPR_DATA);
            for a in &ex.attrs {
                match a {
                    A::Be32(t, v) => self.b.be32(*t, *v),
                    A::Be16(t, v) => self.b.attr(*t, &v.to_be_bytes()),
                    A::U8(t, v) => self.b.attr(*t, &[*v]),
                    A::Str(t, s) => self.b.str(*t, s),
                    A::Value(t, v) => put_value(&mut self.b, *t, v),
                    A::Verdict(t, code, chain) => {
                        let d = self.b.nest(*t);
                        put_verdict(&mut self.b, *code, chain.as_deref());
                        self.b.close(d);
                    }
                    A::Set(SetRef::Named(name, id)) => {
                        self.b.str(1, name);
                        if let Some(id) = id {
                            self.b.be32(4, *id);
                        }
                    }
                    A::Set(SetRef::Anon(i)) => {
                        self.b.str(1, "__set%d");
                        self.b.be32(4, anon_ids[*i]);
                    }
                }
            }
            self.b.close(data);
            self.b.close(el);
        }
        self.b.close(list);
        if let Some(comment) = &r.comment {
            let mut ud = Udata::default();
            Encoder::comment(&mut ud, comment);
            self.b.attr(NFTA_RULE_USERDATA, &ud.0);
        }
        self.b.end_msg();
        Ok(())
    }
}
