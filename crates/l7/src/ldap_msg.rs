//! LDAP messages (RFC 4511 section 4): the head of a client request, read up to the DN
//! it names, and the responses bulkhead writes itself.

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, LdapOp};

use crate::ber::{self, Ber};

/// A client message larger than this is refused and the connection closed. Real
/// requests are small; an add with a photo is a few hundred KiB.
pub const MAX_MESSAGE: usize = 1 << 20;

pub(crate) const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
const NOTICE_OF_DISCONNECTION: &[u8] = b"1.3.6.1.4.1.1466.20036";
const EXTENDED_RESPONSE: u8 = 0x78;
pub(crate) const INSUFFICIENT_ACCESS_RIGHTS: u8 = 50;
const PROTOCOL_ERROR: u8 = 2;

/// One client request's head, parsed.
#[derive(Debug)]
pub(crate) struct Head {
    /// Length of the whole message, header included.
    pub total: usize,
    /// The messageID's content bytes, echoed in a refusal.
    pub id: Vec<u8>,
    pub op: LdapOp,
    /// The tag of its response (None: it has none).
    pub response: Option<u8>,
    /// The DN it names (empty: none, or the root DSE), or an extended operation's OID.
    pub name: String,
    /// A ModifyDN's new DN: its new RDN under its new superior (or under the entry's
    /// own parent), where the entry moves to and is decided too.
    pub moved_to: Option<String>,
}

/// The operation of a request tag, its response tag (None: it has none), and how to
/// find its DN: `Some(n)` is the number of elements to skip inside the operation
/// before the DN; `None` means the operation's own content is the DN or is no DN.
fn request_op(tag: u8) -> Option<(LdapOp, Option<u8>, Option<usize>)> {
    Some(match tag {
        0x60 => (LdapOp::Bind, Some(0x61), Some(1)),
        0x42 => (LdapOp::Unbind, None, None),
        0x63 => (LdapOp::Search, Some(0x65), Some(0)),
        0x66 => (LdapOp::Modify, Some(0x67), Some(0)),
        0x68 => (LdapOp::Add, Some(0x69), Some(0)),
        0x4a => (LdapOp::Delete, Some(0x6b), None),
        0x6c => (LdapOp::ModifyDn, Some(0x6d), Some(0)),
        0x6e => (LdapOp::Compare, Some(0x6f), Some(0)),
        0x50 => (LdapOp::Abandon, None, None),
        0x77 => (LdapOp::Extended, Some(EXTENDED_RESPONSE), Some(0)),
        _ => return None,
    })
}

impl Head {
    /// The request as rules see it: the operation and the DN it names (an extended
    /// operation's OID is no DN).
    pub(crate) fn request(&self) -> L7Request {
        L7Request {
            app: AppProtocol::Ldap,
            detail: L7Detail::Ldap {
                operation: self.op,
                base_dn: (!self.name.is_empty() && self.op != LdapOp::Extended)
                    .then(|| self.name.clone()),
            },
        }
    }

    /// A ModifyDN as rules see where it moves the entry: the operation on the new DN.
    pub(crate) fn destination(&self) -> Option<L7Request> {
        Some(L7Request {
            app: AppProtocol::Ldap,
            detail: L7Detail::Ldap {
                operation: self.op,
                base_dn: Some(self.moved_to.clone()?),
            },
        })
    }

    /// Its refusal, as a directory server denies it: the operation's response with
    /// `insufficientAccessRights` (None: an abandon has no response).
    pub(crate) fn refusal(&self) -> Option<Vec<u8>> {
        let text = refusal_text(self.op, &self.name);
        let tag = self.response?;
        Some(message(
            &self.id,
            tag,
            &result(INSUFFICIENT_ACCESS_RIGHTS, &text, &[]),
        ))
    }
}

/// Parse the head of the request at the start of `b`.
pub(crate) fn parse_head(b: &[u8]) -> Result<Head, Ber> {
    let msg = ber::header(b, 0, usize::MAX)?;
    if msg.tag != 0x30 {
        return Err(Ber::Bad("not an LDAPMessage"));
    }
    if msg.end - msg.start > MAX_MESSAGE {
        return Err(Ber::Bad("message too large"));
    }
    let (id, at) = ber::content(b, msg.start, msg.end, 0x02)?;
    if !(1..=4).contains(&id.len()) || id[0] & 0x80 != 0 {
        return Err(Ber::Bad("bad messageID"));
    }
    let op = ber::header(b, at, msg.end)?;
    let (operation, response, skip) = request_op(op.tag).ok_or(Ber::Bad("not an LDAP request"))?;
    let name = match (operation, skip) {
        (LdapOp::Delete, _) => b.get(op.start..op.end).ok_or(Ber::More)?,
        (_, None) => &[][..],
        (_, Some(skip)) => {
            let mut at = op.start;
            for _ in 0..skip {
                at = ber::header(b, at, op.end)?.end;
            }
            let tag = if operation == LdapOp::Extended {
                0x80
            } else {
                0x04
            };
            ber::content(b, at, op.end, tag)?.0
        }
    };
    let name = String::from_utf8_lossy(name).into_owned();
    let moved_to = match operation {
        LdapOp::ModifyDn => Some(new_dn(b, op.start, op.end, &name)?),
        _ => None,
    };
    Ok(Head {
        total: msg.end,
        id: id.to_vec(),
        op: operation,
        response,
        name,
        moved_to,
    })
}

/// A ModifyDN's new DN (RFC 4511 4.9: entry, newrdn, deleteoldrdn, [0] newSuperior).
fn new_dn(b: &[u8], start: usize, end: usize, entry: &str) -> Result<String, Ber> {
    let at = ber::header(b, start, end)?.end;
    let (rdn, at) = ber::content(b, at, end, 0x04)?;
    let at = ber::header(b, at, end)?.end;
    let rdn = String::from_utf8_lossy(rdn);
    let superior = match ber::content(b, at, end, 0x80) {
        Ok((s, _)) => String::from_utf8_lossy(s).into_owned(),
        Err(Ber::More) => return Err(Ber::More),
        Err(_) => parent(entry).to_string(),
    };
    Ok(if superior.is_empty() {
        rdn.into_owned()
    } else {
        format!("{rdn},{superior}")
    })
}

/// A DN's parent: what follows its first RDN (a comma escaped with `\` is part of the
/// RDN, RFC 4514 2.4).
fn parent(dn: &str) -> &str {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | ';' => return dn[i + 1..].trim_start(),
            _ => {}
        }
    }
    ""
}

/// An LDAPMessage with `id` and an operation `tag` holding `content`.
pub(crate) fn message(id: &[u8], tag: u8, content: &[u8]) -> Vec<u8> {
    let mut inner = ber::tlv(0x02, id);
    ber::put(&mut inner, tag, content);
    ber::tlv(0x30, &inner)
}

/// An LDAPResult: resultCode, empty matchedDN, diagnosticMessage (and more fields after).
pub(crate) fn result(code: u8, text: &str, more: &[u8]) -> Vec<u8> {
    let mut r = ber::tlv(0x0a, &[code]);
    ber::put(&mut r, 0x04, b"");
    ber::put(&mut r, 0x04, text.as_bytes());
    r.extend_from_slice(more);
    r
}

/// The unsolicited notice (RFC 4511 4.4.1) that the connection is being closed.
pub(crate) fn notice_of_disconnection(why: &str) -> Vec<u8> {
    let text = format!("bulkhead: {why}");
    let name = ber::tlv(0x8a, NOTICE_OF_DISCONNECTION);
    message(
        &[0],
        EXTENDED_RESPONSE,
        &result(PROTOCOL_ERROR, &text, &name),
    )
}

/// The text of a refusal: the DN (or OID) as the client sent it, cut to a readable size.
pub(crate) fn refusal_text(op: LdapOp, name: &str) -> String {
    let mut shown: String = name.chars().filter(|c| !c.is_control()).take(256).collect();
    if shown.is_empty() {
        shown = "\"\"".into();
    }
    if op == LdapOp::Extended {
        format!("bulkhead: extended operation {shown} is not allowed by policy")
    } else {
        format!("bulkhead: {op} on {shown} is not allowed by policy")
    }
}

/// Is the server message at the start of `b` the answer to the request `id` that asked
/// for StartTLS? Some(true) if the server accepted it. `b` holds at least its first
/// bytes up to the resultCode.
pub(crate) fn start_tls_answer(b: &[u8], id: &[u8]) -> Option<bool> {
    let msg = ber::header(b, 0, usize::MAX).ok()?;
    let (got, at) = ber::content(b, msg.start, msg.end, 0x02).ok()?;
    let op = ber::header(b, at, msg.end).ok()?;
    if op.tag != EXTENDED_RESPONSE || got != id {
        return None;
    }
    Some(ber::content(b, op.start, op.end, 0x0a).is_ok_and(|(code, _)| code == [0]))
}
