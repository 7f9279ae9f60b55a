//! Splitting a query string into statements and finding each one's kinds.
//!
//! The splitter must never see fewer statements than the server does, or a statement
//! could hide inside what we took for a string or a comment. Where the server's reading
//! depends on a setting we cannot see (backslash escapes: MySQL's
//! NO_BACKSLASH_ESCAPES, PostgreSQL's standard_conforming_strings), the text is split
//! both ways and every statement of either reading is decided.

use bulkhead_policy::l7::SqlKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// One statement: its text (MySQL executable-comment markers blanked, so that what
/// they hold is classified like the server runs it) and the kinds it contains.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub kinds: Vec<SqlKind>,
}

struct Lexer<'a> {
    b: &'a [u8],
    d: Dialect,
    /// Backslash escapes inside '...' (MySQL default; PostgreSQL E'...' always).
    backslash: bool,
}

impl Lexer<'_> {
    /// End (exclusive) of the quoted run starting at `i` with quote `q`.
    fn quoted(&self, i: usize, q: u8, escapes: bool) -> usize {
        let mut j = i + 1;
        while j < self.b.len() {
            let c = self.b[j];
            if escapes && c == b'\\' {
                j += 2;
                continue;
            }
            if c == q {
                if self.b.get(j + 1) == Some(&q) {
                    j += 2;
                    continue;
                }
                return j + 1;
            }
            j += 1;
        }
        self.b.len()
    }

    /// PostgreSQL `$tag$`: its length if one starts at `i`.
    fn dollar_tag(&self, i: usize) -> Option<usize> {
        let rest = &self.b[i + 1..];
        let n = rest
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80))?;
        if rest[n] != b'$' || rest.first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        Some(n + 2)
    }

    fn split(&self) -> Vec<Statement> {
        let (b, mut i) = (self.b, 0);
        let mut out = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut words: Vec<(Word, u8)> = Vec::new(); // (word, punctuation before it)
        let mut prev = b' ';
        let finish = |cur: &mut Vec<u8>, words: &mut Vec<(Word, u8)>, out: &mut Vec<_>| {
            if !words.is_empty() || cur.iter().any(|c| !c.is_ascii_whitespace()) {
                let text = String::from_utf8_lossy(cur).trim().to_string();
                if let Some(s) = statement(text, words, self.d) {
                    out.push(s);
                }
            }
            cur.clear();
            words.clear();
        };
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            let start = i;
            let pg = self.d == Dialect::Postgres;
            let mysql_line = self.d == Dialect::Mysql
                && (c == b'#'
                    || (c == b'-'
                        && next == Some(b'-')
                        && b.get(i + 2)
                            .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())));
            if (pg && c == b'-' && next == Some(b'-')) || mysql_line {
                i += b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(b.len() - i);
                cur.push(b' ');
                continue;
            }
            if c == b'/' && next == Some(b'*') {
                let exec = self.d == Dialect::Mysql
                    && (b.get(i + 2) == Some(&b'!') || b[i + 2..].starts_with(b"M!"));
                if exec {
                    // Executable comment: its content runs; drop only the markers.
                    i += if b[i + 2] == b'M' { 4 } else { 3 };
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    cur.push(b' ');
                    continue;
                }
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 || !pg {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                cur.push(b' ');
                continue;
            }
            if self.d == Dialect::Mysql && c == b'*' && next == Some(b'/') {
                // The end of an executable comment (or a stray one): whitespace.
                i += 2;
                cur.push(b' ');
                continue;
            }
            match c {
                b';' => {
                    finish(&mut cur, &mut words, &mut out);
                    i += 1;
                    prev = b' ';
                    continue;
                }
                b'\'' => {
                    let e = pg && matches!(cur.last(), Some(b'e' | b'E'));
                    i = self.quoted(i, b'\'', self.backslash || e);
                }
                b'"' => i = self.quoted(i, b'"', !pg && self.backslash),
                b'`' if !pg => i = self.quoted(i, b'`', false),
                b'$' if pg => match self.dollar_tag(i) {
                    Some(n) => {
                        let tag = &b[i..i + n];
                        i = b[i + n..]
                            .windows(n)
                            .position(|w| w == tag)
                            .map_or(b.len(), |p| i + n + p + n);
                    }
                    None => i += 1,
                },
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    let w = word(&b[start..i]);
                    words.push((w, prev));
                    prev = b'w';
                }
                _ => {
                    if !c.is_ascii_whitespace() {
                        prev = c;
                    }
                    i += 1;
                }
            }
            cur.extend_from_slice(&b[start..i.min(b.len())]);
        }
        finish(&mut cur, &mut words, &mut out);
        out
    }
}

/// A word, upper-cased, when short enough to be a keyword we look for (else blank):
/// no allocation per word on the hot path.
type Word = [u8; 8];

fn word(w: &[u8]) -> Word {
    let mut k = [0u8; 8];
    if w.len() <= 8 {
        for (d, c) in k.iter_mut().zip(w) {
            *d = c.to_ascii_uppercase();
        }
    }
    k
}

fn as_str(w: &Word) -> &str {
    let n = w.iter().position(|&c| c == 0).unwrap_or(8);
    std::str::from_utf8(&w[..n]).unwrap_or("")
}

/// A statement keyword's kind, for the words that can start data-changing statements.
fn dml(word: &str) -> Option<SqlKind> {
    Some(match word {
        "INSERT" | "REPLACE" | "MERGE" => SqlKind::Insert,
        "UPDATE" => SqlKind::Update,
        "DELETE" => SqlKind::Delete,
        "SELECT" => SqlKind::Select,
        _ => return None,
    })
}

/// The kinds of one statement: its leading keyword's, and those of statements it runs
/// inside itself. `WITH d AS (DELETE ...) SELECT` and `COPY (DELETE ... RETURNING) TO`
/// delete: a statement word right after a parenthesis counts. `EXPLAIN ANALYZE` (and
/// MariaDB's `ANALYZE`) run the statement they explain, `PREPARE` prepares one: its
/// kind counts too (over-strict for a plain EXPLAIN, never too lax).
fn statement(text: String, words: &[(Word, u8)], d: Dialect) -> Option<Statement> {
    let mut kinds = vec![SqlKind::classify(&text)];
    let mut add = |k: SqlKind| {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    };
    let first = words.first().map_or("", |(w, _)| as_str(w));
    let wraps = matches!(
        first,
        "EXPLAIN" | "ANALYZE" | "DESCRIBE" | "DESC" | "PREPARE"
    );
    for (w, before) in words.iter().skip(1) {
        if let Some(k) = dml(as_str(w))
            && (wraps || matches!(before, b'(' | b')'))
        {
            add(k);
        }
    }
    if first == "PREPARE" && d == Dialect::Mysql {
        // PREPARE s FROM 'text': the text's statements; FROM @var: unknown.
        let upper = text.to_ascii_uppercase();
        let inner = upper.find(" FROM").map(|at| text[at + 5..].trim_start());
        match inner.and_then(|t| Some((t.chars().next()?, t))) {
            Some((q @ ('\'' | '"'), t)) => {
                let body = &t[1..];
                let body = body.rfind(q).map_or(body, |end| &body[..end]);
                for s in statements(body.as_bytes(), Dialect::Mysql) {
                    s.kinds.into_iter().for_each(&mut add);
                }
            }
            _ => add(SqlKind::Other),
        }
    }
    Some(Statement { text, kinds })
}

/// Every statement of `text`, under each reading of backslashes.
pub fn statements(text: &[u8], d: Dialect) -> Vec<Statement> {
    let mut all = Lexer {
        b: text,
        d,
        backslash: d == Dialect::Mysql,
    }
    .split();
    if !text.contains(&b'\\') {
        // Without a backslash both readings are the same.
        return all;
    }
    let other = Lexer {
        b: text,
        d,
        backslash: d == Dialect::Postgres,
    }
    .split();
    for s in other {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds decided for `sql`, in order of appearance, each once.
    fn kinds(sql: &str, d: Dialect) -> Vec<SqlKind> {
        let mut all = Vec::new();
        for k in statements(sql.as_bytes(), d)
            .into_iter()
            .flat_map(|s| s.kinds)
        {
            if !all.contains(&k) {
                all.push(k);
            }
        }
        all
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        use SqlKind::*;
        let pg = Dialect::Postgres;
        assert_eq!(kinds("SELECT 1; DROP TABLE t", pg), [Select, Ddl]);
        assert_eq!(kinds("SELECT ';DROP' ; ", pg), [Select]);
        assert_eq!(kinds("SELECT $x$ ; DELETE $x$", pg), [Select]);
        assert_eq!(kinds("SELECT $1; DELETE FROM t", pg), [Select, Delete]);
        assert_eq!(kinds("/* a /* ; */ ; */ SELECT 1", pg), [Select]);
        assert_eq!(kinds("-- ; DROP\nSELECT 1", pg), [Select]);
        assert_eq!(kinds(";;  ; -- only\n", pg), Vec::<SqlKind>::new());
        // E'' escapes; a plain '' string read either way yields both readings.
        assert_eq!(kinds("SELECT E'\\'; DROP TABLE t'", pg), [Select]);
        assert_eq!(
            kinds("SELECT 'a\\'; DELETE FROM t; --'", pg),
            [Select, Delete]
        );
        assert_eq!(
            kinds("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", pg),
            [Select, Delete]
        );
        assert_eq!(kinds("SELECT * FROM t FOR UPDATE", pg), [Select]);
        assert_eq!(
            kinds("COPY (DELETE FROM t RETURNING *) TO STDOUT", pg),
            [Utility, Delete]
        );
        assert_eq!(
            kinds("EXPLAIN ANALYZE DELETE FROM t", pg),
            [Utility, Delete]
        );
        assert_eq!(
            kinds("PREPARE p (int) AS UPDATE t SET a = $1", pg),
            [Utility, Update]
        );
    }

    #[test]
    fn mysql_comments_and_escapes() {
        use SqlKind::*;
        let my = Dialect::Mysql;
        assert_eq!(kinds("SELECT 1 # ; DROP\n", my), [Select]);
        assert_eq!(kinds("SELECT 1--1; DROP TABLE t", my), [Select, Ddl]);
        assert_eq!(kinds("/*!50000 DROP TABLE t */", my), [Ddl]);
        assert_eq!(
            kinds("SELECT 1 /*!; DELETE FROM t */", my),
            [Select, Delete]
        );
        assert_eq!(kinds("SELECT `a;b` FROM t", my), [Select]);
        assert_eq!(
            kinds("PREPARE s FROM 'DELETE FROM t'", my),
            [Utility, Delete]
        );
        assert_eq!(kinds("PREPARE s FROM @q", my), [Utility, Other]);
        assert_eq!(kinds("ANALYZE DELETE FROM t", my), [Utility, Delete]);
        // With NO_BACKSLASH_ESCAPES the server sees a DELETE: decide it too.
        assert_eq!(
            kinds("SELECT '\\'; DELETE FROM t; -- '", my),
            [Select, Delete]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_splits_without_panic(t in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = statements(&t, Dialect::Postgres);
            let _ = statements(&t, Dialect::Mysql);
        }

        #[test]
        fn sql_like_text_splits_without_panic(t in "[a-zA-Z $'\"`;#/*!\\\\()\n-]{0,120}") {
            let _ = statements(t.as_bytes(), Dialect::Postgres);
            let _ = statements(t.as_bytes(), Dialect::Mysql);
        }
    }
}
