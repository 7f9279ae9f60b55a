//! Command shapes judged on the whole value rather than word by word: programs a brace
//! expansion spells, a mail session's command line after a CR LF, fork bombs, and
//! Shellshock's function definitions.

use super::lex::is_blank;
use super::{CmdiMatch, hit, mail, words};

/// What is judged whole rather than word by word: a program a brace expansion spells,
/// a command line of the application's mail session after a CR LF (`cmdi/mail.rs`), a
/// fork bomb. Braces and CR are rare in values: one scan decides whether to look.
pub(super) fn whole_shapes(v: &[u8]) -> Option<CmdiMatch> {
    memchr::memchr2(b'{', b'\r', v)?;
    if let Some(program) = brace_program(v) {
        return hit(&format!("brace {program}"));
    }
    if let Some(command) = mail::injected(v) {
        return hit(&command);
    }
    if fork_bomb(v) {
        return hit("fork bomb");
    }
    None
}

/// Shellshock: an environment value (a header, for CGI) that starts a function
/// definition, `() { :; }; cmd`.
pub(super) fn shellshock(v: &[u8]) -> bool {
    let mut rest = v.iter().filter(|c| !c.is_ascii_whitespace());
    rest.next() == Some(&b'(') && rest.next() == Some(&b')') && rest.next() == Some(&b'{')
}

/// A program's name a brace expansion spells (`c{a,oun}t` is `cat count`, `{,$"whoami",}`
/// is `whoami`): bash expands the braces inside a word before it looks the command up, so
/// each alternative with the word's letters around it is a name the shell may run. Two
/// letters are not enough (`l{s,x}`); prose and templates spell no program so.
fn brace_program(v: &[u8]) -> Option<String> {
    memchr::memchr(b',', v)?;
    let letter = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-');
    memchr::memchr_iter(b'{', v).find_map(|open| {
        let close = open + 1 + memchr::memchr(b'}', &v[open + 1..])?;
        let inside = &v[open + 1..close];
        if memchr::memchr(b',', inside).is_none() || inside.iter().any(|c| is_blank(*c)) {
            return None;
        }
        let start = v[..open]
            .iter()
            .rposition(|c| !letter(c))
            .map_or(0, |p| p + 1);
        let end = close + 1 + v[close + 1..].iter().take_while(|c| letter(c)).count();
        // Inside a word, or spelt with quotes: a list in braces (`{cat,dog}`, a
        // PostgreSQL array) names things; the shell's own `{cat,/etc/passwd}` is read
        // as a command start elsewhere.
        let in_word = start < open || end > close + 1;
        inside.split(|&c| c == b',').find_map(|alt| {
            // Quotes and bash's `$"..."` locale strings around an alternative are nothing;
            // only the latter shows a shell (`{"cat","dog"}` is a PostgreSQL array too).
            let locale = memchr::memmem::find(alt, b"$\"").is_some()
                || memchr::memmem::find(alt, b"$'").is_some();
            if !(in_word || locale) {
                return None;
            }
            let alt: Vec<u8> = alt
                .iter()
                .copied()
                .filter(|c| !matches!(c, b'$' | b'"' | b'\''))
                .collect();
            let name = [&v[start..open], &alt[..], &v[close + 1..end]]
                .concat()
                .to_ascii_lowercase();
            (name.len() >= 3 && words::strong(&name))
                .then(|| String::from_utf8_lossy(&name).into_owned())
        })
    })
}

/// A fork bomb: a shell function whose body runs the function twice, piped or in the
/// background (`:(){ :|:& };:`, `f(){ f() & f(); }; f`), which exhausts the process
/// table of the host it runs on. A function that calls itself otherwise (`fib(){ ...
/// fib $((n-1)) ... }`) is no bomb.
fn fork_bomb(v: &[u8]) -> bool {
    let name_byte = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'-');
    memchr::memmem::find_iter(v, b"()").any(|i| {
        let after = v[i + 2..].trim_ascii_start();
        let Some(body) = after.strip_prefix(b"{") else {
            return false;
        };
        let start = v[..i]
            .iter()
            .rposition(|c| !name_byte(c))
            .map_or(0, |p| p + 1);
        let name = &v[start..i];
        let end = memchr::memchr(b'}', body).unwrap_or(body.len());
        // The body without blanks and without the calls' `()`.
        let mut flat: Vec<u8> = body[..end]
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        while let Some(at) = memchr::memmem::find(&flat, b"()") {
            flat.drain(at..at + 2);
        }
        !name.is_empty()
            && [b'|', b'&'].iter().any(|&op| {
                let twice = [name, &[op][..], name].concat();
                memchr::memmem::find(&flat, &twice).is_some()
            })
    })
}
