//! The agent's inputs, parsed one file at a time and cached.
//!
//! A 10,000-pod inventory may be one file per pod in a directory; an edit to one pod
//! must cost one file's parse, not 10,000. So every input file is parsed on its own
//! (with `bulkhead_manifest::parse_sources` on that one file) and kept with a hash of
//! its text; a change re-reads only the files the watcher named, skips those whose text
//! did not change, and turns the difference between the old and the new parse of those
//! files into a [`Delta`]: workloads, namespaces and nodes to upsert or remove, and the
//! new policy set if a policy file changed. Nothing is committed until the caller says
//! the delta was accepted ([`Sources::commit`]), so a bad edit changes nothing.
//!
//! Checks that span files (a Pod defined in two files, two Settings) are made here,
//! since the per-file parse cannot see them. Controllers (Deployments, ...) are
//! expanded per file: a DaemonSet is spread over the Nodes of its own file.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use bulkhead_manifest::{Diagnostic, Diagnostics, Source, parse_sources};
use bulkhead_model::{Inventory, Namespace, Node, Workload, WorkloadKey};
use bulkhead_policy::spec::{Bundle, PolicySet};
use rustc_hash::{FxHashMap, FxHasher};

/// Which kinds an input contributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Namespaces, Nodes, Pods (and controllers).
    Inventory,
    /// Groups, Policies, NetworkPolicies, Settings.
    Policy,
}

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One parsed file: only the part its role takes.
#[derive(Clone, Debug)]
struct Parsed {
    hash: u64,
    inventory: Inventory,
    policy: PolicySet,
}

/// Per object key: the file that defines it and the object.
type Owned<K, V> = FxHashMap<K, (PathBuf, V)>;

/// What changed, ready to apply to the engine.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    pub remove_workloads: Vec<WorkloadKey>,
    pub upsert_workloads: Vec<Workload>,
    pub upsert_namespaces: Vec<Namespace>,
    pub remove_nodes: Vec<String>,
    pub upsert_nodes: Vec<Node>,
    /// The whole new policy set, when any policy file changed.
    pub policy: Option<PolicySet>,
    /// Files whose text changed (for logs).
    pub files: Vec<PathBuf>,
    staged: Vec<((Role, PathBuf), Option<Parsed>)>,
}

impl Delta {
    /// True when nothing the engine sees changed.
    pub fn is_empty(&self) -> bool {
        self.remove_workloads.is_empty()
            && self.upsert_workloads.is_empty()
            && self.upsert_namespaces.is_empty()
            && self.remove_nodes.is_empty()
            && self.upsert_nodes.is_empty()
            && self.policy.is_none()
    }

    pub fn touches_inventory(&self) -> bool {
        !(self.remove_workloads.is_empty()
            && self.upsert_workloads.is_empty()
            && self.upsert_namespaces.is_empty()
            && self.remove_nodes.is_empty()
            && self.upsert_nodes.is_empty())
    }
}

#[derive(Debug, Default)]
pub struct Sources {
    inputs: Vec<(Role, PathBuf)>,
    files: BTreeMap<(Role, PathBuf), Parsed>,
    workloads: Owned<WorkloadKey, Workload>,
    namespaces: Owned<String, Namespace>,
    nodes: Owned<String, Node>,
}

fn diag(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.display().to_string(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
    }
}

fn hash_text(text: &str) -> u64 {
    let mut h = FxHasher::default();
    text.hash(&mut h);
    h.finish()
}

fn is_manifest(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// The manifest files of a directory, sorted (as `bulkhead -f DIR` reads them).
fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| is_manifest(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Read and parse one file for one role.
fn parse_file(role: Role, path: &Path, text: String) -> Result<Parsed, Diagnostics> {
    let hash = hash_text(&text);
    let bundle = parse_sources(&[Source {
        name: path.display().to_string(),
        text,
    }])?;
    Ok(match role {
        Role::Inventory => Parsed {
            hash,
            inventory: bundle.inventory,
            policy: PolicySet::default(),
        },
        Role::Policy => Parsed {
            hash,
            inventory: Inventory::default(),
            policy: bundle.policy,
        },
    })
}

impl Sources {
    /// Read every input. On any problem, all of them are returned and nothing is loaded.
    pub fn load(inputs: Vec<(Role, PathBuf)>) -> Result<(Sources, Bundle), Diagnostics> {
        let mut s = Sources {
            inputs,
            ..Sources::default()
        };
        let mut changed = BTreeSet::new();
        for (_, p) in &s.inputs {
            changed.insert(p.clone());
        }
        let delta = s.stage(&changed, true)?;
        s.commit(delta);
        let bundle = s.clone_bundle();
        Ok((s, bundle))
    }

    /// Every path the watcher must cover: input files and directories.
    pub fn inputs(&self) -> impl Iterator<Item = &Path> {
        self.inputs.iter().map(|(_, p)| p.as_path())
    }

    /// Number of cached files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    fn clone_bundle(&self) -> Bundle {
        let mut b = Bundle::default();
        let mut ns: Vec<&(PathBuf, Namespace)> = self.namespaces.values().collect();
        ns.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        b.inventory.namespaces = ns.into_iter().map(|(_, n)| n.clone()).collect();
        let mut nodes: Vec<&(PathBuf, Node)> = self.nodes.values().collect();
        nodes.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        b.inventory.nodes = nodes.into_iter().map(|(_, n)| n.clone()).collect();
        let mut ws: Vec<&(PathBuf, Workload)> = self.workloads.values().collect();
        ws.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        b.inventory.workloads = ws.into_iter().map(|(_, w)| w.clone()).collect();
        b.policy = self.policy_set(&FxHashMap::default()).unwrap_or_default();
        b
    }

    /// The (role, file) pairs an input stands for now, in reading order.
    fn files_of(&self, role: Role, input: &Path) -> Result<Vec<(Role, PathBuf)>, Diagnostic> {
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => list_dir(input)
                .map(|v| v.into_iter().map(|p| (role, p)).collect())
                .map_err(|e| diag(input, format!("cannot read directory: {e}"))),
            Ok(_) => Ok(vec![(role, input.to_path_buf())]),
            Err(e) => Err(diag(input, format!("cannot read: {e}"))),
        }
    }

    /// Work out what the changed paths mean, without changing anything. `changed` holds
    /// paths the watcher reported (files, or input directories to rescan); `all`
    /// re-reads every file (start, or a watcher overflow).
    pub fn stage(&self, changed: &BTreeSet<PathBuf>, all: bool) -> Result<Delta, Diagnostics> {
        let mut problems: Vec<Diagnostic> = Vec::new();
        // 1. Which files to look at, per input.
        let mut look: Vec<(Role, PathBuf)> = Vec::new();
        let mut gone: Vec<(Role, PathBuf)> = Vec::new();
        for (role, input) in &self.inputs {
            let is_dir = std::fs::metadata(input).is_ok_and(|m| m.is_dir())
                || self
                    .files
                    .keys()
                    .any(|(r, p)| r == role && p.parent() == Some(input.as_path()));
            let touched = all
                || changed.contains(input)
                || (is_dir && changed.iter().any(|c| c.parent() == Some(input.as_path())));
            if !touched {
                continue;
            }
            if is_dir && !all && !changed.contains(input) {
                // The watcher named the files: look at those alone, no directory
                // listing (10,000 entries cost more than the one file that changed).
                for c in changed
                    .iter()
                    .filter(|c| c.parent() == Some(input.as_path()))
                {
                    let key = (*role, c.clone());
                    if c.is_file() && is_manifest(c) {
                        look.push(key);
                    } else if self.files.contains_key(&key) {
                        gone.push(key);
                    }
                }
                continue;
            }
            let now = match self.files_of(*role, input) {
                Ok(v) => v,
                Err(d) => {
                    problems.push(d);
                    continue;
                }
            };
            let now_set: BTreeSet<&(Role, PathBuf)> = now.iter().collect();
            if is_dir {
                for key in self.files.keys() {
                    if key.0 == *role
                        && key.1.parent() == Some(input.as_path())
                        && !now_set.contains(key)
                    {
                        gone.push(key.clone());
                    }
                }
            }
            for key in now {
                let wanted = all
                    || !is_dir
                    || changed.contains(&key.1)
                    || changed.contains(input)
                    || !self.files.contains_key(&key);
                if wanted {
                    look.push(key);
                }
            }
        }
        // 2. Read and parse those whose text changed.
        let mut staged: Vec<((Role, PathBuf), Option<Parsed>)> = Vec::new();
        for key in look {
            let text = match std::fs::read(&key.1) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        problems.push(diag(&key.1, "not UTF-8 text".into()));
                        continue;
                    }
                },
                // Deleted between the listing and now: it is gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if self.files.contains_key(&key) {
                        gone.push(key);
                    }
                    continue;
                }
                Err(e) => {
                    problems.push(diag(&key.1, format!("cannot read: {e}")));
                    continue;
                }
            };
            if self
                .files
                .get(&key)
                .is_some_and(|p| p.hash == hash_text(&text))
            {
                continue;
            }
            match parse_file(key.0, &key.1, text) {
                Ok(p) => staged.push((key, Some(p))),
                Err(d) => problems.extend(d.0),
            }
        }
        staged.extend(gone.into_iter().map(|k| (k, None)));
        staged.sort_by(|a, b| a.0.cmp(&b.0));
        staged.dedup_by(|a, b| a.0 == b.0);
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        // 3. The difference, with the checks that span files.
        let mut delta = Delta {
            files: staged.iter().map(|((_, p), _)| p.clone()).collect(),
            ..Delta::default()
        };
        let inv: Vec<(&PathBuf, Option<&Inventory>, Option<&Inventory>)> = staged
            .iter()
            .filter(|((r, _), _)| *r == Role::Inventory)
            .map(|((r, p), new)| {
                let old = self.files.get(&(*r, p.clone())).map(|x| &x.inventory);
                (p, old, new.as_ref().map(|x| &x.inventory))
            })
            .collect();
        let (up, rm) = diff_owned(
            &self.workloads,
            &inv,
            |i| &i.workloads,
            |w| w.key.clone(),
            |k| format!("Pod {k}"),
            &mut problems,
        );
        delta.upsert_workloads = up;
        delta.remove_workloads = rm;
        let (up, rm) = diff_owned(
            &self.namespaces,
            &inv,
            |i| &i.namespaces,
            |n| n.name.clone(),
            |k| format!("Namespace {k}"),
            &mut problems,
        );
        delta.upsert_namespaces = up;
        // A namespace no document declares any more keeps only its name label (as a
        // namespace that only workloads imply).
        delta.upsert_namespaces.extend(
            rm.into_iter()
                .map(|n| Namespace::new(&n, Default::default())),
        );
        let (up, rm) = diff_owned(
            &self.nodes,
            &inv,
            |i| &i.nodes,
            |n| n.name.clone(),
            |k| format!("Node {k}"),
            &mut problems,
        );
        delta.upsert_nodes = up;
        delta.remove_nodes = rm;
        if staged.iter().any(|((r, _), _)| *r == Role::Policy) {
            let overlay: FxHashMap<(Role, PathBuf), Option<&Parsed>> = staged
                .iter()
                .filter(|((r, _), _)| *r == Role::Policy)
                .map(|(k, v)| (k.clone(), v.as_ref()))
                .collect();
            match self.policy_set(&overlay) {
                Ok(p) => delta.policy = Some(p),
                Err(d) => problems.push(d),
            }
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems));
        }
        delta.staged = staged;
        Ok(delta)
    }

    /// The policy set of every policy file (with `overlay` replacing cached parses), in
    /// input order, directory files sorted: the order `bulkhead -f` reads them in.
    fn policy_set(
        &self,
        overlay: &FxHashMap<(Role, PathBuf), Option<&Parsed>>,
    ) -> Result<PolicySet, Diagnostic> {
        let mut keys: Vec<&(Role, PathBuf)> = self
            .files
            .keys()
            .chain(overlay.keys())
            .filter(|(r, _)| *r == Role::Policy)
            .collect();
        // Input order first, then path order within an input.
        let rank = |p: &Path| {
            self.inputs
                .iter()
                .position(|(r, i)| *r == Role::Policy && (i == p || p.parent() == Some(i)))
                .unwrap_or(usize::MAX)
        };
        // Ranked once per file, not once per comparison (thousands of policy files).
        keys.sort_by_cached_key(|k| (rank(&k.1), &k.1));
        keys.dedup();
        let mut set = PolicySet::default();
        let mut settings_at: Option<String> = None;
        for key in keys {
            let parsed = match overlay.get(key) {
                Some(p) => *p,
                None => self.files.get(key),
            };
            let Some(p) = parsed else { continue };
            set.groups.extend(p.policy.groups.iter().cloned());
            set.sensors.extend(p.policy.sensors.iter().cloned());
            set.responses.extend(p.policy.responses.iter().cloned());
            set.policies.extend(p.policy.policies.iter().cloned());
            set.network_policies
                .extend(p.policy.network_policies.iter().cloned());
            if let Some(origin) = &p.policy.settings.origin {
                if let Some(first) = &settings_at {
                    return Err(Diagnostic {
                        file: origin.file.to_string(),
                        line: origin.line,
                        column: origin.column,
                        path: String::new(),
                        message: format!(
                            "only one Settings document is allowed; the first is at {first}"
                        ),
                    });
                }
                settings_at = Some(origin.to_string());
                set.settings = p.policy.settings.clone();
            }
        }
        Ok(set)
    }

    /// Make a staged delta the current state (after the engine accepted it).
    pub fn commit(&mut self, delta: Delta) {
        for (key, parsed) in delta.staged {
            let role = key.0;
            let path = key.1.clone();
            let old = match parsed {
                Some(p) => self.files.insert(key, p),
                None => self.files.remove(&key),
            };
            if role != Role::Inventory {
                continue;
            }
            // Ownership: drop what this file defined, then take what it defines now.
            if let Some(old) = old {
                for w in &old.inventory.workloads {
                    if self.workloads.get(&w.key).is_some_and(|(f, _)| *f == path) {
                        self.workloads.remove(&w.key);
                    }
                }
                for n in &old.inventory.namespaces {
                    if self
                        .namespaces
                        .get(&n.name)
                        .is_some_and(|(f, _)| *f == path)
                    {
                        self.namespaces.remove(&n.name);
                    }
                }
                for n in &old.inventory.nodes {
                    if self.nodes.get(&n.name).is_some_and(|(f, _)| *f == path) {
                        self.nodes.remove(&n.name);
                    }
                }
            }
            if let Some(now) = self.files.get(&(role, path.clone())) {
                for w in &now.inventory.workloads {
                    self.workloads
                        .insert(w.key.clone(), (path.clone(), w.clone()));
                }
                for n in &now.inventory.namespaces {
                    self.namespaces
                        .insert(n.name.clone(), (path.clone(), n.clone()));
                }
                for n in &now.inventory.nodes {
                    self.nodes.insert(n.name.clone(), (path.clone(), n.clone()));
                }
            }
        }
    }
}

/// Turn the old and new contents of changed files into upserts and removals of one
/// kind of object, reporting objects defined twice across files.
fn diff_owned<K, V, F, G, D>(
    current: &Owned<K, V>,
    changed: &[(&PathBuf, Option<&Inventory>, Option<&Inventory>)],
    items: F,
    key: G,
    describe: D,
    problems: &mut Vec<Diagnostic>,
) -> (Vec<V>, Vec<K>)
where
    K: Eq + Hash + Clone + Ord + std::fmt::Display,
    V: Clone + PartialEq,
    F: Fn(&Inventory) -> &Vec<V>,
    G: Fn(&V) -> K,
    D: Fn(&K) -> String,
{
    // key -> new owner (None: removed), for keys the changed files touch.
    let mut overlay: BTreeMap<K, Option<(&PathBuf, &V)>> = BTreeMap::new();
    for (path, old, _) in changed {
        if let Some(old) = old {
            for v in items(old) {
                let k = key(v);
                if current.get(&k).is_some_and(|(f, _)| f == *path) {
                    overlay.insert(k, None);
                }
            }
        }
    }
    for (path, _, new) in changed {
        let Some(new) = new else { continue };
        for v in items(new) {
            let k = key(v);
            let owner: Option<&PathBuf> = match overlay.get(&k) {
                Some(o) => o.map(|(f, _)| f),
                None => current.get(&k).map(|(f, _)| f),
            };
            if let Some(other) = owner
                && other != *path
            {
                problems.push(diag(
                    path,
                    format!(
                        "duplicate {}; also defined in {}",
                        describe(&k),
                        other.display()
                    ),
                ));
                continue;
            }
            overlay.insert(k, Some((path, v)));
        }
    }
    let mut up = Vec::new();
    let mut rm = Vec::new();
    for (k, v) in overlay {
        match (current.get(&k), v) {
            (Some(_), None) => rm.push(k),
            (None, Some((_, v))) => up.push(v.clone()),
            (Some((_, old)), Some((_, v))) if old != v => up.push(v.clone()),
            _ => {}
        }
    }
    (up, rm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, ip: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: x, labels: {{app: {app}}}}}\nspec: {{nodeName: n1}}\nstatus: {{podIPs: [{{ip: {ip}}}]}}\n"
        )
    }

    fn changed(paths: &[&Path]) -> BTreeSet<PathBuf> {
        paths.iter().map(|p| p.to_path_buf()).collect()
    }

    #[test]
    fn one_file_per_pod_reparses_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("inv");
        std::fs::create_dir(&inv).unwrap();
        for i in 0..5 {
            std::fs::write(
                inv.join(format!("p{i}.yaml")),
                pod(&format!("p{i}"), "a", &format!("10.0.0.{i}")),
            )
            .unwrap();
        }
        let pol = dir.path().join("policy.yaml");
        std::fs::write(
            &pol,
            "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: g}\nspec: {selector: all(), mode: Protect}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: ignored}\n",
        )
        .unwrap();
        let (mut s, bundle) = Sources::load(vec![
            (Role::Inventory, inv.clone()),
            (Role::Policy, pol.clone()),
        ])
        .unwrap();
        assert_eq!(
            bundle.inventory.workloads.len(),
            5,
            "pods of -f are ignored"
        );
        assert_eq!(bundle.policy.groups.len(), 1);

        // Relabel one pod, delete another, add a third: only those files are read.
        std::fs::write(inv.join("p1.yaml"), pod("p1", "b", "10.0.0.1")).unwrap();
        std::fs::remove_file(inv.join("p2.yaml")).unwrap();
        std::fs::write(inv.join("p9.yaml"), pod("p9", "a", "10.0.0.9")).unwrap();
        let d = s
            .stage(
                &changed(&[
                    &inv.join("p1.yaml"),
                    &inv.join("p2.yaml"),
                    &inv.join("p9.yaml"),
                ]),
                false,
            )
            .unwrap();
        let names: Vec<String> = d
            .upsert_workloads
            .iter()
            .map(|w| w.key.to_string())
            .collect();
        assert_eq!(names, ["x/p1", "x/p9"]);
        assert_eq!(d.remove_workloads, [WorkloadKey::new("x", "p2")]);
        assert!(d.policy.is_none());
        s.commit(d);

        // Touching a file without changing its text is nothing.
        std::fs::write(inv.join("p3.yaml"), pod("p3", "a", "10.0.0.3")).unwrap();
        let d = s.stage(&changed(&[&inv.join("p3.yaml")]), false).unwrap();
        assert!(d.is_empty() && d.files.is_empty());

        // A pod moved from one file to another in one batch is one upsert, no removal.
        std::fs::remove_file(inv.join("p3.yaml")).unwrap();
        std::fs::write(inv.join("q3.yaml"), pod("p3", "c", "10.0.0.3")).unwrap();
        let d = s
            .stage(
                &changed(&[&inv.join("p3.yaml"), &inv.join("q3.yaml")]),
                false,
            )
            .unwrap();
        assert!(d.remove_workloads.is_empty());
        assert_eq!(d.upsert_workloads.len(), 1);
        s.commit(d);

        // The same pod in two files is an error and changes nothing.
        std::fs::write(inv.join("dup.yaml"), pod("p0", "z", "10.0.0.50")).unwrap();
        let err = s
            .stage(&changed(&[&inv.join("dup.yaml")]), false)
            .unwrap_err();
        assert!(err.to_string().contains("duplicate Pod x/p0"), "{err}");
        std::fs::remove_file(inv.join("dup.yaml")).unwrap();

        // A broken policy edit is reported; fixing it later applies.
        std::fs::write(&pol, "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: g}\nspec: {selector: 'app ==', mode: Protect}\n").unwrap();
        assert!(s.stage(&changed(&[&pol]), false).is_err());
        std::fs::write(&pol, "apiVersion: bulkhead.io/v1\nkind: Group\nmetadata: {name: g}\nspec: {selector: all(), mode: Monitor}\n").unwrap();
        let d = s.stage(&changed(&[&pol]), false).unwrap();
        assert_eq!(d.policy.as_ref().unwrap().groups.len(), 1);
        assert!(!d.touches_inventory());
        s.commit(d);
        assert_eq!(s.clone_bundle().inventory.workloads.len(), 5);
    }

    #[test]
    fn namespaces_and_nodes_follow_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("inv.yaml");
        std::fs::write(&f, "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {env: prod}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {addresses: [{type: InternalIP, address: 192.168.9.1}]}\n").unwrap();
        let (mut s, b) = Sources::load(vec![(Role::Inventory, f.clone())]).unwrap();
        assert_eq!(b.inventory.namespaces.len(), 1);
        assert_eq!(b.inventory.nodes.len(), 1);
        std::fs::write(&f, "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n").unwrap();
        let d = s.stage(&changed(&[&f]), false).unwrap();
        assert_eq!(d.remove_nodes, ["n1"]);
        assert_eq!(d.upsert_namespaces.len(), 1);
        assert!(d.upsert_namespaces[0].labels.get("env").is_none());
        s.commit(d);
        std::fs::write(&f, "").unwrap();
        let d = s.stage(&changed(&[&f]), false).unwrap();
        assert_eq!(
            d.upsert_namespaces.len(),
            1,
            "an undeclared namespace resets"
        );
    }

    #[test]
    fn two_settings_across_files_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let st = "apiVersion: bulkhead.io/v1\nkind: Settings\nmetadata: {name: s}\nspec: {ungroupedMode: Protect}\n";
        std::fs::write(dir.path().join("a.yaml"), st).unwrap();
        std::fs::write(dir.path().join("b.yaml"), st).unwrap();
        let err = Sources::load(vec![(Role::Policy, dir.path().to_path_buf())]).unwrap_err();
        assert!(err.to_string().contains("only one Settings"), "{err}");
    }
}
