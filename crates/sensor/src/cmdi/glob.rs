//! Glob patterns that a shell expands into a system path: `/???/??t` is `/bin/cat`,
//! `/etc/pas[s]wd` and `/etc/[!q]asswd` are `/etc/passwd`. Only a shell expands them, so
//! a value holding one that lands on a program or an account file is written to
//! slip a command past a filter that looks for the plain name.

use std::sync::LazyLock;

/// Files attackers read through a shell.
const FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/hosts",
    "/etc/issue",
    "/etc/sudoers",
    "/etc/crontab",
    "/proc/self/environ",
];

/// Programs whose path a glob spells out, in every directory programs live in.
const PROGRAMS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "cat", "nc", "ncat", "netcat", "wget", "curl", "python",
    "python3", "perl", "ruby", "php", "id", "whoami", "uname", "ls", "cp", "mv", "rm", "chmod",
    "echo", "busybox", "socat", "telnet", "base64", "env", "head", "tail", "more", "less",
];
const DIRS: &[&str] = &[
    "/bin/",
    "/usr/bin/",
    "/sbin/",
    "/usr/sbin/",
    "/usr/local/bin/",
];

static TARGETS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut t: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    for d in DIRS {
        for p in PROGRAMS {
            t.push(format!("{d}{p}"));
        }
    }
    t
});

/// The system path an absolute glob word expands to, if it names one of [`TARGETS`].
/// Words without a glob character are left to the other checks.
pub fn target(word: &[u8]) -> Option<&'static str> {
    if word.first() != Some(&b'/') || !word.iter().any(|c| matches!(c, b'?' | b'*' | b'[')) {
        return None;
    }
    // Bounded: a pattern longer than any target cannot match one without `*`, and a long
    // run of `*` is work for nothing.
    if word.len() > 64 {
        return None;
    }
    TARGETS
        .iter()
        .find(|t| matches(word, t.as_bytes()))
        .map(|t| t.as_str())
}

/// Shell glob matching of a whole path: `?` one character, `*` any run (not `/`),
/// `[abc]`, `[a-z]`, `[!x]` / `[^x]` one character of a class. Iterative, with one
/// backtrack point (the last `*`), so its cost is pattern length x path length.
fn matches(pat: &[u8], path: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, s));
                p += 1;
                continue;
            }
            Some(b'?') if path[s] != b'/' => Some(p + 1),
            Some(b'[') => class(pat, p, path[s]),
            Some(&c) if c == path[s] => Some(p + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                p = next;
                s += 1;
            }
            None => match star {
                // The last `*` takes one more character, unless that is a `/`.
                Some((sp, ss)) if path[ss] != b'/' => {
                    star = Some((sp, ss + 1));
                    p = sp + 1;
                    s = ss + 1;
                }
                _ => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A bracket class at `pat[at]` against `c`: where the pattern goes on when `c` is in
/// it. An unclosed `[` is a literal `[`.
fn class(pat: &[u8], at: usize, c: u8) -> Option<usize> {
    let mut i = at + 1;
    let negated = matches!(pat.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < pat.len() && (pat[i] != b']' || i == start) {
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&e| e != b']') {
            hit |= (pat[i]..=pat[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= pat[i] == c;
            i += 1;
        }
    }
    if i >= pat.len() {
        return (c == b'[').then_some(at + 1);
    }
    (hit != negated && c != b'/').then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::{matches, target};

    #[test]
    fn globs_that_spell_system_paths() {
        for (glob, path) in [
            ("/???/??t", "/bin/cat"),
            ("/???/b??h", "/bin/bash"),
            ("/etc/pas[s]wd", "/etc/passwd"),
            ("/etc/[!q]asswd", "/etc/passwd"),
            ("/etc/[!abc]asswd", "/etc/passwd"),
            ("/usr/[a-z]in/bash", "/usr/bin/bash"),
            ("/e*c/pa*d", "/etc/passwd"),
            ("/etc/?asswd", "/etc/passwd"),
        ] {
            assert_eq!(target(glob.as_bytes()), Some(path), "{glob}");
        }
        for other in [
            "/etc/passwd",
            "/images/*.png",
            "/docs/[draft]/notes",
            "/???",
            "/usr/*",
            "*/*",
        ] {
            assert_eq!(target(other.as_bytes()), None, "{other}");
        }
    }

    proptest::proptest! {
        /// Any pattern: no panic, and one without a glob character matches nothing.
        #[test]
        fn any_pattern(rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut pat = vec![b'/'];
            pat.extend(rest);
            let found = target(&pat);
            if !pat.iter().any(|c| matches!(c, b'?' | b'*' | b'[')) {
                proptest::prop_assert_eq!(found, None);
            }
        }

        /// Every target, one character of it turned into `?`, `*` or a class holding
        /// it: the pattern spells a target (that one, or another it also fits).
        #[test]
        fn targets_behind_one_glob(t in 0..super::TARGETS.len(), at in 1usize..20, how in 0..3) {
            let path = super::TARGETS[t].as_bytes();
            let at = at.min(path.len() - 1);
            if path[at] != b'/' {
                let mut pat = path[..at].to_vec();
                match how {
                    0 => pat.push(b'?'),
                    1 => pat.push(b'*'),
                    _ => pat.extend([b'[', path[at], b']']),
                }
                pat.extend(&path[at + 1..]);
                proptest::prop_assert!(target(&pat).is_some(), "{}", String::from_utf8_lossy(&pat));
            }
        }
    }

    #[test]
    fn stars_stop_at_slashes() {
        assert!(matches(b"/*/cat", b"/bin/cat"));
        assert!(!matches(b"/*", b"/bin/cat"));
        assert!(matches(b"/b*n/*", b"/bin/cat"));
        assert!(!matches(b"/[", b"/b"));
        assert!(matches(b"/[", b"/["));
    }
}
