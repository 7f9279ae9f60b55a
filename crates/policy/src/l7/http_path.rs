//! The path an HTTP server acts on, which is what a `path` condition must be matched
//! against, not the bytes of the request target.
//!
//! Servers decode percent-escapes and resolve dot segments before they route a
//! request (nginx also merges repeated slashes, Windows servers read `\` as `/`, Tomcat
//! reads `..;x` as `..`). Matched raw, `/public/../admin` or `/public/%2e%2e/admin`
//! satisfies an allow rule for `/public/.*` and reaches `/admin`: the bypass that Envoy's
//! `normalize_path` closed for Istio and Cilium (CVE-2019-9901). Every reading here
//! goes towards the path the request could reach, so a rule allows a request only for
//! where it lands (a literal `\` or `..;` on a server that does not read them so is
//! then refused, never let through).

use std::borrow::Cow;

/// The path of a request target, normalized for matching: the query dropped, an
/// absolute-form target's scheme and authority dropped (RFC 9112 3.2.2), every `%XX`
/// decoded once, `\` read as `/`, repeated slashes merged and dot segments removed
/// (RFC 3986 5.2.4; a segment `.;x` or `..;x` counts as `.` or `..`). Borrowed when
/// nothing changes.
pub fn normalize(target: &str) -> Cow<'_, str> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match strip_authority(path) {
        Some("") => "/",
        Some(p) => p,
        None => path,
    };
    // Origin-form starts with `/`; anything else (`*`) is not a path to resolve.
    if !path.starts_with('/') || !needs_work(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode(path);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').collect();
    // A path that ends in `/`, `/.` or `/..` names a directory: it keeps its slash.
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let name = seg.split(';').next().unwrap_or_default();
        match (*seg, name) {
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
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || out.is_empty() {
        s.push('/');
    }
    Cow::Owned(s)
}

/// An absolute-form target's path: `http://host:port/p` -> `/p`, `http://host` -> ``.
fn strip_authority(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme).then(|| {
            let rest = &target[scheme.len()..];
            rest.find('/').map_or("", |i| &rest[i..])
        })
    })
}

/// Whether a path could read otherwise once normalized.
fn needs_work(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().any(|&c| c == b'%' || c == b'\\') || b.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// Every `%XX` decoded (a `%` without two hex digits stays), `\` as `/`; bytes that
/// are not UTF-8 become U+FFFD (they match no rule that names them anyway).
fn decode(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                // A decoded `\` is a separator too.
                out.push(match (h * 16 + l) as u8 {
                    b'\\' => b'/',
                    c => c,
                });
                i += 3;
                continue;
            }
            (b'\\', ..) => out.push(b'/'),
            (c, ..) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn percent_signs_without_hex_and_other_bytes_stay() {
        assert_eq!(normalize("/a%zz/b"), "/a%zz/b");
        assert_eq!(normalize("/a%2"), "/a%2");
        assert_eq!(normalize("/caf%C3%A9"), "/café");
        assert_eq!(normalize("/x%FF"), "/x\u{fffd}");
        // Decoded once, as servers do.
        assert_eq!(normalize("/a/%252e%252e/b"), "/a/%2e%2e/b");
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
