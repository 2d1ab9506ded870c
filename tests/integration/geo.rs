//! Client location over MaxMind's test databases: fields, fallbacks, overrides, embedded IPv4,
//! ECS scopes and broken files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meridian::config::zone::model::{GeoPoint, GeoipConfig, LocationSpec, NetOverride, NetTarget};
use meridian::geo::{DatabaseCache, GeoDatabase, GeoError, Hit, Locator, Origin};

/// A MaxMind test database copied into the repository.
pub(crate) fn maxmind(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/maxmind")
        .join(name)
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn over(net: &str, target: NetTarget) -> NetOverride {
    NetOverride {
        net: net.parse().unwrap(),
        target,
    }
}

pub(crate) fn place(country: &str) -> NetTarget {
    NetTarget::Location(spec(country))
}

fn spec(country: &str) -> LocationSpec {
    LocationSpec {
        country: Some(country.into()),
        eu: Some(meridian::config::codes::is_eu_member(country)),
        ..Default::default()
    }
}

fn locator(db: Option<&str>, nets: Vec<NetOverride>, default: Option<LocationSpec>) -> Locator {
    let config = GeoipConfig {
        database: db.map(maxmind),
        default,
        nets,
    };
    Locator::new(&config, &mut DatabaseCache::new()).unwrap()
}

fn country(l: &Locator, a: &str) -> Option<String> {
    l.location(l.locate(ip(a)).loc)
        .country
        .as_deref()
        .map(String::from)
}

#[test]
fn city_databases_place_gb_us_jp_and_se() {
    for db in ["GeoIP2-City-Test.mmdb", "GeoLite2-City-Test.mmdb"] {
        let l = locator(Some(db), vec![], None);
        let gb = l.location(l.locate(ip("81.2.69.160")).loc);
        assert_eq!(gb.country.as_deref(), Some("GB"), "{db}");
        assert_eq!(gb.continent.as_deref(), Some("EU"));
        assert_eq!(gb.subdivision.as_deref(), Some("GB-ENG"));
        assert!(!gb.eu, "GB left the EU");
        assert_eq!(gb.origin, Origin::Database);
        let p = gb.point.unwrap();
        assert!((p.lat - 51.5142).abs() < 1e-9 && (p.lon + 0.0931).abs() < 1e-9);
        let us = l.location(l.locate(ip("216.160.83.56")).loc);
        assert_eq!(us.country.as_deref(), Some("US"));
        assert_eq!(us.continent.as_deref(), Some("NA"));
        assert_eq!(us.subdivision.as_deref(), Some("US-WA"));
        let jp = l.location(l.locate(ip("2001:218::1")).loc);
        assert_eq!(jp.country.as_deref(), Some("JP"));
        assert_eq!(jp.continent.as_deref(), Some("AS"));
        let se = l.location(l.locate(ip("89.160.20.128")).loc);
        assert_eq!(se.country.as_deref(), Some("SE"));
        assert!(se.eu);
        assert_eq!(se.subdivision.as_deref(), Some("SE-E"));
    }
}

#[test]
fn country_databases_place_without_coordinates() {
    for db in ["GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb"] {
        let l = locator(Some(db), vec![], None);
        assert_eq!(country(&l, "81.2.69.160").as_deref(), Some("GB"), "{db}");
        assert_eq!(country(&l, "216.160.83.56").as_deref(), Some("US"));
        assert_eq!(country(&l, "2001:218::1").as_deref(), Some("JP"));
        assert_eq!(l.location(l.locate(ip("81.2.69.160")).loc).point, None);
    }
}

#[test]
fn broken_and_foreign_databases_are_clear_errors() {
    for (db, want) in [
        (
            "GeoIP2-City-Test-Broken-Double-Format.mmdb",
            "corrupt MaxMind DB",
        ),
        ("GeoIP2-City-Test-Invalid-Node-Count.mmdb", "MaxMind DB"),
        ("MaxMind-DB-test-broken-search-tree-24.mmdb", "MaxMind DB"),
        ("GeoLite2-ASN-Test.mmdb", "has no location data"),
        ("MaxMind-DB-test-ipv4-24.mmdb", "has no location data"),
    ] {
        let e = GeoDatabase::open(&maxmind(db)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(db) && msg.contains(want), "{db}: {msg}");
    }
    let e = GeoDatabase::open(Path::new("/nonexistent/x.mmdb")).unwrap_err();
    assert!(matches!(e, GeoError::Io { .. }), "{e}");
    let e = GeoDatabase::from_bytes(Path::new("junk"), b"not a database".to_vec()).unwrap_err();
    assert!(matches!(e, GeoError::Open { .. }), "{e}");
}

#[test]
fn embedded_ipv4_is_located_as_ipv4_with_ipv6_scopes() {
    let l = locator(Some("GeoIP2-City-Test.mmdb"), vec![], None);
    let v4 = l.locate(ip("81.2.69.160"));
    assert_eq!(v4.scope, 27, "81.2.69.160/27 is the London network");
    // 81.2.69.160 = 0x510245a0.
    let cases = [
        ("::ffff:81.2.69.160", 96 + 27),
        ("2002:5102:45a0::1", 16 + 27),
        // Teredo: the client is the last 32 bits inverted (0xaefdba5f = !0x510245a0).
        ("2001:0:4136:e378:8000:63bf:aefd:ba5f", 96 + 27),
    ];
    for (a, scope) in cases {
        assert_eq!(l.locate(ip(a)), Hit { loc: v4.loc, scope }, "{a}");
    }
}

#[test]
fn unknown_and_private_addresses_get_the_zone_default() {
    let default = LocationSpec {
        country: Some("US".into()),
        continent: Some("NA".into()),
        point: Some(GeoPoint {
            lat: 38.9,
            lon: -77.0,
        }),
        ..Default::default()
    };
    let l = locator(Some("GeoIP2-City-Test.mmdb"), vec![], Some(default));
    for a in [
        "10.0.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "2001:db8::1",
    ] {
        let hit = l.locate(ip(a));
        assert_eq!(hit.loc, l.default_location(), "{a}");
        let loc = l.location(hit.loc);
        assert_eq!(
            (loc.origin, loc.country.as_deref()),
            (Origin::Default, Some("US"))
        );
    }
    let bare = locator(Some("GeoIP2-City-Test.mmdb"), vec![], None);
    let loc = bare.location(bare.locate(ip("10.0.0.1")).loc);
    assert!(loc.is_empty() && loc.origin == Origin::Default);
}

#[test]
fn overrides_win_and_split_the_database_network_around_them() {
    let l = locator(
        Some("GeoIP2-City-Test.mmdb"),
        vec![
            over("81.2.69.160/28", NetTarget::Datacenters(vec![2, 0])),
            over("10.0.0.0/8", place("US")),
            over("10.20.0.0/16", place("DE")),
        ],
        None,
    );
    let hit = l.locate(ip("81.2.69.165"));
    let loc = l.location(hit.loc);
    assert_eq!(
        (&*loc.datacenters, loc.origin, hit.scope),
        (&[2, 0][..], Origin::Override, 28)
    );
    // The rest of the London /27 keeps its database location, with a scope that excludes the
    // override.
    let rest = l.locate(ip("81.2.69.180"));
    assert_eq!(country(&l, "81.2.69.180").as_deref(), Some("GB"));
    assert_eq!(rest.scope, 28);
    let de = l.locate(ip("10.20.1.1"));
    assert_eq!(
        (country(&l, "10.20.1.1").as_deref(), de.scope),
        (Some("DE"), 16)
    );
    assert!(l.location(de.loc).eu);
    let us = l.locate(ip("10.21.0.1"));
    assert_eq!(
        (country(&l, "10.21.0.1").as_deref(), us.scope),
        (Some("US"), 16)
    );
    assert_eq!(l.locate(ip("10.200.0.1")).scope, 9);
}

#[test]
fn ipv6_overrides_leave_embedded_ranges_to_ipv4_unless_as_specific() {
    let l = locator(
        Some("GeoIP2-City-Test.mmdb"),
        vec![over("2000::/3", place("JP"))],
        None,
    );
    assert_eq!(country(&l, "2003::1").as_deref(), Some("JP"));
    assert_eq!(country(&l, "2002:5102:45a0::1").as_deref(), Some("GB"));
    let jp = l.locate(ip("2003::1"));
    assert_eq!(jp.scope, 16, "the block must stop at 2002::/16");
    let l = locator(
        Some("GeoIP2-City-Test.mmdb"),
        vec![over("2002::/16", place("JP"))],
        None,
    );
    assert_eq!(country(&l, "2002:5102:45a0::1").as_deref(), Some("JP"));
}

#[test]
fn nets_workload_map_gives_gdnsd_scopes() {
    // The bench's `nets` map as overrides, no database: 10.N/16 → N mod 3, 172.16/12, 192.168/16.
    let mut nets: Vec<NetOverride> = (0..256)
        .map(|n| {
            over(
                &format!("10.{n}.0.0/16"),
                NetTarget::Datacenters(vec![n % 3]),
            )
        })
        .collect();
    nets.push(over("172.16.0.0/12", NetTarget::Datacenters(vec![1])));
    nets.push(over("192.168.0.0/16", NetTarget::Datacenters(vec![2])));
    let l = locator(None, nets, None);
    let dcs = |a: &str| l.location(l.locate(ip(a)).loc).datacenters.to_vec();
    assert_eq!(dcs("10.0.5.0"), vec![0]);
    assert_eq!(dcs("10.1.5.0"), vec![1]);
    assert_eq!(dcs("10.2.5.0"), vec![2]);
    assert_eq!(l.locate(ip("10.1.5.0")).scope, 16);
    assert_eq!(l.locate(ip("172.20.1.0")).scope, 12);
    assert_eq!(l.locate(ip("192.168.3.0")).scope, 16);
    let unmapped = l.locate(ip("100.64.1.0"));
    assert_eq!(
        (unmapped.loc, unmapped.scope),
        (l.default_location(), 2),
        "64.0.0.0/2 as gdnsd"
    );
}

#[test]
fn subnets_that_hide_the_embedded_ipv4_get_the_default() {
    let l = locator(Some("GeoIP2-City-Test.mmdb"), vec![], None);
    let gb = l.locate(ip("81.2.69.160")).loc;
    let sub = |a: &str, p: u8| l.locate_subnet(ip(a), p);
    // 6to4 /48 carries all 32 IPv4 bits; a /56 of it too.
    assert_eq!(sub("2002:5102:45a0::1", 56).loc, gb);
    assert_eq!(sub("2002:5102:45a0::1", 48), Hit { loc: gb, scope: 43 });
    // A /40 carries 24 IPv4 bits: 81.2.69.0/24 is not one location, so the default.
    assert_eq!(
        sub("2002:5102:45a0::1", 40),
        Hit {
            loc: l.default_location(),
            scope: 40
        }
    );
    // Teredo clients sit in the last 32 bits, which a /56 never carries.
    let t = sub("2001:0:4136:e378:8000:63bf:aefd:ba5f", 56);
    assert_eq!(
        t,
        Hit {
            loc: l.default_location(),
            scope: 56
        }
    );
    // IPv4 subnets are plain truncation.
    assert_eq!(
        l.locate_subnet(ip("81.2.69.170"), 24),
        l.locate(ip("81.2.69.0"))
    );
    assert_eq!(
        l.locate_subnet(ip("81.2.69.170"), 32),
        l.locate(ip("81.2.69.170"))
    );
}

#[test]
fn zones_share_one_compiled_database() {
    let mut cache = DatabaseCache::new();
    let config = |nets| GeoipConfig {
        database: Some(maxmind("GeoIP2-City-Test.mmdb")),
        default: None,
        nets,
    };
    let a = Locator::new(&config(vec![]), &mut cache).unwrap();
    let b = Locator::new(&config(vec![over("81.2.69.0/24", place("FR"))]), &mut cache).unwrap();
    assert!(Arc::ptr_eq(a.database(), b.database()));
    assert_eq!(cache.len(), 1);
    assert_eq!(country(&a, "81.2.69.160").as_deref(), Some("GB"));
    assert_eq!(country(&b, "81.2.69.160").as_deref(), Some("FR"));
    assert!(b.location_count() > a.database().location_count());
    assert!(b.locations().all(|(id, l)| b.location(id) == l));
}
