//! Client location over the synthetic world database (460,000 networks): load time and the
//! cost of one `Locator::locate`, with addresses drawn from the database's own networks the way
//! the `world` DNS workload draws them (90 % IPv4, 10 % IPv6).
//!
//! `cargo bench --bench locate`; the database is `../shared/testdata/synthetic/world-synthetic.mmdb`
//! or `MERIDIAN_WORLD_MMDB`. Besides criterion's figures it prints a per-call latency
//! distribution (each call timed on its own, so the timer's own cost, printed too, is included).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;

use meridian::config::zone::model::{GeoipConfig, NetOverride, NetTarget};
use meridian::geo::{GeoDatabase, Locator};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// 100,000 addresses inside the database's networks: 90 % IPv4, 10 % IPv6, seeded.
fn addresses(path: &Path) -> Vec<IpAddr> {
    let (v4, v6) = common::networks(path);
    let mut rng = StdRng::seed_from_u64(20240601);
    (0..100_000)
        .map(|i| {
            if i % 10 == 9 {
                let (a, p) = v6[rng.random_range(0..v6.len())];
                let host = u128::MAX >> p;
                IpAddr::V6(Ipv6Addr::from(a | (rng.random::<u128>() & host)))
            } else {
                let (a, p) = v4[rng.random_range(0..v4.len())];
                let host = if p >= 32 { 0 } else { u32::MAX >> p };
                IpAddr::V4(Ipv4Addr::from(a | (rng.random::<u32>() & host)))
            }
        })
        .collect()
}

/// The `nets` workload's 258 networks as overrides, to price the override layer.
fn nets_overrides() -> Vec<NetOverride> {
    let mut v: Vec<NetOverride> = (0..256)
        .map(|n| NetOverride {
            net: format!("10.{n}.0.0/16").parse().expect("net"),
            target: NetTarget::Datacenters(vec![n % 3]),
        })
        .collect();
    for (net, dc) in [("172.16.0.0/12", 1), ("192.168.0.0/16", 2)] {
        v.push(NetOverride {
            net: net.parse().expect("net"),
            target: NetTarget::Datacenters(vec![dc]),
        });
    }
    v
}

fn latency_distribution(name: &str, l: &Locator, addrs: &[IpAddr]) {
    common::per_call(name, addrs, 5, |a| {
        black_box(l.locate(black_box(*a)));
    });
}

fn bench(c: &mut Criterion) {
    let path = common::world();
    let start = Instant::now();
    let db = Arc::new(GeoDatabase::open(&path).expect("world database"));
    let (r4, r6) = db.range_counts();
    println!(
        "loaded {} in {:?}: {} networks, {} locations, {r4} IPv4 + {r6} IPv6 ranges",
        path.display(),
        start.elapsed(),
        db.network_count(),
        db.location_count()
    );
    let addrs = addresses(&path);
    let plain = Locator::with_database(Arc::clone(&db), &GeoipConfig::default());
    let with_nets = Locator::with_database(
        Arc::clone(&db),
        &GeoipConfig {
            nets: nets_overrides(),
            ..Default::default()
        },
    );
    latency_distribution("locate world", &plain, &addrs);
    latency_distribution("locate world + 258 overrides", &with_nets, &addrs);

    let mut g = c.benchmark_group("locate");
    for (name, l) in [("world", &plain), ("world+nets", &with_nets)] {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % addrs.len();
                black_box(l.locate(black_box(addrs[i])))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("world-synthetic.mmdb", |b| {
        b.iter(|| black_box(GeoDatabase::open(&path).expect("world database")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
