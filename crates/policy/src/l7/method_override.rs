//! The ways a request asks a web framework to run it as another method.
//!
//! Headers (`X-HTTP-Method-Override` and two others: Express's method-override, Spring,
//! ASP.NET Web API) on any request, and a `_method` form field on a POST: Rails
//! (Rack::MethodOverride, the form body), Laravel and Symfony (the body, and the query
//! string), Express's method-override configured with a field name (the query string).
//! A rule's method list must allow what each of them names as well as the request's own
//! method, or a POST carrying `_method=DELETE` would pass as an allowed POST and run as
//! a DELETE.
//!
//! The query string is read here, from the request target. A form body is read by the
//! proxy's HTTP session, which adds each `_method` value it finds to the request as a
//! field named [`FIELD`] (`header:_method=DELETE` in the request's one-line form, as
//! `explain --request` takes it).

/// Headers by which frameworks let a request act as another method.
pub const HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The form field, in a POST's query string or form body.
pub const FIELD: &str = "_method";

/// The values a urlencoded text (a query string or an
/// `application/x-www-form-urlencoded` body) gives the field `name`, decoded as a form
/// parser decodes them (`+` is a space, percent escapes in names too: `%5Fmethod`).
pub fn form_values(text: &[u8], name: &str) -> Vec<String> {
    form_urlencoded::parse(text)
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// Every method other than its own that a request names by an override: the values of
/// the override headers, and on a POST the `_method` fields of its query string and
/// (as the proxy found them) its form body.
pub fn overrides<'a>(
    method: &str,
    target: &'a str,
    headers: &'a [(String, String)],
) -> impl Iterator<Item = String> + 'a {
    let post = method.eq_ignore_ascii_case("POST");
    let from_headers = headers
        .iter()
        .filter(move |(n, _)| {
            HEADERS.iter().any(|o| n.eq_ignore_ascii_case(o)) || (post && n == FIELD)
        })
        .map(|(_, v)| v.trim().to_string());
    let query = match target.split_once('?') {
        Some((_, q)) if post => q.split('#').next().unwrap_or(q),
        _ => "",
    };
    from_headers.chain(form_values(query.as_bytes(), FIELD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<String> {
        let h: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        overrides(method, target, &h).collect()
    }

    #[test]
    fn a_post_names_methods_by_headers_query_and_body_fields() {
        assert_eq!(all("POST", "/posts/7?_method=DELETE", &[]), ["DELETE"]);
        assert_eq!(all("POST", "/p?a=1&%5Fmethod=put+&b", &[]), ["put"]);
        assert_eq!(all("POST", "/p?_method=patch#frag", &[]), ["patch"]);
        assert_eq!(
            all(
                "POST",
                "/p",
                &[("_method", "DELETE"), ("X-HTTP-Method", "PUT")]
            ),
            ["DELETE", "PUT"]
        );
        // Frameworks read `_method` on a POST only; headers on any method.
        assert!(all("GET", "/p?_method=DELETE", &[("_method", "PUT")]).is_empty());
        assert_eq!(all("GET", "/p", &[("x-method-override", "PUT")]), ["PUT"]);
        // Other fields, and names that only look alike, name nothing.
        assert!(all("POST", "/p?method=DELETE&_methods=PUT&x_method=PUT", &[]).is_empty());
    }

    #[test]
    fn form_bodies_are_decoded_as_forms() {
        let body = b"utf8=%E2%9C%93&_method=delete&authenticity_token=abc%2B%3D";
        assert_eq!(form_values(body, FIELD), ["delete"]);
        assert!(form_values(b"\xff\xfe&&==&", FIELD).is_empty());
    }
}
