//! MQTT 3.1.1 and 5.0: every PUBLISH from the client is decided on its topic, every
//! SUBSCRIBE on each of its topic filters, before any byte of the packet reaches the broker.
//!
//! Client packets are framed (fixed header and remaining length); only what a decision
//! needs is held: a PUBLISH's header, topic, packet id and properties (its payload
//! streams), a whole SUBSCRIBE, and the first bytes of CONNECT (its protocol level says
//! which version's refusals to write). Other packets stream.
//!
//! Refusals: a denied PUBLISH is dropped; QoS 1 gets a PUBACK (5.0: Not authorized; 3.1.1
//! has no negative acknowledgement, so a positive one, as brokers answer unauthorised
//! publishes), QoS 2 a PUBREC Not authorized (5.0) or the connection closes (3.1.1, which
//! allows a server to close instead). A SUBSCRIBE with any denied filter is not forwarded
//! at all and the proxy answers SUBACK failing every filter: forwarding the allowed part
//! would need a new packet id space shared with the client, and a client that asked for a
//! set of filters is better told the set failed than silently given part of it.
//!
//! Server packets are framed too, only to know where they end: the proxy's answers are
//! written between two server packets, never inside one.

use std::collections::HashMap;

use bulkhead_policy::l7::{AppProtocol, L7Detail, L7Request, MqttAction};

use crate::mqtt_wire::{self as wire, Bad};
use crate::{Decided, Output, Session, Verdict};

/// The most held of one client packet (a PUBLISH head, a SUBSCRIBE): real ones are far
/// smaller; a topic alone may be 64 KiB.
pub const MAX_HELD: usize = 70 * 1024;
/// What an MQTT packet asks of policy.
fn mqtt(action: MqttAction, topic: String) -> L7Request {
    L7Request {
        app: AppProtocol::Mqtt,
        detail: L7Detail::Mqtt { action, topic },
    }
}

/// The connect flag that says a will follows (MQTT 3.1.1 3.1.2.5, 5 3.1.2.5).
const WILL: u8 = 0x04;

/// A CONNECT's will topic, from its head (its client id and, in version 5, the will's
/// properties come before it): `Err(n)` while the head is shorter than the `n` bytes
/// needed.
fn will_topic(h: &[u8], hl: usize) -> Result<Result<String, usize>, Bad> {
    let need = |n: usize| -> Result<Result<String, usize>, Bad> { Ok(Err(n)) };
    let Some(n) = wire::u16_at(h, hl) else {
        return need(hl + 2);
    };
    let level_at = hl + 2 + usize::from(n);
    let Some(&level) = h.get(level_at) else {
        return need(level_at + 1);
    };
    // Level, flags, keep alive.
    let mut at = level_at + 4;
    let props = |at: &mut usize| -> Result<Option<usize>, Bad> {
        match wire::varint(h, *at)? {
            None => Ok(Some(h.len().max(*at) + 1)),
            Some((len, k)) => {
                *at += k + len;
                Ok(None)
            }
        }
    };
    if level == 5
        && let Some(n) = props(&mut at)?
    {
        return need(n);
    }
    let Some(id) = wire::u16_at(h, at) else {
        return need(at + 2);
    };
    at += 2 + usize::from(id);
    if level == 5
        && let Some(n) = props(&mut at)?
    {
        return need(n);
    }
    let Some(len) = wire::u16_at(h, at) else {
        return need(at + 2);
    };
    if h.len() < at + 2 + usize::from(len) {
        return need(at + 2 + usize::from(len));
    }
    wire::string(h, at).map(|(topic, _)| Ok(topic))
}
/// Answers waiting for the end of a server packet; a client flooding denied publishes
/// while the broker streams one large message gets closed rather than buffered.
const MAX_PENDING: usize = 64 * 1024;
/// Bytes of topics remembered for version 5 topic aliases.
const MAX_ALIASES: usize = 256 * 1024;

enum Client {
    Head,
    Body { left: usize, forward: bool },
    Closed,
}

pub struct MqttSession {
    client: Client,
    head: Vec<u8>,
    v5: bool,
    /// Topic aliases the broker knows (set by PUBLISHes we forwarded), bytes held.
    aliases: HashMap<u16, String>,
    alias_bytes: usize,
    /// Server framing: the fixed header being read, then what is left of the packet.
    server_head: Vec<u8>,
    server_left: usize,
    pending: Vec<u8>,
}

impl Default for MqttSession {
    fn default() -> Self {
        MqttSession::new()
    }
}

/// What a held client head still needs: a total length, or nothing.
enum Step {
    Need(usize),
    Ready,
}

impl MqttSession {
    pub fn new() -> MqttSession {
        MqttSession {
            client: Client::Head,
            head: Vec::new(),
            v5: false,
            aliases: HashMap::new(),
            alias_bytes: 0,
            server_head: Vec::new(),
            server_left: 0,
            pending: Vec::new(),
        }
    }

    fn server_at_boundary(&self) -> bool {
        self.server_head.is_empty() && self.server_left == 0
    }

    /// An answer of the proxy's: now if the server is between packets, else once it is.
    fn answer(&mut self, out: &mut Output, bytes: &[u8]) {
        if self.server_at_boundary() {
            out.to_client.extend_from_slice(bytes);
        } else if self.pending.len() + bytes.len() > MAX_PENDING {
            out.close = true;
        } else {
            self.pending.extend_from_slice(bytes);
        }
    }

    fn need(&self) -> Result<Step, Bad> {
        let h = &self.head;
        let Some((b0, rem, hl)) = wire::fixed(h)? else {
            return Ok(Step::Need(h.len() + 1));
        };
        let end = hl + rem;
        let within = |n: usize| -> Result<Step, Bad> {
            if n > end {
                Err("malformed packet")
            } else if n > MAX_HELD {
                Err("packet head too large to inspect")
            } else if h.len() < n {
                Ok(Step::Need(n))
            } else {
                Ok(Step::Ready)
            }
        };
        match b0 >> 4 {
            // Up to the connect flags, after the protocol name and level; with a will,
            // up to the end of its topic.
            wire::CONNECT => {
                let Some(n) = wire::u16_at(h, hl) else {
                    return within(hl + 2);
                };
                let flags_at = hl + 2 + usize::from(n) + 1;
                match h.get(flags_at) {
                    None => within(flags_at + 1),
                    Some(f) if f & WILL == 0 => within(flags_at + 1),
                    Some(_) => match will_topic(h, hl)? {
                        Err(n) => within(n),
                        Ok(_) => Ok(Step::Ready),
                    },
                }
            }
            wire::PUBLISH => {
                let Some(tl) = wire::u16_at(h, hl) else {
                    return within(hl + 2);
                };
                let qos = (b0 >> 1) & 3;
                let n = hl + 2 + usize::from(tl) + if qos > 0 { 2 } else { 0 };
                if !self.v5 {
                    return within(n);
                }
                match wire::varint(h, n)? {
                    None => within(h.len().max(n) + 1),
                    Some((plen, k)) => within(n + k + plen),
                }
            }
            wire::SUBSCRIBE => within(end),
            _ => within(hl),
        }
    }

    /// The held head of a packet is complete: decide it and say how the rest goes.
    fn act(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Result<(), Bad> {
        let head = std::mem::take(&mut self.head);
        let (b0, rem, hl) = wire::fixed(&head)?.ok_or("malformed packet")?;
        let left = hl + rem - head.len();
        let forward = match b0 >> 4 {
            wire::CONNECT => self.connect(out, decide, &head, hl)?,
            wire::PUBLISH => self.publish(out, decide, &head, b0, hl)?,
            wire::SUBSCRIBE => self.subscribe(out, decide, &head, hl)?,
            _ => true,
        };
        if forward {
            out.to_server.extend_from_slice(&head);
        }
        self.client = if left > 0 {
            Client::Body { left, forward }
        } else {
            Client::Head
        };
        Ok(())
    }

    /// A CONNECT: its version, and its will (a message the broker publishes for the
    /// client when it goes away, to a topic it names now), decided as a publish to that
    /// topic: a denied one is refused with CONNACK "not authorized" and the connection
    /// closes, before the broker has it.
    fn connect(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
        head: &[u8],
        hl: usize,
    ) -> Result<bool, Bad> {
        let n = usize::from(wire::u16_at(head, hl).ok_or("truncated CONNECT")?);
        let level_at = hl + 2 + n;
        self.v5 = head.get(level_at) == Some(&5);
        let has_will = head.get(level_at + 1).is_some_and(|f| f & WILL != 0);
        if !has_will {
            return Ok(true);
        }
        let topic = will_topic(head, hl)?.map_err(|_| "truncated CONNECT")?;
        let request = mqtt(MqttAction::Publish, topic);
        let allowed = decide(&request).allowed;
        let refusal = (!allowed).then(|| {
            // 3.1.1: return code 5, not authorized; 5: reason code 0x87.
            let connack = if self.v5 {
                wire::packet(0x20, &[0, wire::NOT_AUTHORIZED, 0])
            } else {
                wire::packet(0x20, &[0, 5])
            };
            self.answer(out, &connack);
            out.close = true;
            "CONNACK not authorized (the will's topic), connection closed".to_string()
        });
        out.decided.push(Decided {
            request,
            allowed,
            refusal,
            findings: Vec::new(),
        });
        Ok(allowed)
    }

    fn publish(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
        head: &[u8],
        b0: u8,
        hl: usize,
    ) -> Result<bool, Bad> {
        let qos = (b0 >> 1) & 3;
        if qos == 3 {
            return Err("PUBLISH with QoS 3");
        }
        let (mut topic, mut at) = wire::string(head, hl)?;
        let pid = if qos > 0 {
            at += 2;
            wire::u16_at(head, at - 2)
        } else {
            None
        };
        let alias = if self.v5 {
            let (_, k) = wire::varint(head, at)?.ok_or("truncated properties")?;
            wire::topic_alias(head.get(at + k..).unwrap_or_default())?
        } else {
            None
        };
        // Version 5 may name the topic by an alias the broker was given earlier.
        let mut learn = None;
        match (topic.is_empty(), alias) {
            (true, Some(a)) => topic = self.aliases.get(&a).ok_or("unknown topic alias")?.clone(),
            (true, None) => return Err("PUBLISH without a topic"),
            (false, Some(a)) => learn = Some(a),
            (false, None) => {}
        }
        let request = mqtt(MqttAction::Publish, topic.clone());
        let allowed = decide(&request).allowed;
        let refusal = if allowed {
            if let Some(a) = learn {
                self.alias_bytes += topic.len();
                if let Some(old) = self.aliases.insert(a, topic) {
                    self.alias_bytes -= old.len();
                }
                if self.alias_bytes > MAX_ALIASES {
                    return Err("too many topic aliases");
                }
            }
            None
        } else {
            let pid = pid.unwrap_or(0);
            Some(match (qos, self.v5) {
                (0, _) => "dropped (QoS 0)",
                (1, true) => {
                    self.answer(out, &wire::ack(0x40, pid, true));
                    "PUBACK 0x87 not authorized"
                }
                (1, false) => {
                    self.answer(out, &wire::ack(0x40, pid, false));
                    "PUBACK (3.1.1 has no negative ack), message dropped"
                }
                (_, true) => {
                    self.answer(out, &wire::ack(0x50, pid, true));
                    "PUBREC 0x87 not authorized"
                }
                (_, false) => {
                    out.close = true;
                    "connection closed (QoS 2, 3.1.1 has no negative ack)"
                }
            })
        };
        out.decided.push(Decided {
            request,
            allowed,
            refusal: refusal.map(str::to_string),
            findings: Vec::new(),
        });
        Ok(allowed)
    }

    fn subscribe(
        &mut self,
        out: &mut Output,
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
        packet: &[u8],
        hl: usize,
    ) -> Result<bool, Bad> {
        let pid = wire::u16_at(packet, hl).ok_or("truncated SUBSCRIBE")?;
        let mut at = hl + 2;
        if self.v5 {
            let (plen, k) = wire::varint(packet, at)?.ok_or("truncated SUBSCRIBE")?;
            at += k + plen;
        }
        let mut filters = Vec::new();
        while at < packet.len() {
            let (filter, next) = wire::string(packet, at)?;
            filters.push(filter);
            at = next + 1; // the subscription options byte
        }
        if filters.is_empty() || at > packet.len() {
            return Err("malformed SUBSCRIBE");
        }
        let verdicts: Vec<(L7Request, bool)> = filters
            .into_iter()
            .map(|filter| {
                // A shared subscription (`$share/GROUP/FILTER`, MQTT 5 4.8.2; mosquitto
                // takes it in 3.1.1 too) receives what FILTER matches.
                let topic = match filter
                    .strip_prefix("$share/")
                    .and_then(|r| r.split_once('/'))
                {
                    Some((_, f)) => f.to_string(),
                    None => filter,
                };
                let request = mqtt(MqttAction::Subscribe, topic);
                let allowed = decide(&request).allowed;
                (request, allowed)
            })
            .collect();
        let all = verdicts.iter().all(|(_, a)| *a);
        if !all {
            self.answer(out, &wire::suback_failure(pid, verdicts.len(), self.v5));
        }
        for (request, allowed) in verdicts {
            let refusal = match (all, allowed) {
                (true, _) => None,
                (false, false) => Some("SUBACK failure".to_string()),
                (false, true) => {
                    Some("SUBACK failure (another filter of the SUBSCRIBE was denied)".into())
                }
            };
            out.decided.push(Decided {
                request,
                allowed,
                refusal,
                findings: Vec::new(),
            });
        }
        Ok(all)
    }
}

impl Session for MqttSession {
    fn client_bytes(
        &mut self,
        mut data: &[u8],
        decide: &mut dyn FnMut(&L7Request) -> Verdict,
    ) -> Output {
        let mut out = Output::default();
        while !data.is_empty() && !out.close {
            match &mut self.client {
                Client::Closed => break,
                Client::Body { left, forward } => {
                    let n = data.len().min(*left);
                    if *forward {
                        out.to_server.extend_from_slice(&data[..n]);
                    }
                    *left -= n;
                    data = &data[n..];
                    if *left == 0 {
                        self.client = Client::Head;
                    }
                }
                Client::Head => {
                    let step = self.need().and_then(|s| match s {
                        Step::Ready => self.act(&mut out, decide).map(|_| None),
                        Step::Need(n) => Ok(Some(n)),
                    });
                    match step {
                        Ok(Some(n)) => {
                            // Take exactly what the head needs: never read past it.
                            let take = data.len().min(n - self.head.len());
                            self.head.extend_from_slice(&data[..take]);
                            data = &data[take..];
                        }
                        Ok(None) => {}
                        Err(_) => out.close = true,
                    }
                }
            }
        }
        // A packet whose head is complete with the last byte is acted on now, not when
        // the next bytes come: its answer must not wait for them.
        if !out.close
            && matches!(self.client, Client::Head)
            && !self.head.is_empty()
            && let Ok(Step::Ready) = self.need()
            && self.act(&mut out, decide).is_err()
        {
            out.close = true;
        }
        if out.close {
            self.client = Client::Closed;
        }
        out
    }

    fn server_bytes(&mut self, mut data: &[u8]) -> Output {
        let mut out = Output::default();
        if matches!(self.client, Client::Closed) {
            return out;
        }
        while !data.is_empty() {
            if self.server_left > 0 {
                let n = data.len().min(self.server_left);
                out.to_client.extend_from_slice(&data[..n]);
                self.server_left -= n;
                data = &data[n..];
            } else {
                out.to_client.push(data[0]);
                self.server_head.push(data[0]);
                data = &data[1..];
                match wire::fixed(&self.server_head) {
                    Ok(None) => continue,
                    Ok(Some((_, rem, _))) => {
                        self.server_head.clear();
                        self.server_left = rem;
                    }
                    Err(_) => {
                        // A broker we cannot frame: the proxy's answers would have no
                        // place to go, and the client would wait for them forever.
                        out.close = true;
                        self.client = Client::Closed;
                        return out;
                    }
                }
            }
            if self.server_at_boundary() {
                out.to_client.append(&mut self.pending);
            }
        }
        out
    }
}
