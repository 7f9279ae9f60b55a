//! A fast hasher for the static keyword tables (SQL words, shell programs).
//!
//! Every word of every inspected value is looked up, and std's SipHash cost a visible
//! share of the whole sensor. SipHash's keying defends a table that attackers insert
//! into; these tables are built once from constant lists and only read, so a request
//! cannot lengthen any probe chain, and a plain multiplicative hash is enough.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap`/`HashSet` state for the static word tables.
pub type WordState = BuildHasherDefault<WordHasher>;
