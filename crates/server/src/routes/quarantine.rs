//! Quarantine (a response action, also by hand): the agents' quarantine lists
//! (`quarantine.json` in each state directory, as `bulkhead quarantine` edits them). An
//! agent programs a change within half a second: a quarantined workload sends and
//! receives nothing; released, policy decides again.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use bulkhead_agent::respond::{QuarantineList, Quarantined, key};
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Every quarantined workload, once (the lists of all served agents merged).
pub async fn list(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<Quarantined>>> {
    blocking(move || {
        let mut all: Vec<Quarantined> = Vec::new();
        for d in &s.config.state_dirs {
            for q in QuarantineList::load(d).workloads {
                if !all.iter().any(|x| x.workload == q.workload) {
                    all.push(q);
                }
            }
        }
        Ok(Json(all))
    })
    .await
}

#[derive(Deserialize, Default)]
pub struct AddBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize)]
pub struct Changed {
    pub workload: String,
    /// False when it already was (or was not) quarantined everywhere.
    pub changed: bool,
}

fn edit(
    s: &AppState,
    workload: &str,
    f: impl Fn(&mut QuarantineList) -> bool,
) -> ApiResult<Json<Changed>> {
    let k = key(workload)
        .ok_or_else(|| ApiError::bad_request(format!("{workload}: expected NAMESPACE/NAME")))?;
    let l = s.workspace.current()?;
    if l.engine.workload_id(&k).is_none() {
        return Err(ApiError::not_found(format!(
            "no workload {workload} in the inventory"
        )));
    }
    if s.config.state_dirs.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "the server serves no agent state directory (--state)",
        ));
    }
    let mut changed = false;
    for d in &s.config.state_dirs {
        let mut list = QuarantineList::load(d);
        if f(&mut list) {
            list.save(d)
                .map_err(|e| ApiError::internal(format!("{}: {e}", d.display())))?;
            changed = true;
        }
    }
    Ok(Json(Changed {
        workload: workload.to_string(),
        changed,
    }))
}

/// PUT: quarantine a workload now, on every served agent.
pub async fn add(
    State(s): State<Arc<AppState>>,
    Path((namespace, name)): Path<(String, String)>,
    body: Option<Json<AddBody>>,
) -> ApiResult<Json<Changed>> {
    let reason = body
        .and_then(|Json(b)| b.reason)
        .unwrap_or_else(|| "by hand (API)".into());
    blocking(move || {
        let workload = format!("{namespace}/{name}");
        edit(&s, &workload, |l| {
            l.add(Quarantined {
                workload: workload.clone(),
                rule: None,
                reason: reason.clone(),
                since: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            })
        })
    })
    .await
}

/// DELETE: release a workload on every served agent.
pub async fn release(
    State(s): State<Arc<AppState>>,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<Json<Changed>> {
    blocking(move || {
        let workload = format!("{namespace}/{name}");
        edit(&s, &workload, |l| l.release(&workload))
    })
    .await
}
