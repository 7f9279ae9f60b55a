//! The ways a server may read a query string that the proxy cannot tell apart: its
//! settings, its flavour and version, the connection's character set.

use memchr::memmem;

use super::{Ctx, Dialect, is_space};

/// A version no MySQL or MariaDB server has reached: comments for a later one never run
/// (mariadb-dump's `/*M!999999\- enable the sandbox mode */` is a comment everywhere).
pub(super) const NEWEST: u32 = 199_999;
/// Distinct versions in MySQL executable comments: each can be a reading of its own.
pub(super) const MAX_VERSIONS: usize = 16;

/// One way the server may read the text.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reading {
    /// Backslash escapes in '...' (PostgreSQL E'...' always has them).
    pub(super) escapes: bool,
    /// MySQL "..." strings have backslash escapes (no: ANSI_QUOTES, or none at all).
    pub(super) dquote: bool,
    pub(super) mb: Option<Mb>,
    pub(super) exec: Exec,
}

/// MySQL multibyte character sets where a character's second byte may be `\` or `` ` ``:
/// there it is part of the character (and `0x81 0x5C` does not escape the next quote).
#[derive(Clone, Copy, Debug)]
pub(super) enum Mb {
    Sjis,
    Gbk,
    Big5,
    Gb18030,
}

impl Mb {
    /// The length of the multibyte character starting at `b[i]`, if one does.
    pub(super) fn char_len(self, b: &[u8], i: usize) -> Option<usize> {
        let (c, d) = (b[i], *b.get(i + 1)?);
        let (lead, trail) = match self {
            Mb::Sjis => (
                matches!(c, 0x81..=0x9F | 0xE0..=0xFC),
                matches!(d, 0x40..=0x7E | 0x80..=0xFC),
            ),
            Mb::Big5 => (
                matches!(c, 0xA1..=0xF9),
                matches!(d, 0x40..=0x7E | 0xA1..=0xFE),
            ),
            Mb::Gbk | Mb::Gb18030 => (
                matches!(c, 0x81..=0xFE),
                matches!(d, 0x40..=0x7E | 0x80..=0xFE),
            ),
        };
        let four = matches!(self, Mb::Gb18030)
            && lead
            && d.is_ascii_digit()
            && b.get(i + 2).is_some_and(|c| matches!(c, 0x81..=0xFE))
            && b.get(i + 3).is_some_and(u8::is_ascii_digit);
        if four {
            Some(4)
        } else {
            (lead && trail).then_some(2)
        }
    }
}

/// A MySQL server, as far as its executable comments (`/*!NNNNN ... */`) go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Server {
    /// MySQL to 8.0: a 5-digit version; `/*M!` is a plain comment.
    Mysql,
    /// Later MySQL also reads 6 digits when a space follows them.
    MysqlSix,
    /// MariaDB: 5 or 6 digits; `/*!` with a MySQL 5.7+ version (50700..=99999) never
    /// runs, `/*M!` does.
    Mariadb,
    /// MariaDB with Galera, where `/*!99997` runs as well.
    Galera,
}

/// Which of the text's executable comments run: the server and its version.
#[derive(Clone, Copy, Debug)]
pub(super) struct Exec {
    server: Server,
    version: u32,
}

/// How a reading takes a MySQL `/*!` or `/*M!` comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Take {
    /// Its content runs; the marker is this long.
    Code(usize),
    /// A versioned comment the server skips, one level of `/* */` allowed inside.
    Skip,
    /// A plain comment.
    Plain,
}

/// `/*!` or `/*M!` at `b[i..]`: whether MariaDB's, and the marker's length.
pub(super) fn exec_marker(b: &[u8], i: usize) -> Option<(bool, usize)> {
    let r = b.get(i + 2..)?;
    if !b[i..].starts_with(b"/*") {
        None
    } else if r.starts_with(b"!") {
        Some((false, 3))
    } else if r.starts_with(b"M!") {
        Some((true, 4))
    } else {
        None
    }
}

pub(super) fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

impl Exec {
    pub(super) fn take(self, b: &[u8], i: usize) -> Take {
        let Some((maria, m)) = exec_marker(b, i) else {
            return Take::Plain;
        };
        let mysql = matches!(self.server, Server::Mysql | Server::MysqlSix);
        if maria && mysql {
            return Take::Plain;
        }
        let v = &b[i + m..];
        let digits = v.iter().take(6).take_while(|c| c.is_ascii_digit()).count();
        if digits < 5 {
            // Not a version: `/*!` and MariaDB's `/*M!` always run.
            return Take::Code(m);
        }
        let six = digits == 6
            && match self.server {
                Server::Mysql => false,
                Server::MysqlSix => v.get(6).is_some_and(|c| is_space(*c)),
                Server::Mariadb | Server::Galera => true,
            };
        let n = if six { 6 } else { 5 };
        let version = number(&v[..n]);
        let runs = version <= self.version
            && (mysql || maria || !(50700..=99999).contains(&version))
            || self.server == Server::Galera && version == 99997;
        if runs { Take::Code(m + n) } else { Take::Skip }
    }
}

/// Every version an executable comment of `b` names, read either way (5 or 6 digits).
fn versions(b: &[u8]) -> Vec<u32> {
    let mut v: Vec<u32> = memmem::find_iter(b, b"/*")
        .filter_map(|i| {
            let (_, m) = exec_marker(b, i)?;
            let d = &b[i + m..];
            let n = d.iter().take(6).take_while(|c| c.is_ascii_digit()).count();
            (n >= 5).then(|| [number(&d[..5]), number(&d[..n])])
        })
        .flatten()
        .filter(|&v| v <= NEWEST)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The readings of executable comments: every server at each version that can matter.
pub(super) fn execs(b: &[u8], d: Dialect, ctx: &mut Ctx) -> Vec<Exec> {
    let none = Exec {
        server: Server::Mysql,
        version: 0,
    };
    let plain = d == Dialect::Postgres
        || memmem::find(b, b"/*!").is_none() && memmem::find(b, b"/*M!").is_none();
    if plain {
        return vec![none];
    }
    // The newest first: the first reading runs every comment it can.
    let mut at = versions(b);
    at.reverse();
    at.push(0);
    if at.len() > MAX_VERSIONS {
        ctx.unreadable = true;
        return vec![none];
    }
    let servers = [
        Server::Mysql,
        Server::MysqlSix,
        Server::Mariadb,
        Server::Galera,
    ];
    servers
        .into_iter()
        .flat_map(|server| at.iter().map(move |&version| Exec { server, version }))
        .collect()
}

/// The readings of quotes: backslash escapes in '...' and (MySQL) "..." or not. Without
/// a backslash they change nothing.
pub(super) fn quotes(b: &[u8], d: Dialect) -> &'static [(bool, bool)] {
    match (d, b.contains(&b'\\')) {
        (Dialect::Postgres, false) => &[(false, false)],
        (Dialect::Postgres, true) => &[(false, false), (true, false)],
        (Dialect::Mysql, false) => &[(true, true)],
        // Both, ANSI_QUOTES, NO_BACKSLASH_ESCAPES.
        (Dialect::Mysql, true) => &[(true, true), (true, false), (false, false)],
    }
}

/// The multibyte character sets to read MySQL text in: only where a byte that may lead
/// a character is followed by `\` or `` ` `` do they read it otherwise.
pub(super) fn mbs(b: &[u8], d: Dialect) -> &'static [Option<Mb>] {
    let trail = d == Dialect::Mysql
        && b.windows(2)
            .any(|w| w[0] >= 0x81 && matches!(w[1], b'\\' | b'`'));
    if trail {
        &[
            None,
            Some(Mb::Sjis),
            Some(Mb::Gbk),
            Some(Mb::Big5),
            Some(Mb::Gb18030),
        ]
    } else {
        &[None]
    }
}
