//! The built-in responder that runs in lab workloads (`bulkhead lab serve`): it answers
//! on every TCP and UDP port it is given, on IPv4 and IPv6 (one dual-stack socket each),
//! naming the workload so a probe, `curl` or `nc` sees who answered.
//!
//! - TCP: when the first bytes look like an HTTP request, a valid HTTP/1.1 `200`;
//!   otherwise (or when the client says nothing for a moment) one banner line.
//!   With `--http`, HTTP/1.1 only, with keep-alive.
//! - UDP: each datagram is answered with the workload's name and the datagram.
//! - SCTP: no sockets exist in this kernel; SCTP ports are skipped (probes see SCTP
//!   packets arrive with a raw socket instead, see `probe`).
//!
//! Plain threads, one per socket and connection: a lab workload serves a handful of
//! connections at a time, and this keeps the program small and obviously correct.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bulkhead_model::Protocol;
use socket2::{Domain, Socket, Type};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeArgs {
    /// `namespace/name`, shown in every answer.
    pub workload: String,
    pub listen: Vec<(Protocol, u16)>,
    /// Speak HTTP/1.1 only on TCP.
    pub http: bool,
    /// A file created once every socket is bound.
    pub ready: Option<PathBuf>,
}

pub const USAGE: &str = "usage: serve --workload NAMESPACE/NAME [--listen tcp:PORT|udp:PORT]... [--http] [--ready FILE]";

impl ServeArgs {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut out = ServeArgs::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |what: &str| it.next().with_context(|| format!("{a} needs {what}"));
            match a.as_str() {
                "--workload" => out.workload = value("a name")?,
                "--listen" => out.listen.push(parse_listen(&value("PROTO:PORT")?)?),
                "--ready" => out.ready = Some(value("a file")?.into()),
                "--http" => out.http = true,
                _ => bail!("unknown argument {a:?}\n{USAGE}"),
            }
        }
        if out.workload.is_empty() {
            bail!("--workload is required\n{USAGE}");
        }
        Ok(out)
    }

    /// The command-line arguments that give back `self`.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec!["--workload".to_string(), self.workload.clone()];
        for (p, port) in &self.listen {
            v.push("--listen".into());
            v.push(format!("{}:{port}", p.as_str().to_ascii_lowercase()));
        }
        if self.http {
            v.push("--http".into());
        }
        if let Some(r) = &self.ready {
            v.push("--ready".into());
            v.push(r.display().to_string());
        }
        v
    }
}

fn parse_listen(s: &str) -> Result<(Protocol, u16)> {
    let (p, port) = s
        .split_once(':')
        .with_context(|| format!("--listen {s:?}: expected PROTO:PORT such as tcp:80"))?;
    let p: Protocol = p.parse().map_err(anyhow::Error::msg)?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .with_context(|| format!("--listen {s:?}: {port:?} is not a port"))?;
    Ok((p, port))
}

/// Entry point of `bulkhead lab serve ARGS` and of `bulkhead-lab-serve`: runs until
/// killed. Returns the process exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> i32 {
    match ServeArgs::parse(args).and_then(|a| serve(&a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bulkhead lab serve: {e:#}");
            1
        }
    }
}

pub fn serve(args: &ServeArgs) -> Result<()> {
    let name: Arc<str> = args.workload.as_str().into();
    let mut threads = Vec::new();
    let mut bound = Vec::new();
    for &(proto, port) in &args.listen {
        match proto {
            Protocol::Tcp => bound.push(Bound::Tcp(tcp_listener(port)?, port)),
            Protocol::Udp => bound.push(Bound::Udp(udp_socket(port)?, port)),
            _ => eprintln!("{proto}/{port}: no {proto} sockets in this kernel; not listening"),
        }
    }
    if let Some(ready) = &args.ready {
        std::fs::write(ready, b"ready\n")
            .with_context(|| format!("writing {}", ready.display()))?;
    }
    eprintln!("{name}: serving {:?}", args.listen);
    for b in bound {
        let name = name.clone();
        let http = args.http;
        threads.push(std::thread::spawn(move || match b {
            Bound::Tcp(l, port) => accept_loop(&l, port, &name, http),
            Bound::Udp(s, port) => echo_loop(&s, port, &name),
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    // No sockets (only SCTP ports, or none): stay alive anyway, the workload "runs".
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

enum Bound {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

/// `[::]:port`, dual-stack: one socket answers IPv4 and IPv6.
fn dual_stack(ty: Type, port: u16) -> Result<Socket> {
    let s = Socket::new(Domain::IPV6, ty, None)?;
    s.set_only_v6(false)?;
    s.set_reuse_address(true)?;
    let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    s.bind(&addr.into())
        .with_context(|| format!("binding port {port}"))?;
    Ok(s)
}

pub fn tcp_listener(port: u16) -> Result<TcpListener> {
    let s = dual_stack(Type::STREAM, port).with_context(|| format!("TCP/{port}"))?;
    s.listen(1024)?;
    Ok(s.into())
}

pub fn udp_socket(port: u16) -> Result<UdpSocket> {
    Ok(dual_stack(Type::DGRAM, port)
        .with_context(|| format!("UDP/{port}"))?
        .into())
}

fn accept_loop(l: &TcpListener, port: u16, name: &Arc<str>, http: bool) {
    loop {
        match l.accept() {
            Ok((stream, _)) => {
                let name = name.clone();
                std::thread::spawn(move || {
                    let _ = answer_tcp(stream, port, &name, http);
                });
            }
            Err(e) => {
                eprintln!("TCP/{port}: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The answer to a non-HTTP client: one line.
pub fn banner(name: &str, port: u16) -> String {
    format!("bulkhead-lab {name} TCP/{port}\n")
}

fn answer_tcp(mut s: TcpStream, port: u16, name: &str, http: bool) -> std::io::Result<()> {
    // A client that speaks first (HTTP, a probe) is answered at once; one that waits
    // for the server to speak gets the banner after a short pause.
    s.set_read_timeout(Some(Duration::from_millis(if http { 10_000 } else { 300 })))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) && buf.is_empty() && !http => {
                return s.write_all(banner(name, port).as_bytes());
            }
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        if !looks_like_http(&buf) {
            if http {
                return s.write_all(&http_response(400, name, "not an HTTP request", false));
            }
            return s.write_all(banner(name, port).as_bytes());
        }
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            if buf.len() > 64 * 1024 {
                return s.write_all(&http_response(431, name, "headers too large", false));
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let body_len = content_length(&head);
        let keep = http && keep_alive(&head);
        // Skip the request body, if any, before answering (keeps keep-alive in sync).
        let mut have = buf.len() - (end + 4);
        while have < body_len {
            match s.read(&mut chunk)? {
                0 => return Ok(()),
                n => have += n,
            }
        }
        let detail = format!("{request_line} TCP/{port}");
        s.write_all(&http_response(200, name, &detail, keep))?;
        if !keep {
            return Ok(());
        }
        buf.clear();
    }
}

/// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told
/// to keep it.
fn keep_alive(head: &str) -> bool {
    let lower = head.to_ascii_lowercase();
    let version_11 = lower
        .lines()
        .next()
        .is_some_and(|l| l.ends_with("http/1.1"));
    let says = |v: &str| {
        lower
            .lines()
            .filter_map(|l| l.split_once(':'))
            .any(|(k, val)| k.trim() == "connection" && val.trim() == v)
    };
    if version_11 {
        !says("close")
    } else {
        says("keep-alive")
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

const METHODS: &[&str] = &[
    "GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
];

/// Whether `buf` starts like an HTTP request (or could, when it is still short).
pub fn looks_like_http(buf: &[u8]) -> bool {
    METHODS.iter().any(|m| {
        let m = m.as_bytes();
        let n = buf.len().min(m.len());
        buf[..n] == m[..n]
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn http_response(code: u16, name: &str, detail: &str, keep_alive: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        _ => "Request Header Fields Too Large",
    };
    let body = format!("{name}\n{detail}\n");
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\nX-Bulkhead-Workload: {name}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn echo_loop(s: &UdpSocket, port: u16, name: &str) {
    let mut buf = [0u8; 2048];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let mut reply = format!("bulkhead-lab {name} UDP/{port}: ").into_bytes();
                reply.extend_from_slice(&buf[..n.min(512)]);
                let _ = s.send_to(&reply, peer);
            }
            Err(e) => {
                eprintln!("UDP/{port}: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let a = ServeArgs {
            workload: "x/a".into(),
            listen: vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)],
            http: true,
            ready: Some("/tmp/r".into()),
        };
        assert_eq!(ServeArgs::parse(a.to_args()).unwrap(), a);
        assert!(ServeArgs::parse(["--listen".into(), "tcp:0".into()]).is_err());
        assert!(ServeArgs::parse(["--bogus".into()]).is_err());
    }

    #[test]
    fn keep_alive_follows_the_http_version() {
        assert!(keep_alive("GET / HTTP/1.1\r\nHost: a"));
        assert!(!keep_alive("GET / HTTP/1.1\r\nConnection: close"));
        assert!(!keep_alive("GET / HTTP/1.0\r\nHost: a"));
        assert!(keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive"));
    }

    #[test]
    fn http_is_recognised_from_the_first_bytes() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"PO"));
        assert!(!looks_like_http(b"bulkhead-probe\n"));
        let r = String::from_utf8(http_response(200, "x/a", "GET / TCP/80", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.ends_with("\r\n\r\nx/a\nGET / TCP/80\n"));
        assert!(r.contains("Content-Length: 17\r\n"));
    }

    #[test]
    fn answers_on_loopback() {
        // Ports from the kernel's ephemeral range: no clash with anything listening.
        let l = tcp_listener(0).unwrap();
        let port = l.local_addr().unwrap().port();
        let name: Arc<str> = "x/a".into();
        std::thread::spawn(move || accept_loop(&l, port, &name, false));
        let mut c = TcpStream::connect(("::1", port)).unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(
            got.starts_with("HTTP/1.1 200 OK") && got.contains("GET /x HTTP/1.1"),
            "{got}"
        );
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, banner("x/a", port));

        let u = udp_socket(0).unwrap();
        let uport = u.local_addr().unwrap().port();
        std::thread::spawn(move || echo_loop(&u, uport, "x/a"));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.send_to(b"hello", ("127.0.0.1", uport)).unwrap();
        let mut buf = [0u8; 256];
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            format!("bulkhead-lab x/a UDP/{uport}: hello").as_bytes()
        );
    }
}
