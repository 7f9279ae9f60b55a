//! `bulkhead learn`, `bulkhead analyze replay` and `bulkhead group mode`: glue over
//! `bulkhead-learn`. Flow records come from [`read_flows`], the one place that knows
//! where they are kept.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use bulkhead_learn::eval::{self, Coverage, Replay};
use bulkhead_learn::observe::Summary;
use bulkhead_learn::{Observations, Options, Proposal};
use bulkhead_policy::spec::{Bundle, Mode};
use bulkhead_record::FlowRecord;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::args::{Format, Input, Output};
use crate::render::emit;

#[derive(Args, Debug, Clone)]
pub struct FlowInput {
    /// Flow records: an agent's store (`store.db`), a JSON-lines file (`flows.jsonl`),
    /// `-` for standard input, or a directory (an agent's state directory: its
    /// `store.db`, else `flows.jsonl` and its rotations; otherwise every `*.jsonl` in
    /// it). Repeatable.
    #[arg(
        long = "flows",
        value_name = "FILE|DIR",
        required_unless_present = "lab"
    )]
    pub flows: Vec<PathBuf>,
    /// The flows of every agent of this lab (`bulkhead lab up --name NAME`), as
    /// `bulkhead flows --lab` reads them.
    #[arg(long, value_name = "NAME")]
    pub lab: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Discover,
    Monitor,
    Protect,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Discover => Mode::Discover,
            ModeArg::Monitor => Mode::Monitor,
            ModeArg::Protect => Mode::Protect,
        }
    }
}

#[derive(Args, Debug)]
pub struct LearnArgs {
    #[command(flatten)]
    pub flows: FlowInput,
    /// The current inventory and policy (optional): the proposal is compared with it, its
    /// workloads keep selectors exact and name ports. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The mode the proposed groups are written with. Coverage and the diff are what
    /// the rules allow, as in Protect.
    #[arg(long, value_enum, default_value_t = ModeArg::Monitor)]
    pub mode: ModeArg,
    /// One group for the same labels in every namespace (shorter, broader; the diff
    /// shows what it adds) instead of one per namespace.
    #[arg(long)]
    pub across_namespaces: bool,
    /// With the current policy's groups: which of them have gone this long without a
    /// new conversation and so move one step (Discover -> Monitor -> Protect), e.g. 24h.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration_arg)]
    pub quiet_period: Option<String>,
    /// With --quiet-period: apply those moves to the files that define the groups.
    #[arg(long, requires = "quiet_period")]
    pub promote: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub flows: FlowInput,
    /// The proposed policy (file or directory). Repeatable.
    #[arg(long, value_name = "FILE|DIR", required = true)]
    pub policy: Vec<PathBuf>,
    /// The current inventory and policy.
    #[command(flatten)]
    pub input: Input,
    /// Exit with 1 when any recorded flow would change verdict.
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Set a group's mode in the YAML file that defines it (the rest of the file is kept).
    Mode(GroupModeArgs),
}

#[derive(Args, Debug)]
pub struct GroupModeArgs {
    /// The Group's name.
    pub group: String,
    pub mode: ModeArg,
    /// The file that defines the Group.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub file: PathBuf,
}

/// Every flow record under `paths` to `each`, oldest first: an agent's state directory
/// (its store, `store.db`, else `flows.jsonl` and its rotations), a store file, a
/// JSON-lines file or `-`, or a directory of `*.jsonl`. Returns the lines that were not
/// records. The one place that knows where flow records are kept.
pub fn read_flows(paths: &[PathBuf], each: &mut dyn FnMut(&FlowRecord)) -> Result<u64> {
    let mut bad = 0;
    for p in paths {
        if p.as_os_str() == "-" {
            bad += feed(&mut std::io::stdin().lock(), p, each)?;
            continue;
        }
        let store = if p.is_dir() {
            p.join(bulkhead_store::FILE)
        } else {
            p.clone()
        };
        if store.extension().is_some_and(|e| e == "db") && store.exists() {
            read_store(&store, each)?;
            continue;
        }
        let files = if p.is_dir() {
            jsonl_files(p)?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let file =
                std::fs::File::open(&f).with_context(|| format!("opening {}", f.display()))?;
            bad += feed(&mut BufReader::new(file), &f, each)?;
        }
    }
    Ok(bad)
}

/// Records of JSON lines; returns the lines that were not records.
fn feed(r: &mut dyn BufRead, name: &Path, each: &mut dyn FnMut(&FlowRecord)) -> Result<u64> {
    let mut bad = 0;
    for line in r.lines() {
        let line = line.with_context(|| format!("reading {}", name.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<FlowRecord>(&line) {
            Ok(rec) => each(&rec),
            Err(_) => bad += 1,
        }
    }
    Ok(bad)
}

/// Every flow record of a store, in pages.
fn read_store(path: &Path, each: &mut dyn FnMut(&FlowRecord)) -> Result<()> {
    let Some(store) = bulkhead_store::Store::open_read_only(path)? else {
        return Ok(());
    };
    let filter = bulkhead_store::FlowFilter::default();
    let mut after = 0;
    loop {
        let page = store.flows_after(&filter, after, i64::MAX, 65_536)?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, r) in &page {
            each(r);
        }
    }
    Ok(())
}

/// `flows.jsonl.N` (oldest, highest N, first) and `flows.jsonl`; else every `*.jsonl`.
fn jsonl_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let name = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let mut rotated: Vec<(u32, PathBuf)> = names
        .iter()
        .filter_map(|p| {
            Some((
                name(p).strip_prefix("flows.jsonl.")?.parse().ok()?,
                p.clone(),
            ))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|r| r.1).collect();
    out.extend(names.iter().filter(|p| name(p) == "flows.jsonl").cloned());
    if out.is_empty() {
        out = names
            .into_iter()
            .filter(|p| name(p).ends_with(".jsonl"))
            .collect();
        out.sort();
    }
    if out.is_empty() {
        bail!(
            "{}: no flow records (store.db, flows.jsonl or *.jsonl)",
            dir.display()
        );
    }
    Ok(out)
}

fn observations(input: &FlowInput) -> Result<Observations> {
    let mut obs = Observations::new();
    let mut paths = input.flows.clone();
    if let Some(lab) = &input.lab {
        paths.extend(crate::flows::state_dirs(None, Some(lab))?);
    }
    let mut good = 0u64;
    let bad = read_flows(&paths, &mut |r| {
        good += 1;
        obs.add(r)
    })?;
    no_records_at_all(good, bad)?;
    Ok(obs)
}

/// Warn of lines that were no flow records; when no line was one, the input is not
/// flow records at all (a wrong file): an error, not a proposal built from nothing.
pub(crate) fn no_records_at_all(good: u64, bad: u64) -> Result<()> {
    if good == 0 && bad > 0 {
        bail!("no line of the flow input is a flow record ({bad} lines read)");
    }
    if bad > 0 {
        eprintln!("warning: {bad} lines were not flow records and were skipped");
    }
    Ok(())
}

fn engine(b: &Bundle) -> Result<bulkhead_policy::Engine> {
    crate::engine(b)
}

#[derive(Serialize)]
struct Promotion {
    group: String,
    file: String,
    from: String,
    to: String,
    last_new_conversation: Option<String>,
    applied: bool,
}

#[derive(Serialize)]
struct LearnReport<'a> {
    flows: Summary,
    proposal: &'a Proposal,
    coverage: Coverage,
    /// Against the current policy, on the observed services.
    diff: bulkhead_learn::diff::LearnDiff,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    promotions: Vec<Promotion>,
}

pub fn learn(a: LearnArgs) -> Result<u8> {
    let obs = observations(&a.flows)?;
    let current = if a.files.is_empty() {
        Bundle::default()
    } else {
        crate::load_split(&a.files, &[], a.recursive)?
    };
    let opts = Options {
        mode: a.mode.into(),
        across_namespaces: a.across_namespaces,
        ..Options::default()
    };
    let p = bulkhead_learn::learn(&obs, &current.inventory, &opts)?;
    let enforced = p.enforced();
    let coverage = eval::coverage(&obs, &p.inventory, &enforced)
        .map_err(|e| anyhow::anyhow!("the proposal does not compile: {e:?}"))?;
    let diff = bulkhead_learn::diff::diff(&obs, &p.inventory, &current.policy, &enforced);
    let cur_bundle = Bundle {
        inventory: p.inventory.clone(),
        policy: current.policy.clone(),
        ..Bundle::default()
    };
    let cur_engine = engine(&cur_bundle)?;
    let promotions = match &a.quiet_period {
        Some(q) => promotions(&obs, &cur_engine, &current, q, a.promote)?,
        None => Vec::new(),
    };
    let report = LearnReport {
        flows: obs.summary(),
        proposal: &p,
        coverage,
        diff,
        promotions,
    };
    match a.output.format {
        Format::Yaml => print!("{}{}", comments(&report, !a.files.is_empty()), p.yaml),
        f => emit(f, &report, || table(&report, !a.files.is_empty()))?,
    }
    Ok(0)
}

/// Groups of the current policy that have been quiet long enough move one step.
fn promotions(
    obs: &Observations,
    engine: &bulkhead_policy::Engine,
    current: &Bundle,
    quiet: &str,
    apply: bool,
) -> Result<Vec<Promotion>> {
    let quiet: Duration = humantime::parse_duration(quiet).context("--quiet-period")?;
    let now = SystemTime::now();
    let mut out = Vec::new();
    for (gi, g) in current.policy.groups.iter().enumerate() {
        let members = bulkhead_learn::promote::members(engine, gi);
        let last = bulkhead_learn::promote::last_new_conversation(obs, &members);
        let Some(to) = bulkhead_learn::promote(g, last, quiet, now) else {
            continue;
        };
        let file = g.origin.file.to_string();
        let mut applied = false;
        if apply {
            set_mode_in_file(Path::new(&file), &g.name, to)?;
            applied = true;
        }
        out.push(Promotion {
            group: g.name.clone(),
            file,
            from: g.mode.to_string(),
            to: to.to_string(),
            last_new_conversation: last.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            applied,
        });
    }
    Ok(out)
}

fn set_mode_in_file(file: &Path, group: &str, mode: Mode) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let new = bulkhead_learn::set_group_mode(&text, &file.display().to_string(), group, mode)
        .map_err(anyhow::Error::msg)?;
    let tmp = file.with_extension("bulkhead-tmp");
    std::fs::write(&tmp, new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}

pub fn group(c: GroupCmd) -> Result<u8> {
    match c {
        GroupCmd::Mode(a) => {
            set_mode_in_file(&a.file, &a.group, a.mode.into())?;
            println!(
                "group {}: mode {} in {}",
                a.group,
                Mode::from(a.mode),
                a.file.display()
            );
            Ok(0)
        }
    }
}

fn summary(r: &LearnReport, with_current: bool, prefix: &str) -> String {
    let mut s = String::new();
    let p = r.proposal;
    let c = &r.coverage;
    let _ = writeln!(
        s,
        "{prefix}Proposed by `bulkhead learn` from {} flow records ({} conversations, {} .. {}): {} groups, {} rules.",
        r.flows.records,
        r.flows.conversations,
        r.flows.first.as_deref().unwrap_or("-"),
        r.flows.last.as_deref().unwrap_or("-"),
        p.groups.len(),
        p.rules
    );
    let _ = writeln!(
        s,
        "{prefix}coverage: {:.1}% ({} of {} allowed flows); denied flows it would allow: {} of {}",
        c.percent, c.covered_flows, c.allowed_flows, c.denied_but_allowed_flows, c.denied_flows
    );
    for u in &c.uncovered {
        let _ = writeln!(
            s,
            "{prefix}  not covered: {} -> {} {} ({} flows)",
            u.src, u.dst, u.service, u.flows
        );
    }
    for u in &c.opened {
        let _ = writeln!(
            s,
            "{prefix}  denied, would allow: {} -> {} {} ({} flows)",
            u.src, u.dst, u.service, u.flows
        );
    }
    if p.host_conversations > 0 {
        let _ = writeln!(
            s,
            "{prefix}{} conversations with nodes need no rule (node traffic is allowed unless a rule denies it)",
            p.host_conversations
        );
    }
    if !p.volatile.is_empty() {
        let _ = writeln!(
            s,
            "{prefix}labels left out of selectors (they name a pod or a rollout, not a workload):"
        );
        for (k, why) in &p.volatile {
            let _ = writeln!(s, "{prefix}  {k}: {why}");
        }
    }
    let against = if with_current {
        "the current policy's rules (-f), its groups in Protect too"
    } else {
        "no policy (everything allowed)"
    };
    match &r.diff.diff {
        Some(_) => {
            let (u, c) = (&r.diff.undeclared, &r.diff.on_declared_ports);
            let _ = writeln!(
                s,
                "{prefix}diff against {against}, on {}: {} newly allowed, {} newly denied",
                r.diff.probes.join(" "),
                c.newly_allowed.len(),
                c.newly_denied.len()
            );
            let changes: Vec<_> = c.newly_allowed.iter().chain(&c.newly_denied).collect();
            for ch in changes.iter().take(40) {
                let sign = if ch.becomes == "allowed" { "+" } else { "-" };
                let _ = writeln!(s, "{prefix}  {sign} {} -> {} {}", ch.from, ch.to, ch.probe);
            }
            if changes.len() > 40 {
                let _ = writeln!(
                    s,
                    "{prefix}  ... and {} more (-o json for all)",
                    changes.len() - 40
                );
            }
            if u.newly_allowed + u.newly_denied > 0 {
                let _ = writeln!(
                    s,
                    "{prefix}  and on ports the destination does not declare (nothing listens there): {} newly allowed, {} newly denied (-o json lists them)",
                    u.newly_allowed, u.newly_denied
                );
            }
        }
        None => {
            let _ = writeln!(
                s,
                "{prefix}diff: not computed (more than {} workloads, or a policy that does not compile)",
                bulkhead_learn::diff::MAX_WORKLOADS
            );
        }
    }
    for m in &r.promotions {
        let _ = writeln!(
            s,
            "{prefix}group {} ({}): no new conversation since {}: {} {}",
            m.group,
            m.file,
            m.last_new_conversation.as_deref().unwrap_or("-"),
            if m.applied { "moved to" } else { "ready for" },
            m.to
        );
    }
    s
}

fn comments(r: &LearnReport, with_current: bool) -> String {
    let mut s = summary(r, with_current, "# ");
    let _ = writeln!(
        s,
        "# Groups are written in {} mode; the coverage and diff above are what the rules allow (Protect).",
        r.proposal
            .policy
            .groups
            .first()
            .map_or(Mode::Monitor, |g| g.mode)
    );
    s
}

fn table(r: &LearnReport, with_current: bool) -> String {
    let mut s = summary(r, with_current, "");
    s.push('\n');
    let w = r
        .proposal
        .groups
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(s, "{:<w$}  {:<60}  WORKLOADS", "GROUP", "SELECTOR");
    for g in &r.proposal.groups {
        let _ = writeln!(
            s,
            "{:<w$}  {:<60}  {}",
            g.name,
            g.selector,
            g.workloads.len()
        );
    }
    s.push_str("\n(-o yaml prints the policy)\n");
    s
}

pub fn replay(a: ReplayArgs) -> Result<u8> {
    let obs = observations(&a.flows)?;
    let current = a.input.load()?;
    let new = crate::load_split(&a.policy, &[], a.input.recursive)?;
    let inv = bulkhead_learn::propose::inventory(&obs, &current.inventory);
    // Compile both first so that bad input reports every problem (exit 3).
    engine(&Bundle {
        inventory: inv.clone(),
        policy: current.policy.clone(),
        ..Bundle::default()
    })?;
    engine(&Bundle {
        inventory: inv.clone(),
        policy: new.policy.clone(),
        ..Bundle::default()
    })?;
    let r = eval::replay(&obs, &inv, &current.policy, &new.policy)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    emit(a.output.format, &r, || replay_table(&r))?;
    Ok(if a.exit_code && !r.is_empty() {
        crate::NEGATIVE
    } else {
        0
    })
}

fn replay_table(r: &Replay) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "replayed {} flow records ({} conversations): {} unchanged, {} newly allowed ({} conversations), {} newly denied ({} conversations)",
        r.flows,
        r.conversations,
        r.unchanged_flows,
        r.newly_allowed_flows,
        r.newly_allowed.len(),
        r.newly_denied_flows,
        r.newly_denied.len()
    );
    if r.is_empty() {
        s.push_str("no change: every recorded flow gets the same verdict\n");
        return s;
    }
    for (title, buckets) in [
        ("by rule (new policy)", &r.by_rule),
        ("by workload", &r.by_workload),
    ] {
        let _ = writeln!(s, "\n{title}:");
        let w = buckets.iter().map(|b| b.key.len()).max().unwrap_or(0);
        for b in buckets {
            let _ = writeln!(
                s,
                "  {:<w$}  +{} allowed ({} flows)  -{} denied ({} flows)",
                b.key, b.newly_allowed, b.newly_allowed_flows, b.newly_denied, b.newly_denied_flows
            );
        }
    }
    for (sign, title, changes) in [
        ("-", "newly denied", &r.newly_denied),
        ("+", "newly allowed", &r.newly_allowed),
    ] {
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}:");
        for c in changes.iter().take(50) {
            let req = c
                .seen
                .request
                .as_ref()
                .map(|q| format!(" [{q}]"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {sign} {} -> {} {}{req} ({} flows): was {}; now {}",
                c.seen.src, c.seen.dst, c.seen.service, c.seen.flows, c.was, c.now
            );
        }
        if changes.len() > 50 {
            let _ = writeln!(s, "  ... and {} more (-o json for all)", changes.len() - 50);
        }
    }
    s
}
