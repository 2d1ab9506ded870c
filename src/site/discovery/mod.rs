//! Service discovery for auto-scaling: a pool takes servers from a DNS name (A/AAAA or SRV,
//! `dns.rs`) or a watched file (`file.rs`), re-read on an interval (sooner when a DNS TTL runs
//! out). Each refresh is a whole set, applied with [`Pool::sync`]: additions enter (down until
//! checked when the pool has checks, then with slow start), removals drain, and servers of the
//! site file or the admin API are never touched.
//!
//! A failed refresh, or one that finds no server at all, changes nothing: the last good set
//! stays, and the failure is logged and counted (`meridian_site_discovery_refreshes_total`).

mod dns;
mod file;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::backend::Origin;
use super::pool::Pool;
use crate::config::site::{DiscoveryConfig, DiscoverySource, ServerConfig};

/// DNS answers with a TTL shorter than this are refreshed this often, not more.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// What one refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) servers: Vec<ServerConfig>,
    /// How long the answer may be used (a DNS TTL).
    pub(crate) ttl: Option<Duration>,
}

/// Why a refresh found nothing usable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscoveryError {
    #[error("{0}")]
    Dns(#[from] crate::dns::client::ClientError),
    #[error("no resolver: the site file sets none and /etc/resolv.conf has no nameserver")]
    NoResolver,
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}")]
    File(#[from] crate::config::ConfigError),
}

/// A source of servers (one implementation per file).
#[async_trait::async_trait]
pub(crate) trait Discovery: Send + std::fmt::Debug {
    /// The current set; `Ok(None)` when nothing changed since the last call.
    async fn discover(&mut self) -> Result<Option<Found>, DiscoveryError>;
}

/// Counters of every pool's discovery, registered once per site.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryMetrics {
    refreshes: IntCounterVec,
    servers: IntGaugeVec,
}

impl DiscoveryMetrics {
    pub(crate) fn new(r: &Registry) -> prometheus::Result<Self> {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "meridian_site_discovery_refreshes_total",
                "Discovery refreshes by pool and result (ok, unchanged, empty, error)",
            ),
            &["pool", "result"],
        )?;
        let servers = IntGaugeVec::new(
            Opts::new(
                "meridian_site_discovery_servers",
                "Servers of the last good discovery answer, by pool",
            ),
            &["pool"],
        )?;
        r.register(Box::new(refreshes.clone()))?;
        r.register(Box::new(servers.clone()))?;
        Ok(DiscoveryMetrics { refreshes, servers })
    }
}

/// Starts the pool's discovery, if it has one (stopped with the pool).
pub(crate) fn start(pool: &Arc<Pool>, m: &DiscoveryMetrics) {
    let Some(cfg) = pool.cfg.discovery.clone() else {
        return;
    };
    let initial_up = pool.cfg.check.as_ref().is_none_or(|c| c.initial_up);
    let source: Box<dyn Discovery> = match &cfg.source {
        DiscoverySource::Dns { .. } => Box::new(dns::DnsDiscovery::new(&cfg, initial_up)),
        DiscoverySource::File { path } => Box::new(file::FileDiscovery::new(path.clone())),
    };
    pool.spawn_task(run(Arc::clone(pool), source, cfg, m.clone()));
}

async fn run(
    pool: Arc<Pool>,
    mut d: Box<dyn Discovery>,
    cfg: DiscoveryConfig,
    m: DiscoveryMetrics,
) {
    let name = pool.cfg.name.clone();
    let count = |result: &str| m.refreshes.with_label_values(&[&name, result]).inc();
    loop {
        let next = match d.discover().await {
            Ok(None) => {
                count("unchanged");
                cfg.interval
            }
            Ok(Some(found)) if found.servers.is_empty() => {
                count("empty");
                tracing::warn!(pool = %name, source = ?d, "discovery found no server; keeping the last good set");
                cfg.interval
            }
            Ok(Some(found)) => {
                count("ok");
                m.servers
                    .with_label_values(&[&name])
                    .set(found.servers.len() as i64);
                pool.sync(Origin::Discovery, &found.servers);
                found
                    .ttl
                    .map_or(cfg.interval, |t| {
                        t.clamp(MIN_REFRESH, cfg.interval.max(MIN_REFRESH))
                    })
                    .min(cfg.interval)
            }
            Err(e) => {
                count("error");
                tracing::warn!(pool = %name, error = %e, "discovery failed; keeping the last good set");
                cfg.interval
            }
        };
        tokio::time::sleep(next).await;
    }
}
