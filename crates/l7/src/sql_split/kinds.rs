//! The kinds of one statement: its leading keyword's, and those of the statements it
//! runs inside itself.

use bulkhead_policy::l7::SqlKind;

use super::{Ctx, Dialect, Lexer, MAX_DEPTH, Tok, as_str, is_space, split};

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

/// A MariaDB compound statement run outside a stored program: `BEGIN NOT ATOMIC`, `IF`,
/// `WHILE`..., a labelled one, a PL/SQL block under sql_mode=ORACLE; or one of its parts
/// after a `;` (`ELSE DELETE ...`).
fn compound(words: &[Tok]) -> bool {
    let w = |k: usize| words.get(k).map_or("", |t| as_str(&t.w));
    match w(0) {
        "IF" | "ELSEIF" | "ELSE" | "CASE" | "WHEN" | "WHILE" | "LOOP" | "REPEAT" | "FOR" => true,
        "BEGIN" => !matches!(w(1), "" | "WORK"),
        _ => words.get(1).is_some_and(|t| t.before == b':'),
    }
}

impl Lexer<'_> {
    /// The kinds of the statement `cur[from..]`, whose words are `words`.
    ///
    /// `WITH d AS (DELETE ...) SELECT`, `COPY (DELETE ... RETURNING) TO`: a statement word
    /// right after a parenthesis counts. `EXPLAIN ANALYZE` (and MariaDB's `ANALYZE`) run
    /// the statement they explain, `PREPARE` prepares one: every statement word counts
    /// (over-strict for a plain EXPLAIN, never too lax). A WITH query's main statement
    /// may follow any clause (`... CYCLE n SET c USING p DELETE FROM t`), MERGE and
    /// compound statements hold statements anywhere: there every INSERT, UPDATE, DELETE
    /// and MERGE counts, but row locks (`FOR UPDATE`) and calls (`insert(...)`).
    pub(super) fn kinds(
        &self,
        cur: &[u8],
        from: usize,
        words: &[Tok],
        ctx: &mut Ctx,
    ) -> Vec<SqlKind> {
        let mut kinds = vec![SqlKind::classify(&String::from_utf8_lossy(&cur[from..]))];
        let mut add = |k: SqlKind| {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        };
        let w = |k: usize| words.get(k).map_or("", |t| as_str(&t.w));
        let first = w(0);
        let wraps = matches!(
            first,
            "EXPLAIN" | "ANALYZE" | "DESCRIBE" | "DESC" | "PREPARE"
        );
        let compound = self.d == Dialect::Mysql && compound(words);
        let anywhere = compound || matches!(first, "WITH" | "MERGE");
        for (k, t) in words.iter().enumerate().skip(1) {
            let word = as_str(&t.w);
            let back = |n: usize| k.checked_sub(n).map_or("", w);
            let lock = word == "UPDATE"
                && (back(1) == "FOR" || (back(3), back(2), back(1)) == ("FOR", "NO", "KEY"));
            let call = || {
                cur[t.end..]
                    .iter()
                    .find(|c| !is_space(**c))
                    .is_some_and(|c| *c == b'(')
            };
            let changes = matches!(word, "INSERT" | "UPDATE" | "DELETE" | "MERGE");
            match dml(word) {
                Some(kind) if wraps || matches!(t.before, b'(' | b')') => add(kind),
                Some(kind) if anywhere && changes && !lock && (word == "UPDATE" || !call()) => {
                    add(kind)
                }
                None if wraps && word == "CREATE" => add(SqlKind::Ddl),
                _ => {}
            }
            let starts = matches!(
                back(1),
                "THEN" | "ELSE" | "DO" | "LOOP" | "REPEAT" | "BEGIN" | "ATOMIC"
            ) && (back(1), word) != ("BEGIN", "NOT")
                || (k == 1 && t.before == b':');
            if compound && starts {
                // A statement of the compound starts here.
                add(SqlKind::classify(word));
                self.carried(cur, &words[k..], ctx, &mut add);
            }
        }
        self.carried(cur, words, ctx, &mut add);
        // What else a statement does: an upsert updates the rows it meets (`ON CONFLICT
        // ... DO UPDATE`, `ON DUPLICATE KEY UPDATE`), REPLACE deletes them first, and
        // `SELECT ... INTO` creates a table (PostgreSQL) or writes a file on the server
        // (MySQL's OUTFILE and DUMPFILE; `INTO @var` only sets a variable).
        let has = |seq: &[&str]| {
            (1..words.len()).any(|k| seq.iter().enumerate().all(|(i, s)| w(k + i) == *s))
        };
        match first {
            "INSERT" if has(&["DO", "UPDATE"]) || has(&["DUPLICATE", "KEY", "UPDATE"]) => {
                add(SqlKind::Update)
            }
            "REPLACE" if self.d == Dialect::Mysql => add(SqlKind::Delete),
            "SELECT" if has(&["INTO"]) => match self.d {
                Dialect::Postgres => add(SqlKind::Ddl),
                _ if has(&["INTO", "OUTFILE"]) || has(&["INTO", "DUMPFILE"]) => add(SqlKind::Other),
                _ => {}
            },
            _ => {}
        }
        kinds
    }

    /// MySQL statements that carry another: `PREPARE s FROM 'text'`, and MariaDB's
    /// `EXECUTE IMMEDIATE 'text'` and `SET STATEMENT x=1 FOR statement`.
    fn carried(&self, cur: &[u8], words: &[Tok], ctx: &mut Ctx, add: &mut impl FnMut(SqlKind)) {
        if self.d != Dialect::Mysql {
            return;
        }
        let w = |k: usize| words.get(k).map_or("", |t| as_str(&t.w));
        let at = match (w(0), w(1)) {
            // The name may be a quoted one holding ` FROM '...'`: the FROM token counts.
            ("PREPARE", _) => (1..words.len()).find(|&k| w(k) == "FROM"),
            ("EXECUTE", "IMMEDIATE") => Some(1),
            ("SET", "STATEMENT") => {
                if let Some(k) = (2..words.len()).find(|&k| w(k) == "FOR") {
                    let inner = |ctx: &mut Ctx| self.kinds(cur, words[k].end, &words[k + 1..], ctx);
                    nested(ctx, inner).into_iter().flatten().for_each(add);
                }
                return;
            }
            _ => return,
        };
        match at {
            Some(k) => self.literal(cur, words[k].end, ctx, add),
            None => add(SqlKind::Other),
        }
    }

    /// The statements of the string literal(s) at `cur[at..]` (adjacent ones are one
    /// string); anything else there (`FROM @var`, an expression) is `other`.
    fn literal(&self, cur: &[u8], mut at: usize, ctx: &mut Ctx, add: &mut impl FnMut(SqlKind)) {
        let (mut text, mut any) = (Vec::new(), false);
        loop {
            while cur.get(at).is_some_and(|c| is_space(*c)) {
                at += 1;
            }
            if !matches!(cur.get(at), Some(b'\'' | b'"')) {
                break;
            }
            at = self.unquote(cur, at, &mut text);
            any = true;
        }
        let rest = String::from_utf8_lossy(&cur[at.min(cur.len())..]).to_ascii_uppercase();
        let rest = rest.trim();
        let using = rest.starts_with("USING")
            && !rest[5..].starts_with(|c: char| c == '_' || c.is_ascii_alphanumeric());
        if !any || !(rest.is_empty() || using) {
            add(SqlKind::Other);
        }
        if any {
            let inner = |ctx: &mut Ctx| split(&text, Dialect::Mysql, ctx);
            for s in nested(ctx, inner).into_iter().flatten() {
                s.kinds.into_iter().for_each(&mut *add);
            }
        }
    }

    /// The content of the string at `cur[at..]` appended to `out`, escapes read as this
    /// reading reads them; its end.
    fn unquote(&self, cur: &[u8], at: usize, out: &mut Vec<u8>) -> usize {
        let q = cur[at];
        let escapes = if q == b'"' {
            self.r.dquote
        } else {
            self.r.escapes
        };
        let mut j = at + 1;
        while j < cur.len() {
            if let Some(n) = self.r.mb.and_then(|m| m.char_len(cur, j)) {
                out.extend_from_slice(&cur[j..j + n]);
                j += n;
                continue;
            }
            let c = cur[j];
            if escapes && c == b'\\' && j + 1 < cur.len() {
                let e = cur[j + 1];
                match e {
                    b'0' => out.push(0),
                    b'b' => out.push(8),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'Z' => out.push(0x1A),
                    b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                    _ => out.push(e),
                }
                j += 2;
            } else if c == q && cur.get(j + 1) == Some(&q) {
                out.push(q);
                j += 2;
            } else if c == q {
                return j + 1;
            } else {
                out.push(c);
                j += 1;
            }
        }
        cur.len()
    }
}

/// `f` one statement deeper; past [`MAX_DEPTH`] the text is unreadable.
fn nested<T>(ctx: &mut Ctx, f: impl FnOnce(&mut Ctx) -> T) -> Option<T> {
    if ctx.depth >= MAX_DEPTH {
        ctx.unreadable = true;
        return None;
    }
    ctx.depth += 1;
    let r = f(ctx);
    ctx.depth -= 1;
    Some(r)
}
