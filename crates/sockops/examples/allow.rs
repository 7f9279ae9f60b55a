//! Attach the socket path for one server and allow a list of commands to one client
//! address, until interrupted; then print the counters. For benchmarks by hand:
//!
//! ```sh
//! cargo run --release -p bulkhead-sockops --example allow -- \
//!     /sys/fs/cgroup/unified 127.0.0.1:6390 127.0.0.1 GET,SET,PING
//! redis-benchmark -p 6390 -t get,set      # meanwhile
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;

use anyhow::{Context, Result};
use bulkhead_sockops::RedisPath;
use nix::sys::signal::{SigSet, Signal};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, cgroup, server, client, commands] = args.as_slice() else {
        anyhow::bail!("usage: allow CGROUP2_DIR SERVER_IP:PORT CLIENT_IP COMMAND,COMMAND...");
    };
    let server: SocketAddrV4 = server.parse().context("SERVER_IP:PORT")?;
    let client: Ipv4Addr = client.parse().context("CLIENT_IP")?;
    let path = RedisPath::attach(Path::new(cgroup))?;
    path.add_server(IpAddr::V4(*server.ip()), server.port())?;
    // A client on the server's own address is the same identity.
    let (c, s) = if client == *server.ip() {
        (1, 1)
    } else {
        (1, 2)
    };
    path.set_identity(IpAddr::V4(client), c)?;
    path.set_identity(IpAddr::V4(*server.ip()), s)?;
    path.set_table(c, s, server.port(), 1)?;
    for name in commands.split(',') {
        path.set_verdict(1, Some(name), bulkhead_sockops::Verdict::Allow)?;
    }
    path.set_verdict(1, None, bulkhead_sockops::Verdict::Refuse)?;
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block()?;
    eprintln!("attached; Ctrl-C to stop");
    stop.wait()?;
    eprintln!("{:?}", path.counters()?);
    Ok(())
}
