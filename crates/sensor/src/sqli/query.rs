//! Whole statements from the SQL wire (PostgreSQL Query/Parse, MySQL COM_QUERY). Here
//! the text *is* SQL, so structure proves nothing; what betrays an injection that
//! already happened is what no application writes on purpose: `OR` followed by a
//! comparison of two equal literals (`OR 1=1`, `OR 'a'='a'`), a line comment that cuts
//! off the rest of the statement right after a string literal closed (`'admin'--`),
//! and delay functions (`SLEEP`, `PG_SLEEP`, `BENCHMARK`, `WAITFOR DELAY`) that only
//! blind injection needs.

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
        if matches!(
            t.tok,
            Tok::Word(Word::Func(FuncClass::Time)) | Tok::Word(Word::Waitfor)
        ) {
            return Some("time_function");
        }
    }
    None
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
    }
}
