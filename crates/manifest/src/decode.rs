//! The decoding toolkit every kind's decoder is written with: a context that collects
//! diagnostics, a cheap field path, and typed readers for maps, lists and scalars.
//!
//! Why not serde: serde loses positions as soon as a document is dispatched on its
//! `kind` (it goes through an untyped value), and it stops at the first error. We want
//! every error of every file, each with `file:line:column`, the field path, what was
//! expected and a "did you mean" for misspelt fields and values. Hand-written decoders
//! over [`crate::yaml`]'s positioned tree give all of that, and stay short with the
//! helpers below.
//!
//! Convention: a reader that finds a problem records it and returns `None`; the caller
//! carries on with the rest of the document, so one run reports everything.

use std::fmt;
use std::sync::Arc;

use bulkhead_policy::spec::Origin;

use crate::yaml::{Entry, Node, Pos, Resolved, Scalar, Style, Value};

/// A field path, built on the stack as decoders descend and rendered only on error:
/// `spec.ingress[0].from[1].podSelector`.
#[derive(Clone, Copy)]
pub enum P<'a> {
    Root,
    Field(&'a P<'a>, &'a str),
    Index(&'a P<'a>, usize),
}

impl<'a> P<'a> {
    pub fn f(&'a self, name: &'a str) -> P<'a> {
        P::Field(self, name)
    }

    pub fn i(&'a self, index: usize) -> P<'a> {
        P::Index(self, index)
    }
}

impl fmt::Display for P<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Iterative: collect the chain, then print it root first.
        let mut chain = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                P::Root => break,
                P::Field(parent, _) | P::Index(parent, _) => {
                    chain.push(cur);
                    cur = parent;
                }
            }
        }
        for (n, part) in chain.iter().rev().enumerate() {
            match part {
                P::Field(_, name) => {
                    let plain = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !plain {
                        write!(f, "[{name:?}]")?;
                    } else if n == 0 {
                        f.write_str(name)?;
                    } else {
                        write!(f, ".{name}")?;
                    }
                }
                P::Index(_, i) => write!(f, "[{i}]")?,
                P::Root => {}
            }
        }
        Ok(())
    }
}

/// One problem, before it is given its file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub path: String,
    pub message: String,
}

/// The decoding context of one file.
pub struct Cx<'t> {
    pub file: Arc<str>,
    /// The file's text, to map columns inside scalars (selectors).
    pub text: &'t str,
    pub problems: Vec<Problem>,
}

/// Which fields a mapping may have.
#[derive(Clone, Copy)]
pub enum Fields<'a> {
    /// Exactly these (bulkhead kinds, NetworkPolicy, ObjectMeta).
    Strict(&'a [&'a str]),
    /// Anything: Kubernetes objects carry hundreds of fields we do not need.
    Lenient,
}

/// A mapping being decoded.
#[derive(Clone, Copy)]
pub struct Obj<'n> {
    pub node: &'n Node,
    pub entries: &'n [Entry],
}

impl<'n> Obj<'n> {
    /// A mapping view of `n`, without checking or reporting anything.
    pub fn of(n: &'n Node) -> Option<Obj<'n>> {
        match &n.value {
            Value::Map(entries) => Some(Obj { node: n, entries }),
            _ => None,
        }
    }

    /// The value of `key`, `None` when absent or null (Kubernetes reads both alike).
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.raw(key).filter(|n| !n.is_null())
    }

    /// The value of `key` even when null.
    pub fn raw(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn entry(&self, key: &str) -> Option<&'n Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn pos(&self) -> Pos {
        self.node.pos
    }
}

/// The closest candidate, if it is close enough to be what the user meant: a few
/// edits away (transpositions count as one), or a long shared beginning.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let w = word.to_ascii_lowercase();
    let budget = (w.chars().count() / 4).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let edits = strsim::damerau_levenshtein(&w, &lc);
            let similar = strsim::jaro_winkler(&w, &lc);
            (edits <= budget || similar >= 0.9).then_some((edits, similar, c))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// `; did you mean "x"?` or `; expected one of: a, b, c`.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match suggest(word, candidates.iter().copied()) {
        Some(s) => format!("; did you mean {s:?}?"),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

impl<'t> Cx<'t> {
    pub fn new(file: impl Into<Arc<str>>, text: &'t str) -> Self {
        Cx {
            file: file.into(),
            text,
            problems: Vec::new(),
        }
    }

    pub fn err(&mut self, pos: Pos, at: P, message: impl Into<String>) {
        let mut message = message.into();
        // One diagnostic, one line: tools read them line by line.
        if message.contains('\n') {
            message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        self.problems.push(Problem {
            pos,
            path: at.to_string(),
            message,
        });
    }

    pub fn origin(&self, pos: Pos) -> Origin {
        Origin::new(self.file.clone(), pos.line, pos.column)
    }

    fn expected(&mut self, n: &Node, at: P, what: &str) {
        let msg = format!("expected {what}, got {}", n.describe());
        self.err(n.pos, at, msg);
    }

    /// A mapping with the given fields; unknown fields are reported with a suggestion.
    pub fn obj<'n>(&mut self, n: &'n Node, at: P, fields: Fields) -> Option<Obj<'n>> {
        let Value::Map(entries) = &n.value else {
            self.expected(n, at, "a mapping");
            return None;
        };
        if let Fields::Strict(known) = fields {
            for e in entries {
                if !known.contains(&e.key.as_str()) {
                    let msg = format!("unknown field {:?}{}", e.key, hint(&e.key, known));
                    self.err(e.key_pos, at.f(&e.key), msg);
                }
            }
        }
        Some(Obj { node: n, entries })
    }

    /// A rule mapping of one direction (`dir` is `ingress` or `egress`, its peers are
    /// under `peers`). The other direction's peers key is the classic copy-paste
    /// mistake: it gets its own message rather than a bare "unknown field". Returns the
    /// mapping and whether that mistake was made.
    pub fn rule_obj<'n>(
        &mut self,
        n: &'n Node,
        at: P,
        known: &[&str],
        (dir, peers, other): (&str, &str, &str),
    ) -> Option<(Obj<'n>, bool)> {
        let o = self.obj(n, at, Fields::Lenient)?;
        let mut wrong_way = false;
        for e in o.entries {
            if e.key == other {
                let msg = format!(
                    "unknown field {other:?}; {dir} rules list their peers under `{peers}`"
                );
                self.err(e.key_pos, at.f(other), msg);
                wrong_way = true;
            } else if !known.contains(&e.key.as_str()) {
                let msg = format!("unknown field {:?}{}", e.key, hint(&e.key, known));
                self.err(e.key_pos, at.f(&e.key), msg);
            }
        }
        Some((o, wrong_way))
    }

    /// A required field: reports `missing field` at the mapping when absent or null.
    pub fn required<'n>(&mut self, o: &Obj<'n>, key: &str, at: P, note: &str) -> Option<&'n Node> {
        let v = o.get(key);
        // A misspelling of this very field was already reported as unknown, with the
        // suggestion: "missing" on top of it would only be noise.
        let misspelt = || {
            o.entries
                .iter()
                .any(|e| e.key != key && suggest(&e.key, [key]).is_some())
        };
        if v.is_none() && !misspelt() {
            self.err(
                o.pos(),
                at.f(key),
                format!("missing required field {key:?}{note}"),
            );
        }
        v
    }

    /// A list; `items` of it in order.
    pub fn list<'n>(&mut self, n: &'n Node, at: P) -> Option<&'n [Node]> {
        match &n.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.expected(n, at, "a list");
                None
            }
        }
    }

    /// A list, or one item written without the list around it.
    pub fn list_or_one<'n>(&self, n: &'n Node) -> &'n [Node] {
        match &n.value {
            Value::Seq(items) => items,
            _ => std::slice::from_ref(n),
        }
    }

    /// The scalar behind `n`, or an error naming what was expected.
    fn scalar<'n>(&mut self, n: &'n Node, at: P, what: &str) -> Option<&'n Scalar> {
        match &n.value {
            Value::Scalar(s) => Some(s),
            _ => {
                self.expected(n, at, what);
                None
            }
        }
    }

    /// A string. A plain scalar YAML reads as null, a boolean or a number is refused
    /// with a hint to quote it, as kubectl does: `version: 1.0` silently becoming `1`
    /// is exactly the kind of surprise a label should not have.
    pub fn str(&mut self, n: &Node, at: P) -> Option<String> {
        let s = self.scalar(n, at, "a string")?;
        match s.resolve() {
            Resolved::Str => Some(s.text.clone()),
            Resolved::Null => {
                self.err(
                    n.pos,
                    at,
                    "expected a string, got null; write \"\" for an empty string",
                );
                None
            }
            _ => {
                let msg = format!(
                    "expected a string, got {}; quote it: \"{}\"",
                    n.describe(),
                    s.text
                );
                self.err(n.pos, at, msg);
                None
            }
        }
    }

    /// A boolean (`true`, `false`; YAML 1.2 core schema spellings).
    pub fn bool(&mut self, n: &Node, at: P) -> Option<bool> {
        let s = self.scalar(n, at, "a boolean")?;
        match s.resolve() {
            Resolved::Bool(b) => Some(b),
            _ => {
                let msg = format!("expected a boolean (true or false), got {}", n.describe());
                self.err(n.pos, at, msg);
                None
            }
        }
    }

    /// A non-empty string.
    pub fn nonempty_str(&mut self, n: &Node, at: P) -> Option<String> {
        let s = self.str(n, at)?;
        if s.is_empty() {
            self.err(n.pos, at, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, n: &Node, at: P, min: i64, max: i64) -> Option<i64> {
        let s = self.scalar(n, at, "an integer")?;
        match s.resolve() {
            Resolved::Int(v) if (min..=max).contains(&v) => Some(v),
            Resolved::Int(_) | Resolved::Float if looks_integral(&s.text) => {
                self.err(
                    n.pos,
                    at,
                    format!("must be from {min} to {max}, got {}", s.text),
                );
                None
            }
            _ => {
                let quoted = s.style != Style::Plain && s.text.parse::<i64>().is_ok();
                let mut msg = format!("expected an integer, got {}", n.describe());
                if quoted {
                    msg.push_str(&format!("; remove the quotes: {}", s.text));
                }
                self.err(n.pos, at, msg);
                None
            }
        }
    }

    /// A list of strings.
    pub fn str_list(&mut self, n: &Node, at: P) -> Option<Vec<String>> {
        self.seq_of(n, at, |cx, n, at| cx.str(n, at))
    }

    /// Decode every item of a list with `f`; `None` when `n` is not a list or any item
    /// failed (every failure is reported, not just the first).
    pub fn seq_of<T>(
        &mut self,
        n: &Node,
        at: P,
        f: impl FnMut(&mut Self, &Node, P) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.list(n, at)?;
        self.one_or_seq_of(n, at, f)
    }

    /// Like [`Cx::seq_of`], also accepting one item written without the list around it.
    pub fn one_or_seq_of<T>(
        &mut self,
        n: &Node,
        at: P,
        mut f: impl FnMut(&mut Self, &Node, P) -> Option<T>,
    ) -> Option<Vec<T>> {
        let seq = matches!(n.value, Value::Seq(_));
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in self.list_or_one(n).iter().enumerate() {
            match f(self, item, if seq { at.i(i) } else { at }) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A value from a fixed vocabulary. `exact` keeps Kubernetes' case-sensitivity
    /// (`TCP`, `Ingress`); bulkhead's own vocabulary is case-insensitive.
    pub fn one_of<T: Copy>(
        &mut self,
        n: &Node,
        at: P,
        what: &str,
        options: &[(&str, T)],
        exact: bool,
    ) -> Option<T> {
        let s = self.str(n, at)?;
        let found = options.iter().find(|(name, _)| {
            if exact {
                *name == s
            } else {
                name.eq_ignore_ascii_case(&s)
            }
        });
        if let Some((_, v)) = found {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let msg = format!("unknown {what} {s:?}{}", hint(&s, &names));
        self.err(n.pos, at, msg);
        None
    }

    /// A value parsed by a `FromStr`-like function whose error names the problem; the
    /// known names are used for a suggestion when parsing fails.
    pub fn parsed<T>(
        &mut self,
        n: &Node,
        at: P,
        what: &str,
        names: &[&str],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.str(n, at)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(_) => {
                let msg = format!("unknown {what} {s:?}{}", hint(&s, names));
                self.err(n.pos, at, msg);
                None
            }
        }
    }

    /// Check a string with a validator returning an error message.
    pub fn check(&mut self, n: &Node, at: P, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => true,
            Err(msg) => {
                self.err(n.pos, at, msg);
                false
            }
        }
    }

    /// The source column of character `offset` (0-based) of scalar `n`'s value, when the
    /// value sits on one line exactly as written (no escapes, no folding).
    pub fn column_in(&self, n: &Node, offset: usize) -> Option<u32> {
        let Value::Scalar(s) = &n.value else {
            return None;
        };
        if s.end.line != n.pos.line {
            return None;
        }
        let line = self.text.lines().nth(n.pos.line.checked_sub(1)? as usize)?;
        let chars: Vec<char> = line.chars().collect();
        let len = s.text.chars().count();
        let close = usize::from(matches!(s.style, Style::SingleQuoted | Style::DoubleQuoted));
        let end = (s.end.column as usize).checked_sub(1)?.checked_sub(close)?;
        let start = end.checked_sub(len)?;
        let written: String = chars.get(start..end)?.iter().collect();
        (written == s.text).then(|| (start + offset + 1) as u32)
    }
}

fn looks_integral(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    #[test]
    fn paths_render_like_field_accessors() {
        let root = P::Root;
        let spec = root.f("spec");
        let ing = spec.f("ingress");
        let first = ing.i(0);
        let labels = first.f("app.kubernetes.io/name");
        assert_eq!(
            labels.to_string(),
            "spec.ingress[0][\"app.kubernetes.io/name\"]"
        );
        assert_eq!(P::Root.to_string(), "");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("Polciy", ["Group", "Policy", "Settings"]),
            Some("Policy")
        );
        assert_eq!(
            suggest("podselector", ["podSelector", "policyTypes"]),
            Some("podSelector")
        );
        assert_eq!(suggest("zzz", ["podSelector", "policyTypes"]), None);
    }

    #[test]
    fn columns_inside_scalars() {
        let text = "a: 'x y'\nb: x y\nc: \"x\\ty\"\n";
        let doc = yaml::parse(text).docs.remove(0);
        let cx = Cx::new("f", text);
        let Value::Map(m) = &doc.value else { panic!() };
        assert_eq!(cx.column_in(&m[0].value, 2), Some(7));
        assert_eq!(cx.column_in(&m[1].value, 2), Some(6));
        assert_eq!(cx.column_in(&m[2].value, 2), None);
    }
}
