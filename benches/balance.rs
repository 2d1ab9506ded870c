//! Micro-benchmarks of the shared balancer engine: the cost of one pick per algorithm, and of
//! building the tables that are rebuilt on configuration changes.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use meridian::balance::{
    Maglev, PeakEwma, SmoothWeighted, WeightedRandom, hash_u64, least_loaded, p2c_pick, round_robin,
};

const N: usize = 16;

fn picks(c: &mut Criterion) {
    let counter = AtomicUsize::new(0);
    let mut g = c.benchmark_group("pick_16_servers");
    g.bench_function("round_robin", |b| {
        b.iter(|| {
            round_robin(counter.fetch_add(1, Ordering::Relaxed), N, |i| {
                black_box(i) != 3
            })
        })
    });
    let swrr = SmoothWeighted::new(&(1..=N as u32).collect::<Vec<_>>());
    g.bench_function("smooth_weighted", |b| {
        b.iter(|| {
            swrr.pick(counter.fetch_add(1, Ordering::Relaxed), |i| {
                black_box(i) != 3
            })
        })
    });
    let loads: Vec<AtomicU64> = (0..N as u64).map(|i| AtomicU64::new(i % 5)).collect();
    g.bench_function("least_connections", |b| {
        b.iter(|| {
            least_loaded(
                N,
                counter.fetch_add(1, Ordering::Relaxed),
                |i| black_box(i) != 3,
                |i| (loads[i].load(Ordering::Relaxed), 1),
            )
        })
    });
    let ewma: Vec<PeakEwma> = (0..N)
        .map(|i| PeakEwma::new(1e6 * (i + 1) as f64, 0))
        .collect();
    let mut k = 0u64;
    g.bench_function("p2c_peak_ewma", |b| {
        b.iter(|| {
            k += 1;
            let r = (hash_u64(1, k), hash_u64(2, k));
            p2c_pick(
                N,
                r,
                |i| i != 3,
                |i| ewma[i].cost(k, 1e10, loads[i].load(Ordering::Relaxed)),
            )
        })
    });
    let ids: Vec<(String, u32)> = (0..N).map(|i| (format!("10.0.0.{i}:80"), 1)).collect();
    let maglev = Maglev::new(&ids);
    g.bench_function("maglev", |b| {
        b.iter(|| {
            k += 1;
            maglev.pick(hash_u64(7, k), |i| i != 3)
        })
    });
    g.bench_function("maglev_bounded", |b| {
        b.iter(|| {
            k += 1;
            maglev.pick_bounded(
                hash_u64(7, k),
                1.25,
                40,
                |i| i != 3,
                |i| loads[i].load(Ordering::Relaxed),
            )
        })
    });
    let wr = WeightedRandom::new(&(1..=N as u32).collect::<Vec<_>>());
    g.bench_function("weighted_random", |b| {
        b.iter(|| {
            k += 1;
            wr.draw_eligible(hash_u64(3, k), |i| i != 3)
        })
    });
    g.finish();
}

fn builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    let ids: Vec<(String, u32)> = (0..50).map(|i| (format!("10.0.0.{i}:80"), 1)).collect();
    g.bench_function("maglev_50_servers", |b| {
        b.iter(|| Maglev::new(black_box(&ids)))
    });
    let w: Vec<u32> = (1..=50).collect();
    g.bench_function("smooth_weighted_50_servers", |b| {
        b.iter(|| SmoothWeighted::new(black_box(&w)))
    });
    g.finish();
}

criterion_group!(benches, picks, builds);
criterion_main!(benches);
