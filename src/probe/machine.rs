//! The rise/fall state machine of one check: pure, no clock, no I/O.
//!
//! It turns a stream of check verdicts into a datacenter state, the way pingora's
//! `observe_health` and HAProxy's `rise`/`fall` do: `fall` consecutive failures take an alive
//! datacenter down, `rise` consecutive passes bring a down one back. Two refinements:
//!
//! - The first result decides at once (HAProxy's `init-state up`/`down`): before it the board
//!   shows the state declared in the zone, and the first round of checks runs before the server
//!   reports ready, so waiting for `fall` results would only mean answering blind for longer.
//! - `draining` is a declaration by the site, not a measurement: a passing check that reports it
//!   moves an alive datacenter to `Draining` (and back) at once, without thresholds.

use super::health::DcState;

/// Results after a transition during which the datacenter still counts as changing.
pub const SETTLE_CHECKS: u32 = 4;

/// What one check concluded, as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed and the site takes new clients.
    Up,
    /// The check passed and the site asks for no new clients.
    Draining,
    /// The check failed (error, timeout, bad status or body, too few healthy backends).
    Fail,
}

impl Verdict {
    fn state(self) -> DcState {
        match self {
            Verdict::Up => DcState::Up,
            Verdict::Draining => DcState::Draining,
            Verdict::Fail => DcState::Down,
        }
    }
}

/// A change of state caused by one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before; `None` for the first result.
    pub from: Option<DcState>,
    /// The state after.
    pub to: DcState,
}

/// The rise/fall state of one check.
#[derive(Debug, Clone)]
pub struct Machine {
    rise: u32,
    fall: u32,
    state: Option<DcState>,
    /// Consecutive verdicts that disagree with `state` (passes while down, failures while alive).
    streak: u32,
    /// Verdicts since the last transition, saturating at [`SETTLE_CHECKS`].
    settled: u32,
}

impl Machine {
    /// A machine that has seen no result yet. Thresholds below 1 count as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        Machine {
            rise: rise.max(1),
            fall: fall.max(1),
            state: None,
            streak: 0,
            settled: SETTLE_CHECKS,
        }
    }

    /// The current state; `None` before the first result.
    pub fn state(&self) -> Option<DcState> {
        self.state
    }

    /// True while results disagree with the state, i.e. a rise or fall is under way: the
    /// scheduler then re-checks sooner.
    pub fn in_transition(&self) -> bool {
        self.streak > 0
    }

    /// True while a transition is under way or happened within the last [`SETTLE_CHECKS`]
    /// results: answers involving the datacenter then use the service's `failover_ttl`.
    pub fn changing(&self) -> bool {
        self.in_transition() || self.settled < SETTLE_CHECKS
    }

    /// Feeds one verdict; returns the transition it caused, if any.
    pub fn observe(&mut self, v: Verdict) -> Option<Transition> {
        let Some(cur) = self.state else {
            // The first result decides; it is not flagged as changing, since nothing was
            // answered from a measured state before it.
            self.state = Some(v.state());
            return Some(Transition {
                from: None,
                to: v.state(),
            });
        };
        let next = match (cur, v) {
            (DcState::Down, Verdict::Fail) => {
                self.streak = 0;
                None
            }
            (DcState::Down, _) => {
                self.streak += 1;
                (self.streak >= self.rise).then(|| v.state())
            }
            (_, Verdict::Fail) => {
                self.streak += 1;
                (self.streak >= self.fall).then_some(DcState::Down)
            }
            (_, _) => {
                self.streak = 0;
                (cur != v.state()).then(|| v.state())
            }
        };
        match next {
            Some(to) => {
                self.state = Some(to);
                self.streak = 0;
                self.settled = 0;
                Some(Transition {
                    from: Some(cur),
                    to,
                })
            }
            None => {
                self.settled = (self.settled + 1).min(SETTLE_CHECKS);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Draining, Fail, Up};

    fn feed(m: &mut Machine, vs: &[Verdict]) -> Vec<Option<DcState>> {
        vs.iter()
            .map(|v| m.observe(*v).map(|t| t.to))
            .collect::<Vec<_>>()
    }

    #[test]
    fn first_result_decides_without_thresholds() {
        let mut m = Machine::new(3, 3);
        assert_eq!(m.state(), None);
        assert_eq!(
            m.observe(Fail),
            Some(Transition {
                from: None,
                to: DcState::Down
            })
        );
        assert!(!m.changing());
        let mut m = Machine::new(3, 3);
        assert_eq!(m.observe(Draining).map(|t| t.to), Some(DcState::Draining));
    }

    #[test]
    fn falls_exactly_at_the_fall_threshold() {
        for fall in 1..=5 {
            let mut m = Machine::new(2, fall);
            m.observe(Up);
            for i in 1..fall {
                assert_eq!(m.observe(Fail), None, "fall {fall}, failure {i}");
                assert_eq!(m.state(), Some(DcState::Up));
                assert!(m.in_transition() && m.changing());
            }
            let t = m.observe(Fail);
            assert_eq!(
                t,
                Some(Transition {
                    from: Some(DcState::Up),
                    to: DcState::Down
                }),
                "fall {fall}"
            );
            assert!(!m.in_transition());
        }
    }

    #[test]
    fn rises_exactly_at_the_rise_threshold() {
        for rise in 1..=5 {
            let mut m = Machine::new(rise, 2);
            m.observe(Fail);
            for i in 1..rise {
                assert_eq!(m.observe(Up), None, "rise {rise}, pass {i}");
                assert_eq!(m.state(), Some(DcState::Down));
            }
            assert_eq!(
                m.observe(Up).map(|t| t.to),
                Some(DcState::Up),
                "rise {rise}"
            );
        }
    }

    #[test]
    fn an_interrupted_streak_starts_over() {
        let mut m = Machine::new(3, 3);
        m.observe(Up);
        assert_eq!(feed(&mut m, &[Fail, Fail, Up, Fail, Fail]), [None; 5]);
        assert_eq!(m.state(), Some(DcState::Up));
        assert_eq!(m.observe(Fail).map(|t| t.to), Some(DcState::Down));
        assert_eq!(feed(&mut m, &[Up, Up, Fail, Up, Up]), [None; 5]);
        assert_eq!(m.observe(Up).map(|t| t.to), Some(DcState::Up));
    }

    #[test]
    fn draining_is_immediate_while_alive_and_needs_rise_while_down() {
        let mut m = Machine::new(2, 2);
        m.observe(Up);
        assert_eq!(m.observe(Draining).map(|t| t.to), Some(DcState::Draining));
        assert_eq!(m.observe(Draining), None);
        assert_eq!(m.observe(Up).map(|t| t.to), Some(DcState::Up));
        // A draining site that fails its checks goes down after `fall`.
        m.observe(Draining);
        assert_eq!(m.observe(Fail), None);
        assert_eq!(m.observe(Fail).map(|t| t.to), Some(DcState::Down));
        // Coming back, draining passes count towards `rise`; the last one names the state.
        assert_eq!(m.observe(Draining), None);
        assert_eq!(m.observe(Draining).map(|t| t.to), Some(DcState::Draining));
    }

    #[test]
    fn changing_lasts_settle_checks_after_a_transition() {
        let mut m = Machine::new(1, 1);
        m.observe(Up);
        assert!(!m.changing());
        m.observe(Fail);
        assert_eq!(m.state(), Some(DcState::Down));
        for _ in 0..SETTLE_CHECKS {
            assert!(m.changing());
            m.observe(Fail);
        }
        assert!(!m.changing());
    }

    #[test]
    fn zero_thresholds_behave_as_one() {
        let mut m = Machine::new(0, 0);
        m.observe(Up);
        assert_eq!(m.observe(Fail).map(|t| t.to), Some(DcState::Down));
        assert_eq!(m.observe(Up).map(|t| t.to), Some(DcState::Up));
    }
}
