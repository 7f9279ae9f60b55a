//! The OpenAPI 3.1 document, written by hand next to the routes (`openapi.json`) and
//! served at `/api/v1/openapi.json`. A test checks that its paths and methods are
//! exactly the router's (see [`crate::RouteTable`]).

use axum::http::header;
use axum::response::IntoResponse;

/// The document as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn handler() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// Every (METHOD, path) the document describes.
pub fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    out.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_every_operation_has_an_id_and_responses() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let ops = super::operations(&doc);
        assert!(ops.len() > 20);
        let mut ids = std::collections::BTreeSet::new();
        for (m, p) in &ops {
            let op = &doc["paths"][p][m.to_ascii_lowercase()];
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p}: no operationId"));
            assert!(ids.insert(id.to_string()), "{id} twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {p}"
            );
            // Path parameters are declared.
            for seg in p.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(
                        doc["paths"][p]["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten(),
                    )
                    .any(|x| x["name"] == name && x["in"] == "path");
                assert!(declared, "{m} {p}: path parameter {name} not declared");
            }
        }
    }
}
