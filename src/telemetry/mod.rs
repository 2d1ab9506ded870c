//! Logging, metrics and the admin HTTP server.

pub mod html;
pub mod http;

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}: expected text or json")),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), output to stderr.
/// hickory's per-query logging stays off unless `RUST_LOG` names hickory itself.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::new(filter_directives(std::env::var("RUST_LOG").ok().as_deref()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The filter for a `RUST_LOG` value: `info` when unset or empty, and hickory's crates at `warn`
/// unless the value mentions them (hickory-server logs two `info` lines per query).
fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    if base.contains("hickory") {
        base.to_string()
    } else {
        format!("{base},hickory_server=warn,hickory_proto=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::filter_directives;

    #[test]
    fn hickory_stays_quiet_unless_asked_for() {
        assert_eq!(
            filter_directives(None),
            "info,hickory_server=warn,hickory_proto=warn"
        );
        assert_eq!(
            filter_directives(Some("debug")),
            "debug,hickory_server=warn,hickory_proto=warn"
        );
        assert_eq!(
            filter_directives(Some("info,hickory_server=debug")),
            "info,hickory_server=debug"
        );
    }
}
