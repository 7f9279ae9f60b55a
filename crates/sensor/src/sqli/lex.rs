//! A SQL lexer that never fails: every byte sequence becomes tokens.
//!
//! Injected text is rarely well-formed SQL on its own, and an attacker chooses the bytes,
//! so the lexer accepts the union of the MySQL, PostgreSQL, SQL Server and Oracle lexical
//! rules (strings in `'` `"` and backticks with both doubling and backslash escapes, `--`
//! and `#` comments, `/* */` including MySQL's executable `/*! */`, hex/binary/exponent
//! numbers, `@var` and `@@sysvar`), and it turns anything it does not know into an
//! `Other` token instead of stopping. Token count is capped so hostile input costs a
//! bounded amount of work.

use super::words::{Word, classify};

/// At most this many tokens are produced; the judge only ever needs the first few dozen
/// to decide, and capping keeps the worst case linear in a small constant.
pub const MAX_TOKENS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A string literal; `closed` is false when the input ended inside it.
    Str {
        quote: u8,
        closed: bool,
    },
    Num,
    /// An identifier, keyword or function name, classified.
    Word(Word),
    /// A quoted identifier (backticks, `[brackets]`).
    Ident,
    /// `@name` (user variable) or `@@name` (system variable).
    Var {
        system: bool,
    },
    /// Arithmetic, bitwise or string operators: `+ - * / % ^ & | ~ << >> ||` (when not logic).
    Op,
    /// Comparison operators: `= == <> != < > <= >= <=> !< !>`, also `?|`-style JSON operators.
    Cmp,
    /// `&&`, `||` (treated as logic, MySQL), `!`.
    Logic,
    /// Unary-only operator `!` / `~` is `Op`/`Logic`; `::` casts.
    Cast,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    /// A comment. `to_end`: it runs to the end of the input (truncates the query).
    Comment {
        kind: CommentKind,
        to_end: bool,
    },
    /// `?`, `:name`, `$1` placeholders and anything unknown.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentKind {
    /// `-- ` or `--` at the end.
    Dash,
    /// `#`
    Hash,
    /// `/* */`
    Block,
    /// `/*! */` (MySQL executes its content): the lexer emits the content as tokens
    /// instead, so this kind only marks an unterminated `/*!` at the end.
    MysqlExec,
    /// A 0x16 byte: Microsoft Access (Jet/ACE) ignores the statement's text after it,
    /// which makes it Access's comment (sqlmap's Access payloads end with one).
    Control,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Where lexing starts: outside any string, or inside a string opened by the SQL text
/// around the injected value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Start {
    Code,
    InString(u8),
}

/// Lex `s`. With `Start::InString(q)` the first token is the rest of that string (an
/// unclosed `Str` when the value never leaves it). The result holds at most
/// [`MAX_TOKENS`] tokens.
/// The index of the `)` that closes the `(` at `toks[open]`, looking at `limit` tokens
/// at most.
pub fn group_end(toks: &[Token], open: usize, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (n, t) in toks.iter().enumerate().skip(open).take(limit) {
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(n);
                }
            }
            _ => {}
        }
    }
    None
}

pub fn lex(s: &[u8], start: Start) -> Vec<Token> {
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    if let Start::InString(q) = start {
        let (end, closed) = string_end(s, 0, q, true);
        out.push(Token {
            tok: Tok::Str { quote: q, closed },
            start: 0,
            end,
        });
        i = end;
    }
    // ODBC escapes MySQL evaluates, `{x expr}` (sqlmap's odbcbrace): open ones.
    let mut odbc = 0usize;
    while i < s.len() && out.len() < MAX_TOKENS {
        let c = s[i];
        if is_space(c) {
            i += 1;
            continue;
        }
        if c == b'}' && odbc > 0 {
            odbc -= 1;
            out.push(Token {
                tok: Tok::RParen,
                start: i,
                end: i + 1,
            });
            i += 1;
            continue;
        }
        if c == b'{' {
            let ident = s[i + 1..].iter().take_while(|&&b| ident_byte(b)).count();
            if ident > 0 && s.get(i + 1 + ident).is_some_and(|&b| is_space(b)) {
                odbc += 1;
                out.push(Token {
                    tok: Tok::LParen,
                    start: i,
                    end: i + 1 + ident,
                });
                i += 1 + ident;
                continue;
            }
        }
        let (tok, end) = lex_one(s, i);
        // A comment between a function's name and its `(` (sqlmap's
        // commentbeforeparentheses, `CHAR/**/(113)`) is a blank: the call stays a call.
        if let Tok::Comment {
            kind: CommentKind::Block,
            to_end: false,
        } = tok
            && out.last().is_some_and(|t| matches!(t.tok, Tok::Word(_)))
            && s[end..].iter().find(|&&b| !is_space(b)) == Some(&b'(')
        {
            i = end;
            continue;
        }
        // MySQL's `/*! ... */` executes its content: lex the inside as code (a version
        // number right after `!` is part of the comment marker).
        if let Tok::Comment {
            kind: CommentKind::MysqlExec,
            ..
        } = tok
        {
            let mut j = i + 3;
            while j < s.len() && j < i + 3 + 6 && s[j].is_ascii_digit() {
                j += 1;
            }
            let inner_end = find(s, j, b"*/").unwrap_or(s.len());
            for t in lex(&s[j..inner_end], Start::Code) {
                if out.len() >= MAX_TOKENS {
                    break;
                }
                out.push(Token {
                    tok: t.tok,
                    start: t.start + j,
                    end: t.end + j,
                });
            }
            i = if inner_end < s.len() {
                inner_end + 2
            } else {
                s.len()
            };
            continue;
        }
        out.push(Token { tok, start: i, end });
        debug_assert!(end > i);
        i = end;
    }
    // Comments that only other comments follow cut the query off just the same.
    for t in out.iter_mut().rev() {
        match &mut t.tok {
            Tok::Comment { to_end, .. } => *to_end = true,
            _ => break,
        }
    }
    out
}

fn is_space(c: u8) -> bool {
    // MySQL also treats 0x0B, 0x0C and 0xA0 (NBSP, latin1) as whitespace, SQL Server
    // every control byte from 0x01 to 0x0F; attackers use them to separate keywords
    // without a plain space (sqlmap's space2mysqlblank, space2mssqlblank).
    matches!(c, b' ' | 0x00..=0x0f | 0xa0)
}

fn find(s: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(&s[from.min(s.len())..], needle).map(|p| p + from)
}

/// End of a string starting at `i` (just after its opening quote when `inside`).
/// Doubled quotes and backslash escapes stay inside.
fn string_end(s: &[u8], i: usize, q: u8, inside: bool) -> (usize, bool) {
    let mut j = if inside { i } else { i + 1 };
    while j < s.len() {
        let c = s[j];
        if c == b'\\' && q != b'`' {
            j += 2;
            continue;
        }
        if c == q {
            if s.get(j + 1) == Some(&q) && !(inside && j == i) {
                j += 2;
                continue;
            }
            return (j + 1, true);
        }
        j += 1;
    }
    (s.len(), false)
}

/// Does the byte at `j` continue a word? A lone 0xA0 (after an ASCII byte) is latin1's
/// NBSP, a blank to MySQL; after a UTF-8 lead byte it continues a character (`à` is
/// C3 A0).
fn word_byte_at(s: &[u8], j: usize) -> bool {
    ident_byte(s[j]) && !(s[j] == 0xa0 && (j == 0 || s[j - 1] < 0x80))
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn lex_one(s: &[u8], i: usize) -> (Tok, usize) {
    let c = s[i];
    let next = s.get(i + 1).copied().unwrap_or(0);
    match c {
        0x16 => (
            Tok::Comment {
                kind: CommentKind::Control,
                to_end: true,
            },
            s.len(),
        ),
        b'\'' | b'"' => {
            let (end, closed) = string_end(s, i, c, false);
            (Tok::Str { quote: c, closed }, end)
        }
        b'`' => (Tok::Ident, string_end(s, i, b'`', false).0),
        b'[' => {
            // SQL Server `[ident]`; any other `[` opens a subscript (PostgreSQL's and
            // SQLite's `a[i]`, JSON paths), and a value placed in one can close it and
            // open another (`1]-(SELECT ...)|[1`, sqlmap's bracket boundary): brackets
            // group as parentheses do.
            match memchr::memchr(b']', &s[i..]) {
                Some(p) if p > 1 && s[i + 1..i + p].iter().all(|&b| ident_byte(b) || b == b' ') => {
                    (Tok::Ident, i + p + 1)
                }
                _ => (Tok::LParen, i + 1),
            }
        }
        b']' => (Tok::RParen, i + 1),
        // `--` followed by a letter or digit is two minus signs (MySQL's rule, and how
        // slugs and base64url tokens use it), anything else starts a comment; so does
        // `--word` that a line break ends (`1--xYz\nAND--Qw\n1=1`: the comment every
        // other dialect reads, and what sqlmap's comment tampers write).
        b'-' if next == b'-'
            && (!s.get(i + 2).is_some_and(|c| c.is_ascii_alphanumeric())
                || line_ends_word(s, i + 2)) =>
        {
            comment_line(s, i, CommentKind::Dash)
        }
        b'#' => comment_line(s, i, CommentKind::Hash),
        b'/' if next == b'*' => {
            if s.get(i + 2) == Some(&b'!') {
                return (
                    Tok::Comment {
                        kind: CommentKind::MysqlExec,
                        to_end: false,
                    },
                    i + 3,
                );
            }
            match find(s, i + 2, b"*/").map(|close| block_end(s, i + 2, close)) {
                Some(p) => (
                    Tok::Comment {
                        kind: CommentKind::Block,
                        to_end: p + 2 >= s.len(),
                    },
                    p + 2,
                ),
                None => (
                    Tok::Comment {
                        kind: CommentKind::Block,
                        to_end: true,
                    },
                    s.len(),
                ),
            }
        }
        // MySQL's `\N` is NULL.
        b'\\' if next == b'N' => (Tok::Word(Word::Literal), i + 2),
        // A leading `*/` closes a comment the application's query opened.
        b'*' if next == b'/' && i == 0 => (
            Tok::Comment {
                kind: CommentKind::Block,
                to_end: false,
            },
            2,
        ),
        b'(' => (Tok::LParen, i + 1),
        b')' => (Tok::RParen, i + 1),
        b',' => (Tok::Comma, i + 1),
        b';' => (Tok::Semi, i + 1),
        // PostgreSQL JSON/array operators: @> <@ @? @@ (followed by space or a quote).
        b'@' if matches!(next, b'>' | b'?')
            || (next == b'@' && matches!(s.get(i + 2), Some(b' ' | b'\''))) =>
        {
            (Tok::Cmp, i + 2)
        }
        b'-' if next == b'>' => (
            Tok::Cmp,
            i + if s.get(i + 2) == Some(&b'>') { 3 } else { 2 },
        ),
        b'<' if next == b'@' => (Tok::Cmp, i + 2),
        // (`@#x` and `@$x` are SQL Server variables: `#` and `$` are name bytes there.)
        b'@' if !(next == b'@'
            || ident_byte(next)
            || matches!(next, b'\'' | b'"' | b'`' | b'#' | b'$')) =>
        {
            (Tok::Other, i + 1)
        }
        b'@' => {
            let system = next == b'@';
            let mut j = i + if system { 2 } else { 1 };
            if j < s.len() && matches!(s[j], b'\'' | b'"' | b'`') {
                // @'quoted var'
                let (e, _) = string_end(s, j, s[j], false);
                return (Tok::Var { system }, e);
            }
            while j < s.len() && (ident_byte(s[j]) || matches!(s[j], b'.' | b'#' | b'$' | b'@')) {
                j += 1;
            }
            (Tok::Var { system }, j)
        }
        b'0'..=b'9' => (Tok::Num, number_end(s, i)),
        b'$' if dollar_tag(s, i).is_some() => {
            // PostgreSQL dollar quoting: $tag$ ... $tag$
            let tag_end = dollar_tag(s, i).unwrap_or(i + 1);
            let tag = &s[i..tag_end];
            match memchr::memmem::find(&s[tag_end..], tag) {
                Some(p) => (
                    Tok::Str {
                        quote: b'$',
                        closed: true,
                    },
                    tag_end + p + tag.len(),
                ),
                None => (
                    Tok::Str {
                        quote: b'$',
                        closed: false,
                    },
                    s.len(),
                ),
            }
        }
        b':' if next == b'=' => (Tok::Cmp, i + 2),
        b'.' if next.is_ascii_digit() => (Tok::Num, number_end(s, i)),
        b'.' => (Tok::Dot, i + 1),
        b':' if next == b':' => (Tok::Cast, i + 2),
        b'=' => (Tok::Cmp, i + if next == b'=' { 2 } else { 1 }),
        b'<' => match (next, s.get(i + 2).copied()) {
            (b'=', Some(b'>')) => (Tok::Cmp, i + 3),
            (b'<', _) => (Tok::Op, i + 2),
            (b'=' | b'>', _) => (Tok::Cmp, i + 2),
            _ => (Tok::Cmp, i + 1),
        },
        b'>' => match next {
            b'>' => (Tok::Op, i + 2),
            b'=' => (Tok::Cmp, i + 2),
            _ => (Tok::Cmp, i + 1),
        },
        b'!' => match next {
            b'=' | b'<' | b'>' => (Tok::Cmp, i + 2),
            b'~' => (Tok::Cmp, i + 2),
            _ => (Tok::Logic, i + 1),
        },
        b'~' if next == b'*' => (Tok::Cmp, i + 2),
        b'&' if next == b'&' => (Tok::Logic, i + 2),
        b'|' if next == b'|' => (Tok::Logic, i + 2),
        b'?' if matches!(next, b'|' | b'&') => (Tok::Cmp, i + 2),
        b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'&' | b'|' | b'~' => (Tok::Op, i + 1),
        c if ident_byte(c) => word(s, i),
        _ => (Tok::Other, i + 1),
    }
}

/// End of a `$tag$` opener at `i`, if there is one.
fn dollar_tag(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < s.len() && j < i + 32 && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
        if s[j].is_ascii_digit() && j == i + 1 {
            return None; // $1 is a placeholder
        }
        j += 1;
    }
    (j < s.len() && s[j] == b'$').then_some(j + 1)
}

/// Where a block comment opened before `from`, whose first `*/` is at `first_close`,
/// ends: when comments nest (PostgreSQL and SQL Server: `/* a /* b */ c */`), at the
/// `*/` that balances the ones it holds; otherwise, and as MySQL and SQLite read it, at
/// the first.
fn block_end(s: &[u8], from: usize, first_close: usize) -> usize {
    // (A `/*` that starts before the first `*/`, even sharing its `*`: `/* /*/ */ */`.)
    if memchr::memmem::find(&s[from..first_close + 1], b"/*").is_none() {
        return first_close;
    }
    nested_end(s, from).unwrap_or(first_close)
}

/// The `*/` that balances a comment opened before `from`, if the nesting balances.
fn nested_end(s: &[u8], from: usize) -> Option<usize> {
    let (mut depth, mut j) = (1usize, from);
    while j + 1 < s.len() {
        match (s[j], s[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// Does the run of non-blank bytes at `from` end at a line break?
fn line_ends_word(s: &[u8], from: usize) -> bool {
    s[from.min(s.len())..]
        .iter()
        .find(|c| c.is_ascii_whitespace())
        .is_some_and(|c| matches!(c, b'\n' | b'\r'))
}

fn comment_line(s: &[u8], i: usize, kind: CommentKind) -> (Tok, usize) {
    match memchr::memchr(b'\n', &s[i..]) {
        Some(p) => {
            // Only whitespace after the newline still means the comment ends the query.
            let rest = &s[i + p..];
            let to_end = rest.iter().all(|&b| is_space(b));
            (Tok::Comment { kind, to_end }, i + p + 1)
        }
        None => (Tok::Comment { kind, to_end: true }, s.len()),
    }
}

fn number_end(s: &[u8], i: usize) -> usize {
    let mut j = i;
    if s[i] == b'0' && matches!(s.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
        let hex = matches!(s[i + 1], b'x' | b'X');
        j = i + 2;
        while j < s.len()
            && (if hex {
                s[j].is_ascii_hexdigit()
            } else {
                matches!(s[j], b'0' | b'1')
            })
        {
            j += 1;
        }
        if j > i + 2 {
            return j;
        }
        j = i + 1;
    }
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
    }
    if j < s.len() && matches!(s[j], b'e' | b'E') {
        let mut k = j + 1;
        if k < s.len() && matches!(s[k], b'+' | b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    // Oracle's BINARY_DOUBLE and BINARY_FLOAT suffixes, which let a keyword follow with
    // no blank (`1DUNION ALL SELECT`, sqlmap's dunion tamper).
    if j < s.len()
        && matches!(s[j], b'd' | b'D' | b'f' | b'F')
        && s.len() >= j + 6
        && s[j + 1..j + 6].eq_ignore_ascii_case(b"union")
    {
        return j + 1;
    }
    // MySQL reads `1union` as `1 union`, but `1abc` as an identifier: an identifier that
    // starts with digits. Letters glued to a number other than a keyword make a word.
    if j < s.len() && word_byte_at(s, j) {
        let (t, e) = word(s, j);
        if matches!(t, Tok::Word(w) if w.is_keyword()) {
            return j;
        }
        return e;
    }
    j
}

fn word(s: &[u8], i: usize) -> (Tok, usize) {
    let mut j = i;
    while j < s.len() && word_byte_at(s, j) {
        j += 1;
    }
    // N'..', X'..', B'..', E'..' (and _charset'..') string literals.
    if j < s.len() && s[j] == b'\'' {
        let p = &s[i..j];
        if p.len() == 1 && matches!(p[0] | 0x20, b'n' | b'x' | b'b' | b'e' | b'q')
            || (p.len() > 1 && p[0] == b'_')
        {
            let (e, closed) = string_end(s, j, b'\'', false);
            return (
                Tok::Str {
                    quote: b'\'',
                    closed,
                },
                e,
            );
        }
    }
    // A function call is a name followed by `(`, possibly after spaces or comments are
    // skipped by the judge; here only the word itself is classified.
    (Tok::Word(classify(&s[i..j])), j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str, start: Start) -> Vec<Tok> {
        lex(s.as_bytes(), start)
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn strings_comments_numbers() {
        let t = kinds("'a''b' \"c\\\"d\" 0x1F 1e5 .5 -- x", Start::Code);
        assert_eq!(t.len(), 6);
        assert!(matches!(t[0], Tok::Str { closed: true, .. }));
        assert!(matches!(
            t[1],
            Tok::Str {
                quote: b'"',
                closed: true
            }
        ));
        assert_eq!(&t[2..5], &[Tok::Num, Tok::Num, Tok::Num]);
        assert!(matches!(
            t[5],
            Tok::Comment {
                kind: CommentKind::Dash,
                to_end: true
            }
        ));
    }

    #[test]
    fn starts_inside_a_string() {
        let t = kinds("O'Brien", Start::InString(b'\''));
        assert!(matches!(t[0], Tok::Str { closed: true, .. }));
        assert!(matches!(t[1], Tok::Word(_)));
        assert_eq!(t.len(), 2);
        let t = kinds("O'Brien'", Start::InString(b'\''));
        assert!(matches!(t[2], Tok::Str { closed: false, .. }));
        let t = kinds("no quote here", Start::InString(b'\''));
        assert_eq!(
            t,
            vec![Tok::Str {
                quote: b'\'',
                closed: false
            }]
        );
    }

    #[test]
    fn mysql_executable_comment_is_code() {
        let t = kinds("1/*!50000union*/select", Start::Code);
        assert_eq!(t.len(), 3);
        assert!(matches!(t[1], Tok::Word(Word::Union)));
    }

    #[test]
    fn token_cap_holds() {
        let s = "(".repeat(10_000);
        assert_eq!(lex(s.as_bytes(), Start::Code).len(), MAX_TOKENS);
    }
}
