//! Sending a UDP client its answers from the address it wrote to (a server's, not the
//! node's), as the server would.
//!
//! Each server address has one kept socket, bound transparently to it and marked, that
//! sends every answer and refusal to its clients. Opening, marking, binding and closing
//! a socket per answer was eight system calls per datagram, and most of the proxy's
//! cost per DNS query; a kept socket sends with one.
//!
//! A kept socket is never connected and so never receives: TPROXY hands a diverted
//! datagram to a *connected* socket of its addresses if there is one, and otherwise to
//! the proxy's listener (its established lookup passes over unconnected sockets), so a
//! socket bound to the server's address does not take the client's next datagram.
//! Except at an address of the node itself (a node-local DNS cache): there a socket
//! bound to the server's port would share it with the server and could take datagrams
//! sent to the server, so such answers go out on a socket of their own, as before.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::udp::{domain, transparent};

/// Server addresses with a kept socket at most (one descriptor each).
const MAX_KEPT: usize = 1024;
/// A socket unused for this long makes way when the table is full.
const IDLE: Duration = Duration::from_secs(60);

pub(crate) struct Answers {
    mark: u32,
    kept: Mutex<HashMap<SocketAddr, Kept>>,
}

struct Kept {
    /// None: the address is the node's own (see the module's docs).
    socket: Option<Arc<UdpSocket>>,
    used: Instant,
}

impl Answers {
    /// Answers sent with `mark` (the proxy's own traffic, which the divert chain passes).
    pub(crate) fn new(mark: u32) -> Answers {
        Answers {
            mark,
            kept: Mutex::default(),
        }
    }

    /// Sends `data` to `to` from `from`. A full socket buffer drops the datagram, as a
    /// network would.
    pub(crate) fn send(&self, from: SocketAddr, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        self.socket(from)?.send_to(data, to)?;
        Ok(())
    }

    fn socket(&self, from: SocketAddr) -> io::Result<Arc<UdpSocket>> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let socket = match kept.get_mut(&from) {
            Some(k) => {
                k.used = now;
                k.socket.clone()
            }
            None => {
                if kept.len() >= MAX_KEPT {
                    kept.retain(|_, k| now.duration_since(k.used) < IDLE);
                }
                let socket = if node_address(from) {
                    None
                } else {
                    Some(Arc::new(open(from, self.mark)?))
                };
                // Still full of busy servers: this one's answer goes out on a socket
                // of its own.
                if kept.len() < MAX_KEPT {
                    let k = Kept {
                        socket: socket.clone(),
                        used: now,
                    };
                    kept.insert(from, k);
                }
                socket
            }
        };
        drop(kept);
        match socket {
            Some(s) => Ok(s),
            None => Ok(Arc::new(open(from, self.mark)?)),
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.lock().unwrap().len()
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        let kept = self.kept.lock().unwrap();
        kept.values().filter(|k| k.socket.is_some()).count()
    }
}

/// Is `from`'s address one of the node's own? (A plain socket binds only to those.)
fn node_address(from: SocketAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(from.ip(), 0)).is_ok()
}

/// A transparent socket bound to `from` (shared with other sockets of that address:
/// a flow's or a TCP connection's never conflict with it).
fn open(from: SocketAddr, mark: u32) -> io::Result<UdpSocket> {
    let s = transparent(domain(from.is_ipv6()), from.is_ipv6())?;
    s.set_mark(mark)?;
    s.bind(&from.into())?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs CAP_NET_ADMIN (IP_TRANSPARENT, SO_MARK); on loopback only.
    fn privileged() -> bool {
        transparent(socket2::Domain::IPV4, false)
            .and_then(|s| s.set_mark(1))
            .is_ok()
    }

    #[test]
    fn one_socket_per_server_address_sends_every_answer() {
        if !privileged() {
            return crate::unprivileged("IP_TRANSPARENT");
        }
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let to = client.local_addr().unwrap();
        // Addresses that are not this host's: sent from all the same.
        let answers = Answers::new(0);
        let servers: Vec<SocketAddr> = vec![
            "127.0.0.1:45353".parse().unwrap(),
            "127.0.0.2:45354".parse().unwrap(),
        ];
        for round in 0..3u8 {
            for (i, s) in servers.iter().enumerate() {
                answers.send(*s, to, &[round, i as u8]).unwrap();
                let mut buf = [0u8; 8];
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&[round, i as u8][..], *s));
            }
        }
        // Loopback is the node's own: each answer had a socket of its own, none kept
        // open where a server of the node may listen.
        assert_eq!(answers.open(), 0);
        assert_eq!(answers.kept(), 2);
    }

    /// A server of the node itself that shares its port (SO_REUSEADDR, as DNS servers
    /// set it): the proxy answering for it must not take the datagrams sent to it.
    #[test]
    fn a_server_on_the_node_keeps_its_datagrams() {
        if !privileged() {
            return crate::unprivileged("IP_TRANSPARENT");
        }
        let server =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        server.set_reuse_address(true).unwrap();
        server
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let server: UdpSocket = server.into();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let at = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let answers = Answers::new(0);
        answers
            .send(at, client.local_addr().unwrap(), b"answer")
            .unwrap();
        for i in 0..3u8 {
            client.send_to(&[i], at).unwrap();
            let mut buf = [0u8; 4];
            let (n, _) = server.recv_from(&mut buf).expect("the server's datagram");
            assert_eq!(&buf[..n], &[i]);
        }
    }
}
