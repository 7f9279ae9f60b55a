//! Vouching: how a server's node knows that a client's node decided a connection.
//!
//! A client on one node and a Redis server on another: the client's node can decide
//! every command at the client's socket (the bytes then go on by TCP), but the server's
//! node sends every SYN to its L7 proxy unless it knows the connection was decided.
//! Trusting the client's address alone would let through, undecided, a connection the
//! client node's programs did not take (the agents apply a policy change at different
//! moments; a pod may craft packets). So the client node's `sockops` program writes a
//! TCP option into the SYN of each connection it takes: kind 253 (RFC 6994 experiment id
//! `0xB1C0`), an 8-byte SipHash-2-4 tag, under a key the nodes share and pods never see,
//! of the two addresses, ports, initial sequence number and a 2.1 s epoch of TAI time.
//! The server node's `tc` ingress program recomputes it and marks the SYN when it
//! matches (this epoch or the one before) and was not seen in the last epochs (a
//! replayed SYN, or the client's own retransmission, takes the proxy); its nftables
//! decide what a marked SYN may skip. No option, a wrong or replayed tag: the proxy, as
//! before. `experiments/synmark` measured the mechanism on its own.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags, TcHook, TcHookBuilder};

use crate::RedisPath;

impl RedisPath {
    /// Vouch for every connection this path takes, with `key`, and mark the SYNs
    /// [`RedisPath::vouch_ingress`] verifies with `mark` (not 0).
    pub fn set_vouching(&self, key: [u8; 16], mark: u32) -> Result<()> {
        let map = crate::map(&self.obj, "vouch")?;
        map.update(&0u32.to_ne_bytes(), &key, MapFlags::ANY)
            .context("setting the vouching key")?;
        let mut cfg = [0u8; 16];
        cfg[..8].copy_from_slice(&u64::from(mark).to_ne_bytes());
        map.update(&1u32.to_ne_bytes(), &cfg, MapFlags::ANY)
            .context("setting the vouching mark")
    }

    /// Check the SYNs that arrive on interface `ifindex` of the caller's network
    /// namespace (a node's links to other nodes) until the returned guard is dropped.
    pub fn vouch_ingress(&self, ifindex: i32) -> Result<Ingress> {
        let prog = self
            .obj
            .progs()
            .find(|p| p.name() == "vouched")
            .context("BPF program vouched missing")?;
        let ingress = Ingress {
            prog: prog.as_fd().try_clone_to_owned()?,
            ifindex,
        };
        let mut hook = ingress.hook();
        // The clsact qdisc may be there already (another filter, an earlier run).
        let _ = hook.create();
        hook.attach()
            .with_context(|| format!("attaching the SYN check to interface {ifindex}"))?;
        Ok(ingress)
    }
}

/// The SYN check on one interface; detached on drop (in the network namespace the
/// dropping thread is in: a namespace that goes takes its filters with it).
pub struct Ingress {
    prog: OwnedFd,
    ifindex: i32,
}

impl Ingress {
    fn hook(&self) -> TcHook {
        TcHookBuilder::new(self.prog.as_fd())
            .ifindex(self.ifindex)
            .replace(true)
            .handle(0xb1c0)
            .priority(1)
            .hook(libbpf_rs::TC_INGRESS)
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.hook().detach();
    }
}
