//! Closing connections that stay silent, without a timer operation per read.
//!
//! A connection is idle when no bytes moved either way for the whole idle timeout
//! (600 s by default), not when it has lived that long: a database connection or a pub/sub
//! subscriber may live for days. Arming a fresh timer for every read (insert into the
//! timer wheel, remove on the next read) showed up on the Redis path, where each read
//! is one small command; here the read only stores the time, and the one timer is re-armed
//! when it fires early.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// When a connection last moved bytes. (An atomic, not a `Cell`: the connection's future
/// holds a reference across awaits and must stay `Send`.)
pub(crate) struct Idle {
    timeout: Duration,
    start: Instant,
    /// Nanoseconds from `start` to the last time bytes moved.
    last: AtomicU64,
}

impl Idle {
    pub fn new(timeout: Duration) -> Idle {
        Idle {
            timeout,
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Bytes moved: the connection is not idle.
    pub fn touch(&self) {
        let ns = self.start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.last.store(ns, Relaxed);
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the connection goes idle if nothing moves until then.
    fn due(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Relaxed)) + self.timeout
    }

    /// The timer for [`Idle::expired`].
    pub fn timer(&self) -> Pin<Box<Sleep>> {
        Box::pin(tokio::time::sleep_until(self.due()))
    }

    /// Completes once nothing moved for the whole timeout; `timer` from [`Idle::timer`].
    pub async fn expired(&self, timer: &mut Pin<Box<Sleep>>) {
        loop {
            timer.as_mut().await;
            let due = self.due();
            if Instant::now() >= due {
                return;
            }
            timer.as_mut().reset(due);
        }
    }
}

/// A stream whose reads and writes touch an [`Idle`] (for `copy_bidirectional`).
pub(crate) struct Touching<'a, S> {
    pub inner: &'a mut S,
    pub idle: &'a Idle,
}

impl<S> Touching<'_, S> {
    fn touch<T>(&self, p: &Poll<io::Result<T>>) {
        if matches!(p, Poll::Ready(Ok(_))) {
            self.idle.touch();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Touching<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut *self.inner).poll_read(cx, buf);
        self.touch(&p);
        p
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Touching<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut *self.inner).poll_write(cx, buf);
        self.touch(&p);
        p
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Copy both ways until both sides are done (half-closes forwarded) or nothing moved
/// for `timeout`: bytes each way, or None if it went idle.
pub(crate) async fn splice<A, B>(
    a: &mut A,
    b: &mut B,
    timeout: Duration,
) -> io::Result<Option<(u64, u64)>>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let idle = Idle::new(timeout);
    let mut timer = idle.timer();
    let mut a = Touching {
        inner: a,
        idle: &idle,
    };
    let mut b = Touching {
        inner: b,
        idle: &idle,
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut a, &mut b) => r.map(Some),
        _ = idle.expired(&mut timer) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.unwrap(), s.unwrap().0)
    }

    /// client <-> (a | splice | b) <-> server, over loopback.
    async fn spliced(
        timeout: Duration,
    ) -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<io::Result<Option<(u64, u64)>>>,
    ) {
        let (client, mut a) = pair().await;
        let (mut b, server) = pair().await;
        let task = tokio::spawn(async move { splice(&mut a, &mut b, timeout).await });
        (client, server, task)
    }

    #[tokio::test]
    async fn a_busy_connection_outlives_the_idle_timeout() {
        let timeout = Duration::from_millis(200);
        let (mut client, mut server, task) = spliced(timeout).await;
        let start = std::time::Instant::now();
        let mut buf = [0u8; 4];
        // Five times the timeout, a message every half timeout, alternating directions.
        for i in 0..10u32 {
            tokio::time::sleep(timeout / 2).await;
            if i % 2 == 0 {
                client.write_all(&i.to_be_bytes()).await.unwrap();
                server.read_exact(&mut buf).await.unwrap();
            } else {
                server.write_all(&i.to_be_bytes()).await.unwrap();
                client.read_exact(&mut buf).await.unwrap();
            }
            assert_eq!(buf, i.to_be_bytes());
        }
        assert!(start.elapsed() > timeout * 4);
        drop(client);
        drop(server);
        let r = task.await.unwrap().unwrap();
        assert_eq!(r, Some((20, 20)));
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_timeout() {
        let timeout = Duration::from_millis(200);
        let (mut client, _server, task) = spliced(timeout).await;
        client.write_all(b"hi").await.unwrap();
        let start = std::time::Instant::now();
        let r = task.await.unwrap().unwrap();
        assert_eq!(r, None);
        let took = start.elapsed();
        assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
        assert!(took < timeout * 3, "{took:?}");
    }

    #[tokio::test]
    async fn idle_expires_only_after_a_quiet_timeout() {
        let idle = Idle::new(Duration::from_millis(150));
        let mut timer = idle.timer();
        let start = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle.touch();
        idle.expired(&mut timer).await;
        // Touched at ~100 ms: expires at ~250, not at 150.
        assert!(
            start.elapsed() >= Duration::from_millis(240),
            "{:?}",
            start.elapsed()
        );
    }
}
