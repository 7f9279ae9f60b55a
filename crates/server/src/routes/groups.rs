//! Groups and their modes. A mode change edits the one `mode:` line of the Group in its
//! file (as `bulkhead group mode` does), validated as a whole set first.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bulkhead_policy::spec::Mode;
use bulkhead_policy::{Engine, WorkloadId};
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Does the compiled group `i` select workload `id`?
fn selects(e: &Engine, i: usize, id: WorkloadId) -> bool {
    match (e.compiled().groups.get(i), e.identity_of(id)) {
        (Some(g), Some(identity)) => e.selected(g.members).contains(identity),
        _ => false,
    }
}

/// The names of the groups that select a workload.
pub fn of_workload(e: &Engine, id: WorkloadId) -> Vec<String> {
    e.policy()
        .groups
        .iter()
        .enumerate()
        .filter(|(i, _)| selects(e, *i, id))
        .map(|(_, g)| g.name.clone())
        .collect()
}

#[derive(Serialize)]
pub struct GroupOut {
    pub name: String,
    pub mode: Mode,
    pub sensors: Vec<String>,
    /// Which of the members' connections the sensors read.
    pub inspect: bulkhead_policy::spec::Inspect,
    pub file: String,
    pub line: u32,
    /// `namespace/name` of its members.
    pub workloads: Vec<String>,
}

pub async fn list(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<GroupOut>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        let e = &l.engine;
        let all = e.workloads();
        Ok(Json(
            e.policy()
                .groups
                .iter()
                .enumerate()
                .map(|(i, g)| GroupOut {
                    name: g.name.clone(),
                    mode: g.mode,
                    sensors: g.sensors.clone(),
                    inspect: g.inspect,
                    file: g.origin.file.to_string(),
                    line: g.origin.line,
                    workloads: all
                        .iter()
                        .filter(|(id, _)| selects(e, i, *id))
                        .map(|(_, w)| format!("{}/{}", w.key.namespace, w.key.name))
                        .collect(),
                })
                .collect(),
        ))
    })
    .await
}

#[derive(Deserialize)]
pub struct ModeBody {
    /// discover, monitor or protect (any case).
    pub mode: String,
}

#[derive(Serialize)]
pub struct ModeChanged {
    pub group: String,
    pub file: String,
    pub from: Mode,
    pub to: Mode,
    pub changed: bool,
}

pub fn parse_mode(s: &str) -> ApiResult<Mode> {
    match s.to_ascii_lowercase().as_str() {
        "discover" => Ok(Mode::Discover),
        "monitor" => Ok(Mode::Monitor),
        "protect" => Ok(Mode::Protect),
        _ => Err(ApiError::bad_request(format!(
            "{s:?}: a mode is discover, monitor or protect"
        ))),
    }
}

pub async fn set_mode(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<ModeBody>,
) -> ApiResult<Json<ModeChanged>> {
    let to = parse_mode(&body.mode)?;
    let held = s.clone();
    let _guard = held.workspace.write_lock.lock().await;
    blocking(move || {
        let l = s.workspace.current()?;
        let g = l
            .engine
            .policy()
            .groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no group {name:?}")))?;
        let file = g.origin.file.to_string();
        let source = l.sources.iter().find(|src| src.name == file).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("group {name} is defined in {file}, which is not a policy file the server may write"),
            )
        })?;
        let from = g.mode;
        if from == to {
            return Ok(Json(ModeChanged {
                group: name,
                file,
                from,
                to,
                changed: false,
            }));
        }
        let text = bulkhead_learn::set_group_mode(&source.text, &file, &name, to)
            .map_err(|e| ApiError::invalid(e, Vec::new()))?;
        s.workspace.apply(&PathBuf::from(&file), Some(&text))?;
        Ok(Json(ModeChanged {
            group: name,
            file,
            from,
            to,
            changed: true,
        }))
    })
    .await
}
