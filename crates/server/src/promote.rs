//! Groups move on by themselves (`bulkhead serve --promote-after 24h`): a group in
//! Discover or Monitor whose workloads have had no new conversation for the quiet period
//! moves one step (Discover -> Monitor -> Protect), as `bulkhead learn --quiet-period
//! 24h --promote` does by command.
//!
//! The server does it rather than each agent because a group spans nodes: only the
//! server reads every agent's records, and it already writes the policy files the agents
//! watch. A move is one rewrite of the group's `mode:` line, validated as the whole
//! resulting policy set like any change through the API, under the same write lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::routes::learn::observations;

/// One group moved.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Moved {
    pub group: String,
    pub file: String,
    pub from: String,
    pub to: String,
}

/// When each group last changed mode here, and when the server started watching: a
/// group is quiet only after `quiet` in its current mode (so Monitor lasts a quiet period
/// too, however long Discover was quiet), and a restarted server waits a whole period
/// before it moves anything.
#[derive(Debug)]
pub struct Clock {
    pub started: SystemTime,
    pub moved: HashMap<String, SystemTime>,
}

impl Clock {
    pub fn new(started: SystemTime) -> Clock {
        Clock {
            started,
            moved: HashMap::new(),
        }
    }
}

/// Move every group that has been quiet for `quiet` at `now`, at most one step each;
/// returns what moved.
pub fn tick(
    s: &AppState,
    clock: &mut Clock,
    quiet: Duration,
    now: SystemTime,
) -> ApiResult<Vec<Moved>> {
    let mut all = Vec::new();
    // A move rewrites a file that may hold other groups: read again after each.
    while let Some(m) = tick_one(s, clock, quiet, now)? {
        clock.moved.insert(m.group.clone(), now);
        all.push(m);
    }
    Ok(all)
}

fn tick_one(
    s: &AppState,
    clock: &Clock,
    quiet: Duration,
    now: SystemTime,
) -> ApiResult<Option<Moved>> {
    let l = s.workspace.current()?;
    let obs = observations(s)?;
    for (gi, g) in l.engine.policy().groups.iter().enumerate() {
        let members = bulkhead_learn::promote::members(&l.engine, gi);
        let since = clock.moved.get(&g.name).copied().unwrap_or(clock.started);
        let last =
            bulkhead_learn::promote::last_new_conversation(&obs, &members).map(|t| t.max(since));
        let Some(to) = bulkhead_learn::promote(g, last, quiet, now) else {
            continue;
        };
        let file = g.origin.file.to_string();
        // Only files the server reads as policy sources (and so may write).
        let Some(source) = l.sources.iter().find(|src| src.name == file) else {
            continue;
        };
        let text = bulkhead_learn::set_group_mode(&source.text, &file, &g.name, to)
            .map_err(crate::error::ApiError::internal)?;
        s.workspace
            .apply(std::path::Path::new(&file), Some(&text))?;
        return Ok(Some(Moved {
            group: g.name.clone(),
            file,
            from: g.mode.to_string(),
            to: to.to_string(),
        }));
    }
    Ok(None)
}

/// How often to look: often enough for a quiet period of minutes, at most once a minute.
pub fn interval(quiet: Duration) -> Duration {
    (quiet / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The background task: every [`interval`], [`tick`] under the policy write lock.
pub async fn run(s: Arc<AppState>, quiet: Duration) {
    let clock = Arc::new(std::sync::Mutex::new(Clock::new(SystemTime::now())));
    let mut every = tokio::time::interval(interval(quiet));
    loop {
        every.tick().await;
        let _guard = s.workspace.write_lock.lock().await;
        let (st, cl) = (s.clone(), clock.clone());
        let r = tokio::task::spawn_blocking(move || {
            tick(&st, &mut cl.lock().unwrap(), quiet, SystemTime::now())
        })
        .await;
        match r {
            Ok(Ok(moved)) => {
                for m in moved {
                    tracing::info!(group = %m.group, file = %m.file, from = %m.from, to = %m.to,
                        quiet = %humantime::format_duration(quiet), "group promoted after its quiet period");
                    eprintln!(
                        "bulkhead: group {} moved from {} to {} ({} without a new conversation)",
                        m.group,
                        m.from,
                        m.to,
                        humantime::format_duration(quiet)
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e.error, "automatic promotion skipped"),
            Err(e) => tracing::warn!(error = %e, "automatic promotion failed"),
        }
    }
}
