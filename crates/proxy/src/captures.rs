//! The directory of evidence captures, kept within a budget.
//!
//! Every refusal may come with a capture, so a flood of refused connections or
//! datagrams (a scan of an L7-gated port, a misbehaving client in a loop) would write a
//! file for each: without bounds, the node's disk fills and the proxy spends its time
//! writing evidence nobody reads. So the directory holds at most `max_bytes` (the oldest
//! files go first, whichever part of the agent wrote them), and new captures are
//! admitted at `rate` per second on average with bursts of `burst` (a token bucket);
//! beyond that an event goes without one, and the number skipped is counted.
//! File names carry the run (the time the agent started), so a restarted agent, whose
//! connection numbers start again from 1, never overwrites the evidence of older events.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a node keeps by default: 256 MiB of captures, 20 new ones a second, bursts of 200.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
pub const DEFAULT_RATE: f64 = 20.0;
pub const DEFAULT_BURST: f64 = 200.0;

#[derive(Debug)]
pub struct Captures {
    dir: PathBuf,
    run: u64,
    max_bytes: u64,
    rate: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Files on disk, oldest first, with their sizes.
    files: VecDeque<(PathBuf, u64)>,
    total: u64,
    tokens: f64,
    last: Instant,
    skipped: u64,
}

impl Captures {
    /// The captures in `dir` (created if need be), counting the files already there
    /// (oldest first by modification time) against the budget.
    pub fn open(dir: PathBuf, max_bytes: u64, rate: f64, burst: f64) -> Captures {
        let mut old: Vec<(SystemTime, PathBuf, u64)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let p = e.path();
                (m.is_file() && p.extension().is_some_and(|x| x == "pcap"))
                    .then(|| (m.modified().unwrap_or(UNIX_EPOCH), p, m.len()))
            })
            .collect();
        old.sort();
        let c = Captures {
            dir,
            run: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            max_bytes,
            rate,
            burst,
            state: Mutex::new(State {
                total: old.iter().map(|f| f.2).sum(),
                files: old.into_iter().map(|(_, p, n)| (p, n)).collect(),
                tokens: burst,
                last: Instant::now(),
                skipped: 0,
            }),
        };
        let mut s = c.lock();
        c.evict(&mut s);
        drop(s);
        c
    }

    /// The defaults above.
    pub fn with_defaults(dir: PathBuf) -> Captures {
        Captures::open(dir, DEFAULT_MAX_BYTES, DEFAULT_RATE, DEFAULT_BURST)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evict(&self, s: &mut State) {
        while s.total > self.max_bytes {
            let Some((p, n)) = s.files.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&p);
            s.total -= n;
        }
    }

    /// Writes a capture named `KIND-RUN-ID-WHAT.pcap` with `write`; None when the rate
    /// is spent or the file cannot be written (the event goes on without it).
    pub fn write(
        &self,
        kind: &str,
        id: u64,
        what: &str,
        write: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Option<PathBuf> {
        {
            let mut s = self.lock();
            let now = Instant::now();
            let refill = now.duration_since(s.last).as_secs_f64() * self.rate;
            s.tokens = (s.tokens + refill).min(self.burst);
            s.last = now;
            if s.tokens < 1.0 {
                s.skipped += 1;
                return None;
            }
            s.tokens -= 1.0;
        }
        std::fs::create_dir_all(&self.dir).ok()?;
        let path = self
            .dir
            .join(format!("{kind}-{}-{id}-{what}.pcap", self.run));
        if let Err(e) = write(&path) {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the capture");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let n = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut s = self.lock();
        s.files.push_back((path.clone(), n));
        s.total += n;
        self.evict(&mut s);
        // Kept only if the budget holds it (a single file larger than it does not stay).
        s.files
            .back()
            .is_some_and(|(p, _)| *p == path)
            .then_some(path)
    }

    /// Counts a capture another writer made in the directory (the response rules'
    /// tcpdump files), so that it is kept within the same budget.
    pub fn adopt(&self, path: &Path) {
        let n = std::fs::metadata(path).map_or(0, |m| m.len());
        let mut s = self.lock();
        s.files.push_back((path.to_path_buf(), n));
        s.total += n;
        self.evict(&mut s);
    }

    /// Captures not written because the rate was spent.
    pub fn skipped(&self) -> u64 {
        self.lock().skipped
    }

    /// Bytes on disk, as counted.
    pub fn bytes(&self) -> u64 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bytes(n: usize) -> impl FnOnce(&Path) -> io::Result<()> {
        move |p| std::fs::write(p, vec![0u8; n])
    }

    #[test]
    fn the_oldest_captures_go_first_and_old_runs_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conn-1-1-request.pcap"), [0u8; 300]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), [0u8; 5000]).unwrap();
        let c = Captures::open(dir.path().to_path_buf(), 1000, 1000.0, 1000.0);
        assert_eq!(c.bytes(), 300);
        let a = c.write("conn", 1, "request", write_bytes(400)).unwrap();
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("conn-")
        );
        assert_ne!(
            a,
            dir.path().join("conn-1-1-request.pcap"),
            "a new run, a new name"
        );
        let b = c.write("udp", 2, "request", write_bytes(400)).unwrap();
        // 300 + 400 + 400 > 1000: the old run's file went.
        assert!(!dir.path().join("conn-1-1-request.pcap").exists());
        assert!(a.exists() && b.exists() && dir.path().join("notes.txt").exists());
        assert_eq!(c.bytes(), 800);
        // A file larger than the whole budget is not kept.
        assert_eq!(c.write("conn", 3, "x", write_bytes(2000)), None);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_flood_is_admitted_at_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let c = Captures::open(dir.path().to_path_buf(), 1 << 30, 0.001, 5.0);
        let written = (0..50)
            .filter(|&i| c.write("udp", i, "request", write_bytes(10)).is_some())
            .count();
        assert_eq!(written, 5, "the burst, then nothing until tokens come back");
        assert_eq!(c.skipped(), 45);
    }
}
