//! Policy files: list, read, create, replace, delete. A change is validated as the
//! whole resulting set (decode, compile with the engine, lint errors): a bad one is
//! refused with 422 and every diagnostic, and nothing on disk changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::workspace::finding_json;

#[derive(Serialize)]
pub struct Document {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub line: u32,
}

#[derive(Serialize)]
pub struct PolicyFile {
    /// The file name in the policy directory (what the other routes take), or the
    /// path as given for files elsewhere.
    pub file: String,
    pub path: String,
    pub documents: Vec<Document>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The policy documents of the current set, by the file they come from.
fn documents(l: &crate::workspace::Loaded, path: &str) -> Vec<Document> {
    let p = l.engine.policy();
    let mut out = Vec::new();
    for g in p.groups.iter().filter(|g| &*g.origin.file == path) {
        out.push(Document {
            kind: "Group",
            namespace: None,
            name: g.name.clone(),
            line: g.origin.line,
        });
    }
    for x in p.policies.iter().filter(|x| &*x.origin.file == path) {
        out.push(Document {
            kind: "Policy",
            namespace: x.namespace.clone(),
            name: x.name.clone(),
            line: x.origin.line,
        });
    }
    for x in p
        .network_policies
        .iter()
        .filter(|x| &*x.origin.file == path)
    {
        out.push(Document {
            kind: "NetworkPolicy",
            namespace: Some(x.namespace.clone()),
            name: x.name.clone(),
            line: x.origin.line,
        });
    }
    for x in p.sensors.iter().filter(|x| &*x.origin.file == path) {
        out.push(Document {
            kind: "Sensor",
            namespace: None,
            name: x.name.clone(),
            line: x.origin.line,
        });
    }
    out.sort_by_key(|d| d.line);
    out
}

fn short_name(s: &AppState, path: &str) -> String {
    let p = std::path::Path::new(path);
    match (s.workspace.policy_dir(), p.parent(), p.file_name()) {
        (Ok(dir), Some(parent), Some(name)) if parent == dir => name.to_string_lossy().into(),
        _ => path.to_string(),
    }
}

pub async fn list(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<PolicyFile>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        Ok(Json(
            l.sources
                .iter()
                .map(|src| PolicyFile {
                    file: short_name(&s, &src.name),
                    path: src.name.clone(),
                    documents: documents(&l, &src.name),
                    text: None,
                })
                .collect(),
        ))
    })
    .await
}

pub async fn get(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> ApiResult<Json<PolicyFile>> {
    blocking(move || {
        let path = s.workspace.file_path(&file)?.display().to_string();
        let l = s.workspace.current()?;
        let src = l
            .sources
            .iter()
            .find(|src| src.name == path)
            .ok_or_else(|| ApiError::not_found(format!("no policy file {file}")))?;
        Ok(Json(PolicyFile {
            file,
            path: src.name.clone(),
            documents: documents(&l, &src.name),
            text: Some(src.text.clone()),
        }))
    })
    .await
}

#[derive(Deserialize, Default)]
pub struct WriteParams {
    /// Validate and lint only; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize)]
pub struct Written {
    pub file: String,
    pub written: bool,
    pub created: bool,
    /// Lint warnings of the resulting set (errors refuse the change).
    pub findings: Vec<serde_json::Value>,
}

async fn write(
    s: Arc<AppState>,
    file: String,
    text: Option<String>,
    must_be_new: bool,
    dry_run: bool,
) -> ApiResult<(StatusCode, Json<Written>)> {
    let held = s.clone();
    let _guard = held.workspace.write_lock.lock().await;
    blocking(move || {
        let path = s.workspace.file_path(&file)?;
        let exists = path.exists();
        if must_be_new && exists {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{file} exists: PUT replaces it"),
            ));
        }
        if text.is_none() && !exists {
            return Err(ApiError::not_found(format!("no policy file {file}")));
        }
        let findings = if dry_run {
            let name = path.display().to_string();
            let mut sources: Vec<_> = s
                .workspace
                .read_policy()?
                .into_iter()
                .filter(|src| src.name != name)
                .collect();
            if let Some(t) = &text {
                sources.push(bulkhead_manifest::Source {
                    name,
                    text: t.clone(),
                });
            }
            s.workspace.check(&sources)?.1.findings
        } else {
            s.workspace.apply(&path, text.as_deref())?
        };
        let created = text.is_some() && !exists;
        Ok((
            if created && !dry_run {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(Written {
                file,
                written: !dry_run,
                created,
                findings: findings.iter().map(finding_json).collect(),
            }),
        ))
    })
    .await
}

/// PUT: the body is the file's new text (YAML or JSON, as a user writes it).
pub async fn put(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(q): Query<WriteParams>,
    body: String,
) -> ApiResult<(StatusCode, Json<Written>)> {
    write(s, file, Some(body), false, q.dry_run).await
}

#[derive(Deserialize)]
pub struct CreateBody {
    /// The new file's name in the policy directory, e.g. `shop.yaml`.
    pub file: String,
    /// Its text.
    pub text: String,
}

/// POST: a new file (409 if it exists).
pub async fn create(
    State(s): State<Arc<AppState>>,
    Query(q): Query<WriteParams>,
    Json(b): Json<CreateBody>,
) -> ApiResult<(StatusCode, Json<Written>)> {
    write(s, b.file, Some(b.text), true, q.dry_run).await
}

/// DELETE: refused (422) when the rest no longer compiles, e.g. a group still used.
pub async fn delete(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(q): Query<WriteParams>,
) -> ApiResult<(StatusCode, Json<Written>)> {
    write(s, file, None, false, q.dry_run).await
}

/// The lint findings of the current set (as `bulkhead policy lint -o json`).
pub async fn lint(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<serde_json::Value>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        Ok(Json(
            bulkhead_analyze::lint::lint(&l.engine)
                .iter()
                .map(finding_json)
                .collect(),
        ))
    })
    .await
}

/// The response rules of the current set (what to do about events), as decoded.
pub async fn responses(State(s): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let l = s.workspace.current()?;
        let set = serde_json::to_value(l.engine.policy()).map_err(ApiError::internal)?;
        Ok(Json(
            set.get("responses")
                .cloned()
                .unwrap_or(serde_json::Value::Array(Vec::new())),
        ))
    })
    .await
}
