//! Datagrams (UDP): what one datagram asks, and the protocol's own refusal.
//!
//! Over UDP every datagram is a whole request, so there is no session: the proxy reads
//! each one on its own. Its protocol comes from the bytes (`bulkhead-detect`'s datagram
//! checks, never the port); DNS queries are read to their name and connectionless LDAP
//! (CLDAP, the domain controller locator's searches) to its operation and DN, the fields
//! rules look at; any other protocol is known by name only.

use bulkhead_detect::{Detection, Detector, Dir};
use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request};

use crate::dns::{dns_refused, dns_request};
use crate::ldap_msg::parse_head;

/// What one datagram from a client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// Its protocol (None: not one bulkhead can name, or not a request).
    pub app: Option<AppProtocol>,
    /// The request as rules see it, with the fields bulkhead reads for its protocol
    /// (`detail` is `None` for a protocol whose requests are not read).
    pub request: Option<L7Request>,
}

impl Asked {
    /// Does the request carry what rules on its protocol's requests look at?
    pub fn is_read(&self) -> bool {
        self.request
            .as_ref()
            .is_some_and(|r| r.detail != L7Detail::None)
    }
}

/// Reads a datagram a client sent.
pub fn read(datagram: &[u8]) -> Asked {
    let mut d = Detector::datagrams();
    let app = match d.feed(Dir::ToServer, datagram) {
        // An answer sent by the client side is no request of that protocol.
        Detection::Known { app, .. } if d.requester() != Some(Dir::ToClient) => Some(app),
        _ => None,
    };
    let request = match app {
        Some(AppProtocol::Dns) => dns_request(datagram),
        Some(AppProtocol::Ldap) => parse_head(datagram).ok().map(|h| h.request()),
        Some(app) => Some(L7Request {
            app,
            detail: L7Detail::None,
        }),
        None => None,
    };
    Asked { app, request }
}

/// The protocol's own answer to a refused request, if it has one: DNS `REFUSED`, and
/// for CLDAP the operation's response with `insufficientAccessRights`, as a directory
/// server denies it. None: the datagram is dropped unanswered.
pub fn refusal(datagram: &[u8], asked: &Asked) -> Option<Vec<u8>> {
    match asked.request.as_ref()?.app {
        AppProtocol::Dns => dns_refused(datagram),
        AppProtocol::Ldap => parse_head(datagram).ok()?.refusal(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_policy::l7::LdapOp;

    fn memcached(command: &str) -> Vec<u8> {
        let mut d = vec![0, 7, 0, 0, 0, 1, 0, 0];
        d.extend(command.as_bytes());
        d
    }

    fn dns(name: &str, response: bool) -> Vec<u8> {
        let mut d = vec![
            0x12,
            0x34,
            if response { 0x81 } else { 1 },
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        for l in name.split('.') {
            d.push(l.len() as u8);
            d.extend(l.as_bytes());
        }
        d.extend([0, 0, 1, 0, 1]);
        d
    }

    /// A CLDAP search as Active Directory's locator sends it: base "", scope base,
    /// filter (objectClass=*), no attributes.
    fn cldap_search(base: &str) -> Vec<u8> {
        let mut op = vec![0x04, base.len() as u8];
        op.extend(base.as_bytes());
        op.extend([0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0]);
        op.extend([0x87, 11]);
        op.extend(b"objectClass");
        op.extend([0x30, 0]);
        let mut m = vec![0x02, 1, 9, 0x63, op.len() as u8];
        m.extend(op);
        let mut d = vec![0x30, m.len() as u8];
        d.extend(m);
        d
    }

    #[test]
    fn each_protocol_is_read_as_far_as_rules_look() {
        let a = read(&memcached("get k\r\n"));
        assert_eq!(a.app, Some(AppProtocol::Memcached));
        assert!(
            !a.is_read(),
            "memcached requests are known by protocol only"
        );
        let a = read(&dns("api.example.com", false));
        assert_eq!(
            a.request.map(|r| r.detail),
            Some(L7Detail::Dns {
                name: "api.example.com".into()
            })
        );
        let a = read(&cldap_search("dc=example,dc=com"));
        assert_eq!(
            a.request.map(|r| r.detail),
            Some(L7Detail::Ldap {
                operation: LdapOp::Search,
                base_dn: Some("dc=example,dc=com".into())
            })
        );
        // A DNS answer sent by a client, and bytes nobody can name: no request.
        for d in [
            dns("api.example.com", true),
            b"hello there\n".to_vec(),
            vec![],
        ] {
            assert_eq!(
                read(&d),
                Asked {
                    app: None,
                    request: None
                },
                "{d:?}"
            );
        }
    }

    #[test]
    fn refusals_are_the_protocols_own() {
        let q = dns("evil.example.net", false);
        let r = refusal(&q, &read(&q)).expect("REFUSED");
        assert_eq!((r[0], r[1], r[3] & 0x0f), (0x12, 0x34, 5));
        let s = cldap_search("cn=secrets");
        let r = refusal(&s, &read(&s)).expect("a SearchResultDone");
        // messageID 9, SearchResultDone (0x65), resultCode 50.
        let at = r
            .windows(3)
            .position(|w| w == [0x02, 1, 9])
            .expect("the id");
        assert_eq!(r[at + 3], 0x65);
        assert!(r.windows(3).any(|w| w == [0x0a, 1, 50]), "{r:?}");
        let m = memcached("flush_all\r\n");
        assert_eq!(refusal(&m, &read(&m)), None, "memcached has none: dropped");
    }

    #[test]
    fn no_datagram_panics() {
        let seeds = [
            memcached("version\r\n"),
            dns("a.b", false),
            cldap_search("o=x"),
        ];
        for s in &seeds {
            for cut in 0..=s.len() {
                let d = &s[..cut];
                let _ = refusal(d, &read(d));
                let mut flipped = s.clone();
                if cut < s.len() {
                    flipped[cut] ^= 0xff;
                }
                let _ = refusal(&flipped, &read(&flipped));
            }
        }
    }
}
