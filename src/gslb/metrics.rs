//! Steering counters: answers by zone, service and chosen datacenter; queries answered while
//! every candidate was down; and a sampled histogram of decision time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use crate::config::zone::Zone;
use crate::policy::Decision;

/// One decision in this many is timed.
const SAMPLE_EVERY: u32 = 64;

/// Counters of the steering path.
#[derive(Debug, Clone)]
pub struct GslbMetrics {
    answers: IntCounterVec,
    all_down: IntCounterVec,
    decision: Histogram,
}

impl GslbMetrics {
    /// Creates and registers the counters.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let answers = IntCounterVec::new(
            Opts::new(
                "meridian_dns_steered_answers_total",
                "Service answers, by zone, service and the datacenter answered first",
            ),
            &["zone", "service", "datacenter"],
        )?;
        let all_down = IntCounterVec::new(
            Opts::new(
                "meridian_dns_all_down_answers_total",
                "Service answers given while every candidate datacenter was down, by action \
                 (fail_open, nodata; fence_fail_open: every datacenter of the client's \
                 sovereignty fence was down)",
            ),
            &["zone", "service", "action"],
        )?;
        let decision = Histogram::with_opts(
            HistogramOpts::new(
                "meridian_dns_decision_duration_seconds",
                "Time to locate a client and select datacenters (one decision in 64 is timed)",
            )
            .buckets(vec![
                1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4,
            ]),
        )?;
        registry.register(Box::new(answers.clone()))?;
        registry.register(Box::new(all_down.clone()))?;
        registry.register(Box::new(decision.clone()))?;
        Ok(GslbMetrics {
            answers,
            all_down,
            decision,
        })
    }

    pub(crate) fn services(&self, zone: &Zone) -> Vec<ServiceCounters> {
        let origin = zone.origin.as_str();
        zone.services
            .iter()
            .map(|s| {
                let name = s.name.as_str();
                ServiceCounters {
                    by_dc: zone
                        .datacenters
                        .iter()
                        .map(|d| self.answers.with_label_values(&[origin, name, &d.name]))
                        .collect(),
                    fail_open: self
                        .all_down
                        .with_label_values(&[origin, name, "fail_open"]),
                    nodata: self.all_down.with_label_values(&[origin, name, "nodata"]),
                    fence: self
                        .all_down
                        .with_label_values(&[origin, name, "fence_fail_open"]),
                }
            })
            .collect()
    }

    /// Answers so far by zone and first datacenter (summed over services): what the status
    /// page samples to show each datacenter's share of recent answers. Reads the counters
    /// without touching the query path (which holds its own handles).
    pub fn answer_counts(&self) -> Vec<AnswerCount> {
        let mut sums: BTreeMap<(String, String), u64> = BTreeMap::new();
        for fam in self.answers.collect() {
            for m in fam.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                // Counter values are integers held in an f64; the cast is exact below 2^53.
                let n = m.get_counter().value() as u64;
                *sums
                    .entry((label("zone"), label("datacenter")))
                    .or_default() += n;
            }
        }
        sums.into_iter()
            .map(|((zone, datacenter), answers)| AnswerCount {
                zone,
                datacenter,
                answers,
            })
            .collect()
    }

    pub(crate) fn observe_decision(&self, d: Duration) {
        self.decision.observe(d.as_secs_f64());
    }
}

/// Answers counted for one datacenter of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerCount {
    /// The zone's origin (`example.com.`).
    pub zone: String,
    /// The datacenter answered first.
    pub datacenter: String,
    /// Answers since the process started.
    pub answers: u64,
}

/// Pre-resolved counters of one service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceCounters {
    by_dc: Vec<IntCounter>,
    fail_open: IntCounter,
    nodata: IntCounter,
    fence: IntCounter,
}

impl ServiceCounters {
    pub(crate) fn count(&self, d: &Decision) {
        if let Some(first) = d.dcs.iter().next()
            && let Some(c) = self.by_dc.get(first)
        {
            c.inc();
        }
        if d.all_down {
            if d.nodata {
                self.nodata.inc();
            } else {
                self.fail_open.inc();
            }
        } else if d.fence_fail_open {
            self.fence.inc();
        }
    }
}

thread_local!(static TICK: Cell<u32> = const { Cell::new(0) });

/// True for one call in [`SAMPLE_EVERY`] on each thread.
pub(crate) fn sample() -> bool {
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n % SAMPLE_EVERY == 0
    })
}
