//! Read buffers, reused by the connections of a proxy thread.
//!
//! Each connection reads through two 16 KiB buffers. Allocated and zeroed anew, they
//! were about 5 % of the proxy's CPU under connection-per-request load. Each proxy
//! thread runs its own single-threaded runtime, so a thread-local free list needs no
//! lock, and a connection's buffers return to the thread that runs it.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// The size of every buffer.
pub(crate) const READ: usize = 16 * 1024;

/// Free buffers a thread keeps (1 MiB): enough for a burst of short connections.
const KEEP: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A [`READ`]-byte buffer; what an earlier connection left in it is overwritten by
/// reads before it is looked at (callers only look at `buf[..n]` after a read of `n`).
pub(crate) struct Buf(Box<[u8]>);

impl Buf {
    pub(crate) fn new() -> Self {
        let reused = FREE.try_with(|f| f.borrow_mut().pop()).ok().flatten();
        Buf(reused.unwrap_or_else(|| vec![0u8; READ].into_boxed_slice()))
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let b = std::mem::take(&mut self.0);
        // During thread exit the list may be gone: then the buffer is simply freed.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEEP {
                f.push(b);
            }
        });
    }
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_reused_whole() {
        let mut a = Buf::new();
        a[0] = 7;
        let p = a.as_ptr();
        drop(a);
        let b = Buf::new();
        assert_eq!(b.as_ptr(), p, "the freed buffer comes back");
        assert_eq!(b.len(), READ);
    }
}
