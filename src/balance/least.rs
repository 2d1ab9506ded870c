//! Least connections divided by weight, rotating among ties.
//!
//! Loads are compared by cross-multiplication (`a.load × b.weight < b.load × a.weight`), so
//! there is no division and no rounding. Scanning starts at `start` (the caller's counter), and
//! the first of equal candidates wins: ties rotate instead of always favouring server 0.

/// Index of the eligible server among `0..n` with the smallest `load / weight`, `None` when none
/// is eligible or every eligible server has weight 0. `load(i) = (in-flight, weight)`.
pub fn least_loaded(
    n: usize,
    start: usize,
    eligible: impl Fn(usize) -> bool,
    load: impl Fn(usize) -> (u64, u32),
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut best: Option<(usize, u64, u32)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if !eligible(i) {
            continue;
        }
        let (l, w) = load(i);
        if w == 0 {
            continue;
        }
        match best {
            Some((_, bl, bw))
                if u128::from(l) * u128::from(bw) >= u128::from(bl) * u128::from(w) => {}
            _ => best = Some((i, l, w)),
        }
    }
    best.map(|b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ll(loads: &[(u64, u32)], start: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        least_loaded(loads.len(), start, eligible, |i| loads[i])
    }

    #[test]
    fn divides_by_weight_and_rotates_ties() {
        // 4/2 = 2 beats 3/1 = 3.
        assert_eq!(ll(&[(3, 1), (4, 2)], 0, |_| true), Some(1));
        let picks: Vec<_> = (0..3)
            .filter_map(|s| ll(&[(1, 1), (1, 1), (1, 1)], s, |_| true))
            .collect();
        assert_eq!(picks, [0, 1, 2]);
        assert_eq!(ll(&[(0, 1)], 0, |_| false), None);
        assert_eq!(ll(&[(0, 0)], 0, |_| true), None);
    }

    proptest! {
        /// Never picks a server with more weighted load than another eligible one.
        #[test]
        fn never_picks_a_heavier_server(
            loads in proptest::collection::vec((0u64..100, 1u32..10), 1..20),
            mask in proptest::collection::vec(any::<bool>(), 20),
            start in 0usize..40,
        ) {
            let eligible = |i: usize| mask[i];
            match ll(&loads, start, eligible) {
                None => prop_assert!((0..loads.len()).all(|i| !mask[i])),
                Some(p) => {
                    prop_assert!(mask[p]);
                    let (pl, pw) = loads[p];
                    for (i, &(l, w)) in loads.iter().enumerate() {
                        if mask[i] {
                            prop_assert!(u128::from(pl) * u128::from(w) <= u128::from(l) * u128::from(pw));
                        }
                    }
                }
            }
        }

        /// Equal loads: each start offset lands on a different server.
        #[test]
        fn ties_rotate(n in 1usize..20) {
            let loads = vec![(5u64, 1u32); n];
            let picks: std::collections::BTreeSet<_> =
                (0..n).filter_map(|s| ll(&loads, s, |_| true)).collect();
            prop_assert_eq!(picks.len(), n);
        }
    }
}
