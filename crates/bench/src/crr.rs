//! A TCP_CRR-style loop (connect, request, response, close) measuring new connections
//! per second: the cost a firewall adds to each new connection. netperf is not packaged
//! in Debian main, so this is the same measurement in a few lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::{Domain, Socket, Type};

/// Accept forever; answer one byte per connection and close.
pub fn server(port: u16) -> Result<()> {
    let l = TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port)))?;
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            if s.read(&mut b).is_ok() {
                let _ = s.write_all(b"y");
            }
        });
    }
    Ok(())
}

/// Run `threads` loops against `target` for `seconds`; return connections per second.
/// The client closes with SO_LINGER 0 (a reset), as netperf's CRR effectively does, so
/// no TIME_WAIT state exhausts ephemeral ports during the run.
pub fn client(target: SocketAddr, seconds: f64, threads: usize) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match one(target) {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} connections failed");
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

fn one(target: SocketAddr) -> std::io::Result<()> {
    let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    s.set_linger(Some(Duration::ZERO))?;
    s.connect_timeout(&target.into(), Duration::from_secs(2))?;
    let mut s: TcpStream = s.into();
    s.write_all(b"x")?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(())
}
