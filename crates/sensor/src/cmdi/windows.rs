//! `cmd.exe` and server-side includes, which have their own syntax: batch `FOR` and
//! `IF`, Windows administration commands, `<!--#exec`.

use super::{CmdiMatch, hit};

/// A batch `IF` that compares (`IF "%1"=="x" cmd`, `if (1) equ (1) echo`): its operands
/// quoted, bracketed or variables, or one of cmd's comparison words.
fn batch_if(lower: &[u8]) -> bool {
    let Some(rest) = lower.trim_ascii_start().strip_prefix(b"if ") else {
        return false;
    };
    let rest = rest.strip_prefix(b"/i ").unwrap_or(rest);
    let negated = rest.starts_with(b"not ");
    let rest = rest.strip_prefix(b"not ").unwrap_or(rest);
    let has = |p: &[u8]| memchr::memmem::find(rest, p).is_some();
    let word_op = [
        &b" equ "[..],
        b" neq ",
        b" lss ",
        b" leq ",
        b" gtr ",
        b" geq ",
    ]
    .iter()
    .any(|p| has(p));
    let operand = matches!(rest.first(), Some(b'"' | b'[' | b'(' | b'{' | b'%' | b'!'));
    // `IF NOT a==b`: prose negates with words, not with `==`.
    word_op || ((operand || negated) && has(b"=="))
}

/// Windows administration as the whole value (lower-cased, blanks squeezed): `net user
/// x y /add`, `net localgroup administrators x /add`, `reg add "HKLM\..." /v ...`,
/// `netsh firewall set opmode disable`. `net` and `reg` are words of prose too (*net user
/// growth*), so their subcommand and a switch or a registry hive must follow; `netsh`
/// is no word.
fn windows_admin(lower: &[u8]) -> Option<&'static str> {
    let mut words = lower.split(|&c| c == b' ').filter(|w| !w.is_empty());
    let program = words.next()?;
    let sub = words.next()?;
    match program.strip_suffix(b".exe").unwrap_or(program) {
        b"net" => {
            let subcommand = matches!(
                sub,
                b"user" | b"users" | b"localgroup" | b"group" | b"share" | b"use" | b"accounts"
            );
            let switch = |w: &[u8]| {
                matches!(w, b"/add" | b"/delete" | b"/del" | b"/domain")
                    || [&b"/user:"[..], b"/active:", b"/grant:"]
                        .iter()
                        .any(|s| w.starts_with(s))
            };
            (subcommand && words.take(16).any(switch)).then_some("net")
        }
        b"reg" => {
            let verb = matches!(
                sub,
                b"add" | b"delete" | b"query" | b"import" | b"export" | b"save" | b"load" | b"copy"
            );
            let hive = words.next().is_some_and(|k| {
                k.trim_ascii_start()
                    .strip_prefix(b"\"")
                    .unwrap_or(k)
                    .starts_with(b"hk")
            });
            (verb && hive).then_some("reg")
        }
        b"netsh" => Some("netsh"),
        _ => None,
    }
}

/// `cmd.exe` control words, Windows administration and server-side includes, which have
/// their own syntax.
pub(super) fn windows_or_ssi(v: &[u8]) -> Option<CmdiMatch> {
    // Lower-cased with runs of blanks squeezed: `IF    EXIST` is `if exist`.
    let mut lower: Vec<u8> = Vec::with_capacity(v.len());
    for &c in v {
        let c = if c.is_ascii_whitespace() {
            b' '
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == b' ' && lower.last() == Some(&b' ')) {
            lower.push(c);
        }
    }
    let find = |p: &[u8]| memchr::memmem::find(&lower, p);
    if find(b"<!--#exec").is_some() || find(b"<!--#include").is_some() {
        return hit("ssi");
    }
    // `FOR ... %x IN (...) DO`: the batch loop runs whatever follows DO (`)DO` needs no
    // blank). Its tail alone is enough: a form parser cuts `& FOR /F "a=b" %%A IN ...`
    // at the `&` and the `=`.
    if let Some(f) = find(b"for ")
        && (f == 0 || !lower[f - 1].is_ascii_alphanumeric())
        && let Some(inp) = memchr::memmem::find(&lower[f..], b" in ")
        && memchr::memmem::find(&lower[f + inp..], b" do ").is_some()
        && memchr::memchr(b'%', &lower[f..f + inp]).is_some()
    {
        return hit("for");
    }
    if memchr::memchr(b'%', &lower).is_some()
        && let Some(inp) = find(b" in (").or_else(|| find(b" in("))
        && let Some(p) = memchr::memrchr(b'%', &lower[..inp])
        && lower[p..inp]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"%~@[_".contains(c))
        && [&b") do "[..], b")do ", b") do@", b")do@"]
            .iter()
            .any(|d| memchr::memmem::find(&lower[inp..], d).is_some())
    {
        return hit("for");
    }
    if batch_if(&lower) {
        return hit("if");
    }
    if let Some(program) = windows_admin(&lower) {
        return hit(program);
    }
    // `IF [NOT] EXIST|DEFINED|ERRORLEVEL x`: batch conditionals.
    // (`if not` alone is English: *if not now, when?*)
    for kw in [
        &b"if exist "[..],
        b"if not exist ",
        b"if not defined ",
        b"if not errorlevel ",
        b"if not \"%",
        b"if not %",
        b"if defined ",
        b"if errorlevel ",
        b"if /i ",
        b"if \"%",
        b"if %",
    ] {
        if let Some(p) = find(kw)
            && (p == 0 || !lower[p - 1].is_ascii_alphanumeric())
        {
            return hit("if");
        }
    }
    None
}
