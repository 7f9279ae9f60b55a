//! Health: `/healthz` (open, liveness of the server) and the agents' health.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

use super::blocking;
use crate::AppState;
use crate::error::ApiResult;

pub async fn live() -> &'static str {
    "ok\n"
}

/// What the server knows of one agent from its state directory.
#[derive(Serialize, Clone, Debug)]
pub struct AgentHealth {
    pub state_dir: String,
    /// The agent's process is running (its pid in `status.json` is alive).
    pub up: bool,
    pub pid: Option<u32>,
    pub node: Option<String>,
    /// When it last wrote `status.json`, and how long ago (seconds).
    pub status_time: Option<String>,
    pub status_age_seconds: Option<f64>,
    pub generation: Option<u64>,
    pub last_error: Option<String>,
    /// `status.json` as the agent wrote it.
    pub status: Option<Value>,
}

/// Is a process with this pid alive? (`/proc/PID` exists and is not a zombie.)
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn agent_health(dir: &Path) -> AgentHealth {
    let status: Option<Value> = std::fs::read(dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let st = status.as_ref();
    let pid = st.and_then(|s| s["pid"].as_u64()).map(|p| p as u32);
    let time = st.and_then(|s| s["time"].as_str()).map(String::from);
    let age = time
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    AgentHealth {
        state_dir: dir.display().to_string(),
        up: pid.is_some_and(pid_alive),
        pid,
        node: st.and_then(|s| s["node"].as_str()).map(String::from),
        status_time: time,
        status_age_seconds: age,
        generation: st.and_then(|s| s["generation"].as_u64()),
        last_error: st.and_then(|s| s["last_error"].as_str()).map(String::from),
        status,
    }
}

#[derive(Serialize)]
pub struct Health {
    /// The policy files on disk compile.
    pub policy_ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_error: Option<serde_json::Value>,
    pub agents: Vec<AgentHealth>,
}

pub async fn agents(State(s): State<Arc<AppState>>) -> ApiResult<Json<Health>> {
    blocking(move || {
        let policy = s.workspace.current();
        Ok(Json(Health {
            policy_ok: policy.is_ok(),
            policy_error: policy.err().and_then(|e| serde_json::to_value(&e).ok()),
            agents: s
                .config
                .state_dirs
                .iter()
                .map(|d| agent_health(d))
                .collect(),
        }))
    })
    .await
}
