//! Per-client token buckets (governor's GCRA) with memory bounded by a moka cache of states:
//! at most `max_clients` clients are tracked, and a client idle long enough for its bucket to
//! have refilled is forgotten (which changes nothing for it). Time is Tokio's clock, so tests
//! run on a paused clock.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use hyper::HeaderMap;

use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::{LimitKey, RateLimitConfig};

/// Tokio's clock for governor, as time since the limiter was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// One GCRA state per client key, in a bounded cache.
#[derive(Debug)]
pub(crate) struct BoundedStore(moka::sync::Cache<u64, Arc<InMemoryState>>);

impl StateStore for BoundedStore {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let state = self.0.get_with(*key, || Arc::new(InMemoryState::default()));
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// A rate limit of one route (or listener).
pub(crate) struct Limiter {
    cfg: RateLimitConfig,
    limiter: RateLimiter<u64, BoundedStore, TokioClock, NoOpMiddleware<Duration>>,
    clock: TokioClock,
    /// The same cache as the limiter's store (moka handles share it), for `/status`.
    clients: moka::sync::Cache<u64, Arc<InMemoryState>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("cfg", &self.cfg).finish()
    }
}

impl Limiter {
    pub(crate) fn new(cfg: &RateLimitConfig) -> Self {
        let period = (cfg.per / cfg.rate).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        // A client idle for the time a full bucket takes to refill is in its initial state:
        // forgetting it loses nothing. The floor keeps tests on a paused clock (where real
        // time passes and Tokio's does not) from seeing states vanish.
        let refill = period
            .saturating_mul(cfg.burst)
            .max(Duration::from_secs(60));
        let clients = moka::sync::Cache::builder()
            .max_capacity(cfg.max_clients)
            .time_to_idle(refill)
            .build();
        let clock = TokioClock(tokio::time::Instant::now());
        Limiter {
            cfg: cfg.clone(),
            limiter: RateLimiter::new(quota, BoundedStore(clients.clone()), clock.clone()),
            clock,
            clients,
        }
    }

    /// `Ok` when the request may go on; else how long until the client may send again.
    pub(crate) fn check(&self, headers: &HeaderMap, ip: IpAddr) -> Result<(), Duration> {
        let key = match &self.cfg.key {
            LimitKey::Header(h) => match headers.get(h) {
                Some(v) => hash_bytes(DEFAULT_SEED ^ 1, v.as_bytes()),
                None => ip_key(ip),
            },
            LimitKey::ClientIp => ip_key(ip),
        };
        // governor's negative outcome says when the next request would conform.
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Clients tracked now.
    pub(crate) fn tracked(&self) -> u64 {
        // moka counts lazily; run its housekeeping so the figure is current.
        self.clients.run_pending_tasks();
        self.clients.entry_count()
    }
}

fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
        IpAddr::V6(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn limiter(rate: u32, burst: u32, max_clients: u64) -> Limiter {
        Limiter::new(&RateLimitConfig {
            rate,
            per: Duration::from_secs(1),
            burst,
            key: LimitKey::ClientIp,
            max_clients,
        })
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_the_configured_rate() {
        let l = limiter(10, 5, 100);
        let h = HeaderMap::new();
        for _ in 0..5 {
            assert!(l.check(&h, ip(1)).is_ok());
        }
        let wait = l.check(&h, ip(1)).expect_err("burst used up");
        assert_eq!(wait, Duration::from_millis(100), "one token per 100 ms");
        assert!(
            l.check(&h, ip(2)).is_ok(),
            "another client has its own bucket"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(l.check(&h, ip(1)).is_ok(), "one token back");
        assert!(l.check(&h, ip(1)).is_err());
        // Over one second at the rate: 10 more requests, not more.
        let mut ok = 0;
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            ok += usize::from(l.check(&h, ip(1)).is_ok());
        }
        assert_eq!(ok, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_under_many_clients() {
        let l = limiter(1, 1, 1000);
        let h = HeaderMap::new();
        for n in 0..20_000 {
            let _ = l.check(&h, ip(n));
        }
        assert!(l.tracked() <= 1000, "tracked {}", l.tracked());
    }
}
