//! Set and map element changes sent straight to the kernel as one nf_tables netlink
//! batch: what a workload change needs, in well under a millisecond.
//!
//! Why not nft for these: every `nft` run first reads the whole table into its cache,
//! which takes 15-65 ms once a node holds thousands of rules and tens of thousands of
//! elements (measured; see docs/BENCHMARKS.md). A batch of NEWSETELEM/DELSETELEM messages
//! between BATCH_BEGIN and BATCH_END is still one kernel transaction (all or nothing).
//! Chains, rules, sets themselves and interval (CIDR) elements stay with nft.

use std::net::IpAddr;
use std::os::fd::AsFd;

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload, Parseable,
};
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetElementAttribute, SetElementList,
    SetElementMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::names::TABLE;
use crate::ruleset::{Elem, SetKind};

/// One element to add or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElemOp {
    pub set: String,
    pub kind: SetKind,
    pub add: bool,
    pub elem: Elem,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    #[error("entering network namespace {0}: {1}")]
    Netns(String, String),
    #[error("the kernel refused element changes: {0}")]
    Refused(String),
    #[error("{0} elements cannot be sent over netlink (CIDR intervals go through nft)")]
    Unsupported(&'static str),
}

/// Can this element travel over [`apply`]?
pub fn supported(kind: SetKind) -> bool {
    !kind.is_interval()
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    }
}

/// The element as netlink attributes. Marks are host-endian 32-bit registers; addresses
/// and ports are in network order; each part of a concatenated key takes whole 32-bit
/// registers (so a port is 2 bytes and 2 of padding).
fn attrs(e: &Elem, add: bool) -> Result<Vec<SetElementAttribute>, NetlinkError> {
    let key = |bytes: Vec<u8>| SetElementAttribute::Key(DataAttribute::Value(bytes));
    Ok(match e {
        Elem::Mark(m) => vec![key(m.to_ne_bytes().to_vec())],
        Elem::Addr(a) => vec![key(addr_bytes(a))],
        Elem::AddrPort(a, p) => {
            let mut k = addr_bytes(a);
            k.extend_from_slice(&p.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
            vec![key(k)]
        }
        Elem::AddrMark(a, m) => {
            let mut v = vec![key(addr_bytes(a))];
            if add {
                v.push(SetElementAttribute::Data(DataAttribute::Value(
                    m.to_ne_bytes().to_vec(),
                )));
            }
            v
        }
        Elem::MarkGoto(m, chain) => {
            let mut v = vec![key(m.to_ne_bytes().to_vec())];
            if add {
                v.push(SetElementAttribute::Data(DataAttribute::Verdict(vec![
                    VerdictAttribute::Code(Verdict::Goto),
                    VerdictAttribute::Chain(chain.clone()),
                ])));
            }
            v
        }
        Elem::Net(_) => return Err(NetlinkError::Unsupported("interval")),
    })
}

fn message(
    inner: impl Into<netlink_packet_netfilter::NetfilterMessageInner>,
    family: NetfilterProtoFamily,
    res_id: u16,
) -> NetlinkMessage<NetfilterMessage> {
    NetlinkMessage::from(NetfilterMessage::new(
        NetfilterHeader::new(family, 0, res_id),
        inner,
    ))
}

/// Apply the changes as one transaction, in the current network namespace or (for
/// tools and tests) inside `netns` on a short-lived thread.
pub fn apply(netns: Option<&str>, ops: &[ElemOp]) -> Result<(), NetlinkError> {
    if ops.is_empty() {
        return Ok(());
    }
    match netns {
        None => apply_here(ops),
        Some(ns) => on_netns_thread(ns, || apply_here(ops))
            .map_err(|e| NetlinkError::Netns(ns.to_string(), e))?,
    }
}

/// Run `f` inside the named network namespace, on a short-lived thread of its own
/// (`setns` changes the namespace of the calling thread only). Err: the namespace could
/// not be entered, or `f` panicked.
pub(crate) fn on_netns_thread<T: Send>(
    netns: &str,
    f: impl FnOnce() -> T + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let file =
                std::fs::File::open(format!("/run/netns/{netns}")).map_err(|e| e.to_string())?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| e.to_string())?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err("the thread panicked".into()))
    })
}

/// An address for a DNS set (FQDN egress), kept by the kernel for `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedAddr {
    pub set: String,
    pub addr: IpAddr,
    pub timeout: std::time::Duration,
}

/// Add (or refresh: the kernel resets an existing element's timeout) addresses in
/// timeout sets, as one transaction in the current network namespace. Used by the
/// agent's DNS path; the sets must have been created with `flags timeout`.
pub fn add_timed(elems: &[TimedAddr]) -> Result<(), NetlinkError> {
    let mut groups: Vec<(String, bool, Vec<ListAttribute<SetElementAttribute>>)> = Vec::new();
    for e in elems {
        let ms = u64::try_from(e.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let el = ListAttribute::Element(vec![
            SetElementAttribute::Key(DataAttribute::Value(addr_bytes(&e.addr))),
            SetElementAttribute::Timeout(ms),
        ]);
        match groups.last_mut() {
            Some((set, _, list)) if *set == e.set => list.push(el),
            _ => groups.push((e.set.clone(), true, vec![el])),
        }
    }
    send(groups)
}

fn apply_here(ops: &[ElemOp]) -> Result<(), NetlinkError> {
    // One message per set and direction, elements grouped, in the order given (deletes
    // before adds of the same key are the caller's business).
    let mut groups = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let (set, add) = (&ops[i].set, ops[i].add);
        let mut elements = Vec::new();
        while i < ops.len() && ops[i].set == *set && ops[i].add == add {
            elements.push(ListAttribute::Element(attrs(&ops[i].elem, add)?));
            i += 1;
        }
        groups.push((set.clone(), add, elements));
    }
    send(groups)
}

/// One batch: a NEWSETELEM / DELSETELEM message per (set, add, elements) group.
fn send(
    groups: Vec<(String, bool, Vec<ListAttribute<SetElementAttribute>>)>,
) -> Result<(), NetlinkError> {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    if groups.is_empty() {
        return Ok(());
    }
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;

    let mut msgs = vec![message(
        ControlMessage::BatchBegin,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
    )];
    for (set, add, elements) in groups {
        let body = SetElementMessage {
            attributes: vec![
                SetElementList::Table(TABLE.to_string()),
                SetElementList::Set(set),
                SetElementList::Elements(elements),
            ],
        };
        let mut m = message(
            if add {
                NfTablesMessage::NewSetElement(body)
            } else {
                NfTablesMessage::DeleteSetElement(body)
            },
            NetfilterProtoFamily::Inet,
            0,
        );
        if add {
            m.header.flags |= NLM_F_CREATE;
        }
        msgs.push(m);
    }
    msgs.push(message(
        ControlMessage::BatchEnd,
        NetfilterProtoFamily::Unspec,
        NFNL_SUBSYS_NFTABLES,
    ));

    let mut buf = Vec::new();
    let mut expect = 0usize;
    let last = msgs.len() - 1;
    for (seq, mut m) in msgs.into_iter().enumerate() {
        m.header.flags |= NLM_F_REQUEST;
        // The batch begin and end markers are not acknowledged; every message between is.
        if seq != 0 && seq != last {
            m.header.flags |= NLM_F_ACK;
            expect += 1;
        }
        m.header.sequence_number = seq as u32 + 1;
        m.finalize();
        let start = buf.len();
        buf.resize(start + m.buffer_len(), 0);
        m.emit(&mut buf[start..]);
    }
    socket.send(&buf, 0)?;

    let mut acked = 0usize;
    let mut rx = vec![0u8; 1 << 16];
    while acked < expect {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let chunk = rx[off..n].to_vec();
            let nb = NetlinkBuffer::new(&chunk);
            let len = nb.length() as usize;
            if len == 0 {
                break;
            }
            if let Ok(msg) = NetlinkMessage::<NetfilterMessage>::parse(&nb)
                && let NetlinkPayload::Error(e) = msg.payload
            {
                match e.code {
                    None => acked += 1,
                    Some(code) => {
                        return Err(NetlinkError::Refused(format!(
                            "{} (message {})",
                            std::io::Error::from_raw_os_error(-code.get()),
                            msg.header.sequence_number
                        )));
                    }
                }
            }
            off += (len + 3) & !3;
        }
    }
    Ok(())
}
