//! Raw site file → validated [`SiteConfig`]: the top level (threads, admin, shutdown,
//! listeners) and the shared value checks. Pools are in `pool.rs`.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::raw::{RawListener, RawSite};
use super::{features, pool, tls};
use crate::config::error::{Collector, ConfigError, Source};

/// Parses and validates one site file's text.
pub fn parse_site(file: &Path, text: &str) -> Result<SiteConfig, ConfigError> {
    let src = Source::new(file, text);
    let raw: RawSite = toml::from_str(text).map_err(|e| ConfigError::single(src.from_toml(&e)))?;
    let mut c = Collector::new(&src);
    let site = build(&mut c, file, raw);
    c.finish(site)
}

fn build(c: &mut Collector<'_>, file: &Path, raw: RawSite) -> SiteConfig {
    let threads = raw
        .threads
        .as_ref()
        .map(|t| int(c, Some(t), "threads", 1..=1024, 1) as usize);
    let admin = raw.admin.as_ref().and_then(|a| {
        let api = super::api::build(c, file, a.get_ref());
        let slow_latency = duration(
            c,
            a.get_ref().slow_latency.as_ref(),
            "admin.slow_latency",
            Duration::from_millis(500),
        );
        addr(c, &a.get_ref().bind, "admin.bind").map(|bind| AdminConfig {
            bind,
            api,
            slow_latency,
        })
    });
    let shutdown = match &raw.shutdown {
        None => ShutdownConfig {
            delay: Duration::ZERO,
            grace: Duration::from_secs(30),
        },
        Some(s) => ShutdownConfig {
            delay: duration(
                c,
                s.get_ref().delay.as_ref(),
                "shutdown.delay",
                Duration::ZERO,
            ),
            grace: duration(
                c,
                s.get_ref().grace.as_ref(),
                "shutdown.grace",
                Duration::from_secs(30),
            ),
        },
    };
    let mut pools = Vec::new();
    for (name, p) in &raw.pools {
        if let Some(mut pc) = pool::build(c, name, p) {
            let item = format!("pool {:?}", name.get_ref());
            pc.tls = p
                .get_ref()
                .tls
                .as_ref()
                .map(|t| tls::backend_tls(c, file, t, &item));
            pools.push(pc);
        }
    }
    let mut site = SiteConfig {
        file: file.to_path_buf(),
        threads,
        admin,
        shutdown,
        listeners: Vec::new(),
        pools,
    };
    for l in &raw.listeners {
        if let Some(l) = listener(c, file, l, &site) {
            site.listeners.push(l);
        }
    }
    check_binds(c, &raw, &site);
    site
}

fn listener(
    c: &mut Collector<'_>,
    file: &Path,
    raw: &Spanned<RawListener>,
    site: &SiteConfig,
) -> Option<ListenerConfig> {
    let r = raw.get_ref();
    let item = format!("listener {:?}", r.bind.get_ref());
    let bind = addr(c, &r.bind, &item);
    let protocol = match r.protocol.as_ref().map(|p| p.get_ref().as_str()) {
        None | Some("http") => Protocol::Http,
        Some("tcp") => Protocol::Tcp,
        Some(other) => {
            let span = r.protocol.as_ref().map_or(raw.span(), |p| p.span());
            c.err(
                &span,
                &item,
                format!("unknown protocol {other:?} (known: http, tcp)"),
            );
            Protocol::Http
        }
    };
    let pool = r.pool.as_ref().and_then(|p| {
        let i = site.pool_index(p.get_ref());
        if i.is_none() {
            let known: Vec<&str> = site.pools.iter().map(|p| p.name.as_str()).collect();
            c.err(
                &p.span(),
                &item,
                format!(
                    "unknown pool {:?} (known: {})",
                    p.get_ref(),
                    or_none(&known)
                ),
            );
        }
        i
    });
    let l4 = super::l4::build(c, r, &item, protocol);
    let features = features::build(c, raw, site, &item, pool);
    if r.pool.is_none() {
        if protocol == Protocol::Tcp {
            c.err(&raw.span(), &item, "a tcp listener needs a pool");
        } else if features.as_ref().is_none_or(|f| f.routes.is_empty()) {
            c.err(&raw.span(), &item, "a listener needs a pool (or routes)");
        }
    }
    // With routes and no default pool, `pool` only has to name some valid pool.
    let pool = pool.or_else(|| features.as_ref().and_then(|f| features::first_pool(f)));
    let tls = r.tls.as_ref().map(|t| tls::listener_tls(c, file, t, &item));
    let max_header_bytes = int(
        c,
        r.max_header_bytes.as_ref(),
        &format!("{item} max_header_bytes"),
        8192..=1 << 20,
        16 * 1024,
    ) as usize;
    let header_timeout = duration(
        c,
        r.header_timeout.as_ref(),
        &format!("{item} header_timeout"),
        Duration::from_secs(30),
    );
    let max_body_bytes = int(
        c,
        r.max_body_bytes.as_ref(),
        &format!("{item} max_body_bytes"),
        0..=i64::MAX,
        0,
    ) as u64;
    let forwarded = match &r.forwarded_headers {
        None => ForwardedHeaders::ALL,
        Some(names) => {
            let mut f = ForwardedHeaders::NONE;
            for n in names {
                match n.get_ref().to_ascii_lowercase().as_str() {
                    "x-forwarded-for" => f.x_forwarded_for = true,
                    "x-forwarded-proto" => f.x_forwarded_proto = true,
                    "x-forwarded-host" => f.x_forwarded_host = true,
                    "forwarded" => f.forwarded = true,
                    _ => c.err(
                        &n.span(),
                        &format!("{item} forwarded_headers"),
                        "expected \"x-forwarded-for\", \"x-forwarded-proto\", \"x-forwarded-host\" or \"forwarded\"",
                    ),
                }
            }
            f
        }
    };
    Some(ListenerConfig {
        bind: bind?,
        protocol,
        pool: pool?,
        max_header_bytes,
        header_timeout,
        h2: r.h2.unwrap_or(true),
        max_body_bytes,
        forwarded,
        request_id: r.request_id.unwrap_or(true),
        tls,
        features,
        l4,
    })
}

/// Two listeners (or a listener and the admin listener) on one address is an error.
fn check_binds(c: &mut Collector<'_>, raw: &RawSite, site: &SiteConfig) {
    let mut seen: Vec<SocketAddr> = site.admin.iter().map(|a| a.bind).collect();
    for (l, r) in site.listeners.iter().zip(&raw.listeners) {
        if l.bind.port() != 0 && seen.contains(&l.bind) {
            c.err(
                &r.get_ref().bind.span(),
                "listener",
                "address already used by another listener",
            );
        }
        seen.push(l.bind);
    }
}

pub(crate) fn or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

pub(crate) fn addr(c: &mut Collector<'_>, v: &Spanned<String>, item: &str) -> Option<SocketAddr> {
    match v.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.err(
                &v.span(),
                item,
                "expected an address with a port, such as 127.0.0.1:8080 or [::1]:8080",
            );
            None
        }
    }
}

/// A duration such as `"500ms"`, `"2s"`, `"1m 30s"`.
pub(crate) fn duration(
    c: &mut Collector<'_>,
    v: Option<&Spanned<String>>,
    item: &str,
    default: Duration,
) -> Duration {
    let Some(v) = v else { return default };
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) => d,
        Err(e) => {
            c.err(
                &v.span(),
                item,
                format!("bad duration ({e}); write e.g. \"500ms\" or \"2s\""),
            );
            default
        }
    }
}

pub(crate) fn int(
    c: &mut Collector<'_>,
    v: Option<&Spanned<i64>>,
    item: &str,
    range: RangeInclusive<i64>,
    default: i64,
) -> i64 {
    let Some(v) = v else { return default };
    let x = *v.get_ref();
    if range.contains(&x) {
        x
    } else {
        c.err(
            &v.span(),
            item,
            format!("must be {}..={}", range.start(), range.end()),
        );
        default
    }
}

pub(crate) fn float(
    c: &mut Collector<'_>,
    v: Option<&Spanned<f64>>,
    item: &str,
    range: RangeInclusive<f64>,
    default: f64,
) -> f64 {
    let Some(v) = v else { return default };
    let x = *v.get_ref();
    if x.is_finite() && range.contains(&x) {
        x
    } else {
        c.err(
            &v.span(),
            item,
            format!("must be a number in {}..={}", range.start(), range.end()),
        );
        default
    }
}
