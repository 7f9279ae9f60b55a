//! Is a token stream an injection? A small automaton walks the tokens the way a SQL
//! parser walks an expression (operand expected / operand seen), so it knows whether
//! the value, placed where the application put it, still forms valid SQL, and it
//! collects *signals* on the way: a UNION SELECT, a stacked statement, a call of a
//! function only an attacker needs, a comparison of constants, boolean logic, a
//! comment that cuts the rest of the query off.
//!
//! The decision needs both: benign text that merely contains SQL words ("7 AND A
//! HALF", "Select your size", "O'Brien") fails the structure, and valid structure
//! without a signal ("40 AND FAB", a column name) is left alone. Strong signals (UNION
//! SELECT, stacked statements, time and information functions, system catalogs) decide
//! as soon as the tokens before them were valid, because what follows them is the
//! attacker's own query and need not fit the application's.

mod statement;
mod transition;

use super::lex::{CommentKind, Tok, Token};
use super::words::{FuncClass, NO_ARGS, Word, also_function, lower};

/// What the judge saw, as bits.
pub mod sig {
    pub const UNION_SELECT: u32 = 1 << 0;
    /// ORDER BY / GROUP BY a column number: probing the column count.
    pub const ORDER_PROBE: u32 = 1 << 25;
    pub const STACKED: u32 = 1 << 1;
    pub const TIME_FUNC: u32 = 1 << 2;
    pub const INFO_FUNC: u32 = 1 << 3;
    pub const SYS_VAR: u32 = 1 << 4;
    pub const CATALOG: u32 = 1 << 5;
    pub const INTO_FILE: u32 = 1 << 6;
    pub const SUBQUERY: u32 = 1 << 7;
    pub const STATEMENT: u32 = 1 << 8;
    /// Strong signals: any one of them decides.
    pub const STRONG: u32 = ((1 << 9) - 1) | ORDER_PROBE;
    pub const TAUTOLOGY: u32 = 1 << 10;
    pub const LOGIC: u32 = 1 << 11;
    pub const CMP: u32 = 1 << 12;
    pub const ARITH: u32 = 1 << 13;
    pub const TRUNCATE: u32 = 1 << 14;
    pub const CALL: u32 = 1 << 15;
    pub const CLAUSE: u32 = 1 << 16;
    pub const INLINE_COMMENT: u32 = 1 << 17;
    pub const USER_VAR: u32 = 1 << 18;
    pub const USER_CALL: u32 = 1 << 19;
    pub const CASE: u32 = 1 << 20;
    pub const CAST: u32 = 1 << 21;
    /// A comparison of two literals that holds (`1=1`, `'a'='a'`, `2>1`).
    pub const TRUE_CMP: u32 = 1 << 22;
    /// The value ends inside an opened call, group, CASE or SELECT (a fragment).
    pub const OPEN_END: u32 = 1 << 23;
    /// A prefix operator (`-`, `!`, `NOT`) before an operand.
    pub const UNARY: u32 = 1 << 24;
    /// A [`TAUTOLOGY`] by a symbol (`""=""`) or `OR 1`, not by a word such as LIKE or IS:
    /// in a double-quoted string, where prose quotes words (`"LIKE" STAMP`), only this
    /// kind counts. (Not reported: it always comes with `constant_comparison`.)
    pub const SYMBOL_TAUTOLOGY: u32 = 1 << 26;
}

/// The names of the signal bits, for reports.
pub fn signal_names(bits: u32) -> Vec<&'static str> {
    const NAMES: &[(u32, &str)] = &[
        (sig::UNION_SELECT, "union_select"),
        (sig::STACKED, "stacked_query"),
        (sig::TIME_FUNC, "time_function"),
        (sig::INFO_FUNC, "info_function"),
        (sig::SYS_VAR, "system_variable"),
        (sig::CATALOG, "system_catalog"),
        (sig::INTO_FILE, "into_file"),
        (sig::SUBQUERY, "subquery"),
        (sig::STATEMENT, "statement"),
        (sig::TAUTOLOGY, "constant_comparison"),
        (sig::LOGIC, "boolean_logic"),
        (sig::CMP, "comparison"),
        (sig::ARITH, "arithmetic"),
        (sig::TRUNCATE, "comment_truncation"),
        (sig::CALL, "function_call"),
        (sig::CLAUSE, "clause"),
        (sig::INLINE_COMMENT, "inline_comment"),
        (sig::USER_VAR, "variable"),
        (sig::USER_CALL, "unknown_function_call"),
        (sig::CASE, "case_expression"),
        (sig::CAST, "cast"),
        (sig::TRUE_CMP, "true_comparison"),
        (sig::OPEN_END, "unterminated"),
        (sig::UNARY, "unary_operator"),
        (sig::ORDER_PROBE, "order_by_number"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The outcome of walking one context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Signals seen while the structure was still valid.
    pub signals: u32,
    /// The whole value is valid in its place (strong signals end the walk early and
    /// count as valid).
    pub valid: bool,
    /// The value left the string it was placed in (quote contexts only).
    pub broke_out: bool,
    /// Index of the token where the walk stopped being valid, or the token count.
    pub stop: usize,
    /// Everything was valid but the application's closing quote is left without a
    /// string to close (quote contexts): sloppy, but an attacker's intent is the same.
    pub tail_open: bool,
    /// The value ended in a `--` or `/*` comment (not `#`, which prose uses for numbers)
    /// after nothing but constants and operators (`1--`, `-1)/*`).
    pub trunc_dash: bool,
    /// The truncating comment is `#` directly followed by a letter or digit (`#2`), as
    /// prose writes numbers and tags.
    pub trunc_weak: bool,
}

fn parse_num(b: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(b).ok()?;
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    t.parse().ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Operand,
    After,
    /// After `AS` inside a call (CAST(x AS type)) or after `::`: a type name comes.
    Type,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Group,
    Call,
    /// Inside a SELECT (sub)query: aliases and clauses are allowed.
    Select,
}

/// Walk `toks` (lexed from `s`). `in_string`: the value was placed inside a string
/// literal with that quote; the first token is then the remainder of that string.
pub fn walk(s: &[u8], toks: &[Token], in_string: Option<u8>) -> Walk {
    let mut w = Walker {
        s,
        toks,
        signals: 0,
        stack: Vec::new(),
        side_const: vec![true],
        cmp_left_const: None,
        cmp_by_word: false,
        select_top: false,
        select_const: false,
        last_was_operand_const: false,
        case_open: false,
        name_seen: false,
        quoted: in_string.is_some(),
    };
    let mut out = w.run(in_string);
    if out.signals & sig::UNION_SELECT == 0
        && (in_string.is_none() || out.broke_out)
        && w.union_anywhere()
    {
        out.signals |= sig::UNION_SELECT;
        out.valid = true;
    }
    if w.select_top && out.signals & sig::STRONG != 0 {
        // A statement of the attacker's own: what follows need not fit anything.
        out.valid = true;
    }
    out
}

struct Walker<'a> {
    s: &'a [u8],
    toks: &'a [Token],
    signals: u32,
    stack: Vec<Frame>,
    /// Per nesting level: every operand on the current side of a comparison is constant.
    side_const: Vec<bool>,
    /// Left side of a pending comparison was constant.
    cmp_left_const: Option<bool>,
    /// The pending comparison's operator is a word (LIKE, IN, BETWEEN, ...).
    cmp_by_word: bool,
    /// The top level is a SELECT statement (the value started with one).
    select_top: bool,
    /// A constant, variable or call appeared in the top-level select list.
    select_const: bool,
    last_was_operand_const: bool,
    case_open: bool,
    /// A column or other plain name was an operand.
    name_seen: bool,
    /// The value was placed inside a string it must break out of.
    quoted: bool,
}

impl Walker<'_> {
    fn text(&self, i: usize) -> &[u8] {
        let t = self.toks[i];
        &self.s[t.start..t.end]
    }

    fn word_is(&self, i: usize, lower_word: &str) -> bool {
        i < self.toks.len()
            && matches!(self.toks[i].tok, Tok::Word(_))
            && self.text(i).eq_ignore_ascii_case(lower_word.as_bytes())
    }

    fn word_at(&self, i: usize) -> Option<Word> {
        match self.toks.get(i)?.tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    /// The token before `i` that is not an inline comment (`CASE/**/WHEN`).
    fn prev(&self, i: usize) -> Option<usize> {
        self.toks[..i.min(self.toks.len())]
            .iter()
            .rposition(|t| !matches!(t.tok, Tok::Comment { to_end: false, .. }))
    }

    /// The next token that is not an inline comment.
    fn next(&self, mut i: usize) -> usize {
        while i < self.toks.len() {
            match self.toks[i].tok {
                Tok::Comment { to_end: false, .. } => i += 1,
                _ => break,
            }
        }
        i
    }

    fn in_frame(&self, f: Frame) -> bool {
        self.stack.last() == Some(&f)
    }

    fn in_select(&self) -> bool {
        self.stack
            .last()
            .map_or(self.select_top, |f| *f == Frame::Select)
    }

    fn operand(&mut self, constant: bool) {
        if let Some(c) = self.side_const.last_mut() {
            *c &= constant;
        }
        self.last_was_operand_const = constant;
    }

    /// A boolean connective or list separator ends a comparison: was it constant?
    fn close_side(&mut self) {
        let right = self.side_const.last().copied().unwrap_or(false);
        if let Some(left) = self.cmp_left_const.take()
            && left
            && right
        {
            self.constant_comparison();
        }
        if let Some(c) = self.side_const.last_mut() {
            *c = true;
        }
    }

    /// `OR 1`, `OR TRUE` at the end of a condition: true for every row.
    fn or_constant(&mut self, i: usize) {
        if !(self.word_is(i, "or") || self.text(i) == b"||") {
            return;
        }
        let n = self.next(i + 1);
        let truthy = match self.toks.get(n).map(|t| t.tok) {
            Some(Tok::Num) => self.text(n) == b"1",
            Some(Tok::Word(Word::Literal)) => self.word_is(n, "true"),
            _ => false,
        };
        let m = self.next(n + 1);
        let ends = match self.toks.get(m).map(|t| t.tok) {
            None | Some(Tok::RParen | Tok::Comment { .. } | Tok::Logic | Tok::Semi) => true,
            Some(Tok::Word(w)) => matches!(w, Word::And | Word::Or | Word::Xor | Word::Clause),
            _ => false,
        };
        if truthy && ends {
            self.signals |= sig::TAUTOLOGY | sig::SYMBOL_TAUTOLOGY;
        }
    }

    /// The comparison just closed had constants on both sides.
    fn constant_comparison(&mut self) {
        self.signals |= sig::TAUTOLOGY;
        if !self.cmp_by_word {
            self.signals |= sig::SYMBOL_TAUTOLOGY;
        }
    }

    fn run(&mut self, in_string: Option<u8>) -> Walk {
        let toks = self.toks;
        let mut state = State::Operand;
        let mut i = 0;
        let mut broke_out = false;
        if let Some(q) = in_string {
            match toks.first().map(|t| t.tok) {
                Some(Tok::Str { closed: true, .. }) => {
                    broke_out = true;
                    state = State::After;
                    self.operand(true);
                    i = 1;
                }
                _ => {
                    return Walk::default();
                }
            }
            let _ = q;
        }
        let done = |signals: u32, valid: bool, stop: usize| Walk {
            signals,
            valid,
            broke_out,
            stop,
            tail_open: false,
            trunc_dash: false,
            trunc_weak: false,
        };
        // A value that starts a statement of its own (numeric context).
        if in_string.is_none() {
            let j = self.next(0);
            if let Some(w) = self.word_at(j) {
                if w == Word::Select {
                    self.select_top = true;
                    i = j + 1;
                    state = State::Operand;
                } else if matches!(w, Word::Statement | Word::Waitfor)
                    && self.standalone_statement(j)
                {
                    self.signals |= sig::STATEMENT;
                    return done(self.signals, true, j);
                }
            }
        }
        let mut from_seen = false;
        let mut select_list_strong = false;
        while i < toks.len() {
            if self.signals & sig::STRONG != 0 && !self.select_top {
                return done(self.signals, true, i);
            }
            let t = toks[i];
            match t.tok {
                Tok::Comment { to_end: false, .. } => {
                    self.signals |= sig::INLINE_COMMENT;
                    i += 1;
                    continue;
                }
                Tok::Comment { to_end: true, kind } => {
                    // The rest of the application's query is cut off. Valid only where an
                    // expression may end.
                    if state != State::After {
                        return done(self.signals, false, i);
                    }
                    self.close_side();
                    self.signals |= sig::TRUNCATE;
                    let mut w = self.finish(done, toks.len(), from_seen, select_list_strong);
                    w.trunc_dash = !self.name_seen
                        && (kind != CommentKind::Hash
                            || (i > 0 && matches!(toks[i - 1].tok, Tok::Num | Tok::RParen)));
                    w.trunc_weak = kind == CommentKind::Hash
                        && self
                            .s
                            .get(t.start + 1)
                            .is_some_and(|c| c.is_ascii_alphanumeric());
                    return w;
                }
                _ => {}
            }
            match state {
                State::Type => {
                    match t.tok {
                        Tok::Word(_) | Tok::Ident => {
                            // CHAR(10), DECIMAL(10,2)
                            let n = self.next(i + 1);
                            if n < toks.len() && toks[n].tok == Tok::LParen {
                                self.stack.push(Frame::Group);
                                self.side_const.push(true);
                                state = State::Operand;
                                i = n + 1;
                                continue;
                            }
                            state = State::After;
                        }
                        _ => return done(self.signals, false, i),
                    }
                }
                State::Operand => match t.tok {
                    Tok::Num => {
                        self.operand(true);
                        state = State::After;
                    }
                    Tok::Str { quote, closed } => {
                        if !closed && in_string != Some(quote) {
                            return done(self.signals, false, i);
                        }
                        self.operand(true);
                        state = State::After;
                    }
                    Tok::Var { .. }
                        if toks
                            .get(i + 1)
                            .is_some_and(|n| n.tok == Tok::LParen && n.start == t.end) =>
                    {
                        // `@name(`: a call through a variable name (T-SQL) or garbage
                        // glued to a call; either way a call.
                        self.signals |= sig::USER_CALL;
                        self.stack.push(Frame::Call);
                        self.side_const.push(true);
                        i += 2;
                        continue;
                    }
                    Tok::Var { system } => {
                        self.select_const |= self.select_top;
                        self.signals |= if system { sig::SYS_VAR } else { sig::USER_VAR };
                        self.operand(true);
                        state = State::After;
                    }
                    Tok::Ident => {
                        self.operand(false);
                        state = State::After;
                    }
                    Tok::Op if self.text(i) == b"*" && self.in_select() => {
                        // SELECT * / COUNT(*)
                        select_list_strong = true;
                        self.operand(false);
                        state = State::After;
                    }
                    Tok::Op if self.text(i) == b"*" && self.in_frame(Frame::Call) => {
                        self.operand(false);
                        state = State::After;
                    }
                    Tok::Op if matches!(self.text(i), b"-" | b"+" | b"~") => {
                        self.signals |= sig::UNARY;
                    }
                    Tok::Logic if self.text(i) == b"!" => {
                        self.signals |= sig::UNARY;
                    }
                    Tok::LParen => {
                        self.stack.push(Frame::Group);
                        self.side_const.push(true);
                    }
                    Tok::RParen if self.next(0) == i && in_string.is_none() => {
                        // `) OR ...`: the value closes a parenthesis of the application.
                        state = State::After;
                    }
                    Tok::Semi if self.next(0) == i && in_string.is_none() => {
                        // `; DROP ...`: the value follows a complete statement.
                        let n = self.next(i + 1);
                        if (matches!(self.word_at(n), Some(Word::Statement | Word::Waitfor))
                            || self.word_is(n, "desc"))
                            && self.statement_shape(n)
                        {
                            self.signals |= sig::STACKED;
                            return done(self.signals, true, n);
                        }
                        return done(self.signals, false, i);
                    }
                    Tok::RParen if self.prev(i).is_some_and(|p| toks[p].tok == Tok::LParen) => {
                        // f() with no arguments
                        self.pop_frame();
                        state = State::After;
                    }
                    Tok::Word(w) => match self.word_operand(i, w) {
                        Some((next_state, next_i)) => {
                            if self.signals & sig::STRONG != 0 && !self.select_top {
                                return done(self.signals, true, next_i);
                            }
                            state = next_state;
                            i = next_i;
                            continue;
                        }
                        None => return done(self.signals, false, i),
                    },
                    _ => return done(self.signals, false, i),
                },
                State::After => match t.tok {
                    // `~` and `!` are unary only (MySQL's NOT): after an operand no
                    // SQL goes on this way (`...CtP'!O`, bytes of a binary body).
                    Tok::Op if self.text(i) == b"~" => return done(self.signals, false, i),
                    Tok::Logic if self.text(i) == b"!" => return done(self.signals, false, i),
                    Tok::Op => {
                        self.signals |= sig::ARITH;
                        state = State::Operand;
                    }
                    Tok::Cmp => {
                        self.signals |= sig::CMP;
                        if self.literal_comparison_holds(i) {
                            self.signals |= sig::TRUE_CMP;
                        }
                        self.compare();
                        state = State::Operand;
                    }
                    Tok::Logic => {
                        self.signals |= sig::LOGIC;
                        self.close_side();
                        self.or_constant(i);
                        state = State::Operand;
                    }
                    Tok::Cast => {
                        self.signals |= sig::CAST;
                        state = State::Type;
                    }
                    Tok::Dot => {
                        // qualified name: a.b, db..table
                        let n = self.next(i + 1);
                        let n = if n < toks.len() && toks[n].tok == Tok::Dot {
                            self.next(n + 1)
                        } else {
                            n
                        };
                        match toks.get(n).map(|t| t.tok) {
                            Some(Tok::Word(w)) => {
                                if w == Word::Catalog {
                                    self.signals |= sig::CATALOG;
                                }
                                if let Some(c) = self.call_class(n, w) {
                                    self.call(c);
                                    i = self.next(n + 1) + 1;
                                    state = State::Operand;
                                    continue;
                                }
                                let qualifier = self.prev(i).is_some_and(|p| {
                                    matches!(toks[p].tok, Tok::Word(_) | Tok::Ident)
                                });
                                if w == Word::Plain
                                    && qualifier
                                    && toks.get(n + 1).is_some_and(|p| {
                                        p.tok == Tok::LParen && p.start == toks[n].end
                                    })
                                {
                                    // schema.function(: a user function called by its
                                    // schema or package (`app.adduser(...)`), as unqualified.
                                    self.signals |= sig::USER_CALL;
                                    self.stack.push(Frame::Call);
                                    self.side_const.push(true);
                                    i = n + 2;
                                    state = State::Operand;
                                    continue;
                                }
                                i = n + 1;
                                continue;
                            }
                            Some(Tok::Ident) => {
                                i = n + 1;
                                continue;
                            }
                            Some(Tok::Op) if self.text(n) == b"*" => {
                                i = n + 1;
                                continue;
                            }
                            _ => return done(self.signals, false, i),
                        }
                    }
                    Tok::RParen => {
                        if self.stack.is_empty() {
                            // Closes a parenthesis of the application's query.
                            self.close_side();
                        } else {
                            self.pop_frame();
                        }
                    }
                    Tok::Comma => {
                        // At the top level: a list the application built (IN (...),
                        // LIMIT a,b); no signal by itself.
                        self.close_side();
                        state = State::Operand;
                    }
                    Tok::Semi => {
                        let mut n = self.next(i + 1);
                        while n < toks.len() && toks[n].tok == Tok::Semi {
                            n = self.next(n + 1);
                        }
                        if n >= toks.len() {
                            return self.finish(done, n, from_seen, select_list_strong);
                        }
                        if let Tok::Comment { to_end: true, .. } = toks[n].tok {
                            self.signals |= sig::TRUNCATE;
                            return self.finish(done, n, from_seen, select_list_strong);
                        }
                        match self.word_at(n) {
                            Some(Word::Select) if self.operand_follows(n + 1) => {
                                self.signals |= sig::STACKED;
                                return done(self.signals, true, n);
                            }
                            Some(Word::Statement | Word::Waitfor) if self.statement_shape(n) => {
                                self.signals |= sig::STACKED;
                                return done(self.signals, true, n);
                            }
                            // DESC is ORDER BY's word too: a statement only after `;`.
                            _ if self.word_is(n, "desc") && self.statement_shape(n) => {
                                self.signals |= sig::STACKED;
                                return done(self.signals, true, n);
                            }
                            Some(w) if self.call_class(n, w).is_some() => {
                                self.signals |= sig::STACKED;
                                return done(self.signals, true, n);
                            }
                            _ if toks[n].tok == Tok::LParen
                                && self.word_at(self.next(n + 1)) == Some(Word::Select) =>
                            {
                                self.signals |= sig::STACKED;
                                return done(self.signals, true, n);
                            }
                            _ => return done(self.signals, false, i),
                        }
                    }
                    Tok::Str { closed: true, .. } if self.in_select() => {
                        // a quoted alias: SELECT @version "foo"
                    }
                    Tok::Str { quote, closed } => {
                        // Adjacent strings concatenate (MySQL, standard SQL).
                        if !matches!(toks[i - 1].tok, Tok::Str { .. })
                            || (!closed && in_string != Some(quote))
                        {
                            return done(self.signals, false, i);
                        }
                    }
                    Tok::Word(w) => match self.word_after(i, w, &mut from_seen) {
                        Some((next_state, next_i)) => {
                            if self.signals & sig::STRONG != 0 && !self.select_top {
                                return done(self.signals, true, next_i);
                            }
                            state = next_state;
                            i = next_i;
                            continue;
                        }
                        None => return done(self.signals, false, i),
                    },
                    Tok::Ident if self.in_select() => {}
                    Tok::LParen
                        if self.word_at(self.next(i + 1)) == Some(Word::Select)
                            || (self.word_at(self.next(i + 1)) == Some(Word::Union)
                                && self.union_select(self.next(i + 1)).is_some()) =>
                    {
                        // `1 (select ...)`: the attacker's own subquery glued on.
                        self.signals |= sig::SUBQUERY;
                        return done(self.signals, true, i);
                    }
                    _ => return done(self.signals, false, i),
                },
            }
            i += 1;
        }
        // End of the value.
        if state == State::Operand && in_string.is_none() && self.open_fragment() {
            // `SUBSTRING(`, `SELECT (CASE`: a fragment cut where the application's
            // text (or the attacker's next parameter) goes on.
            self.signals |= sig::OPEN_END;
            return self.finish(done, toks.len(), from_seen, select_list_strong);
        }
        if state != State::After {
            if self.select_top && from_seen {
                // A SELECT cut off after FROM/WHERE: a statement all the same.
                return self.finish(done, toks.len(), from_seen, select_list_strong);
            }
            return done(self.signals, false, toks.len());
        }
        if let Some(q) = in_string {
            // The application's closing quote must close a string the value opened.
            match toks.last().map(|t| t.tok) {
                Some(Tok::Str {
                    quote,
                    closed: false,
                }) if quote == q => {}
                _ => {
                    self.close_side();
                    let mut w = done(self.signals, false, toks.len());
                    w.tail_open = true;
                    return w;
                }
            }
        }
        self.close_side();
        self.finish(done, toks.len(), from_seen, select_list_strong)
    }

    fn finish(
        &mut self,
        done: impl Fn(u32, bool, usize) -> Walk,
        stop: usize,
        from_seen: bool,
        select_list_strong: bool,
    ) -> Walk {
        if self.select_top && (from_seen || select_list_strong || self.select_const) {
            // A whole SELECT with a FROM clause or a non-trivial select list.
            self.signals |= sig::STATEMENT;
        }
        done(self.signals, true, stop)
    }

    fn pop_frame(&mut self) {
        self.stack.pop();
        let inner = self.side_const.pop().unwrap_or(true);
        self.close_inner(inner);
    }

    /// A parenthesised group is one operand of the enclosing side.
    fn close_inner(&mut self, inner_const: bool) {
        if let Some(left) = self.cmp_left_const.take()
            && left
            && inner_const
        {
            self.constant_comparison();
        }
        self.operand(inner_const);
    }

    fn compare(&mut self) {
        self.compare_by(false);
    }

    /// A comparison begins; `by_word`: its operator is a word.
    fn compare_by(&mut self, by_word: bool) {
        let left = self.side_const.last().copied().unwrap_or(false);
        self.cmp_left_const = Some(left);
        self.cmp_by_word = by_word;
        if let Some(c) = self.side_const.last_mut() {
            *c = true;
        }
    }

    fn call(&mut self, class: FuncClass) {
        self.select_const |= self.select_top;
        self.signals |= match class {
            FuncClass::Info => sig::INFO_FUNC,
            FuncClass::Time => sig::TIME_FUNC,
            FuncClass::General => sig::CALL,
        };
        self.stack.push(Frame::Call);
        self.side_const.push(true);
    }

    /// Is word `i` (followed by `(`) a function call, and of which class?
    fn call_class(&self, i: usize, w: Word) -> Option<FuncClass> {
        let n = self.next(i + 1);
        if n >= self.toks.len() || self.toks[n].tok != Tok::LParen {
            return None;
        }
        let text = self.text(i);
        let (buf, len) = lower(text)?;
        if let Word::Func(c) = w {
            let empty = self.toks.get(self.next(n + 1)).map(|t| t.tok) == Some(Tok::RParen);
            if c == FuncClass::Info && !empty && NO_ARGS.iter().any(|f| f.as_bytes() == &buf[..len])
            {
                return Some(FuncClass::General);
            }
            return Some(c);
        }
        if w == Word::Literal && NO_ARGS.iter().any(|f| f.as_bytes() == &buf[..len]) {
            return Some(FuncClass::Info);
        }
        if also_function(w, &buf[..len]) {
            return Some(FuncClass::General);
        }
        None
    }

    fn operand_follows(&self, i: usize) -> bool {
        let n = self.next(i);
        match self.toks.get(n).map(|t| t.tok) {
            Some(Tok::Num | Tok::Str { .. } | Tok::Var { .. } | Tok::Ident | Tok::LParen) => true,
            Some(Tok::Op) => matches!(self.text(n), b"*" | b"-" | b"+" | b"~"),
            // MySQL's unary `!` (`select!(...)-~0`).
            Some(Tok::Logic) => self.text(n) == b"!",
            Some(Tok::Word(w)) => !matches!(
                w,
                Word::And | Word::Or | Word::Xor | Word::From | Word::Where | Word::Union
            ),
            _ => false,
        }
    }

    /// `name(`, `name.name(`, ... at `i`: a package member called, as in
    /// `dbms_lock.sleep(5)` or `ctxsys.drithsx.sn(1, ...)` (a path such as
    /// `version.diff` calls nothing).
    fn member_call(&self, mut i: usize) -> bool {
        loop {
            if !matches!(
                self.toks.get(i).map(|t| t.tok),
                Some(Tok::Word(_) | Tok::Ident)
            ) {
                return false;
            }
            let n = self.next(i + 1);
            match self.toks.get(n).map(|t| t.tok) {
                Some(Tok::LParen) => return true,
                Some(Tok::Dot) => i = n + 1,
                _ => return false,
            }
        }
    }

    /// Did the value end right after an opening `(` of a call or group, CASE, or SELECT?
    fn open_fragment(&self) -> bool {
        let Some(last) = self
            .toks
            .iter()
            .rposition(|t| !matches!(t.tok, Tok::Comment { .. }))
        else {
            return false;
        };
        match self.toks[last].tok {
            Tok::LParen => {
                last > 0 && matches!(self.toks[last - 1].tok, Tok::Word(_) | Tok::LParen)
            }
            Tok::Word(Word::Case | Word::Select) => true,
            _ => false,
        }
    }

    /// Is the comparison at `i` between two single literals, and does it hold?
    fn literal_comparison_holds(&self, i: usize) -> bool {
        if i == 0 || i + 1 >= self.toks.len() {
            return false;
        }
        let (l, r) = (self.toks[i - 1], self.toks[i + 1]);
        let lit = |t: Token| match t.tok {
            Tok::Num => Some((true, &self.s[t.start..t.end])),
            Tok::Str { closed: true, .. } if t.end - t.start >= 2 => {
                Some((false, &self.s[t.start + 1..t.end - 1]))
            }
            _ => None,
        };
        // A literal only if nothing binds tighter around it (`a+1=1` is not literal).
        let binds = |t: Tok| matches!(t, Tok::Op | Tok::Dot | Tok::Cast | Tok::Cmp | Tok::LParen);
        let before_ok =
            i < 2 || !binds(self.toks[i - 2].tok) || self.toks[i - 2].tok == Tok::LParen;
        let after_ok = i + 2 >= self.toks.len() || !binds(self.toks[i + 2].tok);
        let (Some((ln, lv)), Some((rn, rv))) = (lit(l), lit(r)) else {
            return false;
        };
        if !before_ok || !after_ok {
            return false;
        }
        let ord = if ln && rn {
            match (parse_num(lv), parse_num(rv)) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => None,
            }
        } else {
            Some(lv.to_ascii_lowercase().cmp(&rv.to_ascii_lowercase()))
        };
        let Some(ord) = ord else { return false };
        use std::cmp::Ordering::*;
        match self.text(i) {
            b"=" | b"==" | b"<=>" => ord == Equal,
            b"!=" | b"<>" => ord != Equal,
            b"<" => ord == Less,
            b">" => ord == Greater,
            b"<=" => ord != Greater,
            b">=" => ord != Less,
            _ => false,
        }
    }

    /// `UNION [ALL|DISTINCT]... [-(...] SELECT` at `i`: the index of SELECT.
    /// Is token `n` glued to token `i`: nothing between them, or only one inline
    /// comment (`ROTATELEFT/**/(`, sqlmap's commentbeforeparentheses: the lexer drops a
    /// comment there, and SQL reads it as no blank at all)?
    fn glued(&self, i: usize, n: usize) -> bool {
        let gap = &self.s[self.toks[i].end..self.toks[n].start];
        gap.is_empty()
            || (gap.starts_with(b"/*")
                && gap.ends_with(b"*/")
                && gap.len() >= 4
                && memchr::memmem::find(&gap[2..gap.len() - 2], b"*/").is_none())
    }

    fn union_select(&self, i: usize) -> Option<usize> {
        let mut n = self.next(i + 1);
        while matches!(self.word_at(n), Some(Word::Connector | Word::Prefix))
            && !self.word_is(n, "values")
        {
            n = self.next(n + 1);
        }
        // `UNION ALL VALUES (...)`, `VALUES ROW(...)` (MySQL 8, PostgreSQL): a SELECT of
        // constants (sqlmap's unionvalues and unionvaluesrow tampers).
        if self.word_is(n, "values") {
            let m = self.next(n + 1);
            let open = |k: usize| self.toks.get(k).map(|t| t.tok) == Some(Tok::LParen);
            if self.word_is(m, "row") && open(self.next(m + 1)) {
                return Some(m);
            }
            return open(m).then_some(n);
        }
        while n < self.toks.len()
            && (self.toks[n].tok == Tok::LParen
                || (self.toks[n].tok == Tok::Op && self.text(n) == b"-"))
        {
            n = self.next(n + 1);
        }
        (self.word_at(n) == Some(Word::Select)).then_some(n)
    }

    /// A UNION SELECT anywhere in the code tokens whose select list is clearly SQL
    /// (a number, `*`, NULL, a call, a variable, a string, a parenthesis, or a name
    /// followed by `,` or FROM). What precedes it may be obfuscated beyond our
    /// grammar (`{d 2}`, `U&'..' uescape`, `\1`), but no text writes this.
    fn union_anywhere(&self) -> bool {
        (0..self.toks.len()).any(|i| {
            let n = self.next(i + 1);
            self.word_at(i) == Some(Word::Union)
                && (
                    // `UNION 1,2,3`: a column-count probe with SELECT misplaced
                    self.toks.get(n).map(|t| t.tok) == Some(Tok::Num)
                        && self.toks.get(self.next(n + 1)).map(|t| t.tok) == Some(Tok::Comma)
                        && self.toks.get(self.next(n + 2)).map(|t| t.tok) == Some(Tok::Num)
                        || self.union_select(i).is_some_and(|n| {
                            let m = self.next(n + 1);
                            match self.toks.get(m).map(|t| t.tok) {
                                Some(
                                    Tok::Num | Tok::Var { .. } | Tok::Str { .. } | Tok::LParen,
                                ) => true,
                                Some(Tok::Op) => self.text(m) == b"*",
                                Some(Tok::Word(w)) => {
                                    w == Word::Literal
                                        || self.call_class(m, w).is_some()
                                        || matches!(
                                            self.toks.get(self.next(m + 1)).map(|t| t.tok),
                                            Some(Tok::Comma | Tok::Word(Word::From))
                                        )
                                }
                                _ => false,
                            }
                        })
                )
        })
    }

    /// SELECT at `i` followed by something no sentence has: `*`, a number, a string,
    /// a variable, a call or a parenthesis, or a name and then FROM.
    fn select_follows(&self, i: usize) -> bool {
        let n = self.next(i + 1);
        match self.toks.get(n).map(|t| t.tok) {
            Some(Tok::Num | Tok::Str { .. } | Tok::Var { .. } | Tok::LParen) => true,
            Some(Tok::Op) => matches!(self.text(n), b"*" | b"~"),
            // MySQL's unary `!` (`select!(...)-~0`, an error-based probe).
            Some(Tok::Logic) => self.text(n) == b"!",
            Some(Tok::Word(w)) => {
                self.call_class(n, w).is_some()
                    || w == Word::Prefix
                    || self.word_at(self.next(n + 1)) == Some(Word::From)
            }
            _ => false,
        }
    }
}
