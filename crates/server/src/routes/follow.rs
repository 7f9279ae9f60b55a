//! `GET /api/v1/flows/follow` and `GET /api/v1/events/follow`: `bulkhead flows --follow`
//! and `bulkhead events --follow` over the network. The last `limit` matching records,
//! then every new one as the agents commit it, one JSON object per line
//! (`application/x-ndjson`), until the client goes away (or `seconds` pass).
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
use bulkhead_store::{EventFilter, FlowFilter, FlowRecord, Store, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blocking;
use super::records::{EventQuery, FlowQuery};
use crate::AppState;
use crate::error::ApiResult;

const POLL: Duration = Duration::from_millis(200);
/// New records read per store per poll; more wait for the next poll.
const PAGE: usize = 10_000;

/// Besides the records' filters (read from the same query string: serde's `flatten`
/// would turn `limit=5` into a string the number field refuses).
#[derive(Deserialize, Default, Debug)]
pub struct FollowQuery {
    /// Stop after this many seconds (default: when the client goes away).
    pub seconds: Option<u64>,
}

/// Per agent state directory, the rowid of its store to follow from.
type Cursors = Vec<(PathBuf, i64)>;

/// What a follower reads from a store: flow records or events.
trait Feed: Send + Sync + 'static {
    type Filter: Clone + Send + Sync + 'static;
    type Item: Serialize + Send + Sync + 'static;
    const TABLE: Table;
    const WHAT: &'static str;
    fn rows(st: &Store, f: &Self::Filter) -> bulkhead_store::Result<Vec<(i64, Self::Item)>>;
    fn since(
        st: &Store,
        f: &Self::Filter,
        last: &mut i64,
    ) -> bulkhead_store::Result<Vec<Self::Item>>;
    fn time(item: &Self::Item) -> &str;
    fn limit(f: &Self::Filter) -> Option<usize>;
    /// The filter for what comes after the backlog: no limit, no time bound.
    fn after_backlog(f: Self::Filter) -> Self::Filter;
}

struct Flows;

impl Feed for Flows {
    type Filter = FlowFilter;
    type Item = FlowRecord;
    const TABLE: Table = Table::Flows;
    const WHAT: &'static str = "flows";
    fn rows(st: &Store, f: &FlowFilter) -> bulkhead_store::Result<Vec<(i64, FlowRecord)>> {
        st.flows(f)
    }
    fn since(
        st: &Store,
        f: &FlowFilter,
        last: &mut i64,
    ) -> bulkhead_store::Result<Vec<FlowRecord>> {
        Ok(st.flows_since(f, last, PAGE)?.0)
    }
    fn time(r: &FlowRecord) -> &str {
        &r.time
    }
    fn limit(f: &FlowFilter) -> Option<usize> {
        f.limit
    }
    fn after_backlog(f: FlowFilter) -> FlowFilter {
        FlowFilter {
            limit: None,
            since_ms: None,
            ..f
        }
    }
}

struct Events;

impl Feed for Events {
    type Filter = EventFilter;
    type Item = Value;
    const TABLE: Table = Table::Events;
    const WHAT: &'static str = "events";
    fn rows(st: &Store, f: &EventFilter) -> bulkhead_store::Result<Vec<(i64, Value)>> {
        st.events(f)
    }
    fn since(st: &Store, f: &EventFilter, last: &mut i64) -> bulkhead_store::Result<Vec<Value>> {
        Ok(st.events_since(f, last, PAGE)?.0)
    }
    fn time(e: &Value) -> &str {
        e["time"].as_str().unwrap_or_default()
    }
    fn limit(f: &EventFilter) -> Option<usize> {
        f.limit
    }
    fn after_backlog(f: EventFilter) -> EventFilter {
        EventFilter {
            limit: None,
            since_ms: None,
            ..f
        }
    }
}

/// The backlog and the cursors.
fn backlog<F: Feed>(s: &AppState, filter: &F::Filter) -> ApiResult<(Vec<F::Item>, Cursors)> {
    let mut records = Vec::new();
    let mut cursors = Vec::new();
    for dir in &s.config.state_dirs {
        let Some(st) = s.stores.lease(dir)? else {
            // No store yet: everything it will hold is new.
            cursors.push((dir.clone(), 0));
            continue;
        };
        let top = st.last_id(F::TABLE)?;
        records.extend(
            F::rows(&st, filter)?
                .into_iter()
                .filter(|(id, _)| *id <= top)
                .map(|(_, r)| r),
        );
        cursors.push((dir.clone(), top));
    }
    records.sort_by(|x, y| F::time(x).cmp(F::time(y)));
    if let Some(n) = F::limit(filter) {
        records.drain(..records.len().saturating_sub(n));
    }
    Ok((records, cursors))
}

/// What each store committed since its cursor (the cursors move on).
fn newer<F: Feed>(
    s: &AppState,
    filter: &F::Filter,
    cursors: &mut [(PathBuf, i64)],
) -> ApiResult<Vec<F::Item>> {
    let mut out = Vec::new();
    for (dir, after) in cursors.iter_mut() {
        let Some(st) = s.stores.lease(dir)? else {
            continue;
        };
        out.extend(F::since(&st, filter, after)?);
    }
    out.sort_by(|x, y| F::time(x).cmp(F::time(y)));
    Ok(out)
}

fn line(r: &impl Serialize) -> Bytes {
    let mut v = serde_json::to_vec(r).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn follow(
    State(s): State<Arc<AppState>>,
    Query(flows): Query<FlowQuery>,
    Query(q): Query<FollowQuery>,
) -> ApiResult<Response> {
    stream::<Flows>(s, flows.filter()?, q).await
}

pub async fn follow_events(
    State(s): State<Arc<AppState>>,
    Query(events): Query<EventQuery>,
    Query(q): Query<FollowQuery>,
) -> ApiResult<Response> {
    stream::<Events>(s, events.filter()?, q).await
}

async fn stream<F: Feed>(
    s: Arc<AppState>,
    filter: F::Filter,
    q: FollowQuery,
) -> ApiResult<Response> {
    let st = s.clone();
    let f = filter.clone();
    let (records, mut cursors) = blocking(move || backlog::<F>(&st, &f)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let deadline = q.seconds.map(|n| Instant::now() + Duration::from_secs(n));
    let follow = F::after_backlog(filter);
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
            let polled = blocking(move || newer::<F>(&st, &f, &mut c).map(|r| (r, c))).await;
            let new = match polled {
                Ok((new, c)) => {
                    cursors = c;
                    new
                }
                Err(e) => {
                    tracing::warn!(error = %e.error, "following {}: a store could not be read", F::WHAT);
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
