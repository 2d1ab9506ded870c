//! Header rewriting between client and backend: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239) added, a request id assigned.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

use crate::config::site::ForwardedHeaders;

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

/// Removes hop-by-hop headers, including those listed in `Connection`. Most requests have none:
/// one pass over the names finds that without a lookup per hop-by-hop name.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let hop = fixed_hop_by_hop();
    if !h.keys().any(|k| hop.contains(&k)) {
        return;
    }
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
    for name in hop {
        h.remove(name);
    }
}

/// What the forwarding headers say about one client connection, formatted once per connection
/// rather than once per request.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer address.
    pub addr: SocketAddr,
    ip: HeaderValue,
    forwarded_for: String,
    /// The connection is TLS (the forwarding headers say `https`).
    pub tls: bool,
}

impl Client {
    /// Formats the values for a peer.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = addr.ip();
        let forwarded_for = match ip {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        let ip =
            HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        Client {
            addr,
            ip,
            forwarded_for,
            tls: false,
        }
    }

    /// The same client, over TLS.
    pub fn over_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    fn proto(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// Adds the forwarding headers a listener asks for (`which`) to a request from `client` whose
/// host was `host`. Headers it does not add pass through as the client sent them.
pub fn add_forwarded(
    h: &mut HeaderMap,
    client: &Client,
    host: Option<&HeaderValue>,
    which: ForwardedHeaders,
) {
    if which.x_forwarded_for {
        let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", client.addr.ip())).ok(),
            None => Some(client.ip.clone()),
        };
        if let Some(v) = xff {
            h.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    if which.x_forwarded_proto {
        h.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(client.proto()),
        );
    }
    if which.x_forwarded_host
        && let Some(host) = host
    {
        h.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    if !which.forwarded {
        return;
    }
    let prev = h.get(&FORWARDED).and_then(|v| v.to_str().ok());
    let mut buf = String::with_capacity(64);
    if let Some(prev) = prev {
        buf.push_str(prev);
        buf.push_str(", ");
    }
    buf.push_str(&client.forwarded_for);
    buf.push_str(";proto=");
    buf.push_str(client.proto());
    if let Some(host) = host.and_then(|v| v.to_str().ok())
        && host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        buf.push_str(";host=\"");
        buf.push_str(host);
        buf.push('"');
    }
    if let Ok(v) = HeaderValue::from_str(&buf) {
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
        let mut id = [0u8; 32];
        hex(self.prefix, &mut id[..16]);
        hex(n, &mut id[16..]);
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            h.insert(X_REQUEST_ID.clone(), v);
        }
    }
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
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
        let client = Client::new("[::1]:5000".parse().expect("addr"));
        add_forwarded(&mut h, &client, Some(&host), ForwardedHeaders::ALL);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, ::1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";proto=http;host=\"example.com\""
        );
    }

    #[test]
    fn only_the_asked_forwarding_headers_are_added() {
        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=192.0.2.1"));
        let host = HeaderValue::from_static("example.com");
        let client = Client::new("198.51.100.7:5000".parse().expect("addr"));
        let only_xff = ForwardedHeaders {
            x_forwarded_for: true,
            ..ForwardedHeaders::NONE
        };
        add_forwarded(&mut h, &client, Some(&host), only_xff);
        assert_eq!(h["x-forwarded-for"], "198.51.100.7");
        assert!(!h.contains_key("x-forwarded-proto"));
        assert!(!h.contains_key("x-forwarded-host"));
        assert_eq!(h["forwarded"], "for=192.0.2.1", "passed through untouched");
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
