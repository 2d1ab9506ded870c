//! What `/status` shows of a listener's features and TLS, and the gauges filled in when
//! `/metrics` is scraped.

use serde::Serialize;

use super::{Features, Target};
use crate::site::SiteState;
use crate::site::tls::CertInfo;

#[derive(Debug, Serialize)]
struct RouteStatus {
    name: String,
    pools: Vec<String>,
    requests: u64,
    rate_limited: u64,
    clients_tracked: Option<u64>,
}

#[derive(Debug, Serialize)]
struct CacheStatus {
    entries: u64,
    bytes: u64,
    hits: u64,
    misses: u64,
    revalidated: u64,
    stored: u64,
}

/// One listener's section of `/status`.
#[derive(Debug, Serialize)]
pub(crate) struct FeatureStatus {
    listener: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificates: Option<Vec<CertInfo>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_clients: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<CacheStatus>,
}

impl Features {
    pub(crate) fn status(&self, certificates: Option<Vec<CertInfo>>) -> FeatureStatus {
        let routes = self
            .routes
            .iter()
            .map(|r| RouteStatus {
                name: r.rule.name.clone(),
                pools: match &r.target {
                    Target::Pool(p) => vec![p.cfg.name.clone()],
                    Target::Split(s, _, _) => s.names().to_vec(),
                },
                requests: r.routed.get(),
                rate_limited: r.limited.get(),
                clients_tracked: r.limit.as_ref().map(|l| l.tracked()),
            })
            .collect();
        let m = &self.cache_counts;
        FeatureStatus {
            listener: self.listener.clone(),
            certificates,
            routes,
            default_pool: self.default.as_ref().map(|p| p.cfg.name.clone()),
            rate_limit_clients: self.limit.as_ref().map(|l| l.tracked()),
            compression: self.compress.as_ref().map(|c| c.codings()),
            cache: self.cache.as_ref().map(|c| {
                let (entries, bytes) = c.usage();
                CacheStatus {
                    entries,
                    bytes,
                    hits: m.hit.get(),
                    misses: m.miss.get(),
                    revalidated: m.revalidated.get(),
                    stored: m.stored.get(),
                }
            }),
        }
    }

    /// Sets the cache gauges (called when `/metrics` is scraped).
    pub(crate) fn refresh_gauges(&self) {
        if let Some(c) = &self.cache {
            let (entries, bytes) = c.usage();
            let l = [self.listener.as_str()];
            self.metrics
                .cache_entries
                .with_label_values(&l)
                .set(entries as i64);
            self.metrics
                .cache_bytes
                .with_label_values(&l)
                .set(bytes as i64);
        }
    }
}

/// A TLS-only listener's section.
fn tls_only(listener: &str, certificates: Vec<CertInfo>) -> FeatureStatus {
    FeatureStatus {
        listener: listener.to_string(),
        certificates: Some(certificates),
        routes: Vec::new(),
        default_pool: None,
        rate_limit_clients: None,
        compression: None,
        cache: None,
    }
}

/// The `/status` sections of every listener with TLS or features, in listener order.
pub(crate) fn listener_status(site: &SiteState) -> Vec<FeatureStatus> {
    let mut out = Vec::new();
    for l in site.listeners.load().iter() {
        let certs = l
            .tls
            .as_ref()
            .map(|t| t.resolver.store.load().infos.clone());
        match (&l.features, certs) {
            (Some(f), certs) => out.push(f.status(certs)),
            (None, Some(certs)) => out.push(tls_only(&l.name, certs)),
            (None, None) => {}
        }
    }
    out
}
