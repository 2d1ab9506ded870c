//! Properties of the pipeline over many random clients and health states.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::config::zone::{DcId, GeoPoint, parse_zone};
use crate::probe::{DcHealth, DcState};

const ZONE: &str = r#"
origin = "example.com."
nameservers = ["ns1.example.com."]
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com." }

[datacenters.dublin]
location = { lat = 53.35, lon = -6.26 }
addresses = ["192.0.2.1"]
shed_at = 0.8
shed_keep = 0.6
[datacenters.frankfurt]
location = { lat = 50.11, lon = 8.68 }
addresses = ["192.0.2.2"]
shed_at = 0.5
[datacenters.virginia]
location = { lat = 38.95, lon = -77.45 }
addresses = ["192.0.2.3"]
[datacenters.tokyo]
location = { lat = 35.68, lon = 139.69 }
addresses = ["192.0.2.4"]
[datacenters.fiji]
location = { lat = -18.1, lon = 178.4 }
addresses = ["192.0.2.5"]
[datacenters.samoa]
location = { lat = -13.8, lon = -171.8 }
addresses = ["192.0.2.6"]

[[services]]
name = "geo"
policy = "geo"
datacenters = ["dublin", "frankfurt", "virginia", "tokyo", "fiji", "samoa"]
answers = 2
sovereignty = [{ clients = "EU", datacenters = ["dublin", "frankfurt"] }, { clients = ["CH", "continent:OC"], datacenters = ["fiji"] }]

[[services]]
name = "w"
policy = "weighted"
datacenters = ["dublin", "frankfurt", "virginia", "tokyo"]
weights = { dublin = 5, frankfurt = 3, virginia = 2, tokyo = 0 }

[[services]]
name = "ch"
policy = "consistent-hash"
datacenters = ["dublin", "frankfurt", "virginia", "tokyo", "fiji", "samoa"]

[[services]]
name = "lat"
policy = "latency"
datacenters = ["dublin", "frankfurt", "virginia", "tokyo"]
answers = 3

[[latency]]
clients = "continent:EU"
rtt = { frankfurt = 20, dublin = 35 }

[[latency]]
clients = "GB"
rtt = { dublin = 12, virginia = 80, frankfurt = 25 }

[[latency]]
clients = "10.9.0.0/16"
rtt = { tokyo = 5 }

[[services]]
name = "fo"
policy = "failover"
datacenters = ["virginia", "dublin", "tokyo"]
on_all_down = "nodata"
"#;

fn plan() -> &'static ZonePlan {
    static PLAN: std::sync::OnceLock<ZonePlan> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        let z = parse_zone(Path::new("example.com.toml"), ZONE).expect("zone");
        ZonePlan::new(Arc::new(z))
    })
}

fn svc(plan: &ZonePlan, name: &str) -> usize {
    plan.zone
        .services
        .iter()
        .position(|s| s.name.as_str().starts_with(&format!("{name}.")))
        .expect("service")
}

fn id(plan: &ZonePlan, name: &str) -> DcId {
    plan.zone.datacenter_id(name).expect("datacenter")
}

const COUNTRIES: [(&str, &str, bool); 8] = [
    ("DE", "EU", true),
    ("FR", "EU", true),
    ("CH", "EU", false),
    ("US", "NA", false),
    ("JP", "AS", false),
    ("AU", "OC", false),
    ("GB", "EU", false),
    ("BR", "SA", false),
];

fn arb_client() -> impl Strategy<Value = (usize, f64, f64, u32)> {
    (
        0..COUNTRIES.len(),
        -89.0f64..89.0,
        -180.0f64..180.0,
        any::<u32>(),
    )
}

fn view((c, lat, lon, ip): (usize, f64, f64, u32)) -> ClientView<'static> {
    let (country, continent, eu) = COUNTRIES[c];
    ClientView {
        addr: IpAddr::V4(Ipv4Addr::from(ip & 0xffff_ff00)),
        prefix: 24,
        country: Some(country),
        continent: Some(continent),
        subdivision: None,
        eu,
        point: Some(GeoPoint { lat, lon }),
        direct: &[],
        scope: 16,
    }
}

fn arb_health(n: usize) -> impl Strategy<Value = Vec<DcHealth>> {
    proptest::collection::vec(
        prop_oneof![
            Just(DcState::Up),
            Just(DcState::Down),
            Just(DcState::Draining)
        ],
        n,
    )
    .prop_map(|s| {
        s.into_iter()
            .map(|state| DcHealth {
                state,
                ..DcHealth::UP
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn sovereignty_is_never_violated(c in arb_client(), health in arb_health(6), draw in any::<u64>()) {
        let p = plan();
        let s = svc(p, "geo");
        let v = view(c);
        let d = select(p, s, &v, &health, draw);
        let fence = p.zone.services[s].sovereignty.iter().find(|f| matches(&f.clients, &v));
        if let Some(f) = fence {
            prop_assert!(!d.dcs.is_empty(), "a fenced client always gets an answer");
            for dc in d.dcs.iter() {
                prop_assert!(f.datacenters.contains(&dc), "{:?} got {} outside its fence", v.country, dc);
            }
        }
    }

    #[test]
    fn geo_returns_the_truly_nearest_healthy(c in arb_client(), health in arb_health(6)) {
        let p = plan();
        let s = svc(p, "geo");
        let mut v = view(c);
        // A country no fence covers.
        v.country = Some("BR");
        v.continent = Some("SA");
        v.eu = false;
        let d = select(p, s, &v, &health, 0);
        let point = v.point.expect("point");
        let mut up: Vec<(f64, DcId)> = (0..6)
            .filter(|i| health[*i].is_up())
            .map(|i| (great_circle_km(point, p.zone.datacenters[i].location.expect("loc")), i))
            .collect();
        if up.is_empty() {
            prop_assert!(d.all_down);
            return Ok(());
        }
        up.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let first = d.dcs.iter().next().expect("an answer");
        let best = up[0].0;
        let got = great_circle_km(point, p.zone.datacenters[first].location.expect("loc"));
        prop_assert!((got - best).abs() < 1e-6, "got {first} at {got} km, nearest is {best} km");
        prop_assert_eq!(d.dcs.len(), up.len().min(2));
    }

    #[test]
    fn consistent_hash_moves_only_the_failed_datacenters_clients(ips in proptest::collection::vec(any::<u32>(), 40), failed in 0usize..6) {
        let p = plan();
        let s = svc(p, "ch");
        let all_up = vec![DcHealth::UP; 6];
        let mut one_down = all_up.clone();
        one_down[failed] = DcHealth::DOWN;
        for ip in ips {
            let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::from(ip)), 32);
            let before = select(p, s, &v, &all_up, 0).dcs.iter().next().expect("answer");
            let after = select(p, s, &v, &one_down, 0).dcs.iter().next().expect("answer");
            if before != failed {
                prop_assert_eq!(before, after, "a client of a healthy datacenter moved");
            } else {
                prop_assert_ne!(after, failed);
            }
        }
    }
}

#[test]
fn weighted_shares_follow_weights_within_two_percent() {
    let p = plan();
    let s = svc(p, "w");
    let health = vec![DcHealth::UP; 6];
    let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    let mut counts: HashMap<DcId, u32> = HashMap::new();
    let n = 100_000u64;
    for i in 0..n {
        let draw = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
        let d = select(p, s, &v, &health, draw);
        *counts
            .entry(d.dcs.iter().next().expect("answer"))
            .or_default() += 1;
    }
    let total_w = 10.0;
    for (name, w) in [("dublin", 5.0), ("frankfurt", 3.0), ("virginia", 2.0)] {
        let dc = id(p, name);
        let share = f64::from(counts.get(&dc).copied().unwrap_or(0)) / n as f64;
        let want = w / total_w;
        assert!(
            (share - want).abs() <= 0.02 * want,
            "dc {dc}: share {share}, want {want}"
        );
    }
    assert_eq!(
        counts.get(&id(p, "tokyo")),
        None,
        "weight 0 is never drawn while others are up"
    );
}

#[test]
fn weight_zero_serves_when_nothing_else_is_up() {
    let p = plan();
    let s = svc(p, "w");
    let mut health = vec![DcHealth::DOWN; 6];
    health[id(p, "tokyo")] = DcHealth::UP;
    let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    let d = select(p, s, &v, &health, 7);
    assert_eq!(d.dcs.as_slice(), [id(p, "tokyo")]);
}

#[test]
fn consistent_hash_spreads_a_failed_datacenters_clients() {
    let p = plan();
    let s = svc(p, "ch");
    let all_up = vec![DcHealth::UP; 6];
    let mut down = all_up.clone();
    down[0] = DcHealth::DOWN;
    let mut moved_to: HashMap<DcId, u32> = HashMap::new();
    for i in 0..20_000u32 {
        let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::from(i << 8)), 24);
        if select(p, s, &v, &all_up, 0).dcs.iter().next() == Some(0) {
            let to = select(p, s, &v, &down, 0)
                .dcs
                .iter()
                .next()
                .expect("answer");
            *moved_to.entry(to).or_default() += 1;
        }
    }
    assert_eq!(
        moved_to.len(),
        5,
        "spread over every other datacenter: {moved_to:?}"
    );
    let total: u32 = moved_to.values().sum();
    for (dc, n) in &moved_to {
        let share = f64::from(*n) / f64::from(total);
        assert!((share - 0.2).abs() < 0.05, "dc {dc} took {share}");
    }
}

#[test]
fn all_down_fails_open_or_answers_nodata() {
    let p = plan();
    let down = vec![DcHealth::DOWN; 6];
    let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    let d = select(p, svc(p, "geo"), &v, &down, 0);
    assert!(d.all_down && !d.nodata);
    assert_eq!(d.dcs.len(), 2, "fail open: answers as if all were up");
    let d = select(p, svc(p, "fo"), &v, &down, 0);
    assert!(d.all_down && d.nodata);
    assert!(d.dcs.is_empty());
}

#[test]
fn failover_takes_the_first_healthy_in_order() {
    let p = plan();
    let s = svc(p, "fo");
    let v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    let mut h = vec![DcHealth::UP; 6];
    assert_eq!(select(p, s, &v, &h, 0).dcs.as_slice(), [id(p, "virginia")]);
    h[id(p, "virginia")] = DcHealth::DOWN;
    assert_eq!(select(p, s, &v, &h, 0).dcs.as_slice(), [id(p, "dublin")]);
    assert_eq!(
        select(p, s, &v, &h, 0).scope,
        0,
        "failover does not depend on the client"
    );
}

#[test]
fn near_the_antimeridian_the_nearest_is_across_it() {
    let p = plan();
    let s = svc(p, "geo");
    let mut v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    v.country = Some("TO");
    v.continent = Some("AS");
    v.point = Some(GeoPoint {
        lat: -14.0,
        lon: -172.5,
    });
    let d = select(p, s, &v, &[DcHealth::UP; 6], 0);
    assert_eq!(
        d.dcs.as_slice(),
        [id(p, "samoa"), id(p, "fiji")],
        "Samoa, then Fiji across the antimeridian"
    );
}

#[test]
fn explain_records_every_step() {
    let p = plan();
    let s = svc(p, "geo");
    let mut v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::LOCALHOST), 32);
    v.eu = true;
    v.country = Some("DE");
    let mut health = vec![DcHealth::UP; 6];
    let (dublin, frankfurt) = (id(p, "dublin"), id(p, "frankfurt"));
    health[dublin] = DcHealth::DOWN;
    health[frankfurt] = DcHealth::DOWN;
    let mut e = Explanation::default();
    let d = select_traced(p, s, &v, &health, 0, &mut e);
    let names: Vec<_> = e.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["candidates", "health", "sovereignty", "order", "answers"]
    );
    assert!(
        e.steps[2].note.contains("fail open inside the fence"),
        "{:?}",
        e.steps[2]
    );
    assert!(d.dcs.iter().all(|x| x == dublin || x == frankfurt));
}

/// Clients over the Atlantic and western Europe, outside every fence, nearest to Dublin.
fn dublin_clients(p: &ZonePlan, s: usize, n: u32) -> Vec<ClientView<'static>> {
    let up = vec![DcHealth::UP; 6];
    (0..n)
        .map(|i| {
            let lat = 40.0 + f64::from(i % 200) * 0.1;
            let lon = -40.0 + f64::from((i * 7919) % 400) * 0.1;
            ClientView {
                addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i << 8))),
                prefix: 24,
                country: Some("GB"),
                continent: Some("EU"),
                subdivision: None,
                eu: false,
                point: Some(GeoPoint { lat, lon }),
                direct: &[],
                scope: 24,
            }
        })
        .filter(|v| select(p, s, v, &up, 0).dcs.iter().next() == Some(id(p, "dublin")))
        .collect()
}

#[test]
fn spill_over_keeps_the_configured_share_and_spreads_the_rest() {
    let p = plan();
    let s = svc(p, "geo");
    let dublin = id(p, "dublin");
    let clients = dublin_clients(p, s, 40_000);
    assert!(clients.len() > 5_000, "{}", clients.len());
    let mut health = vec![DcHealth::UP; 6];
    health[dublin].load = 1.6;
    let mut stayed = 0usize;
    let mut moved_to: HashMap<DcId, usize> = HashMap::new();
    for v in &clients {
        let d = select(p, s, v, &health, 0);
        let first = d.dcs.iter().next().expect("answer");
        if first == dublin {
            stayed += 1;
        } else {
            *moved_to.entry(first).or_default() += 1;
        }
        assert_eq!(
            d.ttl, p.zone.services[s].failover_ttl,
            "short TTL while shedding"
        );
        assert!(d.scope >= 24, "scope covers the hashed prefix");
        // Deterministic per client subnet.
        assert_eq!(d, select(p, s, v, &health, 99));
    }
    let share = stayed as f64 / clients.len() as f64;
    assert!((share - 0.6).abs() <= 0.03, "kept {share}, configured 0.6");
    assert!(
        moved_to.len() > 1,
        "moved clients all went to one place: {moved_to:?}"
    );
}

#[test]
fn spill_over_without_keep_brings_load_back_to_the_threshold() {
    let p = plan();
    let s = svc(p, "geo");
    let frankfurt = id(p, "frankfurt");
    let up = vec![DcHealth::UP; 6];
    let clients: Vec<ClientView<'static>> = (0..20_000u32)
        .map(|i| ClientView {
            addr: IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i << 8))),
            prefix: 24,
            country: Some("NO"),
            continent: Some("EU"),
            subdivision: None,
            eu: false,
            point: Some(GeoPoint {
                lat: 48.0 + f64::from(i % 40) * 0.1,
                lon: 8.0 + f64::from((i * 31) % 70) * 0.1,
            }),
            direct: &[],
            scope: 24,
        })
        .filter(|v| select(p, s, v, &up, 0).dcs.iter().next() == Some(frankfurt))
        .collect();
    let mut health = up.clone();
    health[frankfurt].load = 1.0;
    let stayed = clients
        .iter()
        .filter(|v| select(p, s, v, &health, 0).dcs.iter().next() == Some(frankfurt))
        .count();
    let share = stayed as f64 / clients.len() as f64;
    assert!(
        (share - 0.5).abs() <= 0.03,
        "kept {share}, want shed_at / load = 0.5"
    );
    // At or under the threshold nobody moves.
    health[frankfurt].load = 0.5;
    assert!(
        clients
            .iter()
            .all(|v| select(p, s, v, &health, 0).dcs.iter().next() == Some(frankfurt))
    );
}

#[test]
fn latency_orders_by_the_most_specific_row_then_distance() {
    let p = plan();
    let s = svc(p, "lat");
    let up = vec![DcHealth::UP; 6];
    let mut v = ClientView::unlocated(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24);
    v.continent = Some("EU");
    v.country = Some("FR");
    v.point = Some(GeoPoint {
        lat: 48.85,
        lon: 2.35,
    });
    // The continent row: frankfurt, dublin; then the rest by distance: virginia before tokyo.
    assert_eq!(
        select(p, s, &v, &up, 0).dcs.as_slice(),
        [id(p, "frankfurt"), id(p, "dublin"), id(p, "virginia")]
    );
    // GB has its own row, more specific than the continent's.
    v.country = Some("GB");
    assert_eq!(
        select(p, s, &v, &up, 0).dcs.as_slice(),
        [id(p, "dublin"), id(p, "frankfurt"), id(p, "virginia")]
    );
    // A network row beats both; the rest by distance from Paris.
    v.addr = IpAddr::V4(Ipv4Addr::new(10, 9, 1, 0));
    assert_eq!(
        select(p, s, &v, &up, 0).dcs.as_slice(),
        [id(p, "tokyo"), id(p, "frankfurt"), id(p, "dublin")]
    );
    // A client no row covers: by distance.
    let mut w = ClientView::unlocated(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24);
    w.country = Some("US");
    w.continent = Some("NA");
    w.point = Some(GeoPoint {
        lat: 40.7,
        lon: -74.0,
    });
    assert_eq!(
        select(p, s, &w, &up, 0).dcs.iter().next(),
        Some(id(p, "virginia"))
    );
    // Unhealthy datacenters drop out of the row's order.
    let mut h = up.clone();
    h[id(p, "frankfurt")] = DcHealth::DOWN;
    v.addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0));
    assert_eq!(
        select(p, s, &v, &h, 0).dcs.iter().next(),
        Some(id(p, "dublin"))
    );
}
