//! Splitting a query string into statements and finding each one's kinds.
//!
//! The splitter must never see fewer statements than the server does, or a statement
//! could hide inside what we took for a string or a comment. Where the server's reading
//! depends on what the proxy cannot see, the text is split every way the server may read
//! it ([`Reading`]) and every statement of every reading is decided: backslash escapes
//! (MySQL's NO_BACKSLASH_ESCAPES, PostgreSQL's standard_conforming_strings), MySQL's
//! ANSI_QUOTES, the server's flavour and version (MySQL executable comments), and
//! multibyte character sets whose second bytes include `\` and `` ` `` (GBK, SJIS...).
//! Text that cannot be read every way within bounds is [`Unreadable`] and refused.

use std::collections::HashSet;

use bulkhead_policy::l7::SqlKind;
use memchr::memmem;

mod kinds;
mod readings;
#[cfg(test)]
mod tests;

use readings::{NEWEST, Reading, Take, exec_marker, execs, mbs, number, quotes};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// One statement: its text (comments and MySQL executable-comment markers blanked, so
/// that what they hold is classified like the server runs it) and the kinds it contains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Statement {
    pub text: String,
    pub kinds: Vec<SqlKind>,
}

/// Text the proxy cannot read every way the server might (within the bounds below).
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Bytes lexed for one query string, all readings and carried texts included: a bound
/// on the work an adversarial query costs (a 1 MiB query may get dozens of readings).
const BUDGET: usize = 32 << 20;
/// Statements carried in statements (`SET STATEMENT ... FOR`, `PREPARE s FROM '...'`).
const MAX_DEPTH: usize = 8;

struct Ctx {
    budget: usize,
    depth: usize,
    unreadable: bool,
}

/// Every statement of `text`, under every reading the server may give it.
pub fn statements(text: &[u8], d: Dialect) -> Result<Vec<Statement>, Unreadable> {
    let mut ctx = Ctx {
        budget: BUDGET,
        depth: 0,
        unreadable: false,
    };
    let all = split(text, d, &mut ctx);
    if ctx.unreadable {
        Err(Unreadable)
    } else {
        Ok(all)
    }
}

fn split(text: &[u8], d: Dialect, ctx: &mut Ctx) -> Vec<Statement> {
    let (quotes, mbs, execs) = (quotes(text, d), mbs(text, d), execs(text, d, ctx));
    let (mut all, mut seen) = (Vec::new(), HashSet::new());
    for &(escapes, dquote) in quotes {
        for &mb in mbs {
            // A reading that takes every executable comment met as one before did reads
            // the same: skip it.
            let mut done: Vec<Vec<(usize, Take)>> = Vec::new();
            for &exec in &execs {
                if done
                    .iter()
                    .any(|met| met.iter().all(|&(at, t)| exec.take(text, at) == t))
                {
                    continue;
                }
                let Some(left) = ctx.budget.checked_sub(text.len() + 1) else {
                    ctx.unreadable = true;
                    return all;
                };
                ctx.budget = left;
                let reading = Reading {
                    escapes,
                    dquote,
                    mb,
                    exec,
                };
                let mut lexer = Lexer {
                    b: text,
                    d,
                    r: reading,
                    met: Vec::new(),
                };
                for s in lexer.split(ctx) {
                    if seen.insert(s.clone()) {
                        all.push(s);
                    }
                }
                done.push(lexer.met);
            }
        }
    }
    if all.is_empty() && !blank(text, d) {
        // No statement, yet not plainly nothing: whatever the server makes of it is
        // decided as `other`.
        all.push(Statement {
            text: String::from_utf8_lossy(text).trim().to_string(),
            kinds: vec![SqlKind::Other],
        });
    }
    all
}

/// Whether `b` is only whitespace, `;` and comments, read strictly and independently of
/// the lexer: a comment whose end any server could see elsewhere is not blank.
fn blank(b: &[u8], d: Dialect) -> bool {
    let pg = d == Dialect::Postgres;
    let ctrl = |c: &u8| (*c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r')) || *c == 0x7F;
    let mut i = 0;
    while i < b.len() {
        let r = &b[i..];
        if is_space(r[0]) || r[0] == b';' {
            i += 1;
        } else if (r.starts_with(b"--")
            && (pg || r.get(2).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n'))))
            || (!pg && r[0] == b'#')
        {
            let n = r.iter().position(|&c| c == b'\n').unwrap_or(r.len());
            if r[..n].iter().any(|c| ctrl(c) || *c == b'\r') {
                return false;
            }
            i += n;
        } else if r.starts_with(b"/*") {
            let Some(n) = memmem::find(&r[2..], b"*/") else {
                return false;
            };
            let mut body = &r[2..2 + n];
            if let Some((maria, m)) = exec_marker(b, i).filter(|_| !pg) {
                // Executable: blank if it holds nothing, or (MariaDB's) it is for no server
                // there is (MySQL reads `/*M!` as a plain comment).
                let v = &body[m - 2..];
                let digits = v.iter().take(6).take_while(|c| c.is_ascii_digit()).count();
                body = &v[digits..];
                let never = maria && digits == 6 && number(&v[..6]) > NEWEST;
                if !never && !body.iter().all(|c| is_space(*c)) {
                    return false;
                }
            }
            if memmem::find(body, b"/*").is_some() || body.iter().any(ctrl) {
                return false;
            }
            i += n + 4;
        } else {
            return false;
        }
    }
    true
}

/// Whitespace to PostgreSQL (16+: with \v) and MySQL.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

/// Bytes that start a name: PostgreSQL and MySQL both take bytes above 0x7F as letters.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// Bytes that continue a name: `x$q$` is one name, not `x` and a dollar quote.
fn ident(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// A word, upper-cased, when short enough to be a keyword we look for (else blank):
/// no allocation per word on the hot path.
type Word = [u8; 12];

fn word(w: &[u8]) -> Word {
    let mut k = [0u8; 12];
    if w.len() <= k.len() {
        for (d, c) in k.iter_mut().zip(w) {
            *d = c.to_ascii_uppercase();
        }
    }
    k
}

fn as_str(w: &Word) -> &str {
    let n = w.iter().position(|&c| c == 0).unwrap_or(w.len());
    std::str::from_utf8(&w[..n]).unwrap_or("")
}

/// A word of a statement, the punctuation before it, and where it ends in the
/// statement's text.
#[derive(Clone, Copy)]
struct Tok {
    w: Word,
    before: u8,
    end: usize,
}

struct Lexer<'a> {
    b: &'a [u8],
    d: Dialect,
    r: Reading,
    /// The executable comments met, and how this reading took each.
    met: Vec<(usize, Take)>,
}

impl Lexer<'_> {
    fn mb_char(&self, i: usize) -> Option<usize> {
        self.r.mb.and_then(|m| m.char_len(self.b, i))
    }

    /// End (exclusive) of the quoted run starting at `i` with quote `q`.
    fn quoted(&self, i: usize, q: u8, escapes: bool) -> usize {
        let b = self.b;
        let mut j = i + 1;
        while j < b.len() {
            if let Some(n) = self.mb_char(j) {
                j += n;
                continue;
            }
            let c = b[j];
            if escapes && c == b'\\' {
                j += 2;
                continue;
            }
            if c == q {
                if b.get(j + 1) == Some(&q) {
                    j += 2;
                    continue;
                }
                return j + 1;
            }
            j += 1;
        }
        b.len()
    }

    /// A '...' string from `i`: in PostgreSQL it goes on after whitespace holding a
    /// newline and another quote (`E'a'\n'\''` is one E'' string, escapes and all).
    fn string(&self, i: usize, escapes: bool) -> usize {
        let mut j = self.quoted(i, b'\'', escapes);
        while self.d == Dialect::Postgres
            && let Some(k) = continuation(self.b, j)
        {
            j = self.quoted(k, b'\'', escapes);
        }
        j
    }

    /// PostgreSQL `$tag$...$tag$` from `i`, or the lone `$`.
    fn dollar(&self, i: usize) -> usize {
        let b = self.b;
        let rest = &b[i + 1..];
        let n = rest
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80));
        match n {
            Some(n) if rest[n] == b'$' && !rest.first().is_some_and(u8::is_ascii_digit) => {
                let tag = &b[i..i + n + 2];
                memmem::find(&b[i + tag.len()..], tag).map_or(b.len(), |p| i + 2 * tag.len() + p)
            }
            _ => i + 1,
        }
    }

    fn word_end(&self, mut i: usize) -> usize {
        while i < self.b.len() {
            if let Some(n) = self.mb_char(i) {
                i += n;
            } else if ident(self.b[i]) {
                i += 1;
            } else {
                break;
            }
        }
        i
    }

    /// The end of a `--` (MySQL: `-- `, `#`) comment at `i`, if one starts there.
    fn line_comment(&self, i: usize, ctx: &mut Ctx) -> Option<usize> {
        let (b, pg) = (self.b, self.d == Dialect::Postgres);
        let dashes = b[i..].starts_with(b"--");
        let comment = if pg || !dashes {
            dashes || (!pg && b[i] == b'#')
        } else {
            // MySQL: `--` then a space or a control character (the end reads as NUL).
            match b.get(i + 2) {
                None => true,
                Some(&c) if c <= b' ' || c == 0x7F => true,
                // Whether a byte above 0x7F is a space depends on the character set
                // (latin1's 0xA0 is).
                Some(&c) if c >= 0x80 => {
                    ctx.unreadable = true;
                    false
                }
                _ => false,
            }
        };
        if !comment {
            return None;
        }
        // PostgreSQL ends it at \n or \r, MySQL at \n or NUL.
        let end = |c: &u8| {
            if pg {
                matches!(c, b'\n' | b'\r')
            } else {
                matches!(c, b'\n' | 0)
            }
        };
        Some(i + b[i..].iter().position(end).unwrap_or(b.len() - i))
    }

    /// The end of the `/*` comment at `i`, or of the marker of a MySQL executable comment
    /// whose content runs (`in_exec` then set).
    fn comment(&mut self, i: usize, in_exec: &mut bool) -> usize {
        let b = self.b;
        if self.d == Dialect::Postgres {
            // Nested comments.
            let (mut j, mut depth) = (i, 0usize);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        return j;
                    }
                } else {
                    j += 1;
                }
            }
            return b.len();
        }
        let take = if exec_marker(b, i).is_some() {
            let t = self.r.exec.take(b, i);
            self.met.push((i, t));
            t
        } else {
            Take::Plain
        };
        match take {
            Take::Code(n) => {
                *in_exec = true;
                i + n
            }
            Take::Skip => close(b, i + 2, true),
            Take::Plain => close(b, i + 2, false),
        }
    }

    fn split(&mut self, ctx: &mut Ctx) -> Vec<Statement> {
        let (b, pg) = (self.b, self.d == Dialect::Postgres);
        let mut out = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut words: Vec<Tok> = Vec::new();
        let (mut i, mut prev, mut in_exec, mut e_string) = (0, b' ', false, false);
        while i < b.len() {
            let (c, next, start) = (b[i], b.get(i + 1).copied(), i);
            if let Some(end) = self.line_comment(i, ctx) {
                i = end;
                cur.push(b' ');
                continue;
            }
            if c == b'/' && next == Some(b'*') {
                i = self.comment(i, &mut in_exec);
                cur.push(b' ');
                continue;
            }
            if in_exec && c == b'*' && next == Some(b'/') {
                // The end of an executable comment that runs (elsewhere `*/` is `*`, `/`).
                (i, in_exec) = (i + 2, false);
                cur.push(b' ');
                continue;
            }
            match c {
                b';' => {
                    self.finish(&cur, &words, &mut out, ctx);
                    cur.clear();
                    words.clear();
                    // MySQL reads each statement of a multi-statement query afresh.
                    (i, prev, in_exec) = (i + 1, b' ', false);
                    continue;
                }
                b'\'' => {
                    let escapes = self.r.escapes || std::mem::take(&mut e_string);
                    i = self.string(i, escapes);
                }
                b'"' => i = self.quoted(i, b'"', !pg && self.r.dquote),
                b'`' if !pg => i = self.quoted(i, b'`', false),
                b'$' if pg => i = self.dollar(i),
                c if ident_start(c) => {
                    i = self.word_end(i);
                    words.push(Tok {
                        w: word(&b[start..i]),
                        before: prev,
                        end: cur.len() + i - start,
                    });
                    prev = b'w';
                    // E'...' only where the E is a token of its own (not `ESCAPE'\'`).
                    e_string = pg && i - start == 1 && c | 0x20 == b'e' && b.get(i) == Some(&b'\'');
                }
                _ => {
                    if !is_space(c) {
                        prev = c;
                    }
                    i += 1;
                }
            }
            cur.extend_from_slice(&b[start..i.min(b.len())]);
        }
        self.finish(&cur, &words, &mut out, ctx);
        out
    }

    fn finish(&self, cur: &[u8], words: &[Tok], out: &mut Vec<Statement>, ctx: &mut Ctx) {
        if words.is_empty() && cur.iter().all(|c| is_space(*c)) {
            return;
        }
        let kinds = self.kinds(cur, 0, words, ctx);
        let text = String::from_utf8_lossy(cur).trim().to_string();
        out.push(Statement { text, kinds });
    }
}

/// The end of a MySQL comment whose body starts at `j`: past its first `*/`, or (`nest`:
/// a versioned comment the server skips) one level of `/* */` inside it.
fn close(b: &[u8], mut j: usize, nest: bool) -> usize {
    while j < b.len() {
        if b[j..].starts_with(b"*/") {
            return j + 2;
        }
        if nest && b[j..].starts_with(b"/*") {
            j = close(b, j + 2, false);
            continue;
        }
        j += 1;
    }
    b.len()
}

/// PostgreSQL: where a string that closed at `j` goes on (`'a'`, whitespace with a
/// newline and `--` comments, `'b'`): the next quote.
fn continuation(b: &[u8], mut j: usize) -> Option<usize> {
    let mut newline = false;
    while j < b.len() {
        match b[j] {
            b'\n' | b'\r' => newline = true,
            b' ' | b'\t' | 0x0B | 0x0C => {}
            b'-' if b.get(j + 1) == Some(&b'-') => {
                j += b[j..]
                    .iter()
                    .position(|c| matches!(c, b'\n' | b'\r'))
                    .unwrap_or(b.len() - j);
                continue;
            }
            b'\'' if newline => return Some(j),
            _ => return None,
        }
        j += 1;
    }
    None
}
