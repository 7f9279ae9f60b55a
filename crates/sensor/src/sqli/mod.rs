//! SQL injection: is a parameter value, placed into a query by an application, able to
//! change that query's structure? And does a whole query from the SQL wire carry the
//! marks of an injection that already happened?
//!
//! Design (our own, in the spirit of libinjection's "tokenize in each context"): the
//! value is lexed up to four times, as the application may have placed it: as-is (a
//! number or an expression), inside a single-quoted string, inside a double-quoted
//! string, inside a backtick-quoted MySQL identifier (the last three only when the value
//! holds that quote). Inside a block comment (a value that closes one it did not open)
//! and after a `;` the grammar cannot reach, the rest is judged as a bare value.
//! In a quoted context the first token is the rest of that string, so the value only
//! matters if it leaves the string. Each token stream is walked by [`judge`], which
//! checks that the value forms valid SQL *in that place* (with the application's own
//! closing quote) and collects signals; [`decide`] turns structure and signals into a
//! verdict. See `docs/dpi.md` for the rules.

pub mod chain;
pub mod judge;
pub mod lex;
mod nosql;
pub mod query;
pub mod words;

use crate::profile::{Profile, class};
use judge::{Walk, sig, signal_names};
use lex::{Start, lex};

/// Where the value was assumed to sit in the application's query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlContext {
    /// As-is: a number, or an expression.
    Bare,
    /// Inside `'...'`.
    SingleQuote,
    /// Inside `"..."`.
    DoubleQuote,
    /// Inside a MySQL identifier, `` `...` `` (`ORDER BY `col``).
    Backtick,
    /// Inside a block comment, `/* ... */`, that the value closes.
    Comment,
}

/// A detected injection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SqliMatch {
    pub context: SqlContext,
    /// Why: the signals the judge saw (`union_select`, `constant_comparison`, ...).
    pub signals: Vec<&'static str>,
    /// The token classes of the value in that context, one letter each (see
    /// [`fingerprint`]), at most 16.
    pub fingerprint: String,
}

/// Values longer than this are judged on their first `MAX_VALUE` bytes: every
/// injection needs its structure near the start, and the cost stays bounded.
pub const MAX_VALUE: usize = 8 * 1024;

/// Judge one decoded parameter value.
///
/// An XML document is judged by its attribute values and text as well (entity-decoded,
/// as an XML parser hands them to the application), and a path by each of its
/// segments (REST routes pass segments to queries: `/items/1 OR 1=1`).
pub fn detect(value: &[u8]) -> Option<SqliMatch> {
    detect_profiled(value, Profile::of(value))
}

/// A window of a long value (see [`crate::window`]): no more tokens than the lexer
/// reads, and half of it shared with the next.
const WINDOW: usize = lex::MAX_TOKENS;

/// [`detect`] with the value's byte classes already known.
pub(crate) fn detect_profiled(value: &[u8], p: Profile) -> Option<SqliMatch> {
    if let Some(m) = nosql_operator(value) {
        return Some(m);
    }
    if let Some(m) = detect_prefix(value, p) {
        return Some(m);
    }
    // Past what one reading covers (its first MAX_VALUE bytes, MAX_TOKENS tokens): the
    // rest window by window (`1-0-0-...-0 UNION SELECT`, 256 harmless tokens first).
    if long(value) {
        return crate::window::rest(value, WINDOW, WINDOW / 2)
            .find_map(|w| detect_prefix(w, Profile::of(w)));
    }
    None
}

/// A MongoDB operator where a value belongs (`password[$ne]`, `{"$where": ...}`).
fn nosql_operator(value: &[u8]) -> Option<SqliMatch> {
    nosql::operator(value)?;
    Some(SqliMatch {
        context: SqlContext::Bare,
        signals: vec!["nosql_operator"],
        fingerprint: String::new(),
    })
}

/// Longer than one reading covers.
fn long(value: &[u8]) -> bool {
    value.len() > WINDOW
        && (value.len() > MAX_VALUE || lex(value, Start::Code).len() >= lex::MAX_TOKENS)
}

/// The judgement of a value's first [`MAX_VALUE`] bytes.
fn detect_prefix(value: &[u8], p: Profile) -> Option<SqliMatch> {
    let p = p.cut(value, MAX_VALUE);
    let value = &value[..value.len().min(MAX_VALUE)];
    if !may_inject_profiled(value, p) {
        // Nothing the token judge could object to, in the value or in any segment of
        // it; only the catalog names, found even inside words, remain.
        if !value.trim_ascii_start().starts_with(b"<") {
            return catalog_reference_profiled(value, p);
        }
    }
    detect_tokens(value).or_else(|| parts(value).iter().find_map(|p| detect_one(p)))
}

fn detect_one(value: &[u8]) -> Option<SqliMatch> {
    if !may_inject(value) {
        return catalog_reference(value);
    }
    detect_tokens(value)
}

/// [`detect`] without the [`may_inject`] shortcut: the reference it must agree with.
#[doc(hidden)]
pub fn detect_exhaustive(value: &[u8]) -> Option<SqliMatch> {
    if let Some(m) = nosql_operator(value) {
        return Some(m);
    }
    let whole = |value: &[u8]| {
        let value = &value[..value.len().min(MAX_VALUE)];
        detect_tokens(value).or_else(|| parts(value).iter().find_map(|p| detect_tokens(p)))
    };
    whole(value).or_else(|| {
        long(value)
            .then(|| crate::window::rest(value, WINDOW, WINDOW / 2).find_map(whole))
            .flatten()
    })
}

/// Most parts judged on their own: XML attributes and texts, or path segments.
const MAX_PARTS: usize = 64;

/// The values inside `value`: the attribute values and texts of an XML document
/// (entity-decoded), the segments of a path, or what follows a URL the value starts
/// with (`http://h/page AND 1=BENCHMARK(...)`: what sqlmap appends to a `Referer`),
/// judged with a number in the URL's place. Empty for anything else.
fn parts(value: &[u8]) -> Vec<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    let v = value.trim_ascii_start();
    let mut out: Vec<Cow<'_, [u8]>> = Vec::new();
    if v.starts_with(b"<") {
        let decoded = |b: &[u8]| -> Cow<'_, [u8]> {
            if b.contains(&b'&') {
                Cow::Owned(crate::decode::html_decode(b))
            } else {
                Cow::Owned(b.to_vec())
            }
        };
        let mut i = 0;
        while i < v.len() && out.len() < MAX_PARTS {
            if v[i] == b'<' {
                // A tag: its quoted attribute values.
                let end = memchr::memchr(b'>', &v[i..]).map_or(v.len(), |p| i + p);
                let mut j = i + 1;
                while j < end {
                    if matches!(v[j], b'"' | b'\'')
                        && j > 0
                        && v[..j].trim_ascii_end().ends_with(b"=")
                    {
                        let q = v[j];
                        let close = memchr::memchr(q, &v[j + 1..]).map_or(v.len(), |p| j + 1 + p);
                        out.push(decoded(&v[j + 1..close.min(v.len())]));
                        j = close + 1;
                    } else {
                        j += 1;
                    }
                }
                i = end.max(j.min(v.len())) + 1;
            } else {
                // Text up to the next tag.
                let end = memchr::memchr(b'<', &v[i..]).map_or(v.len(), |p| i + p);
                let text = v[i..end].trim_ascii();
                if !text.is_empty() {
                    out.push(decoded(text));
                }
                i = end;
            }
        }
        out.retain(|p| !p.is_empty());
    } else if let Some(rest) = after_url(v) {
        let mut p = b"1".to_vec();
        p.extend_from_slice(rest);
        out.push(Cow::Owned(p));
    } else if v.starts_with(b"/") && v.len() > 1 {
        out.extend(
            v.split(|&b| b == b'/')
                .filter(|s| !s.is_empty())
                .take(MAX_PARTS)
                .map(Cow::Borrowed),
        );
    }
    out
}

/// What follows a leading `http://` or `https://` URL, from the blank, `;`, `,`, `)`
/// or inline comment (`/*`) that ends it, when something does.
fn after_url(v: &[u8]) -> Option<&[u8]> {
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| v.len() > s.len() && v[..s.len()].eq_ignore_ascii_case(s))?;
    let url = &v[scheme.len()..];
    let end = (0..url.len()).find(|&i| {
        matches!(
            url[i],
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | b';' | b',' | b')'
        ) || url[i..].starts_with(b"/*")
    })?;
    let rest = &v[scheme.len() + end..];
    (!rest.trim_ascii().is_empty()).then_some(rest)
}

/// Bytes that lex into tokens which, without a keyword, give the judge no signal that
/// [`decide`] acts on: words, numbers, blanks, `. , ( ) + - / % ^ : ?`. Everything
/// else (quotes, comparison and logic operators, comments, `;`, `@`, `*`, `|`, `&`,
/// `\\`, `$`, brackets) may.
pub(crate) static QUIET: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || b >= 0x80
            || matches!(
                b,
                b'_' | b' '
                    | b'\t'
                    | b'\n'
                    | b'\r'
                    | 0x0b
                    | 0x0c
                    | 0x00
                    | b'.'
                    | b','
                    | b'('
                    | b')'
                    | b'+'
                    | b'-'
                    | b'/'
                    | b'%'
                    | b'^'
                    | b':'
                    | b'?'
            );
        c += 1;
    }
    t
};

/// Can the token judge flag `value` in any context? `false` only when it certainly
/// cannot, which is most benign text (`c/ caridad s/n`, `/shop/items/7`,
/// `https://host/path?page=7`):
///
/// - no quote, so the two string contexts are skipped anyway and only the bare one
///   is left;
/// - only [`QUIET`] bytes, and none of the pairs that make a comment or operator of
///   them (`--`, `/*`, `::`): the tokens are words, numbers, `( ) , .` and arithmetic,
///   and arithmetic or a plain call (`f(x)`) is no verdict on its own; `=` only after
///   a plain name (`page=7`) and with no `(` anywhere, so it compares no two literals
///   and leaves no fragment open;
/// - no word is a keyword, function, literal or catalog name, nor one of the plain
///   words the judge reads as SQL when a `(` follows (`if`, `match`, ...); a word is
///   also checked from every letter that follows a digit, where MySQL may split a
///   keyword off a number (`1union`, and `e1union` after the dot of `1.e1union`).
///
/// Every bare-context verdict needs a comparison, logic, a comment, a `;`, a
/// variable with a keyword, or a keyword; this rules them all out. Checked against
/// [`detect_exhaustive`] on every corpus row and by a property test.
pub fn may_inject(value: &[u8]) -> bool {
    may_inject_profiled(value, Profile::of(value))
}

fn may_inject_profiled(value: &[u8], p: Profile) -> bool {
    let word_byte = |b: u8| WORD_BYTE[b as usize];
    let mut prev = 0u8;
    let mut equals = false;
    // Only quiet bytes and no `=`: of the loop below only the pairs are left to find
    // (`/*` needs a `*`, which is not quiet).
    if !p.any(class::SQL_LOUD | class::EQUALS) {
        if (p.any(class::DASH) && memchr::memmem::find(value, b"--").is_some())
            || (p.any(class::COLON) && memchr::memmem::find(value, b"::").is_some())
        {
            return true;
        }
    } else {
        for (i, &b) in value.iter().enumerate() {
            if b == b'=' {
                // `name=value` (query strings, URLs): a comparison of a name, which is no
                // constant comparison, when the token before `=` is a plain word: an
                // identifier run that starts with a letter and is not glued to a number by
                // a dot (`1.e5`). Anything else may compare literals (`1=1`, `(1)=1`).
                let before = value[..i].trim_ascii_end();
                let start = before
                    .iter()
                    .rposition(|&c| !word_byte(c))
                    .map_or(0, |p| p + 1);
                let run = &before[start..];
                if run.is_empty()
                    || run[0].is_ascii_digit()
                    || (start > 0 && before[start - 1] == b'.')
                {
                    return true;
                }
                equals = true;
            } else if !QUIET[b as usize]
                || matches!((prev, b), (b'-', b'-') | (b'/', b'*') | (b':', b':'))
            {
                return true;
            }
            prev = b;
        }
    }
    // With a comparison, a `(` may leave a fragment open (`a=f(`): not judged here.
    let paren = p.any(class::PAREN);
    if equals && paren {
        return true;
    }
    // The plain words the judge reads as SQL need a `(` after them. Words are the
    // runs of word bytes, found by a table lookup per byte.
    let n = value.len();
    let mut i = 0;
    while i < n {
        if !WORD_BYTE[value[i] as usize] {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && WORD_BYTE[value[i] as usize] {
            i += 1;
        }
        let w = &value[start..i];
        // `1union`, `0x1Funion`: MySQL splits a keyword off a number (at any letter of
        // a word that starts with a digit); `1.e1union`: also off the exponent of a
        // float that the dot cut from this word (at a letter after a digit). A split
        // that is not one only costs the full reading.
        if sql_word(w, paren)
            || (1..w.len()).any(|k| {
                (w[0].is_ascii_digit() || w[k - 1].is_ascii_digit())
                    && w[k].is_ascii_alphabetic()
                    && sql_word(&w[k..], paren)
            })
        {
            return true;
        }
    }
    false
}

/// The bytes [`may_inject`] reads as part of a word (as the lexer does): ASCII letters,
/// digits, `_`, and any byte of a multi-byte character but the no-break space's 0xa0.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || (b >= 0x80 && b != 0xa0);
        c += 1;
    }
    t
};

/// A word the judge reads as more than a plain name (`paren`: the value holds a `(`,
/// so the words that are SQL only before one count too).
fn sql_word(w: &[u8], paren: bool) -> bool {
    words::classify(w) != words::Word::Plain
        || (paren
            && PLAIN_BUT_SQL
                .iter()
                .any(|k| k.len() == w.len() && k.as_bytes().eq_ignore_ascii_case(w)))
}

/// Words [`words::classify`] calls plain that the judge still reads as SQL when a `(`
/// follows: the plain ones among [`words::also_function`]'s, and `match ... against`.
static PLAIN_BUT_SQL: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    [
        "if", "left", "right", "replace", "insert", "char", "mod", "div", "values", "database",
        "schema", "user", "binary", "exists", "format", "exec", "execute", "collate", "interval",
        "position", "any", "some", "convert", "cast", "row", "array", "like", "glob", "regexp",
        "match", "against",
    ]
    .into_iter()
    .filter(|k| words::classify(k.as_bytes()) == words::Word::Plain)
    .collect()
});

fn detect_tokens(value: &[u8]) -> Option<SqliMatch> {
    let contexts: [(SqlContext, Start); 4] = [
        (SqlContext::Bare, Start::Code),
        (SqlContext::SingleQuote, Start::InString(b'\'')),
        (SqlContext::DoubleQuote, Start::InString(b'"')),
        (SqlContext::Backtick, Start::InString(b'`')),
    ];
    for (ctx, start) in contexts {
        if let Start::InString(q) = start
            && memchr::memchr(q, value).is_none()
        {
            continue;
        }
        if let Some(m) = judged(value, ctx, start) {
            return Some(m);
        }
    }
    // Inside a comment the query opened: what follows the value's `*/` is judged as a
    // bare value is (`alice*/,(SELECT ...)/*`, `1*/ AND 1=2/*`).
    if let Some(rest) = after_comment_close(value)
        && let Some(m) = judged(rest, SqlContext::Bare, Start::Code)
    {
        return Some(SqliMatch {
            context: SqlContext::Comment,
            ..m
        });
    }
    if let Some(m) = stacked(value) {
        return Some(m);
    }
    catalog_reference(value)
}

/// A statement stacked after a `;` that what precedes it hides from the grammar
/// (`alice yIYW,;SELECT (CASE WHEN ...)--`, sqlmap's word-and-comma boundary): the
/// statement is judged as a bare value is, when it opens with a statement's word. SQL
/// Server runs a WAITFOR after a comma too (`alice Eers, WAITFOR DELAY '0:0:5'`).
fn stacked(value: &[u8]) -> Option<SqliMatch> {
    for p in memchr::memchr2_iter(b';', b',', value).take(8) {
        let rest = &value[p + 1..];
        // The first word is enough to tell (and cheap: commas are common).
        let head = &rest[..rest.len().min(24)];
        if value[p] == b','
            && !head
                .trim_ascii_start()
                .get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"waitfor"))
        {
            continue;
        }
        let toks = lex(head, Start::Code);
        let opens = toks.first().is_some_and(|t| match t.tok {
            lex::Tok::Word(words::Word::Waitfor) => true,
            _ if value[p] == b',' => false,
            lex::Tok::Word(words::Word::Select | words::Word::Statement) => true,
            _ => [&b"if"[..], b"iif"]
                .iter()
                .any(|w| rest[t.start..t.end].eq_ignore_ascii_case(w)),
        });
        if opens && let Some(m) = judged(rest, SqlContext::Bare, Start::Code) {
            return Some(SqliMatch {
                signals: [&["stacked_query"][..], &m.signals].concat(),
                ..m
            });
        }
    }
    None
}

/// The verdict on `value` in one context.
fn judged(value: &[u8], ctx: SqlContext, start: Start) -> Option<SqliMatch> {
    let toks = lex(value, start);
    let q = match start {
        Start::InString(q) => Some(q),
        Start::Code => None,
    };
    let w = judge::walk(value, &toks, q);
    // Out of the string, a condition that holds for every row, then `;`: the
    // application's statement ends there with the condition in it, whatever the next
    // one is (`' or true; foo`).
    let cut_by_semicolon = || {
        q.is_some()
            && w.broke_out
            && toks.get(w.stop).map(|t| t.tok) == Some(lex::Tok::Semi)
            && w.signals & sig::LOGIC != 0
            && w.signals & (sig::TAUTOLOGY | sig::TRUE_CMP) != 0
    };
    if (decide(&w, ctx) && !q.is_some_and(|q| quoted_characters(value, &toks, q)))
        || cut_by_semicolon()
    {
        return Some(SqliMatch {
            context: ctx,
            signals: signal_names(w.signals),
            fingerprint: fingerprint(&toks),
        });
    }
    if let Some(reason) = chain::continuation(value, &toks, q.is_some()) {
        return Some(SqliMatch {
            context: ctx,
            signals: vec![reason],
            fingerprint: fingerprint(&toks),
        });
    }
    if ctx == SqlContext::Bare {
        return appended(value, &toks);
    }
    None
}

/// Prose that names a character in quotes: `'*' is all groups. If '*' is present`,
/// `any printable characters except '='.`, `split by '/'`. Read from inside a string,
/// each quoted operator sits between two strings and looks like arithmetic or a
/// comparison of constants; but a quoted character stands apart from the words around
/// it (a blank or `(` before its opening quote, no letter or digit after its closing
/// one), where an injection glues its quotes to what it compares (`x'='x`, `''='`);
/// and prose has words around it (libinjection's samples `'|'` and `A '/' B` count as
/// injections). A quoted `--` is prose's too (`why "--" may be required`). True when
/// every token is a string or such a character, among two words or more.
fn quoted_characters(value: &[u8], toks: &[lex::Token], q: u8) -> bool {
    if !crate::profile::has_words(value, 2) {
        return false;
    }
    let mut any = false;
    let all = toks.iter().all(|t| match t.tok {
        lex::Tok::Str { .. } => true,
        lex::Tok::Op | lex::Tok::Cmp | lex::Tok::Comment { .. } => {
            let a = t.start;
            // A comment runs on: only its `--` is the quoted text.
            let b = if matches!(t.tok, lex::Tok::Comment { .. }) {
                if !value[a..].starts_with(b"--") {
                    return false;
                }
                a + 2
            } else {
                t.end
            };
            let apart = (b - a == 1 || value[a..b] == *b"--")
                && a >= 1
                && value[a - 1] == q
                && value.get(b) == Some(&q)
                && (a < 2 || matches!(value[a - 2], b' ' | b'\t' | b'\n' | b'('))
                && value
                    .get(b + 1)
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != q);
            any |= apart;
            apart
        }
        _ => false,
    });
    all && any
}

/// What follows the `*/` of a value that closes a block comment it did not open, with
/// code after it (`1*/ AND 1=2/*`). A leading `*/` the bare reading takes already; `*/*`
/// is a multiplication before a comment (`1*/*!50000 ...*/`).
fn after_comment_close(value: &[u8]) -> Option<&[u8]> {
    let p = memchr::memmem::find(value, b"*/")?;
    let rest = &value[p + 2..];
    (p > 0
        && !value[p + 1..].starts_with(b"/*")
        && memchr::memmem::find(&value[..p], b"/*").is_none()
        && !rest.trim_ascii().is_empty())
    .then_some(rest)
}

/// A bare value that opens with a connective, a comparison, a comma or a semicolon
/// (`&&SLEEP(5)`, `OR pg_sleep(5)--`, `=(SELECT 1 WHERE SLEEP(6))`, `,(SELECT ...)`,
/// `;SELECT PG_SLEEP(5)`) is written to follow the application's own operand (`id=1` +
/// value, `WHERE id` + value, `ORDER BY col` + value): judged with one put before it,
/// by the same rules as any bare value, so prose that opens with "and" or a comma, or
/// a formula that opens with `=`, still has to be valid SQL that shows an injection's
/// signals.
fn appended(value: &[u8], toks: &[lex::Token]) -> Option<SqliMatch> {
    let first = toks.first()?;
    // After a comparison only a strong signal counts (a subquery, a delay, the
    // system's catalog, a condition that always holds): a spreadsheet's formula
    // compares and calls too (`=IF(A1>5,"yes","no")`).
    let compared = first.tok == lex::Tok::Cmp;
    let connective = match first.tok {
        lex::Tok::Word(words::Word::And | words::Word::Or | words::Word::Xor) => true,
        lex::Tok::Logic => matches!(&value[first.start..first.end], b"&&" | b"||"),
        lex::Tok::Cmp | lex::Tok::Comma | lex::Tok::Semi => false,
        _ => return None,
    };
    let mut with = Vec::with_capacity(value.len() + 2);
    with.extend_from_slice(b"1 ");
    with.extend_from_slice(value);
    let toks = lex(&with, Start::Code);
    let mut w = judge::walk(&with, &toks, None);
    if connective {
        // A condition appended on its own must do something: delay, read the system,
        // compare. A subquery alone is not enough (`||` also concatenates, in Oracle
        // and PostgreSQL).
        w.signals &= !judge::sig::SUBQUERY;
    }
    let s = w.signals;
    let strong = s & sig::STRONG != 0 || (s & sig::LOGIC != 0 && s & sig::TRUE_CMP != 0);
    (decide(&w, SqlContext::Bare) && (!compared || strong)).then(|| SqliMatch {
        context: SqlContext::Bare,
        signals: signal_names(w.signals),
        fingerprint: fingerprint(&toks[1..]),
    })
}

/// Names of system catalogs and dangerous procedures: found even inside words, where
/// MySQL's tolerance for missing spaces (`selectversion()frominformation_schema.tables`)
/// hides them from the lexer. No form input names them.
const CATALOG_NAMES: &[&str] = &[
    "information_schema",
    "mysql.user",
    "sysobjects",
    "sqlite_master",
    "pg_catalog",
    "pg_shadow",
    "msysaccessobjects",
    "xp_cmdshell",
    "@@version",
    // The catalogs of the other engines sqlmap reads or times itself with: DB2,
    // Firebird, SAP MaxDB, Informix, SQL Server's catalog views.
    "sysibm.sys",
    "rdb$",
    "domain.domains",
    "domain.tables",
    "domain.columns",
    "sysmaster:",
    "sys.objects",
    // Oracle's packages that delay or reach out (time-based and out-of-band blind
    // injection), whatever stands before them: ghauri's Oracle probe
    // `1 DBMS_PIPE.RECEIVE_MESSAGE('a',5)--` does not parse where it lands, but no form
    // input names these.
    "dbms_pipe.receive_message",
    "dbms_lock.sleep",
    // sqlmap's Oracle stacked-query probe: `,(BEGIN IF (1=1) THEN DBMS_SESSION.SLEEP(5); ...`
    "dbms_session.sleep",
    "utl_inaddr.get_host",
    "utl_http.request",
    "ctxsys.drithsx.sn",
];

static CATALOG_FINDER: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(CATALOG_NAMES)
            .expect("static patterns")
    });

fn catalog_reference(value: &[u8]) -> Option<SqliMatch> {
    catalog_reference_profiled(value, Profile::of(value))
}

/// What counts even where the value does not parse: a system catalog's name, or a
/// string spelt in character codes (`CHR(60)||CHR(58)||CHR(113)`, inside a payload
/// sqlmap's between tamper left unparseable; [`query`]'s `encoded_string`).
fn catalog_reference_profiled(value: &[u8], p: Profile) -> Option<SqliMatch> {
    catalog_name(value, p).or_else(|| {
        let named =
            |i: usize, n: &[u8]| i >= n.len() && value[i - n.len()..i].eq_ignore_ascii_case(n);
        let chr = p.any(class::PAREN)
            && memchr::memchr_iter(b'(', value).any(|i| named(i, b"chr") || named(i, b"char"));
        (chr && query::spelt_string(value)).then(|| SqliMatch {
            context: SqlContext::Bare,
            signals: vec!["encoded_string"],
            fingerprint: fingerprint(&lex(value, Start::Code)),
        })
    })
}

fn catalog_name(value: &[u8], p: Profile) -> Option<SqliMatch> {
    // Every name holds `_`, `.`, `@`, `$` or `:`, or (`sysobjects`, `msysaccessobjects`) a `j`.
    if !p.any(class::CATALOG) {
        return None;
    }
    CATALOG_FINDER.find(value).map(|_| SqliMatch {
        context: SqlContext::Bare,
        signals: vec!["system_catalog"],
        fingerprint: fingerprint(&lex(value, Start::Code)),
    })
}

/// The verdict from a walk. Strong signals decide when the value was valid up to them.
/// Otherwise the value must be valid SQL in its place and show what only an injection
/// shows there: in a string, that it left the string and then did anything but continue
/// text; as a bare value, boolean logic with a constant comparison or a function, a
/// clause or comment that rewrites the rest of the query.
pub fn decide(w: &Walk, ctx: SqlContext) -> bool {
    let s = w.signals;
    if w.tail_open && w.broke_out {
        // Valid but for the application's dangling closing quote; a clause whose
        // condition always holds too (sqlmap's derived-table boundary, `1') AS x WHERE
        // 7208=7208`).
        return (s & sig::LOGIC != 0
            && (ctx == SqlContext::SingleQuote || s & (sig::CMP | sig::UNARY | sig::ARITH) != 0))
            || (s & sig::CLAUSE != 0 && s & sig::TRUE_CMP != 0);
    }
    if !w.valid {
        return false;
    }
    if s & sig::STRONG != 0 {
        return true;
    }
    let code = sig::LOGIC
        | sig::CMP
        | sig::ARITH
        | sig::TRUNCATE
        | sig::CALL
        | sig::CLAUSE
        | sig::TAUTOLOGY
        | sig::USER_VAR
        | sig::CAST
        | sig::CASE;
    if s & !sig::TRUNCATE & code == 0 && w.trunc_weak {
        // `"7" #2 needle`: a hash tag, not a comment.
        return false;
    }
    match ctx {
        SqlContext::SingleQuote => w.broke_out && s & code != 0,
        // Prose quotes names with backticks as it does words with double quotes.
        SqlContext::DoubleQuote | SqlContext::Backtick => {
            // Double-quoted literals exist only in MySQL outside ANSI_QUOTES, and prose
            // quotes words with them (`"MOD"`, `"&"`, `"a" and "b"`, `"LIKE" STAMP`): a
            // lone operator between strings is not enough here, nor a comparison of two
            // strings by a word (`"" LIKE " STAMP"`; `""=""` still is).
            let strong_code = sig::TRUNCATE
                | sig::CALL
                | sig::SYMBOL_TAUTOLOGY
                | sig::USER_VAR
                | sig::CAST
                | sig::CASE
                | sig::CLAUSE;
            w.broke_out
                && (s & strong_code != 0
                    || (s & sig::LOGIC != 0 && s & (sig::CMP | sig::UNARY | sig::ARITH) != 0))
        }
        SqlContext::Bare | SqlContext::Comment => {
            let logic = s & sig::LOGIC != 0;
            let taut = s & sig::TAUTOLOGY != 0;
            let call = s & (sig::CALL | sig::USER_VAR) != 0;
            let trunc = s & sig::TRUNCATE != 0;
            let clause = s & sig::CLAUSE != 0;
            let case = s & sig::CASE != 0;
            // The whole value is a known function call or an unterminated fragment of one.
            let fragment = s & sig::OPEN_END != 0
                && s & (sig::CALL | sig::CASE | sig::CLAUSE | sig::CMP | sig::LOGIC) != 0;
            if s & sig::TRUE_CMP != 0 || fragment {
                return true;
            }
            let dash = w.trunc_dash;
            // Inline comments for blanks (`1/**/AND/**/1`): no prose writes a connective
            // so, where `1 AND 1` alone may be prose.
            let commented = s & sig::INLINE_COMMENT != 0;
            (logic && (taut || call || case || commented))
                || (s & sig::CALL != 0 && (taut || s & (sig::ARITH | sig::CMP) != 0))
                || case
                || (trunc && (taut || call || clause || logic || dash))
                || (clause && (taut || call))
        }
    }
}

/// One letter per token class: `s` string, `1` number, `k` keyword, `f` function,
/// `n` name, `v` variable, `o` operator, `=` comparison, `&` logic, `(` `)` `,` `;`,
/// `c` comment, `.` dot, `?` other.
pub fn fingerprint(toks: &[lex::Token]) -> String {
    use lex::Tok;
    toks.iter()
        .take(16)
        .map(|t| match t.tok {
            Tok::Str { .. } => 's',
            Tok::Num => '1',
            Tok::Word(w) => match w {
                words::Word::Plain => 'n',
                words::Word::Func(_) => 'f',
                words::Word::And | words::Word::Or | words::Word::Xor => '&',
                _ => 'k',
            },
            Tok::Ident => 'n',
            Tok::Var { .. } => 'v',
            Tok::Op | Tok::Cast => 'o',
            Tok::Cmp => '=',
            Tok::Logic => '&',
            Tok::LParen => '(',
            Tok::RParen => ')',
            Tok::Comma => ',',
            Tok::Semi => ';',
            Tok::Dot => '.',
            Tok::Comment { .. } => 'c',
            Tok::Other => '?',
        })
        .collect()
}

#[cfg(test)]
mod catalog_tests {
    use super::{CATALOG_NAMES, catalog_reference};

    /// The list behind `sql_word` is the one the judge uses.
    #[test]
    fn plain_but_sql_covers_also_function() {
        use super::words::{Word, also_function};
        for k in super::PLAIN_BUT_SQL.iter() {
            assert!(also_function(Word::Plain, k.as_bytes()) || ["match", "against"].contains(k));
        }
        for w in [
            "if", "user", "char", "match", "against", "values", "exists", "like",
        ] {
            assert!(super::sql_word(w.as_bytes(), true), "{w}");
            assert!(super::sql_word(w.to_uppercase().as_bytes(), true), "{w}");
        }
        assert!(!super::sql_word(b"caridad", true));
    }

    /// Views named like an application's identifiers are words alone (arjun's parameter
    /// names), and catalog references in SQL; the names CRS lists count alone too.
    #[test]
    fn plain_views_alone_are_words() {
        for w in ["all_users", "USER_TABLES", "pg_user", "dba_tables"] {
            assert!(super::detect(w.as_bytes()).is_none(), "{w}");
        }
        for a in [
            "all_users--",
            "1 union select username from all_users",
            "' and 1=(select count(*) from user_tables)--",
            "Northwind",
            "MSysAccessObjects",
            "information_schema",
        ] {
            assert!(super::detect(a.as_bytes()).is_some(), "{a}");
        }
    }

    /// The byte prefilter of `catalog_reference` lets every name through.
    #[test]
    fn every_catalog_name_passes_the_prefilter() {
        for n in CATALOG_NAMES {
            assert!(catalog_reference(n.as_bytes()).is_some(), "{n}");
            assert!(
                catalog_reference(n.to_uppercase().as_bytes()).is_some(),
                "{n}"
            );
        }
    }
}

/// The rules the held-out payloads (`tests/heldout/`) asked for, each with the prose it
/// must leave alone.
#[cfg(test)]
mod heldout_rules {
    use super::{Start, detect, lex};

    #[test]
    fn injections() {
        for v in [
            // sqlmap's derived-table boundary: the alias, a condition that always holds,
            // the application's quote left dangling (protego's held-out set)
            "1') AS dago WHERE 9788=9788",
            "1\" )  as uorp where 7208 = 7208",
            // after the application's operand: a comparison's subquery or delay
            "=(SELECT/**/1/**/WHERE/**/SLEEP(6))",
            ">=benchmark(1000000,md5(1))",
            // inline comments for blanks (sqlmap's space2comment) around CASE ... WHEN
            "(CASE/**/WHEN/**/(2231=2231)/**/THEN/**/SLEEP(5)/**/ELSE/**/2231/**/END)",
            "SELECT/**/CHAR(113,98)||(CASE/**/WHEN/**/(6592=6592)/**/THEN/**/1/**/ELSE/**/0/**/END)||CHAR(113)",
            // a connective between constants, blanks written as comments (identYwaf)
            "1/**/AND/**/1",
            "1/**/or/**/2",
            // Microsoft Access stops at 0x16 (sqlmap's Access comment)
            "1') AND 8124=8124\u{16}",
            "1 AND 6819=5914\u{16}",
            // statements that keep their full shape
            "1; GRANT ALL ON *.* TO 'x'@'%'",
            "1; REVOKE ALL ON db.t FROM bob--",
            "1; CREATE OR REPLACE FUNCTION sleep(int) RETURNS int AS '/lib/libc.so.6','sleep' LANGUAGE 'C' STRICT--",
            "1; COPY t FROM PROGRAM 'id'--",
            "1; COPY t TO '/tmp/x'--",
            "1' AND name SIMILAR TO 'a%'--",
            "1 AND 1=DBMS_LOCK.SLEEP(5)",
            "1 AND 5023=ctxsys.drithsx.sn(5023,1)",
            // out of a backtick-quoted identifier (wapiti: `ORDER BY `[VALUE]``)
            "1`,sleep(6)#1",
            "id` UNION SELECT password FROM users#",
            // appended to a URL (sqlmap's Referer payloads)
            "http://127.0.0.1:18931/safe AND 3194=BENCHMARK(5000000,MD5(0x7a6d7362))# QKgl",
            // out of a comment the query opened (sqlmap's `*/` boundary, run for real)
            "1*/ AND 3009=1134/*",
            "-4042*/ OR 8218=2145/*",
            "1*/ UNION ALL SELECT NULL,NULL/*",
            "alice*/,(SELECT (CASE WHEN (1706=9236) THEN 1 ELSE 1/(SELECT 0) END))/*",
            "alice*/;SELECT (CASE WHEN (3386=7159) THEN 3386 ELSE 1/(SELECT 0) END)--",
            "alice*/,(CASE WHEN 1514=9153 THEN 1 ELSE NULL END)/*",
            "alice yIYW,;SELECT (CASE WHEN (2288=1456) THEN 2288 ELSE 1/(SELECT 0) END)--",
            "alice UKZD,;IF(3494=3494) SELECT 3494 ELSE DROP FUNCTION lTQo--",
            "alice cVtI,;IIF(5565=2998,1,1/0)",
            "alice Eers, WAITFOR DELAY '0:0:5' EJZF",
            // out of a subscript (sqlmap's `]` boundary)
            "1]-(SELECT 0 WHERE 3781=3781 AND 8193=3827)|[1",
            // a clause after a word: a new expression (sqlmap's HAVING boundary)
            "shoes HAVING 8018=6365",
            // other engines' catalogs, in payloads the between tamper mangled
            "1)/**/ANd/**/1412/**/beTwEen/**/(SElECt/**/ANd/**/(sEleCTCOUNt(*)/**/From/**/SYSIBM.SYSTABLES/**/As/**/T1)--/**/xdTR",
            "1 AND 5021=(SELECT COUNT(*) FROM RDB$FIELDS AS T1,RDB$TYPES AS T2)",
            "1 AND 8207=(SELECT COUNT(*) FROM DOMAIN.DOMAINS AS T1,DOMAIN.COLUMNS AS T2)",
            "1 AND 7410=(SELECT COUNT(*) FROM SYSMASTER:SYSPAGHDR)",
            // sqlmap's tampers, run for real: MySQL's and SQL Server's other blanks,
            // UNION of VALUES, Oracle's 1D before UNION, ODBC braces, a comment before (
            "1\u{1}AND\u{e}8669=2850",
            "1 UNION ALL VALUES (NULL,CONCAT(CONCAT('qpzkq','uJgH'),'qbbpq'))-- Ugxs",
            "1 UNION ALL VALUES ROW(NULL,CONCAT('a','b'))-- x",
            "1DUNION ALL SELECT NULL,CONCAT(CONCAT('qxvjq','VYOM'),'qppvq')-- sjUY",
            "{x !0}*1) AND 8708=9912 AND (3621=3621",
            "1 AND 7797 BETWEEN (SELECT AND (SELECTUPPER(XMLType(CHR(60)||CHR(58)||CHR(113)||CHR(120)",
            "x CHAR(113)+CHAR(106)+CHAR(122) y",
            "1 AND 1871=ROTATELEFT/**/(CAST/**/(CHAR/**/(113)||CHAR/**/(107) AS NUMERIC),1)",
            "shoes,(BEGIN IF (9661=9661) THEN DBMS_SESSION.SLEEP(5); ELSE DBMS_SESSION.SLEEP(0); END IF; END;)",
            "http://127.0.0.1:18931/safe AND (SELECT 8875 FROM (SELECT(SLEEP(5)))knqe)",
            "https://h.example/search;WAITFOR DELAY '0:0:5'--",
            "http://127.0.0.1:18931/safe,(SELECT (CASE WHEN (1=1) THEN SLEEP(5) ELSE 1 END))",
            "http://127.0.0.1:18931/safe)/**/oRdER/**/bY/**/1#",
            // `--word` ended by a line break: a comment in every dialect but MySQL
            "1--xYzQ\nAND--PqRs\n4411=4411",
            // SQL Server variables named with `#` and `$`
            "1';declare @# int;shutdown;set @# = '1",
            // nested block comments (PostgreSQL, SQL Server)
            "1/* /*/ */ */ or 1=1",
            // written to follow the application's own value (wordlists' appended probes)
            "&&SLEEP(5)#",
            "||pg_sleep(5)--",
            " OR BENCHMARK(5000000,MD5(1))",
            ",(select * from (select(sleep(10)))a)",
            ";SELECT PG_SLEEP(5)",
            ";DECLARE @x NVARCHAR(4000);SET @x=(SELECT 1)",
            // fuzzdb's held-out lists: IF on any condition before WAITFOR, a function
            // called by its schema or package, listings once statements stack
            "'; if is_srvrolemember('sysadmin') > 0 waitfor delay '0:0:2' --",
            "' || myappadmin.adduser('admin', 'newpass') || '",
            "'; desc users; --",
            "'; show tables; --",
            "1; SHOW COLUMNS FROM users",
            "'; describe mysql.user#",
            "1;explain select 1--",
            // in a double-quoted string: comparisons that hold for every row
            "\"=\"",
            "\" LIKE \"%",
            // payloadbox's lists: the value's own WHERE, COPY of a query to a file
            " WHERE 1=1 AND 1=0#",
            "COPY (SELECT 'x') TO '/tmp/test';",
            // statements English also has, ended or controlled the way only SQL is
            "use mydb;",
            "describe users;",
            "IF (1=1) WAITFOR DELAY '0:0:5'",
            "if exists (select 1) drop table x",
            "if(2=",
            "shutdown--",
            // ghauri's Oracle probe: no valid SQL where it lands, a delay package all the same
            "1 DBMS_PIPE.RECEIVE_MESSAGE('eSwd',5)-- wXyW",
            // jSQL's MySQL error probe: a SELECT of MySQL's unary `!`
            "1 ;select!(select*from((select concat(0x53714c69,ifnull(mid((133707330+1),1,453),''),0x01030307)))x)-~0-- -wXKW",
            "1 'or(select!(select*from((select concat(0x53714c69,version(),0x01030307)))x)-~0)or'-- -I7k8",
            "1;select~0-- -",
            "1;delete top (5) from users--",
            "delete from users where 1=1",
            // CRS 942's forms (thirty-first session): `= ALL (subquery)`, SQLite's
            // collations, a call with a blank before its `(` once out of the string, a
            // condition that holds then `;` and anything, REPLACE without INTO with
            // columns listed, DELETE's targets before FROM
            "admin@juice-sh.op' and email = all (select email)--",
            "user'collate nocase--",
            "' or json_valid (id);",
            "' or true; foo",
            "x' or 1=1; garbage here",
            ";RePLAcE/*test*/test/*test*/(id, name) VALUES (1, 'test');",
            "1;delete from users--",
            "1; DELETE t1, t2 FROM t1 JOIN t2 WHERE 1=1--",
            "'; DELETE TOP (10) FROM users--",
            "1;DELETE LOW_PRIORITY QUICK IGNORE FROM t--",
            "1;delete t1.* from t1--",
        ] {
            assert!(detect(v.as_bytes()).is_some(), "{v}");
        }
    }

    #[test]
    fn latin1_nbsp_is_a_blank() {
        // space2mysqlblank's 0xA0 as sent (a lone byte, not UTF-8's C2 A0).
        let v = b"1\tAND\xa0(SELECT\xa0TDESENCRYPT(NULL,NULL))\rIS\x0bNULL";
        assert!(detect(v).is_some());
        assert!(detect(b"1\xa0UNION\tALL\xa0SELECT\rNULL,NULL--\x0bswsr").is_some());
        // UTF-8's à is C3 A0: its A0 continues the word.
        assert_eq!(
            lex::lex("voil\u{e0} caf\u{e9}".as_bytes(), Start::Code).len(),
            2
        );
    }

    #[test]
    fn prose() {
        for v in [
            "it's (as seen) where 5 = 5",
            "O'Brien (as agreed) where we met",
            // spreadsheet formulas open with `=` and compare and call too
            "=IF(A1>5,\"yes\",\"no\")",
            "=VLOOKUP(B2,C2:E7,3,TRUE)",
            "=SUM(A1:A3)",
            // a connective between constants, with real blanks
            "1 AND 1",
            "rooms 2 and 3",
            "grant access to the slave pseudoterminal",
            "2. Grant of Copyright License. Subject to the terms and conditions of",
            "you grant is automatically extended to all recipients of the covered",
            "create or update the manual page index caches",
            "create or examine a Netscape certificate sequence",
            "Copy files from the index to the working tree",
            "\"similar\"",
            "debian/patches/hurd-i386/git-hurd-version.diff: Accept including",
            "use `ls -la` to list, or `git status` and `git diff`",
            "The `SELECT` statement, see `man psql` for more",
            "https://example.com/docs and the select few who read them",
            // a comment's close in text and globs, brackets in lists
            "see the note */ and the rest",
            "src/**/*.rs or lib/**/*.rs",
            "ends a comment */ or 2",
            "[1,2,3] and [4,5]",
            "tags[] = a or b",
            "[draft] select the best (2 of 3)",
            "customers having 2 orders or more",
            "shoes having a size=42 label",
            "voilà (the café), and 2 more",
            "Ready in 1d union station",
            "{name} or {other}",
            "tea; if you like, select one (or two)",
            "We waitfor delayed trains",
            "char(13) and chr(10) are CR and LF",
            "0x41 0x42 0x43 are hex",
            // SELECT after a word, not after a value: a form's own words
            "Please select 2 options",
            "please select !important styles",
            "I select *all* of them",
            // a third bare name in a row is no alias; DELETE counts with TOP only
            "Select 2 items from the list below",
            "Delete 2 items from the list below",
            // the CRS 942 forms' neighbours in prose; characters named in quotes; a
            // DELETE's two words in a row before FROM
            "all (of them)",
            "x = all",
            "collate nocase",
            "json_valid (id)",
            "Replace the filter (part 2) now",
            "true; foo",
            "It's true; fine",
            "x509.h: removed stray '%'",
            "'+' lines and '-' lines.",
            "git-log.txt: rewrite note on why \"--\" may be required",
            "submodule--helper: use \"--\" to signal end of clone options",
            "Delete all drawings and all turtles from the TurtleScreen.",
            "Delete graphics item from canvas. If item is\"all\" delete all graphics items.",
            "Delete the breakpoint from the list associated to a file:line.",
            // `!` after a value: no SQL (a COSE body's bytes, nDPI's cose captures)
            "This is the content.Hr`CtP'!O",
            "Don't!Stop",
            "http://www.gnu.org/licenses/ or (at your option) any later version",
            "https://en.wikipedia.org/wiki/Foo_(bar) is where it began",
            "http://example.com/a,b,c/ and more",
            ", and then (see below)",
            "; charset=utf-8",
            "and so on (and so forth)",
            "or (at your option) any later version",
            // words quoted in prose: a comparison by a word between two strings
            // (`"" LIKE " STAMP"`) that holds for no row (libinjection's false positives)
            "\"LIKE\" STAMP",
            "BILLEEVERSBOUTIQUE , BROWNING \"LIKE\"",
            "1/4\"-1\" WIDE RIBBON",
            "the \"IS NULL\" check",
            "sort by name; desc",
            "where x = y",
            // short free text that starts like a statement (before: flagged as one)
            "if not, call me",
            "If (possible) call me",
            "Please use it",
            "open it",
            "fetch it",
            "load data file",
            "call me(maybe)",
            "if exists",
            "show tables",
            "explain it",
            "describe yourself",
            "Added if not already present.",
            "Where to go next? 1=1 is true",
            "copy (the first one) to me",
            "price desc; show all",
            "if you wait for the delay, it works (see faq.txt)",
            "the results show tables of data; describe them",
            "version 1.2; see config.load(file) for more",
            // not prose, but not SQL either: PHP's concatenation operator, where a
            // SQL name would qualify a function (the command detector's code injection)
            "'.exit(md5('x'));#",
        ] {
            assert_eq!(detect(v.as_bytes()), None, "{v}");
        }
    }
}
