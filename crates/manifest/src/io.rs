//! The only module that touches the file system (and standard input).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Diagnostic, Diagnostics, Source};

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

fn problem(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.display().to_string(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
    }
}

/// Read files; a directory contributes every `*.yaml`, `*.yml` and `*.json` in it in
/// name order (subdirectories too when `recursive`); `-` is standard input. Every
/// unreadable path is reported, not just the first.
pub fn read_paths(paths: &[PathBuf], recursive: bool) -> Result<Vec<Source>, Diagnostics> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    let mut stdin_read = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_read {
                problems.push(problem(path, "standard input can be read only once".into()));
                continue;
            }
            stdin_read = true;
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => sources.push(Source {
                    name: "-".into(),
                    text,
                }),
                Err(e) => problems.push(problem(path, format!("cannot read standard input: {e}"))),
            }
            continue;
        }
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let before = sources.len();
                walk(path, recursive, &mut sources, &mut problems);
                if sources.len() == before {
                    let what = if recursive { "below" } else { "in" };
                    problems.push(problem(
                        path,
                        format!("no .yaml, .yml or .json files {what} this directory"),
                    ));
                }
            }
            Ok(_) => read_file(path, &mut sources, &mut problems),
            Err(e) => problems.push(problem(path, format!("cannot read: {e}"))),
        }
    }
    // A file named twice (`-f dir/ dir/tests.yaml`) is read once: its documents are one
    // set, not two (every test run twice, every policy a duplicate of itself).
    let mut seen = std::collections::HashSet::new();
    sources.retain(|s| {
        s.name == "-"
            || seen.insert(fs::canonicalize(&s.name).unwrap_or_else(|_| s.name.clone().into()))
    });
    if problems.is_empty() {
        Ok(sources)
    } else {
        Err(Diagnostics(problems))
    }
}

fn read_file(path: &Path, sources: &mut Vec<Source>, problems: &mut Vec<Diagnostic>) {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => sources.push(Source {
                name: path.display().to_string(),
                text,
            }),
            Err(_) => problems.push(problem(path, "not UTF-8 text".into())),
        },
        Err(e) => problems.push(problem(path, format!("cannot read: {e}"))),
    }
}

/// A directory's manifests in name order; subdirectories after the files when
/// recursing. Symbolic links to directories are not followed (no loops).
fn walk(dir: &Path, recursive: bool, sources: &mut Vec<Source>, problems: &mut Vec<Diagnostic>) {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(problem(dir, format!("cannot read directory: {e}")));
            return;
        }
    };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            dirs.push(path);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    for f in files {
        read_file(&f, sources, problems);
    }
    if recursive {
        for d in dirs {
            walk(&d, true, sources, problems);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_sorted_and_filtered() {
        let dir = std::env::temp_dir().join(format!("bulkhead-manifest-io-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["b.yaml", "a.yml", "c.json", "notes.txt", "sub/d.yaml"] {
            fs::write(dir.join(name), name).unwrap();
        }
        let names = |recursive| -> Vec<String> {
            read_paths(std::slice::from_ref(&dir), recursive)
                .unwrap()
                .into_iter()
                .map(|s| s.text)
                .collect()
        };
        assert_eq!(names(false), ["a.yml", "b.yaml", "c.json"]);
        assert_eq!(names(true), ["a.yml", "b.yaml", "c.json", "sub/d.yaml"]);
        let err =
            read_paths(&[dir.join("missing.yaml"), dir.join("sub/d.yaml")], false).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err.0[0].to_string().contains("missing.yaml: cannot read"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
