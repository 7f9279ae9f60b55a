//! Mail command injection: a value that a webmail or mailer application writes into
//! its SMTP, IMAP or POP3 session (`RCPT TO:<` + the value + `>`) and that carries a
//! line break of the protocol's own (CR LF) followed by a command line of the
//! protocol, which the server then runs as the application's (OWASP "IMAP/SMTP
//! injection"; ModSecurity CRS 932300-932321).
//!
//! Only lines after CR LF count: a bare LF ends no command line in these protocols'
//! strict servers, and prose in a text area keeps its own words (`quit`, `help`,
//! `list 3 things`) on lines of its own. So each command is read in its protocol's
//! shape: SMTP's paths in angle brackets, POP3's message numbers, IMAP's tag before
//! the command and its syntax after it (`(\Seen)`, `{310}`, `+FLAGS`, `INBOX`).
//! Commands that are also English words count bare only in capitals, as the RFCs
//! write them.

/// The protocol and command of the first injected command line, if any.
pub(super) fn injected(v: &[u8]) -> Option<String> {
    memchr::memchr_iter(b'\r', v).find_map(|i| {
        let rest = v[i + 1..].strip_prefix(b"\n")?;
        let end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        command(&rest[..end])
    })
}

fn command(line: &[u8]) -> Option<String> {
    let mut words = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
    let first = words.next()?;
    let args: Vec<&[u8]> = words.collect();
    smtp(line, first, &args)
        .or_else(|| pop3(first, &args))
        .or_else(|| imap(first, &args))
}

fn upper(w: &[u8]) -> String {
    String::from_utf8_lossy(w).to_ascii_uppercase()
}

/// SMTP (RFC 5321): `MAIL FROM:<path>`, `RCPT TO:<path>`, the bare verbs, `HELO`/`EHLO`
/// with a domain, `VRFY`/`EXPN`, `HELP`, `AUTH` with a mechanism.
fn smtp(line: &[u8], first: &[u8], args: &[&[u8]]) -> Option<String> {
    for verb in [&b"MAIL FROM:"[..], b"RCPT TO:"] {
        if let Some(path) = crate::decode::strip_prefix_ci(line, verb)
            && path.trim_ascii_start().starts_with(b"<")
        {
            return Some(format!("smtp {}", upper(&verb[..verb.len() - 1])));
        }
    }
    let bare = args.is_empty();
    let hit = match first {
        b"DATA" | b"QUIT" | b"RSET" | b"NOOP" | b"STARTTLS" | b"TURN" => bare,
        b"HELP" => args.len() <= 1,
        b"AUTH" => {
            !args.is_empty()
                && args.len() <= 2
                && args[0]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
        }
        _ => {
            let f = first.to_ascii_uppercase();
            match f.as_slice() {
                b"HELO" | b"EHLO" | b"VRFY" | b"EXPN" => args.len() == 1,
                b"BDAT" => args.first().is_some_and(|a| digits(a)),
                _ => false,
            }
        }
    };
    hit.then(|| format!("smtp {}", upper(first)))
}

/// POP3 (RFC 1939): message numbers after `RETR`, `DELE`, `LIST`, `TOP`, `UIDL`;
/// `APOP` with its digest; `USER`, `PASS`, `STAT`, `CAPA` in capitals.
fn pop3(first: &[u8], args: &[&[u8]]) -> Option<String> {
    let f = first.to_ascii_uppercase();
    let hit = match f.as_slice() {
        b"RETR" | b"DELE" => args.len() == 1 && digits(args[0]),
        b"LIST" | b"UIDL" => {
            args.len() == 1 && digits(args[0]) || args.is_empty() && first == b"UIDL"
        }
        b"TOP" => args.len() == 2 && args.iter().all(|a| digits(a)),
        b"APOP" => {
            args.len() == 2 && args[1].len() == 32 && args[1].iter().all(u8::is_ascii_hexdigit)
        }
        b"USER" | b"PASS" => first == f.as_slice() && args.len() == 1,
        b"STAT" | b"CAPA" => first == f.as_slice() && args.is_empty(),
        _ => false,
    };
    hit.then(|| format!("pop3 {}", upper(first)))
}

const IMAP: &[&str] = &[
    "LOGIN",
    "AUTHENTICATE",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "CAPABILITY",
    "LOGOUT",
    "NOOP",
    "IDLE",
    "NAMESPACE",
    "ENABLE",
    "GETQUOTA",
    "GETACL",
    "SETACL",
];

/// IMAP (RFC 3501): a tag, a command, and the command's syntax. The tag starts with a
/// letter (`A1`, `a001`, `d`); one with a digit is a client's counter, and a tag
/// without one needs IMAP's syntax in the arguments (`d store 2 +FLAGS (\Deleted)`), so
/// that prose (`a list of things`) is left alone.
fn imap(tag: &[u8], args: &[&[u8]]) -> Option<String> {
    let (cmd, rest) = args.split_first()?;
    let tag_ok = tag.len() <= 10
        && tag.first().is_some_and(u8::is_ascii_alphabetic)
        && tag.iter().all(u8::is_ascii_alphanumeric);
    let c = upper(cmd);
    if !tag_ok || !IMAP.contains(&c.as_str()) {
        return None;
    }
    let counter = tag.iter().any(u8::is_ascii_digit);
    let syntax = rest.iter().any(|a| {
        a.starts_with(b"(\\")
            || a.eq_ignore_ascii_case(b"INBOX")
            || a.len() > 6 && a[..6].eq_ignore_ascii_case(b"\"INBOX")
            || a.len() > 2 && a.starts_with(b"{") && a.ends_with(b"}") && digits(&a[1..a.len() - 1])
            || matches!(a.first(), Some(b'+' | b'-')) && a[1..].eq_ignore_ascii_case(b"FLAGS")
            || a.contains(&b':')
                && a.iter()
                    .all(|&b| b.is_ascii_digit() || b == b':' || b == b',' || b == b'*')
    });
    (counter || syntax).then(|| format!("imap {c}"))
}

fn digits(a: &[u8]) -> bool {
    !a.is_empty() && a.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::injected;

    #[test]
    fn mail_commands_after_crlf() {
        for (v, want) in [
            ("\r\nMAIL FROM:<a@b.com>", "smtp MAIL FROM"),
            ("x@y.org\r\nRCPT TO: <Postmaster>", "smtp RCPT TO"),
            ("\r\nDATA", "smtp DATA"),
            ("\r\nQUIT", "smtp QUIT"),
            ("\r\nHELP Postmaster", "smtp HELP"),
            ("\r\nEHLO attacker.example", "smtp EHLO"),
            (
                "\r\nAUTH corerulest dGhpc2lzIWF0ZXN0cGFzc3dvcmQ=",
                "smtp AUTH",
            ),
            ("\r\nRETR 123", "pop3 RETR"),
            ("\r\nlist 3", "pop3 LIST"),
            ("\r\nTOP 1 10", "pop3 TOP"),
            (
                "\r\nA003 APPEND saved-messages (\\Seen) {310}\r\n Date: x",
                "imap APPEND",
            ),
            ("\r\na001 authenticate PLAIN\r\n\n", "imap AUTHENTICATE"),
            ("\r\na001 STATUS INBOX (MESSAGES)\n", "imap STATUS"),
            ("\r\na001 uid store 231:233\r\n\n", "imap UID"),
            ("\r\nA1 list \"INBOX/\" \"*\"\n", "imap LIST"),
            ("\r\nd store 2 +FLAGS (\\Deleted)\n", "imap STORE"),
            (
                "\r\nZ001 SEARCH CHARSET WINDOWS-1252 DELETED SINCE 1-Feb-1994",
                "imap SEARCH",
            ),
            ("\r\na001 EXAMINE INBOX", "imap EXAMINE"),
        ] {
            assert_eq!(injected(v.as_bytes()).as_deref(), Some(want), "{v:?}");
        }
    }

    #[test]
    fn prose_and_bare_line_feeds() {
        for v in [
            "Hello! We finally received this mail from:<test@coreruleset.org>, ok.\n",
            "Hello! World.\ndata not found.\n",
            "Hey please do not quit\n",
            "\nQUIT",
            "\r\nquit",
            "\r\nHelp me with this",
            "\r\nThis text is a way of list 3 things",
            "\r\nlist 3 things",
            "\r\nJust to remind you that I need to copy those documents",
            "\r\nWe need the list \"ASAP\"",
            "\r\nLet's go to the store (sale time!)",
            "\r\na list of things",
            "\r\nI select INBOXES",
            "\r\n1 Select the file",
            "\r\nUser name here",
            "\r\nMail from: John",
            "Dear team,\r\n\r\nThanks,\r\nAnna",
        ] {
            assert_eq!(injected(v.as_bytes()), None, "{v:?}");
        }
    }
}
