//! What the root tests share: the cgroup, commands in a namespace, connections.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bulkhead_lab::netns;

pub const PORT: u16 = 6379;
pub use bulkhead_sockops::NOPERM;

/// The cgroup v2 hierarchy (the unified one on a hybrid host).
pub fn cgroup2() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .map(|f| PathBuf::from(f[1]))
        .expect("a cgroup2 mount")
}

pub fn sh(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{args:?} failed in {ns}");
}

/// A connection from `from` to the server, made inside the namespace.
pub fn connect(ns: &str, from: impl Into<IpAddr>, server: impl Into<IpAddr>) -> TcpStream {
    let (from, server) = (from.into(), server.into());
    netns::enter(ns, || {
        let domain = if server.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        s.bind(&SocketAddr::from((from, 0)).into())?;
        s.connect(&SocketAddr::from((server, PORT)).into())?;
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(s)
    })
    .unwrap()
}

pub fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A number in 20..220 that no other test process holds while this lives: the third
/// byte of a test's addresses. The socket path's programs sit on the root cgroup and
/// take every socket whose addresses their tables cover, in whatever network namespace,
/// so two tests running at once with the same addresses would take each other's
/// connections (a connection of one test redirected into the other's server: the
/// client got no answer). An exclusive `flock` per number, released when the process
/// ends however it ends.
pub struct Subnet {
    pub n: u8,
    _held: nix::fcntl::Flock<std::fs::File>,
}

pub fn subnet() -> Subnet {
    let dir = std::env::temp_dir().join("bulkhead-sockops-test-nets");
    std::fs::create_dir_all(&dir).unwrap();
    let start = std::process::id();
    for i in 0..200u32 {
        let n = ((start + i) % 200 + 20) as u8;
        let f = std::fs::File::create(dir.join(n.to_string())).unwrap();
        if let Ok(held) = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            return Subnet { n, _held: held };
        }
    }
    panic!("every test subnet is held by another test process");
}
