//! `GET /api/v1/flows/follow`: `bulkhead flows --follow` over the network. The last
//! `limit` matching records, then every new one as the agents commit it, one JSON object
//! per line (`application/x-ndjson`), until the client goes away (or `seconds` pass).
//!
//! One request, not "list then poll": a record committed between two requests would be
//! lost or printed twice. Each store is followed from the newest record it had when the
//! backlog was read (by rowid, the order records are committed in), every 200 ms, so a
//! follower of several agents sees each record once.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bulkhead_store::{FlowFilter, FlowRecord, Table};
use serde::Deserialize;

use super::blocking;
use super::records::FlowQuery;
use crate::AppState;
use crate::error::ApiResult;

const POLL: Duration = Duration::from_millis(200);
/// New records read per store per poll; more wait for the next poll.
const PAGE: usize = 10_000;

/// Besides [`FlowQuery`]'s filters (read from the same query string: serde's `flatten`
/// would turn `limit=5` into a string the number field refuses).
#[derive(Deserialize, Default, Debug)]
pub struct FollowQuery {
    /// Stop after this many seconds (default: when the client goes away).
    pub seconds: Option<u64>,
}

/// Per agent state directory, the rowid of its store to follow from.
type Cursors = Vec<(PathBuf, i64)>;

/// The backlog and the cursors.
fn backlog(s: &AppState, filter: &FlowFilter) -> ApiResult<(Vec<FlowRecord>, Cursors)> {
    let mut records = Vec::new();
    let mut cursors = Vec::new();
    for dir in &s.config.state_dirs {
        let Some(st) = s.stores.lease(dir)? else {
            // No store yet: everything it will hold is new.
            cursors.push((dir.clone(), 0));
            continue;
        };
        let top = st.last_id(Table::Flows)?;
        records.extend(
            st.flows(filter)?
                .into_iter()
                .filter(|(id, _)| *id <= top)
                .map(|(_, r)| r),
        );
        cursors.push((dir.clone(), top));
    }
    records.sort_by(|x, y| x.time.cmp(&y.time));
    if let Some(n) = filter.limit {
        records.drain(..records.len().saturating_sub(n));
    }
    Ok((records, cursors))
}

/// What each store committed since its cursor (the cursors move on).
fn newer(
    s: &AppState,
    filter: &FlowFilter,
    cursors: &mut [(PathBuf, i64)],
) -> ApiResult<Vec<FlowRecord>> {
    let mut out = Vec::new();
    for (dir, after) in cursors.iter_mut() {
        let Some(st) = s.stores.lease(dir)? else {
            continue;
        };
        out.extend(st.flows_since(filter, after, PAGE)?.0);
    }
    out.sort_by(|x, y| x.time.cmp(&y.time));
    Ok(out)
}

fn line(r: &FlowRecord) -> Bytes {
    let mut v = serde_json::to_vec(r).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn follow(
    State(s): State<Arc<AppState>>,
    Query(flows): Query<FlowQuery>,
    Query(q): Query<FollowQuery>,
) -> ApiResult<Response> {
    let filter = flows.filter()?;
    let st = s.clone();
    let f = filter.clone();
    let (records, mut cursors) = blocking(move || backlog(&st, &f)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let deadline = q.seconds.map(|n| Instant::now() + Duration::from_secs(n));
    let follow = FlowFilter {
        limit: None,
        since_ms: None,
        ..filter
    };
    tokio::spawn(async move {
        for r in &records {
            if tx.send(Ok(line(r))).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let (st, f, mut c) = (s.clone(), follow.clone(), std::mem::take(&mut cursors));
            let polled = blocking(move || newer(&st, &f, &mut c).map(|r| (r, c))).await;
            let new = match polled {
                Ok((new, c)) => {
                    cursors = c;
                    new
                }
                Err(e) => {
                    tracing::warn!(error = %e.error, "following flows: a store could not be read");
                    return;
                }
            };
            for r in &new {
                if tx.send(Ok(line(r))).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
