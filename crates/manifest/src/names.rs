//! Syntax of names, label keys and values, port names and CIDRs, mirroring Kubernetes'
//! `apimachinery/pkg/util/validation` so that what we accept the API server accepts.
//! Each check returns the message to show, phrased like the API server's.

use ipnet::IpNet;

fn alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: namespaces, the name part of a DNS subdomain.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("{s:?} must be no more than 63 characters"));
    }
    let ok = s.chars().all(|c| alnum(c) || c == '-') && s.starts_with(alnum) && s.ends_with(alnum);
    if !ok {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain: object names, label key prefixes.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("{s:?} must be no more than 253 characters"));
    }
    let ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.chars().all(|c| alnum(c) || c == '-')
            && l.starts_with(alnum)
            && l.ends_with(alnum)
    });
    if !ok {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters; empty allowed
/// only for label values.
fn name_part(s: &str, what: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err(format!("{what} {s:?} must be no more than 63 characters"));
    }
    let edge = |c: char| c.is_ascii_alphanumeric();
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(edge)
        && s.ends_with(edge);
    if !ok {
        return Err(format!(
            "{what} {s:?} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// A qualified name (`app`, `app.kubernetes.io/name`): label and annotation keys,
/// selector keys.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err(format!(
                "key {s:?}: the prefix before '/' must not be empty"
            ));
        }
        dns1123_subdomain(p).map_err(|e| format!("key {s:?}: prefix {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("key {s:?}: the name part must not be empty"));
    }
    name_part(name, "key")
}

/// A label value: empty, or a name part.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    name_part(s, "label value")
}

/// IANA_SVC_NAME (RFC 6335): a named port.
pub fn port_name(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("port name {s:?} {why}"));
    if s.is_empty() || s.len() > 15 {
        return bad("must be 1 to 15 characters");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("must contain only lower-case letters, digits and '-'");
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        return bad("must contain at least one letter");
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return bad("must not begin or end with '-' or contain '--'");
    }
    Ok(())
}

/// A CIDR such as `10.0.0.0/8`; host bits may be set (as Kubernetes' sloppy parser
/// allows), the block is truncated later.
pub fn cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>().map_err(|_| {
        if s.parse::<std::net::IpAddr>().is_ok() {
            format!(
                "{s:?} is an address, not a CIDR; write {s}/{}",
                if s.contains(':') { 128 } else { 32 }
            )
        } else {
            format!("{s:?} is not a valid CIDR (such as 10.0.0.0/8 or fd00::/8)")
        }
    })
}

/// An `except` entry must be strictly inside `net` and of the same family.
pub fn except_within(net: &IpNet, except: &IpNet) -> Result<(), String> {
    let family = |n: &IpNet| {
        if matches!(n, IpNet::V4(_)) {
            "IPv4"
        } else {
            "IPv6"
        }
    };
    if family(net) != family(except) {
        return Err(format!(
            "{except} is {} but the cidr {net} is {}",
            family(except),
            family(net)
        ));
    }
    if !net.contains(&except.network()) || except.prefix_len() <= net.prefix_len() {
        return Err(format!(
            "{except} must be a strict subset of the cidr {net}"
        ));
    }
    Ok(())
}

/// A DNS name pattern: labels of letters, digits, '-', '_' and '*' wildcards; `**` only
/// as a whole label; `*` alone matches any name.
pub fn name_pattern(s: &str) -> Result<(), String> {
    let t = s.strip_suffix('.').unwrap_or(s);
    if t.is_empty() {
        return Err("a DNS name pattern must not be empty".into());
    }
    if t.len() > 253 {
        return Err(format!(
            "DNS name pattern {s:?} is longer than 253 characters"
        ));
    }
    for label in t.split('.') {
        let chars_ok = label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*'));
        if label.is_empty() || !chars_ok || (label.contains("**") && label != "**") {
            return Err(format!(
                "{s:?} is not a DNS name pattern: dot-separated labels of letters, digits, '-', '_' and '*' (`**` only as a whole label)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_name_rules() {
        assert!(dns1123_label("shop-1").is_ok());
        assert!(dns1123_label("Shop").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("web.v1").is_ok());
        assert!(dns1123_subdomain("web..v1").is_err());
        assert!(dns1123_subdomain("-web").is_err());
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("App_Name").is_ok());
        assert!(qualified_name("/name").is_err());
        assert!(qualified_name("a/").is_err());
        assert!(qualified_name("Example.com/x").is_err());
        assert!(qualified_name("a/b/c").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.0_x").is_ok());
        assert!(label_value("-x").is_err());
        assert!(label_value(&"a".repeat(64)).is_err());
    }

    #[test]
    fn port_names() {
        for ok in ["http", "h2c", "web-8080", "a"] {
            assert!(port_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "80",
            "HTTP",
            "-http",
            "http-",
            "a--b",
            "sixteen-chars-xx",
            "a_b",
        ] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_and_exceptions() {
        let n = cidr("10.0.0.0/8").unwrap();
        assert!(except_within(&n, &cidr("10.1.0.0/16").unwrap()).is_ok());
        assert!(except_within(&n, &cidr("10.0.0.0/8").unwrap()).is_err());
        assert!(except_within(&n, &cidr("11.0.0.0/16").unwrap()).is_err());
        assert!(
            except_within(&n, &cidr("fd00::/64").unwrap())
                .unwrap_err()
                .contains("IPv6")
        );
        assert!(cidr("10.0.0.1").unwrap_err().contains("10.0.0.1/32"));
        assert!(cidr("10.0.0.0/33").is_err());
    }

    #[test]
    fn name_patterns() {
        for ok in [
            "*",
            "**.example.com",
            "*.example.com",
            "api.example.com.",
            "web-*.svc",
        ] {
            assert!(name_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", "***.x", "a b", "x**.y"] {
            assert!(name_pattern(bad).is_err(), "{bad}");
        }
    }
}
