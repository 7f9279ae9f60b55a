//! The delivery worker: webhooks and syslog messages, one at a time, off the data path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use bulkhead_policy::response::ResponseAction;
use tracing::warn;

use crate::{Counters, syslog, webhook};

pub(crate) struct Delivery {
    pub action: ResponseAction,
    pub rule: String,
    pub body: serde_json::Value,
    pub syslog: Option<String>,
}

pub(crate) fn worker(rx: Receiver<Delivery>, counters: Arc<Counters>) {
    for d in rx {
        let result = match &d.action {
            ResponseAction::Webhook {
                url,
                headers,
                retries,
                timeout_ms,
            } => webhook::post(url, headers, &d.body, *retries, *timeout_ms).map(drop),
            ResponseAction::Syslog {
                address, transport, ..
            } => match &d.syslog {
                Some(m) => syslog::send(address, *transport, m).map_err(|e| e.to_string()),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        match result {
            Ok(()) => counters.delivered.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                warn!(rule = %d.rule, action = d.action.kind(), error = %e, "response not delivered");
                counters.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}
