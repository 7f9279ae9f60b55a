//! Errors as JSON: `{"error": MESSAGE, "diagnostics": [...], "findings": [...]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One problem in one input, as `bulkhead` prints it (`FILE:LINE:COLUMN: PATH: MESSAGE`).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Diag {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub path: String,
    pub message: String,
}

impl From<&bulkhead_manifest::Diagnostic> for Diag {
    fn from(d: &bulkhead_manifest::Diagnostic) -> Diag {
        Diag {
            file: d.file.clone(),
            line: d.line,
            column: d.column,
            path: d.path.clone(),
            message: d.message.clone(),
        }
    }
}

impl From<&bulkhead_policy::CompileError> for Diag {
    fn from(e: &bulkhead_policy::CompileError) -> Diag {
        Diag {
            file: e.origin.file.to_string(),
            line: e.origin.line,
            column: e.origin.column,
            path: String::new(),
            message: e.message.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: msg.into(),
            diagnostics: Vec::new(),
            findings: Vec::new(),
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, msg)
    }
    pub fn internal(msg: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
    /// Input that does not decode or compile: 422 with every diagnostic.
    pub fn invalid(msg: impl Into<String>, diagnostics: Vec<Diag>) -> ApiError {
        ApiError {
            diagnostics,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<bulkhead_store::Error> for ApiError {
    fn from(e: bulkhead_store::Error) -> ApiError {
        ApiError::internal(format!("store: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("worker: {e}"))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
