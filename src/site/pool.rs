//! A backend pool at run time: picks a server with the shared `balance` engine over an
//! immutable [`Members`] snapshot (servers, hash table and selector, rebuilt and swapped when
//! membership, health or weights change), tracks in-flight requests with RAII leases, and turns
//! request outcomes into passive ejections and breaker transitions.
//!
//! Membership changes at run time (admin API, discovery, reload: `members.rs`). A server is
//! named by its `key`, never by its position, so a lease, a retry's list of servers already
//! tried, and an outcome reported late all stay right while the list changes under them.

mod members;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::balance::{Maglev, SmoothWeighted, WeightedRandom, least_loaded, p2c_pick, round_robin};
use crate::config::site::{Algorithm, PoolConfig};

use super::affinity::Affinity;
use super::backend::{Backend, Origin};
use super::breaker::BreakerState;
use super::metrics::{PoolMetrics, SiteMetrics};
use super::tls::BackendTls;

pub(crate) use members::MemberError;

/// Weight units per configured unit, so slow start can ramp a weight-1 server in steps.
const WEIGHT_SCALE: u32 = 16;
/// Starting share of a server in slow start.
const SLOW_START_FLOOR: f64 = 0.1;
/// Latency estimate of a server before its first response when the pool knows nothing yet.
const DEFAULT_RTT_NS: f64 = 10e6;

/// The immutable picture a pick works from: the servers (sorted by key), the consistent-hash
/// table over them, and what the last refresh found about their health and weights.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) backends: Vec<Arc<Backend>>,
    maglev: Option<Arc<Maglev>>,
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
    members: ArcSwap<Members>,
    /// Serialises writers of `members` (refresh, membership changes), so none is lost.
    edit: Mutex<()>,
    next_key: AtomicUsize,
    counter: AtomicUsize,
    pub(crate) in_flight: AtomicU64,
    pending: AtomicUsize,
    released: Notify,
    retries_active: AtomicU64,
    epoch: Instant,
    site_metrics: SiteMetrics,
    pub(crate) metrics: PoolMetrics,
    /// Cookie affinity, when the pool has it.
    pub(crate) affinity: Option<Affinity>,
    /// TLS towards the servers (every member, whenever it joined), when the pool has it.
    backend_tls: std::sync::OnceLock<BackendTls>,
    /// Set while the site runs: new members get their checks started.
    running: AtomicBool,
    /// Pool-level tasks (discovery), stopped with the pool.
    tasks: Mutex<Vec<AbortHandle>>,
}

/// One request's (or L4 connection's) claim on a server: released (in-flight decremented, a
/// waiter woken) on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) pool: Arc<Pool>,
    /// The server's key.
    pub(crate) index: usize,
    backend: Arc<Backend>,
}

impl Lease {
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::Relaxed);
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
        Self::with_backends(cfg, metrics, Vec::new())
    }

    /// A pool whose members are `carried` (servers kept from a pool this one replaces, with
    /// their connections, health and counters) followed by the configured servers not among
    /// them.
    pub(crate) fn with_backends(
        cfg: PoolConfig,
        metrics: &SiteMetrics,
        carried: Vec<Arc<Backend>>,
    ) -> Self {
        let next_key = carried.iter().map(|b| b.key + 1).max().unwrap_or(0);
        let pool = Pool {
            members: ArcSwap::from_pointee(Members::empty()),
            edit: Mutex::new(()),
            next_key: AtomicUsize::new(next_key),
            counter: AtomicUsize::new(0),
            in_flight: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            released: Notify::new(),
            retries_active: AtomicU64::new(0),
            epoch: Instant::now(),
            site_metrics: metrics.clone(),
            metrics: metrics.pool(&cfg.name),
            affinity: cfg
                .affinity
                .as_ref()
                .map(|a| Affinity::new(a, &cfg.name, &metrics.features)),
            backend_tls: std::sync::OnceLock::new(),
            running: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            cfg,
        };
        let mut backends = carried;
        for s in &pool.cfg.servers {
            if !backends.iter().any(|b| b.cfg.id == s.id) {
                backends.push(pool.make_backend(s.clone(), Origin::Config));
            }
        }
        backends.sort_by_key(|b| b.key);
        pool.publish(backends, None);
        pool
    }

    /// Time since the pool was created: the clock of ejections, breakers and slow start.
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Closes backend connections that went stale while idle (see `ConnPool::sweep`).
    pub(crate) fn sweep_idle(&self) {
        let max_idle = self.cfg.timeouts.idle;
        for b in &self.members.load().backends {
            b.conns.sweep(max_idle);
        }
    }

    /// The current members.
    pub(crate) fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Whether the hashing algorithms need a key.
    pub(crate) fn needs_hash(&self) -> bool {
        matches!(
            self.cfg.algorithm,
            Algorithm::IpHash | Algorithm::ConsistentHash
        )
    }

    /// Picks a server for a request, skipping the servers whose keys are in `exclude` (those
    /// already tried).
    pub(crate) fn pick(self: &Arc<Self>, hash: u64, exclude: &[usize]) -> Result<Lease, PickError> {
        if self.cfg.max_requests > 0
            && self.in_flight.load(Ordering::Relaxed) >= self.cfg.max_requests as u64
        {
            return Err(PickError::Full);
        }
        let m = self.members.load();
        let mut refused: Vec<usize> = Vec::new();
        loop {
            let eligible = |i: usize| {
                let b = &m.backends[i];
                !exclude.contains(&b.key)
                    && !refused.contains(&i)
                    && !b.is_draining()
                    && b.has_capacity()
                    && (m.panic || self.live(b))
            };
            let Some(i) = self.choose(&m, hash, eligible) else {
                return Err(self.why_none(&m, exclude));
            };
            let b = &m.backends[i];
            if !b.breaker_closed.load(Ordering::Relaxed) && !b.breaker().try_acquire(self.now()) {
                refused.push(i);
                continue;
            }
            b.in_flight.fetch_add(1, Ordering::Relaxed);
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            return Ok(Lease {
                pool: Arc::clone(self),
                index: b.key,
                backend: Arc::clone(b),
            });
        }
    }

    /// Takes the server `wanted` picks out if it can have a request now (healthy, not
    /// draining, below its limits, breaker letting it through): the server an affinity cookie
    /// names.
    pub(crate) fn pick_server(
        self: &Arc<Self>,
        wanted: impl Fn(&Backend) -> bool,
    ) -> Option<Lease> {
        let m = self.members.load();
        let b = m.backends.iter().find(|b| wanted(b))?;
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
            index: b.key,
            backend: Arc::clone(b),
        })
    }

    /// Sets TLS towards the servers: on every member now and on every one that joins later.
    pub(crate) fn set_backend_tls(&self, tls: BackendTls) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        for b in &self.members.load().backends {
            b.conns.set_tls(tls.clone());
        }
        let _ = self.backend_tls.set(tls);
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

    fn choose(&self, m: &Members, hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let n = m.backends.len();
        match self.cfg.algorithm {
            Algorithm::RoundRobin => {
                round_robin(self.counter.fetch_add(1, Ordering::Relaxed), n, eligible)
            }
            Algorithm::WeightedRoundRobin => m
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
                        m.backends[i].in_flight.load(Ordering::Relaxed),
                        m.weights[i].max(1),
                    )
                },
            ),
            Algorithm::LeastTime => {
                let now = self.now().as_nanos() as u64;
                let decay = self.cfg.latency_decay.as_nanos() as f64;
                p2c_pick(n, (rand::random(), rand::random()), eligible, |i| {
                    let b = &m.backends[i];
                    b.ewma.cost(now, decay, b.in_flight.load(Ordering::Relaxed))
                        / f64::from(m.weights[i].max(1))
                })
            }
            Algorithm::IpHash | Algorithm::ConsistentHash => {
                let t = m.maglev.as_ref()?;
                match self.cfg.bounded_load {
                    None => t.pick(hash, eligible),
                    Some(c) => {
                        let total = self.in_flight.load(Ordering::Relaxed);
                        t.pick_bounded(hash, c, total, &eligible, |i| {
                            m.backends[i].in_flight.load(Ordering::Relaxed)
                        })
                    }
                }
            }
            Algorithm::Random => m
                .random
                .draw_eligible(rand::random(), &eligible)
                .or_else(|| round_robin(rand::random::<u32>() as usize, n, &eligible)),
        }
    }

    fn why_none(&self, m: &Members, exclude: &[usize]) -> PickError {
        let full = m.backends.iter().any(|b| {
            !exclude.contains(&b.key)
                && !b.is_draining()
                && (m.panic || self.live(b))
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
    /// `key` names the server; a server that left the pool meanwhile is ignored. `sent` is when
    /// the attempt started, for a response time.
    pub(crate) fn record(&self, key: usize, ok: bool, sent: Option<Instant>) {
        let m = self.members.load();
        let Some(b) = m.find(key) else { return };
        b.requests.fetch_add(1, Ordering::Relaxed);
        // Only least-time reads the estimate; the others skip the clock read.
        if self.cfg.algorithm == Algorithm::LeastTime
            && let Some(sent) = sent
        {
            let rtt = sent.elapsed();
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
            changed |= self.eject(&m, b, now);
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
    fn eject(&self, m: &Members, b: &Backend, now: Duration) -> bool {
        let p = &self.cfg.passive;
        let now_ns = now.as_nanos() as u64;
        let ejected = m.backends.iter().filter(|b| b.is_ejected(now_ns)).count();
        if (ejected + 1) * 100 > p.max_ejection_percent as usize * m.backends.len() {
            return false;
        }
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
    pub(crate) fn set_active(&self, b: &Backend, up: bool) {
        b.active_up.store(up, Ordering::Relaxed);
        self.refresh();
    }

    /// True when the server may take a request as far as health goes (not capacity).
    pub(crate) fn is_usable(&self, b: &Backend) -> bool {
        !b.is_draining() && b.healthy(self.now())
    }

    /// Rebuilds the selector when the usable set or the effective weights changed, and drops
    /// removed servers whose last lease ended.
    pub(crate) fn refresh(&self) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.members.load();
        if old
            .backends
            .iter()
            .any(|b| b.is_removed() && b.in_flight.load(Ordering::Relaxed) == 0)
        {
            let kept = self.reap(&old.backends);
            self.publish(kept, None);
            return;
        }
        let (usable, weights, panic) = self.health(&old.backends);
        if old.usable == usable && old.weights == weights && old.panic == panic {
            return;
        }
        if panic && !old.panic {
            let healthy = usable.iter().filter(|&&u| u).count();
            tracing::warn!(pool = %self.cfg.name, healthy, total = usable.len(), "panic mode: balancing over every server");
        }
        self.members.store(Arc::new(Members::build(
            old.backends.clone(),
            old.maglev.clone(),
            usable,
            weights,
            panic,
        )));
    }

    /// Usable flags, effective weights and panic mode of `backends` now; starts slow start and
    /// seeds the latency estimate of each server that became usable.
    fn health(&self, backends: &[Arc<Backend>]) -> (Vec<bool>, Vec<u32>, bool) {
        let now = self.now();
        let usable: Vec<bool> = backends.iter().map(|b| self.is_usable(b)).collect();
        for (b, &u) in backends.iter().zip(&usable) {
            if u && !b.was_usable.swap(true, Ordering::Relaxed) {
                b.up_since.store(now.as_nanos() as u64, Ordering::Relaxed);
                self.seed_latency(backends, b, now);
            } else if !u {
                b.was_usable.store(false, Ordering::Relaxed);
            }
        }
        let weights: Vec<u32> = backends
            .iter()
            .map(|b| self.effective_weight(b, now))
            .collect();
        let counted = backends.iter().filter(|b| !b.is_removed()).count();
        let healthy = usable.iter().filter(|&&u| u).count();
        let panic = healthy == 0 || (healthy as f64) < self.cfg.panic_threshold * counted as f64;
        (usable, weights, panic)
    }

    fn effective_weight(&self, b: &Backend, now: Duration) -> u32 {
        let w = b.weight() * WEIGHT_SCALE;
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
    fn seed_latency(&self, backends: &[Arc<Backend>], me: &Backend, now: Duration) {
        let now_ns = now.as_nanos() as u64;
        let decay = self.cfg.latency_decay.as_nanos() as f64;
        let worst = backends
            .iter()
            .filter(|b| b.key != me.key)
            .map(|b| b.ewma.estimate(now_ns, decay))
            .fold(0.0f64, f64::max);
        let seed = if worst > 0.0 { worst } else { DEFAULT_RTT_NS };
        me.ewma.observe(seed, now_ns, 0.0);
    }
}

impl Members {
    fn empty() -> Self {
        Members::build(Vec::new(), None, Vec::new(), Vec::new(), false)
    }

    fn build(
        backends: Vec<Arc<Backend>>,
        maglev: Option<Arc<Maglev>>,
        usable: Vec<bool>,
        weights: Vec<u32>,
        panic: bool,
    ) -> Self {
        let masked: Vec<u32> = weights
            .iter()
            .zip(&usable)
            .map(|(&w, &u)| if u || panic { w } else { 0 })
            .collect();
        Members {
            swrr: SmoothWeighted::new(&masked),
            random: WeightedRandom::new(&masked),
            backends,
            maglev,
            usable,
            weights,
            panic,
        }
    }

    /// The server with this key.
    pub(crate) fn find(&self, key: usize) -> Option<&Arc<Backend>> {
        self.backends
            .binary_search_by_key(&key, |b| b.key)
            .ok()
            .map(|i| &self.backends[i])
    }

    /// The server with this id that has not been removed.
    pub(crate) fn by_id(&self, id: &str) -> Option<&Arc<Backend>> {
        self.backends
            .iter()
            .find(|b| b.cfg.id == id && !b.is_removed())
    }
}

#[cfg(test)]
mod tests;
