//! Values the sensor already judged clean, remembered by a keyed hash: head lines in
//! which every attack detector and DLP found nothing, and values (a path, the page a
//! `Referer` names, a cookie) every attack detector found clean.
//!
//! Browsers send the same `User-Agent`, `Accept` and `Cookie` lines on every request,
//! and the same few pages as `Referer`, and such a value costs the detectors
//! microseconds: it holds `(`, `;`, `/`, so it always passes the cheap first filter. The
//! checks are pure functions of the line or value, so one found clean once is clean
//! again; these tables let the next request skip them.
//!
//! Why this is safe: only values on which every enabled check ran and found nothing
//! are stored, per sensor (so per attack set); a slot holds the value's full tag, so an
//! unrelated value that lands on the same slot misses; and the tag is a hash under a
//! random per-sensor key that nobody outside the process sees, so nobody can craft a
//! value whose tag equals a cached one (see [`CleanCache::tag`] for the bound). The
//! table is two-way and lock-free (relaxed atomics: a racing write only loses an
//! entry), bounded at [`SLOTS`] entries, and a value that keeps changing (an attacker
//! varying headers) only ever costs what it cost before.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Table size: a few hundred distinct clients' headers fit; 8 KiB per sensor.
const SLOTS: usize = 1024;

/// Values longer than this are not remembered: hashing is then a real cost, and such
/// headers are rare.
pub const MAX_LEN: usize = 1024;

/// The Mersenne prime 2^61 - 1: the field the tag is computed in.
const P: u64 = (1 << 61) - 1;

pub struct CleanCache {
    /// The secret evaluation point, uniform in `[1, P)`.
    key: u64,
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
            key: random_key(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A key uniform in `[1, P)` from the process's random source (the one std's
/// `RandomState` seeds SipHash from, fresh per call).
fn random_key() -> u64 {
    loop {
        let r = RandomState::new().hash_one(0u8) & P;
        if r != 0 && r != P {
            return r;
        }
    }
}

/// `x mod P` for `x < 2^62`, fully reduced.
fn reduce(x: u64) -> u64 {
    let s = (x & P) + (x >> 61);
    if s >= P { s - P } else { s }
}

/// One step of Horner's rule, `h * r + m (mod P)`, reduced only partly: for
/// `h < 2^61 + 8`, `r < 2^61` and `m < 2^56` the product is below `2^123`, its two
/// 61-bit halves plus `m` below `2^63`, and the result again below `2^61 + 8`.
fn step(h: u64, r: u64, m: u64) -> u64 {
    let p = u128::from(h) * u128::from(r);
    // 2^61 = 1 (mod P): p = hi * 2^61 + lo = hi + lo.
    let x = ((p as u64) & P) + (p >> 61) as u64 + m;
    (x & P) + (x >> 61)
}

impl CleanCache {
    /// The value's tag (never 0, which marks an empty slot).
    ///
    /// A polynomial evaluated at the secret key `r` over GF(2^61 - 1) (Carter-Wegman):
    /// the coefficients are the length and then the value's 7-byte pieces,
    /// `len * r^n + m_1 * r^(n-1) + ... + m_n`, by Horner's rule. Two different values
    /// of at most [`MAX_LEN`] bytes give two different polynomials of degree at most
    /// `n = ceil(len / 7) <= 147` (the length leads, and fixes the degree), whose
    /// difference has at most 147 roots, so for a key drawn uniformly the tags agree
    /// with probability at most 147 / (2^61 - 2), under 2^-53 per pair (the tag is
    /// the reduced value plus one: nonzero, and no two values merged, as `| 1` would
    /// merge two values whose polynomials differ by the constant 1, such as one byte
    /// that differs in its low bit, for half of all keys). A request whose value must
    /// match one of at most [`SLOTS`] cached tags thus succeeds with probability under
    /// 2^-43, whatever value it sends;
    /// what the sender learns from a miss (that `r` is not a root of one polynomial)
    /// does not raise the odds of the next try. About two instructions per byte
    /// (SipHash took three times that, and was most of a cached header's cost).
    pub fn tag(&self, value: &[u8]) -> u64 {
        let r = self.key;
        let n = value.len();
        let mut h = reduce(n as u64);
        let mut i = 0;
        let mut w = [0u8; 8];
        // 7-byte pieces, each read as 8 bytes and masked while 8 remain.
        while i + 8 <= n {
            w.copy_from_slice(&value[i..i + 8]);
            h = step(h, r, u64::from_le_bytes(w) & ((1 << 56) - 1));
            i += 7;
        }
        while i < n {
            let k = (n - i).min(7);
            w = [0u8; 8];
            w[..k].copy_from_slice(&value[i..i + k]);
            h = step(h, r, u64::from_le_bytes(w));
            i += k;
        }
        reduce(h) + 1
    }

    /// The pair of slots a tag may sit in, first way first.
    fn ways(tag: u64) -> (usize, usize) {
        let i = (tag as usize % SLOTS) & !1;
        (i, i + 1)
    }

    pub fn contains(&self, tag: u64) -> bool {
        let (a, b) = Self::ways(tag);
        self.slots[a].load(Ordering::Relaxed) == tag || self.slots[b].load(Ordering::Relaxed) == tag
    }

    /// Into the first way of the tag's pair, the value there moving to the second:
    /// two values that repeat on every request (`User-Agent`, `Accept`) and share a
    /// pair both stay, where a direct-mapped slot made them evict each other on every
    /// request (and left the instruction count of a whole run up to the key).
    pub fn insert(&self, tag: u64) {
        let (a, b) = Self::ways(tag);
        let old = self.slots[a].swap(tag, Ordering::Relaxed);
        if old != tag && old != 0 {
            self.slots[b].store(old, Ordering::Relaxed);
        }
    }
}

/// What one request's header lines were found to be, for the clean-line cache: a
/// line is remembered only when the attack detectors saw all of its values and found
/// nothing, and DLP found nothing in it, raw or decoded.
pub struct HeadLines {
    /// Each line's tag, by line number (0: not looked up).
    tags: [u64; HeadLines::MAX],
    /// Bit `n`: line `n` was in the cache.
    known: u64,
    /// Bit `n`: the attack detectors saw every value of line `n` (or there are none).
    checked: u64,
    /// Bit `n`: a detector found something in line `n`, or did not run on it.
    dirty: u64,
    /// Bit `n`: DLP found nothing in line `n`.
    dlp_clean: u64,
}

impl Default for HeadLines {
    fn default() -> Self {
        HeadLines {
            tags: [0; HeadLines::MAX],
            known: 0,
            checked: 0,
            dirty: 0,
            dlp_clean: 0,
        }
    }
}

impl HeadLines {
    /// Lines past this many are never remembered (a head has a dozen).
    const MAX: usize = 64;

    /// Was this header line found clean by an earlier request? Looked up once per
    /// line, by whichever pass asks first.
    pub fn known_clean(&mut self, cache: &CleanCache, n: usize, line: &[u8]) -> bool {
        // Line 0 (the request line) changes every time; a folded continuation line
        // means something else under another field name, so it is never judged alone.
        if n == 0 || n >= Self::MAX || line.len() > MAX_LEN {
            return false;
        }
        if line.first().is_some_and(|c| matches!(c, b' ' | b'\t')) {
            return false;
        }
        if self.tags[n] == 0 {
            self.tags[n] = cache.tag(line);
            if cache.contains(self.tags[n]) {
                self.known |= 1 << n;
            }
        }
        self.known & (1 << n) != 0
    }

    /// [`Self::known_clean`] for the attack pass, which cuts up the line when not.
    pub fn attack_skip(&mut self, cache: &CleanCache, n: usize, line: &[u8]) -> bool {
        let known = self.known_clean(cache, n, line);
        if !known && n < Self::MAX {
            self.checked |= 1 << n;
        }
        known
    }

    pub fn dirty(&mut self, n: usize) {
        if n < Self::MAX {
            self.dirty |= 1 << n;
        }
    }

    /// Did DLP find line `n` clean, now or in an earlier request?
    pub fn dlp_quiet(&self, n: usize) -> bool {
        n < Self::MAX && (self.known | self.dlp_clean) & (1 << n) != 0
    }

    pub fn dlp_clean(&mut self, n: usize) {
        if n < Self::MAX {
            self.dlp_clean |= 1 << n;
        }
    }

    /// A sensor without attack classes (or without DLP) has nothing to find there.
    pub fn no_attacks(&mut self) {
        self.checked = !0;
    }

    pub fn no_dlp(&mut self) {
        self.dlp_clean = !0;
    }

    /// Store the lines found clean now (and not already known).
    pub fn remember(&self, cache: &CleanCache) {
        let new = self.checked & !self.dirty & self.dlp_clean & !self.known;
        for (n, &tag) in self.tags.iter().enumerate() {
            if tag != 0 && new & (1 << n) != 0 {
                cache.insert(tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: u64, value: &[u8]) -> u64 {
        // The same polynomial, one 7-byte piece at a time, in u128 arithmetic.
        let p = u128::from(P);
        let mut h = value.len() as u128;
        for piece in value.chunks(7) {
            let mut w = [0u8; 8];
            w[..piece.len()].copy_from_slice(piece);
            h = (h * u128::from(key) + u128::from(u64::from_le_bytes(w))) % p;
        }
        (h as u64) + 1
    }

    #[test]
    fn tag_is_the_polynomial() {
        let c = CleanCache::default();
        assert!(c.key > 0 && c.key < P);
        let long: Vec<u8> = (0..=255u8).cycle().take(1500).collect();
        for len in 0..long.len() {
            assert_eq!(c.tag(&long[..len]), reference(c.key, &long[..len]), "{len}");
        }
        for key in [1, 2, P - 1, P - 2, 1 << 60, (1 << 61) - 3] {
            let c = CleanCache {
                key,
                slots: Box::new([]),
            };
            for v in [&b""[..], b"\xff", &[0xff; 64], b"User-Agent: x\r\n"] {
                assert_eq!(c.tag(v), reference(key, v));
            }
        }
    }

    /// Values whose polynomials differ by the constant 1 (the low bit of the first
    /// byte of the last piece) keep different tags under every key; with the low bit
    /// of the tag forced to 1, half of these keys merged them.
    #[test]
    fn a_low_bit_changes_the_tag() {
        for key in (1..=64).chain([P - 1, P - 2]) {
            let c = CleanCache {
                key,
                slots: Box::new([]),
            };
            for (a, b) in [
                (&b"("[..], &b")"[..]),
                (b",", b"-"),
                (b"abcdefg<", b"abcdefg="),
                (b"abcdefg:x", b"abcdefg;x"),
            ] {
                assert_ne!(c.tag(a), c.tag(b), "key {key}");
            }
        }
    }

    #[test]
    fn leading_zero_pieces_and_lengths_differ() {
        let c = CleanCache::default();
        let tags: std::collections::HashSet<u64> = (0..64)
            .map(|n| c.tag(&vec![0u8; n]))
            .chain([c.tag(b"a"), c.tag(b"\0a"), c.tag(b"a\0")])
            .collect();
        assert_eq!(tags.len(), 67);
    }

    #[test]
    fn stores_and_finds() {
        let c = CleanCache::default();
        let t = c.tag(b"Mozilla/5.0");
        assert!(!c.contains(t));
        c.insert(t);
        assert!(c.contains(t));
        assert!(!c.contains(c.tag(b"Mozilla/5.1")));
    }
}
