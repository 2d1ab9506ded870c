//! ECS scope is never broader than the answer: every address inside the scope block returned
//! for a client gets the same answer, checked against the real locator (demo database plus
//! overrides nested inside its networks) for every policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use meridian::config::zone::parse_zone;
use meridian::geo::{DatabaseCache, Locator};
use meridian::gslb::GeoSteering;
use meridian::probe::{DcHealth, ZoneHealth};
use proptest::prelude::*;

fn zone_text() -> String {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo.mmdb");
    format!(
        r#"
origin = "example.com."
nameservers = ["ns1.example.com."]
soa = {{ mname = "ns1.example.com.", rname = "hostmaster.example.com." }}

[geoip]
database = {db:?}

[[geoip.nets]]
cidr = "81.2.69.128/25"
country = "JP"
continent = "AS"
lat = 35.7
lon = 139.7

[[geoip.nets]]
cidr = "216.160.83.64/26"
datacenters = ["ap"]

[[geoip.nets]]
cidr = "10.0.0.0/8"
datacenters = ["eu", "us"]

[datacenters.eu]
location = {{ lat = 53.35, lon = -6.26 }}
addresses = ["192.0.2.1"]
[datacenters.us]
location = {{ lat = 38.95, lon = -77.45 }}
addresses = ["192.0.2.2"]
[datacenters.ap]
location = {{ lat = 35.68, lon = 139.69 }}
addresses = ["192.0.2.3"]

[[services]]
name = "geo"
policy = "geo"
datacenters = ["eu", "us", "ap"]
answers = 2
sovereignty = [{{ clients = "EU", datacenters = ["eu"] }}]

[[services]]
name = "hash"
policy = "consistent-hash"
datacenters = ["eu", "us", "ap"]

[[services]]
name = "fo"
policy = "failover"
datacenters = ["us", "eu", "ap"]
"#
    )
}

fn steering() -> &'static GeoSteering {
    static S: OnceLock<GeoSteering> = OnceLock::new();
    S.get_or_init(|| {
        let zone = Arc::new(parse_zone(Path::new("example.com.toml"), &zone_text()).expect("zone"));
        let locator = Locator::new(&zone.geoip, &mut DatabaseCache::default()).expect("locator");
        let health = ZoneHealth::new(zone.origin.clone(), vec![DcHealth::UP; 3]);
        GeoSteering::new(zone, Arc::new(locator), Arc::new(health))
    })
}

/// Addresses near the interesting networks, and anywhere.
fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0u32..256).prop_map(|x| Ipv4Addr::new(81, 2, 69, x as u8)),
        (0u32..65536).prop_map(|x| Ipv4Addr::from(0xd8a0_0000 | x)), // 216.160.0.0/16
        (0u32..65536).prop_map(|x| Ipv4Addr::from(0x59a0_0000 | x)), // 89.160.0.0/16
        any::<u32>().prop_map(|x| Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff))),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn same_answer_inside_scope(
    service: usize,
    addr: IpAddr,
    prefix: u8,
    noise: u128,
) -> Result<(), TestCaseError> {
    let s = steering();
    let d = s.decide(service, addr, prefix);
    let scope = d.scope;
    // Another address in the scope block (and at least as specific as the client gave).
    let other = match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(scope.min(32)))
                .unwrap_or(0);
            let v = (u32::from(a) & keep) | (noise as u32 & !keep);
            let p = prefix.max(scope).min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(v & mask))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(scope.min(128)))
                .unwrap_or(0);
            let v = (u128::from(a) & keep) | (noise & !keep);
            let p = prefix.max(scope).min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(v & mask))
        }
    };
    let p2 = prefix.max(scope).min(if addr.is_ipv4() { 32 } else { 128 });
    let d2 = s.decide(service, other, p2);
    prop_assert_eq!(
        d.dcs.as_slice(),
        d2.dcs.as_slice(),
        "service {} client {}/{} scope /{} vs {}/{}",
        service,
        addr,
        prefix,
        scope,
        other,
        p2
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn v4_scope_blocks_answer_alike(a in arb_v4(), prefix in prop_oneof![Just(24u8), Just(32u8), 16u8..=32], noise in any::<u128>(), service in 0usize..3) {
        let IpAddr::V4(_) = IpAddr::V4(a) else { unreachable!() };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let addr = IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask));
        same_answer_inside_scope(service, addr, prefix, noise)?;
    }

    #[test]
    fn v6_scope_blocks_answer_alike(hi in prop_oneof![Just(0x2001_0218u32), Just(0x2a02_d3c0), Just(0x2002_5102), any::<u32>()], lo in any::<u128>(), prefix in prop_oneof![Just(56u8), Just(48u8), 32u8..=64], noise in any::<u128>(), service in 0usize..3) {
        let a = (u128::from(hi) << 96) | (lo >> 32);
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        let addr = IpAddr::V6(Ipv6Addr::from(a & mask));
        same_answer_inside_scope(service, addr, prefix, noise)?;
    }
}

#[test]
fn failover_scope_is_zero_and_nested_overrides_narrow_the_scope() {
    let s = steering();
    // The zone has direct overrides, so even failover answers depend on the client's network:
    // 10/8 goes to eu first, the rest of the world to us.
    let inside = s.decide(2, "10.9.8.0".parse().expect("ip"), 24);
    let outside = s.decide(2, "11.9.8.0".parse().expect("ip"), 24);
    assert_ne!(inside.dcs.as_slice(), outside.dcs.as_slice());
    assert_eq!(inside.scope, 8, "the override's network decides");
    assert!(
        outside.scope >= 8,
        "scope /{} would reach into 10/8",
        outside.scope
    );
    // 81.2.69.0/25 is the database's GB /24 minus the /25 override: scope must exclude it.
    let d = s.decide(0, "81.2.69.0".parse().expect("ip"), 24);
    assert!(
        d.scope >= 25,
        "scope /{} would cover the nested override",
        d.scope
    );
}

/// One steering per combination of up / down / draining of the three datacenters.
fn steerings_by_health() -> &'static Vec<GeoSteering> {
    static S: OnceLock<Vec<GeoSteering>> = OnceLock::new();
    S.get_or_init(|| {
        use meridian::probe::DcState;
        let zone = Arc::new(parse_zone(Path::new("example.com.toml"), &zone_text()).expect("zone"));
        let locator =
            Arc::new(Locator::new(&zone.geoip, &mut DatabaseCache::default()).expect("locator"));
        let states = [DcState::Up, DcState::Down, DcState::Draining];
        let mut out = Vec::new();
        for i in 0..27 {
            let h: Vec<DcHealth> = (0..3)
                .map(|d| DcHealth {
                    state: states[(i / 3usize.pow(d)) % 3],
                    ..DcHealth::UP
                })
                .collect();
            let health = Arc::new(ZoneHealth::new(zone.origin.clone(), h));
            out.push(GeoSteering::new(
                Arc::clone(&zone),
                Arc::clone(&locator),
                health,
            ));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The per-location order tables give exactly the decision the full pipeline gives.
    #[test]
    fn precomputed_orders_agree_with_the_pipeline(a in arb_v4(), health in 0usize..27, service in 0usize..3) {
        let s = &steerings_by_health()[health];
        let addr = IpAddr::V4(a);
        prop_assert_eq!(s.decide(service, addr, 24), s.decide_uncached(service, addr, 24, 0));
    }
}
