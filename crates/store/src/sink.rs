//! The writer thread: records sent from any thread are committed in batches (what
//! arrived since the previous commit, at least [`LINGER`] before, up to [`BATCH`]), and
//! retention runs between batches, one bounded step at a time, so pruning never stalls
//! ingest for long. [`Sink::flush`] waits until everything sent before it is committed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use crate::{Error, Record, Result, Retention, Store};

/// Most records per transaction: bounds the time a reader waits and the memory held.
pub const BATCH: usize = 4096;
/// Records that may wait for the writer before `send` blocks (back-pressure).
const QUEUE: usize = 65_536;
/// Quiet for this long: the conversations aggregated so far are written.
const IDLE: Duration = Duration::from_secs(1);
/// Least time between two commits (unless a flush waits): bounds how stale a query's
/// answer can be, and keeps transactions to at most 40 a second under a trickle.
const LINGER: Duration = Duration::from_millis(25);
/// How often retention looks at the store when nothing is due.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

enum Msg {
    Record(Record),
    Flush(mpsc::Sender<()>),
}

/// Counters of the writer thread.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub written: AtomicU64,
    /// Records lost to a failed write (the batch is dropped; the next is tried).
    pub failed: AtomicU64,
    pub pruned: AtomicU64,
    /// The last write error, for the agent's status (None once a write succeeds again).
    pub last_error: std::sync::Mutex<Option<String>>,
}

pub struct Sink {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<SinkStats>,
}

impl Sink {
    /// Open the store and start its writer thread.
    pub fn open(path: &Path, retention: Retention) -> Result<Sink> {
        let store = Store::open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let stats = Arc::new(SinkStats::default());
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || run(store, rx, retention, &st))
            .map_err(|e| Error::Closed(format!("cannot start the writer thread: {e}")))?;
        Ok(Sink {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Queue a record (blocks only while the queue is full).
    pub fn send(&self, r: Record) -> Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(Msg::Record(r)).ok())
            .ok_or_else(|| Error::Closed("the writer thread stopped".into()))
    }

    /// Wait until every record sent before is committed (or failed).
    pub fn flush(&self) -> Result<()> {
        let (done, wait) = mpsc::channel();
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(Msg::Flush(done)).ok())
            .and_then(|()| wait.recv().ok())
            .ok_or_else(|| Error::Closed("the writer thread stopped".into()))
    }
}

impl Drop for Sink {
    /// Commit what is queued, then stop the thread.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut store: Store, rx: Receiver<Msg>, retention: Retention, stats: &SinkStats) {
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<mpsc::Sender<()>> = Vec::new();
    let mut next_prune = Instant::now();
    let mut pruning = true;
    let mut last_commit = Instant::now()
        .checked_sub(LINGER)
        .unwrap_or_else(Instant::now);
    loop {
        let timeout = if pruning {
            Duration::ZERO
        } else {
            next_prune
                .saturating_duration_since(Instant::now())
                .min(IDLE)
        };
        let (mut open, mut idle) = (true, false);
        match rx.recv_timeout(timeout) {
            Ok(m) => take(m, &mut batch, &mut waiting),
            Err(RecvTimeoutError::Timeout) => idle = !pruning,
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        // Under a steady trickle (a few thousand connections a second) a transaction
        // per record or two cost the writer ~100 us a record, and a transaction costs
        // about as much for a hundred: so commits are at least LINGER apart, and what
        // arrives meanwhile joins the batch. A record after a quiet spell (or with a
        // flush waiting) is committed at once. Sleeping, not waiting on the channel: a
        // waiting receiver is woken by every send, which cost as much again.
        let since = last_commit.elapsed();
        if open && waiting.is_empty() && !batch.is_empty() && since < LINGER {
            std::thread::sleep(LINGER - since);
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, &mut batch, &mut waiting),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            last_commit = Instant::now();
            let n = batch.len() as u64;
            match store.write(&batch) {
                Ok(()) => {
                    *stats.last_error.lock().unwrap() = None;
                    stats.written.fetch_add(n, Ordering::Relaxed)
                }
                Err(e) => {
                    warn!(error = %e, records = n, "cannot store records");
                    *stats.last_error.lock().unwrap() = Some(e.to_string());
                    stats.failed.fetch_add(n, Ordering::Relaxed)
                }
            };
            batch.clear();
        }
        // Idle, asked to flush, or stopping: the graph's sums are written too.
        if (!waiting.is_empty() || !open || idle)
            && let Err(e) = store.commit_conversations()
        {
            warn!(error = %e, "cannot store conversations");
        }
        for w in waiting.drain(..) {
            let _ = w.send(());
        }
        if !open {
            return;
        }
        if pruning || Instant::now() >= next_prune {
            match store.prune(&retention, SystemTime::now()) {
                Ok(p) => {
                    stats
                        .pruned
                        .fetch_add(p.flows + p.events, Ordering::Relaxed);
                    pruning = p.more;
                }
                Err(e) => {
                    warn!(error = %e, "cannot prune the store");
                    pruning = false;
                }
            }
            if !pruning {
                next_prune = Instant::now() + PRUNE_EVERY;
            }
        }
    }
}

fn take(m: Msg, batch: &mut Vec<Record>, waiting: &mut Vec<mpsc::Sender<()>>) {
    match m {
        Msg::Record(r) => batch.push(r),
        Msg::Flush(w) => waiting.push(w),
    }
}
