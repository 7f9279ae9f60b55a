//! Groups move Discover -> Monitor -> Protect: by command ([`set_group_mode`] edits the
//! group's `mode` in the user's YAML and keeps everything else of the file), or on their
//! own once a group has gone a quiet period without a new conversation ([`promote`]).

use std::time::{Duration, SystemTime};

use bulkhead_manifest::{Source, parse_sources};
use bulkhead_policy::spec::{Group, Mode};

use crate::observe::{End, Observations};

/// The next mode of a group, if it should move now: a group in Discover or Monitor that
/// has seen no new conversation for `quiet` moves one step (Discover -> Monitor ->
/// Protect). A group that never saw a conversation has nothing learned yet and stays.
pub fn promote(
    group: &Group,
    last_new_flow: Option<SystemTime>,
    quiet: Duration,
    now: SystemTime,
) -> Option<Mode> {
    let next = match group.mode {
        Mode::Discover => Mode::Monitor,
        Mode::Monitor => Mode::Protect,
        Mode::Protect => return None,
    };
    let last = last_new_flow?;
    let idle = now.duration_since(last).unwrap_or(Duration::ZERO);
    (idle >= quiet).then_some(next)
}

/// When the workloads (`ns/name`) last took part in a conversation never seen before:
/// the latest first-seen time of the conversations they are an end of.
pub fn last_new_conversation(obs: &Observations, workloads: &[String]) -> Option<SystemTime> {
    let member = |e: &End| match e {
        End::Workload(i) => workloads
            .iter()
            .any(|w| *w == obs.workloads[*i as usize].key.to_string()),
        _ => false,
    };
    obs.flows
        .iter()
        .filter(|(k, _)| member(&k.src) || member(&k.dst))
        .filter_map(|(_, t)| humantime_parse(&t.first_seen))
        .max()
}

/// The workloads (`ns/name`) the group with index `group` of the engine's policy governs
/// (the group that decides their mode: several may select one workload).
pub fn members(engine: &bulkhead_policy::Engine, group: usize) -> Vec<String> {
    engine
        .workloads()
        .into_iter()
        .filter(|(id, _)| {
            engine
                .identity_of(*id)
                .and_then(|i| engine.endpoint_policy(i))
                .is_some_and(|ep| ep.group == Some(group as u32))
        })
        .map(|(_, w)| w.key.to_string())
        .collect()
}

fn humantime_parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// Set the `mode` of Group `group` in a YAML text, changing only that line (or adding
/// one): comments, order and the other documents stay as written. The result is decoded
/// again and checked to say what was asked.
pub fn set_group_mode(text: &str, file: &str, group: &str, mode: Mode) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // Documents: line ranges between `---` separators.
    let mut docs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.trim_end() == "---" || l.starts_with("--- ") {
            docs.push((start, i));
            start = i + 1;
        }
    }
    docs.push((start, lines.len()));
    let is_target = |(a, b): (usize, usize)| {
        let doc = &lines[a..b];
        let kind = doc.iter().any(|l| {
            let t = l.trim_end();
            t == "kind: Group" || t.starts_with("kind: Group ") || t.starts_with("kind: Group#")
        });
        let named = doc.iter().any(|l| {
            let t = l.trim();
            let flow = t.starts_with("metadata:") && t.contains(&format!("name: {group}}}"))
                || t.contains(&format!("name: {group},"));
            let block = l.starts_with("  ")
                && (t == format!("name: {group}")
                    || t == format!("name: \"{group}\"")
                    || t == format!("name: '{group}'"));
            flow || block
        });
        kind && named
    };
    let Some(&(a, b)) = docs.iter().find(|d| is_target(**d)) else {
        return Err(format!("{file}: no Group named {group:?}"));
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let word = mode.to_string();
    let mut done = false;
    for l in out.iter_mut().take(b).skip(a) {
        let indent = l.len() - l.trim_start().len();
        let t = l.trim_start();
        if indent > 0 && t.starts_with("mode:") {
            let eol = if l.ends_with('\n') { "\n" } else { "" };
            let comment = t
                .find(" #")
                .map(|i| t[i..].trim_end().to_string())
                .unwrap_or_default();
            *l = format!("{}mode: {word}{comment}{eol}", &l[..indent]);
            done = true;
            break;
        }
        if t.starts_with("spec:") && t.contains('{') {
            if let Some(i) = l.find("mode:") {
                let rest = &l[i + 5..];
                let end = rest.find([',', '}']).unwrap_or(rest.len());
                *l = format!("{}mode: {word}{}", &l[..i], &rest[end..]);
            } else if let Some(i) = l.rfind('}') {
                let sep = if l[..i].trim_end().ends_with('{') {
                    ""
                } else {
                    ", "
                };
                *l = format!("{}{sep}mode: {word}{}", &l[..i], &l[i..]);
            }
            done = true;
            break;
        }
    }
    if !done {
        match (a..b).find(|&i| out[i].trim_end() == "spec:") {
            Some(i) => out.insert(i + 1, format!("  mode: {word}\n")),
            None => {
                let at = (a..b)
                    .rev()
                    .find(|&i| !out[i].trim().is_empty())
                    .map_or(a, |i| i + 1);
                if at > 0 && !out[at - 1].ends_with('\n') {
                    out[at - 1].push('\n');
                }
                out.insert(at, format!("spec:\n  mode: {word}\n"));
            }
        }
    }
    let new = out.concat();
    let bundle = parse_sources(&[Source {
        name: file.to_string(),
        text: new.clone(),
    }])
    .map_err(|d| format!("the edited file would not decode, so nothing was changed:\n{d}"))?;
    match bundle.policy.groups.iter().find(|g| g.name == group) {
        Some(g) if g.mode == mode => Ok(new),
        _ => Err(format!(
            "{file}: could not set the mode of Group {group:?} in this layout; edit it by hand"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_policy::spec::{Origin, WorkloadSelector};

    fn group(mode: Mode) -> Group {
        Group {
            name: "g".into(),
            members: WorkloadSelector {
                selector: None,
                namespace_selector: None,
                namespaces: Vec::new(),
            },
            mode,
            sensors: Vec::new(),
            inspect: Default::default(),
            origin: Origin::default(),
        }
    }

    #[test]
    fn promotes_one_step_after_the_quiet_period_only() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let g = group(Mode::Discover);
        assert_eq!(promote(&g, Some(t0), hour, t0 + hour), Some(Mode::Monitor));
        assert_eq!(promote(&g, Some(t0), hour, t0 + hour / 2), None);
        assert_eq!(promote(&g, None, hour, t0 + hour), None);
        assert_eq!(
            promote(&group(Mode::Monitor), Some(t0), hour, t0 + hour * 2),
            Some(Mode::Protect)
        );
        assert_eq!(
            promote(&group(Mode::Protect), Some(t0), hour, t0 + hour * 2),
            None
        );
    }

    #[test]
    fn parses_agent_times() {
        let t = humantime_parse("1970-01-02T00:00:01.500Z").unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_millis(86_401_500)
        );
    }

    const FILE: &str = "# groups\napiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: a}\nspec:\n  selector: app == \"a\"\n  mode: Discover   # learning\n---\napiVersion: bulkhead.io/v1\nkind: Group\nmetadata:\n  name: b\nspec: {selector: app == \"b\", mode: Monitor}\n---\napiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: c}\nspec:\n  selector: app == \"c\"\n";

    #[test]
    fn edits_only_the_mode_of_the_named_group() {
        let out = set_group_mode(FILE, "g.yaml", "a", Mode::Monitor).unwrap();
        assert_eq!(
            out,
            FILE.replace("mode: Discover   # learning", "mode: Monitor # learning")
        );
        let out = set_group_mode(FILE, "g.yaml", "b", Mode::Protect).unwrap();
        assert_eq!(out, FILE.replace("mode: Monitor}", "mode: Protect}"));
        let out = set_group_mode(FILE, "g.yaml", "c", Mode::Protect).unwrap();
        assert!(
            out.ends_with("spec:\n  mode: Protect\n  selector: app == \"c\"\n"),
            "{out}"
        );
        assert!(set_group_mode(FILE, "g.yaml", "zz", Mode::Protect).is_err());
    }
}
