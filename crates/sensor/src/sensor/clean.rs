//! Header values the attack detectors already judged clean, remembered by a keyed hash.
//!
//! Browsers send the same `User-Agent` (and often the same `Referer`, custom client
//! headers) on every request, and such a value costs the detectors microseconds: it
//! holds `(`, `;`, `/`, so it always passes the cheap first filter. The detectors are
//! pure functions of the value, so a value once found clean is clean again; this table
//! lets the next request skip them.
//!
//! Why this is safe: only values on which every enabled detector ran and found nothing
//! are stored, per sensor (so per attack set); the key is SipHash under a random
//! per-sensor key ([`RandomState`]), so nobody can craft a value that collides with a
//! cached one; a slot holds the full 64-bit hash, so an unrelated value that lands on
//! the same slot misses. The table is direct-mapped and lock-free (relaxed atomics: a
//! racing write only loses an entry), bounded at [`SLOTS`] entries, and a value that
//! keeps changing (an attacker varying headers) only ever costs what it cost before.

use std::hash::BuildHasher;
use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};

/// Table size: a few hundred distinct clients' headers fit; 8 KiB per sensor.
const SLOTS: usize = 1024;

/// Values longer than this are not remembered: hashing is then a real cost, and such
/// headers are rare.
pub const MAX_LEN: usize = 1024;

pub struct CleanCache {
    key: RandomState,
    slots: Box<[AtomicU64]>,
}

impl std::fmt::Debug for CleanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CleanCache")
    }
}

impl Default for CleanCache {
    fn default() -> Self {
        CleanCache {
            key: RandomState::new(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl CleanCache {
    /// The value's tag (never 0, which marks an empty slot).
    pub fn tag(&self, value: &[u8]) -> u64 {
        self.key.hash_one(value) | 1
    }

    pub fn contains(&self, tag: u64) -> bool {
        self.slots[tag as usize % SLOTS].load(Ordering::Relaxed) == tag
    }

    pub fn insert(&self, tag: u64) {
        self.slots[tag as usize % SLOTS].store(tag, Ordering::Relaxed);
    }
}
