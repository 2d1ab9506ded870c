//! A backend pool at run time: picks a server with the shared `balance` engine over an
//! immutable [`Selector`] snapshot (rebuilt and swapped when health or weights change), tracks
//! in-flight requests with RAII leases, and turns request outcomes into passive ejections and
//! breaker transitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::balance::{Maglev, SmoothWeighted, WeightedRandom, least_loaded, p2c_pick, round_robin};
use crate::config::site::{Algorithm, PoolConfig};

use super::affinity::Affinity;
use super::backend::Backend;
use super::breaker::BreakerState;
use super::metrics::{PoolMetrics, SiteMetrics};

/// Weight units per configured unit, so slow start can ramp a weight-1 server in steps.
const WEIGHT_SCALE: u32 = 16;
/// Starting share of a server in slow start.
const SLOW_START_FLOOR: f64 = 0.1;
/// Latency estimate of a server before its first response when the pool knows nothing yet.
const DEFAULT_RTT_NS: f64 = 10e6;

/// The immutable picture a pick works from.
#[derive(Debug)]
struct Selector {
    usable: Vec<bool>,
    weights: Vec<u32>,
    panic: bool,
    swrr: SmoothWeighted,
    random: WeightedRandom,
}

/// Why no server was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PickError {
    /// No server is healthy (or every one was tried).
    NoServer,
    /// Healthy servers exist but all are at `max_connections`, or the pool is at
    /// `max_requests`, or the wait queue is full / timed out.
    Full,
}

/// A pool and its servers.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) cfg: PoolConfig,
    pub(crate) backends: Vec<Arc<Backend>>,
    selector: ArcSwap<Selector>,
    maglev: Option<Maglev>,
    counter: AtomicUsize,
    pub(crate) in_flight: AtomicU64,
    pending: AtomicUsize,
    released: Notify,
    retries_active: AtomicU64,
    epoch: Instant,
    pub(crate) metrics: PoolMetrics,
    /// Cookie affinity, when the pool has it.
    pub(crate) affinity: Option<Affinity>,
}

/// One request's claim on a server: released (in-flight decremented, a waiter woken) on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) pool: Arc<Pool>,
    pub(crate) index: usize,
}

impl Lease {
    pub(crate) fn backend(&self) -> &Backend {
        &self.pool.backends[self.index]
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.backends[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        self.pool.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.pool.pending.load(Ordering::Relaxed) > 0 {
            self.pool.released.notify_one();
        }
    }
}

/// A retry in progress, counted against the pool's retry budget.
#[derive(Debug)]
pub(crate) struct RetryGuard(Arc<Pool>);

impl Drop for RetryGuard {
    fn drop(&mut self) {
        self.0.retries_active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub(crate) fn new(cfg: PoolConfig, metrics: &SiteMetrics) -> Self {
        let backends: Vec<Arc<Backend>> = cfg
            .servers
            .iter()
            .map(|s| {
                let up = cfg.check.is_none() || s.initial_up.unwrap_or(false);
                let m = metrics.backend(&cfg.name, &s.id);
                Arc::new(Backend::new(s.clone(), cfg.breaker, up, DEFAULT_RTT_NS, m))
            })
            .collect();
        let maglev =
            matches!(cfg.algorithm, Algorithm::IpHash | Algorithm::ConsistentHash).then(|| {
                let ids: Vec<(&str, u32)> = cfg
                    .servers
                    .iter()
                    .map(|s| (s.id.as_str(), s.weight))
                    .collect();
                Maglev::new(&ids)
            });
        let pool = Pool {
            selector: ArcSwap::from_pointee(Selector::build(&[], &[], false)),
            maglev,
            counter: AtomicUsize::new(0),
            in_flight: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            released: Notify::new(),
            retries_active: AtomicU64::new(0),
            epoch: Instant::now(),
            metrics: metrics.pool(&cfg.name),
            affinity: cfg
                .affinity
                .as_ref()
                .map(|a| Affinity::new(a, &cfg, &metrics.features)),
            backends,
            cfg,
        };
        pool.refresh();
        pool
    }

    /// Time since the pool was created: the clock of ejections, breakers and slow start.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Whether the hashing algorithms need a key.
    pub(crate) fn needs_hash(&self) -> bool {
        self.maglev.is_some()
    }

    /// Picks a server for a request, skipping `exclude` (servers already tried).
    pub(crate) fn pick(self: &Arc<Self>, hash: u64, exclude: &[usize]) -> Result<Lease, PickError> {
        if self.cfg.max_requests > 0
            && self.in_flight.load(Ordering::Relaxed) >= self.cfg.max_requests as u64
        {
            return Err(PickError::Full);
        }
        let sel = self.selector.load();
        let mut refused: Vec<usize> = Vec::new();
        loop {
            let eligible = |i: usize| {
                let b = &self.backends[i];
                !exclude.contains(&i)
                    && !refused.contains(&i)
                    && !b.is_draining()
                    && b.has_capacity()
                    && (sel.panic || self.live(b))
            };
            let Some(i) = self.choose(&sel, hash, eligible) else {
                return Err(self.why_none(&sel, exclude));
            };
            let b = &self.backends[i];
            if !b.breaker_closed.load(Ordering::Relaxed) && !b.breaker().try_acquire(self.now()) {
                refused.push(i);
                continue;
            }
            b.in_flight.fetch_add(1, Ordering::Relaxed);
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            return Ok(Lease {
                pool: Arc::clone(self),
                index: i,
            });
        }
    }

    /// Takes server `i` if it can have a request now (healthy, not draining, below its
    /// limits, breaker letting it through): the server an affinity cookie names.
    pub(crate) fn pick_server(self: &Arc<Self>, i: usize) -> Option<Lease> {
        let b = self.backends.get(i)?;
        if (self.cfg.max_requests > 0
            && self.in_flight.load(Ordering::Relaxed) >= self.cfg.max_requests as u64)
            || b.is_draining()
            || !b.has_capacity()
            || !self.live(b)
        {
            return None;
        }
        if !b.breaker_closed.load(Ordering::Relaxed) && !b.breaker().try_acquire(self.now()) {
            return None;
        }
        b.in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            pool: Arc::clone(self),
            index: i,
        })
    }

    /// Health that can change between snapshots (ejection expiry, breaker, a check verdict).
    fn live(&self, b: &Backend) -> bool {
        if !b.active_up.load(Ordering::Relaxed) {
            return false;
        }
        if b.ejected_until.load(Ordering::Relaxed) == 0 && b.breaker_closed.load(Ordering::Relaxed)
        {
            return true;
        }
        b.healthy(self.now())
    }

    fn choose(&self, sel: &Selector, hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.backends.len();
        match self.cfg.algorithm {
            Algorithm::RoundRobin => {
                round_robin(self.counter.fetch_add(1, Ordering::Relaxed), n, eligible)
            }
            Algorithm::WeightedRoundRobin => sel
                .swrr
                .pick(self.counter.fetch_add(1, Ordering::Relaxed), &eligible)
                // Servers the snapshot had at weight 0 (down then) are still candidates in panic
                // mode or just after they came back, before the next refresh.
                .or_else(|| round_robin(self.counter.load(Ordering::Relaxed), n, &eligible)),
            Algorithm::LeastConnections => least_loaded(
                n,
                self.counter.fetch_add(1, Ordering::Relaxed),
                eligible,
                |i| {
                    (
                        self.backends[i].in_flight.load(Ordering::Relaxed),
                        sel.weights[i].max(1),
                    )
                },
            ),
            Algorithm::LeastTime => {
                let now = self.now().as_nanos() as u64;
                let decay = self.cfg.latency_decay.as_nanos() as f64;
                p2c_pick(n, (rand::random(), rand::random()), eligible, |i| {
                    let b = &self.backends[i];
                    b.ewma.cost(now, decay, b.in_flight.load(Ordering::Relaxed))
                        / f64::from(sel.weights[i].max(1))
                })
            }
            Algorithm::IpHash | Algorithm::ConsistentHash => {
                let m = self.maglev.as_ref()?;
                match self.cfg.bounded_load {
                    None => m.pick(hash, eligible),
                    Some(c) => {
                        let total = self.in_flight.load(Ordering::Relaxed);
                        m.pick_bounded(hash, c, total, &eligible, |i| {
                            self.backends[i].in_flight.load(Ordering::Relaxed)
                        })
                    }
                }
            }
            Algorithm::Random => sel
                .random
                .draw_eligible(rand::random(), &eligible)
                .or_else(|| round_robin(rand::random::<u32>() as usize, n, &eligible)),
        }
    }

    fn why_none(&self, sel: &Selector, exclude: &[usize]) -> PickError {
        let full = self.backends.iter().enumerate().any(|(i, b)| {
            !exclude.contains(&i)
                && !b.is_draining()
                && (sel.panic || self.live(b))
                && !b.has_capacity()
        });
        if full {
            PickError::Full
        } else {
            PickError::NoServer
        }
    }

    /// [`Pool::pick`], but a request that finds every healthy server at its limit waits (up to
    /// `queue_timeout`, at most `max_pending` waiters) for a slot.
    pub(crate) async fn pick_wait(
        self: &Arc<Self>,
        hash: u64,
        exclude: &[usize],
    ) -> Result<Lease, PickError> {
        match self.pick(hash, exclude) {
            // Boxed: the waiting state is large and rarely needed; every request's future
            // would otherwise carry (and move) it.
            Err(PickError::Full) if self.cfg.max_pending > 0 => {
                Box::pin(self.wait_for_slot(hash, exclude)).await
            }
            r => r,
        }
    }

    async fn wait_for_slot(
        self: &Arc<Self>,
        hash: u64,
        exclude: &[usize],
    ) -> Result<Lease, PickError> {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.cfg.max_pending {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(PickError::Full);
        }
        let deadline = Instant::now() + self.cfg.queue_timeout;
        let result = loop {
            let notified = self.released.notified();
            match self.pick(hash, exclude) {
                Err(PickError::Full) => {}
                r => break r,
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break Err(PickError::Full);
            }
        };
        self.pending.fetch_sub(1, Ordering::Relaxed);
        result
    }

    /// Claims one retry from the budget: `max(min_retries, budget × active requests)` retries
    /// may be in flight at once.
    pub(crate) fn try_retry(self: &Arc<Self>) -> Option<RetryGuard> {
        let r = &self.cfg.retry;
        let active = self.in_flight.load(Ordering::Relaxed) as f64;
        let allowed = (u64::from(r.min_retries)).max((r.budget * active) as u64);
        let now = self.retries_active.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = RetryGuard(Arc::clone(self));
        (now <= allowed).then_some(guard)
    }

    /// Feeds one attempt's outcome to passive detection, the breaker and the latency estimate.
    pub(crate) fn record(&self, index: usize, ok: bool, rtt: Option<Duration>) {
        let b = &self.backends[index];
        b.requests.fetch_add(1, Ordering::Relaxed);
        // Only least-time reads the estimate; the others skip the clock read.
        if let Some(rtt) = rtt.filter(|_| self.cfg.algorithm == Algorithm::LeastTime) {
            let now = self.now().as_nanos() as u64;
            b.ewma.observe(
                rtt.as_nanos() as f64,
                now,
                self.cfg.latency_decay.as_nanos() as f64,
            );
        }
        if ok {
            b.consecutive_failures.store(0, Ordering::Relaxed);
            if !b.breaker_closed.load(Ordering::Relaxed) {
                let closed = b.breaker().on_success() == Some(BreakerState::Closed);
                if closed {
                    b.breaker_closed.store(true, Ordering::Relaxed);
                    tracing::info!(pool = %self.cfg.name, server = %b.cfg.id, "circuit breaker closed");
                    self.refresh();
                }
            }
            return;
        }
        b.failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let fails = b.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut changed = false;
        let p = &self.cfg.passive;
        if p.consecutive_failures > 0
            && fails >= p.consecutive_failures
            && !b.is_ejected(now.as_nanos() as u64)
        {
            changed |= self.eject(index, now);
        }
        if b.breaker().on_failure(now) == Some(BreakerState::Open) {
            b.breaker_closed.store(false, Ordering::Relaxed);
            tracing::warn!(pool = %self.cfg.name, server = %b.cfg.id, "circuit breaker opened");
            changed = true;
        }
        if changed {
            self.refresh();
        }
    }

    /// Ejects a server unless that would put more than `max_ejection_percent` of the pool out.
    fn eject(&self, index: usize, now: Duration) -> bool {
        let p = &self.cfg.passive;
        let now_ns = now.as_nanos() as u64;
        let ejected = self
            .backends
            .iter()
            .filter(|b| b.is_ejected(now_ns))
            .count();
        if (ejected + 1) * 100 > p.max_ejection_percent as usize * self.backends.len() {
            return false;
        }
        let b = &self.backends[index];
        let times = b.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let time = p.base_ejection.saturating_mul(times).min(p.max_ejection);
        b.ejected_until
            .store((now + time).as_nanos() as u64, Ordering::Relaxed);
        b.consecutive_failures.store(0, Ordering::Relaxed);
        b.metrics.ejections.inc();
        tracing::warn!(pool = %self.cfg.name, server = %b.cfg.id, ejected_for = ?time, times, "server ejected");
        true
    }

    /// Sets a server's active-check verdict.
    pub(crate) fn set_active(&self, index: usize, up: bool) {
        self.backends[index].active_up.store(up, Ordering::Relaxed);
        self.refresh();
    }

    /// Drains (or undrains) a server: it takes no new requests; in-flight ones finish.
    pub(crate) fn set_draining(&self, index: usize, draining: bool) {
        let b = &self.backends[index];
        b.draining.store(draining, Ordering::Relaxed);
        if draining {
            b.conns.clear();
        }
        self.refresh();
    }

    /// True when the server may take a request as far as health goes (not capacity).
    pub(crate) fn is_usable(&self, index: usize) -> bool {
        let b = &self.backends[index];
        !b.is_draining() && b.healthy(self.now())
    }

    /// Rebuilds the selector when the usable set or the effective weights changed.
    pub(crate) fn refresh(&self) {
        let now = self.now();
        let old = self.selector.load();
        let usable: Vec<bool> = (0..self.backends.len())
            .map(|i| self.is_usable(i))
            .collect();
        for (i, &u) in usable.iter().enumerate() {
            if u && !old.usable.get(i).copied().unwrap_or(false) {
                self.backends[i]
                    .up_since
                    .store(now.as_nanos() as u64, Ordering::Relaxed);
                self.seed_latency(i, now);
            }
        }
        let weights: Vec<u32> = self
            .backends
            .iter()
            .map(|b| self.effective_weight(b, now))
            .collect();
        let healthy = usable.iter().filter(|&&u| u).count();
        let panic = healthy == 0
            || (healthy as f64) < self.cfg.panic_threshold * self.backends.len() as f64;
        if old.usable == usable && old.weights == weights && old.panic == panic {
            return;
        }
        if panic && !old.panic {
            tracing::warn!(pool = %self.cfg.name, healthy, total = self.backends.len(), "panic mode: balancing over every server");
        }
        self.selector
            .store(Arc::new(Selector::build(&usable, &weights, panic)));
    }

    fn effective_weight(&self, b: &Backend, now: Duration) -> u32 {
        let w = b.cfg.weight * WEIGHT_SCALE;
        let ss = self.cfg.slow_start;
        if ss.is_zero() || w == 0 {
            return w;
        }
        let since = Duration::from_nanos(b.up_since.load(Ordering::Relaxed));
        let frac = (now.saturating_sub(since).as_secs_f64() / ss.as_secs_f64())
            .clamp(SLOW_START_FLOOR, 1.0);
        ((f64::from(w) * frac).round() as u32).max(1)
    }

    /// A server coming (back) up starts from the slowest current estimate in the pool: not 0
    /// (it would be flooded) and not infinity (it would never be tried).
    fn seed_latency(&self, index: usize, now: Duration) {
        let now_ns = now.as_nanos() as u64;
        let decay = self.cfg.latency_decay.as_nanos() as f64;
        let worst = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, b)| b.ewma.estimate(now_ns, decay))
            .fold(0.0f64, f64::max);
        let seed = if worst > 0.0 { worst } else { DEFAULT_RTT_NS };
        self.backends[index].ewma.observe(seed, now_ns, 0.0);
    }
}

impl Selector {
    fn build(usable: &[bool], weights: &[u32], panic: bool) -> Self {
        let masked: Vec<u32> = weights
            .iter()
            .zip(usable)
            .map(|(&w, &u)| if u || panic { w } else { 0 })
            .collect();
        Selector {
            usable: usable.to_vec(),
            weights: weights.to_vec(),
            panic,
            swrr: SmoothWeighted::new(&masked),
            random: WeightedRandom::new(&masked),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::site::parse_site;

    fn pool(toml: &str) -> Arc<Pool> {
        let cfg = parse_site(Path::new("t.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Pool::new(cfg.pools[0].clone(), &SiteMetrics::new()))
    }

    fn picks(p: &Arc<Pool>, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| p.pick(0, &[]).map(|l| l.index).unwrap_or(usize::MAX))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_ramps_a_returning_server() {
        let p = pool(
            "[pools.p]\nalgorithm = \"weighted-round-robin\"\nslow_start = \"10s\"\n\
             servers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\ncheck = { tcp = true, initial = \"up\" }\n",
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        p.refresh();
        assert_eq!(p.selector.load().weights, [16, 16]);
        p.set_active(1, false);
        p.set_active(1, true);
        let w = p.selector.load().weights.clone();
        assert_eq!(w, [16, 2], "10 % of the weight on return");
        let back = picks(&p, 18).iter().filter(|&&i| i == 1).count();
        assert_eq!(back, 2);
        tokio::time::advance(Duration::from_secs(5)).await;
        p.refresh();
        assert_eq!(p.selector.load().weights, [16, 8]);
        tokio::time::advance(Duration::from_secs(5)).await;
        p.refresh();
        assert_eq!(p.selector.load().weights, [16, 16]);
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_grows_with_each_ejection_and_expires() {
        let p = pool(
            "[pools.p]\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
             passive = { consecutive_failures = 2, base_ejection = \"10s\", max_ejection = \"15s\" }\n\
             breaker = { failures = 0 }\n",
        );
        p.record(0, false, None);
        p.record(0, false, None);
        assert!(picks(&p, 4).iter().all(|&i| i == 1), "ejected");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(picks(&p, 4).contains(&0), "back after base_ejection");
        p.record(0, false, None);
        p.record(0, false, None);
        tokio::time::advance(Duration::from_secs(14)).await;
        assert!(
            !picks(&p, 4).contains(&0),
            "second ejection lasts 2 × 10 s, capped at 15 s"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(picks(&p, 4).contains(&0));
    }

    #[tokio::test(start_paused = true)]
    async fn panic_threshold_fails_open() {
        let p = pool(
            "[pools.p]\npanic_threshold = 0.5\n\
             servers = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\ncheck = { tcp = true, initial = \"up\" }\n",
        );
        p.set_active(0, false);
        assert!(!picks(&p, 6).contains(&0), "2 of 3 healthy: no panic");
        p.set_active(1, false);
        let got = picks(&p, 6);
        assert!(
            got.contains(&0) && got.contains(&1),
            "1 of 3 < 50 %: every server: {got:?}"
        );
    }
}
