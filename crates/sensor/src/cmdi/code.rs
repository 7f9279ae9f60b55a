//! Code injection that runs commands: PHP (and Python's) functions that execute a
//! command or code, called with a literal or a variable (`system('id')`,
//! `passthru($_GET['c'])`, `phpinfo()`, `__import__('os')`), a PHP opening tag, PHP's
//! complex interpolation (`{${phpinfo()}}`, `${@print(1)}`), and a script ended early
//! with a call in its exit code (`';exit(md5('x'));//`, wapiti's probe). What an
//! application that evaluates input runs, where a shell is not involved at all.
//!
//! Method calls stay out (`re.exec('x')`, `db.system('x')`: a `.`, `->` or `::` before
//! the name), as do names that merely start with one (`ecosystem('`), so code that
//! prose quotes or JavaScript runs reads as itself.

use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// Functions that run a command or code; the first [`PROCESS`] start a process.
const RUNNERS: &[&str] = &[
    "system",
    "exec",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "pcntl_exec",
    "eval",
    "assert",
    "create_function",
    "phpinfo",
    "__import__",
    "os.system",
    "os.popen",
    // Python's and Ruby's process calls, as template injection reaches them
    // (`{% import subprocess %}{{subprocess.check_output('id',shell=True)}}`, ERB's
    // `<%= IO.popen('id').readlines() %>`); a list of arguments is a literal too.
    "subprocess.check_output",
    "subprocess.check_call",
    "subprocess.getoutput",
    "subprocess.popen",
    "subprocess.call",
    "subprocess.run",
    "io.popen",
];

/// Calls that start a process from Java or Node.js code, where an application
/// evaluates scripts it is sent (a report's formula, a mock server's script, a
/// BeanShell console): methods, so found as written, not as calls of a name.
const SPAWNERS: &[(&str, &str)] = &[
    ("processbuilder(", "java ProcessBuilder"),
    ("getruntime().exec(", "java Runtime.exec"),
    // `require('child_process')`, and the loader's other doors to it
    // (`process.mainModule.constructor._load('child_process')`).
    ("('child_process')", "node child_process"),
    ("(\"child_process\")", "node child_process"),
    ("(`child_process`)", "node child_process"),
    ("mainmodule.require(", "node process.mainModule"),
    ("mainmodule.constructor._load(", "node process.mainModule"),
    ("process.binding(", "node process.binding"),
    // Groovy runs a string as a command line: `'id'.execute()` (OFBiz's ProgramExport,
    // Jenkins' script console).
    ("'.execute()", "groovy execute"),
    ("\".execute()", "groovy execute"),
];

/// What a runner's argument may be besides a literal: a call that decodes the code it
/// runs (`eval(base64_decode("..."))`, `assert(str_rot13(...))`), as web shells and
/// their droppers write it.
const DECODERS: &[&str] = &[
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "hex2bin",
    "urldecode",
    "rawurldecode",
    "strrev",
    "atob",
    "file_get_contents",
];

/// Every runner as `name(`, then every spawner: one pass over the value.
static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let runners = RUNNERS.iter().map(|r| format!("{r}("));
    let spawners = SPAWNERS.iter().map(|(s, _)| s.to_string());
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(runners.chain(spawners))
        .expect("static patterns")
});

/// Python's special attributes that lead from an object to every class or module.
static GADGETS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new(["__subclasses__", "__globals__", "__builtins__", "__mro__"])
        .expect("static patterns")
});

/// The function (or construct) a value calls, if it injects code.
pub fn injected(v: &[u8]) -> Option<&'static str> {
    if memchr::memmem::find(v, b"<?php").is_some() || memchr::memmem::find(v, b"<?=").is_some() {
        return Some("php");
    }
    if memchr::memmem::find(v, b"{${").is_some() || memchr::memmem::find(v, b"${@").is_some() {
        return Some("php interpolation");
    }
    // Python's way from any object to modules that run commands, as template injection
    // writes it (`{{''.__class__.__mro__[1].__subclasses__()}}`,
    // `{{cycler.__init__.__globals__.os.popen('id').read()}}`): attribute names no form
    // value holds.
    if memchr::memmem::find(v, b"__").is_some() && GADGETS.find(v).is_some() {
        return Some("python object graph");
    }
    // Every call needs its `(`.
    memchr::memchr(b'(', v)?;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // Overlapping: `popen(` read as a method must not hide `os.popen(` around it.
    for m in FINDER.find_overlapping_iter(v) {
        // Spawners come after the runners in the searcher's patterns.
        if let Some(k) = m.pattern().as_usize().checked_sub(RUNNERS.len()) {
            return Some(SPAWNERS[k].1);
        }
        let (start, end) = (m.start(), m.end());
        let before = &v[..start];
        let name = RUNNERS[m.pattern().as_usize()];
        // `os.popen(` reached through attributes (Mako's `self.module.cache.util.os`) is
        // still the module's function.
        let attribute = before.last() == Some(&b'.') && name.contains('.');
        let method = before.last().is_some_and(|&c| ident(c) || c == b'.')
            && !concatenated(before)
            && !attribute
            || before.ends_with(b"->")
            || before.ends_with(b"::");
        if method {
            continue;
        }
        let arg = v[end..].iter().copied().find(|c| !c.is_ascii_whitespace());
        let literal = matches!(arg, Some(b'\'' | b'"' | b'$' | b'`'))
            || (arg == Some(b'[') && name.contains('.'));
        if literal || (name == "phpinfo" && arg == Some(b')')) || decoded_argument(&v[end..]) {
            return Some(name);
        }
    }
    exit_with_call(v)
        .or_else(|| printed_hash(v))
        .or_else(|| callback(v))
        .or_else(|| request_callback(v))
        .or_else(|| php_only(v))
        .or_else(|| variable_function(v))
        .or_else(|| inverted_call(v))
        .or_else(|| breakout_call(v))
        .or_else(|| javascript_delay(v))
}

/// How many of [`RUNNERS`], from the first, start a process (`system` to `pcntl_exec`).
const PROCESS: usize = 7;

/// PHP's functions that call a function given by name, and which argument it is.
const PHP_CALLBACKS: &[(&str, usize)] = &[
    ("call_user_func", 0),
    ("call_user_func_array", 0),
    ("array_map", 0),
    ("forward_static_call", 0),
    ("register_shutdown_function", 0),
    ("ob_start", 0),
    ("array_filter", 1),
    ("array_walk", 1),
    ("array_reduce", 1),
    ("usort", 1),
    ("uasort", 1),
    ("uksort", 1),
    ("iterator_apply", 1),
];

/// Does `callee` call what it is given: one of [`PHP_CALLBACKS`], Twig's filters, Twig
/// 1's `registerUndefinedFilterCallback`?
fn higher_order(callee: &[u8]) -> bool {
    let twig = [
        "filter",
        "map",
        "reduce",
        "sort",
        "registerundefinedfiltercallback",
    ];
    PHP_CALLBACKS
        .iter()
        .map(|(name, _)| name)
        .chain(&twig)
        .any(|h| callee.eq_ignore_ascii_case(h.as_bytes()))
}

/// The identifier `s` ends with (letters, digits, `_`), and what is before it.
fn trailing_ident(s: &[u8]) -> (&[u8], &[u8]) {
    let len = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    s.split_at(s.len() - len)
}

/// A runner's name passed as a callback, the first argument of a call: Twig's filters
/// (`{{['id']|filter('system')}}`, `{{[0]|reduce('system','id')}}`), PHP's
/// `array_map('system', ...)`, `call_user_func("passthru", ...)`. The call must be one
/// that calls what it is given, and the string end the argument: a JSON list of role
/// names (`["admin", "system"]`) or `role("system")` in prose is neither.
fn callback(v: &[u8]) -> Option<&'static str> {
    for q in memchr::memchr2_iter(b'\'', b'"', v) {
        let before = v[..q].trim_ascii_end();
        let Some(open) = before.strip_suffix(b"(") else {
            continue;
        };
        if !higher_order(trailing_ident(open.trim_ascii_end()).1) {
            continue;
        }
        let rest = &v[q + 1..];
        let Some(close) = memchr::memchr(v[q], rest) else {
            continue;
        };
        let after = rest[close + 1..].trim_ascii_start().first();
        let name = &rest[..close];
        // PHP calls these by name when they are passed as a callback, `assert` too.
        let runner = RUNNERS[..PROCESS]
            .iter()
            .chain(&["assert"])
            .any(|c| name.eq_ignore_ascii_case(c.as_bytes()));
        if matches!(after, Some(b',' | b')')) && runner {
            return Some("php callback");
        }
    }
    None
}

/// A function named by the request itself, passed to what calls it: the one-line web
/// shells `call_user_func($_GET[x], $_GET[y])`, `array_map($_GET[x], $__)`.
fn request_callback(v: &[u8]) -> Option<&'static str> {
    memchr::memmem::find(v, b"$_")?;
    memchr::memchr_iter(b'(', v).find_map(|open| {
        let callee = trailing_ident(&v[..open]).1;
        // Which argument is the callback.
        let &(_, position) = PHP_CALLBACKS
            .iter()
            .find(|(name, _)| callee.eq_ignore_ascii_case(name.as_bytes()))?;
        let args = &v[open + 1..v.len().min(open + 129)];
        let args = &args[..memchr::memchr(b')', args).unwrap_or(args.len())];
        let arg = args.split(|&c| c == b',').nth(position)?.trim_ascii_start();
        [
            &b"$_GET"[..],
            b"$_POST",
            b"$_REQUEST",
            b"$_COOKIE",
            b"$_SERVER",
        ]
        .iter()
        .any(|g| arg.starts_with(g))
        .then_some("php callback")
    })
}

/// PHP's own functions that list and show the server's files and request, which only
/// code an application evaluates calls (`show_source(scandir(getcwd())[2])`,
/// `print_r(getallheaders())`): nested in another call, or with a call as their
/// argument; prose names them alone (`the scandir() function`).
fn php_only(v: &[u8]) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "scandir(",
        "getallheaders(",
        "show_source(",
        "highlight_file(",
        "get_defined_vars(",
        "getcwd(",
    ];
    memchr::memchr_iter(b'(', v).find_map(|open| {
        NAMES.iter().find_map(|n| {
            let start = (open + 1).checked_sub(n.len())?;
            let name = &v[start..=open];
            let before = start.checked_sub(1).map(|b| v[b]);
            let arg = &v[open + 1..];
            let arg_len = arg
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            let nested = before == Some(b'(') || (arg_len > 0 && arg.get(arg_len) == Some(&b'('));
            (name.eq_ignore_ascii_case(n.as_bytes())
                && nested
                && !before
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'>')))
            .then_some("php file listing")
        })
    })
}

/// A string inverted bit by bit and called (`(~'%8f%97%8f%96%91%99%90')()` is
/// `phpinfo()`): PHP 7 calls a string expression as the function it names, and the
/// name is in bytes no filter reads.
fn inverted_call(v: &[u8]) -> Option<&'static str> {
    memchr::memmem::find_iter(v, b"(~").find_map(|i| {
        let rest = &v[i + 2..v.len().min(i + 2 + 64)];
        // A string: quoted, or its bytes past ASCII as the inverted name's are.
        let string = matches!(rest.first(), Some(b'\'' | b'"')) || rest.first() >= Some(&0x80);
        let close = memchr::memchr(b')', rest)?;
        (string && rest.get(close + 1) == Some(&b'(')).then_some("php inverted string call")
    })
}

/// A variable called as a function, named with underscores only as obfuscated PHP
/// names them (`$_=chr(112).chr(104)...;$_();`, `$$_[0]($$_[1])`): the function's
/// name was built from bytes no filter saw.
fn variable_function(v: &[u8]) -> Option<&'static str> {
    memchr::memchr_iter(b'$', v).find_map(|i| {
        let rest = &v[i + 1..];
        let rest = rest.strip_prefix(b"$").unwrap_or(rest);
        let name = rest.iter().take_while(|c| **c == b'_').count();
        let mut rest = &rest[name..];
        if name == 0 || rest.first().is_some_and(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        if rest.first() == Some(&b'[') {
            let close = memchr::memchr(b']', &rest[..rest.len().min(8)])?;
            rest = &rest[close + 1..];
        }
        (rest.first() == Some(&b'(')).then_some("php variable function")
    })
}

/// Does a runner's argument list open with a call of one of [`DECODERS`]?
fn decoded_argument(args: &[u8]) -> bool {
    let args = args.trim_ascii_start();
    let len = args
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    args[len..].trim_ascii_start().starts_with(b"(")
        && DECODERS
            .iter()
            .any(|d| args[..len].eq_ignore_ascii_case(d.as_bytes()))
}

/// A value that closes the string it was put in and runs a JavaScript busy loop timed by
/// the clock (`';d=new Date();do{cd=new Date();}while(cd-d<10000);//`: wapiti's probe for
/// server-side `eval` and MongoDB's `$where`). The quote and `;` must open the value, as
/// no prose starts.
fn javascript_delay(v: &[u8]) -> Option<&'static str> {
    let v = v.trim_ascii_start();
    let rest = v.strip_prefix(b"'").or_else(|| v.strip_prefix(b"\""))?;
    let rest = rest.trim_ascii_start().strip_prefix(b";")?;
    let has = |n: &[u8]| memchr::memmem::find(rest, n).is_some();
    ((has(b"while(") || has(b"for(")) && (has(b"new Date()") || has(b"Date.now()")))
        .then_some("javascript delay")
}

/// A `.` right after a closing quote joins strings (PHP's concatenation: `'.system('id').'`),
/// where after a name it calls a method.
fn concatenated(before: &[u8]) -> bool {
    let Some(rest) = before.strip_suffix(b".") else {
        return false;
    };
    matches!(rest.trim_ascii_end().last(), Some(b'\'' | b'"'))
}

/// A value that closes the string it was put in and joins a call to it: `".base64_decode(
/// "...")."`, `'.md5('x').'`: code an application that evaluates a string runs (nmap's
/// CVE-2014-8877 probe). The quote must open the value: prose does not start so.
fn breakout_call(v: &[u8]) -> Option<&'static str> {
    let v = v.trim_ascii_start();
    let rest = v.strip_prefix(b"'").or_else(|| v.strip_prefix(b"\""))?;
    // Written tight, as payloads write it: prose may start `'. See (1)`.
    let rest = rest.strip_prefix(b".")?;
    let name = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    let called = name > 0 && !rest[0].is_ascii_digit() && rest.get(name) == Some(&b'(');
    called.then_some("php string breakout")
}

/// `echo md5("CVE-2019-16759");`, `print(md5(1))`, `var_dump(sha1('x'))`: the probe by
/// which scanners see code run, a hash the page would print only if it ran.
fn printed_hash(v: &[u8]) -> Option<&'static str> {
    const PRINTERS: &[&[u8]] = &[b"echo", b"print", b"var_dump", b"print_r", b"printf"];
    memchr::memchr_iter(b'(', v).find_map(|open| {
        let hash = [&b"md5"[..], b"sha1"]
            .into_iter()
            .find(|h| open >= h.len() && v[open - h.len()..open].eq_ignore_ascii_case(h))?;
        let before = v[..open - hash.len()].trim_ascii_end();
        let before = before.strip_suffix(b"(").unwrap_or(before).trim_ascii_end();
        let (ahead, printer) = trailing_ident(before);
        let apart = !matches!(ahead.last(), Some(b'.' | b'>' | b'$'));
        (apart && PRINTERS.iter().any(|p| printer.eq_ignore_ascii_case(p)))
            .then_some("php hash probe")
    })
}

/// `exit(md5('x'))`, `die(sha1(1))`: the end of a script, with a call in its code.
fn exit_with_call(v: &[u8]) -> Option<&'static str> {
    for (word, name) in [(&b"exit("[..], "exit"), (b"die(", "die")] {
        let mut from = 0;
        while let Some(p) = memchr::memmem::find(&v[from..], word) {
            let at = from + p;
            from = at + word.len();
            let before = &v[..at];
            let joined = before.last() == Some(&b'.') && concatenated(before);
            if at > 0
                && (v[at - 1].is_ascii_alphanumeric() || matches!(v[at - 1], b'_' | b'.'))
                && !joined
            {
                continue;
            }
            let rest = &v[from..];
            let call = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_');
            let len = call.count();
            if len > 0 && rest.get(len) == Some(&b'(') {
                return Some(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::injected;

    #[test]
    fn code_that_runs_commands() {
        for v in [
            "system('sleep 5')",
            "exec('sleep 5')",
            "; passthru($_GET['cmd']);",
            "phpinfo();",
            "|| phpinfo()",
            "{${phpinfo()}}",
            "${@print(\"RCEVulnerable\")}",
            "<?php system(\"sleep 10\");?>",
            "';exit(md5('w4p1t1_md5'));//",
            // PHP's concatenation after the string is closed (wapiti, nmap).
            "'.exit(md5('w4p1t1_md5'));//",
            "\".exit(md5('w4p1t1_md5'));#",
            "'.system('id').'",
            "\".base64_decode(\"ZXl5bmR0aGthb2VjY3lh\").\"",
            "\";die(sha1(1));//",
            "__import__('os').system('id')",
            "os.system(\"id\")",
            "SHELL_EXEC(\"id\")",
            // template injection into Python (Jinja2, Mako): the object graph
            "{{''.__class__.__mro__[1].__subclasses__()}}",
            "{{cycler.__init__.__globals__.os.popen('id').read()}}",
            "${self.module.cache.util.os.system('id')}.__builtins__",
            // a clock-timed JavaScript loop after the string (wapiti 3.2.3, run for real)
            "';d=new Date();do{cd=new Date();}while(cd-d<10000);//",
            "\";d=new Date();do{cd=new Date();}while(cd-d<10000);//",
            // code that decodes the code it runs (nuclei's Tongda OA template)
            "1,1=>eval(base64_decode(\"ZWNobyBtZDUoOTk5OTk5OTk5KTs=\")));/*",
            "assert( str_rot13('flfgrz(\"vq\")') )",
            // Java and Node.js evaluators (AJ-Report, YApi, DbGate)
            "a = new java.lang.ProcessBuilder(\"id\").start().getInputStream();",
            "java.lang.Runtime.getRuntime().exec(cmd)",
            "process.mainModule.require('child_process').exec('nslookup x')",
            "require(\"child_process\").execSync(\"id\")",
            "String expression = \"'nslookup x.oast.example.com'.execute()\";",
            // template injection into Mako, Jinja2, ERB, Twig and Node.js (fray's payloads)
            "${self.module.cache.util.os.popen('id').read()}",
            "{% import subprocess %}{{subprocess.check_output('id',shell=True)}}",
            "subprocess.run(['id'])",
            "<%= IO.popen('id').readlines() %>",
            "{{['id']|filter('system')}}",
            "{{[0]|reduce('system','id')}}",
            "array_map( \"passthru\" , ['id'])",
            "#{function(){localLoad=global.process.mainModule.constructor._load;sh=localLoad('child_process').exec('id')}()}",
            // PureWaf's one-line shells and PHP that names its function in other bytes
            "call_user_func($_GET[x], $_GET[y]);",
            "$__=array($_GET[y]);array_filter($__, $_GET[x]);",
            "show_source(scandir(getcwd())[2]);",
            "print_r(getallheaders());",
            "$_=chr(112).chr(104).chr(112);$_();",
            "$_=([].[])[0];$$_[0]($$_[1]);",
            "(~'\u{8f}\u{97}\u{8f}\u{96}\u{91}\u{99}\u{90}')();",
            // scanners' probes that code ran (vBulletin's CVE-2019-16759)
            "echo md5(\"CVE-2019-16759\");",
            "print(md5(1))",
            "var_dump(sha1('x'));",
        ] {
            assert!(injected(v.as_bytes()).is_some(), "{v}");
        }
        for v in [
            "re.exec('abc')",
            "'; while(loading) wait for the new Date picker",
            "d=new Date(); while(cd-d<10) {}",
            "db->exec('SELECT 1')",
            "PDO::exec('x')",
            "the ecosystem('s) growth",
            "operating system(s)",
            "exec(0)",
            "exit(0)",
            "press exit (top right)",
            "phpinfo",
            "evaluate('x')",
            "__init__.py and __all__",
            "{{ user.name }}",
            "\"hello\". exit(1) said the log",
            "'.'.join(parts)",
            "\". 5 (five)",
            "'. See (1) below",
            "eval(parse(text))",
            "the child_process module spawns processes",
            "ProcessBuilder is the class to use",
            "photos.popen('x')",
            "a string that can be passed to subprocess.Popen()",
            r#"{"roles": ["admin", "system"]}"#,
            "role(\"system\") and (\"exec\")",
            "filter('systems')",
            "array_map($callback, $_GET['ids'])",
            "the scandir() function lists a directory",
            "$_GET['x'] and $_ are variables",
            "my.getcwd() wrapper",
            "the md5() of the file",
            "$hasher->print(md5($x))",
            "x = (~mask) (bits)",
            "(~5)(3)",
        ] {
            assert_eq!(injected(v.as_bytes()), None, "{v}");
        }
    }
}
