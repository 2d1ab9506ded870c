//! Discovery from a watched file: a `servers = [...]` list as in a pool, read every interval
//! and applied when its content changed. A file that cannot be read or does not validate is
//! reported (with file:line:col) and the last good set stays.

use std::path::PathBuf;

use super::{Discovery, DiscoveryError, Found};
use crate::config::site::parse_server_list;

/// A watched server file.
#[derive(Debug)]
pub(crate) struct FileDiscovery {
    path: PathBuf,
    /// Content of the last file applied.
    last: Option<String>,
}

impl FileDiscovery {
    pub(crate) fn new(path: PathBuf) -> Self {
        FileDiscovery { path, last: None }
    }
}

#[async_trait::async_trait]
impl Discovery for FileDiscovery {
    async fn discover(&mut self) -> Result<Option<Found>, DiscoveryError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| DiscoveryError::Read(self.path.display().to_string(), e))?;
        if self.last.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        let servers = parse_server_list(&self.path, &text)?;
        // Remembered only once valid: a broken file is reported on every refresh.
        self.last = Some(text);
        Ok(Some(Found { servers, ttl: None }))
    }
}
