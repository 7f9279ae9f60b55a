//! The public API the node agent calls: locations, masking, dedup, streams, errors.

use bulkhead_sensor::{Attack, Context, DlpKind, PatternSpec, Sensor, SensorSpec};
use proptest::prelude::*;

fn all(block: bool) -> Sensor {
    Sensor::new(&SensorSpec {
        name: "s1".into(),
        block,
        attacks: Attack::ALL.to_vec(),
        dlp: DlpKind::ALL.to_vec(),
        patterns: vec![PatternSpec {
            name: "employee_id".into(),
            regex: r"EMP-[0-9]{6}".into(),
            contexts: vec![Context::Url],
        }],
    })
    .unwrap()
}

fn got(f: &[bulkhead_sensor::Finding]) -> Vec<(String, String)> {
    f.iter()
        .map(|f| (f.class.clone(), f.location.clone()))
        .collect()
}

#[test]
fn names_parse() {
    assert_eq!(
        "path-traversal".parse::<Attack>(),
        Ok(Attack::PathTraversal)
    );
    assert_eq!("sqli".parse::<Attack>(), Ok(Attack::Sqli));
    assert!("nope".parse::<Attack>().is_err());
    assert_eq!(Attack::Cmdi.as_str(), "cmdi");
    assert_eq!("credit-card".parse::<DlpKind>(), Ok(DlpKind::CreditCard));
    assert_eq!(
        "aws_access_key".parse::<DlpKind>(),
        Ok(DlpKind::AwsAccessKey)
    );
}

#[test]
fn bad_regex_names_the_pattern() {
    let e = Sensor::new(&SensorSpec {
        name: "x".into(),
        block: false,
        attacks: vec![],
        dlp: vec![],
        patterns: vec![PatternSpec {
            name: "broken".into(),
            regex: "(".into(),
            contexts: vec![],
        }],
    })
    .unwrap_err();
    assert!(e.to_string().contains("broken"), "{e}");
}

#[test]
fn send_sync() {
    fn ok<T: Send + Sync>() {}
    fn send<T: Send>() {}
    ok::<Sensor>();
    send::<bulkhead_sensor::SensorStream>();
}

#[test]
fn request_locations() {
    let s = all(true);
    let head = b"GET /items?id=1%27%20OR%201%3D1--%20&q=%3Cscript%3Ealert(1)%3C/script%3E&emp=EMP-123456 HTTP/1.1\r\n\
Host: example.com\r\nUser-Agent: () { :;}; /bin/bash -c id\r\nCookie: session=..%2F..%2Fetc%2Fpasswd; theme=dark\r\n\
Referer: https://example.com/<svg/onload=alert(1)>?page=2&sort=1%27%20UNION%20SELECT%20password%20FROM%20users--\r\n\r\n";
    let f = s.http_request(head, b"");
    let g = got(&f);
    for want in [
        ("sqli", "query:id"),
        ("xss", "query:q"),
        ("employee_id", "query:emp"),
        ("cmdi", "header:user-agent"),
        ("path_traversal", "cookie:session"),
        // A Referer is cut as a URL: its page, then each query pair.
        ("xss", "header:referer"),
        ("sqli", "header:referer:sort"),
    ] {
        assert!(
            g.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {g:?}"
        );
    }
    assert!(
        f.iter()
            .all(|f| f.block && f.sensor == "s1" && f.masked.chars().count() <= 96)
    );
    let mut dedup = g.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), g.len(), "deduplicated per (class, location)");
}

#[test]
fn bodies_and_masking() {
    let s = all(false);
    let head = b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n";
    let body = br#"{"user":{"name":"x' UNION SELECT password FROM users--","card":"4111 1111 1111 1111"},"k":"AKIAIOSFODNN7EXAMPLE"}"#;
    let f = s.http_request(head, body);
    let find = |c: &str| {
        f.iter()
            .find(|x| x.class == c)
            .unwrap_or_else(|| panic!("{c}: {f:?}"))
    };
    assert_eq!(find("sqli").location, "body:json:user.name");
    assert_eq!(find("credit_card").location, "body:json:user.card");
    assert_eq!(find("credit_card").masked, "4111 **** **** 1111");
    assert_eq!(find("aws_access_key").masked, "AKIA************MPLE");
    assert!(f.iter().all(|f| !f.block));

    let form =
        b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
    let f = s.http_request(
        form,
        b"q=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E&ssn=123-45-6789",
    );
    let g = got(&f);
    assert!(g.contains(&("xss".into(), "body:form:q".into())), "{g:?}");
    let ssn = f.iter().find(|x| x.class == "ssn").unwrap();
    assert_eq!(
        (ssn.location.as_str(), ssn.masked.as_str()),
        ("body:form:ssn", "***-**-6789")
    );
}

/// A response's head: DLP on each field's value, named by the field; the status line
/// and the attack detectors stay out of it.
#[test]
fn response_heads_are_scanned_for_secrets() {
    let s = all(false);
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Debug-Key: AKIAIOSFODNN7EXAMPLE\r\nSet-Cookie: last4=x; card=4111 1111 1111 1111\r\nX-Note: 1' OR '1'='1\r\n\r\n";
    let mut g = got(&s.response_head(head));
    g.sort();
    assert_eq!(
        g,
        [
            (
                "aws_access_key".to_string(),
                "response header:x-debug-key".to_string()
            ),
            (
                "credit_card".to_string(),
                "response header:set-cookie".to_string()
            ),
        ]
    );
    assert_eq!(
        got(&s.response_head(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n")),
        []
    );
}

/// JSON sent as `text/plain` (cross-site without a preflight, to a framework that parses
/// every body as JSON) is read as JSON: each string at its path.
#[test]
fn json_under_another_type_is_read_as_json() {
    let s = all(true);
    let head = b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\r\n";
    let body = br#"{"user": {"name": "x' UNION SELECT password FROM users--"}}"#;
    let g = got(&s.http_request(head, body));
    assert_eq!(g, [("sqli".to_string(), "body:json:user.name".to_string())]);
    // A form stays a form, even when it opens with a brace.
    let form =
        b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
    let g = got(&s.http_request(form, b"{a}=1&q=1' UNION SELECT password FROM users--"));
    assert!(g.contains(&("sqli".into(), "body:form:q".into())), "{g:?}");
    // A form whose body is JSON is read both ways: handlers that read the raw body
    // (ASP.NET's AjaxPro) take the JSON (nuclei's Chanjet T+ template).
    let body = br#"{"AccountNum":"123 or 8767 IN (SELECT (sys.fn_sqlvarbasetostr(HASHBYTES('MD5','1'))))","UserName":"admin"}"#;
    let g = got(&s.http_request(form, body));
    assert!(
        g.contains(&("sqli".into(), "body:json:AccountNum".into())),
        "{g:?}"
    );
}

/// A value in base64 that stands for text is also read as that text, as applications
/// that pass file names or filters base64-encoded decode them (nuclei's Joomla EasyShop
/// and Weaver templates); the finding shows the text.
#[test]
fn base64_values_are_read_as_their_text() {
    let s = all(true);
    let head = b"GET /index.php?file=Li4vLi4vY29uZmlndXJhdGlvbi5waHA=&b=YSB2YWx1ZSB0aGF0IGlzIGZpbmU HTTP/1.1\r\nHost: x\r\n\r\n";
    let f = s.http_request(head, b"");
    assert_eq!(
        got(&f),
        [("path_traversal".to_string(), "query:file".to_string())]
    );
    assert_eq!(f[0].masked, "base64: ../../configuration.php");
    // URL-safe, unpadded: `1 union select password from users--`
    let head = b"GET /x?par=MSB1bmlvbiBzZWxlY3QgcGFzc3dvcmQgZnJvbSB1c2Vycy0t HTTP/1.1\r\n\r\n";
    assert_eq!(
        got(&s.http_request(head, b"")),
        [("sqli".to_string(), "query:par".to_string())]
    );
    // A Java serialized object in base64 is read for its gadget classes (a ysoserial
    // chain as OFBiz's XML-RPC and JSF view state take one).
    let head = b"GET /x?state=rO0ABXNyADpvcmcuYXBhY2hlLmNvbW1vbnMuY29sbGVjdGlvbnMuZnVuY3RvcnMuSW52b2tlclRyYW5zZm9ybWVyh%2Bj/a3t8zjgC HTTP/1.1\r\n\r\n";
    let f = s.http_request(head, b"");
    assert_eq!(got(&f), [("cmdi".to_string(), "query:state".to_string())]);
    assert_eq!(f[0].masked, "base64: a Java serialized object");
    // Any Java stream is (ModSecurity's CRS 944210 holds so too), in hex as well; a
    // Python pickle that imports `os`, Ruby Marshal data with a RubyGems gadget; not a
    // pickle of a list, nor Marshal's `[1, 2, 3]`.
    for (value, shown) in [
        (
            "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA",
            "base64: a Java serialized object",
        ),
        (
            "aced0005737200116a6176612e7574696c2e486173684d6170",
            "hex: a Java serialized object",
        ),
        (
            "gASVHgAAAAAAAACMAm9zlIwGc3lzdGVtlJOUjAJpZJSFlFKULg==",
            "base64: a Python pickle",
        ),
        (
            "BAhvOhVHZW06OlJlcXVpcmVtZW50Bg",
            "base64: Ruby Marshal data",
        ),
    ] {
        let head = format!(
            "GET /x?state={} HTTP/1.1\r\n\r\n",
            value.replace('=', "%3D")
        );
        let f = s.http_request(head.as_bytes(), b"");
        assert_eq!(
            got(&f),
            [("cmdi".to_string(), "query:state".to_string())],
            "{value}"
        );
        assert_eq!(f[0].masked, shown);
    }
    for value in ["gASVCwAAAAAAAABdlChLAUsCSwNlLg", "BAhbCGkGaQdpCA"] {
        let head = format!("GET /x?state={value} HTTP/1.1\r\n\r\n");
        assert!(s.http_request(head.as_bytes(), b"").is_empty(), "{value}");
    }
    // What applications really pass in base64 is clean: a SAML response (XML with
    // signatures), return URLs, OAuth state, filters and carts as JSON, a message.
    let saml = r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_8e8dc5f6" Version="2.0" Destination="http://sp.example.com/demo1/index.php?acs"><saml:Issuer>http://idp.example.com/metadata.php</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:Reference URI="#_d71a3a8e"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestValue>ZeUqLdVBh9Cw2ElNAbPQ0Ep5qjI=</ds:DigestValue></ds:Reference></ds:SignedInfo></ds:Signature><saml:AttributeStatement><saml:Attribute Name="mail"><saml:AttributeValue xsi:type="xs:string">test@example.com</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></samlp:Response>"##;
    for text in [
        saml,
        "https://example.com/account/orders?page=2&sort=desc",
        r#"{"returnTo":"/dashboard","nonce":"a8f3k2","provider":"github"}"#,
        r#"{"filters":[{"field":"status","op":"eq","value":"open"}],"order":"created_at desc"}"#,
        r#"{"cart":[{"sku":"A-100","qty":2},{"sku":"B-7","qty":1}],"coupon":"WINTER10"}"#,
        "Hello, I would like to cancel my order #4412 and get a refund. Thanks!",
        "/home/alice/documents/report-2024.pdf",
    ] {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text);
        let body = format!(
            "state={}",
            b64.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        let form = b"POST /sso HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let f = s.http_request(form, body.as_bytes());
        assert!(
            f.iter().all(|f| f.class == "email"),
            "{text}: {:?}",
            got(&f)
        );
    }
    // A token is no text, and text without an attack is clean.
    let head = b"GET /x?t=3q2+7w8fFzY0ZWFkYmVlZg==&h=ZmFjZWJvb2s6Ly9sb2dpbg HTTP/1.1\r\n\r\n";
    assert!(s.http_request(head, b"").is_empty());
}

/// A gRPC call's messages: each text field of the protobuf message is a value named by
/// its field numbers (no schema needed), so an injection in `GetUser{name}` is found
/// where it is; numbers and nested messages are read as protobuf lays them out.
#[test]
fn grpc_messages_are_read_field_by_field() {
    let s = all(true);
    let head = b"POST /shop.Users/Get HTTP/2\r\nhost: users:50051\r\ncontent-type: application/grpc\r\nte: trailers\r\n\r\n";
    let ld = |n: u8, v: &[u8]| [vec![n << 3 | 2, v.len() as u8], v.to_vec()].concat();
    let framed = |m: &[u8]| [vec![0, 0, 0, 0, m.len() as u8], m.to_vec()].concat();
    let filter = ld(1, b"bob");
    let msg = [
        vec![1 << 3, 42],
        ld(2, b"x' UNION SELECT password FROM users--"),
        ld(3, &filter),
        ld(4, b"4111 1111 1111 1111"),
    ]
    .concat();
    let g = got(&s.http_request(head, &framed(&msg)));
    assert!(g.contains(&("sqli".into(), "body:grpc:2".into())), "{g:?}");
    assert!(
        g.contains(&("credit_card".into(), "body:grpc:4".into())),
        "{g:?}"
    );
    // A clean call, and gRPC+JSON.
    let clean = [ld(2, b"O'Brien"), ld(3, &filter)].concat();
    assert_eq!(got(&s.http_request(head, &framed(&clean))), []);
    let json_head = b"POST /shop.Users/Get HTTP/2\r\ncontent-type: application/grpc+json\r\n\r\n";
    let g = got(&s.http_request(json_head, &framed(br#"{"name":"1' OR '1'='1"}"#)));
    assert_eq!(g, [("sqli".to_string(), "body:json:name".to_string())]);
}

/// A form with a file input: each field is judged as a value and an upload's file
/// name as one, as the application reads them; the file's content is no parameter.
#[test]
fn multipart_fields_and_file_names() {
    let s = all(true);
    let head = b"POST /upload HTTP/1.1\r\nHost: x\r\n\
Content-Type: multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\r\n";
    let part = |headers: &str, content: &str| {
        format!("------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n{headers}\r\n\r\n{content}\r\n")
    };
    let body = [
        part(
            "Content-Disposition: form-data; name=\"title\"",
            "1' UNION SELECT password FROM users--",
        ),
        part(
            "Content-Disposition: form-data; name=\"doc\"; filename=\"..\\..\\etc\\cron.d\\x\"\r\nContent-Type: text/plain",
            "notes: SELECT * FROM t WHERE a='b' OR 1=1 --",
        ),
        "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n".into(),
    ]
    .concat();
    let mut g = got(&s.http_request(head, body.as_bytes()));
    g.sort();
    assert_eq!(
        g,
        vec![
            (
                "path_traversal".into(),
                "body:multipart:filename:doc".into()
            ),
            ("sqli".into(), "body:multipart:title".into()),
        ]
    );
    // A plain upload is clean, whatever its file holds.
    let benign = [
        part(
            "Content-Disposition: form-data; name=\"title\"",
            "Quarterly report, Q3",
        ),
        part(
            "Content-Disposition: form-data; name=\"doc\"; filename=\"report 2026.txt\"",
            "<script>alert(1)</script> ' OR 1=1 --",
        ),
        "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n".into(),
    ]
    .concat();
    assert_eq!(got(&s.http_request(head, benign.as_bytes())), vec![]);
    // Uploads a server would run or obey (a web shell, per-directory configuration, a
    // white-space-spaced config file name) are judged as uploads, the same name in a
    // field is not; the reference path agrees (`Sensor::value` at the same location).
    for name in ["shell.php", "wp-config. php", ".user.ini", "cmd.aspx."] {
        let upload = [
            part(
                &format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\""),
                "<?php system($_GET['c']); ?>",
            ),
            part("Content-Disposition: form-data; name=\"name\"", name),
            "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n".into(),
        ]
        .concat();
        assert_eq!(
            got(&s.http_request(head, upload.as_bytes())),
            vec![(
                "path_traversal".into(),
                "body:multipart:filename:file".into()
            )],
            "{name}"
        );
        assert_eq!(
            got(&s.value("body:multipart:filename:file", name.as_bytes())).len(),
            1,
            "{name}"
        );
        assert_eq!(
            got(&s.value("body:multipart:name", name.as_bytes())),
            vec![],
            "{name}"
        );
        // A raw-body upload names its file in a header.
        let head = format!("PUT /upload HTTP/1.1\r\nHost: x\r\nX-File-Name: {name}\r\n\r\n");
        assert_eq!(
            got(&s.http_request(head.as_bytes(), b"plain file content")),
            vec![("path_traversal".into(), "header:x-file-name".into())],
            "{name}"
        );
        assert_eq!(
            got(&s.value("header:x-filename", name.as_bytes())).len(),
            1,
            "{name}"
        );
    }
}

#[test]
fn benign_request_is_clean() {
    let s = all(true);
    let head = b"GET /search?q=red+shoes&page=2&sort=price-asc HTTP/1.1\r\nHost: shop.example\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Referer: https://shop.example/home?x=1\r\nCookie: sid=abc123; lang=en-US\r\nAccept: */*\r\n\r\n";
    assert_eq!(s.http_request(head, b""), vec![]);
}

/// `Host` is application input too (applications put it in queries, links and logs:
/// PHP's `$_SERVER['HTTP_HOST']`): an attack there is found; the forms hosts take
/// (ports, IPv6 literals, cluster service names, punycode) stay clean.
#[test]
fn the_host_header_is_read() {
    let s = all(true);
    let head = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n");
    for (host, class) in [
        ("x' OR 1=1-- ", "sqli"),
        ("evil.example;cat /etc/passwd", "cmdi"),
        ("../../../../etc/passwd", "path_traversal"),
    ] {
        let g = got(&s.http_request(head(host).as_bytes(), b""));
        assert!(
            g.contains(&(class.into(), "header:host".into())),
            "{host}: {g:?}"
        );
    }
    for host in [
        "example.com",
        "api.example.com:8443",
        "[2001:db8::1]:8080",
        "10.244.0.32:8080",
        "localhost",
        "my-svc.my-namespace.svc.cluster.local",
        "xn--bcher-kva.example",
    ] {
        assert_eq!(s.http_request(head(host).as_bytes(), b""), vec![], "{host}");
    }
}

/// A header line the sensor found clean is remembered and skipped next time; what
/// it means must not depend on anything outside the line. A folded continuation line
/// belongs to the field above it: under `Accept` (not inspected) it is clean, under
/// `User-Agent` the same bytes are an attack, whatever came first.
#[test]
fn remembered_lines_mean_the_same_everywhere() {
    // DLP with built-in kinds only, with a user pattern, and off.
    for (dlp, patterns) in [
        (DlpKind::ALL.to_vec(), false),
        (vec![], false),
        (vec![], true),
    ] {
        let patterns = if patterns {
            vec![PatternSpec {
                name: "employee_id".into(),
                regex: r"EMP-[0-9]{6}".into(),
                contexts: vec![Context::Header],
            }]
        } else {
            vec![]
        };
        let s = Sensor::new(&SensorSpec {
            name: "s2".into(),
            block: true,
            attacks: Attack::ALL.to_vec(),
            dlp,
            patterns,
        })
        .unwrap();
        remembered_lines_in(&s);
    }
}

fn remembered_lines_in(s: &Sensor) {
    let folded = " <script>alert(document.cookie)</script>\r\n";
    for _ in 0..3 {
        let quiet = format!("GET / HTTP/1.1\r\nAccept: text/html\r\n{folded}\r\n");
        assert_eq!(got(&s.http_request(quiet.as_bytes(), b"")), vec![]);
    }
    let loud = format!("GET / HTTP/1.1\r\nUser-Agent: x\r\n{folded}\r\n");
    assert_eq!(
        got(&s.http_request(loud.as_bytes(), b"")),
        vec![("xss".into(), "header:user-agent".into())]
    );
    // A line after the head's end is not inspected, so it is not remembered either:
    // the same line inside the next head is.
    let line = "X-Note: 1' UNION SELECT password FROM users--\r\n";
    let after = format!("GET / HTTP/1.1\r\n\r\n{line}");
    assert_eq!(got(&s.http_request(after.as_bytes(), b"")), vec![]);
    let inside = format!("GET / HTTP/1.1\r\n{line}\r\n");
    assert_eq!(
        got(&s.http_request(inside.as_bytes(), b"")),
        vec![("sqli".into(), "header:x-note".into())]
    );
}

/// Heads a strict parser refuses are still inspected line by line: a payload after
/// a hundred headers (`httparse`'s limit, past which the sensor once saw only the
/// target), or in a field whose name has a blank before its colon.
#[test]
fn odd_heads_are_inspected_too() {
    let s = all(true);
    let mut head = String::from("GET /x HTTP/1.1\r\n");
    for i in 0..120 {
        head.push_str(&format!("X-Pad-{i}: {i}\r\n"));
    }
    head.push_str("X-Last: ../../../../etc/passwd\r\n\r\n");
    assert_eq!(
        got(&s.http_request(head.as_bytes(), b"")),
        vec![("path_traversal".into(), "header:x-last".into())]
    );
    // A target with blanks in it, as scanners write it raw: read whole, as lenient
    // servers read it (a proxy refuses the line).
    let raw = "GET /?id=1' UNION SELECT NULL-- HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        got(&s.http_request(raw.as_bytes(), b"")),
        vec![("sqli".into(), "query:id".into())]
    );
    let spaced = "GET /x HTTP/1.1\r\nX-Cmd : ;cat /etc/passwd\r\n\r\n";
    assert!(
        got(&s.http_request(spaced.as_bytes(), b""))
            .iter()
            .any(|(c, _)| c == "cmdi" || c == "path_traversal")
    );
}

#[test]
fn sql_statements() {
    let s = all(true);
    let f = s.sql(b"SELECT * FROM users WHERE name = '' OR '1'='1'");
    assert_eq!(got(&f), vec![("sqli".into(), "sql".into())]);
    assert!(
        s.sql(b"SELECT id, name FROM users WHERE id = $1")
            .is_empty()
    );
    let f = s.sql(b"INSERT INTO c (n) VALUES ('378282246310005')");
    assert_eq!(got(&f), vec![("credit_card".into(), "sql".into())]);
}

#[test]
fn stream_reports_with_the_completing_chunk() {
    let s = all(true);
    let mut st = s.stream(true);
    assert!(st.feed(b"{\"card\":\"4111 1111 ").is_empty());
    let f = st.feed(b"1111 1111\",\"mail\":\"jane@example.com\"}");
    assert_eq!(
        got(&f),
        vec![
            ("credit_card".into(), "response body".into()),
            ("email".into(), "response body".into())
        ]
    );
    assert!(
        st.feed(b"4111 1111 1111 1111").is_empty(),
        "one report per class and stream"
    );
    // Url-only user patterns do not apply to payload streams.
    assert!(s.stream(false).feed(b"EMP-123456").is_empty());
}

proptest! {
    #[test]
    fn http_request_never_panics(head in proptest::collection::vec(any::<u8>(), 0..512),
                                 body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let s = all(true);
        for f in s.http_request(&head, &body) {
            prop_assert!(f.masked.chars().count() <= 96);
        }
        let _ = s.sql(&body);
        let _ = s.body(&body, None);
        let _ = s.value("v", &body);
    }

    #[test]
    fn stream_chunks_find_what_the_whole_finds(cut in 1usize..40) {
        let s = all(true);
        let data = b"x 4111-1111-1111-1111 y 123 45 6789 z AKIAIOSFODNN7EXAMPLE q a.b@c.example.com -----BEGIN RSA PRIVATE KEY-----";
        let mut whole: Vec<String> = s.stream(true).feed(data).into_iter().map(|f| f.class).collect();
        let mut st = s.stream(true);
        let mut got: Vec<String> = data.chunks(cut).flat_map(|c| st.feed(c)).map(|f| f.class).collect();
        whole.sort();
        got.sort();
        prop_assert_eq!(got, whole);
    }
}

/// Bytes rich in what the tokenizers branch on, so fuzzing reaches deep states.
fn markup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\"".to_vec()),
        Just(b";".to_vec()),
        Just(b"|".to_vec()),
        Just(b"`".to_vec()),
        Just(b"$(".to_vec()),
        Just(b"../".to_vec()),
        Just(b"%".to_vec()),
        Just(b"%u00".to_vec()),
        Just(b"&#".to_vec()),
        Just(b"--".to_vec()),
        Just(b"/*".to_vec()),
        Just(b"OR 1=1".to_vec()),
        Just(b"script".to_vec()),
        Just(b" onerror=".to_vec()),
        Just(b"cat ".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"${IFS}".to_vec()),
        Just(b"0x5c".to_vec()),
        Just(b"\xc0".to_vec()),
        Just(b"{".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn detectors_never_panic(v in markup()) {
        for a in Attack::ALL {
            let _ = bulkhead_sensor::attack::detect(a, &v);
        }
        let _ = bulkhead_sensor::sqli::query::injected(&v);
        let _ = all(true).value("v", &v);
    }
}

/// Bodies as the frameworks behind the proxy read them, where a stricter or a different
/// reading let an injection pass unread (each case passed before):
/// JSON that `serde_json` refuses but Node and Python take, with a byte order mark, or
/// in UTF-16; a multipart field behind a second Content-Disposition that names a file,
/// or named a file only by `filename*` (PHP reads both as fields); a boundary parameter
/// found inside another parameter's name; a value past 16 KiB of padding.
#[test]
fn bodies_are_read_as_the_frameworks_read_them() {
    let s = all(true);
    const SQLI: &str = "1' UNION SELECT password FROM users--";
    let post = |ct: &str, body: &[u8]| {
        let head = format!("POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n\r\n");
        got(&s.http_request(head.as_bytes(), body))
            .into_iter()
            .filter(|(class, _)| class == "sqli")
            .map(|(_, loc)| loc)
            .collect::<Vec<_>>()
    };
    let json = "application/json";
    let found = post(json, format!(r#"{{"n":1e400,"q":"{SQLI}"}}"#).as_bytes());
    assert!(!found.is_empty(), "1e400");
    let found = post(
        json,
        br#"{"s":"\udc00","q":"1\u0027 UNION SELECT password FROM users--"}"#,
    );
    assert!(!found.is_empty(), "lone surrogate");
    let bom = [
        &b"\xef\xbb\xbf"[..],
        format!(r#"{{"q":"{SQLI}"}}"#).as_bytes(),
    ]
    .concat();
    assert_eq!(post(json, &bom), ["body:json:q"], "BOM");
    let utf16: Vec<u8> = format!(r#"{{"q":"{SQLI}"}}"#)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(post(json, &utf16), ["body:json:q"], "UTF-16");

    let multipart = "multipart/form-data; boundary=B";
    let part = |headers: &str| format!("--B\r\n{headers}\r\n\r\n{SQLI}\r\n--B--\r\n").into_bytes();
    let two = part(
        "Content-Disposition: form-data; name=\"comment\"\r\nContent-Disposition: form-data; name=\"comment\"; filename=\"a.txt\"",
    );
    assert_eq!(
        post(multipart, &two),
        ["body:multipart:comment"],
        "two dispositions"
    );
    let star = part("Content-Disposition: form-data; name=\"comment\"; filename*=UTF-8''a.txt");
    assert_eq!(
        post(multipart, &star),
        ["body:multipart:comment"],
        "filename*"
    );
    // A plain file name: an upload, its content left to DLP (as before).
    let file = part("Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"");
    assert!(post(multipart, &file).is_empty());
    let decoy = format!(
        "--AAA\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n--BBB\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n{SQLI}\r\n--BBB--\r\n--AAA--\r\n"
    );
    let found = post(
        "multipart/form-data; xboundary=AAA; boundary=BBB",
        decoy.as_bytes(),
    );
    assert_eq!(found, ["body:multipart:q"], "xboundary");

    let pad = "a".repeat(20 * 1024);
    let long = part("Content-Disposition: form-data; name=\"comment\"");
    let long = String::from_utf8(long)
        .unwrap()
        .replace(SQLI, &format!("{pad} {SQLI}"));
    assert_eq!(
        post(multipart, long.as_bytes()),
        ["body:multipart:comment"],
        "padded field"
    );
    let text = format!("{pad}\n{SQLI}");
    assert_eq!(post("text/plain", text.as_bytes()), ["body"], "padded text");
}

/// Values judged whole and where applications read them (each passed before):
/// an attack after 8 KiB of padding inside its value, or after 256 harmless tokens
/// (`1-0-0-...-0 UNION SELECT`), or after 4 KiB ahead of a command; a value holding
/// `;`, which PHP, Express, Werkzeug and Go leave in the value (`ip=127.0.0.1;id`);
/// Basic credentials, which login code decodes and may put in a query.
#[test]
fn values_are_judged_whole_and_where_applications_read_them() {
    let s = all(true);
    let get = |target: &str, extra: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        got(&s.http_request(head.as_bytes(), b""))
    };
    let post = |body: &str| {
        let head = b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        got(&s.http_request(head, body.as_bytes()))
    };
    let has = |g: &[(String, String)], class: &str, loc: &str| {
        g.iter().any(|(c, l)| c == class && l == loc)
    };
    let pad = "x".repeat(8200);
    let g = post(&format!("q={pad}'+UNION+SELECT+password+FROM+users--+-"));
    assert!(has(&g, "sqli", "body:form:q"), "padded sqli: {g:?}");
    let g = post(&format!("c={pad}+%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"));
    assert!(has(&g, "xss", "body:form:c"), "padded xss: {g:?}");
    let g = post(&format!("ip={};cat+/etc/passwd", "1".repeat(4200)));
    assert!(has(&g, "cmdi", "body:form:ip"), "padded cmdi: {g:?}");
    let g = get(
        &format!(
            "/i?id=1{}%20UNION%20SELECT%20password%20FROM%20users",
            "-0".repeat(256)
        ),
        "",
    );
    assert!(has(&g, "sqli", "query:id"), "256 tokens first: {g:?}");
    let g = get("/ping?ip=127.0.0.1;id", "");
    assert!(has(&g, "cmdi", "query:ip"), "a value with ;: {g:?}");
    // ASP drops a `%` that starts no escape (sqlmap's percentage tamper, as sent).
    let g = get(
        "/item.asp?id=%1%%29%-%-%0A%A%N%D%-%-%0A%3%1%2%2%-%-%0A%L%I%K%E%-%-%0A%3%2%8%3%-%-%20%E%s%m%G",
        "",
    );
    assert!(has(&g, "sqli", "query:id"), "percentage tamper: {g:?}");
    let g = get("/shop?sale=50%off&q=100%%20cotton", "");
    assert!(g.is_empty(), "a bare percent: {g:?}");
    // `admin' OR '1'='1'-- :x`
    let g = get(
        "/",
        "Authorization: Basic YWRtaW4nIE9SICcxJz0nMSctLSA6eA==\r\n",
    );
    assert!(has(&g, "sqli", "header:authorization:user"), "Basic: {g:?}");
    // A bearer token that a product looks up in a table (FortiWeb, CVE-2025-25257); a
    // JWT is clean.
    let g = get(
        "/api/fabric/device/status",
        "Authorization: Bearer AAAAAA'or'1'='1\r\n",
    );
    assert!(
        has(&g, "sqli", "header:authorization:token"),
        "Bearer: {g:?}"
    );
    let jwt = "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\r\n";
    assert!(get("/", jwt).is_empty(), "a JWT");
    // PHP applications include language files Accept-Language names.
    let g = get("/", "Accept-Language: ../../../../etc/passwd%00\r\n");
    assert!(has(&g, "path_traversal", "header:accept-language"), "{g:?}");
    let g = get(
        "/",
        "Accept-Language: de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7\r\n",
    );
    assert!(g.is_empty(), "{g:?}");
    // Long benign text stays clean.
    let text = "The quick brown fox jumps over the lazy dog, again and again. ".repeat(300);
    assert!(post(&format!("c={}", text.replace(' ', "+"))).is_empty());
}

/// A JSON response writes a line end inside a string as `\n`: a card number or key at
/// the start of such a line is one the client's parser hands over on a line of its
/// own, so DLP reads the escape as the blank it stands for. (Before, `n4111...` had no
/// word boundary and the number passed unseen.)
#[test]
fn response_streams_read_escaped_line_ends_as_blanks() {
    let s = all(false);
    for body in [
        &br#"{"notes":"Card:\n4111111111111111"}"#[..],
        br#"{"k":"id:\tAKIAIOSFODNN7EXAMPLE"}"#,
    ] {
        let found: Vec<String> = s
            .stream(true)
            .feed(body)
            .into_iter()
            .map(|f| f.class)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: {found:?}",
            String::from_utf8_lossy(body)
        );
    }
    // An escaped backslash stays one: `\\n4111...` is no line end.
    let found = s.stream(true).feed(br#"{"p":"C:\\n4111111111111111"}"#);
    assert!(found.is_empty(), "{found:?}");
}

/// A body in a charset the detectors cannot read as sent (EBCDIC's cp037, UTF-16...):
/// Django, ASP.NET and servlet containers decode it before the application sees a
/// value, so an attack in it is invisible in the bytes. It is a finding of its own
/// (CRS 920480 restricts charsets alike); ASCII-compatible ones are read as they are.
#[test]
fn a_body_in_an_unreadable_charset_is_a_finding() {
    let s = all(true);
    let post = |ct: &str| {
        let head = format!("POST /s HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\n\r\n");
        got(&s.http_request(head.as_bytes(), b"q=%7D%40%E4%D5%C9%D6%D5"))
    };
    let unread = ("unreadable_charset".to_string(), "body".to_string());
    for ct in [
        "application/x-www-form-urlencoded; charset=cp037",
        "application/x-www-form-urlencoded; charset=IBM037",
        "application/json; charset=\"utf-16\"",
    ] {
        assert!(post(ct).contains(&unread), "{ct}");
    }
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded; charset=iso-8859-1",
        "application/x-www-form-urlencoded",
    ] {
        assert!(!post(ct).contains(&unread), "{ct}");
    }
}

/// A Socket.IO message (`42["event", ...]`) is JSON behind a packet type: read as JSON,
/// its strings unescaped as the server's `JSON.parse` hands them over. (Before, the
/// message was one raw value, and `\u0027` hid the quote of an injection.)
#[test]
fn socket_io_messages_are_read_as_their_json() {
    let s = all(true);
    for m in [
        &br#"42["login","admin\u0027 OR \u00271\u0027=\u00271"]"#[..],
        br#"451-/chat,["login","admin\u0027--"]"#,
        br#"42["note","\u003cscript\u003ealert(1)\u003c/script\u003e"]"#,
    ] {
        let g = got(&s.message(m));
        assert!(!g.is_empty(), "{}: {g:?}", String::from_utf8_lossy(m));
    }
    assert!(got(&s.message(br#"42["chat","hello there"]"#)).is_empty());
}
