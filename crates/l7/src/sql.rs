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
/// Text the proxy cannot read every way the server might (`sql_split::Unreadable`).
pub const UNREADABLE: &str = "bulkhead: statement too ambiguous to inspect";

/// A query too large to read, refused unread. It is still put to `decide` (as `other`):
/// the caller pairs each decision with a [`Decided`], in order.
pub fn too_large(app: AppProtocol, decide: &mut dyn FnMut(&L7Request) -> Verdict) -> Decided {
    unread(app, decide, TOO_LARGE)
}

/// A query refused unread, with `refusal`, whatever policy says (decided as `other`).
pub fn unread(
    app: AppProtocol,
    decide: &mut dyn FnMut(&L7Request) -> Verdict,
    refusal: &str,
) -> Decided {
    let (mut d, _) = decide_kind(app, SqlKind::Other, decide);
    d.allowed = false;
    d.refusal = Some(refusal.into());
    d
}

/// The decision on a request that stands for one statement of kind `kind`.
pub fn decide_kind(
    app: AppProtocol,
    kind: SqlKind,
    decide: &mut dyn FnMut(&L7Request) -> Verdict,
) -> (Decided, Result<(), String>) {
    let request = L7Request {
        app,
        detail: L7Detail::Sql { kind },
    };
    let allowed = decide(&request).allowed;
    let message = (!allowed).then(|| refusal(kind));
    let verdict = message.clone().map_or(Ok(()), Err);
    let d = Decided {
        request,
        allowed,
        refusal: message,
        findings: Vec::new(),
    };
    (d, verdict)
}

/// The refusal's text for a denied kind.
pub fn refusal(kind: SqlKind) -> String {
    format!(
        "bulkhead: {} statements are not allowed by policy",
        kind.as_str().to_ascii_uppercase()
    )
}

/// The decision on one query string: every statement's kinds, then the sensors on the
/// text when policy allows it all. `Err(message)` refuses it. Text that yields no
/// statement but is not plainly empty is `other` (`sql_split`); empty text is forwarded
/// undecided (the server answers it as empty).
pub fn judge(
    app: AppProtocol,
    text: &[u8],
    d: Dialect,
    decide: &mut dyn FnMut(&L7Request) -> Verdict,
    inspector: &Option<Arc<dyn Inspector>>,
) -> (Vec<Decided>, Result<(), String>) {
    let mut decided: Vec<Decided> = Vec::new();
    let mut refused: Option<String> = None;
    let Ok(statements) = statements(text, d) else {
        return (
            vec![unread(app, decide, UNREADABLE)],
            Err(UNREADABLE.into()),
        );
    };
    for s in statements {
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
