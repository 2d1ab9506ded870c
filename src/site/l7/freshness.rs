//! HTTP caching rules (RFC 9111) the response cache follows, as pure functions over headers:
//! which requests may be served from the cache, which responses may be stored and for how
//! long, and what an entry's age is.

use std::time::Duration;

use hyper::header::{self, HeaderName};
use hyper::{HeaderMap, StatusCode};

/// The `Cache-Control` directives the cache acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
}

/// Parses every `Cache-Control` header of a message.
pub(crate) fn directives(h: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    for v in h.get_all(header::CACHE_CONTROL) {
        for item in v.to_str().unwrap_or("").split(',') {
            let (name, arg) = match item.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (item.trim(), None),
            };
            let secs = || arg.and_then(|a| a.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "no-store" => d.no_store = true,
                // `no-cache="field"` and `private="field"` restrict only some fields; treating
                // them as the plain directive errs on the side of not caching.
                "no-cache" => d.no_cache = true,
                "private" => d.private = true,
                "max-age" => d.max_age = secs().or(Some(0)),
                "s-maxage" => d.s_maxage = secs().or(Some(0)),
                _ => {}
            }
        }
    }
    d
}

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestUse {
    /// Not at all (`no-store`, credentials): straight to the backend, nothing stored.
    Bypass,
    /// Only after revalidating with the backend (`no-cache`, `max-age=0`, `Pragma: no-cache`).
    Revalidate,
    /// A fresh entry may answer it.
    Normal,
}

pub(crate) fn request_use(h: &HeaderMap) -> RequestUse {
    if h.contains_key(header::AUTHORIZATION) {
        return RequestUse::Bypass;
    }
    let d = directives(h);
    if d.no_store {
        return RequestUse::Bypass;
    }
    let pragma = h
        .get_all(header::PRAGMA)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
    if d.no_cache || d.max_age == Some(0) || pragma {
        RequestUse::Revalidate
    } else {
        RequestUse::Normal
    }
}

/// How long a response to a GET may be served from a shared cache, or `None` when it must not
/// be stored: only explicit lifetimes (`s-maxage`, else `max-age`) are used, never
/// heuristics; `no-store`, `no-cache`, `private`, `Set-Cookie` and `Vary: *` keep it out.
pub(crate) fn lifetime(status: StatusCode, h: &HeaderMap) -> Option<Duration> {
    if !matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 410
    ) {
        return None;
    }
    let d = directives(h);
    if d.no_store || d.no_cache || d.private || h.contains_key(header::SET_COOKIE) {
        return None;
    }
    vary_names(h)?;
    let secs = d.s_maxage.or(d.max_age)?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The request headers a response varies on; `None` for `Vary: *` (never cached).
pub(crate) fn vary_names(h: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in h.get_all(header::VARY) {
        for item in v.to_str().unwrap_or("").split(',') {
            let item = item.trim();
            if item == "*" {
                return None;
            }
            if let Ok(n) = HeaderName::from_bytes(item.as_bytes())
                && !names.contains(&n)
            {
                names.push(n);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// The `Age` a response arrived with.
pub(crate) fn age(h: &HeaderMap) -> Duration {
    let secs = h
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(secs)
}

/// True when the request's `If-None-Match` names `etag` (weak comparison).
pub(crate) fn etag_matches(req: &HeaderMap, etag: &[u8]) -> bool {
    let strip = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
    let want = strip(etag);
    req.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim() == "*" || strip(t.trim().as_bytes()) == want)
    })
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn lifetimes() {
        let ok = StatusCode::OK;
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            lifetime(ok, &h(&[("cache-control", "max-age=60")])),
            secs(60)
        );
        let both = h(&[("cache-control", "max-age=60, s-maxage=5")]);
        assert_eq!(
            lifetime(ok, &both),
            secs(5),
            "s-maxage wins in a shared cache"
        );
        assert_eq!(
            lifetime(ok, &h(&[("cache-control", "no-store, max-age=60")])),
            None
        );
        assert_eq!(
            lifetime(ok, &h(&[("cache-control", "private, max-age=60")])),
            None
        );
        assert_eq!(
            lifetime(ok, &h(&[("cache-control", "no-cache, max-age=60")])),
            None
        );
        assert_eq!(lifetime(ok, &h(&[])), None, "no explicit lifetime");
        let vary_star = h(&[("cache-control", "max-age=60"), ("vary", "*")]);
        assert_eq!(lifetime(ok, &vary_star), None);
        let cookie = h(&[("cache-control", "max-age=60"), ("set-cookie", "a=1")]);
        assert_eq!(lifetime(ok, &cookie), None);
        let err = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(lifetime(err, &h(&[("cache-control", "max-age=60")])), None);
    }

    #[test]
    fn requests() {
        assert_eq!(request_use(&h(&[])), RequestUse::Normal);
        assert_eq!(
            request_use(&h(&[("cache-control", "no-store")])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&h(&[("authorization", "Bearer x")])),
            RequestUse::Bypass
        );
        assert_eq!(
            request_use(&h(&[("cache-control", "no-cache")])),
            RequestUse::Revalidate
        );
        assert_eq!(
            request_use(&h(&[("pragma", "no-cache")])),
            RequestUse::Revalidate
        );
    }

    #[test]
    fn vary_and_etags() {
        let names = vary_names(&h(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", "x"),
        ]));
        let names: Vec<&str> = names.iter().flatten().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept-encoding", "accept-language", "x"]);
        assert!(etag_matches(
            &h(&[("if-none-match", "\"a\", W/\"b\"")]),
            b"\"b\""
        ));
        assert!(!etag_matches(&h(&[("if-none-match", "\"a\"")]), b"\"b\""));
    }
}
