//! The check loop of one target: when to check, with what timeout, and what to report.
//!
//! Checks start `interval` apart (start to start, ± `jitter` so that many checks spread
//! out), each bounded by `timeout` < `interval`, so a target is never probed by two checks at
//! once. While a rise or fall is under way the next check comes after a quarter of the
//! interval instead (HAProxy's `fastinter`): that halves the time to confirm a failure at the
//! defaults and costs only `fall - 1` or `rise - 1` extra probes per transition. Everything runs
//! on `tokio::time`, so the tests drive it on a paused clock.

use std::ops::ControlFlow;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::config::zone::CheckSpec;

use super::check::{CheckResult, Observation, Probe};
use super::health::DcState;
use super::machine::{Machine, Transition};

/// The re-check interval during a transition is the interval divided by this.
pub const FAST_DIVISOR: u32 = 4;

/// The timing of a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timing {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) jitter: f64,
    pub(crate) rise: u32,
    pub(crate) fall: u32,
}

impl Timing {
    pub(crate) fn of(spec: &CheckSpec) -> Self {
        Timing {
            interval: spec.interval,
            timeout: spec.timeout,
            jitter: spec.jitter.clamp(0.0, 0.5),
            rise: spec.rise,
            fall: spec.fall,
        }
    }

    /// The time from the start of one check to the start of the next.
    pub(crate) fn delay(&self, fast: bool, rng: &mut SmallRng) -> Duration {
        let base = if fast {
            self.interval / FAST_DIVISOR
        } else {
            self.interval
        };
        if self.jitter <= 0.0 {
            return base;
        }
        base.mul_f64(1.0 + rng.random_range(-self.jitter..=self.jitter))
    }
}

/// What the loop reports after each check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// When the check started.
    pub(crate) started: Instant,
    /// How long it took (the timeout when it timed out).
    pub(crate) elapsed: Duration,
    pub(crate) observation: Observation,
    /// The state machine's state after this result.
    pub(crate) state: DcState,
    pub(crate) changing: bool,
    /// The transition this result caused.
    pub(crate) transition: Option<Transition>,
}

/// Where reports go; `Break` stops the loop (the check was removed).
pub(crate) trait Sink: Send + 'static {
    fn record(&mut self, report: Report) -> ControlFlow<()>;
}

/// Checks forever (until the sink says stop). The first check starts at once.
pub(crate) async fn run<P: Probe, S: Sink>(
    probe: P,
    timing: Timing,
    mut rng: SmallRng,
    mut sink: S,
) {
    let mut machine = Machine::new(timing.rise, timing.fall);
    loop {
        let started = Instant::now();
        let observation = match tokio::time::timeout(timing.timeout, probe.check()).await {
            Ok(o) => o,
            Err(_) => Observation {
                result: CheckResult::Timeout,
                load: None,
                error: Some(format!("no answer within {:?}", timing.timeout)),
            },
        };
        let elapsed = started.elapsed();
        let transition = machine.observe(observation.result.verdict());
        let report = Report {
            started,
            elapsed,
            observation,
            // The machine has a state after its first result.
            state: machine.state().unwrap_or(DcState::Down),
            changing: machine.changing(),
            transition,
        };
        if sink.record(report).is_break() {
            return;
        }
        let next = started + timing.delay(machine.in_transition(), &mut rng);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rand::SeedableRng;
    use tokio::sync::mpsc;

    use super::*;

    /// Plays a script of results (the last one repeats); `None` never answers.
    struct Scripted {
        script: Vec<Option<CheckResult>>,
        calls: Arc<Mutex<Vec<Instant>>>,
    }

    impl Probe for Scripted {
        async fn check(&self) -> Observation {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(Instant::now());
                calls.len() - 1
            };
            match self.script[n.min(self.script.len() - 1)] {
                Some(result) => Observation {
                    result,
                    load: None,
                    error: None,
                },
                None => std::future::pending().await,
            }
        }
    }

    struct Chan(mpsc::UnboundedSender<Report>);

    impl Sink for Chan {
        fn record(&mut self, r: Report) -> ControlFlow<()> {
            match self.0.send(r) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        }
    }

    fn timing(jitter: f64) -> Timing {
        Timing {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(400),
            jitter,
            rise: 2,
            fall: 2,
        }
    }

    /// Runs the loop over a script and returns the first `n` reports with their start times
    /// in milliseconds from the first check.
    async fn drive(t: Timing, script: Vec<Option<CheckResult>>, n: usize) -> Vec<(u64, Report)> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let probe = Scripted {
            script,
            calls: calls.clone(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let task = tokio::spawn(run(probe, t, SmallRng::seed_from_u64(7), Chan(tx)));
        let mut out = Vec::new();
        while out.len() < n {
            let r = rx.recv().await.expect("loop alive");
            out.push(((r.started - t0).as_millis() as u64, r));
        }
        task.abort();
        out
    }

    use CheckResult::{Fail, Pass, Timeout};

    #[tokio::test(start_paused = true)]
    async fn falls_and_rises_exactly_at_thresholds_with_fast_rechecks() {
        let script = [Pass, Pass, Fail, Fail, Fail, Pass, Pass, Pass];
        let r = drive(timing(0.0), script.map(Some).to_vec(), 8).await;
        let starts: Vec<u64> = r.iter().map(|(t, _)| *t).collect();
        // Steady 500 ms; after the first failure a fast 125 ms re-check; after the transition
        // back to 500 ms; the first pass while down again triggers a fast re-check.
        assert_eq!(starts, [0, 500, 1000, 1125, 1625, 2125, 2250, 2750]);
        let states: Vec<DcState> = r.iter().map(|(_, r)| r.state).collect();
        use DcState::{Down, Up};
        assert_eq!(states, [Up, Up, Up, Down, Down, Down, Up, Up]);
        let transitions: Vec<usize> = (0..8).filter(|i| r[*i].1.transition.is_some()).collect();
        assert_eq!(transitions, [0, 3, 6]);
        assert!(r[2].1.changing && r[3].1.changing && !r[1].1.changing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_times_out_and_the_next_starts_at_once() {
        let r = drive(timing(0.0), vec![Some(Pass), None], 4).await;
        let got: Vec<(u64, u128, CheckResult)> = r
            .iter()
            .map(|(t, r)| (*t, r.elapsed.as_millis(), r.observation.result))
            .collect();
        // The fast interval (125 ms) is shorter than the timeout, so the re-check follows the
        // timed-out check immediately: down 500 + 2 × 400 ms after the last pass. Once down,
        // the normal interval resumes.
        assert_eq!(
            got,
            [
                (0, 0, Pass),
                (500, 400, Timeout),
                (900, 400, Timeout),
                (1400, 400, Timeout)
            ]
        );
        assert_eq!(r[2].1.state, DcState::Down);
        assert!(r[2].1.transition.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_intervals_stay_within_bounds() {
        let r = drive(timing(0.1), vec![Some(Pass)], 400).await;
        let gaps: Vec<u64> = r.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.iter().all(|g| (450..=550).contains(g)), "{gaps:?}");
        // The spread is used, not collapsed onto one value.
        assert!(gaps.iter().any(|g| *g < 470) && gaps.iter().any(|g| *g > 530));
        let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
        assert!((mean - 500.0).abs() < 10.0, "mean gap {mean}");
    }

    #[test]
    fn delay_bounds_for_both_speeds() {
        let t = timing(0.25);
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..10_000 {
            let d = t.delay(false, &mut rng);
            assert!(d >= Duration::from_millis(375) && d <= Duration::from_millis(625));
            let d = t.delay(true, &mut rng);
            assert!(d >= Duration::from_micros(93_750) && d <= Duration::from_micros(156_250));
        }
        assert_eq!(
            timing(0.0).delay(false, &mut rng),
            Duration::from_millis(500)
        );
    }
}
