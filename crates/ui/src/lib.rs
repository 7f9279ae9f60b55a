//! bulkhead-ui: the web UI, served by the bulkhead server itself. The assets (HTML,
//! plain JavaScript, CSS, and the vendored `cytoscape.min.js` with its license) are
//! embedded in the binary with `rust-embed`: there is no build step and nothing to
//! install at run time. The page talks to the REST API under `/api/v1` with the same
//! bearer token as every other client.
//!
//! Mount it next to the API, outside the token check (the page itself holds no data and
//! asks for the token; every API call it makes carries it):
//!
//! ```ignore
//! let (api, table) = bulkhead_server::routes::router(state);
//! let app = api.merge(bulkhead_ui::router());
//! ```

#![forbid(unsafe_code)]

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Where the UI lives.
pub const PREFIX: &str = "/ui/";

/// What the page may load and run: only its own scripts and styles (cytoscape sets
/// element styles from script, hence `'unsafe-inline'` for styles only), and only the
/// API of the server that served it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/` and `/ui` redirect to `/ui/` (keeping the query, so `/?token=T` works),
/// `/ui/` is the page, `/ui/{path}` its assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(to_index))
        .route("/ui", get(to_index))
        .route(
            "/ui/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>, h: HeaderMap| async move { serve(&p, &h) }),
        )
}

async fn to_index(RawQuery(q): RawQuery) -> Redirect {
    match q {
        Some(q) if !q.is_empty() => Redirect::to(&format!("{PREFIX}?{q}")),
        _ => Redirect::to(PREFIX),
    }
}

/// The embedded asset names (`index.html`, `app.js`, `vendor/cytoscape.min.js`, ...).
pub fn assets() -> impl Iterator<Item = String> {
    Assets::iter().map(|n| n.into_owned())
}

/// The embedded bytes of one asset.
pub fn asset(path: &str) -> Option<Vec<u8>> {
    Assets::get(path).map(|f| f.data.into_owned())
}

/// The `Content-Type` an asset is served with, from its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ if path.ends_with("LICENSE") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The `Cache-Control` of an asset. The page and the application change with the
/// server and are revalidated on every load (cheap: an ETag answers 304); the vendored
/// library changes only when it is vendored again.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("vendor/") {
        "public, max-age=86400"
    } else {
        "no-cache"
    }
}

fn serve(path: &str, req: &HeaderMap) -> Response {
    // Hidden files and parent references never name an asset.
    if path.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
        return not_found(path);
    }
    let Some(file) = Assets::get(path) else {
        return not_found(path);
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(path)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let matches = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    if path.ends_with(".html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        // The token may be in the address (`?token=`): never send it elsewhere.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    (headers, file.data.into_owned()).into_response()
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("no UI asset {path:?}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_caching() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("vendor/cytoscape.LICENSE"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type("x.bin"), "application/octet-stream");
        assert_eq!(cache_control("index.html"), "no-cache");
        assert_eq!(
            cache_control("vendor/cytoscape.min.js"),
            "public, max-age=86400"
        );
    }

    #[test]
    fn the_vendored_library_and_its_license_are_embedded() {
        let lib = asset("vendor/cytoscape.min.js").expect("cytoscape");
        assert!(lib.len() > 100_000);
        let license = String::from_utf8(asset("vendor/cytoscape.LICENSE").unwrap()).unwrap();
        assert!(license.contains("Permission is hereby granted"));
    }
}
