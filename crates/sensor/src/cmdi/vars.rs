//! A program's name cut into shell variables, assigned in the value and joined where a
//! command starts: `a=ca;b=t;$a$b /etc/passwd`, or PureWaf's
//! `i=ec;u=h;c=o; $i$u$c Y2F0...| $g$r$k$o -d| $w$p` (`echo`, `base64`, `sh`). No
//! word of the value names the program, so the word reader alone, which takes a `$x`
//! inside a word for an unset variable, never sees it.

use super::words;

/// The program a run of two or more `$name` references spells at a command position,
/// each name resolved to the last `name=value` assigned before it in the value.
pub(super) fn joined(v: &[u8]) -> Option<String> {
    // Two references and an assignment at least: most values stop here.
    if memchr::memchr(b'=', v).is_none() || memchr::memchr_iter(b'$', v).nth(1).is_none() {
        return None;
    }
    let assignments = assignments(v);
    if assignments.is_empty() {
        return None;
    }
    memchr::memchr_iter(b'$', v)
        .filter(|&i| command_position(v, i))
        .find_map(|start| {
            let mut program = Vec::new();
            let mut i = start;
            let mut parts = 0;
            while v.get(i) == Some(&b'$') {
                let name_len = v[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                let name = &v[i + 1..i + 1 + name_len];
                let value = assignments
                    .iter()
                    .rev()
                    .find(|(n, _, at)| *n == name && *at < start)?;
                program.extend(value.1.iter().map(u8::to_ascii_lowercase));
                parts += 1;
                i += 1 + name_len;
            }
            let ends = v.get(i).is_none_or(|&c| {
                matches!(c, b' ' | b'\t' | b';' | b'|' | b'&' | b')' | b'<' | b'>')
            });
            let runs =
                words::strong(&program) || words::weak(&program) || words::bin_path(&program);
            (parts >= 2 && ends && runs).then(|| String::from_utf8_lossy(&program).into_owned())
        })
}

/// Every `name=value` word (a name at the start or after a blank or an operator, a
/// value of letters, digits and `_ . / -`): the name, the value, where it ends.
fn assignments(v: &[u8]) -> Vec<(&[u8], &[u8], usize)> {
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    memchr::memchr_iter(b'=', v)
        .filter_map(|eq| {
            let name_len = v[..eq].iter().rev().take_while(|c| word(c)).count();
            let name = &v[eq - name_len..eq];
            let opens = eq - name_len == 0 || starts_command(v[eq - name_len - 1]);
            if name.is_empty() || name[0].is_ascii_digit() || !opens {
                return None;
            }
            let value_len = v[eq + 1..]
                .iter()
                .take_while(|c| word(c) || matches!(c, b'.' | b'/' | b'-'))
                .count();
            Some((name, &v[eq + 1..eq + 1 + value_len], eq + 1 + value_len))
        })
        .collect()
}

/// Where a new command (or an assignment before one) may begin after this byte.
fn starts_command(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b';' | b'|' | b'&' | b'(' | b'`' | b'\n' | b'\r' | b'{'
    )
}

/// Is `v[i]` at a command position: the value's start, or after an operator and blanks?
fn command_position(v: &[u8], i: usize) -> bool {
    let before = v[..i].iter().rev().find(|c| !matches!(c, b' ' | b'\t'));
    before.is_none_or(|&c| c != b'$' && starts_command(c) && !matches!(c, b' ' | b'\t'))
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn names_joined_from_variables() {
        for (v, program) in [
            ("a=ca;b=t;$a$b /etc/passwd", "cat"),
            (
                "i=ec;u=h;c=o; $i$u$c Y2F0IC9ldGMvcGFzc3dk| $g$r$k$o -d| $w$p",
                "echo",
            ),
            (
                "g=ba;r=se;k=6;o=4;w=s;p=h;y=ech;l=o; $y$l eA==| $g$r$k$o -d| $w$p",
                "echo",
            ),
            ("x=who;y=ami\n$x$y", "whoami"),
        ] {
            assert_eq!(joined(v.as_bytes()).as_deref(), Some(program), "{v}");
        }
        for v in [
            "a=1&b=2&c=$a$b",
            "price=$a$b for two",
            "x=foo;y=bar; $x$y --help",
            "$HOME$PATH",
            "a=ca; b=t; echo $a$b",
        ] {
            assert_eq!(joined(v.as_bytes()), None, "{v}");
        }
    }
}
