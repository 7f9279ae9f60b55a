//! The shell's reading of a value: words and control operators. Each word is
//! normalised the way the shell resolves it before it looks a program up (quotes,
//! backslashes, empty expansions and substitutions, `${IFS}`, HTML character references
//! taken out), and remembers what prose would not do (a name spliced by quotes) or
//! would (sentence case).

use super::words;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// `;` `|` `||` `&&` newline: sequence or pipe, glued to the next word.
    Seq { glued: bool },
    /// A lone `&` (prose uses it: `Tom & Jerry`).
    Amp { glued: bool },
    /// `` ` `` `$(` `<(` `>(`: command substitution.
    Subst,
}

#[derive(Debug)]
pub(super) struct Word {
    /// Normalised: quotes, backslashes, `$@`, `${}`, `[x]` globs removed, lower-case.
    pub(super) text: Vec<u8>,
    /// Written in sentence case (`Make`, `Mount`): a Unix shell would run no program by
    /// that name, prose starts its sentences so.
    pub(super) title: bool,
    /// Right after a `>`: where a redirection sends a command's output.
    pub(super) redirected: bool,
    /// Quotes, backslashes or empty expansions were taken out of the word's inside
    /// (`w'h'oami`, `'c'url`): a name spliced so that filters miss it, which no one
    /// writes otherwise (quotes around a whole word do not count).
    pub(super) spliced: bool,
}

impl Word {
    /// Can a shell run a program by this name? Not `Cat` on Unix; Windows ignores case.
    pub(super) fn could_run(&self) -> bool {
        !self.title || words::windows(&self.text)
    }
}

#[derive(Debug)]
pub(super) enum Tok {
    Op(Op),
    Word(Word),
}

/// Blanks as the shell splits words, plus `+`: values arrive form-encoded more often
/// than a `+` is meant literally next to a program name.
pub(super) fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'+')
}

pub(super) fn tokens(v: &[u8]) -> Vec<Tok> {
    // Bash's ANSI-C quotes spell a name in escapes (`$'\x69\x64'` is `id`): read as the
    // quoted text they stand for.
    let unquoted;
    let v = match ansi_c_quotes(v) {
        Some(u) => {
            unquoted = u;
            &unquoted[..]
        }
        None => v,
    };
    // `${IFS}` and `$IFS` are the field separator: a blank.
    let ifs;
    let v = if memchr::memmem::find(v, b"IFS").is_some() {
        ifs = String::from_utf8_lossy(v)
            .replace("${IFS}", " ")
            .replace("$IFS", " ");
        ifs.as_bytes()
    } else {
        v
    };
    let mut out = Vec::new();
    let mut i = 0;
    let n = v.len();
    // The last character skipped before the next word was a `>` that redirects; an
    // HTML tag is open.
    let (mut redirected, mut in_tag) = (false, false);
    // Inside a backtick substitution: the next backtick closes it, and what follows
    // goes on with the command around it (`` `Parallel` which will ``, `` `-o x` mount
    // option ``), at no command position.
    let mut tick_open = false;
    // Prose around (Markdown that quotes names as code: `` `type` is the type of ... ``).
    let prose = memchr::memchr(b'`', v).is_some() && crate::profile::has_words(v, 6);
    while i < n && out.len() < 256 {
        if let Some(len) = empty_substitution(v, i) {
            i += len;
            continue;
        }
        if let Some(name) = braced_variable(v, i)
            && matches!(out.last(), Some(Tok::Word(_)))
        {
            // `${NAME}` on its own: a variable, written as `$name`.
            let mut text = vec![b'$'];
            text.extend(v[i + 2..i + 2 + name].iter().map(u8::to_ascii_lowercase));
            out.push(Tok::Word(Word {
                text,
                title: false,
                redirected: false,
                spliced: false,
            }));
            i += name + 3;
            continue;
        }
        let c = v[i];
        let two = v.get(i + 1).copied();
        let expands = expansion(v, i).is_some();
        if c == b'`'
            && !tick_open
            && prose
            && let Some(len) = markdown_span(v, i)
        {
            // A word quoted as code in prose: a name, not a substitution.
            i += len;
            continue;
        }
        if c == b'`' && !expands {
            tick_open = !tick_open;
            if !tick_open {
                redirected = false;
                i += 1;
                continue;
            }
        }
        let (op, len) = match (c, two) {
            _ if expands => (None, 0),
            (b'|', Some(b'|')) | (b'&', Some(b'&')) => (Some(Op::Seq { glued: false }), 2),
            (b'$', Some(b'(')) | (b'<', Some(b'(')) | (b'>', Some(b'(')) => (Some(Op::Subst), 2),
            (b';' | b'|' | b'\n' | b'\r', _) => (Some(Op::Seq { glued: false }), 1),
            // A value that opens with a lone `&` goes on from the application's command
            // line (`& net user x y /ADD`): prose does not open with one.
            (b'&', _) if out.is_empty() => (Some(Op::Seq { glued: false }), 1),
            (b'&', _) => (Some(Op::Amp { glued: false }), 1),
            // So does one that opens with a brace expansion (`{,ip,a}`, `{cat,/etc/x}`);
            // JSON opens with `{"` or a blank.
            (b'{', Some(n)) if out.is_empty() && n != b'"' && !is_blank(n) => {
                (Some(Op::Seq { glued: false }), 1)
            }
            (b'`', _) => (Some(Op::Subst), 1),
            // `{ls,-la}` brace expansion and `( cmd )` subshells start a command too.
            // Prose opens parentheses too (`(less than 1 minute)`): judged like `&`.
            (b'{' | b'(', _) => (Some(Op::Amp { glued: true }), 1),
            _ => (None, 0),
        };
        if let Some(op) = op {
            // Prose never starts with an operator: at the start it is as good as glued.
            // A line break is never glued: prose starts its lines with a word too.
            // A `(` or `{` after a word starts no command: `hello world (test)` is a
            // syntax error to sh, `/users/{id}` and `echo {ls,-la}` are arguments. Prose
            // and templates write both so: only a program that reads as no prose counts
            // there, as after a lone `&`.
            let after_word = matches!(c, b'(' | b'{') && matches!(out.last(), Some(Tok::Word(_)));
            let glued = out.is_empty()
                || (!after_word
                    && !matches!(c, b'\n' | b'\r')
                    && v.get(i + len).is_some_and(|c| !is_blank(*c)));
            let op = match op {
                Op::Seq { .. } => Op::Seq { glued },
                Op::Amp { .. } => Op::Amp { glued },
                Op::Subst => Op::Subst,
            };
            out.push(Tok::Op(op));
            redirected = false;
            i += len;
            continue;
        }
        if is_blank(c) || matches!(c, b')' | b'}' | b',' | b'<' | b'>') {
            // A `>` that closes an HTML tag (`<b>/usr</b>`) redirects nothing.
            match c {
                b'<' => {
                    in_tag = v
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, b'/' | b'!'));
                    redirected = false;
                }
                b'>' => redirected = !std::mem::replace(&mut in_tag, false),
                c if !is_blank(c) => redirected = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let mut text = Vec::new();
        let start = i;
        // The length of `text` when something was last taken out of the word.
        let mut cut_at = 0;
        while i < n {
            if matches!(v[i], b'$' | b'`')
                && let Some(len) = expansion(v, i).or_else(|| empty_substitution(v, i))
            {
                cut_at = text.len();
                i += len;
                continue;
            }
            let c = v[i];
            // (A line break ends a word: `1%0Acat /etc/passwd` is two commands.)
            if is_blank(c)
                || matches!(
                    c,
                    b';' | b'|'
                        | b'&'
                        | b'`'
                        | b'('
                        | b')'
                        | b'{'
                        | b'}'
                        | b','
                        | b'<'
                        | b'>'
                        | b'\n'
                        | b'\r'
                )
            {
                break;
            }
            match c {
                b'\'' | b'"' | b'\\' => {
                    if !text.is_empty() {
                        cut_at = text.len();
                    }
                }
                // `$@`, `$*`, `$!`, `$_` expand to nothing in a fresh shell: `c$@at` is `cat`;
                // `$?`, `$-`, `$$`, `$#` are short strings written into a name for the
                // same purpose (they break it for the filter, if not for the shell).
                b'$' if matches!(
                    v.get(i + 1),
                    Some(b'@' | b'*' | b'!' | b'_' | b'?' | b'-' | b'$' | b'#')
                ) =>
                {
                    i += 1
                }
                // `$name` inside a word: an unset variable, nothing (`uname$u`, `n$u\c`).
                b'$' if !text.is_empty()
                    && v.get(i + 1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
                {
                    i += v[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                }
                b'$' if v.get(i + 1) == Some(&b'(') => break,
                b'[' => {
                    // `[n]` glob of one character: keep the character.
                    if let (Some(&g), Some(b']')) = (v.get(i + 1), v.get(i + 2)) {
                        text.push(g.to_ascii_lowercase());
                        i += 3;
                        continue;
                    }
                    text.push(c);
                }
                _ => text.push(c.to_ascii_lowercase()),
            }
            i += 1;
        }
        if text.is_empty() {
            redirected = false;
        } else {
            let raw = &v[start..i];
            let title = raw.first().is_some_and(u8::is_ascii_uppercase)
                && raw.iter().skip(1).any(u8::is_ascii_lowercase)
                && !raw.iter().skip(1).any(u8::is_ascii_uppercase);
            let spliced = cut_at > 0 && cut_at < text.len();
            out.push(Tok::Word(Word {
                text,
                title,
                redirected: std::mem::take(&mut redirected),
                spliced,
            }));
        }
    }
    out
}

/// `v` with each ANSI-C quoted string (`$'...'`) that holds an escape written as the
/// single-quoted text it stands for (`\xHH`, octal `\NNN`, `\\`, `\'`), or `None` when
/// there is none. A decoded quote, blank or control byte is dropped: inside the quotes
/// none of them separates words, and the name they spell is what matters here.
fn ansi_c_quotes(v: &[u8]) -> Option<Vec<u8>> {
    let first = memchr::memmem::find(v, b"$'")?;
    let mut out = Vec::with_capacity(v.len());
    out.extend_from_slice(&v[..first]);
    let mut i = first;
    let mut escaped = false;
    while i < v.len() {
        if !v[i..].starts_with(b"$'") {
            out.push(v[i]);
            i += 1;
            continue;
        }
        out.push(b'\'');
        i += 2;
        while i < v.len() && v[i] != b'\'' {
            if v[i] != b'\\' || i + 1 == v.len() {
                out.push(v[i]);
                i += 1;
                continue;
            }
            escaped = true;
            let (byte, len) = ansi_c_escape(&v[i + 1..]);
            if byte.is_ascii_graphic() && !matches!(byte, b'\'' | b'"') {
                out.push(byte);
            }
            i += 1 + len;
        }
        out.push(b'\'');
        i += 1;
    }
    escaped.then_some(out)
}

/// The byte one escape after a backslash stands for, and the escape's length.
fn ansi_c_escape(e: &[u8]) -> (u8, usize) {
    let digits = |s: &[u8], max: usize, radix: u32| {
        let n = s
            .iter()
            .take(max)
            .take_while(|c| (**c as char).is_digit(radix))
            .count();
        let value = std::str::from_utf8(&s[..n])
            .ok()
            .and_then(|d| u32::from_str_radix(d, radix).ok());
        (value.map_or(0, |x| x as u8), n)
    };
    match e[0] {
        b'x' => {
            let (b, n) = digits(&e[1..], 2, 16);
            if n == 0 { (b'x', 1) } else { (b, n + 1) }
        }
        b'0'..=b'7' => digits(e, 3, 8),
        // `\n`, `\t`, `\a`...: controls, dropped by the caller.
        b'a' | b'b' | b'e' | b'E' | b'f' | b'n' | b'r' | b't' | b'v' => (0, 1),
        c => (c, 1),
    }
}

/// `${name}` at `i` inside a word (a letter, digit or `_` right before or after it):
/// a parameter expansion (its length), which an unset variable turns into nothing
/// (`c${u}at` is `cat`). On its own, `${cmd}` is left to be read as a brace group.
fn expansion(v: &[u8], i: usize) -> Option<usize> {
    if v.get(i) != Some(&b'$') || v.get(i + 1) != Some(&b'{') {
        return None;
    }
    let word = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    let name = v[i + 2..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let inside = (i > 0 && word(v.get(i - 1))) || word(v.get(i + 3 + name));
    (name > 0 && v.get(i + 2 + name) == Some(&b'}') && inside).then_some(name + 3)
}

/// An HTML character reference at `i` (`&quot;`, `&#39;`, `&#x27;`): its length.
pub(super) fn html_entity(v: &[u8], i: usize) -> Option<usize> {
    if v.get(i) != Some(&b'&') {
        return None;
    }
    let rest = &v[i + 1..v.len().min(i + 12)];
    let body = match rest {
        [b'#', b'x' | b'X', hex @ ..] => {
            hex.iter().take_while(|c| c.is_ascii_hexdigit()).count() + 2
        }
        [b'#', dec @ ..] => dec.iter().take_while(|c| c.is_ascii_digit()).count() + 1,
        _ => rest.iter().take_while(|c| c.is_ascii_alphabetic()).count(),
    };
    let named = !rest.starts_with(b"#");
    let ok = if named {
        (2..=8).contains(&body)
    } else {
        body > 2 || (body == 2 && rest[0] == b'#' && rest[1] != b'x')
    };
    (ok && rest.get(body) == Some(&b';')).then_some(body + 2)
}

/// `${name}` at `i` standing alone (not inside a word): the name's length. After a
/// word it is a variable (`stop exporting ${PYTHON}`); where a command starts, it is
/// read as a brace group (`${cmd}`, a probe).
fn braced_variable(v: &[u8], i: usize) -> Option<usize> {
    if !v[i..].starts_with(b"${") || expansion(v, i).is_some() {
        return None;
    }
    let name = v[i + 2..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (name > 0 && v[i + 2].is_ascii_alphabetic() && v.get(i + 2 + name) == Some(&b'}'))
        .then_some(name)
}

/// `` `` `` or `$()` at `i`: an empty command substitution, which a shell replaces by
/// nothing (`pi``ng`, `pi$()ng`): its length.
fn empty_substitution(v: &[u8], i: usize) -> Option<usize> {
    let rest = &v[i..];
    if rest.starts_with(b"``") {
        Some(2)
    } else if rest.starts_with(b"$()") {
        Some(3)
    } else {
        None
    }
}

/// The length of a Markdown code span at `i` that quotes one word a shell would read as
/// an English word as much as a program (`` `type` ``, `` `host` ``, `` `set` ``), standing
/// apart from the words around it: not a substitution anyone sends. `` `id` ``, the
/// probe of every scanner, and the programs that are no English word stay
/// substitutions.
fn markdown_span(v: &[u8], i: usize) -> Option<usize> {
    let body = &v[i + 1..];
    let len = body
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        .count();
    let word = &body[..len];
    let apart_before = i == 0 || matches!(v[i - 1], b' ' | b'\t' | b'\n' | b'(' | b'"');
    let after = body.get(len + 1).copied();
    let apart_after = after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'`');
    let lower = word.to_ascii_lowercase();
    (len > 0
        && body.get(len) == Some(&b'`')
        && apart_before
        && apart_after
        && lower != b"id"
        && words::weak(&lower)
        && !words::strong(&lower))
    .then_some(len + 2)
}
