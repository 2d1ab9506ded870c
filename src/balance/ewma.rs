//! Least response time: a peak-EWMA latency estimate per server, weighted by its in-flight
//! requests, picked by the power of two distinct random choices (tower's `PeakEwma` and
//! linkerd's balancer).
//!
//! The estimate jumps up to any slower sample at once (the "peak") and decays towards faster
//! samples and, while idle, towards zero, so a server that was slow once is tried again later.
//! Time comes from the caller in nanoseconds; nothing here reads a clock.

use std::sync::atomic::{AtomicU64, Ordering};

use super::hash::reduce;

/// A lock-free peak-EWMA latency estimate. Updates race benignly: a lost sample only delays
/// convergence by one observation.
#[derive(Debug)]
pub struct PeakEwma {
    estimate_ns: AtomicU64, // f64 bits
    stamp_ns: AtomicU64,
}

impl PeakEwma {
    /// A new estimate seeded with `initial_ns`: give it the pool's slowest current estimate (or
    /// a configured default), so a new server is neither flooded (0) nor starved (infinity).
    pub fn new(initial_ns: f64, now_ns: u64) -> Self {
        PeakEwma {
            estimate_ns: AtomicU64::new(initial_ns.max(1.0).to_bits()),
            stamp_ns: AtomicU64::new(now_ns),
        }
    }

    /// Records one response time.
    pub fn observe(&self, rtt_ns: f64, now_ns: u64, decay_ns: f64) {
        let prev = self.estimate(now_ns, decay_ns);
        let next = if rtt_ns > prev {
            rtt_ns
        } else {
            let stamp = self.stamp_ns.load(Ordering::Relaxed);
            let w = weight(now_ns.saturating_sub(stamp), decay_ns);
            let cur = f64::from_bits(self.estimate_ns.load(Ordering::Relaxed));
            cur * w + rtt_ns * (1.0 - w)
        };
        self.estimate_ns
            .store(next.max(1.0).to_bits(), Ordering::Relaxed);
        self.stamp_ns.store(now_ns, Ordering::Relaxed);
    }

    /// The estimate at `now_ns`, decayed for the time since the last sample.
    pub fn estimate(&self, now_ns: u64, decay_ns: f64) -> f64 {
        let cur = f64::from_bits(self.estimate_ns.load(Ordering::Relaxed));
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        cur * weight(now_ns.saturating_sub(stamp), decay_ns)
    }

    /// The cost the balancer compares: estimate × (in-flight + 1).
    pub fn cost(&self, now_ns: u64, decay_ns: f64, in_flight: u64) -> f64 {
        self.estimate(now_ns, decay_ns) * (in_flight as f64 + 1.0)
    }
}

fn weight(elapsed_ns: u64, decay_ns: f64) -> f64 {
    if decay_ns <= 0.0 {
        return 0.0;
    }
    (-(elapsed_ns as f64) / decay_ns).exp()
}

/// Power of two choices: draws two *distinct* eligible servers with the random words `r` and
/// returns the one with the lower `cost` (the first on a tie). With one eligible server it is
/// returned; with none, `None`.
pub fn p2c_pick(
    n: usize,
    r: (u64, u64),
    eligible: impl Fn(usize) -> bool,
    cost: impl Fn(usize) -> f64,
) -> Option<usize> {
    let (a, b) = p2c_pair(n, r, &eligible)?;
    match b {
        None => Some(a),
        Some(b) if cost(b) < cost(a) => Some(b),
        Some(_) => Some(a),
    }
}

/// The pair that [`p2c_pick`] compares: two distinct eligible indices (the second is `None`
/// when only one server is eligible).
pub(crate) fn p2c_pair(
    n: usize,
    r: (u64, u64),
    eligible: &impl Fn(usize) -> bool,
) -> Option<(usize, Option<usize>)> {
    let m = (0..n).filter(|&i| eligible(i)).count();
    let nth = |k: usize| (0..n).filter(|&i| eligible(i)).nth(k);
    match m {
        0 => None,
        1 => nth(0).map(|a| (a, None)),
        _ => {
            let ka = reduce(r.0, m);
            let kb = (ka + 1 + reduce(r.1, m - 1)) % m;
            Some((nth(ka)?, Some(nth(kb)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: f64 = 1e6;

    #[test]
    fn peaks_jump_up_and_decay_down() {
        let e = PeakEwma::new(10.0 * MS, 0);
        e.observe(50.0 * MS, 1_000, 10_000.0 * MS);
        assert!((e.estimate(1_000, 10_000.0 * MS) - 50.0 * MS).abs() < MS);
        // A fast sample pulls it down only partly.
        e.observe(1.0 * MS, 2_000_000_000, 10_000.0 * MS);
        let est = e.estimate(2_000_000_000, 10_000.0 * MS);
        assert!(est < 50.0 * MS && est > 1.0 * MS, "{est}");
        // Idle for long, it decays towards zero and the server is tried again.
        assert!(e.estimate(200_000_000_000, 10_000.0 * MS) < 0.01 * MS);
    }

    #[test]
    fn prefers_the_cheaper_of_two() {
        let costs = [5.0, 1.0];
        for r0 in [0u64, u64::MAX] {
            assert_eq!(p2c_pick(2, (r0, 7), |_| true, |i| costs[i]), Some(1));
        }
        assert_eq!(p2c_pick(2, (0, 0), |i| i == 0, |i| costs[i]), Some(0));
        assert_eq!(p2c_pick(2, (0, 0), |_| false, |i| costs[i]), None);
    }

    #[test]
    fn in_flight_raises_cost() {
        let e = PeakEwma::new(MS, 0);
        assert!(e.cost(0, MS, 3) > e.cost(0, MS, 0));
    }

    proptest! {
        /// The two choices are always distinct and eligible.
        #[test]
        fn pair_is_distinct(
            n in 2usize..40,
            r in (any::<u64>(), any::<u64>()),
            mask in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let eligible = |i: usize| mask[i];
            let m = (0..n).filter(|&i| mask[i]).count();
            match p2c_pair(n, r, &eligible) {
                None => prop_assert_eq!(m, 0),
                Some((a, None)) => { prop_assert_eq!(m, 1); prop_assert!(mask[a]); }
                Some((a, Some(b))) => {
                    prop_assert!(m >= 2);
                    prop_assert_ne!(a, b);
                    prop_assert!(mask[a] && mask[b]);
                }
            }
        }
    }
}
