//! Properties of the locator over MaxMind's test databases, the demo database and the synthetic
//! world database (460,000 networks):
//!
//! - it agrees with the maxminddb crate's own lookup on random addresses (embedded IPv4 forms
//!   are compared with the crate's lookup of the embedded IPv4 address);
//! - every address of the returned scope block gets the same location;
//! - overrides follow longest-prefix-wins over the database.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use maxminddb::{Reader, WithinOptions, geoip2};
use meridian::config::codes;
use meridian::config::zone::model::{GeoipConfig, NetOverride, NetTarget};
use meridian::geo::{GeoDatabase, Locator, Origin};
use proptest::prelude::*;

use super::geo::{maxmind, over, place};

/// The synthetic world database beside the repository (`../shared/testdata/synthetic/`), or
/// where `MERIDIAN_WORLD_MMDB` points.
/// Fixtures a case may pick: the five bundled databases and the world one; an index past the
/// loaded fixtures (the world database is optional) wraps around.
const FIXTURE_SLOTS: usize = 6;

pub(crate) fn world_mmdb() -> PathBuf {
    match std::env::var_os("MERIDIAN_WORLD_MMDB") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/synthetic/world-synthetic.mmdb"),
    }
}

struct Fixture {
    name: String,
    reader: Reader<Vec<u8>>,
    db: Arc<GeoDatabase>,
    locator: Locator,
    /// Every network with data: (first address, prefix length, v4?).
    nets: Vec<(u128, u8, bool)>,
}

fn fixture(path: PathBuf) -> Fixture {
    assert!(path.is_file(), "{} is missing", path.display());
    let reader = Reader::open_readfile(&path).unwrap();
    let mut nets = Vec::new();
    for item in reader.networks(WithinOptions::default()).unwrap() {
        let item = item.unwrap();
        let net = item.network().unwrap();
        match net.ip() {
            IpAddr::V4(a) => nets.push((u128::from(u32::from(a)), net.prefix(), true)),
            IpAddr::V6(a) => nets.push((u128::from(a), net.prefix(), false)),
        }
    }
    let db = Arc::new(GeoDatabase::open(&path).unwrap());
    let locator = Locator::with_database(Arc::clone(&db), &GeoipConfig::default());
    Fixture {
        name: path.file_name().unwrap().to_string_lossy().into(),
        reader,
        db,
        locator,
        nets,
    }
}

static FIXTURES: LazyLock<Vec<Fixture>> = LazyLock::new(|| {
    let mut v: Vec<Fixture> = [
        "GeoIP2-City-Test.mmdb",
        "GeoLite2-City-Test.mmdb",
        "GeoIP2-Country-Test.mmdb",
        "GeoLite2-Country-Test.mmdb",
    ]
    .into_iter()
    .map(|n| fixture(maxmind(n)))
    .collect();
    v.push(fixture(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo.mmdb"),
    ));
    // The world database lives beside the repository (the benchmark data); a clone without it
    // still checks the five databases above.
    let world = world_mmdb();
    if world.is_file() {
        v.push(fixture(world));
    } else {
        eprintln!(
            "note: {} not found; world database left out",
            world.display()
        );
    }
    v
});

#[derive(Debug, PartialEq)]
struct Place {
    country: Option<String>,
    continent: Option<String>,
    subdivision: Option<String>,
    eu: bool,
    point: Option<(u64, u64)>,
}

/// What the maxminddb crate says about `a`, in the locator's terms (`None`: no place).
fn oracle(r: &Reader<Vec<u8>>, a: IpAddr) -> Option<Place> {
    let c: geoip2::City<'_> = r.lookup(a).unwrap().decode().unwrap()?;
    let country = if c.country.iso_code.is_some() {
        &c.country
    } else {
        &c.registered_country
    };
    let cc = country.iso_code.map(String::from);
    let p = Place {
        eu: country
            .is_in_european_union
            .unwrap_or_else(|| cc.as_deref().is_some_and(codes::is_eu_member)),
        subdivision: match (&cc, c.subdivisions.first().and_then(|s| s.iso_code)) {
            (Some(cc), Some(s)) => Some(format!("{cc}-{s}")),
            _ => None,
        },
        country: cc,
        continent: c.continent.code.map(String::from),
        point: c
            .location
            .latitude
            .zip(c.location.longitude)
            .map(|(a, b)| (a.to_bits(), b.to_bits())),
    };
    let empty = p.country.is_none() && p.continent.is_none() && p.point.is_none();
    (!empty).then_some(p)
}

fn located(l: &Locator, a: IpAddr) -> Option<Place> {
    let loc = l.location(l.locate(a).loc);
    if loc.origin == Origin::Default {
        return None;
    }
    Some(Place {
        country: loc.country.as_deref().map(String::from),
        continent: loc.continent.as_deref().map(String::from),
        subdivision: loc.subdivision.as_deref().map(String::from),
        eu: loc.eu,
        point: loc.point.map(|p| (p.lat.to_bits(), p.lon.to_bits())),
    })
}

/// The IPv4 address a locator uses for `a` (embedded forms), or `a` itself.
fn lookup_address(a: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = a else { return a };
    let x = u128::from(v6);
    let v4 = if x >> 32 == 0 || x >> 32 == 0xffff {
        x as u32
    } else if x >> 112 == 0x2002 {
        (x >> 80) as u32
    } else if x >> 96 == 0x2001_0000 {
        !(x as u32)
    } else {
        return a;
    };
    IpAddr::V4(Ipv4Addr::from(v4))
}

/// An address to probe: inside a network of the database, next to one, uniform, or an
/// embedded form of one inside.
fn address(f: &Fixture, kind: u8, pick: usize, noise: u128) -> IpAddr {
    let (start, prefix, v4) = f.nets[pick % f.nets.len()];
    let bits = if v4 { 32 } else { 128 };
    let host = if u32::from(prefix) >= bits {
        0
    } else {
        (u128::MAX >> (128 - bits)) >> prefix
    };
    let inside = start | (noise & host);
    let mk = |x: u128| {
        if v4 {
            IpAddr::V4(Ipv4Addr::from(x as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(x))
        }
    };
    match kind % 6 {
        0 => mk(inside),
        1 => mk(start.wrapping_sub(1) & (u128::MAX >> (128 - bits))),
        2 => mk((start | host).wrapping_add(1) & (u128::MAX >> (128 - bits))),
        3 => IpAddr::V4(Ipv4Addr::from(noise as u32)),
        4 => IpAddr::V6(Ipv6Addr::from((0x2u128 << 125) | (noise >> 3))),
        _ if v4 => {
            let a = inside as u32;
            IpAddr::V6(Ipv6Addr::from(match noise % 3 {
                0 => (0xffff_u128 << 32) | u128::from(a),
                1 => (0x2002_u128 << 112) | (u128::from(a) << 80) | (noise & 0xffff_ffff),
                _ => {
                    (0x2001_0000_u128 << 96)
                        | (noise & (0xffff_ffff_ffff_ffff << 32))
                        | u128::from(!a)
                }
            }))
        }
        _ => mk(inside),
    }
}

/// Addresses of the aligned `/scope` block around `a`: both ends and some inside.
fn block(a: IpAddr, scope: u8, noise: &[u128]) -> Vec<IpAddr> {
    let (x, bits) = match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32u32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let space = u128::MAX >> (128 - bits);
    let host = if u32::from(scope) >= bits {
        0
    } else {
        space >> scope
    };
    let first = x & !host & space;
    let mut out = vec![first, first | host];
    out.extend(noise.iter().map(|n| first | (n & host)));
    out.into_iter()
        .map(|y| match a {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(y as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(y)),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_the_maxminddb_crate(
        which in 0usize..FIXTURE_SLOTS, kind in 0u8..6, pick in any::<usize>(), noise in any::<u128>()
    ) {
        let f = &FIXTURES[which % FIXTURES.len()];
        let a = address(f, kind, pick, noise);
        let want = oracle(&f.reader, lookup_address(a));
        prop_assert_eq!(located(&f.locator, a), want, "{} {}", f.name, a);
        // Without overrides the scope never exceeds the database network's own prefix.
        if lookup_address(a) == a {
            let res = f.reader.lookup(a).unwrap();
            if res.has_data() {
                let hit = f.locator.locate(a);
                prop_assert!(hit.scope <= res.network().unwrap().prefix(), "{} {}", f.name, a);
            }
        }
    }

    #[test]
    fn every_address_in_the_scope_block_gets_the_same_location(
        which in 0usize..FIXTURE_SLOTS, kind in 0u8..6, pick in any::<usize>(), noise in any::<u128>(),
        inner in proptest::collection::vec(any::<u128>(), 6)
    ) {
        let f = &FIXTURES[which % FIXTURES.len()];
        let a = address(f, kind, pick, noise);
        let hit = f.locator.locate(a);
        for b in block(a, hit.scope, &inner) {
            prop_assert_eq!(f.locator.locate(b).loc, hit.loc, "{} {} /{} vs {}", f.name, a, hit.scope, b);
        }
    }
}

/// Random IPv4 overrides near the database's own networks.
fn overrides(f: &Fixture, picks: &[(usize, u8, u8)]) -> Vec<NetOverride> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for &(pick, len, what) in picks {
        let v4: Vec<_> = f.nets.iter().filter(|n| n.2).collect();
        let &(start, _, _) = v4[pick % v4.len()];
        let prefix = 8 + len % 23;
        let net = format!(
            "{}/{prefix}",
            Ipv4Addr::from((start as u32) & (u32::MAX << (32 - prefix)))
        );
        if !seen.insert(net.clone()) {
            continue;
        }
        let target = match what % 3 {
            0 => place("DE"),
            1 => place("JP"),
            _ => NetTarget::Datacenters(vec![usize::from(what % 4)]),
        };
        out.push(over(&net, target));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn overrides_are_longest_prefix_first_and_scopes_stay_uniform(
        which in 0usize..FIXTURE_SLOTS,
        picks in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
        probes in proptest::collection::vec((0u8..6, any::<usize>(), any::<u128>()), 16),
        inner in proptest::collection::vec(any::<u128>(), 4)
    ) {
        let f = &FIXTURES[which % FIXTURES.len()];
        let nets = overrides(f, &picks);
        let config = GeoipConfig { database: None, default: None, nets: nets.clone() };
        let l = Locator::with_database(Arc::clone(&f.db), &config);
        for &(kind, pick, noise) in &probes {
            let a = address(f, kind, pick, noise);
            let hit = l.locate(a);
            let v4 = lookup_address(a);
            let winner = nets
                .iter()
                .filter(|n| n.net.contains(&v4))
                .max_by_key(|n| n.net.prefix_len());
            let loc = l.location(hit.loc);
            match winner {
                Some(n) => {
                    prop_assert_eq!(loc.origin, Origin::Override);
                    match &n.target {
                        NetTarget::Datacenters(d) => prop_assert_eq!(&*loc.datacenters, &d[..]),
                        NetTarget::Location(s) => prop_assert_eq!(loc.country.as_deref(), s.country.as_deref()),
                    }
                }
                None => prop_assert_eq!(located(&l, a), oracle(&f.reader, v4), "{}", a),
            }
            for b in block(a, hit.scope, &inner) {
                prop_assert_eq!(l.locate(b).loc, hit.loc, "{} {} /{} vs {}", f.name, a, hit.scope, b);
            }
        }
    }
}

fn truncate(a: IpAddr, p: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if p == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = if p == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(p.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// An ECS subnet is located as its truncated address, except an embedded IPv4 form whose
    /// known bits do not decide the place: that gets the default, scoped to at least the
    /// source prefix.
    #[test]
    fn subnets_are_located_as_their_truncated_address(
        which in 0usize..FIXTURE_SLOTS, kind in 0u8..6, pick in any::<usize>(), noise in any::<u128>(),
        p in any::<u8>()
    ) {
        let f = &FIXTURES[which % FIXTURES.len()];
        let a = address(f, kind, pick, noise);
        let p = if a.is_ipv4() { p % 33 } else { p % 129 };
        let t = truncate(a, p);
        let sub = f.locator.locate_subnet(a, p);
        let full = f.locator.locate(t);
        if sub != full {
            prop_assert_ne!(lookup_address(t), t, "only embedded forms differ: {}/{}", a, p);
            prop_assert_eq!(sub.loc, f.locator.default_location());
            prop_assert!(sub.scope >= p && sub.scope >= full.scope.min(p));
        }
    }
}
