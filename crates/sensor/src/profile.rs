//! Which kinds of bytes a value holds, found in one pass and shared by every detector.
//!
//! Each detector opens with a necessary condition on the bytes of a value (xss needs
//! markup, a `:`, `=`, `(`, `` ` ``, `&` or `.`; cmdi without an operator looks at its
//! first word only; traversal needs a separator or a `%`; ...). Run one by one, these
//! are one scan each, and for values that pass them (URLs, paths) several full scans.
//! [`Profile::of`] reads the value once through a table of byte classes; the detectors
//! then test a bit where they scanned.
//!
//! A profile answers exactly "does the value hold a byte of this class": a detector
//! that truncates its input (`MAX_VALUE`) profiles the cut value again when it is
//! longer, so no bit comes from bytes the detector does not read.

/// One bit per class; a byte may be in several.
pub mod class {
    /// Not a letter, digit, `_ . - @ ,` (the bytes of one token to every detector).
    pub const UNSAFE: u32 = 1 << 0;
    /// `< : = ( ` & .`: every XSS needs one.
    pub const XSS_MARK: u32 = 1 << 1;
    /// `<`, `&` or a byte `<= 0x20`: xss must decode and squeeze before matching.
    pub const XSS_DECODE: u32 = 1 << 2;
    /// A shell operator byte: `; | & ` $ \n \r { ( < > %`.
    pub const SHELL_OP: u32 = 1 << 3;
    /// `. / \ %`, or 0xE2 / 0xEF (the lead bytes of the Unicode slashes and the
    /// fullwidth dot): a climb or a restricted name needs one, or a written-out `0x2f`.
    pub const PATH: u32 = 1 << 4;
    /// A byte traversal must normalise: non-ASCII, `%`, `\`, NUL.
    pub const PATH_DECODE: u32 = 1 << 5;
    /// `0`, and `x`/`X`: a written-out `0x2f` needs both.
    pub const ZERO: u32 = 1 << 6;
    pub const X: u32 = 1 << 7;
    /// `%`.
    pub const PERCENT: u32 = 1 << 8;
    /// A byte that is not quiet to the SQL judge (see `sqli::QUIET`).
    pub const SQL_LOUD: u32 = 1 << 9;
    /// `=`.
    pub const EQUALS: u32 = 1 << 10;
    /// `(`.
    pub const PAREN: u32 = 1 << 11;
    /// `-`.
    pub const DASH: u32 = 1 << 12;
    /// `:`.
    pub const COLON: u32 = 1 << 13;
    /// `_ . @ j J $ :`: every SQL catalog name holds one.
    pub const CATALOG: u32 = 1 << 14;
    /// `% & \` and the overlong lead bytes 0xC0, 0xC1, 0xE0: an application may decode
    /// the value again (`decode::other_readings`).
    pub const REREAD: u32 = 1 << 15;
    /// Not in either base64 alphabet (letters, digits, `+ / - _ =`): a value with one is
    /// no base64 (`decode::base64_text`).
    pub const NOT_BASE64: u32 = 1 << 16;
}

static TABLE: [u32; 256] = {
    use class::*;
    let mut t = [0u32; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut m = 0;
        if !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b',')) {
            m |= UNSAFE;
        }
        if matches!(b, b'<' | b':' | b'=' | b'(' | b'`' | b'&' | b'.') {
            m |= XSS_MARK;
        }
        if matches!(b, b'<' | b'&') || b <= b' ' {
            m |= XSS_DECODE;
        }
        if matches!(
            b,
            b';' | b'|' | b'&' | b'`' | b'$' | b'\n' | b'\r' | b'{' | b'(' | b'<' | b'>' | b'%'
        ) {
            m |= SHELL_OP;
        }
        if matches!(b, b'.' | b'/' | b'\\' | b'%' | 0xE2 | 0xEF) {
            m |= PATH;
        }
        if b >= 0x80 || matches!(b, b'%' | b'\\' | 0) {
            m |= PATH_DECODE;
        }
        if b == b'0' {
            m |= ZERO;
        }
        if matches!(b, b'x' | b'X') {
            m |= X;
        }
        if b == b'%' {
            m |= PERCENT;
        }
        if !crate::sqli::QUIET[c] {
            m |= SQL_LOUD;
        }
        if b == b'=' {
            m |= EQUALS;
        }
        if b == b'(' {
            m |= PAREN;
        }
        if b == b'-' {
            m |= DASH;
        }
        if b == b':' {
            m |= COLON;
        }
        if matches!(b, b'_' | b'.' | b'@' | b'j' | b'J' | b'$' | b':') {
            m |= CATALOG;
        }
        if matches!(b, b'%' | b'&' | b'\\' | 0xC0 | 0xC1 | 0xE0) {
            m |= REREAD;
        }
        if !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')) {
            m |= NOT_BASE64;
        }
        t[c] = m;
        c += 1;
    }
    t
};

/// The classes of the bytes of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile(u32);

impl Profile {
    pub fn of(value: &[u8]) -> Profile {
        // Four accumulators: the table loads do not wait on one another.
        let mut m = [0u32; 4];
        let mut chunks = value.chunks_exact(4);
        for c in &mut chunks {
            m[0] |= TABLE[c[0] as usize];
            m[1] |= TABLE[c[1] as usize];
            m[2] |= TABLE[c[2] as usize];
            m[3] |= TABLE[c[3] as usize];
        }
        for &b in chunks.remainder() {
            m[0] |= TABLE[b as usize];
        }
        Profile(m[0] | m[1] | m[2] | m[3])
    }

    /// The profile of `value[..max]`: this one when the value is no longer.
    pub fn cut(self, value: &[u8], max: usize) -> Profile {
        if value.len() > max {
            Profile::of(&value[..max])
        } else {
            self
        }
    }

    /// Does the value hold a byte of any of the classes in `mask`?
    pub fn any(self, mask: u32) -> bool {
        self.0 & mask != 0
    }
}

/// Does the value hold at least `n` words of two letters or more? Prose does; payloads
/// and tokens seldom do (the attack readers use it to tell a sentence that quotes code
/// from code).
pub(crate) fn has_words(v: &[u8], n: usize) -> bool {
    v.split(|c| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 2)
        .take(n)
        .count()
        >= n
}

#[cfg(test)]
mod tests {
    use super::{Profile, class::*};
    use proptest::prelude::*;

    /// Each bit, against the byte test it stands for.
    fn by_hand(v: &[u8]) -> u32 {
        let has = |f: &dyn Fn(u8) -> bool| v.iter().any(|&b| f(b));
        let mut m = 0;
        let mut set = |bit, yes: bool| {
            if yes {
                m |= bit
            }
        };
        set(
            UNSAFE,
            has(&|b| !(b.is_ascii_alphanumeric() || b"_.-@,".contains(&b))),
        );
        set(XSS_MARK, has(&|b| b"<:=(`&.".contains(&b)));
        set(XSS_DECODE, has(&|b| b == b'<' || b == b'&' || b <= b' '));
        set(SHELL_OP, has(&|b| b";|&`$\n\r{(<>%".contains(&b)));
        set(PATH, has(&|b| b"./\\%\xE2\xEF".contains(&b)));
        set(
            PATH_DECODE,
            has(&|b| !b.is_ascii() || b"%\\\0".contains(&b)),
        );
        set(ZERO, has(&|b| b == b'0'));
        set(X, has(&|b| b == b'x' || b == b'X'));
        set(PERCENT, has(&|b| b == b'%'));
        set(SQL_LOUD, has(&|b| !crate::sqli::QUIET[b as usize]));
        set(EQUALS, has(&|b| b == b'='));
        set(PAREN, has(&|b| b == b'('));
        set(DASH, has(&|b| b == b'-'));
        set(COLON, has(&|b| b == b':'));
        set(CATALOG, has(&|b| b"_.@jJ$:".contains(&b)));
        set(REREAD, has(&|b| b"%&\\\xc0\xc1\xe0".contains(&b)));
        set(
            NOT_BASE64,
            has(&|b| !(b.is_ascii_alphanumeric() || b"+/-_=".contains(&b))),
        );
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn profile_is_the_byte_tests(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(Profile::of(&v).0, by_hand(&v));
            for max in [0, 1, 5, 39] {
                let cut = &v[..v.len().min(max)];
                prop_assert_eq!(Profile::of(&v).cut(&v, max), Profile::of(cut));
            }
        }
    }
}
