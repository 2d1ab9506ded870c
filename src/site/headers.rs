//! Header rewriting between client and backend: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239) added, a request id assigned.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// The request id header, kept when the client sends one.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Fixed hop-by-hop headers; `Connection` may name more.
fn fixed_hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// Removes hop-by-hop headers, including those listed in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.get(header::CONNECTION) {
        let listed: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            h.remove(name);
        }
    }
    for name in fixed_hop_by_hop() {
        if h.contains_key(name) {
            h.remove(name);
        }
    }
}

/// Adds the forwarding headers for a request from `client` whose host was `host`.
pub fn add_forwarded(h: &mut HeaderMap, client: SocketAddr, host: Option<&HeaderValue>) {
    let ip = client.ip();
    let mut buf = String::with_capacity(64);
    let _ = write!(buf, "{ip}");
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {buf}"),
        None => buf.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    buf.clear();
    match ip {
        IpAddr::V4(v4) => {
            let _ = write!(buf, "for={v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "for=\"[{v6}]\"");
        }
    }
    buf.push_str(";proto=http");
    if let Some(host) = host.and_then(|v| v.to_str().ok())
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        let _ = write!(buf, ";host=\"{host}\"");
    }
    let forwarded = match h.get(&FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {buf}"),
        None => buf,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        h.insert(FORWARDED.clone(), v);
    }
}

/// Request ids: a per-process random prefix and a counter, so ids are unique without a
/// random draw per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a random prefix.
    pub fn new() -> Self {
        RequestIds {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        }
    }

    /// Keeps the client's `X-Request-Id` or assigns one.
    pub fn ensure(&self, h: &mut HeaderMap) {
        if h.contains_key(&X_REQUEST_ID) {
            return;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut s = String::with_capacity(33);
        let _ = write!(s, "{:016x}{:016x}", self.prefix, n);
        if let Ok(v) = HeaderValue::from_str(&s) {
            h.insert(X_REQUEST_ID.clone(), v);
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_fixed_and_listed_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn appends_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let host = HeaderValue::from_static("example.com");
        add_forwarded(&mut h, "[::1]:5000".parse().expect("addr"), Some(&host));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, ::1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";proto=http;host=\"example.com\""
        );
    }

    #[test]
    fn request_ids_are_kept_or_assigned_uniquely() {
        let ids = RequestIds::new();
        let mut a = HeaderMap::new();
        let mut b = HeaderMap::new();
        ids.ensure(&mut a);
        ids.ensure(&mut b);
        assert_ne!(a[&X_REQUEST_ID], b[&X_REQUEST_ID]);
        let mut c = HeaderMap::new();
        c.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("mine"));
        ids.ensure(&mut c);
        assert_eq!(c[&X_REQUEST_ID], "mine");
    }
}
