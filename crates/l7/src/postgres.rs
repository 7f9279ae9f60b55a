//! PostgreSQL (protocol 3): simple queries, Parse and FunctionCall messages are decided
//! on their statements; a refused one gets an ErrorResponse (SQLSTATE 42501) in order.
//!
//! Order is kept by counting ReadyForQuery: every forwarded Query, FunctionCall, Sync or
//! StartupMessage is owed one server answer ending in 'Z'. A refused simple query owes
//! the client ErrorResponse + ReadyForQuery, written once the answers before it are. A
//! refused Parse makes the rest of its batch be dropped like the server would after an
//! error, but the Sync still goes to the server: its ReadyForQuery then carries the true
//! transaction status, and the ErrorResponse is slipped in just before it (after the
//! answers to what the batch sent before the Parse).
//!
//! Inside a transaction block (the server's last status 'T') a refusal is raised by the
//! server instead (`DO ... RAISE`, same SQLSTATE and message), so that the block is
//! aborted as PostgreSQL aborts one on any error: a refused simple query is replaced by
//! that query, a refused Parse by Close/Parse/Bind/Execute of it (whose CloseComplete,
//! ParseComplete and BindComplete the client never asked for, so they are not passed on).
//! Also when a BEGIN sent before has not been answered yet (the status may be stale).
//! The server's error is passed on as the proxy's own reads, without the `DO`'s context.
//!
//! TLS and GSS encryption requests are answered 'N' by the proxy itself: it must read the
//! queries, and libpq's default `sslmode=prefer` continues in clear.

use std::collections::VecDeque;
use std::sync::Arc;

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, SqlKind};

use crate::sql::{self, Dialect, MAX_OWED, MAX_QUERY};
use crate::{Inspector, Output, Session, Verdict};

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
/// A raise's error is held whole to be rewritten; one larger is passed on as it is.
const MAX_RAISE_ERROR: usize = 16 * 1024;
/// PostgreSQL's own limit on a startup packet.
const MAX_STARTUP: usize = 10_000;

#[derive(Debug)]
enum Owed {
    /// Server messages up to and including a ReadyForQuery; `inject` goes right before
    /// that ReadyForQuery unless the server reported an error of its own in the batch.
    /// `raised`: the reply answers a raise too (see `Raised`).
    Reply {
        inject: Option<Vec<u8>>,
        raised: Option<Raised>,
    },
    /// Our ErrorResponse, then (simple query) a ReadyForQuery with the current status.
    Refusal { error: Vec<u8>, ready: bool },
}

/// Client messages whose answer in a batch is a bare "complete" message: Close
/// (CloseComplete '3'), Parse ('1'), Bind ('2').
const COMPLETES: [(u8, u8); 3] = [(b'C', b'3'), (b'P', b'1'), (b'B', b'2')];

/// Which CloseComplete, ParseComplete and BindComplete of a reply answer our raise (its
/// Close, Parse and Bind): per kind, in `COMPLETES` order, how many the reply has had
/// and the ordinal of ours (0: none). `error_next`: the reply's next ErrorResponse is
/// the raise's (once its Bind is complete, or at once for a raise by simple query).
#[derive(Debug, Clone, Copy, Default)]
struct Raised {
    want: [u32; 3],
    seen: [u32; 3],
    error_next: bool,
}

impl Raised {
    /// A raise sent as a simple query: no completes, its error comes first.
    fn query() -> Raised {
        Raised {
            error_next: true,
            ..Raised::default()
        }
    }

    /// Count a message from the server: is it the answer to one of ours?
    fn ours(&mut self, t: u8) -> bool {
        let Some(k) = COMPLETES.iter().position(|&(_, answer)| answer == t) else {
            return false;
        };
        self.seen[k] += 1;
        let ours = self.seen[k] == self.want[k];
        if ours && t == b'2' {
            self.error_next = true;
        }
        ours
    }
}

/// The server's error for a raise as the proxy's own refusal reads: severity, SQLSTATE
/// and message, without the PL/pgSQL context and source location of the `DO` block.
fn plain_error(body: &[u8]) -> Vec<u8> {
    let mut kept = Vec::new();
    for field in body.split(|&c| c == 0).filter(|f| !f.is_empty()) {
        if matches!(field[0], b'S' | b'V' | b'C' | b'M') {
            kept.extend_from_slice(field);
            kept.push(0);
        }
    }
    kept.push(0);
    frame(b'E', &kept)
}

#[derive(Debug)]
enum Client {
    /// Before the StartupMessage (SSL/GSS requests come first).
    Startup,
    /// Between messages, or holding one (`hold`) until it is whole or decidable.
    Head,
    /// Streaming `left` more bytes of a message; `forward` or drop them.
    Body { left: usize, forward: bool },
}

pub struct PostgresSession {
    client: Client,
    hold: Vec<u8>,
    /// After a refused Parse: client messages are dropped until Sync; the error to
    /// answer, and whether the batch already forwarded messages the server will answer.
    discard: Option<(Vec<u8>, bool)>,
    /// Messages forwarded since the last Sync (the server answers them at the Sync).
    batch_open: bool,
    /// Close, Parse and Bind messages forwarded since the last Sync (`COMPLETES` order).
    batch_counts: [u32; 3],
    /// The completes of this batch, which a Flush or a full output buffer makes the
    /// server send before the Sync, and its raise if it has one; it moves to the reply
    /// at the Sync.
    open: Raised,
    owed: VecDeque<Owed>,
    /// Server side: the header of the message being read, then the bytes left of it.
    server_head: Vec<u8>,
    server_left: usize,
    /// The last transaction status the server sent ('I', 'T' or 'E').
    status: u8,
    /// A transaction statement (BEGIN, COMMIT...) went to the server and not every reply
    /// since is in: `status` may be stale (a driver that sends BEGIN in the same batch as
    /// the first statement, as pgjdbc does, or a pipelined BEGIN).
    status_pending: bool,
    /// The server's errors seen in the reply at the head of the queue.
    server_error: bool,
    /// The body of a raise's ErrorResponse, held to be passed on plain.
    server_raise: Option<Vec<u8>>,
    /// Replies can no longer be matched (a server we could not frame): refuse at once.
    unordered: bool,
    inspector: Option<Arc<dyn Inspector>>,
}

impl Default for PostgresSession {
    fn default() -> Self {
        PostgresSession::new()
    }
}

fn error_response(message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (f, v) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "42501"),
        (b'M', message),
    ] {
        body.push(f);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    frame(b'E', &body)
}

/// The statement with which the server raises the refusal itself (SQLSTATE 42501, the
/// same message): inside a transaction block the error aborts the block, as any error
/// does in PostgreSQL, so a later COMMIT cannot commit the statements before it.
fn raise_sql(message: &str) -> String {
    let text: String = message
        .chars()
        .filter(|&c| !matches!(c, '\0' | '$' | '\\'))
        .collect::<String>()
        .replace('\'', "''");
    format!(
        "DO $bulkhead$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '{text}'; END$bulkhead$"
    )
}

/// A protocol message of type `t` with `body`.
fn frame(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn query_message(sql: &str) -> Vec<u8> {
    frame(b'Q', &[sql.as_bytes(), b"\0"].concat())
}

/// The statement a raise is prepared as: a name of its own, so that the client's
/// unnamed statement, which a later batch may bind again, is left alone.
const RAISE_STATEMENT: &[u8] = b"bulkhead_raise\0";

/// The extended-protocol messages that make the server raise `sql`: Close of our
/// statement (one left from an earlier raise, which ended in an error before it could
/// be closed), Parse of it, Bind of the unnamed portal to it, Execute.
fn raise_batch(sql: &str) -> [Vec<u8>; 4] {
    [
        frame(b'C', &[b"S", RAISE_STATEMENT].concat()),
        frame(b'P', &[RAISE_STATEMENT, sql.as_bytes(), b"\0\0\0"].concat()),
        frame(b'B', &[b"\0", RAISE_STATEMENT, &[0; 6]].concat()),
        frame(b'E', &[0; 5]),
    ]
}

fn error_or_ready(mut error: Vec<u8>, ready: bool, z: [u8; 6]) -> Vec<u8> {
    if ready {
        error.extend_from_slice(&z);
    }
    error
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

impl PostgresSession {
    pub fn new() -> PostgresSession {
        PostgresSession {
            client: Client::Startup,
            hold: Vec::new(),
            discard: None,
            batch_open: false,
            batch_counts: [0; 3],
            open: Raised::default(),
            owed: VecDeque::new(),
            server_head: Vec::new(),
            server_left: 0,
            status: b'I',
            status_pending: false,
            server_error: false,
            server_raise: None,
            unordered: false,
            inspector: None,
        }
    }

    pub fn with_inspector(mut self, inspector: Option<Arc<dyn Inspector>>) -> PostgresSession {
        self.inspector = inspector;
        self
    }

    fn ready(&self) -> [u8; 6] {
        [b'Z', 0, 0, 0, 5, self.status]
    }

    /// Write what is owed to the client that no longer waits on the server.
    fn flush_refusals(&mut self, out: &mut Output) {
        while let Some(Owed::Refusal { .. }) = self.owed.front() {
            if let Some(Owed::Refusal { error, ready }) = self.owed.pop_front() {
                out.to_client.extend_from_slice(&error);
                if ready {
                    out.to_client.extend_from_slice(&self.ready());
                }
            }
        }
    }

    fn refuse(&mut self, out: &mut Output, error: Vec<u8>, ready: bool) {
        if self.unordered {
            out.to_client
                .extend_from_slice(&error_or_ready(error, ready, self.ready()));
            return;
        }
        self.owed.push_back(Owed::Refusal { error, ready });
        if self.owed.len() == 1 {
            self.flush_refusals(out);
        }
    }

    /// A whole Query ('Q'), Parse ('P') or FunctionCall ('F') message in `self.hold`.
    fn decide(&mut self, out: &mut Output, decide: &mut dyn FnMut(&L7Request) -> Verdict) {
        let msg = std::mem::take(&mut self.hold);
        let t = msg[0];
        let body = &msg[5..];
        let text = match t {
            b'Q' => body.split(|&c| c == 0).next().unwrap_or_default(),
            b'P' => body.split(|&c| c == 0).nth(1).unwrap_or_default(),
            _ => &[][..],
        };
        let (decided, verdict) = if t == b'F' {
            // A function called by OID bypasses statements: it is an `other` statement.
            let (d, verdict) = sql::decide_kind(AppProtocol::Postgresql, SqlKind::Other, decide);
            (vec![d], verdict)
        } else {
            sql::judge(
                AppProtocol::Postgresql,
                text,
                Dialect::Postgres,
                decide,
                &self.inspector,
            )
        };
        let transaction = decided.iter().any(|d| {
            matches!(
                d.request.detail,
                L7Detail::Sql {
                    kind: SqlKind::Transaction
                }
            )
        });
        out.decided.extend(decided);
        match verdict {
            Ok(()) => {
                self.status_pending |= transaction;
                self.forward(out, &msg)
            }
            Err(message) => self.refuse_message(out, t, &message),
        }
    }

    fn refuse_message(&mut self, out: &mut Output, t: u8, message: &str) {
        // Raising where no block is open only costs a round trip (the server answers
        // the same error): so when unsure, raise.
        let in_block = (self.status == b'T' || self.status_pending) && !self.unordered;
        match (t == b'P', in_block) {
            (true, true) => {
                // Extended protocol: the server runs the raise in this batch, and skips
                // the rest of it up to the Sync as after any error (so do we).
                for m in raise_batch(&raise_sql(message)) {
                    self.forward(out, &m);
                }
                self.open.want = self.batch_counts;
                self.discard = Some((Vec::new(), false));
            }
            (false, true) => {
                // In a transaction block: the server raises it, and the block is aborted
                // as PostgreSQL aborts one on an error (refused here, the server would
                // commit the block's other statements on COMMIT).
                self.forward(out, &query_message(&raise_sql(message)));
                if let Some(Owed::Reply { raised, .. }) = self.owed.back_mut() {
                    *raised = Some(Raised::query());
                }
            }
            (true, false) if self.batch_open => {
                self.discard = Some((error_response(message), true));
            }
            (true, false) => {
                self.refuse(out, error_response(message), false);
                self.discard = Some((Vec::new(), false));
            }
            (false, false) => self.refuse(out, error_response(message), true),
        }
    }

    /// Forward a whole client message, owing what the server will answer.
    fn forward(&mut self, out: &mut Output, msg: &[u8]) {
        out.to_server.extend_from_slice(msg);
        self.note_forwarded(msg[0]);
    }

    fn note_forwarded(&mut self, t: u8) {
        match t {
            b'Q' | b'F' => {
                self.owed.push_back(Owed::Reply {
                    inject: None,
                    raised: None,
                });
                self.end_batch();
            }
            b'S' => {
                let inject = self.discard.take().and_then(|(e, open)| open.then_some(e));
                let open = std::mem::take(&mut self.open);
                let raised = (open.want != [0; 3]).then_some(open);
                self.owed.push_back(Owed::Reply { inject, raised });
                self.end_batch();
            }
            b'X' => {}
            _ => {
                self.batch_open = true;
                if let Some(k) = COMPLETES.iter().position(|&(m, _)| m == t) {
                    self.batch_counts[k] += 1;
                }
            }
        }
    }

    fn end_batch(&mut self) {
        self.batch_open = false;
        self.batch_counts = [0; 3];
        self.open = Raised::default();
    }

    /// A message header (type and length) is in `self.hold`: decide what to do.
    fn head(&mut self, out: &mut Output, decide: &mut dyn FnMut(&L7Request) -> Verdict) {
        let t = self.hold[0];
        let len = be32(&self.hold[1..5]);
        if len < 4 {
            out.close = true;
            return;
        }
        let total = len + 1;
        if self.discard.is_some() {
            // Dropped like the server drops a failed batch, up to the Sync.
            if t == b'S' {
                let sync = std::mem::take(&mut self.hold);
                out.to_server.extend_from_slice(&sync[..5]);
                self.note_forwarded(b'S');
                self.client = self.body(total - 5, true);
            } else {
                self.hold.clear();
                self.client = self.body(total - 5, false);
            }
            return;
        }
        if matches!(t, b'Q' | b'P' | b'F') {
            if total > MAX_QUERY {
                self.hold.clear();
                out.decided
                    .push(sql::too_large(AppProtocol::Postgresql, decide));
                self.refuse_message(out, t, sql::TOO_LARGE);
                self.client = self.body(total - 5, false);
            } else if self.hold.len() == total {
                self.decide(out, decide);
            }
            return;
        }
        // Anything else (Bind, Execute, CopyData, password...) streams through.
        let h = std::mem::take(&mut self.hold);
        out.to_server.extend_from_slice(&h);
        self.note_forwarded(t);
        self.client = self.body(total - 5, true);
    }

    fn body(&self, left: usize, forward: bool) -> Client {
        if left == 0 {
            Client::Head
        } else {
            Client::Body { left, forward }
        }
    }

    /// The untyped first message(s): SSL/GSS requests, then the StartupMessage.
    fn startup(&mut self, out: &mut Output) {
        let len = be32(&self.hold[..4]);
        if !(8..=MAX_STARTUP).contains(&len) {
            out.close = true;
            return;
        }
        if self.hold.len() < len {
            return;
        }
        let msg: Vec<u8> = self.hold.drain(..len).collect();
        match be32(&msg[4..8]) as u32 {
            SSL_REQUEST | GSSENC_REQUEST => out.to_client.push(b'N'),
            _ => {
                out.to_server.extend_from_slice(&msg);
                self.owed.push_back(Owed::Reply {
                    inject: None,
                    raised: None,
                });
                self.client = Client::Head;
            }
        }
    }
}

impl Session for PostgresSession {
    fn client_bytes(
        &mut self,
        mut data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        while !data.is_empty() && !out.close {
            if self.owed.len() > MAX_OWED {
                out.close = true;
                break;
            }
            match &mut self.client {
                Client::Body { left, forward } => {
                    let n = (*left).min(data.len());
                    if *forward {
                        out.to_server.extend_from_slice(&data[..n]);
                    }
                    *left -= n;
                    if *left == 0 {
                        self.client = Client::Head;
                    }
                    data = &data[n..];
                }
                Client::Startup | Client::Head => {
                    let startup = matches!(self.client, Client::Startup);
                    let need = if startup {
                        if self.hold.len() < 4 {
                            4
                        } else {
                            be32(&self.hold[..4]).clamp(4, MAX_STARTUP)
                        }
                    } else if self.hold.len() < 5 {
                        5
                    } else {
                        // Only held messages get past the header still in `hold`.
                        (be32(&self.hold[1..5]) + 1).clamp(5, MAX_QUERY)
                    };
                    let n = need.saturating_sub(self.hold.len()).min(data.len());
                    self.hold.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if self.hold.len() < need {
                        continue;
                    }
                    if startup {
                        if self.hold.len() >= 4 {
                            self.startup(&mut out);
                        }
                    } else {
                        self.head(&mut out, decide);
                    }
                }
            }
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        while !data.is_empty() {
            if self.unordered {
                out.to_client.extend_from_slice(data);
                break;
            }
            if self.server_left > 0 {
                let n = self.server_left.min(data.len());
                let status = self.server_head.len() == 5 && self.server_head[0] == b'Z';
                if status && n > 0 {
                    self.status = data[n - 1];
                }
                match &mut self.server_raise {
                    Some(body) => body.extend_from_slice(&data[..n]),
                    None => out.to_client.extend_from_slice(&data[..n]),
                }
                self.server_left -= n;
                data = &data[n..];
                if self.server_left == 0 {
                    self.server_head.clear();
                    if let Some(body) = self.server_raise.take() {
                        out.to_client.extend_from_slice(&plain_error(&body));
                    }
                    if status {
                        self.end_reply(&mut out);
                    }
                }
                continue;
            }
            let n = (5 - self.server_head.len()).min(data.len());
            self.server_head.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.server_head.len() < 5 {
                continue;
            }
            let (t, len) = (self.server_head[0], be32(&self.server_head[1..5]));
            if len < 4 {
                self.unordered = true;
                out.to_client.extend_from_slice(&self.server_head);
                continue;
            }
            if t == b'E' {
                self.server_error = true;
            }
            if len == 4 && self.answers_our_raise(t) {
                self.server_head.clear();
                continue;
            }
            // (Asked first: an error too large to hold is the raise's all the same.)
            if t == b'E' && self.raise_error_next() && (5..=MAX_RAISE_ERROR).contains(&len) {
                self.server_raise = Some(Vec::with_capacity(len - 4));
                self.server_left = len - 4;
                continue;
            }
            if t == b'Z'
                && let Some(Owed::Reply { inject, .. }) = self.owed.front_mut()
                && let Some(error) = inject.take()
                && !self.server_error
            {
                out.to_client.extend_from_slice(&error);
            }
            out.to_client.extend_from_slice(&self.server_head);
            self.server_left = len - 4;
            if self.server_left == 0 {
                self.server_head.clear();
            }
        }
        if self.unordered {
            self.flush_refusals(&mut out);
            while let Some(o) = self.owed.pop_front() {
                if let Owed::Refusal { error, ready } = o {
                    out.to_client.extend_from_slice(&error);
                    if ready {
                        out.to_client.extend_from_slice(&self.ready());
                    }
                }
            }
        }
        out
    }
}

impl PostgresSession {
    /// The raise bookkeeping of the reply the server is sending: the head of the
    /// queue's, or, when nothing is owed, the batch the client has not ended yet.
    fn answering(&mut self) -> Option<&mut Raised> {
        match self.owed.front_mut() {
            Some(Owed::Reply { raised, .. }) => raised.as_mut(),
            Some(Owed::Refusal { .. }) => None,
            None => Some(&mut self.open),
        }
    }

    /// Is this bodiless server message the answer to a message of our raise?
    fn answers_our_raise(&mut self, t: u8) -> bool {
        self.answering().is_some_and(|r| r.ours(t))
    }

    /// Is the ErrorResponse starting now the raise's? (Asked once per error.)
    fn raise_error_next(&mut self) -> bool {
        self.answering()
            .is_some_and(|r| std::mem::take(&mut r.error_next))
    }

    /// A ReadyForQuery went out: the reply at the head of the queue is complete.
    fn end_reply(&mut self, out: &mut Output) {
        if matches!(self.owed.front(), Some(Owed::Reply { .. })) {
            self.owed.pop_front();
        }
        self.server_error = false;
        self.flush_refusals(out);
        if self.owed.is_empty() && !self.batch_open {
            self.status_pending = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raise_sql;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a refusal's text holds (a sensor's or a policy's name), the raise is
        /// one `DO` block whose message is one string literal: nothing of the text can
        /// end the literal or the dollar quote, or escape under
        /// `standard_conforming_strings = off`.
        #[test]
        fn a_raise_is_one_statement_with_one_literal(text in ".*") {
            let sql = raise_sql(&text);
            let head = "DO $bulkhead$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '";
            let tail = "'; END$bulkhead$";
            prop_assert!(sql.starts_with(head) && sql.ends_with(tail));
            let literal = &sql[head.len()..sql.len() - tail.len()];
            prop_assert!(!literal.contains(['$', '\\', '\0']));
            prop_assert!(literal.replace("''", "").find('\'').is_none());
        }
    }
}
