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

/// Connect to `server` as `client` (its address, any port), marked `mark`.
pub async fn connect_as(
    client: SocketAddr,
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
    // Port 0: the client's own port is taken by the diverted connection's conntrack entry
    // (same addresses, same destination).
    let mut from = client;
    from.set_port(0);
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
