//! Where a built-in DLP match can be, found without the regex.
//!
//! The regex over all kinds runs at a few MB/s on text full of digits and `@`-free
//! words (the counted repetitions of the card and e-mail patterns keep the lazy DFA
//! busy), so it only runs on windows around a *trigger* every built-in match
//! contains: an `@` (e-mail), a run of nine digits or more with single `-`/space
//! separators (card, SSN), or one of the [`LITERALS`] (key ids, key headers). Each window covers the longest
//! match its trigger can belong to, and overlapping windows are merged, so scanning
//! the windows finds exactly what scanning everything finds. Hand-written because a
//! digit-run counter is a loop, not a pattern.

/// Bytes an SSN keyword (`social security number`, punctuation) can precede its
/// digits by.
const KEYWORD_BEFORE: usize = 40;
const EMAIL_BEFORE: usize = 65;
const EMAIL_AFTER: usize = 1 + 10 * 64 + 25;

/// Literal triggers, with how far before and after the literal's start its longest
/// match can reach (see `builtin_patterns`): AWS key ids; `BEGIN` of PEM private key
/// headers (`-----` before it; up to three words of at most 12 characters before
/// `PRIVATE KEY`, `%20` separators: 96 bytes) and of ssh.com's `---- BEGIN SSH2 ...
/// PRIVATE KEY ----` (`----%20` before it); PuTTY's `.ppk` first line, by the part
/// after `PuTTY`. Occurrences are taken leftmost first, without overlaps, as one
/// multi-literal search reports them (`AKIAKIA` holds one).
pub(super) const LITERALS: [(&[u8], usize, usize); 4] = [
    (b"AKIA", 1, 21),
    (b"ASIA", 1, 21),
    (b"BEGIN", 7, 91),
    (b"-User-Key-File-", 5, 64),
];

/// Sorted, merged `[start, end)` windows of `data` that can hold a built-in match.
///
/// One pass with the byte classes of [`trigger_pass`]: a digit starts a run (digits,
/// each pair at most one `-`/space apart), `@` an e-mail window, a literal its window. Bytes a run takes (digits, separators between two digits) can
/// start none of the others.
pub fn windows(data: &[u8]) -> Vec<(usize, usize)> {
    if data.len() >= LONG {
        return windows_long(data);
    }
    let n = data.len();
    let mut w: Vec<(usize, usize)> = Vec::new();
    let mut add = |s: usize, e: usize| w.push((s, e.min(n)));
    let mut i = 0;
    while i < n {
        let c = CLASS[data[i] as usize];
        if c & DIGIT != 0 {
            // `data[i]`, which ended the run, is read again below.
            (_, i) = read_run(data, i, &mut add);
            continue;
        }
        if c & AT != 0 {
            add(i.saturating_sub(EMAIL_BEFORE), i + EMAIL_AFTER + 1);
        } else if c & LITERAL != 0
            && let Some((lit, before, after)) =
                LITERALS.iter().find(|(lit, _, _)| literal_at(data, i, lit))
        {
            add(i.saturating_sub(*before), i + after);
            // No digit or `@` in a literal: nothing else starts inside it.
            i += lit.len();
            continue;
        }
        i += 1;
    }
    merge(w)
}

/// Whether `lit` starts at `i`. The second byte first: at most bytes (an `A` or `-` in a
/// header) it differs, and the whole comparison is a call.
#[inline(always)]
fn literal_at(data: &[u8], i: usize, lit: &[u8]) -> bool {
    data.get(i + 1) == Some(&lit[1]) && data[i..].starts_with(lit)
}

/// Sorted `[start, end)` windows, overlapping ones merged.
fn merge(mut w: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    w.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(w.len());
    for (s, e) in w {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// From this length on (bodies, not header lines) [`windows`] searches each trigger
/// with SIMD substring searches and finds digit runs 64 bytes at a time, instead of
/// reading every byte: on text the byte-by-byte pass costs some 3 ns a byte.
const LONG: usize = 256;

/// [`windows`] for long data: `@` by `memchr`, the [`LITERALS`] by one packed
/// (Teddy) search, and the digit runs by [`digit_runs`].
fn windows_long(data: &[u8]) -> Vec<(usize, usize)> {
    use aho_corasick::{AhoCorasick, MatchKind, packed};
    use std::sync::LazyLock;
    // Teddy: one SIMD pass for all the literals (a substring search each would cost a
    // pass per literal); where the CPU has no Teddy, an automaton with the same
    // leftmost-first semantics.
    enum Search {
        Packed(packed::Searcher),
        Automaton(AhoCorasick),
    }
    static SEARCH: LazyLock<Search> = LazyLock::new(|| {
        let lits = LITERALS.iter().map(|l| l.0);
        match packed::Searcher::new(lits.clone()) {
            Some(s) => Search::Packed(s),
            None => Search::Automaton(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(lits)
                    .expect("four short literals"),
            ),
        }
    });
    let n = data.len();
    let mut w: Vec<(usize, usize)> = Vec::new();
    let mut add = |s: usize, e: usize| w.push((s, e.min(n)));
    for p in memchr::memchr_iter(b'@', data) {
        add(p.saturating_sub(EMAIL_BEFORE), p + EMAIL_AFTER + 1);
    }
    let found: Box<dyn Iterator<Item = aho_corasick::Match>> = match &*SEARCH {
        Search::Packed(s) => Box::new(s.find_iter(data)),
        Search::Automaton(a) => Box::new(a.find_iter(data)),
    };
    for m in found {
        let (_, before, after) = LITERALS[m.pattern().as_usize()];
        add(m.start().saturating_sub(before), m.start() + after);
    }
    digit_runs(data, &mut add);
    merge(w)
}

/// Calls `add` with the window of every digit run of `data` (digits, each pair at most
/// one `-`/space apart) that holds nine digits or more.
///
/// Sixty-four bytes at a time, in three sieves, each cheaper than the next and each
/// letting through every block a run of nine can touch: a block without a digit (most
/// of prose) is passed over after one vectorised test; else a bit mask of its digits
/// says where a run could be (a digit, or a byte a digit follows: every byte of a run
/// is one), and a run of nine needs nine such bytes in a row, counting those that end
/// the blocks before; then the exact mask (digits, and blanks or dashes between two
/// digits). In a block that passes all three, each digit not yet read starts a run that
/// is read out both ways, exactly. The byte-by-byte reading this replaced took most of
/// an HTTP exchange's inspection time on prose, where blanks and digits come at random
/// and every test of a byte was a branch mispredicted.
fn digit_runs(data: &[u8], add: &mut impl FnMut(usize, usize)) {
    let n = data.len();
    let digit = |i: usize| data[i].is_ascii_digit();
    let sep = |i: usize| matches!(data[i], b' ' | b'-');
    // Bytes before this index are read (the end of the last run read out).
    let mut read = 0usize;
    // How many bytes that could be a run's end the blocks before (at least as many as
    // a run has there), and whether their last is a digit.
    let (mut tail, mut last_digit) = (0u32, false);
    let mut padded = [0u8; 64];
    for k in (0..n).step_by(64) {
        let block: &[u8; 64] = match data[k..].first_chunk() {
            Some(whole) => whole,
            None => {
                padded[..n - k].copy_from_slice(&data[k..]);
                &padded
            }
        };
        if !block.iter().fold(false, |any, c| any | c.is_ascii_digit()) {
            (tail, last_digit) = (0, false);
            continue;
        }
        let d = mask(block, |c| c.is_ascii_digit());
        let next_digit = u64::from(k + 64 < n && digit(k + 64)) << 63;
        let loose = d | (d >> 1) | next_digit;
        let before = tail;
        tail = if loose == u64::MAX {
            tail.saturating_add(64)
        } else {
            loose.leading_ones()
        };
        let had_digit = std::mem::replace(&mut last_digit, d >> 63 != 0);
        if !nine_in_a_row(loose, before) {
            continue;
        }
        let s = mask(block, |c| c == b' ' || c == b'-');
        let run = d | (s & ((d << 1) | u64::from(had_digit)) & ((d >> 1) | next_digit));
        if !nine_in_a_row(run, before) {
            continue;
        }
        // The digits a run read out in an earlier block took are read.
        let mut bits = match read.saturating_sub(k) {
            0 => d,
            r if r >= 64 => 0,
            r => d & (u64::MAX << r),
        };
        while bits != 0 {
            let at = k + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if at < read {
                continue;
            }
            let mut start = at;
            loop {
                if start > 0 && digit(start - 1) {
                    start -= 1;
                } else if start > 1 && sep(start - 1) && digit(start - 2) {
                    start -= 2;
                } else {
                    break;
                }
            }
            (read, _) = read_run(data, start, add);
        }
    }
}

/// Reads the digit run that starts at `start` (a digit) and calls `add` with its window
/// if it holds nine digits or more. Returns where its last digit ends and where reading
/// stopped (the byte that ended the run).
#[inline]
fn read_run(data: &[u8], start: usize, add: &mut impl FnMut(usize, usize)) -> (usize, usize) {
    let n = data.len();
    let (mut end, mut digits, mut j) = (start, 0, start);
    while j < n {
        if data[j].is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if matches!(data[j], b' ' | b'-') && data.get(j + 1).is_some_and(u8::is_ascii_digit)
        {
            j += 1;
        } else {
            break;
        }
    }
    if digits >= 9 {
        add(start.saturating_sub(KEYWORD_BEFORE + 1), end + 1);
    }
    (end, j)
}

/// Nine set bits in a row in `bits` (bit `j` for a block's byte `j`), or at its start
/// after `before` set bits that ended the blocks before. Each `&` of a shifted copy
/// keeps the bits that many more set bits follow: 2, 4, 8, then 9 in a row.
#[inline(always)]
fn nine_in_a_row(bits: u64, before: u32) -> bool {
    let mut nine = bits & (bits >> 1);
    nine &= nine >> 2;
    nine &= nine >> 4;
    nine &= nine >> 1;
    nine != 0 || before.saturating_add(bits.trailing_ones()) >= 9
}

/// The bytes of a block that `test` holds for, as 64 bits, bit `j` for byte `j`. The
/// compiler turns the test into vector compares that leave a 0 or 1 per byte; a
/// multiplication then gathers each eight bytes' bits into one byte (byte `i`'s bit
/// lands at bit 56 + `i` of the product, and no two partial products overlap). The
/// crate has no `unsafe`, so no `movemask` intrinsic; shifting each byte's bit into a
/// `u64` in a loop instead compiled into vectors slower than reading byte by byte.
#[inline(always)]
fn mask(block: &[u8; 64], test: impl Fn(u8) -> bool) -> u64 {
    let flags: [u8; 64] = std::array::from_fn(|j| u8::from(test(block[j])));
    let mut m = 0;
    for (i, word) in flags.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        m |= (w.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (i * 8);
    }
    m
}

/// Does `data` hold any trigger at all (so that [`windows`] is not empty)? With
/// `plus_is_blank`, a `+` also separates digits, so that `false` holds for the
/// form-decoded text (`+` -> blank) as well. No allocation: the common answer for a
/// header line, a URL or a form value is `false`.
#[cfg(test)]
pub fn any_trigger(data: &[u8], plus_is_blank: bool) -> bool {
    trigger_pass(data, plus_is_blank, false)
}

/// `true` when neither `data` nor its form/JSON-decoded form can hold a trigger: no
/// `%` or `\\` to decode and no trigger with `+` read as the blank it decodes to. One
/// pass: what `memchr2(b'%', b'\\', data).is_none() && !any_trigger(data, true)` says.
pub fn nothing_to_decode_or_find(data: &[u8]) -> bool {
    !trigger_pass(data, true, true)
}

/// What each byte can start or continue, for [`trigger_pass`]; 0 for most bytes.
const DIGIT: u8 = 1;
const SEP: u8 = 2;
const PLUS: u8 = 4;
const AT: u8 = 8;
/// The first byte of one of the [`LITERALS`].
const LITERAL: u8 = 16;
const ESCAPE: u8 = 64;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = DIGIT;
        c += 1;
    }
    t[b' ' as usize] = SEP;
    t[b'+' as usize] = PLUS;
    t[b'@' as usize] = AT;
    let mut k = 0;
    while k < LITERALS.len() {
        t[LITERALS[k].0[0] as usize] |= LITERAL;
        k += 1;
    }
    t[b'-' as usize] |= SEP;
    t[b'%' as usize] = ESCAPE;
    t[b'\\' as usize] = ESCAPE;
    t
};

/// One pass over `data` for every trigger of [`windows`] (`@`, the [`LITERALS`],
/// nine digits each at most one separator apart), and with `escapes`
/// for `%` and `\\` too. Byte classes from one table, so a byte that can start
/// nothing (most of them) costs one lookup; the literal triggers are compared only at
/// their first byte.
fn trigger_pass(data: &[u8], plus_is_blank: bool, escapes: bool) -> bool {
    let sep = SEP | if plus_is_blank { PLUS } else { 0 };
    let stop = AT | if escapes { ESCAPE } else { 0 };
    let mut digits = 0u32;
    let n = data.len();
    let mut i = 0;
    while i < n {
        // Eight bytes that can neither start nor continue anything (most of a header
        // line or URL) are skipped at once: byte by byte, each would only have reset
        // the digit count. A chunk that fails the test is read byte by byte.
        let next8 = i + 8;
        if next8 <= n && data[i..next8].iter().fold(0, |m, &b| m | CLASS[b as usize]) == 0 {
            digits = 0;
            i = next8;
            continue;
        }
        let end = next8.min(n);
        while i < end {
            if step(data, i, &mut digits, sep, stop) {
                return true;
            }
            i += 1;
        }
    }
    false
}

/// One byte of [`trigger_pass`]: `true` when a trigger is found at `i`.
#[inline(always)]
fn step(data: &[u8], i: usize, digits: &mut u32, sep: u8, stop: u8) -> bool {
    let c = CLASS[data[i] as usize];
    if c == 0 {
        *digits = 0;
        return false;
    }
    if c & DIGIT != 0 {
        *digits += 1;
        return *digits >= 9;
    }
    if c & stop != 0
        || (c & LITERAL != 0 && LITERALS.iter().any(|(lit, _, _)| literal_at(data, i, lit)))
    {
        return true;
    }
    // A separator continues a digit run only between two digits.
    if !(c & sep != 0 && *digits > 0 && data.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        *digits = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{
        EMAIL_AFTER, EMAIL_BEFORE, KEYWORD_BEFORE, LITERALS, any_trigger,
        nothing_to_decode_or_find, windows, windows_long,
    };
    use proptest::prelude::*;

    /// The windows as first written: a search per trigger kind, then the digit runs.
    fn four_searches(data: &[u8]) -> Vec<(usize, usize)> {
        let n = data.len();
        let mut w: Vec<(usize, usize)> = Vec::new();
        let mut add = |s: usize, e: usize| w.push((s, e.min(n)));
        for p in memchr::memchr_iter(b'@', data) {
            add(p.saturating_sub(EMAIL_BEFORE), p + EMAIL_AFTER + 1);
        }
        // Literals leftmost first, without overlaps (`AKIAKIA` holds one).
        let mut p = 0;
        while p < n {
            match LITERALS
                .iter()
                .find(|(lit, _, _)| data[p..].starts_with(lit))
            {
                Some((lit, before, after)) => {
                    add(p.saturating_sub(*before), p + after);
                    p += lit.len();
                }
                None => p += 1,
            }
        }
        // Digit runs: digits, each pair at most one `-`/space apart.
        let mut i = 0;
        while i < n {
            if !data[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            let mut digits = 0;
            let mut end = i;
            while i < n {
                if data[i].is_ascii_digit() {
                    digits += 1;
                    i += 1;
                    end = i;
                } else if matches!(data[i], b' ' | b'-')
                    && data.get(i + 1).is_some_and(u8::is_ascii_digit)
                {
                    i += 1;
                } else {
                    break;
                }
            }
            if digits >= 9 {
                add(start.saturating_sub(KEYWORD_BEFORE + 1), end + 1);
            }
        }
        w.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(w.len());
        for (s, e) in w {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    fn digitty() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "1",
                "12",
                "1234",
                "4111",
                "-",
                " ",
                "+",
                "--",
                "  ",
                "@",
                "AKIA",
                "ASIA",
                "AKIAKIA",
                "ASIASIA",
                "1-----BEGIN",
                "AKI",
                "-----BEGIN",
                "----BEGIN",
                "---- BEGIN SSH2 ",
                "----+BEGIN",
                "BEGIN",
                "BEGINBEGIN",
                "BEGI",
                "PuTTY-User-Key-File-",
                "-User-Key-File-",
                "PuTTY-User",
                "a",
                "abcdefghijk",
                "Mozilla/",
                ".com",
                "%",
                "\\",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..3),
        ];
        proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
    }

    /// Long text with triggers here and there, at every offset of the sixteen-byte
    /// blocks `windows` skips (filler of every length, bytes >= 0x80 included).
    fn sparse() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            6 => (0usize..40).prop_map(|k| b"the quick brown fox, jumps over \xc3\xa9t\xc3\xa9 "
                .iter()
                .cycle()
                .take(k)
                .copied()
                .collect::<Vec<u8>>()),
            1 => digitty(),
            1 => proptest::collection::vec(prop::sample::select(b"0123456789 -@A".to_vec()), 1..20),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        /// The sixteen-byte skip finds exactly the windows of the four searches.
        #[test]
        fn skipping_blocks_loses_no_window(d in sparse()) {
            prop_assert_eq!(windows(&d), four_searches(&d));
            prop_assert_eq!(windows_long(&d), four_searches(&d));
        }

        /// Digit runs across the 64-byte blocks of the long search: runs that end a
        /// block, start one, span several, separators at either edge.
        #[test]
        fn blocks_find_every_digit_run(
            d in proptest::collection::vec(prop::sample::select(b"0123456789 -x".to_vec()), 0..400),
            digits_only in proptest::collection::vec(prop::sample::select(b"0123456789 -".to_vec()), 0..300),
        ) {
            prop_assert_eq!(windows_long(&d), four_searches(&d));
            prop_assert_eq!(windows_long(&digits_only), four_searches(&digits_only));
        }

        /// `any_trigger` answers exactly "are there windows", and with `+` as a blank
        /// it also covers the form-decoded text.
        #[test]
        fn any_trigger_is_windows_nonempty(d in digitty()) {
            prop_assert_eq!(windows(&d), four_searches(&d));
            prop_assert_eq!(windows_long(&d), four_searches(&d));
            prop_assert_eq!(any_trigger(&d, false), !windows(&d).is_empty());
            prop_assert_eq!(
                nothing_to_decode_or_find(&d),
                memchr::memchr2(b'%', b'\\', &d).is_none() && !any_trigger(&d, true)
            );
            if !any_trigger(&d, true) && !d.contains(&b'%') {
                prop_assert!(windows(&crate::decode::form_decode(&d)).is_empty());
            }
        }
    }
}
