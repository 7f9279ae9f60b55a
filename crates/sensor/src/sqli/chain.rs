//! Fragments that continue the application's own SQL rather than form a statement or
//! expression of their own: the value was cut where the application's text goes on,
//! so the walk in [`super::judge`] finds it incomplete, yet its shape exists only in
//! SQL.
//!
//! - a *chained condition*: the value opens with a connective (`AND`, `OR`, `XOR`,
//!   `&&`, `||`) and then compares an operand (`AND uid!=(`, `|| arg == '`,
//!   `or 'a' <`), or opens with `IN` and a literal list (`in (2147483647,-1)`): it
//!   extends the `WHERE` the parameter sits in;
//! - a *cut condition*: the value leaves its string, adds a connective and an operand,
//!   and ends on the operator whose other side the application's text supplies
//!   (`test' or 1=`, `admin' or 'x' <`, `' or xyz!`);
//! - a *select-list tail*: a closed expression (`)`, a quoted name, a literal), `AS`,
//!   an alias, then `FROM` (`) AS t FROM`, `1234 AS "foobar" FROM`): the end of a
//!   column list, where prose puts a word before `as` (`such as x from`).
//!
//! Prose that starts with "and"/"or" does not go on to compare (`and 7 oranges`,
//! `or more`), and an arithmetic remainder is not a comparison (`1 OR 2+`).

use super::lex::{Tok, Token};
use super::words::Word;

/// The reason, when the tokens (of the bare value, or of a quote context that broke
/// out: `toks[0]` is then the closed rest of the string) continue the application's SQL.
pub fn continuation(s: &[u8], toks: &[Token], in_string: bool) -> Option<&'static str> {
    // Inline comments separate tokens as blanks do.
    let inline = |t: &Token| matches!(t.tok, Tok::Comment { to_end: false, .. });
    let t: std::borrow::Cow<'_, [Token]> = if toks.iter().any(inline) {
        toks.iter().copied().filter(|t| !inline(t)).collect()
    } else {
        toks.into()
    };
    let text = |i: usize| &s[t[i].start..t[i].end];
    if in_string {
        if !matches!(
            t.first().map(|t| t.tok),
            Some(Tok::Str { closed: true, .. })
        ) {
            return None;
        }
        // `test' or 1=`: connective, operand, then the operator the value ends on.
        if t.len() < 4 || !connective(&t, 1, text(1)) {
            return None;
        }
        let j = operand_run(&t, 2)?;
        let last = t.len().checked_sub(1)?;
        let dangling = match t[last].tok {
            Tok::Cmp | Tok::Op => true,
            Tok::Logic => text(last) == b"!",
            _ => false,
        };
        return (j == last && dangling).then_some("cut_condition");
    }
    let first = t.first()?;
    if connective(&t, 0, text(0)) {
        // `AND uid!=(`, `||(x="`, `or 'a' <`
        let mut i = 1;
        while t.get(i).is_some_and(|x| x.tok == Tok::LParen) {
            i += 1;
        }
        let j = operand_run(&t, i)?;
        let cmp = t
            .get(j)
            .is_some_and(|x| matches!(x.tok, Tok::Cmp | Tok::Word(Word::CmpWord)));
        return cmp.then_some("chained_condition");
    }
    if first.tok == Tok::Word(Word::In) && t.get(1).is_some_and(|x| x.tok == Tok::LParen) {
        // `IN (1, 2, 3`: a literal list, closed or cut.
        let mut i = 2;
        loop {
            i = literal(&t, i, text)?;
            match t.get(i).map(|x| x.tok) {
                Some(Tok::Comma) => i += 1,
                Some(Tok::RParen) if i + 1 == t.len() => return Some("chained_condition"),
                None => return Some("chained_condition"),
                _ => return None,
            }
        }
    }
    // `) AS t FROM`
    (1..t.len().saturating_sub(2)).find_map(|i| {
        let closed_before = matches!(
            t[i - 1].tok,
            Tok::RParen | Tok::Ident | Tok::Num | Tok::Str { closed: true, .. }
        );
        let alias = matches!(
            t[i + 1].tok,
            Tok::Ident | Tok::Word(Word::Plain) | Tok::Str { closed: true, .. }
        );
        (closed_before
            && alias
            && t[i].tok == Tok::Word(Word::Clause)
            && text(i).eq_ignore_ascii_case(b"as")
            && t[i + 2].tok == Tok::Word(Word::From))
        .then_some("select_list_tail")
    })
}

/// `AND`, `OR`, `XOR`, `&&`, `||` at `i`.
fn connective(t: &[Token], i: usize, text: &[u8]) -> bool {
    match t.get(i).map(|x| x.tok) {
        Some(Tok::Word(Word::And | Word::Or | Word::Xor)) => true,
        Some(Tok::Logic) => text == b"&&" || text == b"||",
        _ => false,
    }
}

/// One operand from `i`, qualified names (`a.b`) included: the index after it.
fn operand_run(t: &[Token], mut i: usize) -> Option<usize> {
    loop {
        match t.get(i).map(|x| x.tok)? {
            Tok::Num
            | Tok::Str { .. }
            | Tok::Ident
            | Tok::Var { .. }
            | Tok::Word(Word::Plain | Word::Func(_) | Word::Literal) => i += 1,
            _ => return None,
        }
        if t.get(i).map(|x| x.tok) == Some(Tok::Dot) {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

/// A literal (optionally signed) at `i`: the index after it.
fn literal<'a>(t: &[Token], mut i: usize, text: impl Fn(usize) -> &'a [u8]) -> Option<usize> {
    if t.get(i).is_some_and(|x| x.tok == Tok::Op) && matches!(text(i), b"-" | b"+") {
        i += 1;
    }
    match t.get(i).map(|x| x.tok)? {
        Tok::Num | Tok::Str { closed: true, .. } => Some(i + 1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::sqli::detect;

    #[test]
    fn continuations_and_prose() {
        for a in [
            "AND price<(",
            "or total = '",
            "&& level>=",
            "||(flag!=",
            "xor 'z' >",
            "IN (10, 20, -3",
            "in ('a','b')",
            "name' or qty>",
            "x\" OR y =",
            ") AS total_count FROM",
            "'2020' as y from",
            "/api/items/1 OR 1=1",
            "/v1/users/if(now()=sysdate(),sleep(3),0)",
            "<?xml version=\"1.0\"?><q><f v=\"1 OR 1=1\"/></q>",
            "<r><c>x' UNION SELECT password FROM users--</c></r>",
            "<r a=\"1 &gt; 0 OR 2 &gt; 1\"/>",
        ] {
            assert!(detect(a.as_bytes()).is_some(), "{a}");
        }
        for b in [
            "and 7 oranges",
            "or more",
            "And then = there was one",
            "1 OR 2+",
            "in (the) middle",
            "In (2020) we moved",
            "such as tea from china",
            "known as Bob from Texas",
            "rock 'n' roll or",
            "Tom's or Jerry's",
            "/shop/items/7",
            "/a/b/c.html",
            "<p>Hello, world</p>",
            "<a href=\"/x?y=1\">link</a>",
        ] {
            assert!(detect(b.as_bytes()).is_none(), "{b}");
        }
    }
}
