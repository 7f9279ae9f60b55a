//! The walk's transitions on a word token, by state: where an operand is expected (a literal,
//! a column, a call, a subquery's SELECT) and right after one (an operator word, a
//! clause keyword such as `FROM`, `ORDER BY`, `UNION`), and the clauses that follow.

use super::{Frame, State, Walker, sig};
use crate::sqli::{
    lex::Tok,
    words::{FuncClass, NO_ARGS, Word, lower},
};

impl Walker<'_> {
    /// A word where an operand is expected.
    pub(super) fn word_operand(&mut self, i: usize, w: Word) -> Option<(State, usize)> {
        if let Some(c) = self.call_class(i, w) {
            self.call(c);
            let n = self.next(i + 1);
            return Some((State::Operand, n + 1));
        }
        match w {
            Word::Not | Word::Prefix => {
                self.signals |= sig::UNARY;
                Some((State::Operand, i + 1))
            }
            Word::Select if self.select_follows(i) => {
                // `1 AND SELECT 1 FROM ...`: a query where a value belongs.
                self.signals |= sig::SUBQUERY;
                Some((State::Operand, i + 1))
            }
            Word::Literal => {
                if let Some((buf, len)) = lower(self.text(i))
                    && NO_ARGS.iter().any(|f| f.as_bytes() == &buf[..len])
                {
                    // current_user, session_user, system_user: who the database runs as.
                    self.signals |= sig::INFO_FUNC;
                }
                self.operand(true);
                Some((State::After, i + 1))
            }
            Word::Catalog => {
                // Oracle's and PostgreSQL's views read as ordinary identifiers
                // (`all_users`: a parameter name, a form value), so alone they are words;
                // any other catalog name counts alone, as CRS 942140 and 942470 read them.
                let t = &self.toks[i];
                let alone = self.prev(i).is_none() && self.next(i + 1) >= self.toks.len();
                if !(alone && crate::sqli::words::plain_view(&self.s[t.start..t.end])) {
                    self.signals |= sig::CATALOG;
                }
                self.operand(false);
                Some((State::After, i + 1))
            }
            Word::Select => {
                let inside_parens = self
                    .prev(i)
                    .is_some_and(|p| self.toks[p].tok == Tok::LParen);
                if inside_parens && self.operand_follows(i + 1) {
                    self.signals |= sig::SUBQUERY;
                    return Some((State::Operand, i + 1));
                }
                None
            }
            Word::Case => {
                self.case_open = true;
                Some((State::Operand, i + 1))
            }
            // A quantified comparison, `= ALL (SELECT ...)` (ANY and SOME are prefixes).
            Word::Connector
                if self.word_is(i, "all")
                    && self.prev(i).is_some_and(|p| self.toks[p].tok == Tok::Cmp)
                    && self.toks.get(self.next(i + 1)).map(|t| t.tok) == Some(Tok::LParen) =>
            {
                Some((State::Operand, i + 1))
            }
            Word::When if self.prev(i).and_then(|p| self.word_at(p)) == Some(Word::Case) => {
                Some((State::Operand, i + 1))
            }
            Word::Union if self.union_select(i).is_some() => {
                self.signals |= sig::UNION_SELECT;
                Some((State::Operand, i + 1))
            }
            Word::And | Word::Or | Word::Xor | Word::In | Word::CmpWord | Word::Between
                if self.next(0) == i =>
            {
                // The value continues an expression of the application's (`OR 1=1`,
                // `IN (SELECT ...)`).
                self.signals |= if matches!(w, Word::And | Word::Or | Word::Xor) {
                    sig::LOGIC
                } else {
                    sig::CMP
                };
                Some((State::Operand, i + 1))
            }
            Word::From if self.next(0) == i => {
                // The value continues a select list: `FROM information_schema...`.
                self.signals |= sig::CLAUSE;
                Some((State::Operand, i + 1))
            }
            Word::Where if self.next(0) == i => {
                // The value adds the query's condition itself (` WHERE 1=1 AND 1=0#`).
                self.signals |= sig::CLAUSE;
                Some((State::Operand, i + 1))
            }
            Word::Clause if self.next(0) == i => {
                // The value starts with a clause the application appends it to.
                let mut from_seen = false;
                self.clause(i, &mut from_seen)
            }
            Word::Func(c @ (FuncClass::Info | FuncClass::Time))
                if self.toks.get(i + 1).map(|t| t.tok) == Some(Tok::Dot)
                    && self.member_call(i + 2) =>
            {
                // package.function(...) of Oracle's dangerous packages
                self.signals |= match c {
                    FuncClass::Time => sig::TIME_FUNC,
                    _ => sig::INFO_FUNC,
                };
                Some((State::After, i + 1))
            }
            Word::Plain if self.word_is(i, "match") => {
                // MySQL full-text search: MATCH (cols) | cols AGAINST (expr [mode]).
                let against =
                    (i + 1..self.toks.len().min(i + 16)).find(|&n| self.word_is(n, "against"))?;
                let n = self.next(against + 1);
                (self.toks.get(n).map(|t| t.tok) == Some(Tok::LParen)).then(|| {
                    self.call(FuncClass::General);
                    (State::Operand, n + 1)
                })
            }
            Word::Plain => {
                // An unknown name glued to `(` is a call of a user function; so is one
                // with blanks before its `(` once the value broke out of its string
                // (SQLite and PostgreSQL allow them: `' or json_valid (id);`), where
                // prose would not have got this far.
                let n = i + 1;
                let spaced = || {
                    self.quoted
                        && self.s[self.toks[i].end..self.toks[n].start]
                            .iter()
                            .all(u8::is_ascii_whitespace)
                };
                if n < self.toks.len()
                    && self.toks[n].tok == Tok::LParen
                    && (self.glued(i, n) || spaced())
                {
                    self.signals |= sig::USER_CALL;
                    self.stack.push(Frame::Call);
                    self.side_const.push(true);
                    return Some((State::Operand, n + 1));
                }
                self.name_seen = true;
                self.operand(false);
                Some((State::After, i + 1))
            }
            Word::Func(_) => {
                // A function name used as a column (`user`, `password`-like names).
                self.operand(false);
                Some((State::After, i + 1))
            }
            _ => None,
        }
    }

    /// A word right after an operand.
    pub(super) fn word_after(
        &mut self,
        i: usize,
        w: Word,
        from_seen: &mut bool,
    ) -> Option<(State, usize)> {
        match w {
            Word::And | Word::Or | Word::Xor => {
                self.signals |= sig::LOGIC;
                self.close_side();
                self.or_constant(i);
                Some((State::Operand, i + 1))
            }
            Word::OpWord => {
                self.signals |= sig::ARITH;
                if self.word_is(i, "collate") {
                    // Collation names carry a charset prefix (utf8mb4_bin,
                    // Latin1_General_CI_AS) or are quoted ("C").
                    let n = self.next(i + 1);
                    let named = match self.toks.get(n).map(|t| t.tok) {
                        Some(Tok::Word(_)) => {
                            self.text(n).contains(&b'_')
                                || ["binary", "nocase", "rtrim"]
                                    .iter()
                                    .any(|c| self.word_is(n, c))
                        }
                        Some(Tok::Str { .. } | Tok::Ident) => true,
                        _ => false,
                    };
                    return named.then_some((State::After, n + 1));
                }
                Some((State::Operand, i + 1))
            }
            Word::In
                if self.word_is(self.next(i + 1), "boolean")
                    || self.word_is(self.next(i + 1), "natural") =>
            {
                // MATCH ... AGAINST ('x' IN BOOLEAN MODE): the value ended a search string.
                let mut n = self.next(i + 1);
                while n < self.toks.len() && matches!(self.toks[n].tok, Tok::Word(_)) {
                    let last = self.word_is(n, "mode");
                    n = self.next(n + 1);
                    if last {
                        break;
                    }
                }
                Some((State::After, n))
            }
            Word::CmpWord | Word::In | Word::Between => {
                // SOUNDS LIKE, SIMILAR TO: neither word compares on its own.
                let n = self.next(i + 1);
                let pair = if self.word_is(i, "sounds") {
                    Some("like")
                } else if self.word_is(i, "similar") {
                    Some("to")
                } else {
                    None
                };
                if let Some(second) = pair {
                    if !self.word_is(n, second) {
                        return None;
                    }
                    self.signals |= sig::CMP;
                    self.compare_by(true);
                    return Some((State::Operand, n + 1));
                }
                self.signals |= sig::CMP;
                // `LIKE '%'` holds for every value, like `""=""`: as strong as a symbol.
                let matches_all = self.word_is(i, "like")
                    && matches!(self.toks.get(n).map(|t| t.tok), Some(Tok::Str { .. }))
                    && {
                        let t = self.text(n);
                        let inner = t.get(1..).unwrap_or(b"");
                        let inner = inner.strip_suffix(&t[..1]).unwrap_or(inner);
                        !inner.is_empty() && inner.iter().all(|&c| c == b'%')
                    };
                self.compare_by(!matches_all);
                Some((State::Operand, i + 1))
            }
            Word::Is => {
                self.signals |= sig::CMP;
                let mut n = self.next(i + 1);
                if self.word_is(n, "not") {
                    n = self.next(n + 1);
                }
                if self.word_is(n, "null") || self.word_is(n, "unknown") {
                    // x IS [NOT] NULL holds or fails for every row alike.
                    self.signals |= sig::TAUTOLOGY;
                    return Some((State::After, n + 1));
                }
                if self.word_is(n, "distinct") && self.word_is(self.next(n + 1), "from") {
                    self.compare_by(true);
                    return Some((State::Operand, self.next(n + 1) + 1));
                }
                if self.word_at(n) == Some(Word::Literal)
                    || matches!(self.toks.get(n).map(|t| t.tok), Some(Tok::Num))
                {
                    self.compare_by(true);
                    return Some((State::Operand, n));
                }
                None
            }
            Word::Not => {
                let n = self.next(i + 1);
                match self.word_at(n) {
                    Some(Word::CmpWord | Word::In | Word::Between) => {
                        self.word_after(n, Word::CmpWord, from_seen)
                    }
                    _ => None,
                }
            }
            Word::Union => {
                if let Some(n) = self.union_select(i) {
                    self.signals |= sig::UNION_SELECT;
                    return Some((State::Operand, n + 1));
                }
                let n = self.next(i + 1);
                let constant_before = !self.name_seen && self.last_was_operand_const;
                let ends = n >= self.toks.len() || matches!(self.toks[n].tok, Tok::Comment { .. });
                let numbers = constant_before
                    && self.toks.get(n).map(|t| t.tok) == Some(Tok::Num)
                    && self.toks.get(self.next(n + 1)).map(|t| t.tok) == Some(Tok::Comma);
                if (ends && constant_before)
                    || numbers
                    || (matches!(self.word_at(n), Some(Word::Statement)) && self.statement_shape(n))
                {
                    // `-1 union` cut off, or `UNION EXEC ...`.
                    self.signals |= sig::UNION_SELECT;
                    return Some((State::Operand, n));
                }
                None
            }
            Word::Select if self.select_follows(i) && self.last_was_operand_const => {
                // `1 SELECT ...`: SQL Server starts a statement without `;`. After a
                // constant (the value a query was given): after a name it is prose
                // (`Please select 2 options`).
                self.signals |= sig::STACKED;
                Some((State::Operand, i + 1))
            }
            Word::Clause => self.clause(i, from_seen),
            Word::From => {
                let first = !*from_seen;
                *from_seen = true;
                if self.in_select() || self.in_frame(Frame::Call) || (self.select_top && first) {
                    return Some((State::Operand, i + 1));
                }
                None
            }
            Word::Where if *from_seen || self.stack.is_empty() => {
                // At the top level: the value closed a derived table or a FROM item
                // of the application's query and adds its own condition.
                self.signals |= sig::CLAUSE;
                Some((State::Operand, i + 1))
            }
            Word::Connector if self.in_select() && self.word_is(i, "join") => {
                Some((State::Operand, i + 1))
            }
            Word::Connector if self.in_select() && self.word_is(i, "on") => {
                Some((State::Operand, i + 1))
            }
            Word::When | Word::Then | Word::Else if self.case_open => {
                self.close_side();
                Some((State::Operand, i + 1))
            }
            Word::End if self.case_open => {
                self.case_open = false;
                self.signals |= sig::CASE;
                self.close_side();
                self.operand(true);
                Some((State::After, i + 1))
            }
            Word::Statement | Word::Waitfor if self.standalone_statement(i) => {
                // SQL Server runs a new statement without a separating `;`.
                self.signals |= sig::STACKED;
                Some((State::Operand, i + 1))
            }
            Word::Plain | Word::Func(_) | Word::Literal | Word::Catalog if self.in_select() => {
                // alias in a select list or a table alias; a third name in a row is no
                // alias but prose (`Select 2 items from the list below`).
                let bare = |n: Option<usize>| {
                    n.is_some_and(|n| {
                        matches!(
                            self.toks[n].tok,
                            Tok::Ident
                                | Tok::Word(
                                    Word::Plain | Word::Func(_) | Word::Literal | Word::Catalog
                                )
                        )
                    })
                };
                let before = self.prev(i);
                if bare(before) && bare(before.and_then(|b| self.prev(b))) {
                    return None;
                }
                if w == Word::Catalog {
                    self.signals |= sig::CATALOG;
                }
                Some((State::After, i + 1))
            }
            _ => None,
        }
    }

    fn clause(&mut self, i: usize, from_seen: &mut bool) -> Option<(State, usize)> {
        let n = self.next(i + 1);
        let text = self.text(i).to_ascii_lowercase();
        match text.as_slice() {
            b"order" | b"group" => {
                if self.word_is(n, "by") {
                    self.signals |= sig::CLAUSE;
                    let m = self.next(n + 1);
                    if self.toks.get(m).map(|t| t.tok) == Some(Tok::Num) {
                        self.signals |= sig::ORDER_PROBE;
                    }
                    return Some((State::Operand, n + 1));
                }
                None
            }
            b"having" | b"limit" | b"offset" => {
                // A new expression: `shoes HAVING 8018=6365` compares two constants
                // whatever the operand before the clause was.
                self.close_side();
                self.signals |= sig::CLAUSE;
                Some((State::Operand, i + 1))
            }
            b"into" => {
                if self.word_is(n, "outfile") || self.word_is(n, "dumpfile") {
                    self.signals |= sig::INTO_FILE;
                    return Some((State::Operand, n + 1));
                }
                if self.in_select() {
                    return Some((State::Operand, i + 1));
                }
                None
            }
            b"for" if self.word_is(n, "update") || self.word_is(n, "share") => {
                self.signals |= sig::CLAUSE;
                Some((State::After, n + 1))
            }
            b"procedure" => {
                if self.word_is(n, "analyse") || self.word_is(n, "analyze") {
                    self.signals |= sig::INTO_FILE;
                    return Some((State::Operand, n + 1));
                }
                None
            }
            b"for" | b"as" if self.in_frame(Frame::Call) => {
                if text == b"as" {
                    return Some((State::Type, i + 1));
                }
                Some((State::Operand, i + 1))
            }
            b"as" if self.in_select() => Some((State::Type, i + 1)),
            b"as" if self.stack.is_empty() && self.toks.get(i).is_some() => {
                // `) AS alias`: the value closed a derived table of the application.
                match self.toks.get(n).map(|t| t.tok) {
                    Some(Tok::Word(Word::Plain) | Tok::Ident) => Some((State::After, n + 1)),
                    _ => None,
                }
            }
            b"intersect" | b"except" | b"minus" => {
                let n = self.next(i + 1);
                if self.word_at(n) == Some(Word::Select) {
                    self.signals |= sig::UNION_SELECT;
                    return Some((State::Operand, n + 1));
                }
                None
            }
            _ => {
                let _ = from_seen;
                None
            }
        }
    }
}
