//! Listener features on top of plain forwarding: content routing, traffic splits, rate
//! limits, the response cache and compression. A listener with none of them has no
//! [`Features`] and its requests never come here.
//!
//! # Order of work per request
//!
//! ```text
//! route (first matching rule, else default pool, else 404)
//!   → rate limit (the route's, else the listener's) → 429 + Retry-After
//!   → split variant (cookie / hashed id) → path prefix rewrite
//!   → cache lookup (GET/HEAD): fresh hit answers; stale entry → conditional request
//!   → proxy (affinity, retries) → cache store / refresh → compression → split cookie
//! ```

pub(crate) mod cache;
pub(crate) mod compress;
pub(crate) mod cookie;
pub(crate) mod freshness;
pub(crate) mod metrics;
mod pipeline;
pub(crate) mod ratelimit;
pub(crate) mod route;
pub(crate) mod split;
mod status;

use std::sync::Arc;

use prometheus::IntCounter;

pub(crate) use status::{FeatureStatus, listener_status};

use self::cache::Cache;
use self::compress::Compressor;
use self::metrics::FeatureMetrics;
use self::ratelimit::Limiter;
use self::split::Split;
use super::pool::Pool;
use crate::config::site::{Encoding, HttpFeatures, RouteAction, RouteRule};

/// Where a route sends requests.
#[derive(Debug)]
pub(crate) enum Target {
    Pool(Arc<Pool>),
    Split(Split, Vec<Arc<Pool>>, Vec<IntCounter>),
}

/// A compiled rule with its run-time state.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) rule: RouteRule,
    pub(crate) target: Target,
    pub(crate) limit: Option<Limiter>,
    pub(crate) routed: IntCounter,
    pub(crate) limited: IntCounter,
}

/// Counters of the cache results, resolved once.
#[derive(Debug)]
pub(crate) struct CacheCounters {
    pub(crate) hit: IntCounter,
    pub(crate) miss: IntCounter,
    pub(crate) revalidated: IntCounter,
    pub(crate) stale: IntCounter,
    pub(crate) bypass: IntCounter,
    pub(crate) stored: IntCounter,
}

/// One listener's features.
#[derive(Debug)]
pub(crate) struct Features {
    pub(crate) listener: String,
    pub(crate) routes: Vec<Route>,
    /// Rules alone, in order, for matching.
    rules: Vec<RouteRule>,
    pub(crate) default: Option<Arc<Pool>>,
    pub(crate) limit: Option<Limiter>,
    pub(crate) compress: Option<Compressor>,
    pub(crate) cache: Option<Arc<Cache>>,
    default_routed: IntCounter,
    default_limited: IntCounter,
    unrouted: IntCounter,
    cache_counts: CacheCounters,
    /// Compressed answers by coding, in the order of `Encoding::ALL`.
    compressed: [IntCounter; 3],
    metrics: FeatureMetrics,
}

impl Features {
    /// Builds a listener's features over the site's pools (no I/O).
    pub(crate) fn new(
        listener: String,
        cfg: &HttpFeatures,
        default_pool: Option<usize>,
        pools: &[Arc<Pool>],
        m: &FeatureMetrics,
    ) -> Self {
        let routes = cfg
            .routes
            .iter()
            .map(|r| {
                let target = match &r.action {
                    RouteAction::Pool(p) => Target::Pool(Arc::clone(&pools[*p])),
                    RouteAction::Split(s) => {
                        let ps: Vec<Arc<Pool>> =
                            s.variants.iter().map(|v| Arc::clone(&pools[v.0])).collect();
                        let names: Vec<String> = ps.iter().map(|p| p.cfg.name.clone()).collect();
                        let counts = names
                            .iter()
                            .map(|n| m.split.with_label_values(&[&listener, &r.name, n]))
                            .collect();
                        Target::Split(Split::new(s.clone(), names), ps, counts)
                    }
                };
                Route {
                    target,
                    limit: r.rate_limit.as_ref().map(Limiter::new),
                    routed: m.routed.with_label_values(&[&listener, &r.name]),
                    limited: m.limited.with_label_values(&[&listener, &r.name]),
                    rule: r.clone(),
                }
            })
            .collect();
        let c = |result: &str| m.cache.with_label_values(&[&listener, result]);
        Features {
            rules: cfg.routes.clone(),
            routes,
            default: default_pool.map(|p| Arc::clone(&pools[p])),
            limit: cfg.rate_limit.as_ref().map(Limiter::new),
            compress: cfg.compression.clone().map(Compressor::new),
            cache: cfg.cache.map(|c| Arc::new(Cache::new(c))),
            default_routed: m.routed.with_label_values(&[&listener, "default"]),
            default_limited: m.limited.with_label_values(&[&listener, "default"]),
            unrouted: m.routed.with_label_values(&[&listener, "none"]),
            cache_counts: CacheCounters {
                hit: c("hit"),
                miss: c("miss"),
                revalidated: c("revalidated"),
                stale: c("stale"),
                bypass: c("bypass"),
                stored: c("stored"),
            },
            compressed: Encoding::ALL.map(|e| {
                m.compressed
                    .with_label_values(&[listener.as_str(), e.as_str()])
            }),
            metrics: m.clone(),
            listener,
        }
    }
}
