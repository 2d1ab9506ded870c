//! Shared by the benchmarks: the synthetic world database, its networks, and a per-call
//! latency distribution.

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use maxminddb::{Reader, WithinOptions};

/// `../shared/testdata/synthetic/world-synthetic.mmdb`, or `MERIDIAN_WORLD_MMDB`.
pub fn world() -> PathBuf {
    std::env::var_os("MERIDIAN_WORLD_MMDB").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/testdata/synthetic/world-synthetic.mmdb")
        },
        PathBuf::from,
    )
}

/// Networks as (first address, prefix length).
pub type Nets<A> = Vec<(A, u8)>;

/// Every network of a database: IPv4 and IPv6.
pub fn networks(path: &Path) -> (Nets<u32>, Nets<u128>) {
    let reader = Reader::open_readfile(path).expect("world database");
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for item in reader.networks(WithinOptions::default()).expect("networks") {
        let net = item.expect("network").network().expect("network");
        match net.ip() {
            IpAddr::V4(a) => v4.push((u32::from(a), net.prefix())),
            IpAddr::V6(a) => v6.push((u128::from(a), net.prefix())),
        }
    }
    (v4, v6)
}

/// Times each call of `f` on its own over `rounds` passes and prints p50/p90/p99/p99.9 with the
/// timer's own cost beside (it is included in the figures).
pub fn per_call<T>(name: &str, items: &[T], rounds: usize, mut f: impl FnMut(&T)) {
    let timer = {
        let mut t: Vec<Duration> = (0..100_000)
            .map(|_| {
                let s = Instant::now();
                std::hint::black_box(());
                s.elapsed()
            })
            .collect();
        t.sort();
        t[t.len() / 2]
    };
    let mut t: Vec<Duration> = Vec::with_capacity(items.len() * rounds);
    for _ in 0..rounds {
        for item in items {
            let s = Instant::now();
            f(item);
            t.push(s.elapsed());
        }
    }
    t.sort();
    let q = |p: f64| t[((t.len() as f64 - 1.0) * p) as usize].as_nanos();
    println!(
        "{name}: per call, timer included: p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns \
         (timer alone: {} ns)",
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        timer.as_nanos()
    );
}
