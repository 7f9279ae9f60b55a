//! Inventory: workloads (with identity and groups), namespaces, identities.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bulkhead_model::Labels;
use serde::Serialize;

use super::blocking;
use crate::AppState;
use crate::error::ApiResult;

#[derive(Serialize)]
pub struct WorkloadOut {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub ips: Vec<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub identity: Option<u32>,
    /// The groups that select it (their modes decide what no rule decides).
    pub groups: Vec<String>,
}

pub async fn workloads(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<WorkloadOut>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        let e = &l.engine;
        Ok(Json(
            e.workloads()
                .into_iter()
                .map(|(id, w)| WorkloadOut {
                    namespace: w.key.namespace.clone(),
                    name: w.key.name.clone(),
                    labels: w.labels.clone(),
                    ips: w.ips.clone(),
                    node: w.node.clone(),
                    identity: e.identity_of(id),
                    groups: crate::routes::groups::of_workload(e, id),
                })
                .collect(),
        ))
    })
    .await
}

#[derive(Serialize)]
pub struct NamespaceOut {
    pub name: String,
    pub labels: Option<Labels>,
    /// Declared by a Namespace document (not only named by workloads).
    pub declared: bool,
    pub workloads: usize,
}

pub async fn namespaces(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<NamespaceOut>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        let e = &l.engine;
        let all = e.workloads();
        Ok(Json(
            e.namespace_names()
                .into_iter()
                .map(|n| NamespaceOut {
                    name: n.to_string(),
                    labels: e.namespace_labels(n).cloned(),
                    declared: e.namespace_declared(n),
                    workloads: all.iter().filter(|(_, w)| w.key.namespace == n).count(),
                })
                .collect(),
        ))
    })
    .await
}

#[derive(Serialize)]
pub struct IdentityOut {
    pub id: u32,
    pub namespace: String,
    pub labels: Labels,
    /// `namespace/name` of its workloads.
    pub workloads: Vec<String>,
}

pub async fn identities(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<IdentityOut>>> {
    blocking(move || {
        let l = s.workspace.current()?;
        let e = &l.engine;
        let t = e.identities();
        Ok(Json(
            t.live()
                .iter()
                .filter_map(|id| {
                    let k = t.key(id)?;
                    Some(IdentityOut {
                        id,
                        namespace: k.namespace.clone(),
                        labels: k.labels.clone(),
                        workloads: e
                            .workloads_of(id)
                            .map(|w| format!("{}/{}", w.key.namespace, w.key.name))
                            .collect(),
                    })
                })
                .collect(),
        ))
    })
    .await
}
