//! The whole steering decision per query — locate the client subnet, then run the policy
//! pipeline (health, sovereignty, order, answers) — over the synthetic world database
//! (460,000 networks). Issue target: under 1 µs per query.
//!
//! `cargo bench --bench decide`; the database is `../shared/testdata/synthetic/world-synthetic.mmdb`
//! or `MERIDIAN_WORLD_MMDB`. Besides criterion's mean it prints a per-call distribution (each
//! call timed on its own, so the timer's cost, printed too, is included).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;

use meridian::config::zone::parse_zone;
use meridian::geo::{DatabaseCache, Locator};
use meridian::gslb::GeoSteering;
use meridian::probe::{DcHealth, ZoneHealth};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Client subnets as the `world` DNS workload sends them: 90 % IPv4 /24, 10 % IPv6 /56, each
/// inside a network of the database.
fn subnets(path: &Path) -> Vec<(IpAddr, u8)> {
    let (v4, v6) = common::networks(path);
    let mut rng = StdRng::seed_from_u64(7);
    (0..100_000)
        .map(|i| {
            if i % 10 == 9 {
                let (a, p) = v6[rng.random_range(0..v6.len())];
                let host = u128::MAX >> p;
                let x = (a | (rng.random::<u128>() & host)) & (u128::MAX << 72);
                (IpAddr::V6(Ipv6Addr::from(x)), 56)
            } else {
                let (a, p) = v4[rng.random_range(0..v4.len())];
                let host = if p >= 32 { 0 } else { u32::MAX >> p };
                let x = (a | (rng.random::<u32>() & host)) & 0xffff_ff00;
                (IpAddr::V4(Ipv4Addr::from(x)), 24)
            }
        })
        .collect()
}

fn zone(db: &Path) -> String {
    format!(
        r#"
origin = "geo.example."
nameservers = ["ns1.geo.example."]
soa = {{ mname = "ns1.geo.example.", rname = "hostmaster.geo.example." }}
[geoip]
database = {db:?}
[datacenters.us-east]
location = {{ lat = 38.95, lon = -77.45 }}
addresses = ["192.0.2.1"]
[datacenters.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
addresses = ["198.51.100.1"]
[datacenters.ap-northeast]
location = {{ lat = 35.68, lon = 139.69 }}
addresses = ["203.0.113.1"]

# The `world` workload: continent → datacenter.
[[services]]
name = "www"
policy = "geo"
datacenters = ["us-east", "eu-west", "ap-northeast"]
default = "us-east"
[services.geo.continents]
EU = ["eu-west"]
AF = ["eu-west"]
NA = ["us-east"]
SA = ["us-east"]
AS = ["ap-northeast"]
OC = ["ap-northeast"]

# Distance ordering, two answers, and an EU fence.
[[services]]
name = "near"
policy = "geo"
datacenters = ["us-east", "eu-west", "ap-northeast"]
answers = 2
sovereignty = [{{ clients = "EU", datacenters = ["eu-west"] }}]

[[services]]
name = "hash"
policy = "consistent-hash"
datacenters = ["us-east", "eu-west", "ap-northeast"]
"#
    )
}

fn distribution(name: &str, s: &GeoSteering, svc: usize, subnets: &[(IpAddr, u8)]) {
    common::per_call(&format!("decide {name}"), subnets, 3, |&(a, p)| {
        black_box(s.decide(svc, black_box(a), p));
    });
}

fn bench(c: &mut Criterion) {
    let db = common::world();
    let z = Arc::new(parse_zone(Path::new("geo.example.toml"), &zone(&db)).expect("zone"));
    let locator = Arc::new(Locator::new(&z.geoip, &mut DatabaseCache::default()).expect("locator"));
    let health = Arc::new(ZoneHealth::new(z.origin.clone(), vec![DcHealth::UP; 3]));
    let s = GeoSteering::new(Arc::clone(&z), locator, health);
    let subnets = subnets(&db);
    let services = [
        ("continent-map", 0),
        ("distance+fence", 1),
        ("consistent-hash", 2),
    ];
    for (name, svc) in services {
        distribution(name, &s, svc, &subnets);
    }
    let mut g = c.benchmark_group("decide");
    for (name, svc) in services {
        g.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % subnets.len();
                let (a, p) = subnets[i];
                black_box(s.decide(svc, black_box(a), p))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
