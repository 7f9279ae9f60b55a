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
//! extraction, a character at a time). Also what extraction and probing leave: a string
//! spelt in character codes or hex where it is built (`CHR(113)||CHR(106)||CHR(122)`,
//! `CONCAT(0x71626b7071,...)`: the marker strings injection tools wrap what they read in),
//! a comment that cuts off the application's own rest after a quote (`-- -' AND
//! password='x'`), and a string literal glued to a number (`id=1' AND 3672=9666 OR
//! 'a'='b`: a value that broke the statement) whose rest reads as an injection.

use super::lex::{CommentKind, Start, Tok, Token, group_end, lex};
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
    if let Some(why) = reaches_the_system(text, &toks) {
        return Some(why);
    }
    if stacked_and_cut(&toks) {
        return Some("stacked_query");
    }
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
            && (matches!(toks[i - 1].tok, Tok::Str { .. })
                && memchr::memchr2(b'\'', b'"', &text[t.start..t.end]).is_some()
                || cuts_off_the_rest(&text[t.start..t.end]))
        {
            return Some("comment_truncation");
        }
        if encoded_string(text, &toks[i..]) {
            return Some("encoded_string");
        }
        if let Tok::Str { .. } = t.tok
            && glued_to_number(text, &toks[..i], t.start)
            && super::detect(&text[t.start..]).is_some()
        {
            return Some("broken_string");
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

/// Does a line comment hold the rest of the application's statement, cut off after the
/// quote the injection closed (`-- -' AND password='x'`, `# x') ORDER BY 2`)? Its first
/// quote is followed by a connective or a `)`, as an application's SQL goes on after a
/// string; prose in a comment does not (`-- the user's rows`).
fn cuts_off_the_rest(comment: &[u8]) -> bool {
    let Some(q) = memchr::memchr2(b'\'', b'"', comment) else {
        return false;
    };
    let rest = comment[q + 1..].trim_ascii_start();
    let word = |w: &[u8]| {
        rest.len() > w.len()
            && rest[..w.len()].eq_ignore_ascii_case(w)
            && rest[w.len()].is_ascii_whitespace()
    };
    rest.starts_with(b")") || word(b"and") || word(b"or")
}

/// A string spelt in character codes or hex where the statement builds it: three or
/// more printable `CHR(n)`/`CHAR(n)` joined (`CHR(113)||CHR(106)||CHR(122)`,
/// `CHAR(113)+CHAR(106)+...`), `CHAR(113,106,122)`, or a hex literal of printable text
/// among `CONCAT`'s arguments (`CONCAT(0x71626b7071,...)`). Injection tools write their
/// marker strings so, to need no quote; applications pass strings as literals or
/// parameters (`CHAR(13)+CHAR(10)`, a line break, is not printable; a binary key in hex
/// is compared, not concatenated).
/// Functions and statements that reach the server's operating system, which an
/// injection uses to run commands and read or write files (sqlmap's `--os-cmd`: `COPY t
/// FROM PROGRAM 'id'`): called, not defined (the packaged scripts that define them are
/// not flagged).
fn reaches_the_system(text: &[u8], toks: &[Token]) -> Option<&'static str> {
    const CALLS: &[&[u8]] = &[
        b"xp_cmdshell",
        b"load_file",
        b"lo_import",
        b"lo_export",
        b"pg_read_file",
        b"pg_read_binary_file",
        b"sys_exec",
        b"sys_eval",
    ];
    let word = |t: &Token, w: &[u8]| {
        matches!(t.tok, Tok::Word(_)) && text[t.start..t.end].eq_ignore_ascii_case(w)
    };
    if toks.first().is_some_and(|t| word(t, b"create")) {
        return None;
    }
    for (i, t) in toks.iter().enumerate() {
        let next = toks.get(i + 1);
        if CALLS.iter().any(|c| word(t, c))
            && (word(t, b"xp_cmdshell") || next.is_some_and(|n| n.tok == Tok::LParen))
        {
            return Some("system_access");
        }
        // COPY ... FROM PROGRAM / TO PROGRAM; SELECT ... INTO OUTFILE / DUMPFILE
        if let Some(n) = next
            && ((word(t, b"from") || word(t, b"to")) && word(n, b"program")
                || word(t, b"into") && (word(n, b"outfile") || word(n, b"dumpfile")))
        {
            return Some("system_access");
        }
    }
    None
}

/// A second statement after a `;`, and the text cut off by an empty line comment at its
/// end (`...WHERE id=1;DROP TABLE t--`, `;CREATE TABLE t(...)--`): how stacked injections
/// end the application's rest; a script an application sends ends on its statement.
fn stacked_and_cut(toks: &[Token]) -> bool {
    let Some(last) = toks.last() else {
        return false;
    };
    let empty_comment = matches!(
        last.tok,
        Tok::Comment {
            kind: CommentKind::Dash | CommentKind::Hash,
            to_end: true,
        }
    ) && last.end - last.start <= 3;
    empty_comment
        && toks.iter().enumerate().any(|(i, t)| {
            t.tok == Tok::Semi
                && toks
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.tok, Tok::Word(_)))
        })
}

/// Does a parameter value spell a string in character codes or hex where it builds one
/// ([`encoded_string`] at any token)? No form input does.
pub(crate) fn spelt_string(value: &[u8]) -> bool {
    let toks = lex(value, Start::Code);
    (0..toks.len()).any(|i| encoded_string(value, &toks[i..]))
}

fn encoded_string(text: &[u8], toks: &[Token]) -> bool {
    let name = |t: &Token, n: &[u8]| {
        matches!(t.tok, Tok::Word(_)) && text[t.start..t.end].eq_ignore_ascii_case(n)
    };
    let printable_code = |t: &Token| {
        t.tok == Tok::Num
            && std::str::from_utf8(&text[t.start..t.end])
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (32..127).contains(&n))
    };
    let Some(first) = toks.first() else {
        return false;
    };
    if name(first, b"chr") || name(first, b"char") {
        // `CHAR(113,106,122)`
        if toks.get(1).is_some_and(|t| t.tok == Tok::LParen) {
            let mut codes = 0;
            for pair in toks[2..toks.len().min(66)].chunks(2) {
                if !printable_code(&pair[0]) {
                    break;
                }
                codes += 1;
                match pair.get(1).map(|t| t.tok) {
                    Some(Tok::Comma) => {}
                    Some(Tok::RParen) if codes >= 3 => return true,
                    _ => break,
                }
            }
        }
        // `CHR(113)||CHR(106)||CHR(122)`: a call of one code, then a joiner, three times.
        let mut calls = 0;
        let mut rest = toks;
        while let [f, open, code, close, more @ ..] = rest
            && (name(f, b"chr") || name(f, b"char"))
            && open.tok == Tok::LParen
            && printable_code(code)
            && close.tok == Tok::RParen
        {
            calls += 1;
            if calls >= 3 {
                return true;
            }
            // Joined by `||`, `+` or a comma (inside CONCAT), parenthesised or not.
            let mut j = 0;
            while j < more.len()
                && (matches!(more[j].tok, Tok::Logic | Tok::Op | Tok::Comma | Tok::LParen)
                    || (more[j].tok == Tok::RParen && j == 0))
            {
                j += 1;
            }
            rest = &more[j..];
        }
        return false;
    }
    if (name(first, b"concat") || name(first, b"concat_ws"))
        && toks.get(1).is_some_and(|t| t.tok == Tok::LParen)
    {
        let end = group_end(toks, 1, 256).unwrap_or(toks.len().min(257));
        return toks[1..end]
            .iter()
            .any(|t| t.tok == Tok::Num && printable_hex(&text[t.start..t.end]));
    }
    false
}

/// `0x...` of three or more bytes, every one printable ASCII.
fn printable_hex(lit: &[u8]) -> bool {
    let Some(hex) = lit.strip_prefix(b"0x").or_else(|| lit.strip_prefix(b"0X")) else {
        return false;
    };
    hex.len() >= 6
        && hex.len() % 2 == 0
        && hex.chunks(2).all(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|b| (0x20..0x7f).contains(&b))
        })
}

/// Is the string literal at `at` glued to a number before it (`1'`, `-9888'`, `1%'`)?
/// No statement an application writes has one: a value put where a number goes broke
/// out of it with a quote.
fn glued_to_number(text: &[u8], before: &[Token], at: usize) -> bool {
    match before {
        [.., n] if n.tok == Tok::Num && n.end == at => true,
        [.., n, op]
            if n.tok == Tok::Num && op.tok == Tok::Op && n.end == op.start && op.end == at =>
        {
            &text[op.start..op.end] == b"%"
        }
        _ => false,
    }
}

/// Does the call whose `(` opens `toks` have a number literal among its arguments
/// (nested calls included)?
fn constant_argument(toks: &[Token]) -> bool {
    if toks.first().is_none_or(|t| t.tok != Tok::LParen) {
        return false;
    }
    let end = group_end(toks, 0, 64).unwrap_or(toks.len().min(64));
    toks[..end].iter().any(|t| t.tok == Tok::Num)
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
            // What sqlmap's UNION extraction made a site send (site.py, run for real).
            (
                "SELECT name, price FROM items WHERE id=1 UNION ALL SELECT NULL,CONCAT(0x71626b7071,IFNULL(CAST(DATABASE() AS CHAR CHARACTER SET utf8mb4),0x20),0x7170766271)-- -",
                "encoded_string",
            ),
            (
                "SELECT name, price FROM items WHERE id=1 UNION ALL SELECT STRING_AGG((CHR(113)||CHR(106)||CHR(122)||CHR(120)||CHR(113))||COALESCE(tablename::text,(CHR(32))),''),NULL FROM pg_tables",
                "encoded_string",
            ),
            (
                "SELECT * FROM t WHERE id=1 UNION SELECT CHAR(113)+CHAR(106)+CHAR(122),NULL--",
                "encoded_string",
            ),
            (
                "SELECT * FROM t WHERE id=1 UNION SELECT CHAR(113,106,122,120),2",
                "encoded_string",
            ),
            (
                "SELECT username FROM users WHERE username='alice' ORDER BY 3-- -' AND password='x'",
                "comment_truncation",
            ),
            (
                "SELECT name FROM items WHERE id=1' AND 3672=9666 OR 'sZjV'='PRZA",
                "broken_string",
            ),
            (
                "SELECT name FROM items WHERE id=-3299') OR 5056=5056 AND ('ZkGL'='ZkGL",
                "broken_string",
            ),
            (
                "SELECT name FROM items WHERE id=1%' AND 9995=3312 AND 'CvgH%'='CvgH",
                "broken_string",
            ),
            // sqlmap's --os-cmd and --file-read through PostgreSQL, run for real
            (
                "SELECT name FROM items WHERE id=1;DROP TABLE IF EXISTS sqlmapoutput;CREATE TABLE sqlmapoutput(data text);COPY sqlmapoutput FROM PROGRAM 'echo 1';--",
                "system_access",
            ),
            (
                "SELECT name FROM items WHERE id=1;CREATE TABLE sqlmapfile(data character(10000))--",
                "stacked_query",
            ),
            (
                "SELECT name FROM items WHERE id=1;DROP TABLE sqlmapfile--",
                "stacked_query",
            ),
            (
                "SELECT a FROM t WHERE id=1 UNION SELECT LOAD_FILE('/etc/passwd')",
                "system_access",
            ),
            ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "system_access"),
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
            "SELECT u FROM users WHERE u='alice AND 9362=6642' AND p='x'",
            // Character codes and hex that applications write.
            "SELECT a + CHAR(13) + CHAR(10) + CHAR(9) + b FROM t",
            "SELECT CONCAT(a, CHAR(10)) FROM t",
            "SELECT * FROM t WHERE k = 0x4142434445464748",
            "SELECT CONCAT(name, 0x0a0d, other) FROM t",
            "INSERT INTO t VALUES (0x48656c6c6f)",
            "SELECT CHAR(65) || CHAR(66) FROM t",
            // Scripts of several statements, as applications send them.
            "BEGIN; UPDATE t SET a = 1 WHERE id = 2; COMMIT;",
            "SET search_path TO app; SELECT * FROM t -- list",
            "COPY t FROM STDIN",
            // Comments with quotes, and typed literals.
            "SELECT * FROM t -- the user's rows",
            "SELECT * FROM t WHERE d > DATE'2020-01-01' AND x = 1 OR y = 2",
            "SELECT * FROM t WHERE id = 1 -- 'and' is fine here",
        ] {
            assert_eq!(injected(q.as_bytes()), None, "{q}");
        }
    }
}
