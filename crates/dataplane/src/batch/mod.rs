//! A whole [`Transaction`] sent to the kernel as one nf_tables netlink batch, from this
//! process: what a policy edit needs at 10k workloads, without nft on the hot path.
//!
//! Why we encode netlink ourselves: `nft -j -f -` costs 15-40 ms per transaction against
//! a big table (process start, then nft reads the whole table into its cache before it
//! writes anything; measured, see `examples/batch_time.rs`), which alone misses the 50 ms
//! budget of a policy edit. The libraries that speak nf_tables netlink are GPL (libnftnl,
//! and rustables on top of it; see /work/shared/design/dependencies.md), so the messages
//! are laid out here, from the kernel's UAPI (`linux/netfilter/nf_tables.h`), byte for
//! byte as nft 1.0.6 lays them out: the same implicit dependency matches, key and data
//! types, byte orders, lengths and user data, so `nft list` cannot tell the two apart
//! (the oracle in `tests/batch.rs` compares the kernel's bytecode of both).
//!
//! Everything between BATCH_BEGIN and BATCH_END is one kernel transaction (all or
//! nothing). Anything this encoder does not know returns [`BatchError::Unsupported`]
//! before a byte is sent; the caller then uses nft. Encoding is pure (no I/O), so it can
//! be tested without privileges.

use std::collections::{BTreeSet, HashMap};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::diff::Transaction;

mod objects;
mod rule;
mod wire;

/// Why a transaction cannot be sent over netlink (the caller then uses nft).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Something the encoder does not know how to lay out exactly as nft would.
    #[error("cannot be encoded as netlink: {0}")]
    Unsupported(String),
    /// The kernel refused the batch (nothing was applied).
    #[error("the kernel refused the batch: {0}")]
    Refused(String),
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    #[error("entering network namespace {0}: {1}")]
    Netns(String, String),
}

pub(crate) fn unsupported<T>(what: impl std::fmt::Display) -> Result<T, BatchError> {
    Err(BatchError::Unsupported(what.to_string()))
}

/// A set known to the encoder: its kind and, if it is created in this batch, the id the
/// batch gives it (what later messages of the same batch may refer to it by).
#[derive(Clone, Copy, Debug)]
struct SetInfo {
    kind: crate::SetKind,
    id: Option<u32>,
}

struct Encoder<'a> {
    b: wire::Batch,
    next_id: u32,
    sets: HashMap<String, SetInfo>,
    verdict_maps: &'a BTreeSet<String>,
    /// Sequence number -> index of the command it belongs to (for error messages).
    cmd_of_seq: Vec<usize>,
}

/// The encoded batch: its bytes, the sequence number of the one message that asks for an
/// ACK, and the command each sequence number came from.
struct Encoded {
    bytes: Vec<u8>,
    last_seq: Option<u32>,
    cmd_of_seq: Vec<usize>,
}

fn encode_full(tx: &Transaction) -> Result<Encoded, BatchError> {
    let mut e = Encoder {
        b: wire::Batch::new(),
        next_id: 0,
        sets: HashMap::new(),
        verdict_maps: &tx.verdict_maps,
        cmd_of_seq: vec![usize::MAX],
    };
    for (i, cmd) in tx.cmds.iter().enumerate() {
        let before = e.b.seq();
        e.cmd(cmd).map_err(|err| match err {
            BatchError::Unsupported(m) => BatchError::Unsupported(format!("command {i}: {m}")),
            other => other,
        })?;
        e.cmd_of_seq
            .resize(e.cmd_of_seq.len() + (e.b.seq() - before) as usize, i);
    }
    let (bytes, last_seq) = e.b.finish();
    Ok(Encoded {
        bytes,
        last_seq,
        cmd_of_seq: e.cmd_of_seq,
    })
}

/// The bytes of the whole batch (BATCH_BEGIN .. BATCH_END), or why it cannot be sent.
pub fn encode(tx: &Transaction) -> Result<Vec<u8>, BatchError> {
    encode_full(tx).map(|e| e.bytes)
}

/// Apply the transaction as one kernel transaction, in the current network namespace or
/// (for tools and tests) inside `/run/netns/NETNS` on a short-lived thread. Waits for the
/// kernel's answer; [`BatchError::Refused`] carries its errno.
pub fn apply(netns: Option<&str>, tx: &Transaction) -> Result<(), BatchError> {
    if tx.is_empty() {
        return Ok(());
    }
    let enc = encode_full(tx)?;
    let Some(last) = enc.last_seq else {
        return Ok(());
    };
    in_netns(netns, move || {
        transact(&enc.bytes, last).map_err(|e| match e {
            BatchError::Refused(m) => BatchError::Refused(describe(&m, &enc.cmd_of_seq, tx)),
            other => other,
        })
    })
}

/// "errno (message N)" -> which command that was.
fn describe(m: &str, cmd_of_seq: &[usize], tx: &Transaction) -> String {
    let seq = m
        .rsplit_once("(message ")
        .and_then(|(_, s)| s.trim_end_matches(')').parse::<usize>().ok());
    match seq
        .and_then(|s| cmd_of_seq.get(s))
        .filter(|&&i| i != usize::MAX)
    {
        Some(&i) => format!("{m}: {}", tx.cmds[i].summary()),
        None => m.to_string(),
    }
}

trait Summary {
    fn summary(&self) -> String;
}

impl Summary for nftables::schema::NfCmd<'_> {
    fn summary(&self) -> String {
        let s = serde_json::to_string(self).unwrap_or_default();
        match s.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s,
        }
    }
}

/// Run `f` in the current network namespace, or in `netns` on a thread of its own
/// (`setns` changes the namespace of the calling thread only).
pub(crate) fn in_netns<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> Result<T, BatchError> + Send,
) -> Result<T, BatchError> {
    let Some(ns) = netns else {
        return f();
    };
    crate::netlink::on_netns_thread(ns, f).map_err(|e| BatchError::Netns(ns.to_string(), e))?
}

/// Send one batch and wait for its answer. Only the message numbered `last_seq` asks for
/// an ACK, and the kernel reports every refused message: so a batch that succeeded
/// answers once, and thousands of commands do not queue thousands of ACKs (which would
/// overflow the socket's receive buffer). The kernel processes a batch inside `send`,
/// so by the time it returns every answer is queued.
pub(crate) fn transact(buf: &[u8], last_seq: u32) -> Result<(), BatchError> {
    const NLMSG_ERROR: u16 = 2;
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    // Errors quote only the header of the refused message, not all of it.
    let _ = socket.set_cap_ack(true);
    // The whole batch travels in one datagram, which the send buffer must hold.
    if buf.len() > 128 * 1024 {
        let size = buf.len() + 64 * 1024;
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBufForce, &size)
            .or_else(|_| {
                nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBuf, &size)
            })
            .map_err(std::io::Error::from)?;
    }
    // Never wait forever for an answer that does not come.
    let timeout = nix::sys::time::TimeVal::new(10, 0);
    let _ =
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout);
    socket.send(buf, 0)?;

    let mut first_error: Option<String> = None;
    let mut saw_last = false;
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let done = saw_last || first_error.is_some();
        // Once the answer is known, only drain what is already queued.
        let flags = if done { libc_dontwait() } else { 0 };
        let n = match socket.recv(&mut &mut rx[..], flags) {
            Ok(n) => n,
            Err(e) if done && e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        };
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(rx[off..off + 4].try_into().unwrap_or_default()) as usize;
            let ty = u16::from_ne_bytes([rx[off + 4], rx[off + 5]]);
            let seq = u32::from_ne_bytes(rx[off + 8..off + 12].try_into().unwrap_or_default());
            if len < 16 {
                break;
            }
            if ty == NLMSG_ERROR && off + 20 <= n {
                let code =
                    i32::from_ne_bytes(rx[off + 16..off + 20].try_into().unwrap_or_default());
                if code != 0 && first_error.is_none() {
                    first_error = Some(format!(
                        "{} (message {seq})",
                        std::io::Error::from_raw_os_error(-code)
                    ));
                }
                if seq == last_seq {
                    saw_last = true;
                }
            }
            off += (len + 3) & !3;
        }
    }
    match first_error {
        Some(e) => Err(BatchError::Refused(e)),
        None => Ok(()),
    }
}

fn libc_dontwait() -> i32 {
    nix::sys::socket::MsgFlags::MSG_DONTWAIT.bits()
}

#[cfg(test)]
mod tests;
