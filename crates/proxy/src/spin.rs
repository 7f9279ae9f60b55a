//! Busy polling for a while after each wake-up, instead of sleeping at once.
//!
//! A request through the proxy wakes it twice (the request, then the server's answer).
//! On a virtual machine a thread that sleeps lets its vCPU halt, and waking a halted vCPU
//! is a trip through the hypervisor: tens of microseconds at the tail, per wake-up. A
//! server's answer usually comes within ~100 us of the request, so a proxy thread that
//! keeps polling its sockets (zero-timeout `epoll_wait`) for that long after waking
//! takes the answer without a second wake-up. HAProxy's `busy-polling` does the same
//! without a bound (a whole CPU, always); here it is bounded per wake-up, so an idle
//! proxy sleeps and a loaded one never parks long enough to spin.
//!
//! Built on tokio's own loop: a task that yields is deferred, and a runtime with a
//! deferred task polls its driver without blocking (`park_yield`) instead of parking.
//! The task spins for the window after each real unpark (`on_thread_unpark`), giving
//! the CPU to other threads between polls (`sched_yield`), so a server on the same CPU
//! is not kept waiting by the proxy's spinning. Measured alternatives (BENCHMARKS.md,
//! "Busy polling"): no yields kept servers waiting (+100 us at the median on 2 vCPUs); a
//! yield every 25 us, or an idle-priority thread keeping the CPU awake instead, took
//! most of the gain away. The cost of yielding: a CPU that another cgroup's busy thread
//! shares is handed to it for a time slice (with an idle-priority spinner on every CPU,
//! p99 of 1.1-2.4 ms in one of four full runs at 150 us and in all three at 300 us),
//! which is why this is off by default.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// One runtime's spinner: the hook for `on_thread_unpark` and the task to spawn.
pub(crate) struct Spin {
    wake: Arc<Notify>,
    window: Duration,
}

impl Spin {
    pub(crate) fn new(window: Duration) -> Spin {
        Spin {
            wake: Arc::new(Notify::new()),
            window,
        }
    }

    /// For `Builder::on_thread_unpark`: called on the runtime's thread each time it wakes
    /// from a real park.
    pub(crate) fn hook(&self) -> impl Fn() + Send + Sync + 'static {
        let wake = self.wake.clone();
        move || wake.notify_one()
    }

    /// The spinning task (spawn it on the runtime whose hook this is).
    pub(crate) async fn run(self) {
        loop {
            self.wake.notified().await;
            let until = Instant::now() + self.window;
            while Instant::now() < until {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    /// Reads two bytes written 30 ms apart, the first after the runtime went to sleep;
    /// answers how many times it went to sleep between the two, and after the second.
    fn parks_between_and_after(window: Duration) -> (usize, usize) {
        let parks = Arc::new(AtomicUsize::new(0));
        let spin = (!window.is_zero()).then(|| Spin::new(window));
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        let counted = parks.clone();
        b.on_thread_park(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        if let Some(s) = &spin {
            b.on_thread_unpark(s.hook());
        }
        let rt = b.build().unwrap();
        let (mut writer, reader) = std::os::unix::net::UnixStream::pair().unwrap();
        reader.set_nonblocking(true).unwrap();
        rt.block_on(async {
            if let Some(s) = spin {
                tokio::spawn(s.run());
            }
            let mut reader = tokio::net::UnixStream::from_std(reader).unwrap();
            let w = std::thread::spawn(move || {
                for b in [b"1", b"2"] {
                    std::thread::sleep(Duration::from_millis(30));
                    writer.write_all(b).unwrap();
                }
                writer
            });
            let mut byte = [0u8];
            reader.read_exact(&mut byte).await.unwrap();
            let first = parks.load(Ordering::SeqCst);
            reader.read_exact(&mut byte).await.unwrap();
            let second = parks.load(Ordering::SeqCst);
            tokio::time::sleep(window + Duration::from_millis(50)).await;
            let _writer = w.join().unwrap();
            (second - first, parks.load(Ordering::SeqCst) - second)
        })
    }

    #[test]
    fn bytes_soon_after_a_wake_up_are_taken_without_sleeping_again() {
        let (between, after) = parks_between_and_after(Duration::from_millis(300));
        assert_eq!(between, 0, "slept while it should have been polling");
        assert!(after >= 1, "kept polling past its window");
        let (between, _) = parks_between_and_after(Duration::ZERO);
        assert!(between >= 1, "without busy polling it sleeps in between");
    }
}
