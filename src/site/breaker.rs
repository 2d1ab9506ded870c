//! The per-server circuit breaker as a pure state machine: closed → open after N consecutive
//! failures → half-open after a cool-down, letting a few trial requests through → closed after M
//! successes (a failed trial opens it again). Time is passed in, so tests need no clock.

use std::time::Duration;

use crate::config::site::BreakerConfig;

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused until the cool-down ends.
    Open,
    /// A few trial requests may pass.
    HalfOpen,
}

impl BreakerState {
    /// Name for `/status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// Value of the `breaker_state` gauge.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// One server's breaker. `now` is time since any fixed origin.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    failures: u32,
    successes: u32,
    trials: u32,
    opened_at: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
            trials: 0,
            opened_at: Duration::ZERO,
        }
    }

    /// The state at `now` (an open breaker whose cool-down has passed reads as half-open).
    pub fn state(&self, now: Duration) -> BreakerState {
        if self.state == BreakerState::Open && now >= self.opened_at + self.cfg.cooldown {
            BreakerState::HalfOpen
        } else {
            self.state
        }
    }

    /// Whether a request may be sent now without taking a trial slot.
    pub fn would_allow(&self, now: Duration) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.state == BreakerState::Open || self.trials < self.cfg.half_open_requests
            }
        }
    }

    /// Asks to send one request; in half-open this takes one of the trial slots.
    pub fn try_acquire(&mut self, now: Duration) -> bool {
        if self.cfg.failures == 0 {
            return true;
        }
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.state == BreakerState::Open {
                    self.state = BreakerState::HalfOpen;
                    self.trials = 0;
                    self.successes = 0;
                }
                if self.trials < self.cfg.half_open_requests {
                    self.trials += 1;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Records a success. Returns the new state when it changed.
    pub fn on_success(&mut self) -> Option<BreakerState> {
        self.failures = 0;
        if self.state == BreakerState::HalfOpen {
            self.trials = self.trials.saturating_sub(1);
            self.successes += 1;
            if self.successes >= self.cfg.successes {
                self.state = BreakerState::Closed;
                return Some(BreakerState::Closed);
            }
        }
        None
    }

    /// Records a failure. Returns the new state when it changed.
    pub fn on_failure(&mut self, now: Duration) -> Option<BreakerState> {
        if self.cfg.failures == 0 {
            return None;
        }
        match self.state {
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.cfg.failures {
                    self.open(now);
                    return Some(BreakerState::Open);
                }
                None
            }
            BreakerState::HalfOpen => {
                self.open(now);
                Some(BreakerState::Open)
            }
            BreakerState::Open => None,
        }
    }

    fn open(&mut self, now: Duration) {
        self.state = BreakerState::Open;
        self.opened_at = now;
        self.failures = 0;
        self.successes = 0;
        self.trials = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            cooldown: Duration::from_secs(30),
            successes: 2,
            half_open_requests: 1,
        }
    }

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn opens_half_opens_and_closes() {
        let mut b = Breaker::new(cfg());
        assert_eq!(b.on_failure(s(0)), None);
        assert_eq!(b.on_failure(s(0)), None);
        assert_eq!(b.on_failure(s(1)), Some(BreakerState::Open));
        assert!(!b.try_acquire(s(30)));
        assert_eq!(b.state(s(31)), BreakerState::HalfOpen);
        assert!(b.try_acquire(s(31)));
        assert!(!b.try_acquire(s(31)), "one trial at a time");
        assert_eq!(b.on_success(), None);
        assert!(b.try_acquire(s(32)));
        assert_eq!(b.on_success(), Some(BreakerState::Closed));
        assert!(b.try_acquire(s(32)));
    }

    #[test]
    fn a_failed_trial_reopens() {
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.on_failure(s(0));
        }
        assert!(b.try_acquire(s(30)));
        assert_eq!(b.on_failure(s(30)), Some(BreakerState::Open));
        assert!(!b.try_acquire(s(59)));
        assert!(b.try_acquire(s(60)));
    }

    #[test]
    fn successes_reset_the_failure_count() {
        let mut b = Breaker::new(cfg());
        b.on_failure(s(0));
        b.on_failure(s(0));
        b.on_success();
        b.on_failure(s(0));
        b.on_failure(s(0));
        assert_eq!(b.state(s(0)), BreakerState::Closed);
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let mut b = Breaker::new(BreakerConfig {
            failures: 0,
            ..cfg()
        });
        for _ in 0..100 {
            assert_eq!(b.on_failure(s(0)), None);
        }
        assert!(b.try_acquire(s(0)));
    }
}
