//! Parser for the selector expression language.
//!
//! Grammar (Calico's selector grammar, trimmed to what label sets need):
//! ```text
//! expr    = or
//! or      = and ( "||" and )*
//! and     = unary ( "&&" unary )*
//! unary   = "!" unary | primary
//! primary = "(" or ")" | "all" "(" ")" | "has" "(" key ")"
//!         | key "==" string | key "!=" string
//!         | key "in" set | key "not" "in" set
//!         | key "starts" "with" string | key "ends" "with" string | key "contains" string
//! set     = "{" [ string ( "," string )* [ "," ] ] "}"
//! key     = [A-Za-z0-9_./-]+            string = "..." | '...'  (with \" \' \\ \n \t escapes)
//! ```
//! Hand-written recursive descent: the grammar is tiny, and we want exact columns and
//! messages that name what was expected; no dependency would make that simpler.

use std::collections::BTreeSet;
use std::fmt;

use super::Selector;

/// Deeper nesting than this is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 64;

/// A syntax error at a 1-based character column of the selector text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parse a selector expression such as `app == "web" && tier in {"a", "b"}`.
pub fn parse(text: &str) -> Result<Selector, ParseError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end_col: text.chars().count() + 1,
    };
    if p.tokens.is_empty() {
        return Err(ParseError {
            column: 1,
            message: "empty selector; write all() to select everything".into(),
        });
    }
    let sel = p.or()?;
    if let Some(t) = p.peek() {
        return Err(p.error_at(
            t.col,
            format!(
                "unexpected {}; expected `&&`, `||` or the end of the selector",
                t.kind
            ),
        ));
    }
    Ok(sel)
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Word(String),
    Str(String),
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Word(w) => write!(f, "`{w}`"),
            Kind::Str(s) => write!(f, "string {s:?}"),
            Kind::EqEq => f.write_str("`==`"),
            Kind::NotEq => f.write_str("`!=`"),
            Kind::Bang => f.write_str("`!`"),
            Kind::AndAnd => f.write_str("`&&`"),
            Kind::OrOr => f.write_str("`||`"),
            Kind::LParen => f.write_str("`(`"),
            Kind::RParen => f.write_str("`)`"),
            Kind::LBrace => f.write_str("`{`"),
            Kind::RBrace => f.write_str("`}`"),
            Kind::Comma => f.write_str("`,`"),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    col: usize,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let two = |a: char, b: char| c == a && chars.get(i + 1) == Some(&b);
        let (kind, len) = if c.is_whitespace() {
            i += 1;
            continue;
        } else if two('=', '=') {
            (Kind::EqEq, 2)
        } else if two('!', '=') {
            (Kind::NotEq, 2)
        } else if two('&', '&') {
            (Kind::AndAnd, 2)
        } else if two('|', '|') {
            (Kind::OrOr, 2)
        } else if c == '!' {
            (Kind::Bang, 1)
        } else if c == '(' {
            (Kind::LParen, 1)
        } else if c == ')' {
            (Kind::RParen, 1)
        } else if c == '{' {
            (Kind::LBrace, 1)
        } else if c == '}' {
            (Kind::RBrace, 1)
        } else if c == ',' {
            (Kind::Comma, 1)
        } else if c == '"' || c == '\'' {
            let (s, len) = lex_string(&chars, i)?;
            (Kind::Str(s), len)
        } else if is_key_char(c) {
            let len = chars[i..].iter().take_while(|c| is_key_char(**c)).count();
            (Kind::Word(chars[i..i + len].iter().collect()), len)
        } else {
            let hint = match c {
                '=' => "; use `==` to compare",
                '&' => "; use `&&` for and",
                '|' => "; use `||` for or",
                _ => "",
            };
            return Err(ParseError {
                column: col,
                message: format!("unexpected character {c:?}{hint}"),
            });
        };
        out.push(Token { kind, col });
        i += len;
    }
    Ok(out)
}

/// Lex a quoted string starting at `start`; returns the value and the length in chars.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((s, i + 1 - start)),
            '\\' => {
                let esc = chars.get(i + 1).copied();
                s.push(match esc {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some(c @ ('\\' | '"' | '\'')) => c,
                    Some(c) => {
                        return Err(ParseError {
                            column: i + 1,
                            message: format!("unknown escape `\\{c}` in string"),
                        });
                    }
                    None => break,
                });
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err(ParseError {
        column: start + 1,
        message: "unterminated string".into(),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    end_col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_kind(&self) -> Option<&Kind> {
        self.peek().map(|t| &t.kind)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek_kind(), Some(Kind::Word(x)) if x == w)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn error_at(&self, column: usize, message: String) -> ParseError {
        ParseError { column, message }
    }

    /// An error about the current token (or the end of input).
    fn unexpected(&self, expected: &str) -> ParseError {
        match self.peek() {
            Some(t) => self.error_at(t.col, format!("expected {expected}, found {}", t.kind)),
            None => self.error_at(
                self.end_col,
                format!("expected {expected}, found the end of the selector"),
            ),
        }
    }

    fn expect(&mut self, kind: Kind, expected: &str) -> Result<(), ParseError> {
        if self.peek_kind() == Some(&kind) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn or(&mut self) -> Result<Selector, ParseError> {
        let mut parts = vec![self.and()?];
        while self.peek_kind() == Some(&Kind::OrOr) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Selector::or(parts)
        })
    }

    fn and(&mut self) -> Result<Selector, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.peek_kind() == Some(&Kind::AndAnd) {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Selector::and(parts)
        })
    }

    fn unary(&mut self) -> Result<Selector, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let col = self.peek().map_or(self.end_col, |t| t.col);
            return Err(self.error_at(col, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let r = if self.peek_kind() == Some(&Kind::Bang) {
            self.pos += 1;
            self.unary().map(Selector::not)
        } else {
            self.primary()
        };
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> Result<Selector, ParseError> {
        const TERM: &str = "a label key, `has(...)`, `all()`, `!` or `(`";
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected(TERM));
        };
        match tok.kind {
            Kind::LParen => {
                self.pos += 1;
                let inner = self.or()?;
                self.expect(Kind::RParen, "`)` or an operator (`&&`, `||`)")?;
                Ok(inner)
            }
            Kind::Word(w)
                if (w == "all" || w == "has")
                    && matches!(
                        self.tokens.get(self.pos + 1),
                        Some(Token {
                            kind: Kind::LParen,
                            ..
                        })
                    ) =>
            {
                self.pos += 2;
                let sel = if w == "all" {
                    Selector::All
                } else {
                    Selector::Has(self.key()?)
                };
                self.expect(Kind::RParen, "`)`")?;
                Ok(sel)
            }
            Kind::Word(_) => {
                let key = self.key()?;
                self.comparison(key)
            }
            _ => Err(self.unexpected(TERM)),
        }
    }

    fn key(&mut self) -> Result<String, ParseError> {
        match self.peek_kind() {
            Some(Kind::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected("a label key")),
        }
    }

    fn comparison(&mut self, key: String) -> Result<Selector, ParseError> {
        const OPS: &str = "`==`, `!=`, `in`, `not in`, `starts with`, `ends with` or `contains` after the label key";
        match self.peek_kind() {
            Some(Kind::EqEq) => {
                self.pos += 1;
                Ok(Selector::Eq(key, self.string()?))
            }
            Some(Kind::NotEq) => {
                self.pos += 1;
                Ok(Selector::Ne(key, self.string()?))
            }
            Some(Kind::Word(w)) => match w.as_str() {
                "in" => {
                    self.pos += 1;
                    Ok(Selector::In(key, self.set()?))
                }
                "not" => {
                    self.pos += 1;
                    if !self.peek_word("in") {
                        return Err(self.unexpected("`in` after `not`"));
                    }
                    self.pos += 1;
                    Ok(Selector::NotIn(key, self.set()?))
                }
                "starts" | "ends" => {
                    let starts = w == "starts";
                    self.pos += 1;
                    if !self.peek_word("with") {
                        return Err(self.unexpected("`with`"));
                    }
                    self.pos += 1;
                    let v = self.string()?;
                    Ok(if starts {
                        Selector::StartsWith(key, v)
                    } else {
                        Selector::EndsWith(key, v)
                    })
                }
                "contains" => {
                    self.pos += 1;
                    Ok(Selector::Contains(key, self.string()?))
                }
                _ => Err(self.unexpected(OPS)),
            },
            _ => Err(self.unexpected(OPS)),
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek_kind() {
            Some(Kind::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            Some(Kind::Word(w)) => {
                let w = w.clone();
                let col = self.peek().map_or(0, |t| t.col);
                Err(self.error_at(col, format!("expected a quoted value; write \"{w}\"")))
            }
            _ => Err(self.unexpected("a quoted value such as \"web\"")),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, ParseError> {
        self.expect(Kind::LBrace, "`{` to start a set of values")?;
        let mut values = BTreeSet::new();
        loop {
            if self.peek_kind() == Some(&Kind::RBrace) {
                break;
            }
            values.insert(self.string()?);
            match self.peek_kind() {
                Some(Kind::Comma) => self.pos += 1,
                Some(Kind::RBrace) => break,
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
        let close = self.next().map_or(self.end_col, |t| t.col);
        if values.is_empty() {
            return Err(self.error_at(close, "a set needs at least one value".into()));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let s = parse(r#"app == "web" && tier in {"a", 'b'} && !has(canary) || all()"#).unwrap();
        assert_eq!(s, Selector::All);
        let s = parse(r#"(app == "web" || app != "db") && env not in {"prod"}"#).unwrap();
        assert_eq!(
            s.to_string(),
            r#"(app == "web" || app != "db") && env not in {"prod"}"#
        );
        let s =
            parse(r#"name starts with "x" && name ends with "y" && name contains "z""#).unwrap();
        assert_eq!(s, parse(&s.to_string()).unwrap());
        assert_eq!(parse("has(in)").unwrap(), Selector::Has("in".into()));
        assert_eq!(
            parse(r#"has == "x""#).unwrap(),
            Selector::Eq("has".into(), "x".into())
        );
    }

    #[test]
    fn reports_columns() {
        let e = parse(r#"app == "web" && && x"#).unwrap_err();
        assert_eq!(e.column, 17, "{e}");
        let e = parse(r#"app = "web""#).unwrap_err();
        assert_eq!(e.column, 5, "{e}");
        assert!(e.message.contains("=="));
        let e = parse(r#"app == web"#).unwrap_err();
        assert_eq!(e.column, 8);
        assert!(e.message.contains("\"web\""), "{e}");
        let e = parse(r#"app == "web"#).unwrap_err();
        assert_eq!((e.column, e.message.as_str()), (8, "unterminated string"));
        let e = parse("(a == \"b\"").unwrap_err();
        assert_eq!(e.column, 10, "{e}");
        let e = parse("").unwrap_err();
        assert_eq!(e.column, 1);
        let e = parse("a in {}").unwrap_err();
        assert_eq!(e.column, 7);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "!".repeat(10_000) + "all()";
        assert!(parse(&text).is_err());
        let text = "(".repeat(10_000) + "all()" + &")".repeat(10_000);
        assert!(parse(&text).is_err());
    }
}
