//! SQL text shared by the PostgreSQL and MySQL sessions: split a query string into
//! statements ([`crate::sql_split`]), classify each, and decide them all (one denied
//! statement refuses the whole query, since the server would run the others).

use std::sync::Arc;

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, SqlKind};

pub use crate::sql_split::Dialect;
use crate::sql_split::statements;
use crate::{Decided, Finding, Inspector, Verdict};

/// Query text held to be decided; larger queries are refused unread.
pub const MAX_QUERY: usize = 1 << 20;

/// Answers owed to the client at once. Refusals do not go to the server, so nothing
/// pushes back on a client that pipelines them behind a slow query without reading:
/// past this many, the connection is closed.
pub const MAX_OWED: usize = 1 << 16;

pub const TOO_LARGE: &str = "bulkhead: statement too large to inspect";

/// A query too large to read, refused unread. It is still put to `decide` (as `other`):
/// the caller pairs each decision with a [`Decided`], in order.
pub fn too_large(app: AppProtocol, decide: &mut dyn FnMut(&L7Request) -> Verdict) -> Decided {
    let request = L7Request {
        app,
        detail: L7Detail::Sql {
            kind: SqlKind::Other,
        },
    };
    let _ = decide(&request);
    Decided {
        request,
        allowed: false,
        refusal: Some(TOO_LARGE.into()),
        findings: Vec::new(),
    }
}

/// The refusal's text for a denied kind.
pub fn refusal(kind: SqlKind) -> String {
    format!(
        "bulkhead: {} statements are not allowed by policy",
        kind.as_str().to_ascii_uppercase()
    )
}

/// The decision on one query string: every statement's kinds, then the sensors on the
/// text when policy allows it all. `Err(message)` refuses it.
pub fn judge(
    app: AppProtocol,
    text: &[u8],
    d: Dialect,
    decide: &mut dyn FnMut(&L7Request) -> Verdict,
    inspector: &Option<Arc<dyn Inspector>>,
) -> (Vec<Decided>, Result<(), String>) {
    let mut decided: Vec<Decided> = Vec::new();
    let mut refused: Option<String> = None;
    for s in statements(text, d) {
        for kind in s.kinds {
            if decided
                .iter()
                .any(|x| x.request.detail == (L7Detail::Sql { kind }))
            {
                continue;
            }
            let request = L7Request {
                app,
                detail: L7Detail::Sql { kind },
            };
            let allowed = decide(&request).allowed;
            if !allowed && refused.is_none() {
                refused = Some(refusal(kind));
            }
            decided.push(Decided {
                request,
                allowed,
                refusal: None,
                findings: Vec::new(),
            });
        }
    }
    if refused.is_none()
        && !decided.is_empty()
        && let Some(ins) = inspector
    {
        let findings: Vec<Finding> = ins.sql(text);
        if let Some(f) = findings.iter().find(|f| f.block) {
            refused = Some(format!(
                "bulkhead: statement refused by sensor {} ({})",
                f.sensor, f.class
            ));
        }
        if let Some(last) = decided.last_mut() {
            last.findings = findings;
        }
    }
    if let Some(r) = &refused {
        // Nothing of a refused query reaches the server: every statement is refused.
        for x in &mut decided {
            x.allowed = false;
            x.refusal = Some(r.clone());
        }
    }
    (decided, refused.map_or(Ok(()), Err))
}
