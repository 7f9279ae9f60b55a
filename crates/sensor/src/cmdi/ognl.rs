//! Expression-language injection: Struts 2's OGNL and Spring's SpEL, which a framework
//! evaluates in a value it was given and which reach the JVM's `Runtime` from there.
//! Struts evaluates `%{...}` and `${...}` in a multipart request's `Content-Type` (S2-045,
//! the Equifax breach), in namespaces and redirect targets (S2-057, S2-016), and bare OGNL
//! in parameter names (S2-009: `(#context[...])('x')`); Spring evaluates SpEL's `${...}` and
//! `#{...}` in views and error pages (`${T(java.lang.Runtime).getRuntime().exec('id')}`).
//!
//! What no benign value holds, and what every such payload needs: OGNL's context
//! variables written as code (`#context[`, `#_memberAccess`, `#dm=`...) and static member
//! access (`@java.lang.Runtime@getRuntime()`), or SpEL's type references (`T(java.lang.X)`)
//! inside an expression. A `#` or `@` in prose (`#1`, `a@b.c`) is neither: a variable
//! needs an expression opener or OGNL's own syntax around it.

use aho_corasick::AhoCorasick;
use std::sync::LazyLock;

/// Bytes of an expression read after its opener.
const WINDOW: usize = 1024;

/// Names only Struts/OGNL payloads write: each alone is the attack. One pass, any case.
static MARKERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "#_memberaccess",
            "@ognl.ognlcontext@",
            "com.opensymphony.xwork2.",
            "ognlutil",
            "#context[",
            "#context.get",
        ])
        .expect("static patterns")
});

/// What kind of expression injection `v` holds, if any.
pub(super) fn expression(v: &[u8]) -> Option<&'static str> {
    // Spring Cloud Function evaluates a header's whole value as SpEL
    // (`spring.cloud.function.routing-expression: T(java.lang.Runtime)...`).
    let bare = v.trim_ascii_start();
    if let [b'T' | b't', b'(', name @ ..] = bare
        && class_name(name).is_some_and(|n| name.get(n) == Some(&b')'))
    {
        return Some("spel");
    }
    // The same probe in the tags of ERB, JSP and ASP (`<%= 7*7 %>`) and Razor (`@(7*7)`).
    if tag_probe(v) {
        return Some("expression probe");
    }
    // OGNL needs a `#` or `@` (payloads naming xwork2 or OgnlUtil use variables too), SpEL an
    // opener's `{`: most values stop here, before any search.
    let ognl = memchr::memchr2(b'#', b'@', v).is_some();
    if !ognl && memchr::memchr(b'{', v).is_none() {
        return None;
    }
    // The evaluation probe of template and expression injection, `{{7*7}}`: a product of
    // numbers in Jinja2's, Twig's or Handlebars' braces (doT's `{{=7*7}}`, Jinja2's
    // `{{7*'7'}}`), which no page writes.
    for i in memchr::memmem::find_iter(v, b"{{") {
        let body = &v[i + 2..v.len().min(i + 2 + 64)];
        if let Some(end) = memchr::memmem::find(body, b"}}") {
            let body = &body[..end];
            if product_of_numbers(body.strip_prefix(b"=").unwrap_or(body)) {
                return Some("expression probe");
            }
            // Twig 1's environment, from which `registerUndefinedFilterCallback("exec")`
            // and `getFilter("id")` run a command.
            if memchr::memmem::find(body, b"_self.env").is_some() {
                return Some("twig environment");
            }
        }
    }
    if ognl && MARKERS.is_match(v) {
        return Some("ognl");
    }
    // Each expression opener: `%{`, `${`, `#{`, `*{` (Thymeleaf's selection).
    for i in memchr::memchr_iter(b'{', v) {
        if i == 0 || !matches!(v[i - 1], b'%' | b'$' | b'#' | b'*') {
            continue;
        }
        // To the first `}`: what follows a closed `${price}` is no part of it.
        let body = &v[i + 1..v.len().min(i + 1 + WINDOW)];
        let body = &body[..memchr::memchr(b'}', body).unwrap_or(body.len())];
        if let Some(kind) = inside(body) {
            return Some(kind);
        }
    }
    None
}

/// An expression's body: OGNL's variables and static members, SpEL's type references,
/// and the evaluation probe scanners send first (`#{16*8787}`, `%{128*128}`): a product
/// of two numbers, which a template that means it writes as its result.
fn inside(body: &[u8]) -> Option<&'static str> {
    if product_of_numbers(body) {
        return Some("expression probe");
    }
    for (j, &c) in body.iter().enumerate() {
        let before = if j == 0 { b'(' } else { body[j - 1] };
        let rest = &body[j + 1..];
        match c {
            // `#name` where an operand begins: `(#dm=`, `{#a`, `.(#x`, `+#y`.
            b'#' if matches!(
                before,
                b'(' | b'{' | b',' | b'.' | b'+' | b'=' | b'[' | b' ' | b'!'
            ) && rest
                .first()
                .is_some_and(|&n| n.is_ascii_alphabetic() || n == b'_') =>
            {
                return Some("ognl");
            }
            // `@java.lang.Runtime@getRuntime()`: `@` a dotted class name `@`.
            b'@' if static_member(rest) => return Some("ognl"),
            // SpEL: `T(java.lang.Runtime)`, `T(org.springframework...)`.
            b'T' | b't'
                if !before.is_ascii_alphanumeric()
                    && rest.first() == Some(&b'(')
                    && class_name(&rest[1..]).is_some_and(|n| rest.get(1 + n) == Some(&b')')) =>
            {
                return Some("spel");
            }
            _ => {}
        }
    }
    None
}

/// `16*8787`, `7 * 7`, `7*'7'`: two numbers multiplied (one may be quoted, as Jinja2's
/// probe tells it from Twig by the string it repeats), and nothing else.
fn product_of_numbers(body: &[u8]) -> bool {
    let Some(star) = memchr::memchr(b'*', body) else {
        return false;
    };
    let number = |s: &[u8]| {
        let s = s.trim_ascii();
        let s = match s {
            [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
            _ => s,
        };
        !s.is_empty() && s.len() <= 12 && s.iter().all(u8::is_ascii_digit)
    };
    number(&body[..star]) && number(&body[star + 1..])
}

/// `<%= 7*7 %>`, `<%=7*7%>`, `@(7*7)`: the evaluation probe in an ERB, JSP or ASP
/// expression tag, or in Razor's explicit expression.
fn tag_probe(v: &[u8]) -> bool {
    // (By byte, not by substring search: most values have neither opener.)
    memchr::memchr2_iter(b'<', b'@', v).any(|i| {
        let (body, end) = if v[i..].starts_with(b"<%=") {
            let body = &v[i + 3..v.len().min(i + 3 + 64)];
            (body, memchr::memmem::find(body, b"%>"))
        } else if v[i..].starts_with(b"@(") {
            let body = &v[i + 2..v.len().min(i + 2 + 64)];
            (body, memchr::memchr(b')', body))
        } else {
            return false;
        };
        end.is_some_and(|end| product_of_numbers(&body[..end]))
    })
}

/// `a.b.C@` at the start of `s`: a class name with at least one dot, then `@`.
fn static_member(s: &[u8]) -> bool {
    class_name(s).is_some_and(|n| s.get(n) == Some(&b'@'))
}

/// The length of a dotted Java class name (`java.lang.Runtime`) at the start of `s`.
fn class_name(s: &[u8]) -> Option<usize> {
    let n = s
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'$'))
        .count();
    let name = &s[..n];
    let dotted = name.contains(&b'.') && name.first().is_some_and(u8::is_ascii_alphabetic);
    dotted.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struts_and_spring_payloads() {
        for (v, kind) in [
            // nmap's http-vuln-cve2017-5638 probe, in Content-Type.
            (
                "%{#context['com.opensymphony.xwork2.dispatcher.HttpServletResponse'].addHeader('X-Check-Struts', 'x')}.multipart/form-data",
                "ognl",
            ),
            // The S2-045 exploit as published.
            (
                "%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess?(#_memberAccess=#dm):((#container=#context['com.opensymphony.xwork2.ActionContext.container'])))}",
                "ognl",
            ),
            // S2-057 in a namespace, without the xwork2 names.
            ("${(#a=@java.lang.Runtime@getRuntime().exec('id'))}", "ognl"),
            ("%{(#x=1).(#y=2)}", "ognl"),
            // S2-009: bare OGNL in a parameter name.
            (
                "(#context[\"xwork.MethodAccessor.denyMethodExecution\"]=false)",
                "ognl",
            ),
            // SpEL.
            ("${T(java.lang.Runtime).getRuntime().exec('id')}", "spel"),
            ("#{T(java.lang.System).getenv()}", "spel"),
            ("*{t(java.lang.Runtime).getRuntime()}", "spel"),
            // a whole value evaluated as SpEL (Spring Cloud Function, CVE-2022-22963)
            (
                "T(java.net.InetAddress).getByName(\"x.oast.example.com\")",
                "spel",
            ),
            // evaluation probes (Confluence CVE-2021-26084, Struts CVE-2019-0230, SSTI)
            ("aaaa\\u0027+#{16*8787}+\\u0027bbb", "expression probe"),
            ("k3x9q7%{128*128}", "expression probe"),
            ("{{7*7}}", "expression probe"),
            ("${ 7 * 7 }", "expression probe"),
            ("{{=7*7}}", "expression probe"),
            ("{{7*'7'}}", "expression probe"),
            ("<%= 7*7 %>", "expression probe"),
            ("<%=7*7%>", "expression probe"),
            ("@(7*7)", "expression probe"),
            ("{{_self.env.getFilter('id')}}", "twig environment"),
        ] {
            assert_eq!(expression(v.as_bytes()), Some(kind), "{v}");
        }
    }

    #[test]
    fn benign_values_with_the_same_bytes() {
        for v in [
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            "issue #42 (see #43)",
            "mail alice@example.com or bob@mail.example.org",
            "color: #fff; background: #{theme}",
            "Hello #{name}, your order ${order.id} ships ${date}",
            "`${user.name}`",
            "T(x) = 2t(y)",
            "@media (max-width: 600px) { a { color: #333 } }",
            "${price} (incl. #tax)",
            "${price*qty} and {{ rows * 2 }}",
            "{{7}} x {{7}}",
            "#{a}*#{b}",
            "The T(n) = 2T(n/2) recurrence",
            "<%= user.name %> has <%= 7 %> items",
            "mail@(example) 7*7",
            "{{ 'x' * n }}",
            "price @(2 * qty) each",
        ] {
            assert_eq!(expression(v.as_bytes()), None, "{v}");
        }
    }
}
