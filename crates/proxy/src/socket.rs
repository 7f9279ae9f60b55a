//! Transparent sockets. A TPROXY'd connection arrives at a listener with `IP_TRANSPARENT`;
//! the accepted socket's local address is the connection's original destination. The
//! proxy's own connection to that destination binds (transparently) to the client's
//! address, so the server sees the real client, and carries `PROXY_MARK`, so the node's
//! output chain lets it through (the proxy has decided) and it is never diverted again.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A transparent listener on `port` for one address family (`[::]` is IPv6 only, so
/// IPv4 and IPv6 each get their own: TPROXY needs the family of the packet).
pub fn listen(port: u16, v6: bool) -> io::Result<TcpListener> {
    TcpListener::from_std(listen_std(port, v6, false)?)
}

/// The same as a std listener (no runtime needed), with `SO_REUSEPORT` when `shared`:
/// each proxy thread then has its own listener and the kernel spreads connections over
/// them (TPROXY's listener lookup honours the reuseport group).
pub fn listen_std(port: u16, v6: bool, shared: bool) -> io::Result<std::net::TcpListener> {
    let (domain, addr): (Domain, SocketAddr) = if v6 {
        (Domain::IPV6, (std::net::Ipv6Addr::UNSPECIFIED, port).into())
    } else {
        (Domain::IPV4, (std::net::Ipv4Addr::UNSPECIFIED, port).into())
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    set_transparent(&s, v6)?;
    if v6 {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    if shared {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    // Accepted sockets inherit it: no system call per connection to turn Nagle off.
    s.set_tcp_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn set_transparent(s: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        s.set_ip_transparent_v6(true)
    } else {
        s.set_ip_transparent_v4(true)
    }
}

/// The ports the proxy's connections take on a client's address: below the range Linux
/// clients pick their own ports from (32768-60999 unless changed), so that a port held
/// by the proxy's connection to a server is never the one the client picks for its next
/// connection to that server through this node. That connection would have the same
/// addresses and ports as the proxy's: its SYN would land in the proxy's connection
/// (conntrack and the server both know it already) and be reset. Not below 1024: some
/// servers take lower source ports for privileged ones.
///
/// Two halves, for connections that two proxies take in turn (the client's node learns
/// the protocol, the server's node enforces its L7 rules): the second proxy's clients
/// are the first proxy's connections, so each proxy takes the half its client's port is
/// not in. A proxy whose clients are applications takes the lower half; one whose
/// clients are proxies, the upper; the two never pick each other's ports.
const HALVES: [(u16, u16); 2] = [(1024, 16383), (16384, 32767)];
/// Ports tried before the kernel chooses (a client with this many of the proxy's
/// connections to one server is rare; the kernel's choice is the old behaviour).
const ATTEMPTS: u32 = 32;

/// The ports for a connection from a client at port `client_port`.
fn ports_for(client_port: u16) -> (u16, u16) {
    let (lower, upper) = (HALVES[0], HALVES[1]);
    if (lower.0..=lower.1).contains(&client_port) {
        upper
    } else {
        lower
    }
}

/// The ports to try for a connection or flow from a client at `client_port`, in turn:
/// [`ATTEMPTS`] of [`ports_for`]'s half, spread over it (a multiplicative hash of a
/// counter), so that concurrent connections from one client rarely try the same port.
pub(crate) fn ports(client_port: u16) -> impl Iterator<Item = u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (low, high) = ports_for(client_port);
    let span = u32::from(high - low) + 1;
    let start = NEXT
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B1)
        >> 17;
    (0..ATTEMPTS).map(move |i| low + ((start + i * 7919) % span) as u16)
}

/// Connect to `server` as `client` (its address, a port of [`ports`]), marked `mark`.
pub async fn connect_as(
    client: SocketAddr,
    server: SocketAddr,
    mark: u32,
) -> io::Result<TcpStream> {
    for port in ports(client.port()) {
        match connect_from(client, port, server, mark).await {
            // Taken on this address (bound, or the same four-tuple in TIME_WAIT).
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    || e.kind() == io::ErrorKind::AddrNotAvailable => {}
            r => return r,
        }
    }
    connect_from(client, 0, server, mark).await
}

async fn connect_from(
    client: SocketAddr,
    port: u16,
    server: SocketAddr,
    mark: u32,
) -> io::Result<TcpStream> {
    let v6 = server.is_ipv6();
    let s = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    {
        let r = SockRef::from(&s);
        set_transparent_ref(&r, v6)?;
        r.set_mark(mark)?;
    }
    // Not the client's own port: the diverted connection's conntrack entry has it (same
    // addresses, same destination). SO_REUSEADDR: one port serves connections to
    // different servers (connect refuses a four-tuple in use).
    s.set_reuseaddr(true)?;
    let mut from = client;
    from.set_port(port);
    s.bind(from)?;
    s.set_nodelay(true)?;
    s.connect(server).await
}

fn set_transparent_ref(r: &SockRef<'_>, v6: bool) -> io::Result<()> {
    if v6 {
        r.set_ip_transparent_v6(true)
    } else {
        r.set_ip_transparent_v4(true)
    }
}

/// Close with a TCP reset (SO_LINGER 0): clients fail fast, as with the kernel's
/// `reject with tcp reset`.
pub fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the proxy relays is not held back for Nagle's algorithm, on the client's
    /// side either: the listener's TCP_NODELAY is inherited by every accepted socket.
    #[test]
    fn accepted_connections_have_nagle_off() {
        let listener = match listen_std(0, false, false) {
            Ok(l) => l,
            // IP_TRANSPARENT needs CAP_NET_ADMIN.
            Err(e) => return crate::unprivileged(format!("a transparent listener: {e}")),
        };
        listener.set_nonblocking(false).unwrap();
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn a_proxy_after_a_proxy_takes_the_other_half() {
        // An application's port (the kernel's range, or a low one it chose).
        assert_eq!(ports_for(45_000), HALVES[0]);
        assert_eq!(ports_for(80), HALVES[0]);
        // A first proxy's port: the second proxy takes the other half, and back.
        assert_eq!(ports_for(HALVES[0].0), HALVES[1]);
        assert_eq!(ports_for(HALVES[0].1), HALVES[1]);
        assert_eq!(ports_for(HALVES[1].0), HALVES[0]);
    }
}
