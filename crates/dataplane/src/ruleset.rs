//! The state of the `bulkhead` table, desired or observed, in a form that can be diffed:
//! sets and maps with their elements, chains with their rules and a content hash.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use nftables::expr::{Expression, NamedExpression, Prefix, Verdict};
use nftables::schema::{SetType, SetTypeValue};
use nftables::stmt::{JumpTarget, Statement};
use serde_json::Value;

/// What a set or map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKind {
    /// Identity numbers.
    Marks,
    Addrs4,
    Addrs6,
    /// CIDRs (interval sets).
    Nets4,
    Nets6,
    /// (address, port) pairs of a named port.
    AddrPorts4,
    AddrPorts6,
    /// Map address -> identity number.
    AddrMarks4,
    AddrMarks6,
    /// Verdict map identity number -> `goto` chain.
    MarkVerdicts,
}

impl SetKind {
    pub fn is_map(self) -> bool {
        matches!(
            self,
            SetKind::AddrMarks4 | SetKind::AddrMarks6 | SetKind::MarkVerdicts
        )
    }

    pub fn is_interval(self) -> bool {
        matches!(self, SetKind::Nets4 | SetKind::Nets6)
    }

    /// The key type (for maps: the key).
    pub fn key_type(self) -> SetTypeValue<'static> {
        use SetType::*;
        match self {
            SetKind::Marks | SetKind::MarkVerdicts => SetTypeValue::Single(Mark),
            SetKind::Addrs4 | SetKind::Nets4 | SetKind::AddrMarks4 => {
                SetTypeValue::Single(Ipv4Addr)
            }
            SetKind::Addrs6 | SetKind::Nets6 | SetKind::AddrMarks6 => {
                SetTypeValue::Single(Ipv6Addr)
            }
            SetKind::AddrPorts4 => {
                SetTypeValue::Concatenated(Cow::Borrowed(&[Ipv4Addr, InetService]))
            }
            SetKind::AddrPorts6 => {
                SetTypeValue::Concatenated(Cow::Borrowed(&[Ipv6Addr, InetService]))
            }
        }
    }
}

/// One element of a set or map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Elem {
    Mark(u32),
    Addr(IpAddr),
    Net(IpNet),
    AddrPort(IpAddr, u16),
    AddrMark(IpAddr, u32),
    /// Identity number -> goto chain.
    MarkGoto(u32, String),
}

impl Elem {
    pub fn to_expr(&self) -> Expression<'static> {
        fn addr(a: &IpAddr) -> Expression<'static> {
            Expression::String(Cow::Owned(a.to_string()))
        }
        match self {
            Elem::Mark(m) => Expression::Number(*m),
            Elem::Addr(a) => addr(a),
            Elem::Net(n) => Expression::Named(NamedExpression::Prefix(Prefix {
                addr: Box::new(addr(&n.network())),
                len: u32::from(n.prefix_len()),
            })),
            Elem::AddrPort(a, p) => Expression::Named(NamedExpression::Concat(vec![
                addr(a),
                Expression::Number(u32::from(*p)),
            ])),
            Elem::AddrMark(a, m) => Expression::List(vec![addr(a), Expression::Number(*m)]),
            Elem::MarkGoto(m, chain) => Expression::List(vec![
                Expression::Number(*m),
                Expression::Verdict(Verdict::Goto(JumpTarget {
                    target: Cow::Owned(chain.clone()),
                })),
            ]),
        }
    }

    /// Read an element as `nft -j list` prints it. None if it is not something bulkhead
    /// writes (then the whole set is rewritten rather than guessed at).
    pub fn from_json(kind: SetKind, v: &Value) -> Option<Elem> {
        // Elements with timeouts or comments come wrapped in {"elem": {"val": ...}}.
        let v = v.get("elem").and_then(|e| e.get("val")).unwrap_or(v);
        let addr = |v: &Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
        let num = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
        match kind {
            SetKind::Marks => num(v).map(Elem::Mark),
            SetKind::Addrs4 | SetKind::Addrs6 => addr(v).map(Elem::Addr),
            SetKind::Nets4 | SetKind::Nets6 => {
                if let Some(a) = addr(v) {
                    return IpNet::new(a, if a.is_ipv4() { 32 } else { 128 })
                        .ok()
                        .map(Elem::Net);
                }
                let p = v.get("prefix")?;
                let a = addr(p.get("addr")?)?;
                let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
                IpNet::new(a, len).ok().map(Elem::Net)
            }
            SetKind::AddrPorts4 | SetKind::AddrPorts6 => {
                let c = v.get("concat")?.as_array()?;
                Some(Elem::AddrPort(
                    addr(c.first()?)?,
                    u16::try_from(c.get(1)?.as_u64()?).ok()?,
                ))
            }
            SetKind::AddrMarks4 | SetKind::AddrMarks6 => {
                let pair = v.as_array()?;
                Some(Elem::AddrMark(addr(pair.first()?)?, num(pair.get(1)?)?))
            }
            SetKind::MarkVerdicts => {
                let pair = v.as_array()?;
                let target = pair.get(1)?.get("goto")?.get("target")?.as_str()?;
                Some(Elem::MarkGoto(num(pair.first()?)?, target.to_string()))
            }
        }
    }
}

/// A set or map and its elements. `elems` is None when the kernel holds elements bulkhead
/// could not read back: the diff then flushes and refills the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetState {
    pub kind: SetKind,
    /// Shared: sets a change does not touch are carried from one state to the next
    /// without copying (and compared by pointer first).
    pub elems: Option<Arc<BTreeSet<Elem>>>,
}

/// Where a base chain hooks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Before routing (priority mangle): where connections are diverted to the L7 proxy.
    Prerouting,
    /// Before routing and before conntrack (priority raw): where packets with a source
    /// address their workload's interface does not route to are dropped, before they
    /// can take that address's identity or an entry in the connection table.
    Raw,
    Forward,
    Input,
    Output,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting | Hook::Raw => "prerouting",
            Hook::Forward => "forward",
            Hook::Input => "input",
            Hook::Output => "output",
        }
    }

    /// The hook of a base chain the kernel lists with this hook name and priority.
    pub fn from_kernel(name: &str, priority: i64) -> Option<Hook> {
        [
            Hook::Prerouting,
            Hook::Raw,
            Hook::Forward,
            Hook::Input,
            Hook::Output,
        ]
        .into_iter()
        .find(|h| h.name() == name && i64::from(h.priority()) == priority)
    }

    /// TPROXY must see packets before routing and after conntrack (-200): mangle (-150).
    /// The source check comes before conntrack: raw (-300).
    pub fn priority(self) -> i32 {
        match self {
            Hook::Prerouting => -150,
            Hook::Raw => -300,
            _ => 0,
        }
    }
}

/// A chain: its rules (empty when only observed) and the hash of the desired rules,
/// which is stored in the comment of the chain's first rule.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct ChainState {
    pub hook: Option<Hook>,
    /// Shared: an unchanged chain is carried from one render to the next without copying.
    pub rules: Arc<Vec<Vec<Statement<'static>>>>,
    pub hash: Option<u64>,
}

/// The whole table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ruleset {
    /// False when the table does not exist (nothing observed).
    pub exists: bool,
    pub sets: BTreeMap<String, SetState>,
    pub chains: BTreeMap<String, ChainState>,
}

impl Ruleset {
    /// Tables, chains, rules and sets: the objects whose count must stay flat when
    /// replicas grow (elements are what grows).
    pub fn object_count(&self) -> ObjectCount {
        ObjectCount {
            chains: self.chains.len(),
            rules: self.chains.values().map(|c| c.rules.len()).sum(),
            sets: self.sets.len(),
            elements: self
                .sets
                .values()
                .map(|s| s.elems.as_ref().map_or(0, |e| e.len()))
                .sum(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectCount {
    pub chains: usize,
    pub rules: usize,
    pub sets: usize,
    pub elements: usize,
}
