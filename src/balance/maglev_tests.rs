use super::*;
use proptest::prelude::*;

fn servers(n: usize) -> Vec<(String, u32)> {
    (0..n)
        .map(|i| (format!("10.0.{}.{}:80", i / 250, i % 250), 1))
        .collect()
}

/// Small enough to build quickly in debug tests, still > 100 slots per server for 50 servers.
const SMALL: usize = 65_537;

fn small(list: &[(String, u32)]) -> Maglev {
    Maglev::with_table_size(list, SMALL)
}

fn is_prime(n: usize) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[test]
fn table_sizes_are_prime() {
    assert!(TABLE_SIZES.iter().all(|&m| is_prime(m)));
    let t = Maglev::new(&servers(50));
    assert!(t.table().len() > 100 * 50);
}

#[test]
fn empty_and_zero_weight() {
    let t = Maglev::new::<&str>(&[]);
    assert_eq!(t.pick(1, |_| true), None);
    let t = Maglev::new(&[("a", 0), ("b", 1)]);
    assert!(t.table().iter().all(|&s| s == 1));
    assert_eq!(t.pick(99, |i| i == 0), Some(0));
}

#[test]
fn candidates_are_distinct_and_complete() {
    let t = small(&servers(5));
    let mut out = Vec::new();
    t.candidates(12345, 10, |_| true, &mut out);
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3, 4]);
    assert_eq!(out[0], t.pick(12345, |_| true).expect("a server"));
    out.clear();
    t.candidates(12345, 2, |i| i != out_first(&t), &mut out);
    assert_eq!(out.len(), 2);
    assert!(!out.contains(&out_first(&t)));
}

fn out_first(t: &Maglev) -> usize {
    t.pick(12345, |_| true).expect("a server")
}

fn slot_shares(t: &Maglev) -> Vec<f64> {
    let mut counts = vec![0usize; t.len()];
    for &s in t.table() {
        counts[s as usize] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / t.table().len() as f64)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Each server's share of the table is within 5 % of its weight share (3–50 servers).
    #[test]
    fn shares_within_five_percent(n in 3usize..=50, weighted in any::<bool>(), seed in any::<u64>()) {
        let list: Vec<(String, u32)> = (0..n)
            .map(|i| (format!("{seed:x}-{i}"), if weighted { 1 + (i as u32 % 4) } else { 1 }))
            .collect();
        let t = small(&list);
        let total: u32 = list.iter().map(|s| s.1).sum();
        for (i, share) in slot_shares(&t).iter().enumerate() {
            let want = f64::from(list[i].1) / f64::from(total);
            prop_assert!((share / want - 1.0).abs() <= 0.05, "server {i}: {share} vs {want}");
        }
        // And keys drawn at random land in the same proportions.
        let keys = 50_000u64;
        let mut counts = vec![0u64; n];
        for k in 0..keys {
            counts[t.pick(hash_u64(seed, k), |_| true).expect("server")] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            let want = f64::from(list[i].1) / f64::from(total) * keys as f64;
            prop_assert!((*c as f64 / want - 1.0).abs() <= 0.05 + 3.0 / want.sqrt(),
                "server {i}: {c} keys vs {want}");
        }
    }

    /// Taking a server down moves exactly its keys; every other key stays put.
    #[test]
    fn removal_moves_only_the_removed_servers_keys(n in 2usize..=30, down in 0usize..30, seed in any::<u64>()) {
        let down = down % n;
        let t = small(&servers(n));
        for k in 0..2_000u64 {
            let key = hash_u64(seed, k);
            let before = t.pick(key, |_| true).expect("server");
            let after = t.pick(key, |i| i != down).expect("server");
            if before == down {
                prop_assert_ne!(after, down);
            } else {
                prop_assert_eq!(after, before);
            }
        }
    }


    /// Bounded loads: assigning keys one by one never lets a server exceed ⌈c × average⌉.
    #[test]
    fn bounded_loads_cap_the_maximum(n in 2usize..=20, c in 1.05f64..2.0, keys in 50u64..2000, seed in any::<u64>()) {
        let t = small(&servers(n));
        let mut loads = vec![0u64; n];
        for k in 0..keys {
            let total = loads.iter().sum();
            let i = t.pick_bounded(hash_u64(seed, k), c, total, |_| true, |i| loads[i]).expect("server");
            loads[i] += 1;
        }
        let avg = keys as f64 / n as f64;
        let max = *loads.iter().max().expect("servers") as f64;
        prop_assert!(max <= (c * avg).ceil(), "max {max} avg {avg} c {c}");
    }
}

proptest! {
    // Two full-size tables per case: few cases, the bound has a wide margin (≤ 1.05 measured).
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Adding an (N+1)-th server moves at most 1.1/(N+1) of the keyspace.
    #[test]
    fn addition_moves_little(n in 3usize..=50, seed in any::<u64>()) {
        let mut list: Vec<(String, u32)> = (0..n).map(|i| (format!("{seed:x}-{i}"), 1)).collect();
        let before = Maglev::new(&list);
        list.push((format!("{seed:x}-new"), 1));
        let after = Maglev::new(&list);
        prop_assert_eq!(before.table().len(), after.table().len());
        let moved = before.table().iter().zip(after.table()).filter(|(a, b)| a != b).count();
        let frac = moved as f64 / before.table().len() as f64;
        prop_assert!(frac <= 1.1 / (n as f64 + 1.0), "moved {frac} with {n}+1 servers");
    }
}
