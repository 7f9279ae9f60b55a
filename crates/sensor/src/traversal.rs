//! Path traversal and restricted-file access: does a value, used as a file name by the
//! application, climb out of the directory it is meant for, or name a file no request
//! should name?
//!
//! The value is normalised the way file APIs read it (deep URL decoding, `\` and
//! overlong forms as `/`, NUL as the end of the name; and a second time with its NUL
//! bytes removed, as filters that strip them pass it on) and split into segments. A
//! segment made only of dots (`..`, and `...`/`....` which Windows and naive
//! `str_replace("../", "")` filters collapse to `..`) that is followed by a separator
//! climbs. Restricted names (`/etc/passwd`, `win.ini`, `WEB-INF/web.xml`, `.ssh/`) are
//! matched by one Aho-Corasick pass; they need a path separator before them so prose
//! does not match.

use crate::profile::{Profile, class};
use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// A detected traversal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraversalMatch {
    /// `climb` (dot segments) or `restricted_file`.
    pub reason: &'static str,
}

/// Files and directories whose names only an attack sends. Each begins after a
/// separator (checked at match time) so `passwd` alone or a sentence does not match.
const RESTRICTED: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/master.passwd",
    "etc/subuid",
    "etc/sudoers",
    "proc/self/",
    "proc/version",
    "proc/net/",
    "proc/sys/",
    "proc/interrupts",
    "proc/cpuinfo",
    "sys/class",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "web-inf/",
    "meta-inf/",
    "global.asa",
    ".ssh/",
    "id_rsa",
    ".aws/credentials",
    ".docker/",
    ".git/",
    ".htpasswd",
    ".htaccess",
    ".env",
    ".bash_history",
    "wp-config.php",
    "wp-content/debug.log",
    "@fs/",
    "inetpub/wwwroot",
];

static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(RESTRICTED)
        .expect("static patterns")
});

/// The readings of a value a file API may get: cut at its first NUL, and, when it holds
/// one, with every NUL removed. Filters that strip NUL bytes (`str_replace("\0", "")`,
/// sanitisers of C strings) turn `.%00./.%00./etc/passwd` and `%00../../etc/passwd`
/// into a climb the cut reading never shows.
fn judge_readings(v: &[u8]) -> Option<TraversalMatch> {
    let decoded = crate::decode::url_decode_deep(v);
    let Some(first_nul) = memchr::memchr(0, &decoded) else {
        return judge(&unify(&decoded));
    };
    judge(&unify(&decoded[..first_nul])).or_else(|| {
        let stripped: Vec<u8> = decoded.iter().copied().filter(|&b| b != 0).collect();
        judge(&unify(&stripped))
    })
}

/// Separators and dots as a file API sees them: `\`, a written-out `0x5c`/`0x2f` and
/// the Unicode slashes as `/`, a written-out `0x2e` and the fullwidth dot as `.`.
fn unify(v: &[u8]) -> Vec<u8> {
    let end = v.len();
    let mut out = Vec::with_capacity(end);
    let mut i = 0;
    while i < end {
        // `0x5c`/`0x2f` written out as text: some PHP apps run hexdec-style decoding.
        if v[i..end].len() >= 4 && v[i] == b'0' && matches!(v[i + 1], b'x' | b'X') {
            match &v[i + 2..i + 4] {
                b"5c" | b"5C" | b"2f" | b"2F" => {
                    out.push(b'/');
                    i += 4;
                    continue;
                }
                b"2e" | b"2E" => {
                    out.push(b'.');
                    i += 4;
                    continue;
                }
                _ => {}
            }
        }
        out.push(match v[i] {
            b'\\' => b'/',
            c => c,
        });
        i += 1;
    }
    if out.is_ascii() {
        return out;
    }
    // U+2215 DIVISION SLASH, U+2216 SET MINUS and the fullwidth `／` `＼` are best-fit
    // mapped to `/` and `\` on Windows; NFKC normalisation (Python, Java, .NET) turns
    // the fullwidth `．` `／` `＼` into `.` `/` `\`.
    for (pat, to) in [
        ("\u{2215}", "/"),
        ("\u{ff0f}", "/"),
        ("\u{2216}", "/"),
        ("\u{ff3c}", "/"),
        ("\u{ff0e}", "."),
    ] {
        if memchr::memmem::find(&out, pat.as_bytes()).is_some() {
            out = String::from_utf8_lossy(&out).replace(pat, to).into_bytes();
        }
    }
    out
}

/// Judge one decoded value (a parameter, a header value, the request path).
pub fn detect(value: &[u8]) -> Option<TraversalMatch> {
    detect_profiled(value, Profile::of(value))
}

/// [`detect`] with the value's byte classes already known.
pub(crate) fn detect_profiled(value: &[u8], p: Profile) -> Option<TraversalMatch> {
    // A written-out separator (`0x2e0x2e0x2fetc0x2fpasswd`) is made of letters and
    // digits only.
    let written = p.any(class::ZERO) && p.any(class::X) && written_separator(value);
    // Cheap exit: a climb needs `..` and a restricted name needs a separator (`.`,
    // `/`, `\`, a `%` that may decode to one, a Unicode slash or dot, or one written
    // out).
    if !p.any(class::PATH) && !written {
        return None;
    }
    // Nothing to decode, unify or cut (the common case: ASCII, no `%`, `\`, NUL, no
    // written-out separator): the value is its own normalised form, judged in place.
    if !(p.any(class::PATH_DECODE) || written) {
        return judge(value);
    }
    judge_readings(value)
}

/// A separator or dot written out as hex text (`0x2f`, `0x5C`, `0x2e`), which [`unify`]
/// reads as one.
pub(crate) fn written_separator(v: &[u8]) -> bool {
    v.windows(4).any(|w| {
        w[0] == b'0'
            && matches!(w[1], b'x' | b'X')
            && matches!(
                [w[2], w[3].to_ascii_lowercase()],
                [b'5', b'c'] | [b'2', b'f'] | [b'2', b'e']
            )
    })
}

/// [`detect`] without the shortcut for values with nothing to normalise: the reference
/// it must agree with.
#[doc(hidden)]
pub fn detect_exhaustive(value: &[u8]) -> Option<TraversalMatch> {
    let separator = |b: &u8| matches!(b, b'.' | b'/' | b'\\' | b'%' | 0xE2 | 0xEF);
    if !value.iter().any(separator) && !written_separator(value) {
        return None;
    }
    judge_readings(value)
}

fn judge(p: &[u8]) -> Option<TraversalMatch> {
    if climbs(p) {
        return Some(TraversalMatch { reason: "climb" });
    }
    for m in FINDER.find_iter(p) {
        let start = m.start();
        let before = start.checked_sub(1).map(|i| p[i]);
        let after = p.get(m.end()).copied();
        let pat = RESTRICTED[m.pattern().as_usize()];
        // Names ending in a separator stop anywhere; others must end the name.
        let ends = pat.ends_with('/') || after.is_none_or(|c| !c.is_ascii_alphanumeric());
        let starts = matches!(before, Some(b'/' | b':'))
            || (before.is_none() && pat.starts_with('.'))
            || pat.starts_with('@');
        if starts && ends {
            return Some(TraversalMatch {
                reason: "restricted_file",
            });
        }
    }
    if starts_with_ci(p, b"file:") {
        return Some(TraversalMatch {
            reason: "file_scheme",
        });
    }
    None
}

fn starts_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)
}

/// A dot-only segment (two dots or more) followed by a separator, or `;`-padded
/// segments (`..;/`, Tomcat's path parameters).
fn climbs(p: &[u8]) -> bool {
    let mut seg_start = 0;
    for (i, &c) in p.iter().enumerate() {
        if c == b'/' {
            let seg = &p[seg_start..i];
            let seg = seg.split(|&b| b == b';').next().unwrap_or(seg);
            if seg.len() >= 2 && seg.iter().all(|&b| b == b'.') {
                return true;
            }
            // `/..{file}`: a dot run before a template placeholder, as scanners send.
            let dots = p[i + 1..].iter().take_while(|&&b| b == b'.').count();
            if dots >= 2 && p.get(i + 1 + dots) == Some(&b'{') {
                return true;
            }
            seg_start = i + 1;
        }
    }
    // A run of four dots or more glued to a name: what is left of `....//etc/passwd`
    // after a filter removed the slashes.
    p.windows(5)
        .any(|w| w[..4] == *b"...." && w[4].is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn climbs_and_files() {
        for a in [
            "../../etc/passwd",
            "..\\pineapple",
            "%2e%2e%2f",
            "..%c0%af..%c0%afetc",
            "....//....//etc/passwd",
            "/etc/passwd%00",
            "c:/windows/win.ini",
            "/WEB-INF/web.xml",
            "file:/etc/passwd",
            "..;/x",
            "0x5c0x2e./",
            "0x2e0x2e0x2fetc0x2fpasswd",
            ".\0./.\0./etc/passwd",
            "\0../../../etc/passwd",
            "\u{ff0e}\u{ff0e}\u{ff0f}\u{ff0e}\u{ff0e}\u{ff0f}etc\u{ff0f}passwd",
            "%uff0e%uff0e/%uff0e%uff0e/x",
        ] {
            assert!(detect(a.as_bytes()).is_some(), "{a}");
        }
        for b in [
            "/get/foo../1234",
            "/get/..foo",
            "/get/..",
            "wait... what",
            "http://example.com/a/b.html",
            "passwd",
            "1.2.3",
            "/css/style.css",
            "0x2e",
            "a\0b",
            "\u{ff0e}\u{ff0e}\u{ff0e} more",
        ] {
            assert!(detect(b.as_bytes()).is_none(), "{b}");
        }
    }
}
