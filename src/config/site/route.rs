//! `[[listeners.routes]]`: ordered content-routing rules. Each rule is compiled here, once per
//! configuration (regexes included), into matchers the proxy only evaluates.

use hyper::Method;
use hyper::header::HeaderName;
use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::l7::{RateLimitConfig, RawRateLimit, is_cookie_name, rate_limit};
use super::model::SiteConfig;
use super::validate::{int, or_none};
use crate::config::error::Collector;

/// One routing rule: every matcher given must match; then the request goes to `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    /// Name in metrics and `/status` (default `route1`, `route2`, ... in file order).
    pub name: String,
    /// Host (from `Host` or the HTTP/2 authority, without port).
    pub host: Option<HostMatch>,
    /// Path (without the query).
    pub path: Option<PathMatch>,
    /// Methods; empty = any.
    pub methods: Vec<Method>,
    /// Header conditions, all of which must hold.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions, all of which must hold.
    pub query: Vec<QueryMatch>,
    /// Where a matching request goes.
    pub action: RouteAction,
    /// Replaces the matched `path_prefix` before forwarding.
    pub rewrite_prefix: Option<String>,
    /// This route's own rate limit.
    pub rate_limit: Option<RateLimitConfig>,
}

/// A host condition; names are kept lower-case and compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// This name exactly.
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (one label or more before it).
    Suffix(String),
}

/// A path condition.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// This path exactly.
    Exact(String),
    /// Paths starting with this.
    Prefix(String),
    /// Paths the regular expression matches (anchor it with `^`/`$` as needed).
    Regex(Regex),
}

/// Regular expressions compare by their source text (what a reload diff needs).
impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Prefix(a), PathMatch::Prefix(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// A header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header.
    pub name: HeaderName,
    /// What its value must be.
    pub op: HeaderOp,
}

/// What a header condition checks. Several values of one header: any may satisfy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// The header is there.
    Present,
    /// A value equals this exactly.
    Equals(String),
    /// A value contains this.
    Contains(String),
}

/// A query parameter condition (names and values compared as sent, without decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMatch {
    /// The parameter.
    pub name: String,
    /// `None`: present with any value; else this value exactly.
    pub equals: Option<String>,
}

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// One pool (index into [`SiteConfig::pools`]).
    Pool(usize),
    /// Several pools by weight, each client keeping its variant.
    Split(SplitConfig),
}

/// A weighted split across pools.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// (pool index, weight), in file order.
    pub variants: Vec<(usize, u32)>,
    /// How a client keeps its variant.
    pub sticky: Sticky,
}

/// What keeps a client on its split variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    /// A cookie naming the variant, set on the first answer (drawn at random then).
    Cookie(String),
    /// A hash of this header (a user or client id); the client IP when it is missing.
    Header(HeaderName),
    /// A hash of the client IP address.
    ClientIp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    name: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    path_prefix: Option<Spanned<String>>,
    path_regex: Option<Spanned<String>>,
    methods: Option<Vec<Spanned<String>>>,
    headers: Option<Vec<Spanned<RawHeaderMatch>>>,
    query: Option<Vec<Spanned<RawQueryMatch>>>,
    pool: Option<Spanned<String>>,
    split: Option<Spanned<Vec<Spanned<RawVariant>>>>,
    sticky: Option<Spanned<String>>,
    rewrite_prefix: Option<Spanned<String>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderMatch {
    name: Spanned<String>,
    present: Option<bool>,
    equals: Option<String>,
    contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueryMatch {
    name: Spanned<String>,
    equals: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    pool: Spanned<String>,
    weight: Spanned<i64>,
}

/// Validates every rule of a listener.
pub(crate) fn routes(
    c: &mut Collector<'_>,
    raw: &[Spanned<RawRoute>],
    site: &SiteConfig,
    item: &str,
) -> Vec<RouteRule> {
    let mut out: Vec<RouteRule> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let rule = route(c, r, site, item, i);
        if out.iter().any(|o| o.name == rule.name) {
            c.err(
                &r.span(),
                item,
                format!("duplicate route name {:?}", rule.name),
            );
        }
        out.push(rule);
    }
    out
}

fn route(
    c: &mut Collector<'_>,
    raw: &Spanned<RawRoute>,
    site: &SiteConfig,
    listener: &str,
    index: usize,
) -> RouteRule {
    let r = raw.get_ref();
    let name = match &r.name {
        Some(n) if is_cookie_name(n.get_ref()) => n.get_ref().clone(),
        Some(n) => {
            c.err(
                &n.span(),
                &format!("{listener} route name"),
                "expected letters, digits, '-', '_' or '.'",
            );
            n.get_ref().clone()
        }
        None => format!("route{}", index + 1),
    };
    let item = format!("{listener} route {name:?}");
    let path = path(c, r, &item);
    if let Some(rw) = &r.rewrite_prefix {
        if !matches!(path, Some(PathMatch::Prefix(_))) {
            c.err(
                &rw.span(),
                &format!("{item} rewrite_prefix"),
                "needs a path_prefix to replace",
            );
        }
        if !rw.get_ref().starts_with('/') {
            c.err(
                &rw.span(),
                &format!("{item} rewrite_prefix"),
                "must start with '/'",
            );
        }
    }
    RouteRule {
        host: r.host.as_ref().map(|h| host(c, h, &item)),
        path,
        methods: methods(c, r, &item),
        headers: headers(c, r, &item),
        query: query(c, r, &item),
        action: action(c, raw, site, &item, &name),
        rewrite_prefix: r.rewrite_prefix.as_ref().map(|s| s.get_ref().clone()),
        rate_limit: r.rate_limit.as_ref().map(|l| rate_limit(c, l, &item)),
        name,
    }
}

fn host(c: &mut Collector<'_>, h: &Spanned<String>, item: &str) -> HostMatch {
    let v = h.get_ref().trim().to_ascii_lowercase();
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    match v.strip_prefix("*.") {
        Some(rest) if valid(rest) => HostMatch::Suffix(format!(".{rest}")),
        None if valid(&v) => HostMatch::Exact(v),
        _ => {
            c.err(
                &h.span(),
                &format!("{item} host"),
                "expected a host name such as \"www.example.com\" or \"*.example.com\"",
            );
            HostMatch::Exact(v)
        }
    }
}

fn path(c: &mut Collector<'_>, r: &RawRoute, item: &str) -> Option<PathMatch> {
    let given = [&r.path, &r.path_prefix, &r.path_regex];
    if given.iter().filter(|p| p.is_some()).count() > 1 {
        let span = given
            .iter()
            .rev()
            .find_map(|p| p.as_ref())
            .map(|p| p.span());
        c.err(
            &span.unwrap_or_default(),
            item,
            "give at most one of path, path_prefix and path_regex",
        );
    }
    let slash = |c: &mut Collector<'_>, p: &Spanned<String>, key: &str| {
        if !p.get_ref().starts_with('/') {
            c.err(&p.span(), &format!("{item} {key}"), "must start with '/'");
        }
    };
    if let Some(p) = &r.path {
        slash(c, p, "path");
        return Some(PathMatch::Exact(p.get_ref().clone()));
    }
    if let Some(p) = &r.path_prefix {
        slash(c, p, "path_prefix");
        return Some(PathMatch::Prefix(p.get_ref().clone()));
    }
    let p = r.path_regex.as_ref()?;
    match Regex::new(p.get_ref()) {
        Ok(re) => Some(PathMatch::Regex(re)),
        Err(e) => {
            c.err(
                &p.span(),
                &format!("{item} path_regex"),
                format!("bad regular expression: {e}"),
            );
            None
        }
    }
}

fn methods(c: &mut Collector<'_>, r: &RawRoute, item: &str) -> Vec<Method> {
    let Some(list) = &r.methods else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|m| {
            let v = m.get_ref().trim().to_ascii_uppercase();
            match Method::from_bytes(v.as_bytes()) {
                Ok(x) if !v.is_empty() => Some(x),
                _ => {
                    c.err(
                        &m.span(),
                        &format!("{item} methods"),
                        "expected a method name",
                    );
                    None
                }
            }
        })
        .collect()
}

fn headers(c: &mut Collector<'_>, r: &RawRoute, item: &str) -> Vec<HeaderMatch> {
    let Some(list) = &r.headers else {
        return Vec::new();
    };
    let item = format!("{item} headers");
    let mut out = Vec::new();
    for h in list {
        let hr = h.get_ref();
        let Ok(name) = HeaderName::from_bytes(hr.name.get_ref().trim().as_bytes()) else {
            c.err(&hr.name.span(), &item, "expected a header name");
            continue;
        };
        let ops = [
            hr.present == Some(true),
            hr.equals.is_some(),
            hr.contains.is_some(),
        ];
        if ops.iter().filter(|&&x| x).count() != 1 || hr.present == Some(false) {
            c.err(
                &h.span(),
                &item,
                "give exactly one of present = true, equals = \"...\", contains = \"...\"",
            );
            continue;
        }
        let op = match (&hr.equals, &hr.contains) {
            (Some(v), _) => HeaderOp::Equals(v.clone()),
            (_, Some(v)) => HeaderOp::Contains(v.clone()),
            _ => HeaderOp::Present,
        };
        out.push(HeaderMatch { name, op });
    }
    out
}

fn query(c: &mut Collector<'_>, r: &RawRoute, item: &str) -> Vec<QueryMatch> {
    let Some(list) = &r.query else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|q| {
            let q = q.get_ref();
            if q.name.get_ref().is_empty() {
                c.err(
                    &q.name.span(),
                    &format!("{item} query"),
                    "expected a parameter name",
                );
                return None;
            }
            Some(QueryMatch {
                name: q.name.get_ref().clone(),
                equals: q.equals.clone(),
            })
        })
        .collect()
}

fn pool_index(c: &mut Collector<'_>, site: &SiteConfig, p: &Spanned<String>, item: &str) -> usize {
    site.pool_index(p.get_ref()).unwrap_or_else(|| {
        let known: Vec<&str> = site.pools.iter().map(|p| p.name.as_str()).collect();
        c.err(
            &p.span(),
            item,
            format!(
                "unknown pool {:?} (known: {})",
                p.get_ref(),
                or_none(&known)
            ),
        );
        0
    })
}

fn action(
    c: &mut Collector<'_>,
    raw: &Spanned<RawRoute>,
    site: &SiteConfig,
    item: &str,
    name: &str,
) -> RouteAction {
    let r = raw.get_ref();
    match (&r.pool, &r.split) {
        (Some(p), None) => {
            if let Some(s) = &r.sticky {
                c.err(
                    &s.span(),
                    &format!("{item} sticky"),
                    "only applies to a split",
                );
            }
            RouteAction::Pool(pool_index(c, site, p, &format!("{item} pool")))
        }
        (None, Some(split)) => RouteAction::Split(split_config(c, r, split, site, item, name)),
        _ => {
            c.err(&raw.span(), item, "give exactly one of pool and split");
            RouteAction::Pool(0)
        }
    }
}

fn split_config(
    c: &mut Collector<'_>,
    r: &RawRoute,
    split: &Spanned<Vec<Spanned<RawVariant>>>,
    site: &SiteConfig,
    item: &str,
    name: &str,
) -> SplitConfig {
    let sitem = format!("{item} split");
    let mut variants: Vec<(usize, u32)> = Vec::new();
    for v in split.get_ref() {
        let v = v.get_ref();
        let p = pool_index(c, site, &v.pool, &sitem);
        let w = int(
            c,
            Some(&v.weight),
            &format!("{sitem} weight"),
            0..=1_000_000,
            1,
        ) as u32;
        if variants.iter().any(|(q, _)| *q == p) && site.pools.get(p).is_some() {
            c.err(&v.pool.span(), &sitem, "pool listed twice");
        }
        variants.push((p, w));
    }
    if variants.len() < 2 || variants.iter().all(|(_, w)| *w == 0) {
        c.err(
            &split.span(),
            &sitem,
            "a split needs at least two pools and a weight above 0",
        );
    }
    let sticky = match r.sticky.as_ref() {
        None => Sticky::Cookie(format!("meridian_split_{name}")),
        Some(s) => {
            let v = s.get_ref().as_str();
            if v == "client-ip" {
                Sticky::ClientIp
            } else if let Some(ck) = v.strip_prefix("cookie:").filter(|n| is_cookie_name(n)) {
                Sticky::Cookie(ck.to_string())
            } else if let Some(Ok(h)) = v
                .strip_prefix("header:")
                .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
            {
                Sticky::Header(h)
            } else {
                c.err(
                    &s.span(),
                    &format!("{item} sticky"),
                    "expected \"cookie:NAME\", \"header:NAME\" or \"client-ip\"",
                );
                Sticky::ClientIp
            }
        }
    };
    SplitConfig { variants, sticky }
}
