//! The site file as written: serde structs that reject unknown keys and keep spans for errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::l7::{RawAffinity, RawCache, RawCompression, RawRateLimit};
use super::route::RawRoute;
use super::tls::{RawBackendTls, RawTls};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    pub(crate) threads: Option<Spanned<i64>>,
    pub(crate) admin: Option<Spanned<RawAdmin>>,
    pub(crate) shutdown: Option<Spanned<RawShutdown>>,
    #[serde(default)]
    pub(crate) listeners: Vec<Spanned<RawListener>>,
    #[serde(default)]
    pub(crate) pools: BTreeMap<Spanned<String>, Spanned<RawPool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) bind: Spanned<String>,
    // The runtime API (see `api.rs`).
    pub(crate) token: Option<Spanned<String>>,
    pub(crate) token_file: Option<Spanned<String>>,
    pub(crate) api_allow: Option<Vec<Spanned<String>>>,
    // The status page's recommendations.
    pub(crate) slow_latency: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShutdown {
    pub(crate) delay: Option<Spanned<String>>,
    pub(crate) grace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) bind: Spanned<String>,
    pub(crate) protocol: Option<Spanned<String>>,
    pub(crate) pool: Option<Spanned<String>>,
    pub(crate) max_header_bytes: Option<Spanned<i64>>,
    pub(crate) header_timeout: Option<Spanned<String>>,
    pub(crate) h2: Option<bool>,
    pub(crate) max_body_bytes: Option<Spanned<i64>>,
    pub(crate) forwarded_headers: Option<Vec<Spanned<String>>>,
    pub(crate) request_id: Option<bool>,
    pub(crate) tls: Option<Spanned<RawTls>>,
    pub(crate) routes: Option<Vec<Spanned<RawRoute>>>,
    pub(crate) rate_limit: Option<Spanned<RawRateLimit>>,
    pub(crate) compression: Option<Spanned<RawCompression>>,
    pub(crate) cache: Option<Spanned<RawCache>>,
    // `protocol = "tcp"` only (see `l4.rs`).
    pub(crate) idle_timeout: Option<Spanned<String>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) accept_proxy: Option<Spanned<bool>>,
    pub(crate) send_proxy: Option<Spanned<String>>,
    pub(crate) splice: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) algorithm: Option<Spanned<String>>,
    pub(crate) hash_key: Option<Spanned<String>>,
    pub(crate) bounded_load: Option<Spanned<f64>>,
    pub(crate) servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
    pub(crate) discovery: Option<Spanned<super::discovery::RawDiscovery>>,
    pub(crate) max_requests: Option<Spanned<i64>>,
    pub(crate) max_pending: Option<Spanned<i64>>,
    pub(crate) queue_timeout: Option<Spanned<String>>,
    pub(crate) panic_threshold: Option<Spanned<f64>>,
    pub(crate) slow_start: Option<Spanned<String>>,
    pub(crate) latency_decay: Option<Spanned<String>>,
    pub(crate) timeouts: Option<Spanned<RawTimeouts>>,
    pub(crate) check: Option<Spanned<RawCheck>>,
    pub(crate) passive: Option<Spanned<RawPassive>>,
    pub(crate) breaker: Option<Spanned<RawBreaker>>,
    pub(crate) retry: Option<Spanned<RawRetry>>,
    pub(crate) affinity: Option<Spanned<RawAffinity>>,
    pub(crate) tls: Option<Spanned<RawBackendTls>>,
}

/// A server: `"127.0.0.1:9001"` or `{ address = "127.0.0.1:9001", weight = 2 }`.
#[derive(Debug)]
pub(crate) enum RawServer {
    Address(String),
    Table(RawServerTable),
}

impl<'de> Deserialize<'de> for RawServer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawServer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address string or a table with `address`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawServer, E> {
                Ok(RawServer::Address(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawServer, A::Error> {
                // Hands the map back to serde so that unknown keys and spans work as usual.
                RawServerTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawServer::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTable {
    pub(crate) address: Spanned<String>,
    pub(crate) id: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) initial: Option<Spanned<String>>,
    pub(crate) drain: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) connect: Option<Spanned<String>>,
    pub(crate) response: Option<Spanned<String>>,
    pub(crate) idle: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) http: Option<Spanned<String>>,
    pub(crate) tcp: Option<bool>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) expect_status: Option<Spanned<i64>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) rise: Option<Spanned<i64>>,
    pub(crate) fall: Option<Spanned<i64>>,
    pub(crate) initial: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPassive {
    pub(crate) consecutive_failures: Option<Spanned<i64>>,
    pub(crate) base_ejection: Option<Spanned<String>>,
    pub(crate) max_ejection: Option<Spanned<String>>,
    pub(crate) max_ejection_percent: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub(crate) failures: Option<Spanned<i64>>,
    pub(crate) cooldown: Option<Spanned<String>>,
    pub(crate) successes: Option<Spanned<i64>>,
    pub(crate) half_open_requests: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) attempts: Option<Spanned<i64>>,
    pub(crate) on: Option<Vec<Spanned<String>>>,
    pub(crate) budget: Option<Spanned<f64>>,
    pub(crate) min_retries: Option<Spanned<i64>>,
    pub(crate) body_cap: Option<Spanned<i64>>,
}
