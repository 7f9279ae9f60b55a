//! XML request bodies (SOAP, XML-RPC, XML APIs): the values an application reads from
//! them, as ModSecurity's XML body processor gives CRS its `XML:/*` (text) and
//! `XML://@*` (attribute values). Judging the whole document as one value instead
//! would read markup as the attack (every `<tag attr="...">` near SQL words or
//! quotes) and hide an attack in one element behind the rest.
//!
//! Parsed with `quick-xml`, event by event (no tree, no entity expansion): the text of
//! each element with the predefined and numeric character references resolved, each
//! attribute value, each CDATA section, and what may make a parser fetch or run
//! something (the document type with its internal subset, processing instructions) as
//! written, for the XSS detector's XXE and stylesheet checks.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Element names kept in a value's path (`body:xml:a/b/c`); deeper ones are elided.
const MAX_DEPTH: usize = 16;

/// Is a body XML: by its type, or, unless its type says form, by its first byte?
pub(crate) fn is_xml(content_type: &str, first: Option<u8>) -> bool {
    let form =
        content_type.contains("multipart/") || content_type.contains("x-www-form-urlencoded");
    !form && (content_type.contains("xml") || first == Some(b'<'))
}

/// Call `f(path, value)` for every value of an XML document. False (and the caller
/// judges the body as text) if the bytes are not well-formed XML up to their end.
pub(crate) fn values(body: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> bool {
    let mut reader = Reader::from_reader(body);
    let config = reader.config_mut();
    config.check_end_names = false;
    let mut path: Vec<u8> = Vec::new();
    // Where each open element's name starts in `path` (`None` past MAX_DEPTH).
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut text: Vec<u8> = Vec::new();
    let mut elements = 0usize;
    let flush = |text: &mut Vec<u8>, path: &[u8], f: &mut dyn FnMut(&[u8], &[u8])| {
        if !text.iter().all(u8::is_ascii_whitespace) {
            f(path, text);
        }
        text.clear();
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                flush(&mut text, &path, &mut f);
                elements += 1;
                open.push(enter(&e, &mut path, open.len(), &mut f));
            }
            Ok(Event::Empty(e)) => {
                flush(&mut text, &path, &mut f);
                elements += 1;
                if let Some(at) = enter(&e, &mut path, open.len(), &mut f) {
                    path.truncate(at);
                }
            }
            Ok(Event::End(_)) => {
                flush(&mut text, &path, &mut f);
                if let Some(Some(at)) = open.pop() {
                    // Back to the parent's path (the separator before this name too).
                    path.truncate(at);
                }
            }
            Ok(Event::Text(t)) => text.extend_from_slice(&t),
            Ok(Event::GeneralRef(r)) => reference(&r, &mut text),
            Ok(Event::CData(c)) => {
                flush(&mut text, &path, &mut f);
                f(&path, &c);
            }
            Ok(Event::DocType(d)) => {
                f(b"!DOCTYPE", &[&b"<!DOCTYPE "[..], &d, b">"].concat());
            }
            Ok(Event::PI(p)) => f(b"?", &[&b"<?"[..], &p, b"?>"].concat()),
            Ok(Event::Decl(_) | Event::Comment(_)) => {}
            Ok(Event::Eof) => {
                flush(&mut text, &path, &mut f);
                return elements > 0;
            }
            Err(_) => return false,
        }
    }
}

/// An element opens at `depth`: its name joins the path (unless past [`MAX_DEPTH`])
/// and its attributes are read. Where its name starts in the path, if it joined.
fn enter(
    e: &quick_xml::events::BytesStart<'_>,
    path: &mut Vec<u8>,
    depth: usize,
    f: &mut impl FnMut(&[u8], &[u8]),
) -> Option<usize> {
    let at = (depth < MAX_DEPTH).then_some(path.len());
    if at.is_some() {
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(e.name().as_ref());
    }
    attributes(e, path, f);
    at
}

/// Every attribute value of an element, its references resolved.
fn attributes(
    e: &quick_xml::events::BytesStart<'_>,
    path: &[u8],
    f: &mut impl FnMut(&[u8], &[u8]),
) {
    for a in e.attributes().with_checks(false).flatten() {
        let name = [path, b"@", a.key.as_ref()].concat();
        match a.unescape_value() {
            Ok(v) => f(&name, v.as_bytes()),
            Err(_) => f(&name, &a.value),
        }
    }
}

/// A reference inside text: the predefined entities and character references
/// resolved, any other (a DTD's entity, which no parser here expands) kept as written.
fn reference(r: &[u8], text: &mut Vec<u8>) {
    let c = match r {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32),
        [b'#', dec @ ..] => std::str::from_utf8(dec)
            .ok()
            .and_then(|d| d.parse().ok())
            .and_then(char::from_u32),
        _ => None,
    };
    match c {
        Some(c) => text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        None => text.extend_from_slice(&[&b"&"[..], r, b";"].concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(body: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let ok = values(body.as_bytes(), |p, v| {
            out.push((
                String::from_utf8_lossy(p).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        ok.then_some(out)
    }

    #[test]
    fn text_attributes_cdata_and_references() {
        let soap = r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">
  <soap:Body><m:GetUser id="7&apos; OR &#x27;1&#39;=&quot;1"><m:Name>O&apos;Brien &amp; co</m:Name>
  <m:Note><![CDATA[<b>x</b>]]></m:Note><m:Empty flag="on"/></m:GetUser></soap:Body>
</soap:Envelope>"#;
        let v = all(soap).unwrap();
        let get = |p: &str| v.iter().find(|(k, _)| k == p).map(|(_, x)| x.as_str());
        assert_eq!(
            get("soap:Envelope@xmlns:soap"),
            Some("http://www.w3.org/2003/05/soap-envelope")
        );
        assert_eq!(
            get("soap:Envelope/soap:Body/m:GetUser@id"),
            Some("7' OR '1'=\"1")
        );
        assert_eq!(
            get("soap:Envelope/soap:Body/m:GetUser/m:Name"),
            Some("O'Brien & co")
        );
        assert_eq!(
            get("soap:Envelope/soap:Body/m:GetUser/m:Note"),
            Some("<b>x</b>")
        );
        assert_eq!(
            get("soap:Envelope/soap:Body/m:GetUser/m:Empty@flag"),
            Some("on")
        );
    }

    #[test]
    fn what_may_make_a_parser_fetch_is_kept_as_written() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        let v = all(xxe).unwrap();
        assert!(
            v.iter()
                .any(|(p, x)| p == "!DOCTYPE" && x.contains("<!ENTITY x SYSTEM"))
        );
        assert!(v.iter().any(|(p, x)| p == "r" && x == "&x;"));
        let xsl = r#"<?xml-stylesheet type="text/xsl" href="http://evil.example/x.xsl"?><r/>"#;
        assert!(
            all(xsl)
                .unwrap()
                .iter()
                .any(|(p, x)| p == "?" && x.starts_with("<?xml-stylesheet"))
        );
    }

    proptest::proptest! {
        /// Untrusted bytes: any body, and a document with bytes overwritten, never panic.
        #[test]
        fn any_bytes_never_panic(
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            writes in proptest::collection::vec((0usize..120, proptest::num::u8::ANY), 0..8),
        ) {
            values(&b, |_, _| {});
            let mut doc = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><r a="1&amp;2"><b>t&#x41;&e;<![CDATA[c]]></b><c/></r>"#.to_vec();
            for (at, x) in writes {
                if let Some(c) = doc.get_mut(at) {
                    *c = x;
                }
            }
            values(&doc, |_, _| {});
        }
    }

    #[test]
    fn not_xml_is_refused() {
        assert_eq!(all("a=1&b=<2>"), None);
        assert_eq!(all("<a><b></a"), None);
        assert_eq!(all("just text"), None);
    }
}
