//! The path an HTTP server acts on, which is what a `path` condition must be matched
//! against, not the bytes of the request target.
//!
//! Servers resolve dot segments before they route a request, and decode escapes of
//! characters that mean the same either way (nginx also merges repeated slashes and
//! decodes `%2F`, Windows servers read `\` as `/`, Tomcat reads `..;x` as `..`). Matched
//! raw, `/public/../admin` or `/public/%2e%2e/admin` satisfies an allow rule for
//! `/public/.*` and reaches `/admin`: the bypass that Envoy's `normalize_path` closed
//! for Istio and Cilium (CVE-2019-9901).
//!
//! As Envoy does, only escapes of unreserved characters (letters, digits, `-._~`: RFC
//! 3986 6.2.2.2) are decoded: `%20` or `%3F` stay as written, so rules keep meaning what
//! they meant. An escaped slash (`%2F`, `%5C`) stays too, since APIs put it inside one
//! segment (`/projects/group%2Fname`), unless reading it as a slash makes a dot
//! segment (`..%2F`): then the path is resolved that way, the way that climbs. So a rule
//! allows a request only for where it can land (a literal `\` or `..;` on a server that
//! does not read them so is then refused, never let through).

use std::borrow::Cow;

/// The path of a request target, normalized for matching: the query dropped, an
/// absolute-form target's scheme and authority dropped (RFC 9112 3.2.2), escapes of
/// unreserved characters decoded once, `\` read as `/` (and `%2F`, `%5C` when that makes
/// a dot segment), repeated slashes merged and dot segments removed (RFC 3986 5.2.4; a
/// segment `.;x` or `..;x` counts as `.` or `..`). Borrowed when nothing changes.
pub fn normalize(target: &str) -> Cow<'_, str> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match absolute_form(path) {
        Some((_, "")) => "/",
        Some((_, p)) => p,
        None => path,
    };
    // Origin-form starts with `/`; anything else (`*`) is not a path to resolve.
    if !path.starts_with('/') || !needs_work(path) {
        return Cow::Borrowed(path);
    }
    let kept = decode(path, false);
    let split = decode(path, true);
    let path = if dot_segments(&split) > dot_segments(&kept) {
        split
    } else {
        kept
    };
    Cow::Owned(resolve(&path))
}

/// An HTTP request as servers that drop path parameters route it (Tomcat, Jetty: each
/// segment's `;...` removed, the query kept); None for other requests or a path without
/// parameters.
pub fn without_params(r: &super::L7Request) -> Option<super::L7Request> {
    let super::L7Detail::Http { path, .. } = &r.detail else {
        return None;
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    if !path[..end].contains(';') {
        return None;
    }
    let mut stripped: String = (path[..end].split('/'))
        .map(|seg| seg.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/");
    stripped.push_str(&path[end..]);
    let mut other = r.clone();
    if let super::L7Detail::Http { path, .. } = &mut other.detail {
        *path = stripped;
    }
    Some(other)
}

/// Segments that are `.` or `..` (with or without `;` parameters).
fn dot_segments(path: &str) -> usize {
    path.split('/')
        .filter(|s| matches!(s.split(';').next(), Some("." | "..")))
        .count()
}

/// Dot segments removed and empty segments merged; a path that ends in `/`, `/.` or
/// `/..` names a directory and keeps its slash.
fn resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match (*seg, seg.split(';').next().unwrap_or_default()) {
            ("", _) => trailing = last && i > 0,
            (_, "..") => {
                out.pop();
                trailing = last;
            }
            (_, ".") => trailing = last,
            _ => {
                out.push(seg);
                trailing = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || out.is_empty() {
        s.push('/');
    }
    s
}

/// An absolute-form target's authority and path (RFC 9112 3.2.2):
/// `http://user@host:8080/p?q` -> (`host:8080`, `/p?q`), `http://host` -> (`host`, ``).
pub fn absolute_form(target: &str) -> Option<(&str, &str)> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme).then(|| {
            let rest = &target[scheme.len()..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            // Userinfo is not part of the host.
            let authority = rest[..end].rsplit('@').next().unwrap_or_default();
            (authority, &rest[end..])
        })
    })
}

/// Whether a path could read otherwise once normalized.
fn needs_work(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().any(|&c| c == b'%' || c == b'\\') || b.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// Escapes of unreserved characters decoded (`%2e` -> `.`), `\` read as `/`, and with
/// `slashes` also `%2F` and `%5C`; every other escape, and a `%` without two hex digits,
/// stays as written.
fn decode(path: &str, slashes: bool) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        let escaped = match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => Some((h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                out.push(c as char);
                i += 3;
            }
            Some(b'/' | b'\\') if slashes => {
                out.push('/');
                i += 3;
            }
            _ => {
                // Whole UTF-8 characters are copied as they are (`path` is a str).
                let len = path[i..].chars().next().map_or(1, char::len_utf8);
                match b[i] {
                    b'\\' => out.push('/'),
                    _ => out.push_str(&path[i..i + len]),
                }
                i += len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn plain_paths_are_borrowed_as_they_are() {
        for p in [
            "/",
            "/v1/status/7",
            "/index.html",
            "/a.b/c.d",
            "/.well-known/x",
        ] {
            assert_eq!(normalize(p), p);
        }
        assert!(matches!(
            normalize("/v1/status/7"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(normalize("/v1/status?id=1/../x"), "/v1/status");
    }

    #[test]
    fn every_reading_that_leaves_the_prefix_does() {
        for p in [
            "/public/../admin",
            "/public/./../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E%2Fadmin",
            "/public/..%2fadmin",
            "/public/..\\admin",
            "/public/..%5cadmin",
            "/public/..;/admin",
            "/public//..//admin",
            "//admin",
            "/public/x/../../admin",
            "/../../admin",
            "http://shop.example/public/../admin",
            "HTTPS://shop.example:8443/admin?x=1",
        ] {
            assert_eq!(normalize(p), "/admin", "{p}");
        }
    }

    #[test]
    fn directories_keep_their_slash() {
        assert_eq!(normalize("/a/b/.."), "/a/");
        assert_eq!(normalize("/a/b/."), "/a/b/");
        assert_eq!(normalize("/a/b//"), "/a/b/");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("http://h"), "/");
        assert_eq!(normalize("*"), "*");
    }

    #[test]
    fn escapes_that_change_meaning_stay() {
        assert_eq!(normalize("/a%zz/b"), "/a%zz/b");
        assert_eq!(normalize("/a%2"), "/a%2");
        assert_eq!(normalize("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(normalize("/my%20file"), "/my%20file");
        assert_eq!(normalize("/%7Euser/%41"), "/~user/A");
        // An escaped slash inside a segment (GitLab's project paths) stays one segment...
        assert_eq!(
            normalize("/projects/group%2Fname"),
            "/projects/group%2Fname"
        );
        assert_eq!(normalize("/a/b.c%2Fd.e"), "/a/b.c%2Fd.e");
        // ... unless read as a slash it climbs.
        assert_eq!(normalize("/projects/x%2F..%2F..%2Fadmin"), "/admin");
        // Decoded once, as servers do.
        assert_eq!(normalize("/a/%252e%252e/b"), "/a/%252e%252e/b");
        assert_eq!(normalize("/caf\u{e9}/./x"), "/caf\u{e9}/x");
    }
}

#[cfg(test)]
mod props {
    use super::normalize;
    use proptest::prelude::*;

    proptest! {
        /// Any target (bytes a client chose) normalizes without panicking to a path
        /// with no dot segment and no empty segment left to climb or hide with.
        #[test]
        fn normalized_paths_have_nothing_left_to_resolve(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("/".to_string()), Just("..".to_string()), Just(".".to_string()),
                    Just("%2e".to_string()), Just("%2F".to_string()), Just("\\".to_string()),
                    Just(";x".to_string()), Just("%".to_string()), Just("?".to_string()),
                    "[a-z%0-9]{0,3}",
                ],
                0..24,
            )
        ) {
            let target = format!("/{}", parts.concat());
            let n = normalize(&target);
            prop_assert!(n.starts_with('/'));
            let segments: Vec<&str> = n.split('/').collect();
            for (i, seg) in segments.iter().enumerate().skip(1) {
                let name = seg.split(';').next().unwrap_or_default();
                prop_assert!(name != ".." && name != ".", "{target} -> {n}");
                prop_assert!(!seg.is_empty() || i + 1 == segments.len(), "{target} -> {n}");
            }
            prop_assert!(!n.contains('\\'), "{target} -> {n}");
        }
    }
}
