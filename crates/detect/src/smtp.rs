//! SMTP: the server's 220 (or 554) greeting naming (E)SMTP (server speaks first), the client's
//! EHLO / HELO, and mid-connection envelope commands.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{detail, first_line, lossy, printable, yes};

/// RFC 5321 limits a reply line to 512 bytes.
const MAX_LINE: usize = 512;

/// Greetings: `220`, or `554` from a server that refuses service (RFC 5321 3.1).
const GREETINGS: [&[u8]; 4] = [b"220 ", b"220-", b"554 ", b"554-"];

/// The greeting. FTP and others greet with 220 too, so it must name SMTP (or a mail
/// server); a bare 220 waits for the client's EHLO.
pub(crate) fn greeting(b: &[u8]) -> Check {
    if b.len() < 4 {
        return if GREETINGS.iter().any(|g| g.starts_with(b)) {
            Check::More
        } else {
            Check::No
        };
    }
    if !GREETINGS.iter().any(|g| b.starts_with(g)) {
        return Check::No;
    }
    match first_line(b) {
        Some(l) if printable(l) && l.len() <= MAX_LINE => {
            let up = l.to_ascii_uppercase();
            let names = [&b"SMTP"[..], b"POSTFIX", b"EXIM", b"SENDMAIL", b"MAIL"];
            if names.iter().any(|n| up.windows(n.len()).any(|w| w == *n)) {
                yes(AppProtocol::Smtp, detail([("greeting", lossy(l))]))
            } else {
                Check::More
            }
        }
        Some(_) => Check::No,
        None if b.len() <= MAX_LINE && printable(b) => Check::More,
        None => Check::No,
    }
}

fn command(b: &[u8], commands: &[&[u8]]) -> Check {
    let Some(l) = first_line(b) else {
        let up = b.to_ascii_uppercase();
        let prefix = b.len() < MAX_LINE
            && printable(b)
            && commands
                .iter()
                .any(|c| c.starts_with(&up) || up.starts_with(c));
        return if prefix { Check::More } else { Check::No };
    };
    let up = l.to_ascii_uppercase();
    let Some(cmd) = commands.iter().find(|c| up.starts_with(c)) else {
        return Check::No;
    };
    if !printable(l) || l.len() > MAX_LINE {
        return Check::No;
    }
    let name = String::from_utf8_lossy(cmd);
    let name = name.trim_end_matches([' ', ':']);
    let arg = String::from_utf8_lossy(&l[cmd.len()..]).trim().to_string();
    yes(
        AppProtocol::Smtp,
        detail([("command", json!(name)), ("argument", json!(arg))]),
    )
}

/// The client's EHLO / HELO with a domain or address literal.
pub(crate) fn hello(b: &[u8]) -> Check {
    command(b, &[b"EHLO ", b"HELO "])
}

/// Mid-connection: the envelope.
pub(crate) fn envelope(b: &[u8]) -> Check {
    command(b, &[b"MAIL FROM:", b"RCPT TO:", b"STARTTLS", b"DATA"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_alone_is_enough() {
        match greeting(b"220 smtp.gmail.com ESMTP s3sm1234567qaj.1 - gsmtp\r\n") {
            Check::Yes(_, d) => assert!(d["greeting"].as_str().unwrap().contains("ESMTP")),
            c => panic!("{c:?}"),
        }
        // FTP's greeting does not name SMTP: wait for the client.
        assert_eq!(greeting(b"220 (vsFTPd 3.0.3)\r\n"), Check::More);
        // A server refusing service greets with 554 instead.
        assert!(matches!(
            greeting(b"554 5.7.1 mx.example.com ESMTP not accepting messages\r\n"),
            Check::Yes(..)
        ));
        assert_eq!(greeting(b"55"), Check::More);
    }

    #[test]
    fn client_commands() {
        match hello(b"EHLO client.example.org\r\n") {
            Check::Yes(_, d) => {
                assert_eq!(d["command"], "EHLO");
                assert_eq!(d["argument"], "client.example.org");
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(hello(b"EHL"), Check::More);
        assert!(matches!(envelope(b"MAIL FROM:<a@b.c>\r\n"), Check::Yes(..)));
    }

    #[test]
    fn not_smtp() {
        assert_eq!(greeting(b"230 Login successful.\r\n"), Check::No);
        assert_eq!(hello(b"USER anonymous\r\n"), Check::No);
        assert_eq!(hello(b"EHLO \x01\x02\r\n"), Check::No);
    }
}

/// What a named SMTP session's client bytes since show of STARTTLS (RFC 3207).
#[derive(Debug, PartialEq)]
pub(crate) enum StartTls {
    /// Not yet known: read on (within a bound).
    More,
    /// The client sent STARTTLS and then this TLS ClientHello.
    Upgraded(crate::tls::ClientHello),
    /// Nothing to learn (STARTTLS followed by no TLS).
    Not,
}

/// The client's bytes since the session was named, read for a `STARTTLS` command line
/// and the TLS ClientHello that follows it once the server said go ahead.
pub(crate) fn starttls(client: &[u8]) -> StartTls {
    let mut at = 0;
    for line in client.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            return StartTls::More;
        }
        at += line.len();
        if line.trim_ascii().eq_ignore_ascii_case(b"STARTTLS") {
            let rest = &client[at..];
            if rest.is_empty() {
                return StartTls::More;
            }
            return match crate::tls::client_hello(rest) {
                Ok(h) => StartTls::Upgraded(h),
                Err(crate::ParseError::Incomplete) => StartTls::More,
                Err(_) => StartTls::Not,
            };
        }
    }
    StartTls::More
}

#[cfg(test)]
mod starttls_tests {
    use super::*;

    #[test]
    fn the_hello_after_starttls_is_read() {
        let hello = crate::tls::tests::hello("mail.example.com");
        let mut b = b"EHLO client.example\r\nSTARTTLS\r\n".to_vec();
        assert_eq!(starttls(&b), StartTls::More);
        b.extend_from_slice(&hello[..10]);
        assert_eq!(starttls(&b), StartTls::More);
        b.extend_from_slice(&hello[10..]);
        let StartTls::Upgraded(h) = starttls(&b) else {
            panic!("{:?}", starttls(&b));
        };
        assert_eq!(h.sni.as_deref(), Some("mail.example.com"));
        // STARTTLS then more commands: the server refused it, no TLS.
        assert_eq!(starttls(b"EHLO x\r\nSTARTTLS\r\nQUIT\r\n"), StartTls::Not);
        assert_eq!(starttls(b"EHLO x\r\nMAIL FROM:<a@b>\r\n"), StartTls::More);
    }
}
