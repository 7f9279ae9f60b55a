//! FQDN egress: `dns:` peers allow (or deny) the addresses that names matching their
//! pattern resolved to, for the answer's TTL (at least `--dns-min-ttl`), as Cilium's
//! toFQDNs does.
//!
//! The L7 proxy relays the DNS traffic of workloads whose egress rules name `dns:`
//! peers (the divert chain sends it there) and hands every answer to
//! [`Fqdn::learn`] before relaying it. An answer teaches "address X is known by name N
//! until T" when a `dns:` pattern of an egress rule of the asking workload matches N.
//! That knowledge is the engine's input ([`DnsNames`]: `NodeScope::endpoint` gives
//! external addresses the names they are known by, so the verdict function decides
//! `dns:` peers on names, for explain, flow records and conntrack cutting alike), and
//! the kernel holds a cache of its consequence: X is put, with the remaining lifetime
//! as its timeout, into the `d4_`/`d6_` set of *every* pattern of the policy that
//! matches N (so the sets are exactly "addresses known by a name the pattern matches",
//! whoever asked). The kernel expires the elements itself; the reconcile diff never
//! touches them (see `bulkhead_dataplane::names::is_dns_set`).
//!
//! Elements are added by one thread, in batches (whatever answers queued meanwhile),
//! as element-only netlink transactions; each answer's sender is told once the kernel
//! accepted its elements, and the proxy holds the answer until then (bounded).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_dataplane::names::{dns_set_names, is_dns_set};
use bulkhead_dataplane::netlink::{TimedAddr, add_timed};
use bulkhead_dataplane::ruleset::Ruleset;
use bulkhead_policy::Engine;
use bulkhead_policy::compile::Target;
use bulkhead_policy::engine::AddrOwner;
use bulkhead_policy::l7::name_matches;
use bulkhead_policy::spec::NamePattern;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Cilium's default `tofqdns-min-ttl`.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
/// The longest an answer is believed: a resolver's TTL is capped here (as resolvers cap
/// what they cache: BIND's `max-cache-ttl` is a week, dnsmasq's `max-cache-ttl` what it
/// is told), so an answer with a TTL of 68 years from a resolver a workload runs itself
/// opens an address for a day, not for good.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a name is remembered after it expired: live connections opened while it was
/// known are not cut for its expiry (as Cilium keeps the addresses of live connections).
const REMEMBER: Duration = Duration::from_secs(24 * 3600);

/// Latency samples kept for the percentiles in `status.json`.
const SAMPLES: usize = 65_536;

/// Names external addresses are known by, each until it expires.
#[derive(Debug, Default)]
pub struct DnsNames {
    by_addr: Mutex<HashMap<IpAddr, Vec<(String, Instant)>>>,
    /// Changed since the last save.
    dirty: std::sync::atomic::AtomicBool,
}

/// The file in the state directory that keeps the names across restarts (the kernel
/// keeps the elements: a restarted agent must know why, or it would judge the
/// connections they allow as denied and cut them).
pub const NAMES_FILE: &str = "dns-names.json";

#[derive(Serialize, Deserialize)]
struct SavedName {
    addr: IpAddr,
    name: String,
    /// Unix time in milliseconds.
    until_ms: u64,
}

impl DnsNames {
    /// Write the names (with their expiry as wall-clock time) if they changed.
    pub fn save(&self, dir: &std::path::Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let saved: Vec<SavedName> = {
            let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .flat_map(|(ip, names)| {
                    names.iter().map(move |(n, t)| {
                        let at = if *t > now {
                            wall + (*t - now)
                        } else {
                            wall - (now - *t)
                        };
                        SavedName {
                            addr: *ip,
                            name: n.clone(),
                            until_ms: at
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as u64),
                        }
                    })
                })
                .collect()
        };
        let tmp = dir.join(format!(".{NAMES_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&saved).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join(NAMES_FILE))
    }

    /// Read what [`DnsNames::save`] wrote (a restarted agent).
    pub fn load(&self, dir: &std::path::Path) {
        let Ok(bytes) = std::fs::read(dir.join(NAMES_FILE)) else {
            return;
        };
        let Ok(saved) = serde_json::from_slice::<Vec<SavedName>>(&bytes) else {
            warn!("cannot read {NAMES_FILE}: DNS names start empty");
            return;
        };
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let wall_ms = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for s in saved {
            let until = if s.until_ms >= wall_ms {
                now + Duration::from_millis(s.until_ms - wall_ms)
            } else {
                match now.checked_sub(Duration::from_millis(wall_ms - s.until_ms)) {
                    Some(t) => t,
                    None => continue,
                }
            };
            if until + REMEMBER > now {
                self.learn(s.addr, &s.name, until);
            }
        }
    }

    /// The live names of `ip` (sorted; empty when none).
    pub fn names(&self, ip: IpAddr) -> Vec<String> {
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut out: Vec<String> = map
            .get(&ip)
            .into_iter()
            .flatten()
            .filter(|(_, until)| *until > now)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// The names of `ip`, also those that expired (within a day): for judging
    /// connections that opened while they were known.
    pub fn remembered(&self, ip: IpAddr) -> Vec<String> {
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = map
            .get(&ip)
            .into_iter()
            .flatten()
            .map(|(n, _)| n.clone())
            .collect();
        out.sort();
        out
    }

    /// Remember `name` for `ip` until `until` (extending, never shortening). Returns
    /// the name's expiry for that address afterwards.
    fn learn(&self, ip: IpAddr, name: &str, until: Instant) -> Instant {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        let now = Instant::now();
        let names = map.entry(ip).or_default();
        names.retain(|(_, t)| *t + REMEMBER > now);
        match names.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => {
                *t = (*t).max(until);
                *t
            }
            None => {
                names.push((name.to_string(), until));
                until
            }
        }
    }

    /// Every live (address, name, expiry); forgets what expired over a day ago.
    fn live(&self) -> Vec<(IpAddr, String, Instant)> {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, names| {
            names.retain(|(_, t)| *t + REMEMBER > now);
            !names.is_empty()
        });
        map.iter()
            .flat_map(|(ip, names)| names.iter().map(|(n, t)| (*ip, n.clone(), *t)))
            .filter(|(_, _, t)| *t > now)
            .collect()
    }
}

/// What `status.json` says about FQDN egress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FqdnCounters {
    /// DNS answers that taught addresses of names `dns:` peers match.
    pub answers: u64,
    /// Elements written (added or refreshed) into the DNS sets.
    pub elements: u64,
    /// Answers relayed before their addresses were confirmed (the hold's bound passed).
    pub late: u64,
    /// Element transactions the kernel refused.
    pub errors: u64,
    /// Answers not learnt from: their resolver is not one `--dns-resolver` trusts.
    #[serde(default)]
    pub untrusted: u64,
    /// From the answer reaching the agent to the kernel holding its elements.
    pub programmed_p50_ms: f64,
    pub programmed_p99_ms: f64,
    pub programmed_max_ms: f64,
}

type Programmed = Mutex<HashMap<(String, IpAddr), Instant>>;

struct Job {
    elems: Vec<TimedAddr>,
    queued: Instant,
    done: Option<bulkhead_proxy::oneshot::Sender<()>>,
}

#[derive(Default)]
struct Stats {
    counters: FqdnCounters,
    samples: Vec<f64>,
    next: usize,
}

pub struct Fqdn {
    pub names: Arc<DnsNames>,
    min_ttl: Duration,
    /// The resolvers whose answers teach (`--dns-resolver`); empty: every resolver a
    /// workload may query.
    resolvers: Vec<IpNet>,
    /// Untrusted resolvers already warned about (once each, a bounded number).
    warned: Mutex<BTreeSet<IpAddr>>,
    /// What was sent per (set, address): its expiry. An answer that would not extend
    /// it writes nothing.
    programmed: Arc<Programmed>,
    tx: Mutex<mpsc::Sender<Job>>,
    stats: Arc<Mutex<Stats>>,
}

/// The distinct `dns:` patterns of the egress rules of the policies that apply to
/// `ip`'s workload (None: not a workload).
fn patterns_of(engine: &Engine, ip: IpAddr) -> Vec<NamePattern> {
    let Some(AddrOwner::Workload(w)) = engine.owner_of(&ip) else {
        return Vec::new();
    };
    let Some(ep) = engine
        .identity_of(w)
        .and_then(|id| engine.endpoint_policy(id))
    else {
        return Vec::new();
    };
    let c = engine.compiled();
    let mut out: Vec<NamePattern> = Vec::new();
    for &pi in &ep.policies {
        let Some(p) = c.policies.get(pi as usize) else {
            continue;
        };
        for rid in p.egress.clone() {
            for t in &c.rules[rid as usize].peers {
                if let Target::Dns(pat) = t
                    && !out.contains(pat)
                {
                    out.push(pat.clone());
                }
            }
        }
    }
    out
}

/// Every `dns:` pattern of the policy set.
fn all_patterns(engine: &Engine) -> BTreeSet<String> {
    engine
        .compiled()
        .rules
        .iter()
        .flat_map(|r| r.peers.iter())
        .filter_map(|t| match t {
            Target::Dns(p) => Some(p.0.clone()),
            _ => None,
        })
        .collect()
}

impl Fqdn {
    /// Start the thread that programs the DNS sets (in the current network namespace).
    pub fn start(min_ttl: Duration, resolvers: Vec<IpNet>) -> std::io::Result<Arc<Fqdn>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(Mutex::new(Stats::default()));
        let programmed: Arc<Programmed> = Arc::default();
        let (st, pr) = (stats.clone(), programmed.clone());
        std::thread::Builder::new()
            .name("fqdn".into())
            .spawn(move || program(rx, st, pr))?;
        Ok(Arc::new(Fqdn {
            names: Arc::new(DnsNames::default()),
            min_ttl,
            resolvers,
            warned: Mutex::default(),
            programmed,
            tx: Mutex::new(tx),
            stats,
        }))
    }

    /// Without the writer thread: the jobs go to the returned receiver (tests).
    #[cfg(test)]
    fn detached(min_ttl: Duration, resolvers: Vec<IpNet>) -> (Fqdn, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel();
        let f = Fqdn {
            names: Arc::new(DnsNames::default()),
            min_ttl,
            resolvers,
            warned: Mutex::default(),
            programmed: Arc::default(),
            tx: Mutex::new(tx),
            stats: Arc::default(),
        };
        (f, rx)
    }

    /// Does `client`'s workload have an egress rule with a `dns:` peer?
    pub fn learns(&self, engine: &Engine, client: IpAddr) -> bool {
        !patterns_of(engine, client).is_empty()
    }

    /// An answer from `resolver` relayed to `client`: learn the names its rules'
    /// patterns match and queue their addresses for the kernel. The receiver completes
    /// once the kernel holds them; None when nothing needs writing.
    pub fn learn(
        &self,
        engine: &Engine,
        client: IpAddr,
        resolver: IpAddr,
        answers: &bulkhead_proxy::DnsAnswers,
    ) -> Option<bulkhead_proxy::oneshot::Receiver<()>> {
        let mine = patterns_of(engine, client);
        if !mine.iter().any(|p| name_matches(p, &answers.name)) {
            return None;
        }
        if !self.trusts(resolver) {
            // Relayed (the query was allowed), but an answer from a resolver the
            // workload picked teaches nothing: it could name any address.
            self.untrusted(client, resolver, &answers.name);
            return None;
        }
        let all = all_patterns(engine);
        let now = Instant::now();
        let mut elems = Vec::new();
        for &(ip, ttl) in &answers.addrs {
            // A workload's or node's address is decided by its identity, never by name.
            if engine.owner_of(&ip).is_some() {
                continue;
            }
            let ttl = Duration::from_secs(u64::from(ttl))
                .min(MAX_TTL)
                .max(self.min_ttl);
            let until = self.names.learn(ip, &answers.name, now + ttl);
            elems.extend(self.elements(&all, ip, &answers.name, until, now));
        }
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .answers += 1;
        if elems.is_empty() {
            return None;
        }
        let (done, rx) = bulkhead_proxy::oneshot::channel();
        self.send(Job {
            elems,
            queued: now,
            done: Some(done),
        });
        Some(rx)
    }

    /// Is `resolver` one whose answers teach?
    fn trusts(&self, resolver: IpAddr) -> bool {
        self.resolvers.is_empty() || self.resolvers.iter().any(|n| n.contains(&resolver))
    }

    fn untrusted(&self, client: IpAddr, resolver: IpAddr, name: &str) {
        (self.stats.lock().unwrap_or_else(|e| e.into_inner()))
            .counters
            .untrusted += 1;
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < 64 && warned.insert(resolver) {
            warn!(
                %client, %resolver, name,
                "a DNS answer from a resolver --dns-resolver does not name: not learnt \
                 (its addresses stay refused to dns: peers); warned once per resolver"
            );
        }
    }

    /// The elements that make every pattern matching `name` hold `ip` until `until`,
    /// where the kernel does not already hold it that long.
    fn elements(
        &self,
        patterns: &BTreeSet<String>,
        ip: IpAddr,
        name: &str,
        until: Instant,
        now: Instant,
    ) -> Vec<TimedAddr> {
        let mut programmed = self.programmed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for p in patterns {
            if !name_matches(&NamePattern(p.clone()), name) {
                continue;
            }
            let (d4, d6) = dns_set_names(p);
            let set = if ip.is_ipv6() { d6 } else { d4 };
            let key = (set.clone(), ip);
            // Within a second of what the kernel holds: not worth a write.
            if programmed
                .get(&key)
                .is_some_and(|t| *t + Duration::from_secs(1) >= until)
            {
                continue;
            }
            programmed.insert(key, until);
            out.push(TimedAddr {
                set,
                addr: ip,
                timeout: until.saturating_duration_since(now),
            });
        }
        out
    }

    fn send(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send(job);
    }

    /// After a reconcile: sets that appeared (a new `dns:` pattern) get the live
    /// addresses of the names they match; sets that went are forgotten. Not waited for.
    pub fn resync(&self, engine: &Engine, applied: &Ruleset) {
        {
            let mut programmed = self.programmed.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            programmed.retain(|(set, _), t| *t > now && applied.sets.contains_key(set));
        }
        let all: BTreeSet<String> = all_patterns(engine)
            .into_iter()
            .filter(|p| {
                let (d4, d6) = dns_set_names(p);
                applied.sets.contains_key(&d4) && applied.sets.contains_key(&d6)
            })
            .collect();
        let now = Instant::now();
        let mut elems = Vec::new();
        for (ip, name, until) in self.names.live() {
            elems.extend(self.elements(&all, ip, &name, until, now));
        }
        if !elems.is_empty() {
            self.send(Job {
                elems,
                queued: now,
                done: None,
            });
        }
    }

    pub fn late(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters
            .late += 1;
    }

    pub fn counters(&self) -> FqdnCounters {
        let st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = st.counters.clone();
        let mut s = st.samples.clone();
        drop(st);
        if !s.is_empty() {
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
            c.programmed_p50_ms = at(0.5);
            c.programmed_p99_ms = at(0.99);
            c.programmed_max_ms = s[s.len() - 1];
        }
        c
    }
}

/// The programming thread: everything queued goes in one transaction; on a refusal
/// (a set removed by a reconcile meanwhile) each job is retried alone.
fn program(rx: mpsc::Receiver<Job>, stats: Arc<Mutex<Stats>>, programmed: Arc<Programmed>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let all: Vec<TimedAddr> = jobs.iter().flat_map(|j| j.elems.clone()).collect();
        let ok: Vec<bool> = match add_timed(&all) {
            Ok(()) => vec![true; jobs.len()],
            Err(_) => jobs
                .iter()
                .map(|j| match add_timed(&j.elems) {
                    Ok(()) => true,
                    Err(e) => {
                        let sets: BTreeSet<&str> = j
                            .elems
                            .iter()
                            .map(|e| e.set.as_str())
                            .filter(|s| is_dns_set(s))
                            .collect();
                        warn!(error = %e, ?sets, "cannot add DNS-learnt addresses");
                        false
                    }
                })
                .collect(),
        };
        let end = Instant::now();
        let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
        for (job, ok) in jobs.into_iter().zip(ok) {
            if !ok {
                st.counters.errors += 1;
                // Not in the kernel: the next answer writes them again.
                let mut p = programmed.lock().unwrap_or_else(|e| e.into_inner());
                for e in &job.elems {
                    p.remove(&(e.set.clone(), e.addr));
                }
                continue;
            }
            st.counters.elements += job.elems.len() as u64;
            if let Some(done) = job.done {
                let ms = end.duration_since(job.queued).as_secs_f64() * 1e3;
                if st.samples.len() < SAMPLES {
                    st.samples.push(ms);
                } else {
                    let i = st.next % SAMPLES;
                    st.samples[i] = ms;
                    st.next += 1;
                }
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::NodeScope;
    use bulkhead_manifest::{Source, parse_sources};
    use bulkhead_model::{L4, Protocol};

    const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: apps, labels: {app: client}}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: apps, labels: {app: other}}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: bulkhead.io/v1
kind: Group
metadata: {name: all}
spec:
  selector: 'app in {"client", "other"}'
  mode: Protect
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: client-egress}
spec:
  appliesTo: [{selector: app == "client"}]
  egress:
    - action: Allow
      name: apis
      to: [{dns: "*.example.com"}]
      ports: [TCP/443]
---
apiVersion: bulkhead.io/v1
kind: Policy
metadata: {name: other-egress}
spec:
  appliesTo: [{selector: app == "other"}]
  egress:
    - action: Allow
      name: one-api
      to: [{dns: "api.example.com"}]
      ports: [TCP/443]
"#;

    fn engine() -> Engine {
        let b = parse_sources(&[Source {
            name: "cluster.yaml".into(),
            text: CLUSTER.into(),
        }])
        .unwrap();
        Engine::new(&b).unwrap()
    }

    fn answers(name: &str, addrs: &[(&str, u32)]) -> bulkhead_proxy::DnsAnswers {
        bulkhead_proxy::DnsAnswers {
            name: name.into(),
            addrs: addrs
                .iter()
                .map(|(a, t)| (a.parse().unwrap(), *t))
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The cluster's resolver (a workload address in no set: the tests' answers come
    /// from it unless they say otherwise).
    const RESOLVER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 96, 0, 10));

    /// With `--dns-resolver`, an answer from another resolver (one the workload runs or
    /// picked) teaches nothing and is counted; the trusted resolver's answer teaches.
    #[test]
    fn only_trusted_resolvers_teach() {
        let e = engine();
        let trusted = || {
            let nets = ["10.96.0.10/32", "fd00:96::/64"];
            Fqdn::detached(
                Duration::from_secs(60),
                nets.map(|n| n.parse().unwrap()).to_vec(),
            )
        };
        let (f, rx) = trusted();
        let a = answers("api.example.com", &[("203.0.113.66", 300)]);
        for rogue in ["203.0.113.53", "10.96.0.11", "fd00:97::53"] {
            assert!(
                f.learn(&e, ip("10.0.0.1"), ip(rogue), &a).is_none(),
                "{rogue}"
            );
        }
        assert!(
            rx.try_recv().is_err(),
            "nothing written for an untrusted answer"
        );
        assert!(f.names.names(ip("203.0.113.66")).is_empty());
        assert_eq!(f.counters().untrusted, 3);
        assert_eq!(f.counters().answers, 0);
        // A name no pattern of the client matches is not an untrusted answer: not counted.
        let other = answers("www.example.org", &[("203.0.113.67", 300)]);
        assert!(
            f.learn(&e, ip("10.0.0.1"), ip("203.0.113.53"), &other)
                .is_none()
        );
        assert_eq!(f.counters().untrusted, 3);
        for good in [RESOLVER, ip("fd00:96::53")] {
            let (f, rx) = trusted();
            let _wait = f
                .learn(&e, ip("10.0.0.1"), good, &a)
                .expect("elements to write");
            assert!(!rx.try_recv().unwrap().elems.is_empty());
            assert_eq!(f.names.names(ip("203.0.113.66")), vec!["api.example.com"]);
            assert_eq!(f.counters().untrusted, 0);
        }
    }

    #[test]
    fn an_answer_fills_every_matching_pattern_and_the_engine_agrees() {
        let e = engine();
        let (f, rx) = Fqdn::detached(Duration::from_secs(60), Vec::new());
        assert!(f.learns(&e, ip("10.0.0.1")));
        let a = answers(
            "api.example.com",
            &[("203.0.113.10", 5), ("2001:db8::10", 3600), ("10.0.0.2", 5)],
        );
        let _wait = f
            .learn(&e, ip("10.0.0.1"), RESOLVER, &a)
            .expect("elements to write");
        let job = rx.try_recv().unwrap();
        // Both patterns match the name: both sets of each family; never a workload's
        // address; the TTL raised to the floor (or kept when longer).
        let (w4, w6) = dns_set_names("*.example.com");
        let (o4, o6) = dns_set_names("api.example.com");
        let mut got: Vec<(String, IpAddr, u64)> = job
            .elems
            .iter()
            .map(|t| (t.set.clone(), t.addr, t.timeout.as_secs()))
            .collect();
        got.sort();
        let mut want = vec![
            (w4, ip("203.0.113.10"), 59),
            (o4, ip("203.0.113.10"), 59),
            (w6, ip("2001:db8::10"), 3599),
            (o6, ip("2001:db8::10"), 3599),
        ];
        want.sort();
        for ((gs, ga, gt), (ws, wa, wt)) in got.iter().zip(&want) {
            assert_eq!((gs, ga), (ws, wa));
            assert!(*gt == *wt || *gt == *wt + 1, "{gt} vs {wt}");
        }
        assert_eq!(got.len(), want.len(), "{got:?}");
        // Again: the kernel already holds them that long, nothing to write or wait for.
        assert!(f.learn(&e, ip("10.0.0.1"), RESOLVER, &a).is_none());
        assert!(rx.try_recv().is_err());

        // The engine decides on the names: both workloads may reach the address now (each
        // by its own rule), as the kernel's sets say; another address is refused.
        let scope = NodeScope {
            dns: f.names.clone(),
            ..NodeScope::default()
        };
        let l4 = L4::Port {
            protocol: Protocol::Tcp,
            port: 443,
        };
        for client in ["10.0.0.1", "10.0.0.2"] {
            let v = scope.decide(&e, ip(client), ip("203.0.113.10"), l4);
            assert!(v.allowed, "{client}: {:?}", v.verdict);
        }
        assert!(
            !scope
                .decide(&e, ip("10.0.0.1"), ip("203.0.113.99"), l4)
                .allowed
        );
    }

    /// A TTL is believed for a day at most: an answer of 2^31 - 1 seconds (68 years)
    /// opens the address for 24 h. (Before, for as long as the answer said.)
    #[test]
    fn a_ttl_is_capped_at_a_day() {
        let e = engine();
        let (f, rx) = Fqdn::detached(Duration::from_secs(60), Vec::new());
        let a = answers("api.example.com", &[("203.0.113.10", i32::MAX as u32)]);
        let _wait = f
            .learn(&e, ip("10.0.0.1"), RESOLVER, &a)
            .expect("elements to write");
        let job = rx.try_recv().unwrap();
        assert!(!job.elems.is_empty());
        for t in &job.elems {
            assert!(t.timeout <= MAX_TTL, "{:?}", t.timeout);
        }
    }

    #[test]
    fn only_the_askers_patterns_teach_names() {
        let e = engine();
        let (f, rx) = Fqdn::detached(Duration::from_secs(1), Vec::new());
        // `other` may only reach api.example.com: its answer for www.example.com
        // teaches nothing, though `client`'s pattern would match the name.
        assert!(f.learns(&e, ip("10.0.0.2")));
        let a = answers("www.example.com", &[("203.0.113.20", 30)]);
        assert!(f.learn(&e, ip("10.0.0.2"), RESOLVER, &a).is_none());
        assert!(rx.try_recv().is_err());
        assert!(f.names.names(ip("203.0.113.20")).is_empty());
        // Not a workload: nothing learnt either.
        assert!(!f.learns(&e, ip("192.0.2.1")));
        assert!(f.learn(&e, ip("192.0.2.1"), RESOLVER, &a).is_none());
        // `client` asks: learnt, into `*.example.com`'s set only.
        assert!(f.learn(&e, ip("10.0.0.1"), RESOLVER, &a).is_some());
        let job = rx.try_recv().unwrap();
        assert_eq!(job.elems.len(), 1);
        assert_eq!(job.elems[0].set, dns_set_names("*.example.com").0);
        assert_eq!(f.names.names(ip("203.0.113.20")), vec!["www.example.com"]);
    }

    #[test]
    fn expired_names_decide_nothing_new_but_keep_live_connections() {
        let e = engine();
        let (f, _rx) = Fqdn::detached(Duration::from_millis(1), Vec::new());
        let a = answers("api.example.com", &[("203.0.113.10", 0)]);
        assert!(f.learn(&e, ip("10.0.0.1"), RESOLVER, &a).is_some());
        std::thread::sleep(Duration::from_millis(5));
        assert!(f.names.names(ip("203.0.113.10")).is_empty());
        let l4 = L4::Port {
            protocol: Protocol::Tcp,
            port: 443,
        };
        let mut scope = NodeScope {
            dns: f.names.clone(),
            ..NodeScope::default()
        };
        // A new connection: refused, as by the kernel (the element expired).
        assert!(
            !scope
                .decide(&e, ip("10.0.0.1"), ip("203.0.113.10"), l4)
                .allowed
        );
        // Conntrack cutting judges with the remembered name: not cut.
        scope.dns_remembered = true;
        assert!(
            scope
                .decide(&e, ip("10.0.0.1"), ip("203.0.113.10"), l4)
                .allowed
        );
        assert!(f.names.live().is_empty());
    }

    #[test]
    fn names_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = DnsNames::default();
        let now = Instant::now();
        a.learn(
            ip("203.0.113.10"),
            "api.example.com",
            now + Duration::from_secs(60),
        );
        a.learn(
            ip("203.0.113.20"),
            "old.example.com",
            now - Duration::from_secs(5),
        );
        a.save(dir.path()).unwrap();
        let b = DnsNames::default();
        b.load(dir.path());
        assert_eq!(b.names(ip("203.0.113.10")), vec!["api.example.com"]);
        assert!(b.names(ip("203.0.113.20")).is_empty());
        assert_eq!(b.remembered(ip("203.0.113.20")), vec!["old.example.com"]);
        let live = b.live();
        assert_eq!(live.len(), 1);
        let left = live[0].2 - Instant::now();
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }
}
