//! Watching the inputs and batching their changes.
//!
//! The `notify` crate (inotify on Linux) watches every input directory, and the parent
//! directory of every input file (editors and `mv` replace files, which a watch on the
//! file itself would lose). inotify is a property of the mount namespace, not the
//! network namespace, so it works unchanged after the agent entered the node's netns.
//! Events for other files in those directories are dropped at the source.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::config::Debounce;

/// What the reconcile loop is told.
#[derive(Debug)]
pub enum Event {
    /// Paths changed (`rescan`: the watcher lost events; look at everything).
    /// `complete`: the event says the file's new content is all there (closed after
    /// writing, renamed into place, removed); other events mean a write in progress.
    Changed {
        paths: Vec<PathBuf>,
        rescan: bool,
        complete: bool,
        at: Instant,
    },
    /// SIGTERM or SIGINT.
    Shutdown,
    /// A response rule asks for a quarantine or a capture.
    Respond(bulkhead_respond::LocalAction),
}

fn is_manifest(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Is this event path one of ours?
fn relevant(inputs: &[PathBuf], dirs: &[PathBuf], p: &Path) -> bool {
    inputs.iter().any(|i| i == p)
        || (is_manifest(p) && dirs.iter().any(|d| p.parent() == Some(d.as_path())))
}

/// Start watching. The watcher stops when the returned value is dropped.
pub fn start(inputs: &[PathBuf], tx: Sender<Event>) -> notify::Result<RecommendedWatcher> {
    // Absolute paths: inotify reports what it was given, and the sources compare paths.
    let inputs: Vec<PathBuf> = inputs.to_vec();
    let dirs: Vec<PathBuf> = inputs.iter().filter(|p| p.is_dir()).cloned().collect();
    let (ins, ds) = (inputs.clone(), dirs.clone());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let at = Instant::now();
        match res {
            Ok(ev) => {
                let rescan = ev.need_rescan();
                let interesting = match ev.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                    EventKind::Access(_) => false,
                    _ => true,
                };
                let complete = matches!(
                    ev.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                        | EventKind::Remove(_)
                );
                if !interesting && !rescan {
                    return;
                }
                let paths: Vec<PathBuf> = ev
                    .paths
                    .into_iter()
                    .filter(|p| relevant(&ins, &ds, p))
                    .collect();
                if paths.is_empty() && !rescan {
                    return;
                }
                let _ = tx.send(Event::Changed {
                    paths,
                    rescan,
                    complete,
                    at,
                });
            }
            Err(_) => {
                let _ = tx.send(Event::Changed {
                    paths: Vec::new(),
                    rescan: true,
                    complete: false,
                    at,
                });
            }
        }
    })?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    for p in &inputs {
        let target = if dirs.contains(p) {
            p.clone()
        } else {
            match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        if watched.insert(target.clone()) {
            watcher.watch(&target, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

/// Events gathered into one change.
#[derive(Debug, Clone)]
pub struct Batch {
    pub paths: BTreeSet<PathBuf>,
    pub rescan: bool,
    /// Paths whose latest event was a write in progress.
    writing: BTreeSet<PathBuf>,
    /// First and latest event.
    pub first: Instant,
    pub last: Instant,
}

impl Batch {
    pub fn new(at: Instant) -> Batch {
        Batch {
            paths: BTreeSet::new(),
            rescan: false,
            writing: BTreeSet::new(),
            first: at,
            last: at,
        }
    }

    pub fn add(&mut self, paths: Vec<PathBuf>, rescan: bool, complete: bool, at: Instant) {
        for p in &paths {
            if complete {
                self.writing.remove(p);
            } else {
                self.writing.insert(p.clone());
            }
        }
        self.paths.extend(paths);
        self.rescan |= rescan;
        self.last = self.last.max(at);
        self.first = self.first.min(at);
    }

    /// When to apply: after `quiet` without events, but no later than `max` after the
    /// first event; after only `settled` when every file of the batch is completely
    /// written (an atomic rename or a close after writing: nothing more is coming for
    /// it, so waiting longer would only add latency).
    pub fn due(&self, d: Debounce) -> Instant {
        let quiet = if self.writing.is_empty() && !self.rescan {
            d.settled
        } else {
            d.quiet
        };
        (self.last + quiet).min(self.first + d.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quiet_period_with_a_bound() {
        let d = Debounce {
            quiet: Duration::from_millis(30),
            settled: Duration::from_millis(1),
            max: Duration::from_millis(100),
        };
        let t = Instant::now();
        let mut b = Batch::new(t);
        b.add(vec!["a.yaml".into()], false, false, t);
        assert_eq!(b.due(d), t + Duration::from_millis(30));
        b.add(
            vec!["a.yaml".into()],
            false,
            false,
            t + Duration::from_millis(20),
        );
        assert_eq!(b.due(d), t + Duration::from_millis(50));
        // A writer that never pauses is still served after `max`.
        for i in 0..20 {
            let at = t + Duration::from_millis(20 + i * 10);
            b.add(vec!["a.yaml".into()], false, false, at);
        }
        assert_eq!(b.due(d), t + Duration::from_millis(100));
        assert_eq!(b.paths.len(), 1);
    }

    #[test]
    fn complete_files_settle_at_once() {
        let d = Debounce::default();
        let t = Instant::now();
        let mut b = Batch::new(t);
        // Written in place: in progress until closed.
        b.add(vec!["a.yaml".into()], false, false, t);
        b.add(vec!["b.yaml".into()], false, true, t);
        assert_eq!(b.due(d), t + d.quiet);
        b.add(vec!["a.yaml".into()], false, true, t);
        assert_eq!(b.due(d), t + d.settled);
        // Lost events: look at everything, after the full quiet period.
        b.add(vec![], true, true, t);
        assert_eq!(b.due(d), t + d.quiet);
    }

    #[test]
    fn only_inputs_and_manifests_in_input_directories() {
        let inputs = vec![PathBuf::from("/a/policy.yaml"), PathBuf::from("/inv")];
        let dirs = vec![PathBuf::from("/inv")];
        assert!(relevant(&inputs, &dirs, Path::new("/a/policy.yaml")));
        assert!(!relevant(&inputs, &dirs, Path::new("/a/other.yaml")));
        assert!(relevant(&inputs, &dirs, Path::new("/inv/pod-1.yaml")));
        assert!(!relevant(&inputs, &dirs, Path::new("/inv/.pod-1.yaml.swp")));
        assert!(!relevant(&inputs, &dirs, Path::new("/inv/sub/pod.yaml")));
    }

    #[test]
    fn file_events_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, "a").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let _w = start(std::slice::from_ref(&f), tx).unwrap();
        std::fs::write(dir.path().join("unrelated.yaml"), "x").unwrap();
        std::fs::write(&f, "b").unwrap();
        let ev = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let Event::Changed { paths, .. } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(paths, [f]);
    }
}
