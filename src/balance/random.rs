//! Weighted random: one draw from 64 random bits the caller supplies (its own RNG, or a hash
//! when the draw must be repeatable).

use super::hash::reduce;

/// Cumulative weights for drawing an index with probability proportional to its weight.
#[derive(Debug, Clone)]
pub struct WeightedRandom {
    cumulative: Vec<u64>,
}

impl WeightedRandom {
    /// Builds the table; weight 0 is never drawn.
    pub fn new(weights: &[u32]) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                sum += u64::from(w);
                sum
            })
            .collect();
        WeightedRandom { cumulative }
    }

    /// Sum of the weights.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The index drawn by `r`; `None` when every weight is 0.
    pub fn draw(&self, r: u64) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let x = reduce(r, total as usize) as u64;
        Some(self.cumulative.partition_point(|&c| c <= x))
    }

    /// A draw among eligible indices only: redraws from the eligible weights when the first
    /// draw lands on an ineligible one (cost only when something is down).
    pub fn draw_eligible(&self, r: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let first = self.draw(r)?;
        if eligible(first) {
            return Some(first);
        }
        let weight =
            |i: usize| self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] };
        let n = self.cumulative.len();
        let total: u64 = (0..n).filter(|&i| eligible(i)).map(weight).sum();
        if total == 0 {
            return None;
        }
        let mut x = reduce(r.rotate_left(32), total as usize) as u64;
        for i in (0..n).filter(|&i| eligible(i)) {
            let w = weight(i);
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_weights_are_never_drawn() {
        let w = WeightedRandom::new(&[0, 3, 0]);
        for r in [0, 1, u64::MAX / 3, u64::MAX] {
            assert_eq!(w.draw(r), Some(1));
        }
        assert_eq!(WeightedRandom::new(&[0]).draw(5), None);
        assert_eq!(w.draw_eligible(5, |i| i != 1), None);
    }

    proptest! {
        /// Evenly spread random words give shares within 1 % of the weights.
        #[test]
        fn shares_follow_weights(weights in proptest::collection::vec(1u32..20, 1..10)) {
            let w = WeightedRandom::new(&weights);
            let draws = 20_000u64;
            let mut counts = vec![0u64; weights.len()];
            for k in 0..draws {
                let r = k.wrapping_mul(u64::MAX / draws);
                counts[w.draw(r).expect("weights")] += 1;
            }
            let total = w.total() as f64;
            for (c, &wt) in counts.iter().zip(&weights) {
                let share = *c as f64 / draws as f64;
                prop_assert!((share - f64::from(wt) / total).abs() < 0.01);
            }
        }

        /// Ineligible indices are never returned while another is eligible.
        #[test]
        fn eligible_only(weights in proptest::collection::vec(0u32..5, 1..10), r in any::<u64>(), down in 0usize..10) {
            let w = WeightedRandom::new(&weights);
            let got = w.draw_eligible(r, |i| i != down);
            let any_left = weights.iter().enumerate().any(|(i, &x)| i != down && x > 0);
            prop_assert_eq!(got.is_some(), any_left);
            if let Some(i) = got { prop_assert!(i != down && weights[i] > 0); }
        }
    }
}
