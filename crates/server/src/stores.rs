//! Open read-only connections to the agents' stores, kept between requests: opening a
//! SQLite connection (and reading its schema) costs more than a "last 100 records"
//! query. A request leases one connection per state directory and gives it back.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bulkhead_store::Store;

use crate::error::{ApiError, ApiResult};

/// Idle connections kept per store.
const KEEP: usize = 16;

#[derive(Default)]
pub struct Stores {
    idle: Mutex<HashMap<PathBuf, Vec<Store>>>,
}

/// A connection to one store, back to the pool when dropped.
pub struct Lease<'a> {
    pool: &'a Stores,
    dir: PathBuf,
    store: Option<Store>,
}

impl Deref for Lease<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("held until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            let mut idle = self.pool.idle.lock().unwrap();
            let v = idle.entry(std::mem::take(&mut self.dir)).or_default();
            if v.len() < KEEP {
                v.push(s);
            }
        }
    }
}

impl Stores {
    /// The store of `dir`, None when it has none yet (an agent that never ran).
    pub fn lease(&self, dir: &Path) -> ApiResult<Option<Lease<'_>>> {
        let path = dir.join(bulkhead_store::FILE);
        if !path.exists() {
            // Removed (or never made): forget connections to an old file.
            self.idle.lock().unwrap().remove(dir);
            return Ok(None);
        }
        let pooled = self.idle.lock().unwrap().get_mut(dir).and_then(Vec::pop);
        let store = match pooled {
            Some(s) => s,
            None => match Store::open_read_only(&path)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
            {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        Ok(Some(Lease {
            pool: self,
            dir: dir.to_path_buf(),
            store: Some(store),
        }))
    }

    /// The stores of every directory that has one.
    pub fn lease_all(&self, dirs: &[PathBuf]) -> ApiResult<Vec<Lease<'_>>> {
        let mut out = Vec::new();
        for d in dirs {
            out.extend(self.lease(d)?);
        }
        Ok(out)
    }
}
