//! One backend server at run time: counters and flags read by every pick (atomics, no lock),
//! and the slower state (breaker) behind a lock taken only while the breaker is not closed or a
//! request failed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::balance::PeakEwma;
use crate::config::site::{BreakerConfig, ServerConfig};

use super::breaker::{Breaker, BreakerState};
use super::metrics::BackendMetrics;
use super::upstream::ConnPool;

/// A backend's run-time state.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) cfg: ServerConfig,
    pub(crate) in_flight: AtomicU64,
    /// Verdict of the active check (true when the pool has none).
    pub(crate) active_up: AtomicBool,
    pub(crate) draining: AtomicBool,
    /// Pool time (ns) until which passive detection keeps it out; 0 = not ejected.
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    pub(crate) consecutive_failures: AtomicU32,
    /// Mirror of `breaker.state == Closed`, so the common case takes no lock.
    pub(crate) breaker_closed: AtomicBool,
    breaker: Mutex<Breaker>,
    /// Pool time (ns) when it last became usable, for slow start.
    pub(crate) up_since: AtomicU64,
    pub(crate) ewma: PeakEwma,
    pub(crate) conns: Arc<ConnPool>,
    pub(crate) metrics: BackendMetrics,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
}

impl Backend {
    pub(crate) fn new(
        cfg: ServerConfig,
        breaker: BreakerConfig,
        initial_up: bool,
        initial_rtt_ns: f64,
        metrics: BackendMetrics,
    ) -> Self {
        Backend {
            conns: Arc::new(ConnPool::new(cfg.address)),
            draining: AtomicBool::new(cfg.drain),
            cfg,
            in_flight: AtomicU64::new(0),
            active_up: AtomicBool::new(initial_up),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            breaker_closed: AtomicBool::new(true),
            breaker: Mutex::new(Breaker::new(breaker)),
            up_since: AtomicU64::new(0),
            ewma: PeakEwma::new(initial_rtt_ns, 0),
            metrics,
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn breaker_state(&self, now: Duration) -> BreakerState {
        if self.breaker_closed.load(Ordering::Relaxed) {
            BreakerState::Closed
        } else {
            self.breaker().state(now)
        }
    }

    pub(crate) fn is_ejected(&self, now_ns: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_ns < until
    }

    /// Healthy as far as checks, ejection and breaker go (ignores draining and capacity).
    pub(crate) fn healthy(&self, now: Duration) -> bool {
        self.active_up.load(Ordering::Relaxed)
            && !self.is_ejected(now.as_nanos() as u64)
            && (self.breaker_closed.load(Ordering::Relaxed) || self.breaker().would_allow(now))
    }

    pub(crate) fn has_capacity(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < u64::from(self.cfg.max_connections)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
