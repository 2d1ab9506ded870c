//! Prometheus metrics of the site balancer. Counters on the request path are resolved once per
//! server and class, so counting a request is one atomic add; gauges that mirror state
//! (in-flight, up, breaker) are filled in when `/metrics` is scraped.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric family of one site instance, in its own registry (so tests can run several).
#[derive(Debug, Clone)]
pub struct SiteMetrics {
    registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) active: IntGaugeVec,
    pub(crate) up: IntGaugeVec,
    pub(crate) breaker: IntGaugeVec,
    pub(crate) idle_connections: IntGaugeVec,
    pub(crate) retries: IntCounterVec,
    pub(crate) ejections: IntCounterVec,
    pub(crate) rejected: IntCounterVec,
    /// Listener features (routing, limits, cache, compression, affinity, TLS).
    pub(crate) features: super::l7::metrics::FeatureMetrics,
}

/// Handles for one server, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct BackendMetrics {
    /// Responses by class: 1xx..5xx, then errors answered by the balancer (502/504).
    pub(crate) by_class: [IntCounter; 6],
    pub(crate) ejections: IntCounter,
}

/// Handles for one pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolMetrics {
    pub(crate) duration: Histogram,
    pub(crate) retries: IntCounter,
    pub(crate) rejected: IntCounter,
}

fn make<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: prometheus::Result<T>,
) -> T {
    // Names and labels are constants of this file; a failure is a programming error caught by
    // the unit test below.
    let m = m.expect("valid metric definition");
    r.register(Box::new(m.clone())).expect("unique metric name");
    m
}

impl SiteMetrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let r = Registry::new();
        let requests = make(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "meridian_site_requests_total",
                    "Responses sent, by pool, server and status class",
                ),
                &["pool", "server", "class"],
            ),
        );
        let duration = make(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "meridian_site_request_duration_seconds",
                    "Time from request to response head, by pool",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ]),
                &["pool"],
            ),
        );
        let active = make(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "meridian_site_active_requests",
                    "Requests in flight, by pool and server",
                ),
                &["pool", "server"],
            ),
        );
        let up = make(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "meridian_site_server_up",
                    "1 when the server may take new requests",
                ),
                &["pool", "server"],
            ),
        );
        let breaker = make(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "meridian_site_breaker_state",
                    "Circuit breaker: 0 closed, 1 open, 2 half-open",
                ),
                &["pool", "server"],
            ),
        );
        let idle_connections = make(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "meridian_site_idle_connections",
                    "Idle keep-alive connections to the server, held for the next request",
                ),
                &["pool", "server"],
            ),
        );
        let retries = make(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "meridian_site_retries_total",
                    "Requests sent again to another server",
                ),
                &["pool"],
            ),
        );
        let ejections = make(
            &r,
            IntCounterVec::new(
                Opts::new("meridian_site_ejections_total", "Passive outlier ejections"),
                &["pool", "server"],
            ),
        );
        let rejected = make(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "meridian_site_rejected_total",
                    "Requests answered 503 at once (no server, pool limits)",
                ),
                &["pool"],
            ),
        );
        SiteMetrics {
            features: super::l7::metrics::FeatureMetrics::new(&r),
            registry: r,
            requests,
            duration,
            active,
            up,
            breaker,
            idle_connections,
            retries,
            ejections,
            rejected,
        }
    }

    pub(crate) fn backend(&self, pool: &str, server: &str) -> BackendMetrics {
        let c = |class: &str| self.requests.with_label_values(&[pool, server, class]);
        BackendMetrics {
            by_class: [c("1xx"), c("2xx"), c("3xx"), c("4xx"), c("5xx"), c("error")],
            ejections: self.ejections.with_label_values(&[pool, server]),
        }
    }

    pub(crate) fn pool(&self, pool: &str) -> PoolMetrics {
        PoolMetrics {
            duration: self.duration.with_label_values(&[pool]),
            retries: self.retries.with_label_values(&[pool]),
            rejected: self.rejected.with_label_values(&[pool]),
        }
    }

    /// The registry, for families defined beside other parts of the site (L4, discovery).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for SiteMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl BackendMetrics {
    pub(crate) fn count_status(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.by_class[i].inc();
    }

    pub(crate) fn count_error(&self) {
        self.by_class[5].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_register_and_encode() {
        let m = SiteMetrics::new();
        m.backend("web", "a").count_status(200);
        m.pool("web").retries.inc();
        let text = m.encode();
        assert!(
            text.contains(
                "meridian_site_requests_total{class=\"2xx\",pool=\"web\",server=\"a\"} 1"
            )
        );
        assert!(text.contains("meridian_site_retries_total{pool=\"web\"} 1"));
    }
}
