//! Zone files: schema, validation and the set of zones served.

pub mod model;
mod raw;
mod steering;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::*;
pub use steering::{MAX_ANSWERS, MAX_SERVICE_DCS};
pub use validate::parse_zone;

use crate::config::Name;
use crate::config::error::{ConfigError, Diagnostic};

/// Every zone served, most specific origin first.
#[derive(Debug, Clone, Default)]
pub struct ZoneSet {
    zones: Vec<Arc<Zone>>,
}

impl ZoneSet {
    /// Builds a set; two zones with the same origin are an error.
    pub fn new(mut zones: Vec<Zone>) -> Result<Self, ConfigError> {
        zones.sort_by(|a, b| {
            b.origin
                .label_count()
                .cmp(&a.origin.label_count())
                .then_with(|| a.origin.cmp(&b.origin))
        });
        let mut errors = Vec::new();
        for w in zones.windows(2) {
            if w[0].origin == w[1].origin {
                errors.push(Diagnostic {
                    file: w[1].file.clone(),
                    line: 0,
                    col: 0,
                    item: "origin".into(),
                    value: w[1].origin.to_string(),
                    message: format!("zone also defined in {}", w[0].file.display()),
                });
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError {
                diagnostics: errors,
            });
        }
        Ok(ZoneSet {
            zones: zones.into_iter().map(Arc::new).collect(),
        })
    }

    /// The zone with the longest origin that contains `name`.
    pub fn find(&self, name: &Name) -> Option<&Arc<Zone>> {
        self.zones.iter().find(|z| name.is_within(&z.origin))
    }

    /// All zones, most specific first.
    pub fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }
}

/// Reads and validates one zone file.
pub fn load_zone_file(path: &Path) -> Result<Zone, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::io(path, "zone file", format!("cannot read: {e}")))?;
    parse_zone(path, &text)
}

/// The `*.toml` files of a directory, sorted.
pub fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::io(dir, "zone directory", format!("cannot read: {e}")))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads and validates every `*.toml` file in a directory (or one file). All files are checked
/// and all errors reported; the set is returned only when every file is valid.
pub fn load_zone_dir(dir: &Path) -> Result<ZoneSet, ConfigError> {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        toml_files(dir)?
    };
    if files.is_empty() {
        return Err(ConfigError::io(
            dir,
            "zone directory",
            "no *.toml zone files",
        ));
    }
    let mut zones = Vec::new();
    let mut diagnostics = Vec::new();
    for f in files {
        match load_zone_file(&f) {
            Ok(z) => zones.push(z),
            Err(e) => diagnostics.extend(e.diagnostics),
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError { diagnostics });
    }
    ZoneSet::new(zones)
}
