//! Explain and matrix over the current files: the same engine calls and the same JSON
//! as `bulkhead explain -o json` and `bulkhead analyze matrix -o json`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bulkhead_analyze::endpoint;
use bulkhead_analyze::matrix::{self as m, Family, Matrix};
use bulkhead_model::L4;
use bulkhead_policy::Connection;
use serde::Deserialize;

use super::blocking;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Clone, Debug)]
pub struct ExplainQuery {
    /// `NAMESPACE/NAME`, a unique `NAME`, or an IP address.
    pub src: String,
    /// As `src`, or a DNS name.
    pub dst: String,
    /// `TCP/80`, `UDP/53`, `ICMP`, ...
    pub service: String,
    /// An L7 request: `http GET /path`, `redis FLUSHALL`, ...
    #[serde(default)]
    pub request: Option<String>,
    /// `json` (default), `yaml` or `text` (what `bulkhead explain -o json|yaml|table`
    /// prints).
    #[serde(default)]
    pub format: Option<String>,
}

fn explain(s: &AppState, q: ExplainQuery) -> ApiResult<Response> {
    let l = s.workspace.current()?;
    let e = &l.engine;
    let src =
        endpoint::resolve(e, &q.src).map_err(|err| ApiError::bad_request(format!("src: {err}")))?;
    let dst =
        endpoint::resolve(e, &q.dst).map_err(|err| ApiError::bad_request(format!("dst: {err}")))?;
    let l4: L4 = q
        .service
        .parse()
        .map_err(|err: String| ApiError::bad_request(format!("service: {err}")))?;
    let request = q
        .request
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(bulkhead_policy::l7::parse_request)
        .transpose()
        .map_err(|err| ApiError::bad_request(format!("request: {err}")))?;
    let x = e.explain(&Connection {
        src: &src,
        dst: &dst,
        l4,
        l7: request.as_ref(),
    });
    // JSON and YAML as `bulkhead explain -o json|yaml` prints them, field order included.
    let (ctype, body) = match q.format.as_deref() {
        None | Some("json") => (
            "application/json",
            serde_json::to_string_pretty(&x).map_err(ApiError::internal)? + "\n",
        ),
        Some("yaml") => (
            "application/yaml",
            serde_saphyr::to_string(&x).map_err(ApiError::internal)?,
        ),
        Some("text") => ("text/plain; charset=utf-8", x.to_text()),
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format {f:?}: json, yaml or text"
            )));
        }
    };
    Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
}

pub async fn explain_get(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ExplainQuery>,
) -> ApiResult<Response> {
    blocking(move || explain(&s, q)).await
}

pub async fn explain_post(
    State(s): State<Arc<AppState>>,
    Json(q): Json<ExplainQuery>,
) -> ApiResult<Response> {
    blocking(move || explain(&s, q)).await
}

#[derive(Deserialize, Default)]
pub struct MatrixQuery {
    /// Comma-separated probes (`TCP/80,UDP/53`); default: TCP/80, TCP/81, UDP/53, SCTP/80.
    #[serde(default)]
    pub probes: Option<String>,
    /// `ipv4` (default) or `ipv6`.
    #[serde(default)]
    pub family: Option<String>,
}

pub fn matrix_of(s: &AppState, q: &MatrixQuery) -> ApiResult<Matrix> {
    let probes: Vec<L4> = match q.probes.as_deref().filter(|p| !p.is_empty()) {
        None => bulkhead_analyze::default_probes(),
        Some(p) => p
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<L4>()
                    .map_err(|e| ApiError::bad_request(format!("probe {x}: {e}")))
            })
            .collect::<ApiResult<_>>()?,
    };
    let family = match q.family.as_deref() {
        None | Some("ipv4") => Family::V4,
        Some("ipv6") => Family::V6,
        Some(f) => return Err(ApiError::bad_request(format!("family {f:?}: ipv4 or ipv6"))),
    };
    let l = s.workspace.current()?;
    Ok(m::matrix(&l.engine, &probes, family))
}

pub async fn matrix(
    State(s): State<Arc<AppState>>,
    Query(q): Query<MatrixQuery>,
) -> ApiResult<Json<Matrix>> {
    blocking(move || matrix_of(&s, &q).map(Json)).await
}
