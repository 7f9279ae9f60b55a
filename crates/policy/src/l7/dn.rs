//! LDAP distinguished names compared as a directory server compares them (RFC 4514,
//! RFC 4517 caseIgnoreMatch): RDNs split at unescaped commas only (`cn=x\,ou=people` is
//! one RDN), escapes undone (`ou=\61dmins` is `ou=admins`), attribute types by name or
//! OID (`2.5.4.11=admins`), case and repeated blanks ignored, a multi-valued RDN's
//! values in any order. A rule on a base DN then holds for every way of writing a DN
//! below it, and one that only looks as if it were below it is not.
//!
//! Hand-written: the LDAP crates parse DNs to build requests, not to compare them the
//! way slapd matches them.

/// The attribute types rules name most, by OID (RFC 4519, RFC 4524).
const TYPES: &[(&str, &str)] = &[
    ("2.5.4.3", "cn"),
    ("2.5.4.4", "sn"),
    ("2.5.4.6", "c"),
    ("2.5.4.7", "l"),
    ("2.5.4.8", "st"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "o"),
    ("2.5.4.11", "ou"),
    ("2.5.4.12", "title"),
    ("2.5.4.42", "givenname"),
    ("0.9.2342.19200300.100.1.1", "uid"),
    ("0.9.2342.19200300.100.1.25", "dc"),
    ("1.2.840.113549.1.9.1", "email"),
];

/// A DN's RDNs, most specific first, each in one canonical form; None if it is not a
/// DN (a bad escape, an RDN with no `=`).
pub fn rdns(dn: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    if dn.trim().is_empty() {
        return Some(out);
    }
    for rdn in split(dn, &[',', ';'])? {
        let mut avas = Vec::new();
        for ava in split(&rdn, &['+'])? {
            let eq = unescaped_eq(&ava)?;
            let kind = canonical_type(ava[..eq].trim());
            let value = canonical_value(&ava[eq + 1..])?;
            avas.push(format!("{kind}={value}"));
        }
        avas.sort();
        out.push(avas.join("+"));
    }
    Some(out)
}

/// Is `dn` equal to or below `base`? Everything is below the root (an empty base); a DN
/// that cannot be read is below nothing else.
pub fn dn_within(dn: &str, base: &str) -> bool {
    match (rdns(dn), rdns(base)) {
        (_, Some(b)) if b.is_empty() => true,
        (Some(d), Some(b)) => d.len() >= b.len() && d[d.len() - b.len()..] == b[..],
        _ => false,
    }
}

/// `s` cut at each unescaped separator, escapes kept; None for a trailing `\`.
fn split(s: &str, seps: &[char]) -> Option<Vec<String>> {
    let (mut parts, mut cur, mut escaped) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if seps.contains(&c) {
            parts.push(std::mem::take(&mut cur));
            continue;
        }
        cur.push(c);
    }
    if escaped {
        return None;
    }
    parts.push(cur);
    Some(parts)
}

/// Where an AVA's type ends: its first unescaped `=`.
fn unescaped_eq(ava: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in ava.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '=' => return Some(i),
            _ => {}
        }
    }
    None
}

/// An attribute type by its short name, lower case (`OID.2.5.4.11` and `2.5.4.11` are
/// `ou`).
fn canonical_type(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    let oid = t.strip_prefix("oid.").unwrap_or(&t);
    match TYPES.iter().find(|(o, _)| *o == oid) {
        Some((_, name)) => (*name).to_string(),
        None => t,
    }
}

/// A value with its escapes undone, blanks at either end dropped and runs of blanks
/// made one, lower case, then escaped again where a separator could be read.
fn canonical_value(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut raw = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            raw.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        match (b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                raw.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (Some(c), _) if !c.is_ascii_alphanumeric() => {
                raw.push(c);
                i += 2;
            }
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    for c in words.join(" ").chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn written_differently_the_same_dn() {
        let base = "ou=admins,dc=example,dc=org";
        for dn in [
            "uid=x,ou=admins,dc=example,dc=org",
            "UID=x, OU=Admins , DC=example,DC=org",
            "uid=x,ou=\\61dmins,dc=example,dc=org",
            "uid=x,2.5.4.11=admins,dc=example,dc=org",
            "uid=x,OID.2.5.4.11=admins,0.9.2342.19200300.100.1.25=example,dc=org",
            "uid=x;ou=admins;dc=example;dc=org",
            "cn=a+uid=x,ou=admins,dc=example,dc=org",
        ] {
            assert!(dn_within(dn, base), "{dn}");
        }
        assert!(dn_within("uid=x+cn=a,dc=org", "cn=a+uid=x,dc=org"));
        assert!(dn_within("ou=admins,dc=example,dc=org", base));
        assert!(dn_within("anything", ""));
    }

    /// An escaped comma is part of its RDN: `cn=x\,ou=people,dc=example,dc=org` is a
    /// child of `dc=example,dc=org`, not an entry under ou=people.
    #[test]
    fn what_only_looks_below_is_not() {
        let people = "ou=people,dc=example,dc=org";
        assert!(!dn_within("cn=x\\,ou=people,dc=example,dc=org", people));
        assert!(!dn_within("cn=x\\2Cou=people,dc=example,dc=org", people));
        assert!(!dn_within("dc=notexample,dc=org", "dc=example,dc=org"));
        assert!(!dn_within("ou=people\\,dc=example,dc=org", people));
        assert!(!dn_within("uid=x,ou=people,dc=example,dc=org\\", people));
        assert!(!dn_within("uid=x,ou=people,dc=example", people));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}", t in ".{0,20}") {
            let _ = dn_within(&s, &t);
        }
    }
}
