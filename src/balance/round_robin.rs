//! Plain round robin: the caller owns the counter (an `AtomicUsize` bumped per pick).

/// The first eligible index at or after `counter % n`, wrapping; `None` when none is eligible.
pub fn round_robin(counter: usize, n: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = counter % n;
    (0..n).map(|k| (start + k) % n).find(|&i| eligible(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_and_skips_ineligible() {
        let seq: Vec<_> = (0..6).filter_map(|c| round_robin(c, 3, |_| true)).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        let seq: Vec<_> = (0..4)
            .filter_map(|c| round_robin(c, 3, |i| i != 1))
            .collect();
        assert_eq!(seq, [0, 2, 2, 0]);
        assert_eq!(round_robin(5, 3, |_| false), None);
        assert_eq!(round_robin(5, 0, |_| true), None);
    }
}
