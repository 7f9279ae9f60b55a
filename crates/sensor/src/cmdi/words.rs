//! Program names. Hand-written lists (no crate knows which programs attackers run):
//! `STRONG` names are not English words, so a command position holding one is an
//! injection; `WEAK` names are also words (`id`, `more`, `time`) and need more proof.

use crate::wordhash::WordState;
use std::collections::HashSet;
use std::sync::LazyLock;

const STRONG: &[&str] = &[
    "cat",
    "ls",
    "dir",
    "uname",
    "whoami",
    "ifconfig",
    "ipconfig",
    "netstat",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "dash",
    "tcsh",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "lua",
    "powershell",
    "pwsh",
    "cmd",
    "cmd.exe",
    "ping",
    "ping.exe",
    "nslookup",
    "dig",
    "traceroute",
    "tracert",
    "chmod",
    "chown",
    "rm",
    "mv",
    "cp",
    "tftp",
    "ftp",
    "telnet",
    "ssh",
    "scp",
    "nmap",
    "passwd",
    "useradd",
    "usermod",
    "userdel",
    "adduser",
    "deluser",
    "addgroup",
    "groupadd",
    "gpasswd",
    "chpasswd",
    "chattr",
    "bsdtar",
    "crontab",
    "sudo",
    "su",
    "xterm",
    "gcc",
    "cc",
    "make",
    "tar",
    "unzip",
    "gzip",
    "base64",
    "xxd",
    "hexdump",
    "awk",
    "gawk",
    "sed",
    "grep",
    "egrep",
    "head",
    "tail",
    "less",
    "vi",
    "vim",
    "nano",
    "ps",
    "pwd",
    "env",
    "printenv",
    "export",
    "systeminfo",
    "tasklist",
    "taskkill",
    "net",
    "net.exe",
    "reg",
    "regedit",
    "certutil",
    "bitsadmin",
    "mshta",
    "rundll32",
    "wmic",
    "cscript",
    "wscript",
    "iex",
    "iwr",
    "invoke-webrequest",
    "invoke-expression",
    "start-process",
    "sleep",
    "ulimit",
    "nohup",
    "kill",
    "killall",
    "pkill",
    "mkfifo",
    "mknod",
    "socat",
    "telnetd",
    "hostname",
    "lsof",
    "htop",
    "dmesg",
    "mount",
    "umount",
    "chroot",
    "xargs",
    "eval",
    "exec",
    "busybox",
    "nohup",
    "ifup",
    "ip",
    "route",
    "arp",
    "getent",
    "timeout",
    "setsid",
    "chef-shell",
    "cscli",
    "bcdboot",
    "echo",
    "uname -a",
    "touch",
    "ll",
    "fgrep",
    "uptime",
    "wc",
    // Programs GTFOBins-style lists name (they run commands, read files or open shells),
    // package and configuration tools, debuggers and compilers: no word of prose among
    // them, nor a tool prose names (those are in `TOOLS`).
    "c89",
    "c99",
    "g++",
    "tclsh",
    "irb",
    "jrunscript",
    "jjs",
    "rlwrap",
    "lastlog",
    "lastlogin",
    "ssh-copy-id",
    "ssh-keygen",
    "sshpass",
    "uconv",
    "base32",
    "basenc",
    "zcat",
    "zstdcat",
    "gunzip",
    "bunzip2",
    "unxz",
    "rmt",
    "visudo",
    "pkexec",
    "doas",
    "ansible-playbook",
    "ansible-config",
    "ansible-console",
    "ansible-doc",
    "ansible-galaxy",
    "ansible-inventory",
    "ansible-pull",
    "ansible-vault",
    "chef-client",
    "chef-run",
    "chef-solo",
    "chef-vault",
    "pipx",
    "npx",
    "aa-disable",
    "aa-exec",
    "aa-status",
    "journalctl",
    "sftp",
    "smbclient",
    "mongosh",
    "redis-cli",
    "ldapsearch",
    "crictl",
    "runc",
    "nsenter",
    "capsh",
    "setcap",
    "getcap",
    "msfconsole",
    "msfvenom",
    "schtasks",
    "vssadmin",
    "wevtutil",
    "msiexec",
    "regsvr32",
    "cmstp",
    "forfiles",
    "findstr",
    "icacls",
    "takeown",
    "netsh",
    "nltest",
    "apt-get",
    "zypper",
    "poweroff",
    "insmod",
    "modprobe",
    "strace",
    "ltrace",
    "stdbuf",
    "ionice",
    "cpulimit",
    "ssh-agent",
    "shuf",
    "tac",
];

const WEAK: &[&str] = &[
    "id", "more", "time", "set", "top", "at", "w", "who", "sort", "find", "true", "false", "date",
    "type", "whois", "test", "uniq", "cut", "tr", "od", "file", "last", "finger", "host", "df",
    "du", "free", "nl", "sum", "tee", "yes", "watch", "which", "whereis", "history", "ver", "vol",
    "tree", "print", "system", "alias", "source", "read", "fold", "comm", "ex", "ed", "join",
    "split", "paste", "expand", "look", "screen", "install", "shred", "strings", "rev", "cd",
    "man", "nice", "flock", "apt",
    // (`; java -jar x.jar`, `;ss -tulpn`; Windows' blind-injection delays where `ping -n`
    // and `timeout` are filtered, `& choice /t 5 /d y`, `& waitfor /t 5 pause`: weak, as
    // T-SQL's `;waitfor delay '0:0:5'` is SQL)
    "java", "ss", "choice", "waitfor",
];

/// Weak too: tools that prose names next to each other ("PHP & MySQL", "Kubernetes &
/// Docker") and markdown quotes in backticks (`` `systemctl restart` ``), which a shell
/// would run.
const TOOLS: &[&str] = &[
    "gdb",
    "lldb",
    "clang",
    "iconv",
    "bzip2",
    "xz",
    "7z",
    "ansible",
    "pip",
    "pip3",
    "npm",
    "cpan",
    "systemctl",
    "iptables",
    "tcpdump",
    "tshark",
    "openssl",
    "rsync",
    "sqlite3",
    "psql",
    "mysql",
    "kubectl",
    "docker",
    "dpkg",
    "yum",
    "dnf",
    "pacman",
    "shutdown",
    "reboot",
];

pub fn tool(w: &[u8]) -> bool {
    TOOLS.iter().any(|t| t.as_bytes() == base(w))
}

/// Programs whose argument is a host to reach (`nslookup x.oast.example`, `ping
/// host.example.com`): the out-of-band probe of blind command injection, where the
/// application runs the value as a command line.
pub fn network(w: &[u8]) -> bool {
    matches!(
        base(w).strip_suffix(b".exe").unwrap_or(base(w)),
        b"ping"
            | b"ping6"
            | b"nslookup"
            | b"dig"
            | b"traceroute"
            | b"tracert"
            | b"curl"
            | b"wget"
            | b"nc"
            | b"ncat"
            | b"netcat"
            | b"telnet"
            | b"nmap"
    )
}

/// A host name (`oast.example.com`, `example.org`): labels of letters, digits and `-`,
/// the last alphabetic.
pub fn host_name(w: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = b"";
    for label in w.split(|&c| c == b'.') {
        if label.is_empty()
            || !label
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && (2..=24).contains(&last.len()) && last.iter().all(u8::is_ascii_alphabetic)
}

static STRONG_SET: LazyLock<HashSet<&'static [u8], WordState>> =
    LazyLock::new(|| STRONG.iter().map(|s| s.as_bytes()).collect());
static WEAK_SET: LazyLock<HashSet<&'static [u8], WordState>> =
    LazyLock::new(|| WEAK.iter().chain(TOOLS).map(|s| s.as_bytes()).collect());

/// `SHAPES[len][first byte]`: does a program of either list have that length and first
/// byte? Most words are no program, and this rejects them before hashing.
static SHAPES: LazyLock<Box<[[bool; 256]; 25]>> = LazyLock::new(|| {
    let mut t = Box::new([[false; 256]; 25]);
    for p in STRONG.iter().chain(WEAK).chain(TOOLS) {
        if let Some(&f) = p.as_bytes().first()
            && p.len() <= 24
        {
            t[p.len()][usize::from(f)] = true;
        }
    }
    t
});

fn in_list(list: &[&str], w: &[u8]) -> bool {
    // Every word of a value is looked up: a hash set, not a scan of the list.
    let set = if std::ptr::eq(list, STRONG) {
        &*STRONG_SET
    } else {
        &*WEAK_SET
    };
    w.len() <= 24 && w.first().is_some_and(|&f| SHAPES[w.len()][usize::from(f)]) && set.contains(w)
}

/// The last path component (`/usr/bin/id` -> `id`), `.exe` kept.
fn base(w: &[u8]) -> &[u8] {
    w.rsplit(|&c| c == b'/' || c == b'\\').next().unwrap_or(w)
}

pub fn strong(w: &[u8]) -> bool {
    in_list(STRONG, w)
        || (w.contains(&b'/') && in_list(STRONG, base(w)))
        || (w.last().is_some_and(u8::is_ascii_digit) && versioned(base(w)))
}

/// An interpreter or compiler named with its version, as distributions install them:
/// `python3.10`, `php8.2`, `gcc-12`, `perl5.36`.
fn versioned(w: &[u8]) -> bool {
    let name = w.trim_ascii_end();
    let cut = name
        .iter()
        .rposition(|c| !(c.is_ascii_digit() || *c == b'.' || *c == b'-'))
        .map_or(0, |i| i + 1);
    cut < name.len()
        && name[cut..].iter().any(u8::is_ascii_digit)
        && matches!(
            &name[..cut],
            b"python"
                | b"python2"
                | b"python3"
                | b"perl"
                | b"ruby"
                | b"php"
                | b"lua"
                | b"node"
                | b"gcc"
                | b"g++"
                | b"clang"
                | b"tclsh"
                | b"pip"
                | b"pip3"
        )
}

pub fn weak(w: &[u8]) -> bool {
    in_list(WEAK, w) || (w.contains(&b'/') && in_list(WEAK, base(w)))
}

/// Programs that run the program named after them (`nohup sh -c id`, `timeout 5 ping
/// x`, `flock -u / whoami`). Not English words: a command line that starts with one and
/// names a program within its next few words is a command line.
pub fn wrapper(w: &[u8]) -> bool {
    matches!(
        w,
        b"nohup"
            | b"strace"
            | b"ltrace"
            | b"sudo"
            | b"doas"
            | b"xargs"
            | b"timeout"
            | b"cpulimit"
            | b"flock"
            | b"stdbuf"
            | b"ionice"
            | b"setsid"
            | b"chroot"
            | b"unbuffer"
            | b"proxychains"
            | b"torify"
            | b"busybox"
            | b"env"
            | b"exec"
    )
}

/// Wrappers that are also English (`time`, `nice`, `watch`): they count only before a
/// program that takes an option or a path (`time sh -c whoami`), not before prose
/// (`nice cat pictures`).
pub fn english_wrapper(w: &[u8]) -> bool {
    matches!(w, b"time" | b"nice" | b"watch")
}

/// Programs of Windows, whose names are not case-sensitive (`Ipconfig` runs, a Unix
/// `Cat` does not).
pub fn windows(w: &[u8]) -> bool {
    matches!(
        w.strip_suffix(b".exe").unwrap_or(w),
        b"dir"
            | b"ipconfig"
            | b"tracert"
            | b"cmd"
            | b"ping"
            | b"net"
            | b"reg"
            | b"regedit"
            | b"certutil"
            | b"bitsadmin"
            | b"mshta"
            | b"rundll32"
            | b"wmic"
            | b"cscript"
            | b"wscript"
            | b"powershell"
            | b"pwsh"
            | b"iex"
            | b"iwr"
            | b"invoke-webrequest"
            | b"invoke-expression"
            | b"start-process"
            | b"systeminfo"
            | b"tasklist"
            | b"taskkill"
            | b"bcdboot"
            | b"schtasks"
            | b"vssadmin"
            | b"wevtutil"
            | b"msiexec"
            | b"regsvr32"
            | b"cmstp"
            | b"forfiles"
            | b"findstr"
            | b"icacls"
            | b"takeown"
            | b"netsh"
            | b"nltest"
            | b"echo"
            | b"type"
            | b"whoami"
            | b"hostname"
            | b"netstat"
            | b"nslookup"
            | b"ftp"
            | b"tftp"
            | b"telnet"
            | b"waitfor"
            | b"choice"
    )
}

/// An absolute path into a directory of programs: `/bin/x`, `/usr/bin/x`, `/sbin/x`.
pub fn bin_path(w: &[u8]) -> bool {
    [
        &b"/bin/"[..],
        b"/usr/bin/",
        b"/sbin/",
        b"/usr/sbin/",
        b"/usr/local/bin/",
    ]
    .iter()
    .any(|p| w.starts_with(p) && w.len() > p.len())
}

#[cfg(test)]
mod tests {
    use super::{STRONG, TOOLS, WEAK, strong, weak};

    /// The shape filter lets every program of both lists through.
    #[test]
    fn every_program_passes_the_shape_filter() {
        for p in STRONG {
            assert!(p.len() > 24 || strong(p.as_bytes()), "{p}");
        }
        for p in WEAK.iter().chain(TOOLS) {
            assert!(p.len() > 24 || weak(p.as_bytes()), "{p}");
        }
        assert!(strong(b"/usr/bin/wget"));
        assert!(!strong(b"caridad"));
    }
}
