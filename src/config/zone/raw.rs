//! The zone file as written: serde structs that reject unknown keys and keep spans for errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A string or a list of strings (`clients = "EU"` or `clients = ["CH", "NO"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// An integer count or a floating-point share (`min_healthy = 2` or `min_healthy = 0.5`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CountOrShare {
    Count(i64),
    Share(f64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub(crate) origin: Spanned<String>,
    pub(crate) ttl: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) nameservers: Vec<Spanned<String>>,
    pub(crate) soa: Spanned<RawSoa>,
    #[serde(default)]
    pub(crate) records: Vec<Spanned<RawRecord>>,
    pub(crate) geoip: Option<RawGeoip>,
    #[serde(default)]
    pub(crate) datacenters: BTreeMap<Spanned<String>, Spanned<RawDatacenter>>,
    #[serde(default)]
    pub(crate) services: Vec<Spanned<RawService>>,
    #[serde(default)]
    pub(crate) latency: Vec<Spanned<RawLatency>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSoa {
    pub(crate) mname: Spanned<String>,
    pub(crate) rname: Spanned<String>,
    pub(crate) serial: Option<Spanned<i64>>,
    pub(crate) refresh: Option<Spanned<i64>>,
    pub(crate) retry: Option<Spanned<i64>>,
    pub(crate) expire: Option<Spanned<i64>>,
    pub(crate) minimum: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    pub(crate) name: Spanned<String>,
    #[serde(rename = "type")]
    pub(crate) rtype: Spanned<String>,
    pub(crate) value: Option<Spanned<String>>,
    pub(crate) values: Option<Vec<Spanned<String>>>,
    pub(crate) ttl: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoint {
    pub(crate) lat: Spanned<f64>,
    pub(crate) lon: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGeoip {
    pub(crate) database: Option<Spanned<String>>,
    pub(crate) default: Option<Spanned<RawLocation>>,
    #[serde(default)]
    pub(crate) nets: Vec<Spanned<RawNet>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocation {
    pub(crate) country: Option<Spanned<String>>,
    pub(crate) continent: Option<Spanned<String>>,
    pub(crate) subdivision: Option<Spanned<String>>,
    pub(crate) eu: Option<bool>,
    pub(crate) lat: Option<Spanned<f64>>,
    pub(crate) lon: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNet {
    pub(crate) cidr: Spanned<String>,
    pub(crate) country: Option<Spanned<String>>,
    pub(crate) continent: Option<Spanned<String>>,
    pub(crate) subdivision: Option<Spanned<String>>,
    pub(crate) eu: Option<bool>,
    pub(crate) lat: Option<Spanned<f64>>,
    pub(crate) lon: Option<Spanned<f64>>,
    pub(crate) datacenter: Option<Spanned<String>>,
    pub(crate) datacenters: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatacenter {
    #[serde(default)]
    pub(crate) addresses: Vec<Spanned<String>>,
    pub(crate) location: Option<Spanned<RawPoint>>,
    pub(crate) country: Option<Spanned<String>>,
    pub(crate) continent: Option<Spanned<String>>,
    pub(crate) jurisdiction: Option<Spanned<String>>,
    pub(crate) check: Option<Spanned<RawCheck>>,
    pub(crate) bias: Option<Spanned<f64>>,
    pub(crate) shed_at: Option<Spanned<f64>>,
    pub(crate) shed_keep: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) tcp: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) rise: Option<Spanned<i64>>,
    pub(crate) fall: Option<Spanned<i64>>,
    pub(crate) jitter: Option<Spanned<f64>>,
    pub(crate) expect_status: Option<Spanned<i64>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) min_healthy: Option<Spanned<CountOrShare>>,
    pub(crate) initial: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: Spanned<String>,
    pub(crate) ttl: Option<Spanned<i64>>,
    pub(crate) failover_ttl: Option<Spanned<i64>>,
    pub(crate) policy: Option<Spanned<String>>,
    pub(crate) datacenters: Spanned<Vec<Spanned<String>>>,
    pub(crate) answers: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) sovereignty: Vec<Spanned<RawFence>>,
    pub(crate) on_all_down: Option<Spanned<String>>,
    pub(crate) default: Option<Spanned<String>>,
    pub(crate) weights: Option<BTreeMap<Spanned<String>, Spanned<i64>>>,
    pub(crate) geo: Option<RawGeoMap>,
    pub(crate) hash_prefix: Option<Spanned<RawHashPrefix>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFence {
    pub(crate) clients: Spanned<OneOrMany>,
    pub(crate) datacenters: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGeoMap {
    #[serde(default)]
    pub(crate) continents: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) countries: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) subdivisions: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHashPrefix {
    pub(crate) v4: Option<Spanned<i64>>,
    pub(crate) v6: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLatency {
    pub(crate) clients: Spanned<OneOrMany>,
    pub(crate) rtt: BTreeMap<Spanned<String>, Spanned<f64>>,
}
