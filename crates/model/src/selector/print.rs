//! Canonical text form of a selector: what `explain`, `lint` and error messages show,
//! and what [`super::parse`] reads back to the same tree.

use std::collections::BTreeSet;
use std::fmt::{self, Write};

use super::Selector;

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_or(self, f)
    }
}

fn write_or(s: &Selector, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s {
        Selector::Or(es) => join(es, " || ", write_and, f),
        other => write_and(other, f),
    }
}

fn write_and(s: &Selector, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s {
        Selector::And(es) => join(es, " && ", write_unary, f),
        other => write_unary(other, f),
    }
}

fn join(
    es: &[Selector],
    sep: &str,
    each: fn(&Selector, &mut fmt::Formatter<'_>) -> fmt::Result,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    for (i, e) in es.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        each(e, f)?;
    }
    Ok(())
}

fn write_unary(s: &Selector, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s {
        Selector::All => f.write_str("all()"),
        Selector::Has(k) => write!(f, "has({k})"),
        Selector::Not(inner) => {
            f.write_char('!')?;
            match **inner {
                // Atoms that read unambiguously after `!`.
                Selector::All | Selector::Has(_) | Selector::Not(_) => write_unary(inner, f),
                _ => {
                    f.write_char('(')?;
                    write_or(inner, f)?;
                    f.write_char(')')
                }
            }
        }
        Selector::Eq(k, v) => write!(f, "{k} == {}", Quoted(v)),
        Selector::Ne(k, v) => write!(f, "{k} != {}", Quoted(v)),
        Selector::In(k, vs) => write!(f, "{k} in {}", Set(vs)),
        Selector::NotIn(k, vs) => write!(f, "{k} not in {}", Set(vs)),
        Selector::StartsWith(k, v) => write!(f, "{k} starts with {}", Quoted(v)),
        Selector::EndsWith(k, v) => write!(f, "{k} ends with {}", Quoted(v)),
        Selector::Contains(k, v) => write!(f, "{k} contains {}", Quoted(v)),
        Selector::And(_) | Selector::Or(_) => {
            f.write_char('(')?;
            write_or(s, f)?;
            f.write_char(')')
        }
    }
}

/// A double-quoted string with `\` and `"` escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

struct Set<'a>(&'a BTreeSet<String>);

impl fmt::Display for Set<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Quoted(v))?;
        }
        f.write_char('}')
    }
}

/// Selectors travel as their canonical text (`-o json`, `-o yaml`).
impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}
