//! Site files: the configuration of `meridian site` (listeners, pools, servers, health checks,
//! breakers, retries, the admin listener). Same two stages as zone files: raw serde structs with
//! spans, then a validated [`SiteConfig`]. The reference is `docs/site-file.md`.

mod api;
mod discovery;
mod features;
mod l4;
mod l7;
pub mod model;
mod pool;
mod raw;
mod route;
mod tls;
mod validate;

use std::path::Path;

pub use api::ApiConfig;
pub use discovery::{DiscoveryConfig, DiscoverySource, RecordKind, parse_server_list};
pub use l4::{L4Options, ProxyVersion};
pub use l7::*;
pub use model::*;
pub use route::*;
pub use tls::*;
pub use validate::parse_site;

use crate::config::error::ConfigError;

/// Reads and validates one site file.
pub fn load_site_file(path: &Path) -> Result<SiteConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::io(path, "site file", format!("cannot read: {e}")))?;
    parse_site(path, &text)
}

/// True when a TOML text looks like a site file rather than a zone file: it has no top-level
/// `origin` key. Used by `meridian check` to pick the schema.
pub fn is_site_text(text: &str) -> bool {
    match toml::from_str::<toml::Table>(text) {
        Ok(t) => !t.contains_key("origin"),
        Err(_) => !text.lines().any(|l| l.trim_start().starts_with("origin")),
    }
}
