//! Per-listener HTTP features (rate limit, compression, cache) and per-pool session affinity:
//! raw tables, validated models and their checks. Routes are in `route.rs`.

use std::time::Duration;

use hyper::header::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::route::RouteRule;
use super::validate::{duration, int};
use crate::config::error::Collector;

/// What a listener does beyond forwarding to one pool. `None` on a listener when nothing here
/// is configured, so the plain path does no work for them.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFeatures {
    /// Ordered routing rules; the first that matches wins.
    pub routes: Vec<RouteRule>,
    /// Pool for requests no rule matches; `None`: they get 404.
    pub default_pool: Option<usize>,
    /// Rate limit of requests whose route has none of its own (and of every request when
    /// there are no routes).
    pub rate_limit: Option<RateLimitConfig>,
    /// Response compression.
    pub compression: Option<CompressionConfig>,
    /// Response cache.
    pub cache: Option<CacheConfig>,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value (an API key); requests without it count by client IP.
    Header(HeaderName),
}

/// A token bucket per client: `rate` requests per `per`, bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per `per` in the long run.
    pub rate: u32,
    /// The period of `rate`.
    pub per: Duration,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
    /// What identifies a client.
    pub key: LimitKey,
    /// Clients tracked at once (least recently seen ones are forgotten beyond it).
    pub max_clients: u64,
}

/// A content coding the balancer can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// brotli (`br`).
    Brotli,
    /// Zstandard (`zstd`).
    Zstd,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// Every coding, in the default order of preference.
    pub const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];
}

/// Response compression of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    /// Codings offered, best first; the first one the client accepts is used.
    pub algorithms: Vec<Encoding>,
    /// Responses with a declared length below this are sent as they are.
    pub min_size: u64,
    /// Media types compressed: an entry ending in `/` (`"text/"`) matches the whole type.
    pub types: Vec<String>,
}

/// Response cache of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes of bodies and headers kept at most.
    pub max_bytes: u64,
    /// Largest response body stored.
    pub max_object_bytes: u64,
}

/// Cookie-based session affinity of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityConfig {
    /// The cookie's name.
    pub cookie: String,
    /// Mixed into the cookie's value so that it does not reveal which server it names.
    pub secret: String,
    /// `Max-Age` of the cookie; `None`: a session cookie.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) rate: Spanned<i64>,
    pub(crate) per: Option<Spanned<String>>,
    pub(crate) burst: Option<Spanned<i64>>,
    pub(crate) key: Option<Spanned<String>>,
    pub(crate) max_clients: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompression {
    pub(crate) algorithms: Option<Vec<Spanned<String>>>,
    pub(crate) min_size: Option<Spanned<i64>>,
    pub(crate) types: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub(crate) max_bytes: Option<Spanned<i64>>,
    pub(crate) max_object_bytes: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAffinity {
    pub(crate) cookie: Spanned<String>,
    pub(crate) secret: Option<Spanned<String>>,
    pub(crate) max_age: Option<Spanned<String>>,
}

/// Media types compressed by default.
pub const DEFAULT_COMPRESS_TYPES: [&str; 8] = [
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/wasm",
    "image/svg+xml",
    "application/problem+json",
];

pub(crate) fn rate_limit(
    c: &mut Collector<'_>,
    raw: &Spanned<RawRateLimit>,
    item: &str,
) -> RateLimitConfig {
    let r = raw.get_ref();
    let item = format!("{item} rate_limit");
    let rate = int(
        c,
        Some(&r.rate),
        &format!("{item}.rate"),
        1..=1_000_000_000,
        1,
    ) as u32;
    let per = duration(
        c,
        r.per.as_ref(),
        &format!("{item}.per"),
        Duration::from_secs(1),
    );
    if per.is_zero()
        && let Some(p) = &r.per
    {
        c.err(&p.span(), &format!("{item}.per"), "must be longer than 0s");
    }
    let burst = int(
        c,
        r.burst.as_ref(),
        &format!("{item}.burst"),
        1..=1_000_000_000,
        i64::from(rate),
    ) as u32;
    let key = match r.key.as_ref() {
        None => LimitKey::ClientIp,
        Some(k) => match k.get_ref().as_str() {
            "client-ip" => LimitKey::ClientIp,
            other => match other
                .strip_prefix("header:")
                .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
            {
                Some(Ok(h)) => LimitKey::Header(h),
                _ => {
                    c.err(
                        &k.span(),
                        &format!("{item}.key"),
                        "expected \"client-ip\" or \"header:NAME\"",
                    );
                    LimitKey::ClientIp
                }
            },
        },
    };
    let max_clients = int(
        c,
        r.max_clients.as_ref(),
        &format!("{item}.max_clients"),
        1..=100_000_000,
        100_000,
    ) as u64;
    RateLimitConfig {
        rate,
        per: per.max(Duration::from_nanos(1)),
        burst,
        key,
        max_clients,
    }
}

pub(crate) fn compression(
    c: &mut Collector<'_>,
    raw: &Spanned<RawCompression>,
    item: &str,
) -> CompressionConfig {
    let r = raw.get_ref();
    let item = format!("{item} compression");
    let algorithms = match &r.algorithms {
        None => Encoding::ALL.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for a in list {
                match Encoding::ALL.iter().find(|e| e.as_str() == a.get_ref()) {
                    Some(e) if !out.contains(e) => out.push(*e),
                    Some(_) => c.err(&a.span(), &format!("{item}.algorithms"), "listed twice"),
                    None => c.err(
                        &a.span(),
                        &format!("{item}.algorithms"),
                        "unknown coding (known: br, zstd, gzip)",
                    ),
                }
            }
            if out.is_empty() && list.is_empty() {
                c.err(
                    &raw.span(),
                    &format!("{item}.algorithms"),
                    "must not be empty",
                );
            }
            out
        }
    };
    let types = match &r.types {
        None => DEFAULT_COMPRESS_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| {
                let v = t.get_ref().trim().to_ascii_lowercase();
                if v.contains('/') && !v.starts_with('/') {
                    Some(v)
                } else {
                    c.err(
                        &t.span(),
                        &format!("{item}.types"),
                        "expected a media type such as \"text/html\" or \"text/\"",
                    );
                    None
                }
            })
            .collect(),
    };
    CompressionConfig {
        algorithms,
        min_size: int(
            c,
            r.min_size.as_ref(),
            &format!("{item}.min_size"),
            0..=1 << 30,
            1024,
        ) as u64,
        types,
    }
}

pub(crate) fn cache(c: &mut Collector<'_>, raw: &Spanned<RawCache>, item: &str) -> CacheConfig {
    let r = raw.get_ref();
    let item = format!("{item} cache");
    let max_bytes = int(
        c,
        r.max_bytes.as_ref(),
        &format!("{item}.max_bytes"),
        4096..=1 << 40,
        64 << 20,
    ) as u64;
    let max_object_bytes = int(
        c,
        r.max_object_bytes.as_ref(),
        &format!("{item}.max_object_bytes"),
        1..=1 << 32,
        1 << 20,
    ) as u64;
    if max_object_bytes > max_bytes {
        let span = r.max_object_bytes.as_ref().map_or(raw.span(), |s| s.span());
        c.err(
            &span,
            &format!("{item}.max_object_bytes"),
            format!("must not exceed max_bytes ({max_bytes})"),
        );
    }
    CacheConfig {
        max_bytes,
        max_object_bytes,
    }
}

pub(crate) fn affinity(
    c: &mut Collector<'_>,
    raw: &Spanned<RawAffinity>,
    item: &str,
) -> AffinityConfig {
    let r = raw.get_ref();
    let item = format!("{item} affinity");
    let cookie = r.cookie.get_ref().clone();
    if !is_cookie_name(&cookie) {
        c.err(
            &r.cookie.span(),
            &format!("{item}.cookie"),
            "expected a cookie name (letters, digits, '-', '_', '.')",
        );
    }
    AffinityConfig {
        cookie,
        secret: r
            .secret
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default(),
        max_age: r
            .max_age
            .as_ref()
            .map(|m| duration(c, Some(m), &format!("{item}.max_age"), Duration::ZERO)),
    }
}

/// Cookie names as the balancer writes them: a conservative subset of RFC 6265 tokens.
pub(crate) fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
