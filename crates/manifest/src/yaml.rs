//! A small YAML tree with positions, built from `saphyr-parser` events.
//!
//! We keep our own tree instead of a generic YAML value type because every node must
//! remember where it was written (for `file:line:column` errors and for `Origin`s),
//! scalars must remember their style (a plain `1.0` is a number, a quoted `"1.0"` is a
//! string), and the builder must refuse hostile input (deep nesting, alias bombs) without
//! recursing on input depth.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deeper nesting than this is refused: no manifest needs it, and it bounds every
/// recursive walk over the tree (clone, drop) to a small stack.
pub const MAX_DEPTH: usize = 128;
/// More nodes than this in one file (aliases count with their full size) are refused.
pub const MAX_NODES: usize = 1_000_000;

/// A 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Clone, Debug)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` pair; keys are always scalars (we refuse complex keys).
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` or `>`
    Block,
}

#[derive(Clone, Debug)]
pub struct Scalar {
    pub text: String,
    pub style: Style,
    /// `!!str` (or another explicit tag): never resolved to null/bool/number.
    pub tagged: bool,
    /// Where the scalar's source ends (exclusive), to map columns inside it.
    pub end: Pos,
}

/// What a plain scalar means under YAML's implicit typing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    /// A number that is not an `i64` (a float, or an integer out of range).
    Float,
    Str,
}

impl Scalar {
    /// The YAML 1.2 core schema, as `saphyr` parses: `true`/`false` are booleans but
    /// `yes`, `on`, `y` are strings. (kubectl's YAML 1.1 would read those as booleans;
    /// refusing them would reject common names such as a namespace `y`.)
    pub fn resolve(&self) -> Resolved {
        if self.style != Style::Plain || self.tagged {
            return Resolved::Str;
        }
        resolve_plain(&self.text)
    }
}

pub fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let int = |t: &str, radix: u32, negative: bool| match i64::from_str_radix(t, radix) {
        Ok(v) => Resolved::Int(if negative { -v } else { v }),
        // Too large for an i64: still a number, not a string.
        Err(_) => Resolved::Float,
    };
    if let Some(h) = s.strip_prefix("0x").filter(|h| digits(h, 16)) {
        return int(h, 16, false);
    }
    if let Some(o) = s.strip_prefix("0o").filter(|o| digits(o, 8)) {
        return int(o, 8, false);
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        return int(unsigned, 10, s.starts_with('-'));
    }
    if is_float(unsigned) || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Resolved::Float;
    }
    Resolved::Str
}

/// `1.0`, `.5`, `1e3`, `1.5E-3`, `.inf`, `.NaN` (the sign was already stripped).
fn is_float(s: &str) -> bool {
    if matches!(s, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            digits(int)
                && digits(frac)
                && (int.chars().chain(frac.chars()).any(|c| c.is_ascii_digit()))
        }
        // Without a dot only `1e3` is a float.
        None => exponent.is_some() && !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// "a mapping", "a string", ...: for "expected X, got Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Map(_) => "a mapping".into(),
            Value::Seq(_) => "a list".into(),
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => "null".into(),
                Resolved::Bool(b) => format!("the boolean {b}"),
                Resolved::Int(_) | Resolved::Float => format!("the number {}", s.text),
                Resolved::Str => "a string".into(),
            },
        }
    }

    /// How many nodes this subtree holds (for the alias accounting).
    fn size(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(x) = stack.pop() {
            n += 1;
            match &x.value {
                Value::Scalar(_) => {}
                Value::Seq(items) => stack.extend(items),
                Value::Map(entries) => {
                    // The key counts as a node too.
                    n += entries.len();
                    stack.extend(entries.iter().map(|e| &e.value));
                }
            }
        }
        n
    }
}

/// A syntax (or limit) error: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// The documents of one file, in order, empty ones skipped; and the error that stopped
/// parsing, if any (the documents before it are still returned, so that their own
/// errors can be reported too).
#[derive(Debug, Default)]
pub struct Stream {
    pub docs: Vec<Node>,
    pub error: Option<SyntaxError>,
}

fn pos_of(m: saphyr_parser::Marker) -> Pos {
    Pos {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
    }
}

/// A collection being built.
struct Frame {
    pos: Pos,
    anchor: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<Entry>,
        /// A key waiting for its value.
        key: Option<(String, Pos)>,
        /// Built once a map grows past a few keys, so duplicate detection stays linear.
        index: Option<HashMap<String, usize>>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    docs: Vec<Node>,
}

impl Builder {
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "too many YAML nodes (more than {MAX_NODES}, counting aliases); split the file"
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos, anchor: usize, kind: FrameKind) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, pos)?;
        self.stack.push(Frame { pos, anchor, kind });
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.size()));
        }
    }

    /// Attach a finished node to its parent (or make it a document).
    fn attach(&mut self, node: Node) -> Result<(), SyntaxError> {
        let Some(top) = self.stack.last_mut() else {
            self.docs.push(node);
            return Ok(());
        };
        match &mut top.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map {
                entries,
                key,
                index,
            } => match key.take() {
                Some((k, key_pos)) => entries.push(Entry {
                    key: k,
                    key_pos,
                    value: node,
                }),
                None => {
                    let Value::Scalar(s) = node.value else {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: "mapping keys must be plain strings, not lists or mappings"
                                .into(),
                        });
                    };
                    if s.style == Style::Plain && s.text == "<<" {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: "merge keys (`<<`) are not supported; write the fields out"
                                .into(),
                        });
                    }
                    let earlier = match index {
                        Some(ix) => ix.get(&s.text).copied(),
                        None => entries.iter().position(|e| e.key == s.text),
                    };
                    if let Some(i) = earlier {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: format!(
                                "duplicate key {:?} (first at line {})",
                                s.text, entries[i].key_pos.line
                            ),
                        });
                    }
                    if index.is_none() && entries.len() >= 16 {
                        *index = Some(
                            entries
                                .iter()
                                .enumerate()
                                .map(|(i, e)| (e.key.clone(), i))
                                .collect(),
                        );
                    }
                    if let Some(ix) = index {
                        ix.insert(s.text.clone(), entries.len());
                    }
                    *key = Some((s.text, node.pos));
                }
            },
        }
        Ok(())
    }

    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let pos = pos_of(span.start);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        style: match style {
                            ScalarStyle::Plain => Style::Plain,
                            ScalarStyle::SingleQuoted => Style::SingleQuoted,
                            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                            _ => Style::Block,
                        },
                        tagged: tag.is_some(),
                        end: pos_of(span.end),
                    }),
                };
                self.remember(anchor, &node);
                self.attach(node)
            }
            Event::SequenceStart(anchor, _) => self.open(pos, anchor, FrameKind::Seq(Vec::new())),
            Event::MappingStart(anchor, _) => self.open(
                pos,
                anchor,
                FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                    index: None,
                },
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map { entries, .. } => Value::Map(entries),
                };
                let node = Node {
                    pos: frame.pos,
                    value,
                };
                self.remember(frame.anchor, &node);
                self.attach(node)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                let (mut node, size) = (node.clone(), *size);
                // The alias stands where it is written, its content keeps the anchor's
                // positions: errors inside point at the anchored original.
                node.pos = pos;
                self.count(size, pos)?;
                if self.stack.len() + depth_of(&node) > MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                self.attach(node)
            }
            Event::DocumentStart(_) => {
                // Anchors are scoped to their document.
                self.anchors.clear();
                Ok(())
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
        }
    }
}

fn depth_of(node: &Node) -> usize {
    let mut max = 0;
    let mut stack = vec![(node, 0usize)];
    while let Some((n, d)) = stack.pop() {
        match &n.value {
            Value::Scalar(_) => max = max.max(d),
            Value::Seq(items) => stack.extend(items.iter().map(|x| (x, d + 1))),
            Value::Map(entries) => stack.extend(entries.iter().map(|e| (&e.value, d + 1))),
        }
        max = max.max(d + 1);
    }
    max
}

/// The scanner reports a tab error just past the tab; point at the tab itself.
fn tab_aware(text: &str, pos: Pos, info: &str) -> Pos {
    if !info.contains("tab") {
        return pos;
    }
    let line = text
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let upto = pos.column as usize;
    match line
        .chars()
        .take(upto)
        .collect::<Vec<_>>()
        .iter()
        .rposition(|c| *c == '\t')
    {
        Some(i) => Pos {
            line: pos.line,
            column: i as u32 + 1,
        },
        None => pos,
    }
}

/// Parse a YAML stream (JSON is YAML too). Empty documents (nothing, or only null)
/// are skipped.
pub fn parse(text: &str) -> Stream {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        docs: Vec::new(),
    };
    let mut error = None;
    for item in Parser::new_from_str(text) {
        let result = match item {
            Ok((ev, span)) => b.event(ev, span),
            Err(e) => Err(SyntaxError {
                pos: tab_aware(text, pos_of(*e.marker()), e.info()),
                // The scanner has its own, higher, limit that it may hit first (it reads
                // ahead of the events): say the same thing either way.
                message: match e.info() {
                    "recursion limit exceeded" => format!("nesting deeper than {MAX_DEPTH} levels"),
                    other => other.to_string(),
                },
            }),
        };
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    let docs = b.docs.into_iter().filter(|d| !d.is_null()).collect();
    Stream { docs, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let s = parse(text);
        assert_eq!(s.error, None);
        assert_eq!(s.docs.len(), 1);
        s.docs.into_iter().next().unwrap()
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        for (s, want) in [
            ("", Resolved::Null),
            ("~", Resolved::Null),
            ("true", Resolved::Bool(true)),
            ("False", Resolved::Bool(false)),
            ("off", Resolved::Str),
            ("y", Resolved::Str),
            ("1", Resolved::Int(1)),
            ("-12", Resolved::Int(-12)),
            ("0x1F", Resolved::Int(31)),
            ("0o17", Resolved::Int(15)),
            ("010", Resolved::Int(10)),
            ("1_000", Resolved::Str),
            ("-0x1", Resolved::Str),
            ("1.0", Resolved::Float),
            (".5", Resolved::Float),
            ("1e3", Resolved::Float),
            ("-.inf", Resolved::Float),
            (".NaN", Resolved::Float),
            ("99999999999999999999", Resolved::Float),
            ("1.2.3", Resolved::Str),
            ("1e", Resolved::Str),
            (".", Resolved::Str),
            ("0x", Resolved::Str),
            ("_", Resolved::Str),
            ("v1", Resolved::Str),
            ("8000-8100", Resolved::Str),
        ] {
            assert_eq!(resolve_plain(s), want, "{s:?}");
        }
    }

    #[test]
    fn positions_styles_and_aliases() {
        let n = one("a: \"x\"\nb: &k [1, {c: d}]\ne: *k\n");
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].key_pos, Pos { line: 1, column: 1 });
        assert_eq!(m[0].value.pos, Pos { line: 1, column: 4 });
        let Value::Scalar(s) = &m[0].value.value else {
            panic!()
        };
        assert_eq!(
            (s.style, s.end),
            (Style::DoubleQuoted, Pos { line: 1, column: 7 })
        );
        assert_eq!(m[2].value.pos, Pos { line: 3, column: 4 });
        assert!(matches!(&m[2].value.value, Value::Seq(v) if v.len() == 2));
    }

    #[test]
    fn refuses_duplicates_merges_and_bombs() {
        let e = parse("a: 1\nb: 2\na: 3\n").error.unwrap();
        assert_eq!(e.pos, Pos { line: 3, column: 1 });
        assert_eq!(e.message, "duplicate key \"a\" (first at line 1)");
        let big: String = (0..40).map(|i| format!("k{i}: 1\n")).collect();
        let e = parse(&format!("{big}k33: 2\n")).error.unwrap();
        assert_eq!(e.message, "duplicate key \"k33\" (first at line 34)");
        assert!(
            parse("a: &x {b: 1}\nc:\n  <<: *x\n")
                .error
                .unwrap()
                .message
                .contains("merge keys")
        );
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(
            parse(&bomb)
                .error
                .unwrap()
                .message
                .contains("too many YAML nodes")
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let s = parse("---\n---\n# only a comment\n---\na: 1\n...\n");
        assert_eq!(s.error, None);
        assert_eq!(s.docs.len(), 1);
        assert_eq!(parse("").docs.len(), 0);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let e = parse(&"[".repeat(100_000)).error.unwrap();
        assert!(e.message.contains("nesting deeper than 128"), "{e:?}");
    }
}
