//! `discovery` of a pool: servers found at run time from a DNS name (A/AAAA or SRV) or from a
//! watched file, beside (or instead of) the pool's `servers`. The file's own format is a
//! `servers = [...]` list exactly as in a pool, validated the same way ([`parse_server_list`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::ServerConfig;
use super::pool::server_list;
use super::raw::RawServer;
use super::validate::{addr, duration, int};
use crate::config::error::{Collector, ConfigError, Source};

/// Slow start of a pool with discovery when the file sets none.
const DISCOVERY_SLOW_START: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDiscovery {
    pub(crate) dns: Option<Spanned<String>>,
    pub(crate) record: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<i64>>,
    pub(crate) resolver: Option<Spanned<String>>,
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
}

/// Which DNS records name the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// IPv4 addresses, with the configured port.
    A,
    /// IPv6 addresses, with the configured port.
    Aaaa,
    /// Both families.
    AAndAaaa,
    /// SRV records: target, port and weight each (lowest priority only).
    Srv,
}

/// Where the servers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverySource {
    /// A DNS name.
    Dns {
        /// The name (absolute; a trailing dot is optional).
        name: String,
        /// Record type.
        record: RecordKind,
        /// Port of A/AAAA servers.
        port: u16,
        /// The DNS server to ask; `None`: the first `nameserver` of `/etc/resolv.conf`.
        resolver: Option<SocketAddr>,
    },
    /// A file with a `servers = [...]` list, read again when it changes.
    File {
        /// Path (relative paths are taken from the site file's directory).
        path: PathBuf,
    },
}

/// A pool's discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The source.
    pub source: DiscoverySource,
    /// Longest time between two refreshes (a DNS answer with a shorter TTL refreshes sooner,
    /// but not more often than once a second).
    pub interval: Duration,
    /// Time allowed for one DNS query.
    pub timeout: Duration,
    /// Weight of servers found by A/AAAA records (SRV records carry their own).
    pub weight: u32,
    /// `max_connections` of the servers found by DNS.
    pub max_connections: u32,
}

pub(crate) fn default_slow_start(d: Option<&DiscoveryConfig>) -> Duration {
    if d.is_some() {
        DISCOVERY_SLOW_START
    } else {
        Duration::ZERO
    }
}

pub(crate) fn build(
    c: &mut Collector<'_>,
    raw: &Spanned<RawDiscovery>,
    item: &str,
) -> DiscoveryConfig {
    let r = raw.get_ref();
    let key = |k: &str| format!("{item}.{k}");
    let source = match (&r.dns, &r.file) {
        (Some(name), None) => dns(c, r, name, item),
        (None, Some(f)) => {
            for (k, given) in [
                ("record", r.record.as_ref().map(|v| v.span())),
                ("port", r.port.as_ref().map(|v| v.span())),
                ("resolver", r.resolver.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = given {
                    c.err(&span, &key(k), "applies to DNS discovery only");
                }
            }
            let base = c.src.file.parent().unwrap_or(Path::new("."));
            DiscoverySource::File {
                path: base.join(f.get_ref()),
            }
        }
        _ => {
            c.err(
                &raw.span(),
                item,
                "set either `dns = \"name\"` or `file = \"path\"`",
            );
            DiscoverySource::File {
                path: PathBuf::new(),
            }
        }
    };
    let default_interval = match source {
        DiscoverySource::Dns { .. } => Duration::from_secs(30),
        DiscoverySource::File { .. } => Duration::from_secs(2),
    };
    let interval = duration(c, r.interval.as_ref(), &key("interval"), default_interval);
    if interval < Duration::from_millis(10)
        && let Some(i) = &r.interval
    {
        c.err(&i.span(), &key("interval"), "must be at least 10ms");
    }
    DiscoveryConfig {
        source,
        interval,
        timeout: duration(
            c,
            r.timeout.as_ref(),
            &key("timeout"),
            Duration::from_secs(2),
        ),
        weight: int(c, r.weight.as_ref(), &key("weight"), 0..=1000, 1) as u32,
        max_connections: int(
            c,
            r.max_connections.as_ref(),
            &key("max_connections"),
            1..=1_000_000,
            1024,
        ) as u32,
    }
}

fn dns(
    c: &mut Collector<'_>,
    r: &RawDiscovery,
    name: &Spanned<String>,
    item: &str,
) -> DiscoverySource {
    let key = |k: &str| format!("{item}.{k}");
    let n = name.get_ref().trim();
    let valid = !n.is_empty()
        && n.len() <= 253
        && n.trim_end_matches('.')
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63);
    if !valid {
        c.err(
            &name.span(),
            &key("dns"),
            "expected a DNS name such as web.service.example.",
        );
    }
    let record = match r.record.as_ref().map(|v| v.get_ref().to_ascii_uppercase()) {
        None => RecordKind::AAndAaaa,
        Some(k) => match k.as_str() {
            "A" => RecordKind::A,
            "AAAA" => RecordKind::Aaaa,
            "A+AAAA" | "AAAA+A" => RecordKind::AAndAaaa,
            "SRV" => RecordKind::Srv,
            _ => {
                let span = r.record.as_ref().map_or(name.span(), |v| v.span());
                c.err(
                    &span,
                    &key("record"),
                    "expected \"A\", \"AAAA\", \"A+AAAA\" or \"SRV\"",
                );
                RecordKind::AAndAaaa
            }
        },
    };
    let port = match (&r.port, record) {
        (Some(p), RecordKind::Srv) => {
            c.err(&p.span(), &key("port"), "SRV records carry their own port");
            0
        }
        (None, RecordKind::Srv) => 0,
        (Some(p), _) => int(c, Some(p), &key("port"), 1..=65535, 80) as u16,
        (None, _) => {
            c.err(&name.span(), &key("port"), "A/AAAA discovery needs `port`");
            0
        }
    };
    DiscoverySource::Dns {
        name: n.to_string(),
        record,
        port,
        resolver: r
            .resolver
            .as_ref()
            .and_then(|v| addr(c, v, &key("resolver"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerFile {
    servers: Vec<Spanned<RawServer>>,
}

/// Parses a discovery file: `servers = [...]` as in a pool; errors name file:line:col.
pub fn parse_server_list(file: &Path, text: &str) -> Result<Vec<ServerConfig>, ConfigError> {
    let src = Source::new(file, text);
    let raw: RawServerFile =
        toml::from_str(text).map_err(|e| ConfigError::single(src.from_toml(&e)))?;
    let mut c = Collector::new(&src);
    let list = server_list(&mut c, &raw.servers, "discovery file");
    c.finish(list)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::site::parse_site;

    fn pool(d: &str) -> Result<crate::config::site::SiteConfig, ConfigError> {
        parse_site(
            Path::new("/etc/m/s.toml"),
            &format!("[pools.p]\ndiscovery = {d}\n"),
        )
    }

    #[test]
    fn dns_and_file_sources() {
        let cfg = pool("{ dns = \"web.example.\", port = 8080, resolver = \"127.0.0.1:53\", interval = \"5s\" }")
            .unwrap_or_else(|e| panic!("{e}"));
        let p = &cfg.pools[0];
        let d = p.discovery.as_ref().expect("discovery");
        assert_eq!(
            d.source,
            DiscoverySource::Dns {
                name: "web.example.".into(),
                record: RecordKind::AAndAaaa,
                port: 8080,
                resolver: Some("127.0.0.1:53".parse().expect("addr")),
            }
        );
        assert_eq!(d.interval, Duration::from_secs(5));
        assert_eq!(
            p.slow_start, DISCOVERY_SLOW_START,
            "discovered servers ramp up"
        );
        assert!(p.servers.is_empty());
        let cfg = pool("{ file = \"servers.toml\" }").unwrap_or_else(|e| panic!("{e}"));
        let d = cfg.pools[0].discovery.as_ref().expect("discovery");
        assert_eq!(
            d.source,
            DiscoverySource::File {
                path: "/etc/m/servers.toml".into()
            }
        );
    }

    #[test]
    fn mistakes_are_reported() {
        let e = pool("{ dns = \"web.example.\", record = \"SRV\", port = 1 }")
            .expect_err("port with SRV")
            .to_string();
        assert!(e.contains("SRV records carry their own port"), "{e}");
        let e = pool("{ dns = \"web.example.\" }")
            .expect_err("no port")
            .to_string();
        assert!(e.contains("needs `port`"), "{e}");
        let e = pool("{ file = \"f\", port = 1 }")
            .expect_err("port with a file")
            .to_string();
        assert!(e.contains("applies to DNS discovery only"), "{e}");
        let e = parse_site(Path::new("s.toml"), "[pools.p]\nalgorithm = \"random\"\n")
            .expect_err("no servers")
            .to_string();
        assert!(e.contains("s.toml:1:1: pool \"p\""), "{e}");
    }

    #[test]
    fn server_files_are_validated_like_pools() {
        let list = parse_server_list(
            Path::new("f.toml"),
            "servers = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 3 }]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].weight, 3);
        let e = parse_server_list(Path::new("f.toml"), "servers = [\"127.0.0.1\"]\n")
            .expect_err("no port")
            .to_string();
        assert!(e.starts_with("f.toml:1:12:"), "{e}");
    }
}
