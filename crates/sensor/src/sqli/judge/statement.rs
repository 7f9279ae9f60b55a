//! Statements that read like prose (`GRANT access to`, `show tables of results`,
//! `if you wait`) count only in their full shape: the words a real statement of that
//! kind needs after its keyword.

use super::Walker;
use crate::sqli::{
    lex::{self, Tok},
    words::Word,
};

impl Walker<'_> {
    /// A statement at `i` that no `;` separates from what comes before: the whole value
    /// (`use mydb;`), or after the application's operand (SQL Server's `1 WAITFOR ...`).
    /// Statements whose shape English also has (*use it*, *open it*, *explain this*,
    /// *if not, call me*, *call me (maybe)*, *load data file*) must also end in SQL's own
    /// way, a `;` or a comment, or (IF) control a statement of their own
    /// (`IF (1=1) WAITFOR DELAY '0:0:5'`, `IF EXISTS (SELECT ...) DROP TABLE t`).
    pub(super) fn standalone_statement(&self, i: usize) -> bool {
        if !self.statement_shape(i) {
            return false;
        }
        let kw = self.text(i).to_ascii_lowercase();
        let english = matches!(
            kw.as_slice(),
            b"use"
                | b"open"
                | b"fetch"
                | b"call"
                | b"load"
                | b"show"
                | b"describe"
                | b"desc"
                | b"explain"
                | b"goto"
                | b"pragma"
                | b"prepare"
                | b"handler"
                | b"shutdown"
                | b"if"
        );
        if !english {
            return true;
        }
        let after = i + 1..self.toks.len();
        let terminated = after
            .clone()
            .any(|n| matches!(self.toks[n].tok, Tok::Semi | Tok::Comment { .. }));
        let controls = kw == b"if"
            && after.take(32).any(|n| match self.word_at(n) {
                Some(Word::Select) => true,
                Some(Word::Waitfor | Word::Statement) => {
                    !self.word_is(n, "if") && self.statement_shape(n)
                }
                _ => false,
            });
        // SHUTDOWN WITH NOWAIT is no sentence either, nor MySQL's IF( glued
        // (`if(2=`, CRS 942230's probes).
        let nowait = kw == b"shutdown" && self.word_is(self.next(i + 1), "with");
        let glued = kw == b"if"
            && self
                .toks
                .get(i + 1)
                .is_some_and(|t| t.tok == Tok::LParen && t.start == self.toks[i].end);
        terminated || controls || nowait || glued
    }

    /// What a DELETE names before its FROM: modifiers, `TOP (n)`, and tables separated
    /// by commas (`t1, t2.*`). A count (`Delete 2 items from the list`) or two names in
    /// a row (`Delete all drawings and all turtles from the screen`, `Delete the
    /// breakpoint from the list`) is a sentence's, not SQL's.
    fn delete_targets(&self, from_start: usize, from: usize) -> bool {
        let mut name_before = false;
        for n in from_start..from {
            match self.toks[n].tok {
                Tok::Num
                    if self.prev(n).is_some_and(|p| {
                        self.word_is(p, "top") || self.toks[p].tok == Tok::LParen
                    }) => {}
                Tok::LParen | Tok::RParen | Tok::Comma | Tok::Dot => name_before = false,
                Tok::Op if self.text(n) == b"*" => {}
                Tok::Comment { .. } => {}
                Tok::Word(_)
                    if ["low_priority", "quick", "ignore", "top", "percent"]
                        .iter()
                        .any(|m| self.word_is(n, m)) =>
                {
                    name_before = false
                }
                Tok::Word(_) | Tok::Ident => {
                    if name_before {
                        return false;
                    }
                    name_before = true;
                }
                _ => return false,
            }
        }
        true
    }

    /// Does the statement keyword at `i` start a real statement (not a prose word)?
    pub(super) fn statement_shape(&self, i: usize) -> bool {
        let n1 = self.next(i + 1);
        let n2 = self.next(n1 + 1);
        let kw = self.text(i).to_ascii_lowercase();
        let next_word = |n: usize, words: &[&str]| words.iter().any(|w| self.word_is(n, w));
        let tok = |n: usize| self.toks.get(n).map(|t| t.tok);
        let ends = |n: usize| {
            matches!(tok(n), None | Some(Tok::Semi) | Some(Tok::Comment { .. }))
                || self.word_at(n) == Some(Word::End)
        };
        let name = |n: usize| {
            matches!(tok(n), Some(Tok::Ident))
                || matches!(
                    tok(n),
                    Some(Tok::Word(Word::Plain | Word::Catalog | Word::Func(_)))
                )
        };
        match kw.as_slice() {
            b"insert" | b"replace" | b"merge" => {
                next_word(n1, &["into"])
                    || (name(n1) && next_word(n2, &["values", "select"]))
                    // INTO is optional in MySQL, columns listed: `REPLACE t (a, b) VALUES`.
                    || (name(n1)
                        && tok(n2) == Some(Tok::LParen)
                        && lex::group_end(self.toks, n2, 64)
                            .is_some_and(|e| next_word(self.next(e + 1), &["values", "select"])))
            }
            b"update" => {
                (name(n1) && next_word(n2, &["set"]))
                    || (next_word(n1, &["low_priority", "ignore"]) && name(n2))
            }
            // DELETE [modifiers] [TOP (n)] [t1, t2.*] FROM: a count before FROM is a
            // sentence's (`Delete 2 items from the list`), not SQL's.
            b"delete" => (n1..n1 + 6)
                .find(|&n| self.word_is(n, "from"))
                .is_some_and(|from| self.delete_targets(n1, from)),
            b"drop" | b"truncate" if name(n1) && ends(n2) && n2 < self.toks.len() => true,
            b"drop" | b"create" | b"alter" | b"truncate" | b"rename" => {
                next_word(
                    n1,
                    &[
                        "table",
                        "database",
                        "schema",
                        "user",
                        "view",
                        "procedure",
                        "proc",
                        "function",
                        "index",
                        "trigger",
                        "login",
                        "column",
                        "tablespace",
                        "role",
                        "temporary",
                    ],
                ) || (kw == b"create" && self.word_is(n1, "or") && self.word_is(n2, "replace"))
            }
            b"exec" | b"execute" => {
                matches!(
                    tok(n1),
                    Some(Tok::LParen | Tok::Var { .. } | Tok::Str { .. } | Tok::Ident)
                ) || matches!(tok(n1), Some(Tok::Word(Word::Catalog)))
                    || next_word(n1, &["master", "immediate", "sp_executesql"])
                    || (matches!(tok(n1), Some(Tok::Word(Word::Plain)))
                        && (self.text(n1).contains(&b'_') || tok(n2) == Some(Tok::Dot)))
            }
            b"declare" => {
                matches!(tok(n1), Some(Tok::Var { .. })) || name(n1) && next_word(n2, &["cursor"])
            }
            b"set" => {
                matches!(tok(n1), Some(Tok::Var { .. }))
                    || (name(n1) && matches!(tok(n2), Some(Tok::Cmp)))
                    || next_word(n1, &["global", "session", "password", "names"])
            }
            b"shutdown" => ends(n1) || next_word(n1, &["with", "immediate"]),
            b"grant" | b"revoke" => {
                // Privileges ON an object TO|FROM a grantee, or a role TO|FROM a
                // grantee and the statement ends: prose grants things to people too
                // (`grant access to the terminal`, `Grant of Patent License ... to`).
                let to = |n: usize| self.word_is(n, "to") || self.word_is(n, "from");
                match (n1..n1 + 8).find(|&n| self.word_is(n, "on")) {
                    Some(on) => (on + 1..on + 10).any(to),
                    None => {
                        let n3 = self.next(n2 + 1);
                        name(n1)
                            && to(n2)
                            && (name(n3) || matches!(tok(n3), Some(Tok::Str { .. })))
                            && (ends(self.next(n3 + 1)) || self.word_is(self.next(n3 + 1), "with"))
                    }
                }
            }
            b"call" => name(n1) && tok(n2) == Some(Tok::LParen),
            b"load" => next_word(n1, &["data", "xml", "file"]),
            b"handler" => name(n1) && next_word(n2, &["open", "read", "close"]),
            b"goto" => name(n1),
            b"begin" => {
                matches!(self.word_at(n1), Some(Word::Func(_) | Word::Catalog))
                    || next_word(
                        n1,
                        &[
                            "try",
                            "tran",
                            "transaction",
                            "declare",
                            "exec",
                            "execute",
                            "select",
                            "insert",
                            "update",
                            "delete",
                            "set",
                            "if",
                            "goto",
                        ],
                    )
                    || (matches!(self.word_at(n1), Some(Word::Statement))
                        && self.statement_shape(n1))
            }
            b"if" => {
                tok(n1) == Some(Tok::LParen)
                    || next_word(n1, &["exists", "not"])
                    || (matches!(tok(n1), Some(Tok::Num | Tok::Var { .. }))
                        && matches!(tok(n2), Some(Tok::Cmp)))
                    // IF <any condition> WAITFOR DELAY '...': a blind probe of whatever
                    // the condition asks (`IF IS_SRVROLEMEMBER('sysadmin') > 0 WAITFOR`).
                    || (n1..self.toks.len().min(n1 + 32)).any(|n| {
                        self.word_at(n) == Some(Word::Waitfor) && self.statement_shape(n)
                    })
            }
            b"show" => {
                // What an attacker lists first once statements stack (MySQL; `SHOW x`
                // in PostgreSQL too). Prose shows tables and columns of other things.
                let n3 = self.next(n2 + 1);
                (next_word(
                    n1,
                    &[
                        "tables",
                        "databases",
                        "schemas",
                        "grants",
                        "processlist",
                        "variables",
                        "privileges",
                    ],
                ) && (ends(n2) || next_word(n2, &["from", "in", "like", "where", "for"])))
                    || (next_word(
                        n1,
                        &["columns", "fields", "index", "indexes", "keys", "triggers"],
                    ) && next_word(n2, &["from", "in"])
                        && name(n3))
                    || (next_word(n1, &["create"])
                        && next_word(
                            n2,
                            &[
                                "table",
                                "database",
                                "schema",
                                "procedure",
                                "function",
                                "user",
                                "view",
                            ],
                        ))
                    || (next_word(n1, &["full"])
                        && next_word(n2, &["processlist", "tables", "columns"]))
            }
            b"describe" | b"desc" | b"explain" => {
                // DESCRIBE t, DESC db.t, EXPLAIN t: a table's columns. EXPLAIN before a
                // statement runs nothing, but only a query's author writes it.
                let n3 = self.next(n2 + 1);
                let n4 = self.next(n3 + 1);
                (name(n1) && (ends(n2) || (tok(n2) == Some(Tok::Dot) && name(n3) && ends(n4))))
                    || (kw == b"explain"
                        && matches!(self.word_at(n1), Some(Word::Select | Word::Statement)))
            }
            b"waitfor" => {
                next_word(n1, &["delay", "time"]) && matches!(tok(n2), Some(Tok::Str { .. }))
            }
            b"copy" => {
                // COPY t FROM|TO 'file' | STDIN | STDOUT | PROGRAM 'command', and COPY
                // (SELECT ...) TO ... (PostgreSQL)
                let target = |n: usize| {
                    matches!(tok(n), Some(Tok::Str { .. }))
                        || next_word(n, &["stdin", "stdout", "program"])
                };
                let n3 = self.next(n2 + 1);
                (name(n1) && next_word(n2, &["from", "to"]) && target(n3))
                    || (tok(n1) == Some(Tok::LParen)
                        && self.word_at(n2) == Some(Word::Select)
                        && (n2..self.toks.len().min(n2 + 64))
                            .any(|n| self.word_is(n, "to") && target(self.next(n + 1))))
            }
            b"attach" => next_word(n1, &["database"]),
            b"pragma" => name(n1),
            b"prepare" => name(n1) && next_word(n2, &["from"]),
            b"use" => name(n1) && (ends(n2) || matches!(self.word_at(n2), Some(Word::Statement))),
            b"open" | b"fetch" | b"dbcc" => name(n1) && ends(n2) || next_word(n1, &["next"]),
            b"backup" => next_word(n1, &["database", "log"]),
            _ => false,
        }
    }
}
