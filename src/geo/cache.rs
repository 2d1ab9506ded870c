//! Compiled databases shared between zones, so each file is loaded and compiled once.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::GeoError;
use super::database::GeoDatabase;

/// Databases loaded once and shared between zones, keyed by path.
///
/// An entry is reused while the file's size and modification time are unchanged, so a zone
/// reload that names the same file does not compile it again, and one after the file was
/// replaced does.
#[derive(Debug, Default)]
pub struct DatabaseCache {
    entries: HashMap<PathBuf, (Option<SystemTime>, u64, Arc<GeoDatabase>)>,
}

impl DatabaseCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled database at `path`, loading it when it is new or changed on disk.
    pub fn get(&mut self, path: &Path) -> Result<Arc<GeoDatabase>, GeoError> {
        let key = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let meta = fs::metadata(&key).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stamp = (meta.modified().ok(), meta.len());
        if let Some((m, len, db)) = self.entries.get(&key)
            && (*m, *len) == stamp
        {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(GeoDatabase::open(path)?);
        self.entries
            .insert(key, (stamp.0, stamp.1, Arc::clone(&db)));
        Ok(db)
    }

    /// Drops databases no zone holds any more.
    pub fn prune(&mut self) {
        self.entries
            .retain(|_, (_, _, db)| Arc::strong_count(db) > 1);
    }

    /// Number of databases held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no database is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
