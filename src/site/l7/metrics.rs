//! Metric families of the listener features (routing, splits, rate limits, cache,
//! compression, affinity, TLS), registered in the site's registry. Handles used per request
//! are resolved when the site starts.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The feature families of one site.
#[derive(Debug, Clone)]
pub(crate) struct FeatureMetrics {
    pub(crate) routed: IntCounterVec,
    pub(crate) split: IntCounterVec,
    pub(crate) limited: IntCounterVec,
    pub(crate) cache: IntCounterVec,
    pub(crate) cache_bytes: IntGaugeVec,
    pub(crate) cache_entries: IntGaugeVec,
    pub(crate) compressed: IntCounterVec,
    pub(crate) affinity: IntCounterVec,
    pub(crate) handshakes: IntCounterVec,
    pub(crate) reloads: IntCounterVec,
    pub(crate) cert_expiry: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Names and labels are constants of this file; a failure is a programming error caught by
    // the unit test below.
    let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("unique metric name");
    m
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("unique metric name");
    m
}

impl FeatureMetrics {
    pub(crate) fn new(r: &Registry) -> Self {
        FeatureMetrics {
            routed: counter(
                r,
                "meridian_site_routed_total",
                "Requests by the route that matched (\"default\": no rule, default pool; \"none\": 404)",
                &["listener", "route"],
            ),
            split: counter(
                r,
                "meridian_site_split_total",
                "Requests of split routes by the variant (pool) they went to",
                &["listener", "route", "pool"],
            ),
            limited: counter(
                r,
                "meridian_site_rate_limited_total",
                "Requests answered 429 by a rate limit",
                &["listener", "route"],
            ),
            cache: counter(
                r,
                "meridian_site_cache_total",
                "Cache lookups by result: hit, miss, revalidated, stale (replaced), bypass; stored",
                &["listener", "result"],
            ),
            cache_bytes: gauge(
                r,
                "meridian_site_cache_bytes",
                "Bytes held by the response cache",
                &["listener"],
            ),
            cache_entries: gauge(
                r,
                "meridian_site_cache_entries",
                "Responses held by the response cache",
                &["listener"],
            ),
            compressed: counter(
                r,
                "meridian_site_compressed_total",
                "Responses compressed by the balancer, by coding",
                &["listener", "encoding"],
            ),
            affinity: counter(
                r,
                "meridian_site_affinity_total",
                "Cookie affinity: kept (went to the cookie's server), set (new or moved client)",
                &["pool", "result"],
            ),
            handshakes: counter(
                r,
                "meridian_site_tls_handshakes_total",
                "TLS handshakes by result (ok, error, timeout) and protocol (h2, http/1.1)",
                &["listener", "result", "alpn"],
            ),
            reloads: counter(
                r,
                "meridian_site_tls_reloads_total",
                "Certificate reloads (SIGHUP) by result",
                &["result"],
            ),
            cert_expiry: gauge(
                r,
                "meridian_site_tls_certificate_expiry_seconds",
                "Expiry of each loaded certificate, Unix time",
                &["listener", "file"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_register() {
        let r = Registry::new();
        let m = FeatureMetrics::new(&r);
        m.cache.with_label_values(&["l", "hit"]).inc();
        m.handshakes.with_label_values(&["l", "ok", "h2"]).inc();
        assert_eq!(r.gather().len(), 2);
    }
}
