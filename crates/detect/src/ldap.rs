//! LDAP: an LDAPMessage (BER: SEQUENCE { messageID INTEGER, protocolOp [APPLICATION n]
//! ... }) with lengths that nest.
//!
//! Hand-written: `ldap3_proto` decodes whole messages; detection judges the envelope from
//! a prefix, which needs only the BER lengths and the operation tag.

use bulkhead_policy::l7::AppProtocol;
use serde_json::json;

use crate::Check;
use crate::wire::{detail, yes};

/// A BER length at `at`: Some((length, index after it)); None if malformed. `Err` when
/// the bytes end inside it.
fn ber_len(b: &[u8], at: usize) -> Result<Option<(usize, usize)>, ()> {
    let first = *b.get(at).ok_or(())?;
    if first < 0x80 {
        return Ok(Some((usize::from(first), at + 1)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Ok(None);
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len << 8 | usize::from(*b.get(at + 1 + i).ok_or(())?);
    }
    Ok(Some((len, at + 1 + n)))
}

/// An operation's name, and whether a server sends it (responses, and the intermediate
/// and unsolicited notifications), not a client.
fn operation(tag: u8) -> Option<(&'static str, bool)> {
    let response = matches!(
        tag,
        0x61 | 0x64 | 0x65 | 0x67 | 0x69 | 0x6b | 0x6d | 0x6f | 0x73 | 0x78 | 0x79
    );
    Some((operation_name(tag)?, response))
}

fn operation_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        0x60 => "bind",
        0x61 => "bindResponse",
        0x42 => "unbind",
        0x63 => "search",
        0x64 => "searchResEntry",
        0x65 => "searchResDone",
        0x73 => "searchResRef",
        0x66 => "modify",
        0x67 => "modifyResponse",
        0x68 => "add",
        0x69 => "addResponse",
        0x4a => "delete",
        0x6b => "delResponse",
        0x6c => "modifyDN",
        0x6d => "modDNResponse",
        0x6e => "compare",
        0x6f => "compareResponse",
        0x50 => "abandon",
        0x77 => "extended",
        0x78 => "extendedResponse",
        0x79 => "intermediateResponse",
        _ => return None,
    })
}

/// Messages are far smaller; a larger length is not LDAP.
const MAX_MESSAGE: usize = 1 << 24;

/// An LDAPMessage holding a request (a client's).
pub(crate) fn request(b: &[u8]) -> Check {
    message(b, false)
}

/// An LDAPMessage holding a response (a server's).
pub(crate) fn response(b: &[u8]) -> Check {
    message(b, true)
}

/// Connectionless LDAP (CLDAP, RFC 1798): one whole LDAPMessage per datagram.
pub(crate) fn datagram_request(b: &[u8]) -> Check {
    whole(b, false)
}

/// A CLDAP answer (a search's entry or result).
pub(crate) fn datagram_response(b: &[u8]) -> Check {
    whole(b, true)
}

/// The datagram holds whole LDAPMessages and nothing else (a server sends a search's
/// entry and its result in one), the first a request or a response as asked.
fn whole(b: &[u8], from_server: bool) -> Check {
    let mut at = 0;
    let exact = loop {
        if at == b.len() {
            break at > 0;
        }
        match (b[at], ber_len(b, at + 1)) {
            (0x30, Ok(Some((len, body)))) if body + len <= b.len() => at = body + len,
            _ => break false,
        }
    };
    match message(b, from_server) {
        c @ Check::Yes(..) if exact => c,
        _ => Check::No,
    }
}

fn message(b: &[u8], from_server: bool) -> Check {
    macro_rules! len_at {
        ($at:expr) => {
            match ber_len(b, $at) {
                Err(()) => return Check::More,
                Ok(None) => return Check::No,
                Ok(Some(l)) => l,
            }
        };
    }
    match b.first() {
        None => return Check::More,
        Some(0x30) => {}
        Some(_) => return Check::No,
    }
    let (len, at) = len_at!(1);
    if !(5..=MAX_MESSAGE).contains(&len) {
        return Check::No;
    }
    // messageID: INTEGER of 1-4 bytes, non-negative.
    match b.get(at) {
        None => return Check::More,
        Some(0x02) => {}
        Some(_) => return Check::No,
    }
    let Some(&id_len) = b.get(at + 1) else {
        return Check::More;
    };
    if !(1..=4).contains(&id_len) {
        return Check::No;
    }
    let op_at = at + 2 + usize::from(id_len);
    if b.get(at + 2).is_some_and(|&c| c & 0x80 != 0) {
        return Check::No;
    }
    let Some(&op) = b.get(op_at) else {
        return Check::More;
    };
    let Some(name) = operation(op)
        .filter(|&(_, response)| response == from_server)
        .map(|(name, _)| name)
    else {
        return Check::No;
    };
    // The operation must fit inside the message.
    let (op_len, op_body) = len_at!(op_at + 1);
    if op_body + op_len > at + len {
        return Check::No;
    }
    yes(AppProtocol::Ldap, detail([("operation", json!(name))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_bind_and_its_response() {
        let bind = b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00";
        match request(bind) {
            Check::Yes(AppProtocol::Ldap, d) => assert_eq!(d["operation"], "bind"),
            c => panic!("{c:?}"),
        }
        for n in 0..7 {
            assert_eq!(request(&bind[..n]), Check::More, "{n}");
        }
        let ok = b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00";
        assert!(matches!(response(ok), Check::Yes(..)));
        // Each side sends its own operations only.
        assert_eq!(response(bind), Check::No);
        assert_eq!(request(ok), Check::No);
    }

    #[test]
    fn long_form_lengths() {
        let search = b"\x30\x84\x00\x00\x00\x2d\x02\x01\x02\x63\x84\x00\x00\x00\x24\x04\x00";
        assert!(matches!(request(search), Check::Yes(..)));
    }

    #[test]
    fn not_ldap() {
        for check in [request, response] {
            // Operation longer than the message.
            assert_eq!(check(b"\x30\x07\x02\x01\x01\x60\x20\x02\x01"), Check::No);
            // Unknown operation tag.
            assert_eq!(check(b"\x30\x0c\x02\x01\x01\x99\x07"), Check::No);
            // Negative message id.
            assert_eq!(check(b"\x30\x0c\x02\x01\xff\x60\x07"), Check::No);
            // Kerberos AS-REQ (APPLICATION 10), also DER.
            assert_eq!(check(b"\x6a\x81\xb0\x30\x81\xad"), Check::No);
        }
    }
}
