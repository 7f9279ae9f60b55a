//! MySQL / MariaDB: COM_QUERY and COM_STMT_PREPARE are decided on their statements,
//! other commands as the statement they stand for (COM_PROCESS_KILL as KILL...: see
//! `command_kind`); a refused one gets an ERR packet (1142, SQLSTATE 42000) in order.
//!
//! The server speaks first. Its greeting reaches the client without CLIENT_SSL (the
//! proxy must read the queries; clients that do not insist on TLS carry on in clear,
//! one that sends an SSLRequest anyway is cut off), without the compression flags and
//! without CLIENT_QUERY_ATTRIBUTES (so COM_QUERY holds nothing but the text). Authentication passes untouched: the
//! client's packets carry sequence ids above 0 until a command starts a new sequence.
//!
//! Order: a queue of what the client is owed, server replies framed packet by packet
//! ([`crate::mysql_reply`]) and refusals, written once the replies before them are out.
//! Commands whose replies we do not frame (binlog, replication) stop the ordering:
//! refusals then go out at once (clients wait for each reply anyway).

use std::collections::VecDeque;
use std::sync::Arc;

use bulkhead_policy::l7::{AppProtocol, L7Request, SqlKind};

use crate::mysql_reply::{CLIENT_DEPRECATE_EOF, Kind, Reply};
use crate::sql::{self, Dialect, MAX_OWED, MAX_QUERY};
use crate::{Inspector, Output, Session, Verdict};

const CLIENT_SSL: u32 = 0x0800;
const CLIENT_COMPRESS: u32 = 0x0020;
const CLIENT_ZSTD_COMPRESSION: u32 = 1 << 26;
const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
/// Capabilities hidden from the client: each changes what the packets hold (TLS,
/// compressed packets, attributes before the query text) in ways the proxy does not read.
const HIDDEN: u32 =
    CLIENT_SSL | CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION | CLIENT_QUERY_ATTRIBUTES;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
/// MariaDB's COM_MULTI: several commands in one packet.
const COM_MULTI: u8 = 0xfe;
const COM_MULTI_REFUSED: &str = "bulkhead: COM_MULTI is not inspected";
/// The largest payload of one packet; a payload this long continues in the next.
const MAX_PACKET: usize = 0xFF_FFFF;
/// Server payload bytes held to frame a packet (OK status flags come early).
const PEEK: usize = 64;

#[derive(Debug)]
enum Owed {
    Reply(Reply),
    Refusal(Vec<u8>),
}

pub struct MysqlSession {
    /// Client side: header and payload held, and the bytes left of the current packet.
    hold: Vec<u8>,
    left: usize,
    forward: bool,
    /// Packets of a refused command (continuations) are dropped too.
    dropping: bool,
    handshake_seen: bool,
    client_caps: u32,
    server_caps: u32,
    owed: VecDeque<Owed>,
    server_hold: Vec<u8>,
    server_left: usize,
    /// The previous server packet was full-size: this one continues its payload.
    server_continues: bool,
    /// The packet being streamed ends a reply: write what waits on it after it.
    reply_ended: bool,
    unordered: bool,
    inspector: Option<Arc<dyn Inspector>>,
}

impl Default for MysqlSession {
    fn default() -> Self {
        MysqlSession::new()
    }
}

fn le24(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

fn err_packet(seq: u8, message: &str) -> Vec<u8> {
    let mut p = vec![0xFF];
    p.extend_from_slice(&1142u16.to_le_bytes());
    p.extend_from_slice(b"#42000");
    p.extend_from_slice(message.as_bytes());
    let mut out = (p.len() as u32).to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(&p);
    out
}

/// The statement kind a command other than COM_QUERY and COM_STMT_PREPARE stands for,
/// decided like that statement; None: it runs none (or one decided at its prepare) and
/// passes. What clients send on an ordinary session passes: COM_QUIT, COM_INIT_DB (as
/// `USE`: the server still checks rights), COM_FIELD_LIST, COM_STATISTICS, COM_PING,
/// COM_CHANGE_USER (authenticated by the server), COM_STMT_EXECUTE, _SEND_LONG_DATA,
/// _CLOSE, _RESET, _FETCH and MariaDB's _BULK_EXECUTE, COM_SET_OPTION,
/// COM_RESET_CONNECTION.
fn command_kind(cmd: u8) -> Option<SqlKind> {
    match cmd {
        0x01 | 0x02 | 0x04 | 0x09 | 0x0e | 0x11 | 0x17..=0x1c | 0x1f | 0xfa => None,
        // COM_CREATE_DB, COM_DROP_DB
        0x05 | 0x06 => Some(SqlKind::Ddl),
        // COM_PROCESS_INFO: SHOW PROCESSLIST
        0x0a => Some(SqlKind::Utility),
        // COM_REFRESH (FLUSH), COM_SHUTDOWN, COM_PROCESS_KILL (KILL), COM_DEBUG,
        // replication (COM_BINLOG_DUMP, _GTID, COM_REGISTER_SLAVE, COM_TABLE_DUMP),
        // COM_CLONE, the server's internal commands, unknown ones: as their statements
        // (FLUSH, KILL, SHUTDOWN) are, `other`.
        _ => Some(SqlKind::Other),
    }
}

impl MysqlSession {
    pub fn new() -> MysqlSession {
        MysqlSession {
            hold: Vec::new(),
            left: 0,
            forward: true,
            dropping: false,
            handshake_seen: false,
            client_caps: 0,
            server_caps: 0,
            owed: [Owed::Reply(Reply::new(Kind::Greeting))].into(),
            server_hold: Vec::new(),
            server_left: 0,
            server_continues: false,
            reply_ended: false,
            unordered: false,
            inspector: None,
        }
    }

    pub fn with_inspector(mut self, inspector: Option<Arc<dyn Inspector>>) -> MysqlSession {
        self.inspector = inspector;
        self
    }

    fn flush_refusals(&mut self, out: &mut Output) {
        while let Some(Owed::Refusal(_)) = self.owed.front() {
            if let Some(Owed::Refusal(p)) = self.owed.pop_front() {
                out.to_client.extend_from_slice(&p);
            }
        }
    }

    fn refuse(&mut self, out: &mut Output, message: &str) {
        let p = err_packet(1, message);
        if self.unordered {
            out.to_client.extend_from_slice(&p);
        } else {
            self.owed.push_back(Owed::Refusal(p));
            if !self.reply_ended {
                self.flush_refusals(out);
            }
        }
    }

    /// A client packet starts (header and what is held of its payload in `hold`).
    /// Returns false while more must be held.
    fn packet(&mut self, out: &mut Output, decide: &mut dyn FnMut(&L7Request) -> Verdict) -> bool {
        let len = le24(&self.hold);
        let seq = self.hold[3];
        let payload = &self.hold[4..];
        if !self.handshake_seen {
            if payload.len() < len.min(4) {
                return false;
            }
            self.handshake_seen = true;
            self.client_caps = payload
                .get(..4)
                .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            if self.client_caps & HIDDEN != 0 {
                // The client asks for what the greeting it saw did not offer (TLS,
                // compression): the server would agree, and we could not read on.
                out.close = true;
                return true;
            }
            self.owed.push_back(Owed::Reply(Reply::new(Kind::Auth)));
            return self.pass(out, true);
        }
        if seq != 0 {
            // Authentication data, LOAD DATA LOCAL contents, a command's continuation.
            let fwd = !self.dropping;
            return self.pass(out, fwd);
        }
        if len == 0 {
            return self.pass(out, true);
        }
        let Some(&cmd) = payload.first() else {
            return false;
        };
        self.dropping = false;
        if cmd != COM_QUERY && cmd != COM_STMT_PREPARE {
            let refused = match command_kind(cmd) {
                None => None,
                // It wraps other commands, which would pass unread.
                Some(_) if cmd == COM_MULTI => {
                    let d = sql::unread(AppProtocol::Mysql, decide, COM_MULTI_REFUSED);
                    out.decided.push(d);
                    Some(COM_MULTI_REFUSED.to_string())
                }
                Some(kind) => {
                    let (d, verdict) = sql::decide_kind(AppProtocol::Mysql, kind, decide);
                    out.decided.push(d);
                    verdict.err()
                }
            };
            if let Some(message) = refused {
                self.refuse(out, &message);
                self.dropping = true;
                return self.pass(out, false);
            }
            let kind = Kind::of_command(cmd);
            match kind {
                None => {}
                Some(Kind::Unframed) => self.unordered = true,
                Some(k) => self.owed.push_back(Owed::Reply(Reply::new(k))),
            }
            if self.unordered {
                self.flush_unordered(out);
            }
            return self.pass(out, true);
        }
        if len >= MAX_QUERY.min(MAX_PACKET) {
            out.decided.push(sql::too_large(AppProtocol::Mysql, decide));
            self.refuse(out, sql::TOO_LARGE);
            self.dropping = true;
            return self.pass(out, false);
        }
        if payload.len() < len {
            return false;
        }
        let (decided, verdict) = sql::judge(
            AppProtocol::Mysql,
            &payload[1..len],
            Dialect::Mysql,
            decide,
            &self.inspector,
        );
        out.decided.extend(decided);
        match verdict {
            Ok(()) => {
                let k = if cmd == COM_QUERY {
                    Kind::Results
                } else {
                    Kind::Prepare
                };
                self.owed.push_back(Owed::Reply(Reply::new(k)));
                self.pass(out, true)
            }
            Err(message) => {
                self.refuse(out, &message);
                self.dropping = true;
                self.pass(out, false)
            }
        }
    }

    /// Write (or drop) the held part of the current packet and stream the rest.
    fn pass(&mut self, out: &mut Output, forward: bool) -> bool {
        let len = le24(&self.hold);
        let h = std::mem::take(&mut self.hold);
        if forward {
            out.to_server.extend_from_slice(&h);
        }
        self.left = (len + 4).saturating_sub(h.len());
        self.forward = forward;
        true
    }

    fn flush_unordered(&mut self, out: &mut Output) {
        while let Some(o) = self.owed.pop_front() {
            if let Owed::Refusal(p) = o {
                out.to_client.extend_from_slice(&p);
            }
        }
    }

    /// The greeting without CLIENT_SSL and CLIENT_QUERY_ATTRIBUTES.
    fn greeting(&mut self, packet: &mut [u8]) {
        let p = &mut packet[4..];
        if p.first() != Some(&10) {
            return;
        }
        let Some(nul) = p.iter().skip(1).position(|&c| c == 0) else {
            return;
        };
        let at = 1 + nul + 1 + 4 + 8 + 1;
        if p.len() < at + 2 {
            return;
        }
        let mut caps = u16::from_le_bytes([p[at], p[at + 1]]) as u32;
        if p.len() >= at + 7 {
            caps |= (u16::from_le_bytes([p[at + 5], p[at + 6]]) as u32) << 16;
        }
        caps &= !HIDDEN;
        self.server_caps = caps;
        p[at..at + 2].copy_from_slice(&(caps as u16).to_le_bytes());
        if p.len() >= at + 7 {
            p[at + 5..at + 7].copy_from_slice(&((caps >> 16) as u16).to_le_bytes());
        }
    }
}

impl Session for MysqlSession {
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
            if self.left > 0 {
                let n = self.left.min(data.len());
                if self.forward {
                    out.to_server.extend_from_slice(&data[..n]);
                }
                self.left -= n;
                data = &data[n..];
                continue;
            }
            // Hold the header, then the few payload bytes that say what the packet is,
            // then (a query) all of it.
            let need = match self.hold.len() {
                0..4 => 4,
                4..8 => 4 + le24(&self.hold).min(4),
                _ => 4 + le24(&self.hold).min(MAX_QUERY),
            };
            let n = need.saturating_sub(self.hold.len()).min(data.len());
            self.hold.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.hold.len() >= 4 && !self.packet(&mut out, decide) && n == 0 {
                // Never spin on a packet that cannot be completed.
                out.close = true;
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
                out.to_client.extend_from_slice(&data[..n]);
                self.server_left -= n;
                data = &data[n..];
                self.packet_written(&mut out);
                continue;
            }
            let need = if self.server_hold.len() < 4 {
                4
            } else {
                4 + le24(&self.server_hold).min(PEEK)
            };
            let n = need.saturating_sub(self.server_hold.len()).min(data.len());
            self.server_hold.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.server_hold.len() < need || need == 4 && le24(&self.server_hold) > 0 {
                // Still short, or only the header is in: its payload's first bytes next.
                continue;
            }
            let mut packet = std::mem::take(&mut self.server_hold);
            let len = le24(&packet);
            let continuation = std::mem::replace(&mut self.server_continues, len == MAX_PACKET);
            if !continuation {
                self.server_packet(&mut out, &mut packet, len);
            }
            out.to_client.extend_from_slice(&packet);
            self.server_left = len + 4 - packet.len();
            self.packet_written(&mut out);
        }
        out
    }
}

impl MysqlSession {
    fn packet_written(&mut self, out: &mut Output) {
        if self.server_left == 0 && std::mem::take(&mut self.reply_ended) {
            self.flush_refusals(out);
        }
    }

    /// Frame one server packet (not a continuation) against the reply owed first.
    fn server_packet(&mut self, out: &mut Output, packet: &mut [u8], len: usize) {
        let deprecate_eof = self.server_caps & self.client_caps & CLIENT_DEPRECATE_EOF != 0;
        let Some(Owed::Reply(reply)) = self.owed.front_mut() else {
            return;
        };
        if reply.kind == Kind::Greeting {
            self.greeting(packet);
            self.owed.pop_front();
            return;
        }
        match reply.packet(&packet[4..], len, deprecate_eof) {
            Ok(true) => {
                // Refusals follow once this packet's last byte is out.
                self.owed.pop_front();
                self.reply_ended = true;
            }
            Ok(false) => {}
            Err(()) => {
                self.unordered = true;
                self.flush_unordered(out);
            }
        }
    }
}
