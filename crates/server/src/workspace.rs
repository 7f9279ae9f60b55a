//! The policy and inventory files the server was given: loaded and compiled (cached by
//! content), validated as a whole set before any change, and changed the way a user
//! edits them (a temporary file renamed into place), so the agents watching the
//! directory see a complete file or none.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use bulkhead_analyze::lint::{self, Finding, Severity};
use bulkhead_manifest::Source;
use bulkhead_policy::Engine;
use bulkhead_policy::spec::Bundle;

use crate::Config;
use crate::error::{ApiError, ApiResult, Diag};

/// Policy and inventory as compiled from the files at one moment.
pub struct Loaded {
    /// The policy sources (`-f`) as read.
    pub sources: Vec<Source>,
    pub bundle: Bundle,
    pub engine: Engine,
    hash: u64,
}

pub struct Workspace {
    policy: Vec<PathBuf>,
    inventory: Vec<PathBuf>,
    recursive: bool,
    cache: Mutex<Option<Arc<Loaded>>>,
    /// Held across validate-then-write so that two changes never validate against the
    /// same old set and both land.
    pub write_lock: tokio::sync::Mutex<()>,
}

/// What a validation found: problems that refuse the change, and the lint findings.
pub struct Checked {
    pub engine: Engine,
    pub findings: Vec<Finding>,
}

fn hash_sources(a: &[Source], b: &[Source]) -> u64 {
    let mut h = DefaultHasher::new();
    for s in a.iter().chain(b) {
        s.name.hash(&mut h);
        s.text.hash(&mut h);
    }
    h.finish()
}

fn diags(d: &bulkhead_manifest::Diagnostics) -> Vec<Diag> {
    d.iter().map(Diag::from).collect()
}

impl Workspace {
    pub fn new(c: &Config) -> Workspace {
        Workspace {
            policy: c.policy.clone(),
            inventory: c.inventory.clone(),
            recursive: c.recursive,
            cache: Mutex::new(None),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The directory written policies go to: the first `-f` that is a directory.
    pub fn policy_dir(&self) -> ApiResult<&Path> {
        self.policy
            .iter()
            .find(|p| p.is_dir())
            .map(PathBuf::as_path)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "the server was given no policy directory (-f DIR) to write to",
                )
            })
    }

    /// The policy sources as they are on disk.
    pub fn read_policy(&self) -> ApiResult<Vec<Source>> {
        bulkhead_manifest::read_paths(&self.policy, self.recursive)
            .map_err(|d| ApiError::invalid("the policy files cannot be read", diags(&d)))
    }

    fn read_inventory(&self) -> ApiResult<Vec<Source>> {
        if self.inventory.is_empty() {
            return Ok(Vec::new());
        }
        bulkhead_manifest::read_paths(&self.inventory, self.recursive)
            .map_err(|d| ApiError::invalid("the inventory files cannot be read", diags(&d)))
    }

    /// Decode and compile `policy` (with the inventory files when given separately), as
    /// `bulkhead` does with `-f` and `--inventory`. Every problem is returned, none
    /// hidden: decode diagnostics, else compile errors, else lint errors.
    pub fn check(&self, policy: &[Source]) -> ApiResult<(Bundle, Checked)> {
        let inventory = self.read_inventory()?;
        self.check_with(policy, &inventory)
    }

    fn check_with(&self, policy: &[Source], inventory: &[Source]) -> ApiResult<(Bundle, Checked)> {
        let mut bundle = bulkhead_manifest::parse_sources(policy)
            .map_err(|d| ApiError::invalid("the policy does not decode", diags(&d)))?;
        if !inventory.is_empty() {
            bundle.inventory = bulkhead_manifest::parse_sources(inventory)
                .map_err(|d| ApiError::invalid("the inventory does not decode", diags(&d)))?
                .inventory;
        }
        let engine = Engine::new(&bundle).map_err(|errors| {
            let mut e = ApiError::invalid(
                "the policy does not compile",
                errors.iter().map(Diag::from).collect(),
            );
            e.findings = lint::from_compile_errors(&bundle.policy, &errors)
                .iter()
                .map(finding_json)
                .collect();
            e
        })?;
        let findings = lint::lint(&engine);
        if findings.iter().any(|f| f.severity == Severity::Error) {
            let mut e = ApiError::invalid(
                "lint found errors",
                findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| Diag {
                        file: f.origin.file.to_string(),
                        line: f.origin.line,
                        column: f.origin.column,
                        path: String::new(),
                        message: format!("{}: {}", f.code, f.message),
                    })
                    .collect(),
            );
            e.findings = findings.iter().map(finding_json).collect();
            return Err(e);
        }
        Ok((bundle, Checked { engine, findings }))
    }

    /// The current files, compiled; reused while their content is unchanged. Files that
    /// do not compile are an error (503) naming every problem.
    pub fn current(&self) -> ApiResult<Arc<Loaded>> {
        let sources = self.read_policy()?;
        let inventory = self.read_inventory()?;
        let hash = hash_sources(&sources, &inventory);
        if let Some(l) = self.cache.lock().unwrap().as_ref()
            && l.hash == hash
        {
            return Ok(l.clone());
        }
        let (bundle, checked) = self.check_with(&sources, &inventory).map_err(|mut e| {
            e.status = StatusCode::SERVICE_UNAVAILABLE;
            e.error = format!("the policy files on disk are not valid: {}", e.error);
            e
        })?;
        let loaded = Arc::new(Loaded {
            sources,
            bundle,
            engine: checked.engine,
            hash,
        });
        *self.cache.lock().unwrap() = Some(loaded.clone());
        Ok(loaded)
    }

    /// The path of a policy file named `name` in the policy directory. Names are plain
    /// file names ending in `.yaml`, `.yml` or `.json`: no directories, nothing hidden.
    pub fn file_path(&self, name: &str) -> ApiResult<PathBuf> {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        let ok_ext = [".yaml", ".yml", ".json"]
            .iter()
            .any(|e| name.len() > e.len() && name.ends_with(e));
        if !ok_chars || !ok_ext || name.starts_with('.') {
            return Err(ApiError::bad_request(format!(
                "{name:?}: a policy file name is letters, digits, '.', '-', '_' ending in .yaml, .yml or .json"
            )));
        }
        Ok(self.policy_dir()?.join(name))
    }

    /// Validate the policy set with `path` set to `text` (None: removed); on success write
    /// it (or remove it) atomically. Returns the lint findings (warnings).
    pub fn apply(&self, path: &Path, text: Option<&str>) -> ApiResult<Vec<Finding>> {
        let name = path.display().to_string();
        let mut sources: Vec<Source> = self
            .read_policy()?
            .into_iter()
            .filter(|s| s.name != name)
            .collect();
        if let Some(text) = text {
            sources.push(Source {
                name: name.clone(),
                text: text.to_string(),
            });
        }
        let (_, checked) = self.check(&sources)?;
        match text {
            Some(text) => write_atomically(path, text)
                .map_err(|e| ApiError::internal(format!("{name}: cannot write: {e}")))?,
            None => std::fs::remove_file(path)
                .map_err(|e| ApiError::internal(format!("{name}: cannot remove: {e}")))?,
        }
        Ok(checked.findings)
    }
}

/// A lint finding as `bulkhead policy lint -o json` prints it.
pub fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::to_value(f).unwrap_or_default()
}

/// Write `text` to a hidden temporary file next to `path` (not a manifest name, so a
/// watcher ignores it), flush it to disk, then rename it over `path`.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("policy");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
