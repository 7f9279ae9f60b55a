//! MongoDB operator injection, which ModSecurity's CRS counts as SQL injection (942290):
//! a query operator where the application expects a plain value. PHP, Express's `qs` and
//! Rails turn a parameter named `password[$ne]` into `{password: {$ne: ...}}`, and a JSON
//! body can carry `{"$where": "..."}` itself: either way the query matches what it was
//! meant to refuse (`$ne`, `$gt`, `$regex`) or runs JavaScript (`$where`, `$function`).
//!
//! An operator counts only as a name of its own, written as code writes it: after the
//! start, `[`, `{`, a quote or `,`, and before the end, `]`, a quote, `:`, `=` or `}`,
//! blanks between allowed (`{ $ne: 1 }`); prose writes a word there (`depends on $all`,
//! an init script's facility). MongoDB's operators are
//! lower-case (`$NE` is no operator), so `$orderId`, `$existingUser`, JSON Schema's `$ref`
//! and OData's `$filter` are not.

/// Query and evaluation operators, as CRS 942290 lists them and with `$lte`, `$expr`
/// and `$function`.
const OPERATORS: &[&[u8]] = &[
    b"ne",
    b"eq",
    b"gt",
    b"gte",
    b"lt",
    b"lte",
    b"in",
    b"nin",
    b"regex",
    b"where",
    b"exists",
    b"not",
    b"nor",
    b"or",
    b"and",
    b"all",
    b"elemMatch",
    b"size",
    b"type",
    b"mod",
    b"slice",
    b"like",
    b"expr",
    b"function",
];

/// The operator a value names, if it names one as a name of its own.
pub(super) fn operator(v: &[u8]) -> Option<&'static [u8]> {
    for at in memchr::memchr_iter(b'$', v) {
        // Blanks between are allowed (`{ $ne: 1 }`); a word before is prose.
        let before = v[..at].iter().rev().find(|c| !c.is_ascii_whitespace());
        let opens = before.is_none_or(|c| matches!(c, b'[' | b'{' | b'"' | b'\'' | b','));
        if !opens {
            continue;
        }
        let rest = &v[at + 1..];
        let name = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let after = rest[name..].iter().find(|c| !c.is_ascii_whitespace());
        let closes = after.is_none_or(|c| matches!(c, b']' | b'"' | b'\'' | b':' | b'=' | b'}'));
        if let Some(op) = OPERATORS.iter().find(|op| **op == &rest[..name])
            && closes
        {
            return Some(op);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::operator;

    #[test]
    fn operators_as_names() {
        // CRS 942290's own tests, and the usual login bypasses.
        for (v, op) in [
            ("u_id[$ne]", "ne"),
            ("u_id[$regex]=2", "regex"),
            ("{\"$not\": \"foo\"}", "not"),
            ("{\"$nor\": \"foo\"}", "nor"),
            ("{\"$where\": \"foo\"}", "where"),
            ("$where", "where"),
            ("password[$gt]", "gt"),
            ("{\"username\": {\"$ne\": null}}", "ne"),
            ("{'$where': 'sleep(5000)'}", "where"),
            // identYwaf's probes: JavaScript's object syntax, with blanks
            ("true, $where: '1 == 1'", "where"),
            ("{ $ne: 1 }", "ne"),
        ] {
            assert_eq!(operator(v.as_bytes()), Some(op.as_bytes()), "{v}");
        }
        for v in [
            "$existingUser=admin",
            "$orderId",
            "{\"$ref\": \"#/definitions/a\"}",
            "$filter=Price lt 10",
            "costs $5 or $6",
            "Add lintian override about dependency on $all in bootlogd init scripts",
            "u_id[$NE]",
            "a$ne",
            "${ne}",
        ] {
            assert_eq!(operator(v.as_bytes()), None, "{v}");
        }
    }
}
