//! Learning and what-if over the agents' recorded flows (`bulkhead-learn`): the proposed
//! policy with its coverage, and the replay of the records against a proposed policy.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use bulkhead_learn::eval::{self, Coverage, Replay};
use bulkhead_learn::{Observations, Options, Proposal};
use bulkhead_manifest::Source;
use bulkhead_policy::spec::Bundle;
use bulkhead_store::FlowFilter;
use serde::{Deserialize, Serialize};

use super::blocking;
use super::groups::parse_mode;
use crate::AppState;
use crate::error::{ApiError, ApiResult, Diag};

/// Every flow record of every store, paged through the store's rowid order.
pub fn observations(s: &AppState) -> ApiResult<Observations> {
    let mut obs = Observations::new();
    let filter = FlowFilter::default();
    for st in s.stores.lease_all(&s.config.state_dirs)? {
        let mut after = 0;
        loop {
            let page = st.flows_after(&filter, after, i64::MAX, 65_536)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, r) in &page {
                obs.add(r);
            }
        }
    }
    Ok(obs)
}

#[derive(Deserialize, Default)]
pub struct LearnQuery {
    /// The mode the proposed groups are written with (default monitor).
    pub mode: Option<String>,
}

#[derive(Serialize)]
pub struct FlowsSeen {
    pub records: u64,
    pub skipped: u64,
    pub conversations: usize,
    pub first: Option<String>,
    pub last: Option<String>,
}

#[derive(Serialize)]
pub struct LearnOut {
    pub flows: FlowsSeen,
    pub proposal: Proposal,
    pub coverage: Coverage,
    /// The proposal's reachability against the current policy's rules, as `bulkhead
    /// learn` prints it.
    pub diff: bulkhead_learn::diff::LearnDiff,
}

fn compile_failed(what: &str, errors: &[bulkhead_policy::CompileError]) -> ApiError {
    ApiError::invalid(
        format!("the {what} does not compile"),
        errors.iter().map(Diag::from).collect(),
    )
}

pub async fn learn(
    State(s): State<Arc<AppState>>,
    Query(q): Query<LearnQuery>,
) -> ApiResult<Json<LearnOut>> {
    let mode = q.mode.as_deref().map(parse_mode).transpose()?;
    blocking(move || {
        let current = s.workspace.current()?;
        let obs = observations(&s)?;
        let opts = Options {
            mode: mode.unwrap_or(Options::default().mode),
            ..Options::default()
        };
        let p = bulkhead_learn::learn(&obs, &current.bundle.inventory, &opts)
            .map_err(ApiError::internal)?;
        let enforced = p.enforced();
        let coverage = eval::coverage(&obs, &p.inventory, &enforced)
            .map_err(|e| compile_failed("proposal", &e))?;
        let diff =
            bulkhead_learn::diff::diff(&obs, &p.inventory, &current.bundle.policy, &enforced);
        Ok(Json(LearnOut {
            flows: FlowsSeen {
                records: obs.records,
                skipped: obs.skipped,
                conversations: obs.flows.len(),
                first: obs.first_time.clone(),
                last: obs.last_time.clone(),
            },
            proposal: p,
            coverage,
            diff,
        }))
    })
    .await
}

/// POST: the body is the proposed policy (YAML, one or more documents). The recorded
/// flows are replayed against it and against the current policy.
pub async fn replay(State(s): State<Arc<AppState>>, body: String) -> ApiResult<Json<Replay>> {
    blocking(move || {
        let new: Bundle = bulkhead_manifest::parse_sources(&[Source {
            name: "proposed.yaml".into(),
            text: body,
        }])
        .map_err(|d| {
            ApiError::invalid(
                "the proposed policy does not decode",
                d.iter().map(Diag::from).collect(),
            )
        })?;
        let current = s.workspace.current()?;
        let obs = observations(&s)?;
        let inv = bulkhead_learn::propose::inventory(&obs, &current.bundle.inventory);
        let r = eval::replay(&obs, &inv, &current.bundle.policy, &new.policy)
            .map_err(|e| compile_failed("proposed policy (or the current one)", &e))?;
        Ok(Json(r))
    })
    .await
}
