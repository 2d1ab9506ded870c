//! One backend server at run time: counters and flags read by every pick (atomics, no lock),
//! and the slower state (breaker) behind a lock taken only while the breaker is not closed or a
//! request failed.
//!
//! Weight, connection limit and administrative state can change at run time (admin API,
//! discovery, reload) without replacing the server, so its connections, health and counters
//! stay; only the address and id are fixed for its life.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::balance::PeakEwma;
use crate::config::site::{BreakerConfig, ServerConfig};

use super::breaker::{Breaker, BreakerState};
use super::metrics::BackendMetrics;
use super::upstream::ConnPool;

/// Administrative state of a server, set by the site file, the admin API or discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Takes traffic when healthy.
    Ready,
    /// Takes no new requests or connections; those in flight finish. Checks go on.
    Drain,
    /// Like `Drain`, and active checks pause (the server is being worked on).
    Maintenance,
}

impl ServerState {
    /// The name used by the admin API and `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Ready => "ready",
            ServerState::Drain => "drain",
            ServerState::Maintenance => "maintenance",
        }
    }

    /// Parses an admin API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ready" => Some(ServerState::Ready),
            "drain" | "draining" => Some(ServerState::Drain),
            "maintenance" | "maint" => Some(ServerState::Maintenance),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => ServerState::Drain,
            2 => ServerState::Maintenance,
            _ => ServerState::Ready,
        }
    }
}

/// Who put a server into its pool: each source only ever removes its own servers (a discovery
/// refresh leaves servers of the site file and of the admin API alone, and so on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The site file (changed by reloads).
    Config,
    /// The admin API.
    Api,
    /// Service discovery.
    Discovery,
}

impl Origin {
    /// The name used in `/status` and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
            Origin::Discovery => "discovery",
        }
    }
}

/// A backend's run-time state.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) cfg: ServerConfig,
    /// Identity within its pool for the life of the server (never reused): what leases,
    /// retries' exclusion lists and `Pool::record` name it by.
    pub(crate) key: usize,
    pub(crate) origin: Origin,
    pub(crate) in_flight: AtomicU64,
    /// Verdict of the active check (true when the pool has none).
    pub(crate) active_up: AtomicBool,
    state: AtomicU8,
    /// Left its pool: takes nothing new, is dropped once its last lease ends.
    pub(crate) removed: AtomicBool,
    weight: AtomicU32,
    max_connections: AtomicU32,
    /// Whether the last selector rebuild found it usable (to start slow start on a change).
    pub(crate) was_usable: AtomicBool,
    /// Its active-check task, if one runs.
    pub(crate) checker: Mutex<Option<AbortHandle>>,
    /// Whether an active check has run (a restarted check resumes instead of starting over).
    pub(crate) checked: AtomicBool,
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
        (key, origin): (usize, Origin),
        breaker: BreakerConfig,
        initial_up: bool,
        initial_rtt_ns: f64,
        metrics: BackendMetrics,
    ) -> Self {
        let state = if cfg.drain {
            ServerState::Drain
        } else {
            ServerState::Ready
        };
        Backend {
            conns: Arc::new(ConnPool::new(cfg.address)),
            key,
            origin,
            state: AtomicU8::new(state as u8),
            removed: AtomicBool::new(false),
            weight: AtomicU32::new(cfg.weight),
            max_connections: AtomicU32::new(cfg.max_connections),
            was_usable: AtomicBool::new(false),
            checker: Mutex::new(None),
            checked: AtomicBool::new(false),
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

    /// A new breaker with new settings, closed.
    pub(crate) fn reset_breaker(&self, cfg: BreakerConfig) {
        *self.breaker() = Breaker::new(cfg);
        self.breaker_closed.store(true, Ordering::Relaxed);
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
        self.in_flight.load(Ordering::Relaxed) < u64::from(self.max_connections())
    }

    /// Takes no new requests: drained, in maintenance, or removed from its pool.
    pub(crate) fn is_draining(&self) -> bool {
        self.state.load(Ordering::Relaxed) != ServerState::Ready as u8
            || self.removed.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> ServerState {
        ServerState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub(crate) fn set_state(&self, s: ServerState) {
        self.state.store(s as u8, Ordering::Relaxed);
        if s != ServerState::Ready {
            // Idle keep-alive connections would otherwise carry new requests.
            self.conns.clear();
        }
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    pub(crate) fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, w: u32) {
        self.weight.store(w, Ordering::Relaxed);
    }

    pub(crate) fn max_connections(&self) -> u32 {
        self.max_connections.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_connections(&self, n: u32) {
        self.max_connections.store(n, Ordering::Relaxed);
    }

    /// Stops its active-check task, if any.
    pub(crate) fn stop_checker(&self) {
        let h = self
            .checker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = h {
            h.abort();
        }
    }

    /// The label of its state in `/status`: `removing`, `maintenance`, `draining`, or health.
    pub(crate) fn status_label(&self, usable: bool) -> &'static str {
        if self.is_removed() {
            "removing"
        } else {
            match self.state() {
                ServerState::Maintenance => "maintenance",
                ServerState::Drain => "draining",
                ServerState::Ready if usable => "up",
                ServerState::Ready => "down",
            }
        }
    }
}
