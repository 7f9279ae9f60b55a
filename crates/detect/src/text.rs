//! Line-oriented protocols: SSH banners and SMTP.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::{Check, detail, printable, yes};

fn first_line(b: &[u8]) -> Option<&[u8]> {
    let i = b.iter().position(|&c| c == b'\n')?;
    Some(b[..i].strip_suffix(b"\r").unwrap_or(&b[..i]))
}

/// `SSH-2.0-software` (or 1.99 / 1.5), from either side.
pub fn ssh_banner(b: &[u8]) -> Check {
    const P: &[u8] = b"SSH-";
    if b.len() < 8 {
        let n = b.len().min(4);
        return if b[..n] == P[..n] {
            Check::More
        } else {
            Check::No
        };
    }
    let version_ok =
        b.starts_with(b"SSH-2.0-") || b.starts_with(b"SSH-1.99-") || b.starts_with(b"SSH-1.5-");
    if !version_ok {
        return Check::No;
    }
    match first_line(b) {
        Some(l) if l.len() <= 255 && printable(l) => yes(
            AppProtocol::Ssh,
            detail([("banner", json!(String::from_utf8_lossy(l)))]),
        ),
        Some(_) => Check::No,
        None if b.len() <= 255 && printable(b) => Check::More,
        None => Check::No,
    }
}

/// The server's `220` greeting naming (E)SMTP. A `220` without it (FTP says 220 too)
/// waits for the client's first command.
pub fn smtp_greeting(b: &[u8]) -> Check {
    if b.len() < 4 {
        return if b"220 ".starts_with(b) || b"220-".starts_with(b) {
            Check::More
        } else {
            Check::No
        };
    }
    if !(b.starts_with(b"220 ") || b.starts_with(b"220-")) {
        return Check::No;
    }
    match first_line(b) {
        Some(l) if printable(l) => {
            let up = String::from_utf8_lossy(l).to_ascii_uppercase();
            if up.contains("SMTP") || up.contains("POSTFIX") || up.contains("EXIM") {
                yes(
                    AppProtocol::Smtp,
                    detail([("greeting", json!(String::from_utf8_lossy(l)))]),
                )
            } else {
                Check::More
            }
        }
        Some(_) => Check::No,
        None => Check::More,
    }
}

/// The client's SMTP commands: EHLO/HELO, or (mid-connection) the envelope.
pub fn smtp_client(b: &[u8]) -> Check {
    const CMDS: &[&[u8]] = &[b"EHLO ", b"HELO ", b"MAIL FROM:", b"RCPT TO:", b"STARTTLS"];
    let Some(l) = first_line(b) else {
        let up = b.to_ascii_uppercase();
        let prefix = b.len() < 10 && CMDS.iter().any(|c| c.starts_with(&up) || up.starts_with(c));
        return if prefix && printable(b) {
            Check::More
        } else {
            Check::No
        };
    };
    let up = l.to_ascii_uppercase();
    if printable(l) && CMDS.iter().any(|c| up.starts_with(c)) {
        let cmd = String::from_utf8_lossy(
            &up[..up
                .iter()
                .position(|&c| c == b' ' || c == b':')
                .unwrap_or(up.len())],
        )
        .into_owned();
        yes(AppProtocol::Smtp, detail([("command", json!(cmd))]))
    } else {
        Check::No
    }
}
