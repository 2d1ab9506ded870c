//! Ordering the allowed datacenters by the service's policy.

use std::fmt;
use std::net::IpAddr;

use super::client::{ClientView, specificity};
use super::distance::great_circle_km;
use super::plan::ZonePlan;
use super::select::{DcList, MAX_DCS, SEED, hash_prefix};
use crate::config::zone::{DcId, Policy, Service};

/// Why the list is in this order (formatted only when tracing).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    Preferred {
        what: &'static str,
        count: usize,
        rest: Rest,
    },
    Rest(Rest),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Rest {
    Distance,
    NoPoint,
    Latency { row: bool },
    Failover,
    Weighted,
    Hash { prefix: u8 },
}

impl fmt::Display for Rest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rest::Distance => write!(f, "by great-circle distance (with bias)"),
            Rest::NoPoint => write!(
                f,
                "client has no coordinates: default first, then listed order"
            ),
            Rest::Latency { row: true } => write!(f, "by the latency table, then distance"),
            Rest::Latency { row: false } => write!(f, "no latency row matches: by distance"),
            Rest::Failover => write!(f, "in the configured failover order"),
            Rest::Weighted => write!(f, "drawn by weight"),
            Rest::Hash { prefix } => write!(f, "by rendezvous hash of the client's /{prefix}"),
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Preferred { what, count, rest } => {
                write!(f, "{count} from the {what} first, then {rest}")
            }
            Why::Rest(r) => write!(f, "{r}"),
        }
    }
}

/// Orders `list` in place; returns why (formatted only for traces).
pub(crate) fn order_why(
    plan: &ZonePlan,
    svc: &Service,
    client: &ClientView<'_>,
    draw: u64,
    list: &mut DcList,
) -> Why {
    // Explicit preferences come first: a direct override, else the geo map.
    let (pref, what): (&[DcId], &'static str) = if !client.direct.is_empty() {
        (client.direct, "network override")
    } else if svc.policy == Policy::Geo {
        geo_mapping(svc, client)
    } else {
        (&[], "")
    };
    let mut head = DcList::default();
    for d in pref {
        if list.contains(*d) && !head.contains(*d) {
            head.push(*d);
        }
    }
    let mut rest = *list;
    rest.retain(|d| !head.contains(d));
    let why_rest = match svc.policy {
        Policy::Geo => by_distance(plan, client, svc, &mut rest),
        Policy::Latency => by_latency(plan, client, svc, &mut rest),
        Policy::Failover => Rest::Failover,
        Policy::Weighted => {
            weighted(svc, draw, &mut rest);
            Rest::Weighted
        }
        Policy::ConsistentHash => {
            let prefix = hash_prefix(svc, client.addr);
            rendezvous(plan, svc, client.addr, prefix, &mut rest);
            Rest::Hash { prefix }
        }
    };
    let count = head.len();
    *list = head;
    for d in rest.iter() {
        list.push(d);
    }
    if count > 0 {
        Why::Preferred {
            what,
            count,
            rest: why_rest,
        }
    } else {
        Why::Rest(why_rest)
    }
}

fn geo_mapping<'s>(svc: &'s Service, c: &ClientView<'_>) -> (&'s [DcId], &'static str) {
    let find = |m: &'s [(String, Vec<DcId>)], code: Option<&str>| {
        code.and_then(|code| m.iter().find(|(k, _)| k == code))
            .map(|(_, v)| v.as_slice())
    };
    if let Some(v) = find(&svc.geo.subdivisions, c.subdivision) {
        return (v, "subdivision map");
    }
    if let Some(v) = find(&svc.geo.countries, c.country) {
        return (v, "country map");
    }
    if let Some(v) = find(&svc.geo.continents, c.continent) {
        return (v, "continent map");
    }
    (&[], "")
}

/// Stable sort of `list` by `key` (ties keep the configured order).
fn sort_by_key(list: &mut DcList, key: impl Fn(DcId) -> f64) {
    let mut keys = [0f64; MAX_DCS];
    let ids = list.ids_mut();
    for (k, id) in keys.iter_mut().zip(ids.iter()) {
        *k = key(*id as DcId);
    }
    // Insertion sort: lists are a handful long, and it is stable.
    for i in 1..ids.len() {
        let (id, k) = (ids[i], keys[i]);
        let mut j = i;
        while j > 0 && keys[j - 1] > k {
            ids[j] = ids[j - 1];
            keys[j] = keys[j - 1];
            j -= 1;
        }
        ids[j] = id;
        keys[j] = k;
    }
}

fn distance_key(plan: &ZonePlan, c: &ClientView<'_>, d: DcId) -> f64 {
    match (c.point, plan.zone.datacenters[d].location) {
        (Some(p), Some(q)) => great_circle_km(p, q) * plan.bias_factor[d],
        _ => f64::INFINITY,
    }
}

fn by_distance(plan: &ZonePlan, c: &ClientView<'_>, svc: &Service, list: &mut DcList) -> Rest {
    if c.point.is_none() {
        if let Some(def) = svc.default {
            sort_by_key(list, |d| if d == def { 0.0 } else { 1.0 });
        }
        return Rest::NoPoint;
    }
    sort_by_key(list, |d| distance_key(plan, c, d));
    Rest::Distance
}

fn by_latency(plan: &ZonePlan, c: &ClientView<'_>, svc: &Service, list: &mut DcList) -> Rest {
    let row = plan
        .zone
        .latency
        .iter()
        .filter_map(|r| specificity(&r.clients, c).map(|s| (s, r)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, r)| r);
    let Some(row) = row else {
        by_distance(plan, c, svc, list);
        return Rest::Latency { row: false };
    };
    // Rows rank first (by RTT); others after, by distance (kilometres map after any RTT).
    sort_by_key(list, |d| match row.rtt_ms.iter().find(|(id, _)| *id == d) {
        Some((_, ms)) => *ms,
        None => 1e9 + distance_key(plan, c, d).min(1e9),
    });
    Rest::Latency { row: true }
}

/// Weighted order without replacement; weight-0 datacenters only after every weighted one.
fn weighted(svc: &Service, draw: u64, list: &mut DcList) {
    let weight = |d: DcId| {
        svc.datacenters
            .iter()
            .position(|x| *x == d)
            .map_or(0, |i| svc.weights[i])
    };
    let mut rng = draw;
    let mut out = DcList::default();
    let mut left = *list;
    left.retain(|d| weight(d) > 0);
    while !left.is_empty() {
        let total: u64 = left.iter().map(|d| u64::from(weight(d))).sum();
        let mut r = uniform(splitmix(&mut rng), total);
        let mut pick = left.iter().next().unwrap_or_default();
        for d in left.iter() {
            let w = u64::from(weight(d));
            if r < w {
                pick = d;
                break;
            }
            r -= w;
        }
        out.push(pick);
        left.retain(|d| d != pick);
    }
    for d in list.iter() {
        if weight(d) == 0 {
            out.push(d);
        }
    }
    *list = out;
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in 0..n from 64 random bits, without modulo bias worth measuring (Lemire).
fn uniform(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// The hash key of a client: its address cut to the hashed prefix.
pub(crate) fn hash_key(addr: IpAddr, prefix: u8) -> u64 {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32))
            };
            let v = u32::from(a) & m;
            xxhash_rust::xxh3::xxh3_64_with_seed(&v.to_be_bytes(), SEED ^ u64::from(prefix))
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128))
            };
            let v = u128::from(a) & m;
            xxhash_rust::xxh3::xxh3_64_with_seed(&v.to_be_bytes(), SEED ^ 0x100 ^ u64::from(prefix))
        }
    }
}

/// A number in [0, 1) from a hash, well mixed.
pub(crate) fn unit(h: u64) -> f64 {
    let mut s = h;
    (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64
}

/// Weighted rendezvous (highest random weight) hashing: each datacenter scores
/// `-w / ln(u)` with `u` uniform from hash(key, datacenter). When one fails, only its clients
/// move, and they spread over the others in proportion to weight.
fn rendezvous(plan: &ZonePlan, svc: &Service, addr: IpAddr, prefix: u8, list: &mut DcList) {
    let key = hash_key(addr, prefix);
    let weight = |d: DcId| {
        svc.datacenters
            .iter()
            .position(|x| *x == d)
            .map_or(1, |i| svc.weights[i].max(1))
    };
    sort_by_key(list, |d| {
        let h = splitmix(&mut (key ^ plan.dc_seed[d]));
        // u in (0, 1): never 0 or 1, so ln(u) is finite and negative.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        // Sort ascending, so negate the score.
        f64::from(weight(d)) / u.ln()
    });
}
