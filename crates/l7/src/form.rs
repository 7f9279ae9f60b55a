//! The `_method` fields of a POST's form body, which web frameworks run the request as
//! (`bulkhead_policy::l7::method_override`): urlencoded and multipart bodies, as Rack,
//! Laravel and Symfony parse them. Multipart bodies are cut by the sensors' parser
//! (`bulkhead_sensor::sensor::multipart`), the one that finds their fields for the
//! attack detectors.

use bulkhead_policy::l7::method_override::{FIELD, form_values};
use bulkhead_sensor::sensor::multipart;
use memchr::memmem;

/// A form body's encoding, from its `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Urlencoded,
    /// With its boundary.
    Multipart(String),
}

/// The form encoding a POST's `Content-Type` value names, if any; None for the value
/// when the request has none, which Rack reads as a form too. The media type ends at
/// `;`, `,` or a blank, as Rack and PHP cut it (`application/x-www-form-urlencoded,x`
/// is a form to both).
pub(crate) fn form_of_post(content_type: Option<&[u8]>) -> Option<Form> {
    match content_type {
        None => Some(Form::Urlencoded),
        Some(ct) => form_of(ct),
    }
}

/// The form encoding a `Content-Type` value names, if any.
pub(crate) fn form_of(content_type: &[u8]) -> Option<Form> {
    let text = String::from_utf8_lossy(content_type);
    let kind = text.trim_start().split([';', ',', ' ', '\t']).next()?;
    if kind.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Some(Form::Urlencoded);
    }
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multipart::boundary(&text).map(|b| Form::Multipart(b.to_string()))
}

/// The `_method` values in (the held prefix of) a form body: of a multipart body, the
/// parts a delimiter follows (one cut short has no value yet).
pub(crate) fn method_fields(form: &Form, body: &[u8]) -> Vec<String> {
    let Form::Multipart(boundary) = form else {
        return form_values(body, FIELD);
    };
    let mut found = Vec::new();
    multipart::parts(body, boundary, |p| {
        let cut = p.content.as_ptr_range().end == body.as_ptr_range().end;
        if p.name == FIELD.as_bytes() && !cut {
            found.push(String::from_utf8_lossy(p.content).trim().to_string());
        }
    });
    found
}

/// Reads the rest of a form body for `_method` fields as it streams past (a body longer
/// than the session holds): urlencoded pairs are parsed across pieces; in a multipart
/// body, a part named `_method` past the held prefix counts as an unknown method (`?`).
#[derive(Debug)]
pub(crate) struct TailScan {
    form: Form,
    /// Urlencoded: the current pair's name (at most [`MAX_NAME`] bytes; longer is
    /// another name), and its value while the name is the field's.
    name: Vec<u8>,
    long: bool,
    value: Option<Vec<u8>>,
    /// Multipart: the last bytes seen, so a name split between pieces is found.
    carry: Vec<u8>,
    found: Vec<String>,
}

/// The longest a pair's name can be and still decode to `_method` (every byte escaped).
const MAX_NAME: usize = 3 * FIELD.len();
/// A `_method` value is a method name; more than this is kept as it is cut.
const MAX_VALUE: usize = 64;
/// Multipart part heads naming the field.
const MULTIPART_NAMES: [&[u8]; 2] = [b"name=\"_method\"", b"name=_method"];

impl TailScan {
    /// A scanner that has read `prefix` already.
    pub(crate) fn new(form: Form, prefix: &[u8]) -> TailScan {
        let mut t = TailScan {
            form,
            name: Vec::new(),
            long: false,
            value: None,
            carry: Vec::new(),
            found: Vec::new(),
        };
        let boundary = match &t.form {
            Form::Urlencoded => None,
            Form::Multipart(b) => Some(b.clone()),
        };
        match boundary {
            None => t.feed(prefix),
            Some(boundary) => {
                // The prefix's whole parts are read as parts (a Rails form with a file
                // sends `_method` first); the part it cuts is scanned on with the rest.
                t.found = method_fields(&t.form, prefix);
                let delimiter = [b"--", boundary.as_bytes()].concat();
                let last = memmem::rfind(prefix, &delimiter).unwrap_or(0);
                t.feed(&prefix[last..]);
            }
        }
        t
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        match self.form {
            Form::Urlencoded => {
                for &b in data {
                    match (b, &mut self.value) {
                        (b'&', _) => self.end_pair(),
                        (_, Some(v)) => {
                            if v.len() < MAX_VALUE {
                                v.push(b);
                            }
                        }
                        (b'=', None) => {
                            if !self.long
                                && form_values(&[&self.name[..], b"="].concat(), FIELD).len() == 1
                            {
                                self.value = Some(Vec::new());
                            }
                            // The rest of this pair is a value of another name.
                            self.long = true;
                        }
                        (_, None) if self.name.len() < MAX_NAME => self.name.push(b),
                        (_, None) => self.long = true,
                    }
                }
            }
            Form::Multipart(_) => {
                let mut seen = std::mem::take(&mut self.carry);
                seen.extend_from_slice(data);
                if MULTIPART_NAMES
                    .iter()
                    .any(|n| memmem::find(&seen, n).is_some())
                    && self.found.last().is_none_or(|f| f != "?")
                {
                    self.found.push("?".into());
                }
                let keep = seen.len().saturating_sub(MULTIPART_NAMES[0].len());
                self.carry = seen.split_off(keep);
            }
        }
    }

    fn end_pair(&mut self) {
        if let Some(v) = self.value.take() {
            self.found
                .extend(form_values(&[&b"v="[..], &v].concat(), "v"));
        }
        self.name.clear();
        self.long = false;
    }

    /// How many `_method` values were found so far.
    pub(crate) fn found_count(&self) -> usize {
        self.found.len()
    }

    /// Every `_method` value found so far (the last pair's once the body ended).
    pub(crate) fn found(&mut self, ended: bool) -> &[String] {
        if ended {
            self.end_pair();
        }
        &self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_types() {
        assert_eq!(
            form_of(b"application/x-www-form-urlencoded; charset=UTF-8"),
            Some(Form::Urlencoded)
        );
        assert_eq!(
            form_of(b"multipart/form-data; boundary=\"----WebKitFormBoundaryX\""),
            Some(Form::Multipart("----WebKitFormBoundaryX".into()))
        );
        assert_eq!(form_of(b"multipart/form-data"), None, "no boundary");
        assert_eq!(form_of(b"application/json"), None);
    }

    #[test]
    fn multipart_fields_as_browsers_send_them() {
        let body = b"------B\r\nContent-Disposition: form-data; name=\"authenticity_token\"\r\n\r\nabc\r\n\
------B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\ndelete\r\n\
------B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n_method\r\n\
------B--\r\n";
        let form = form_of(b"multipart/form-data; boundary=----B").unwrap();
        assert_eq!(method_fields(&form, body), ["delete"]);
        // Cut anywhere: what is whole so far is read, nothing panics.
        for cut in 0..body.len() {
            let _ = method_fields(&form, &body[..cut]);
        }
    }

    #[test]
    fn the_tail_of_a_long_form_is_read_as_it_streams() {
        let body = b"pad=aaaa&b=%5F&%5Fmethod=delete&c=_method%3Dput&_method=pat+ch";
        for cut in 0..body.len() {
            let mut t = TailScan::new(Form::Urlencoded, &body[..cut]);
            t.feed(&body[cut..]);
            assert_eq!(t.found(true), ["delete", "pat ch"], "cut {cut}");
        }
        let part =
            b"--B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--B--";
        for cut in 0..part.len() {
            let mut t = TailScan::new(Form::Multipart("B".into()), &part[..cut]);
            t.feed(&part[cut..]);
            // Read as a part when the prefix holds it whole, else unknown.
            let found = t.found(true);
            assert!(
                found == ["DELETE"] || found == ["?"],
                "cut {cut}: {found:?}"
            );
        }
    }

    #[test]
    fn a_long_multipart_form_keeps_the_fields_of_its_whole_parts() {
        // A Rails edit form with a file: `_method` first, then 100 kB of file.
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\npatch\r\n--B\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\r\n".to_vec();
        body.resize(100_000, b'x');
        body.extend(b"\r\n--B--\r\n");
        let form = Form::Multipart("B".into());
        let mut t = TailScan::new(form.clone(), &body[..65_536]);
        t.feed(&body[65_536..]);
        assert_eq!(t.found(true), ["patch"]);
        // Another `_method` part past the prefix is unknown.
        let mut more = body[..body.len() - 7].to_vec();
        more.extend(b"\r\n--B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\ndelete\r\n--B--\r\n");
        let mut t = TailScan::new(form, &more[..65_536]);
        t.feed(&more[65_536..]);
        assert_eq!(t.found(true), ["patch", "?"]);
    }

    proptest! {
        #[test]
        fn no_body_panics(body in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let _ = method_fields(&Form::Multipart("x".into()), &body);
            let _ = method_fields(&Form::Urlencoded, &body);
            let cut = cut.min(body.len());
            for form in [Form::Urlencoded, Form::Multipart("x".into())] {
                // Streamed in two pieces, a urlencoded body gives what it gives whole.
                let mut t = TailScan::new(form.clone(), &body[..cut]);
                t.feed(&body[cut..]);
                let streamed = t.found(true).to_vec();
                if form == Form::Urlencoded {
                    let whole: Vec<String> = method_fields(&form, &body)
                        .into_iter()
                        .map(|v| v.chars().take(MAX_VALUE).collect())
                        .collect();
                    prop_assert_eq!(streamed.len(), whole.len());
                }
            }
        }
    }
}
