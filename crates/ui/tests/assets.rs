//! Every asset the page references is embedded and served with the right type and
//! caching; the redirects keep the token; nothing outside the assets is served.

use std::net::SocketAddr;
use std::path::Path;

fn spawn() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, bulkhead_ui::router::<()>()).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn get(a: &ureq::Agent, url: &str, if_none_match: Option<&str>) -> Got {
    let mut req = a.get(url);
    if let Some(t) = if_none_match {
        req = req.header("If-None-Match", t);
    }
    let mut r = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Got {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    }
}

/// `src="..."` and `href="..."` values of a page, without fragments and queries, that
/// name files next to it.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            let v = &rest[..end];
            rest = &rest[end..];
            if v.starts_with('#') || v.contains("://") {
                continue;
            }
            let v = v.split(['?', '#']).next().unwrap();
            out.push(v.to_string());
        }
    }
    out
}

fn expected_type(path: &str) -> &'static str {
    if path.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else if path.ends_with(".css") {
        "text/css; charset=utf-8"
    } else if path.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        panic!("{path}: the page references a kind of file this test does not know")
    }
}

fn assets_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"))
}

#[test]
fn every_referenced_asset_is_embedded_and_served_with_its_type() {
    let addr = spawn();
    let a = agent();
    let index = get(&a, &format!("http://{addr}/ui/"), None);
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(index.header("referrer-policy"), Some("no-referrer"));
    let csp = index.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    let html = String::from_utf8(index.body.clone()).unwrap();
    assert_eq!(
        index.body,
        std::fs::read(assets_dir().join("index.html")).unwrap()
    );

    let refs = references(&html);
    for must in ["app.js", "app.css", "vendor/cytoscape.min.js"] {
        assert!(
            refs.iter().any(|r| r == must),
            "index.html does not load {must}"
        );
    }
    for r in &refs {
        let got = get(&a, &format!("http://{addr}/ui/{r}"), None);
        assert_eq!(got.status, 200, "{r}");
        assert_eq!(got.header("content-type"), Some(expected_type(r)), "{r}");
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        // Served from the binary: the same bytes as the file in the repository.
        assert_eq!(
            got.body,
            std::fs::read(assets_dir().join(r)).unwrap(),
            "{r} differs from assets/{r}"
        );
        assert_eq!(
            Some(got.body.clone()),
            bulkhead_ui::asset(r),
            "{r} is not embedded"
        );
        let etag = got.header("etag").expect("an ETag").to_string();
        let again = get(&a, &format!("http://{addr}/ui/{r}"), Some(&etag));
        assert_eq!(again.status, 304, "{r} with If-None-Match");
        assert!(again.body.is_empty());
    }
    let vendor = get(
        &a,
        &format!("http://{addr}/ui/vendor/cytoscape.min.js"),
        None,
    );
    assert_eq!(
        vendor.header("cache-control"),
        Some("public, max-age=86400")
    );
    let app = get(&a, &format!("http://{addr}/ui/app.js"), None);
    assert_eq!(app.header("cache-control"), Some("no-cache"));
    // The vendored library travels with its license.
    let license = get(
        &a,
        &format!("http://{addr}/ui/vendor/cytoscape.LICENSE"),
        None,
    );
    assert_eq!(license.status, 200);
    let license = String::from_utf8(license.body).unwrap();
    assert!(license.contains("Permission is hereby granted"));
}

#[test]
fn every_file_under_assets_is_embedded() {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut on_disk = Vec::new();
    walk(assets_dir(), assets_dir(), &mut on_disk);
    on_disk.sort();
    let mut embedded: Vec<String> = bulkhead_ui::assets().collect();
    embedded.sort();
    assert_eq!(embedded, on_disk);
}

#[test]
fn redirects_keep_the_token_and_nothing_else_is_served() {
    let addr = spawn();
    let a = agent();
    let r = get(&a, &format!("http://{addr}/?token=s3cret"), None);
    assert!(matches!(r.status, 303 | 307 | 308), "{}", r.status);
    assert_eq!(r.header("location"), Some("/ui/?token=s3cret"));
    let r = get(&a, &format!("http://{addr}/"), None);
    assert_eq!(r.header("location"), Some("/ui/"));
    let r = get(&a, &format!("http://{addr}/ui"), None);
    assert_eq!(r.header("location"), Some("/ui/"));
    for bad in [
        "/ui/nope.js",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/..%2fCargo.toml",
        "/ui/vendor/",
        "/ui/.hidden",
    ] {
        let r = get(&a, &format!("http://{addr}{bad}"), None);
        assert_eq!(r.status, 404, "{bad}");
    }
}
