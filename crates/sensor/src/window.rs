//! Long values judged whole. Each detector reads a bounded window of a value (so its
//! cost is bounded too); a value longer than that is judged window by window after the
//! first, the windows overlapping so an attack across a cut is whole in one of them.
//! Without this, padding ahead of an attack (8 KiB of text, or 256 harmless tokens)
//! pushed it out of sight while the application read the value whole.

/// The windows of `v` after its first: `size` bytes each, one starting every `step`
/// bytes, the last ending where `v` does.
pub(crate) fn rest(v: &[u8], size: usize, step: usize) -> impl Iterator<Item = &[u8]> {
    let n = if v.len() <= size {
        0
    } else {
        (v.len() - size).div_ceil(step)
    };
    (1..=n).map(move |i| &v[i * step..(i * step + size).min(v.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every stretch no longer than the overlap (`size - step`) lies whole in the
        /// first window or in one of the rest, and no window is longer than `size`.
        #[test]
        fn every_short_stretch_is_whole_in_a_window(
            // a stretch of n bytes at `at`, inside a value of `len` (made so, not filtered:
            // no rejects at any PROPTEST_CASES)
            (len, at, n) in (1usize..64).prop_flat_map(|n| {
                (n..3000usize).prop_flat_map(move |len| (Just(len), 0..=len - n, Just(n)))
            })
        ) {
            let (size, step) = (256, 128);
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            prop_assert!(n <= size - step);
            let first = at + n <= size;
            let later = rest(&v, size, step).any(|w| {
                let start = w.as_ptr() as usize - v.as_ptr() as usize;
                start <= at && at + n <= start + w.len()
            });
            prop_assert!(first || later);
            prop_assert!(rest(&v, size, step).all(|w| w.len() <= size));
        }
    }
}
