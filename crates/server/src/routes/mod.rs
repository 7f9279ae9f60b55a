//! The router. Every route is added through [`Builder::add`], which also records it in
//! the [`RouteTable`]: the table is exactly what the router serves, and the OpenAPI test
//! compares it with the document.

pub mod analyze;
pub mod follow;
pub mod groups;
pub mod health;
pub mod inventory;
pub mod learn;
pub mod policies;
pub mod quarantine;
pub mod records;

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::AppState;

/// Every (method, path) the router serves, in axum's path syntax (`/x/{name}`, which is
/// also OpenAPI's).
#[derive(Clone, Debug, Default)]
pub struct RouteTable(pub Vec<(Method, &'static str)>);

struct Builder {
    router: Router<Arc<AppState>>,
    table: RouteTable,
}

impl Builder {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self.router.route(path, on(filter, handler));
        self.table.0.push((method, path));
        self
    }
}

/// Request bodies above this are refused (413): policies and proposals are small files.
pub const MAX_BODY: usize = 8 << 20;

pub fn router(state: Arc<AppState>) -> (Router, RouteTable) {
    use Method as M;
    let b = Builder {
        router: Router::new(),
        table: RouteTable::default(),
    }
    .add(M::GET, "/healthz", health::live)
    .add(M::GET, "/metrics", crate::metrics::handler)
    .add(M::GET, "/api/v1/openapi.json", crate::openapi::handler)
    .add(M::GET, "/api/v1/health", health::agents)
    .add(M::GET, "/api/v1/workloads", inventory::workloads)
    .add(M::GET, "/api/v1/namespaces", inventory::namespaces)
    .add(M::GET, "/api/v1/identities", inventory::identities)
    .add(M::GET, "/api/v1/groups", groups::list)
    .add(M::PUT, "/api/v1/groups/{name}/mode", groups::set_mode)
    .add(M::GET, "/api/v1/policies", policies::list)
    .add(M::POST, "/api/v1/policies", policies::create)
    .add(M::GET, "/api/v1/policies/{file}", policies::get)
    .add(M::PUT, "/api/v1/policies/{file}", policies::put)
    .add(M::DELETE, "/api/v1/policies/{file}", policies::delete)
    .add(M::GET, "/api/v1/lint", policies::lint)
    .add(M::GET, "/api/v1/responses", policies::responses)
    .add(M::GET, "/api/v1/explain", analyze::explain_get)
    .add(M::POST, "/api/v1/explain", analyze::explain_post)
    .add(M::GET, "/api/v1/matrix", analyze::matrix)
    .add(M::GET, "/api/v1/flows", records::flows)
    .add(M::GET, "/api/v1/flows/follow", follow::follow)
    .add(M::GET, "/api/v1/events", records::events)
    .add(M::GET, "/api/v1/events/follow", follow::follow_events)
    .add(M::GET, "/api/v1/graph", records::graph)
    .add(M::GET, "/api/v1/captures", records::captures)
    .add(M::GET, "/api/v1/captures/{name}", records::capture)
    .add(M::GET, "/api/v1/quarantine", quarantine::list)
    .add(
        M::PUT,
        "/api/v1/quarantine/{namespace}/{name}",
        quarantine::add,
    )
    .add(
        M::DELETE,
        "/api/v1/quarantine/{namespace}/{name}",
        quarantine::release,
    )
    .add(M::GET, "/api/v1/learn", learn::learn)
    .add(M::POST, "/api/v1/replay", learn::replay);
    let router = b
        .router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state);
    (router, b.table)
}

/// Run blocking work (file reads, compiles, store queries) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::ApiResult<T> + Send + 'static,
) -> crate::error::ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}
