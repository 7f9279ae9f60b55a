//! A POST form's `_method` field (Rails, Laravel, Symfony run the request as that
//! method): the HTTP/1 session holds the form's body, adds each `_method` it finds to
//! the request, and decides again before any of it reaches the server.

use bulkhead_l7::{HttpSession, Output, Session, Verdict};
use bulkhead_policy::l7::method_override::overrides;
use bulkhead_policy::l7::{L7Detail, L7Request};

/// `methods: [GET, POST, PATCH]`: the request's method and every override must be one.
fn policy(r: &L7Request) -> Verdict {
    let L7Detail::Http {
        method,
        path,
        headers,
        ..
    } = &r.detail
    else {
        panic!("{r:?}")
    };
    let ok = |m: &str| {
        ["GET", "POST", "PATCH"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(m))
    };
    Verdict {
        allowed: ok(method) && overrides(method, path, headers).all(|m| ok(&m)),
    }
}

/// (to the server, to the client, decisions) with the client's bytes cut at `cut`.
fn run(client: &[u8], cut: usize) -> (Vec<u8>, String, Vec<(String, bool)>) {
    let mut s = HttpSession::new();
    let mut all = Output::default();
    let cut = cut.min(client.len());
    for part in [&client[..cut], &client[cut..]] {
        all.merge(s.client_bytes(part, &mut policy));
    }
    let decided = (all.decided.iter())
        .map(|d| (d.request.to_string(), d.allowed))
        .collect();
    (
        all.to_server,
        String::from_utf8_lossy(&all.to_client).into_owned(),
        decided,
    )
}

fn post(content_type: &str, body: &[u8]) -> Vec<u8> {
    [
        format!(
            "POST /posts/7 HTTP/1.1\r\nHost: blog.example\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat()
}

const NEXT: &[u8] = b"GET /posts HTTP/1.1\r\nHost: blog.example\r\n\r\n";
const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn a_form_that_runs_as_a_denied_method_is_refused() {
    let denied = post(
        FORM,
        b"utf8=%E2%9C%93&%5Fmethod=delete&authenticity_token=x",
    );
    let client = [&denied[..], NEXT].concat();
    for cut in 0..=client.len() {
        let (to_server, to_client, decided) = run(&client, cut);
        assert_eq!(
            to_server, NEXT,
            "cut {cut}: the form never reaches the server"
        );
        assert!(to_client.starts_with("HTTP/1.1 403"), "{to_client}");
        assert_eq!(decided.len(), 2, "{decided:?}");
        assert!(!decided[0].1 && decided[0].0.contains("header:_method=delete"));
        assert!(decided[1].1);
    }
}

#[test]
fn a_form_that_runs_as_an_allowed_method_passes_whole() {
    let patch = post(FORM, b"_method=patch&title=Hello+world");
    let plain = post(FORM, b"title=Hello+world");
    for req in [&patch, &plain] {
        for cut in [0, 10, req.len() - 3, req.len()] {
            let (to_server, to_client, decided) = run(req, cut);
            assert_eq!(&to_server, req, "cut {cut}");
            assert!(to_client.is_empty());
            assert!(decided[0].1, "{decided:?}");
        }
    }
    assert!(run(&patch, 0).2[0].0.contains("header:_method=patch"));
}

#[test]
fn multipart_forms_are_read_too() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhi\r\n--XyZ--\r\n";
    let (to_server, to_client, decided) = run(&post("multipart/form-data; boundary=XyZ", body), 50);
    assert!(to_server.is_empty());
    assert!(to_client.starts_with("HTTP/1.1 403"), "{to_client}");
    assert!(!decided[0].1);
}

#[test]
fn a_long_form_is_read_as_it_passes_and_its_end_withheld_if_refused() {
    // 64 KiB of other fields first: `_method` comes after what the session holds.
    let long = |tail: &[u8]| {
        let mut body = b"pad=".to_vec();
        body.resize(70_000, b'a');
        body.extend(tail);
        post(FORM, &body)
    };
    for (denied, cut) in [0, 1000, 69_000, 70_120, 70_139]
        .into_iter()
        .flat_map(|cut| {
            [
                (long(b"&_method=delete&more=1"), cut),
                (long(b"&_method=delete"), cut),
            ]
        })
    {
        let (to_server, to_client, decided) = run(&denied, cut);
        // What passed before the field's value ended, never the body's end.
        assert!(
            to_server.len() < denied.len() && denied.starts_with(&to_server),
            "cut {cut}: {} of {} bytes reached the server",
            to_server.len(),
            denied.len()
        );
        assert!(to_client.starts_with("HTTP/1.1 403"), "{to_client}");
        assert!(to_client.contains("Connection: close"), "{to_client}");
        let last = decided.last().unwrap();
        assert!(
            !last.1 && last.0.contains("header:_method=delete"),
            "cut {cut}"
        );
    }
    // Without the field, or with an allowed one, the whole body passes (curl's
    // `--data-binary` labels any upload a form).
    for req in [long(b""), long(b"&_method=patch")] {
        for cut in [0, 100, 66_000, req.len() - 1] {
            let (to_server, to_client, decided) = run(&req, cut);
            assert_eq!(to_server.len(), req.len(), "cut {cut}");
            assert!(to_client.is_empty() && decided.iter().all(|d| d.1));
        }
    }
    // A method other than POST is not overridden by its body (frameworks read POST's).
    let patch = String::from_utf8(post(FORM, b"_method=delete"))
        .unwrap()
        .replacen("POST", "PATCH", 1);
    let (to_server, _, decided) = run(patch.as_bytes(), 0);
    assert!(decided[0].1);
    assert_eq!(to_server, patch.as_bytes());
}

/// A form's type as Rack and PHP read it: the media type ends at `;`, `,` or a blank,
/// and Rack parses a POST with no Content-Type as a form. (Before, both forms below
/// went to a Rails application undecided on `_method`, which ran them as DELETE.)
#[test]
fn forms_are_forms_as_rack_and_php_read_the_type() {
    let body = b"_method=delete&title=x";
    let no_type = [
        format!(
            "POST /posts/7 HTTP/1.1\r\nHost: blog.example\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat();
    for req in [
        no_type,
        post("application/x-www-form-urlencoded,x", body),
        post("application/x-www-form-urlencoded x", body),
    ] {
        let (to_server, to_client, decided) = run(&req, 0);
        let text = String::from_utf8_lossy(&req).into_owned();
        assert!(to_server.is_empty(), "{text}");
        assert!(to_client.starts_with("HTTP/1.1 403"), "{text}");
        assert!(!decided[0].1, "{text}");
    }
    // Another type is no form: its body is not read for `_method`.
    let (to_server, _, decided) = run(&post("text/plain", body), 0);
    assert!(decided[0].1 && !to_server.is_empty());
}
