//! `kind: Sensor` (bulkhead.io/v1): built-in detectors and user patterns, and whether a
//! finding alerts or blocks. Patterns are compiled here once so that a bad regex is
//! reported at its line and column, not when the proxy first needs it.

use bulkhead_policy::sensor::{
    Oversize, PatternContext, Sensor, SensorAction, SensorClass, SensorPattern,
};

use crate::bulkhead::{meta_rule, spec};
use crate::decode::{Cx, Fields, Obj, P};
use crate::k8s::{self, Scope};
use crate::names;
use crate::yaml::Node;

const ACTIONS: &[(&str, SensorAction)] = &[
    ("Alert", SensorAction::Alert),
    ("Block", SensorAction::Block),
];
const OVERSIZE: &[(&str, Oversize)] = &[("Partial", Oversize::Partial), ("Block", Oversize::Block)];

/// Large enough for any realistic pattern, small enough that one document cannot make
/// every proxy compile a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub fn sensor(cx: &mut Cx, doc: &Obj, root: P) -> Option<Sensor> {
    let m = k8s::meta(cx, doc, root, meta_rule("Sensor", Scope::ClusterStrict));
    let at = root.f("spec");
    let Some(s) = spec(cx, doc, root, &["action", "detect", "patterns", "oversize"])? else {
        cx.err(
            doc.pos(),
            root,
            "a Sensor needs a spec with `detect` or `patterns`",
        );
        return None;
    };
    let action = match s.get("action") {
        Some(n) => cx.one_of(n, at.f("action"), "action", ACTIONS, false),
        None => Some(SensorAction::default()),
    };
    let oversize = match s.get("oversize") {
        Some(n) => cx.one_of(n, at.f("oversize"), "oversize", OVERSIZE, false),
        None => Some(Oversize::default()),
    };
    let names: Vec<&str> = SensorClass::ALL.iter().map(|c| c.as_str()).collect();
    let detect = match s.get("detect") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("detect"), |cx, n, at| {
            cx.parsed(n, at, "detector", &names, |s| s.parse::<SensorClass>())
        }),
    };
    let patterns = match s.get("patterns") {
        None => Some(Vec::new()),
        Some(n) => cx.seq_of(n, at.f("patterns"), pattern),
    };
    let (detect, patterns) = (detect?, patterns?);
    if detect.is_empty() && patterns.is_empty() {
        cx.err(
            s.pos(),
            at,
            "a Sensor needs at least one of `detect` or `patterns`",
        );
        return None;
    }
    Some(Sensor {
        name: m?.name,
        action: action?,
        oversize: oversize?,
        detect,
        patterns,
        origin: cx.origin(doc.pos()),
    })
}

fn pattern(cx: &mut Cx, n: &Node, at: P) -> Option<SensorPattern> {
    let o = cx.obj(n, at, Fields::Strict(&["name", "regex", "context"]))?;
    let name = match o.get("name") {
        Some(v) => cx
            .str(v, at.f("name"))
            .filter(|s| cx.check(v, at.f("name"), names::dns1123_label(s))),
        None => {
            cx.err(o.pos(), at, "missing field `name`");
            None
        }
    };
    let regex = match o.get("regex") {
        Some(v) => cx.str(v, at.f("regex")).filter(|s| {
            let built = regex::bytes::RegexBuilder::new(s)
                .size_limit(REGEX_SIZE_LIMIT)
                .build();
            let err = built
                .err()
                .map(|e| match e.to_string().rsplit_once("error: ") {
                    // The regex crate draws a caret diagram; keep the line naming the problem.
                    Some((_, why)) => format!("invalid regex: {why}"),
                    None => format!("invalid regex: {e}"),
                });
            cx.check(v, at.f("regex"), err.map_or(Ok(()), Err))
        }),
        None => {
            cx.err(o.pos(), at, "missing field `regex`");
            None
        }
    };
    let context = match o.get("context") {
        // Without a context a pattern looks everywhere a request or response carries data.
        None => Some(vec![
            PatternContext::Url,
            PatternContext::Header,
            PatternContext::Body,
        ]),
        Some(v) => cx.one_or_seq_of(v, at.f("context"), |cx, n, at| {
            cx.one_of(n, at, "context", &PatternContext::ALL, false)
        }),
    };
    Some(SensorPattern {
        name: name?,
        regex: regex?,
        context: context?,
    })
}
