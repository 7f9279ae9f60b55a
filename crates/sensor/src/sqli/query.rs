//! Whole statements from the SQL wire (PostgreSQL Query/Parse, MySQL COM_QUERY). Here
//! the text *is* SQL, so structure proves nothing; what betrays an injection that
//! already happened is what no application writes on purpose: `OR` followed by a
//! comparison of two equal literals (`OR 1=1`, `OR 'a'='a'`), a line comment that cuts
//! off the rest of the statement right after a string literal closed (`'admin'--`),
//! delay functions (`SLEEP`, `PG_SLEEP`, `BENCHMARK`, `WAITFOR DELAY`) that only
//! blind injection needs, and a comparison of two number literals of which one has two
//! digits or more (`AND 6232>6231`, `CASE WHEN (4120=4120)`: the random constants of
//! boolean-blind probes, also against a subquery, `AND 7618=(SELECT COUNT(*) ...)`;
//! query builders write `1=1` and `1=0`, which stay clean), and a substring of a
//! subquery (`SUBSTR((SELECT password FROM users LIMIT 0,1),1,1)>CHAR(104)`: blind
//! extraction, a character at a time).

use super::lex::{CommentKind, Start, Tok, Token, lex};
use super::words::{FuncClass, Word};

/// Why a statement looks injected, or `None`.
pub fn injected(text: &[u8]) -> Option<&'static str> {
    let text = &text[..text.len().min(super::MAX_VALUE * 8)];
    let toks = lex(text, Start::Code);
    let lit = |t: &Token| matches!(t.tok, Tok::Num | Tok::Str { closed: true, .. });
    let same = |a: &Token, b: &Token| {
        let (x, y) = (&text[a.start..a.end], &text[b.start..b.end]);
        x.eq_ignore_ascii_case(y)
    };
    for (i, t) in toks.iter().enumerate() {
        let or = matches!(t.tok, Tok::Word(Word::Or))
            || (t.tok == Tok::Logic && text.get(t.start) == Some(&b'|'));
        if or
            && let [a, op, b, ..] = &toks[(i + 1).min(toks.len())..]
            && lit(a)
            && op.tok == Tok::Cmp
            && lit(b)
            && same(a, b)
            && matches!(
                &text[op.start..op.end],
                b"=" | b"==" | b">=" | b"<=" | b"<=>"
            )
        {
            return Some("tautology");
        }
        if let Tok::Comment {
            kind: CommentKind::Dash | CommentKind::Hash,
            to_end: true,
        } = t.tok
            && i > 0
            && matches!(toks[i - 1].tok, Tok::Str { .. })
            && memchr::memchr2(b'\'', b'"', &text[t.start..t.end]).is_some()
        {
            return Some("comment_truncation");
        }
        // A delay of a constant length: injections say how long (`SLEEP(5)`,
        // `BENCHMARK(5000000,MD5(1))`); a stored procedure that waits takes it from a
        // variable (`SLEEP(in_interval)`).
        if t.tok == Tok::Word(Word::Waitfor)
            || (t.tok == Tok::Word(Word::Func(FuncClass::Time))
                && constant_argument(&toks[i + 1..]))
        {
            return Some("time_function");
        }
        let select_at = |j: usize| {
            matches!(toks.get(j).map(|t| &t.tok), Some(Tok::LParen))
                && matches!(
                    toks.get(j + 1).map(|t| &t.tok),
                    Some(Tok::Word(Word::Select))
                )
        };
        if t.tok == Tok::Num
            && t.end - t.start >= 2
            && toks.get(i + 1).is_some_and(|op| op.tok == Tok::Cmp)
            && select_at(i + 2)
            && (i == 0 || !matches!(toks[i - 1].tok, Tok::Op | Tok::Dot))
        {
            return Some("constant_comparison");
        }
        if matches!(t.tok, Tok::Word(_))
            && [&b"substr"[..], b"substring", b"mid"]
                .iter()
                .any(|f| text[t.start..t.end].eq_ignore_ascii_case(f))
            && toks.get(i + 1).is_some_and(|p| p.tok == Tok::LParen)
            && select_at(i + 2)
        {
            return Some("subquery_substring");
        }
        if t.tok == Tok::Num
            && let [op, b, ..] = &toks[(i + 1).min(toks.len())..]
            && op.tok == Tok::Cmp
            && b.tok == Tok::Num
            && (t.end - t.start >= 2 || b.end - b.start >= 2)
            // Not a number that ends a longer expression (`x - 10 > 5`) or starts one.
            && (i == 0 || !matches!(toks[i - 1].tok, Tok::Op | Tok::Dot))
            && toks.get(i + 3).is_none_or(|n| !matches!(n.tok, Tok::Op | Tok::Dot))
        {
            return Some("constant_comparison");
        }
    }
    None
}

/// Does the call whose `(` opens `toks` have a number literal among its arguments
/// (nested calls included)?
fn constant_argument(toks: &[Token]) -> bool {
    if toks.first().is_none_or(|t| t.tok != Tok::LParen) {
        return false;
    }
    let mut depth = 0usize;
    for t in toks.iter().take(64) {
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            Tok::Num => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::injected;

    #[test]
    fn statements() {
        assert_eq!(
            injected(b"SELECT * FROM u WHERE id = 1 OR 1=1"),
            Some("tautology")
        );
        assert_eq!(
            injected(b"SELECT * FROM u WHERE n = '' OR 'a'='a'"),
            Some("tautology")
        );
        assert_eq!(
            injected(b"SELECT * FROM u WHERE n = 'admin'-- ' AND p = 'x'"),
            Some("comment_truncation")
        );
        assert_eq!(
            injected(b"SELECT * FROM u WHERE id = 1 AND SLEEP(5)"),
            Some("time_function")
        );
        assert_eq!(
            injected(b"SELECT a, b FROM t WHERE x = 'y' OR z = 2 -- note"),
            None
        );
        assert_eq!(injected(b"INSERT INTO t (a) VALUES ('it''s')"), None);
        // sqlmap's boolean blind, on the wire (tests/sql_wire.rs).
        for (q, why) in [
            (
                "SELECT * FROM items WHERE id=1 AND 6232>6231",
                "constant_comparison",
            ),
            (
                "SELECT * FROM t WHERE n LIKE '%a%' AND (CASE WHEN (4120=4120) THEN 1 ELSE 0 END)=1 AND '%'='%'",
                "constant_comparison",
            ),
            (
                "SELECT * FROM t WHERE n='x' AND 7618=(SELECT COUNT(*) FROM sysusers AS s1)",
                "constant_comparison",
            ),
            (
                "SELECT * FROM items WHERE id=1 AND SUBSTR((SELECT password FROM users LIMIT 0,1),1,1)>CHAR(104)",
                "subquery_substring",
            ),
        ] {
            assert_eq!(injected(q.as_bytes()), Some(why), "{q}");
        }
        // What applications write.
        for q in [
            "SELECT * FROM t WHERE 1=1 AND a = 2",
            "SELECT * FROM t WHERE 1 = 0",
            "SELECT * FROM t WHERE x - 10 > 5",
            "SELECT * FROM t WHERE v > 10.5 AND w <= 100",
            "DO SLEEP(in_interval)",
            "SELECT GET_LOCK('sys.ps_setup_save', in_timeout) INTO v_lock_result",
            "SELECT SUBSTR(name, 1, 3) FROM t",
            // The probe stayed inside the string it was put in: nothing happened.
            "SELECT * FROM t WHERE n LIKE '%(CASE WHEN (4120=4120) THEN 1 ELSE 0 END)%'",
        ] {
            assert_eq!(injected(q.as_bytes()), None, "{q}");
        }
    }
}
