//! Prometheus metrics of the prober.
//!
//! Per datacenter: checks by result, state, transitions and reported load. Per target (what
//! is actually probed, once however many datacenters share it): check duration. The
//! histogram's `_count` per target shows there is no probe storm.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::check::CheckResult;
use super::health::DcState;

const RESULTS: [CheckResult; 4] = [
    CheckResult::Pass,
    CheckResult::Draining,
    CheckResult::Fail,
    CheckResult::Timeout,
];
const STATES: [DcState; 3] = [DcState::Up, DcState::Draining, DcState::Down];

/// The prober's collectors, registered on the registry given to [`ProbeMetrics::new`].
#[derive(Debug, Clone)]
pub struct ProbeMetrics {
    checks: IntCounterVec,
    duration: HistogramVec,
    state: IntGaugeVec,
    transitions: IntCounterVec,
    load: GaugeVec,
}

impl ProbeMetrics {
    /// Creates the collectors and registers them.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let zd = &["zone", "datacenter"];
        let m = ProbeMetrics {
            checks: IntCounterVec::new(
                Opts::new(
                    "meridian_probe_checks_total",
                    "Health check results by datacenter (a shared check counts for each \
                     datacenter it serves).",
                ),
                &["zone", "datacenter", "result"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "meridian_probe_check_duration_seconds",
                    "Time taken by each health check, by target (one check per target).",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["target"],
            )?,
            state: IntGaugeVec::new(
                Opts::new(
                    "meridian_probe_state",
                    "1 for the datacenter's current state (up, draining, down), else 0.",
                ),
                &["zone", "datacenter", "state"],
            )?,
            transitions: IntCounterVec::new(
                Opts::new(
                    "meridian_probe_transitions_total",
                    "Datacenter state changes, by the state entered.",
                ),
                &["zone", "datacenter", "to"],
            )?,
            load: GaugeVec::new(
                Opts::new(
                    "meridian_probe_load_ratio",
                    "Load reported by the site (in-flight work over capacity).",
                ),
                zd,
            )?,
        };
        registry.register(Box::new(m.checks.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.state.clone()))?;
        registry.register(Box::new(m.transitions.clone()))?;
        registry.register(Box::new(m.load.clone()))?;
        Ok(m)
    }

    pub(crate) fn check(&self, zone: &str, dc: &str, result: CheckResult, load: f32) {
        self.checks
            .with_label_values(&[zone, dc, result.as_str()])
            .inc();
        self.load
            .with_label_values(&[zone, dc])
            .set(f64::from(load));
    }

    pub(crate) fn duration(&self, target: &str, seconds: f64) {
        self.duration.with_label_values(&[target]).observe(seconds);
    }

    pub(crate) fn set_state(&self, zone: &str, dc: &str, state: DcState) {
        for s in STATES {
            self.state
                .with_label_values(&[zone, dc, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    pub(crate) fn transition(&self, zone: &str, dc: &str, to: DcState) {
        self.transitions
            .with_label_values(&[zone, dc, to.as_str()])
            .inc();
    }

    /// Drops the series of a datacenter that a reload removed.
    pub(crate) fn forget_dc(&self, zone: &str, dc: &str) {
        // Absent series (a result never seen) are not an error here.
        for r in RESULTS {
            let _ = self.checks.remove_label_values(&[zone, dc, r.as_str()]);
        }
        for s in STATES {
            let _ = self.state.remove_label_values(&[zone, dc, s.as_str()]);
            let _ = self
                .transitions
                .remove_label_values(&[zone, dc, s.as_str()]);
        }
        let _ = self.load.remove_label_values(&[zone, dc]);
    }

    /// Drops the series of a target no longer checked.
    pub(crate) fn forget_target(&self, target: &str) {
        let _ = self.duration.remove_label_values(&[target]);
    }
}
