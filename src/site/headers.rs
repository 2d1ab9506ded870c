//! Header rewriting between client and backend: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `X-Forwarded-For/-Proto/-Host` and `Forwarded` (RFC 7239) added, a request id assigned.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};

use super::upstream::codec::text;
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

/// The fixed hop-by-hop names of [`fixed_hop_by_hop`], spelled out for raw header fields.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What [`encode_request`] adds to a request beside its own fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rewrite<'a> {
    pub(crate) client: &'a Client,
    /// The request's `Host` (the `X-Forwarded-Host` and `Forwarded` host).
    pub(crate) host: Option<&'a [u8]>,
    pub(crate) which: ForwardedHeaders,
    /// Assign a request id when the client sent none.
    pub(crate) ids: Option<&'a RequestIds>,
}

/// Writes the head of a body-less request for a backend straight from the client's raw header
/// fields: the same rewrite as [`strip_hop_by_hop`], [`add_forwarded`] and
/// [`RequestIds::ensure`] do on a `HeaderMap` (tested against them below), without building
/// one. `listed` holds the names the client's `Connection` header lists (lower or any case).
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    fields: &[httparse::Header<'_>],
    listed: &[&str],
    rw: Rewrite<'_>,
) {
    let which = rw.which;
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut xff, mut fwd, mut has_id) = (None, None, false);
    for f in fields {
        let n = f.name;
        let is = |s: &str| n.eq_ignore_ascii_case(s);
        if is_hop_by_hop(n) || listed.iter().any(|h| is(h)) {
            continue;
        }
        if which.x_forwarded_for && is("x-forwarded-for") {
            xff = xff.or(Some(f.value));
            continue;
        }
        if (which.x_forwarded_proto && is("x-forwarded-proto"))
            || (which.x_forwarded_host && rw.host.is_some() && is("x-forwarded-host"))
        {
            continue;
        }
        if which.forwarded && is("forwarded") {
            fwd = fwd.or(Some(f.value));
            continue;
        }
        has_id |= is("x-request-id");
        field(out, n.as_bytes(), f.value);
    }
    if which.x_forwarded_for {
        list_start(out, b"x-forwarded-for", xff);
        out.extend_from_slice(rw.client.ip.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if which.x_forwarded_proto {
        field(out, b"x-forwarded-proto", rw.client.proto().as_bytes());
    }
    if which.x_forwarded_host
        && let Some(host) = rw.host
    {
        field(out, b"x-forwarded-host", host);
    }
    if which.forwarded {
        list_start(out, b"forwarded", fwd);
        out.extend_from_slice(rw.client.forwarded_for.as_bytes());
        out.extend_from_slice(b";proto=");
        out.extend_from_slice(rw.client.proto().as_bytes());
        if let Some(host) = rw.host
            && host
                .iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            out.extend_from_slice(b";host=\"");
            out.extend_from_slice(host);
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ids) = rw.ids
        && !has_id
    {
        field(out, X_REQUEST_ID.as_str().as_bytes(), &ids.next_id());
    }
    out.extend_from_slice(b"\r\n");
}

/// Starts a list-valued field the proxy adds an element to: the name, and the client's value
/// followed by a comma when it sent one that is text (as `HeaderValue::to_str` has it; anything
/// else is replaced, as `add_forwarded` does).
fn list_start(out: &mut Vec<u8>, name: &[u8], prev: Option<&[u8]>) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    if let Some(prev) = prev.filter(|v| text(v).is_some()) {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
}

/// One of the fixed hop-by-hop names (any case).
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Writes the fields of a backend's response head as received (`raw`, status line first),
/// less the hop-by-hop ones — the fixed names and those its `Connection` lists, as
/// [`strip_hop_by_hop`] removes from a map — and less a `Content-Length` that came beside
/// `Transfer-Encoding` (not passed on, RFC 9112 §6.3). Whether a length and a date were among
/// those written.
pub(crate) fn encode_response_fields(out: &mut Vec<u8>, raw: &[u8]) -> (bool, bool) {
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
    let mut r = httparse::Response::new(&mut []);
    // The same bytes parsed once already, when they came in.
    if !matches!(
        httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut r,
            raw,
            &mut fields
        ),
        Ok(httparse::Status::Complete(_))
    ) {
        return (false, false);
    }
    let fields = &*r.headers;
    let named = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    };
    let tokens = || {
        named("connection")
            .filter_map(|f| text(f.value))
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    let lists = tokens().any(|t| {
        !t.is_empty() && !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive")
    });
    let te = named("transfer-encoding").next().is_some();
    let (mut length, mut date) = (false, false);
    for f in fields {
        let n = f.name;
        if is_hop_by_hop(n) || (lists && tokens().any(|t| t.eq_ignore_ascii_case(n))) {
            continue;
        }
        let is_length = n.eq_ignore_ascii_case("content-length");
        if is_length && te {
            continue;
        }
        length |= is_length;
        date |= n.eq_ignore_ascii_case("date");
        field(out, n.as_bytes(), f.value);
    }
    (length, date)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
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
        if let Ok(v) = HeaderValue::from_bytes(&self.next_id()) {
            h.insert(X_REQUEST_ID.clone(), v);
        }
    }

    /// A new id: 32 hex digits.
    pub(crate) fn next_id(&self) -> [u8; 32] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 32];
        hex(self.prefix, &mut id[..16]);
        hex(n, &mut id[16..]);
        id
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

    /// The fields of an encoded head, lower-cased and sorted, with request ids masked (they
    /// differ by design).
    fn fields_of(head: &[u8]) -> Vec<(String, String)> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut fields);
        assert!(r.parse(head).expect("parses").is_complete());
        let mut v: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                let n = h.name.to_ascii_lowercase();
                let val = if n == "x-request-id" && h.value.len() == 32 {
                    "<assigned>".to_string()
                } else {
                    String::from_utf8_lossy(h.value).into_owned()
                };
                (n, val)
            })
            .collect();
        v.sort();
        v
    }

    /// The raw-field rewrite gives the same fields as the `HeaderMap` rewrite, for every
    /// choice of forwarding headers and a spread of client headers.
    #[test]
    fn the_raw_rewrite_matches_the_header_map_rewrite() {
        let requests: [&[(&str, &str)]; 6] = [
            &[("Host", "example.com"), ("Accept", "*/*")],
            &[
                ("Host", "example.com"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "1"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Proxy-Authorization", "Basic eA=="),
                ("X-Keep", "a"),
                ("X-Keep", "b"),
            ],
            &[
                ("host", "h.example"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("x-forwarded-for", "198.51.100.1"),
                ("Forwarded", "for=192.0.2.60"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "spoofed"),
                ("X-Request-Id", "mine"),
            ],
            &[("X-Forwarded-Host", "kept without a host"), ("Accept", "x")],
            &[("Host", "we\"ird"), ("X-Forwarded-For", "caf\u{e9}")],
            &[("Host", "[::1]:8080"), ("Cookie", "a=1"), ("Cookie", "b=2")],
        ];
        let mut choices = vec![ForwardedHeaders::ALL, ForwardedHeaders::NONE];
        for i in 0..4 {
            let mut c = ForwardedHeaders::NONE;
            match i {
                0 => c.x_forwarded_for = true,
                1 => c.x_forwarded_proto = true,
                2 => c.x_forwarded_host = true,
                _ => c.forwarded = true,
            }
            choices.push(c);
        }
        let ids = RequestIds::new();
        for (n, fields) in requests.iter().enumerate() {
            for &which in &choices {
                for (client, id) in [
                    (
                        Client::new("198.51.100.7:5000".parse().expect("addr")),
                        true,
                    ),
                    (
                        Client::new("[2001:db8::1]:443".parse().expect("addr")).over_tls(),
                        false,
                    ),
                ] {
                    let mut h = HeaderMap::new();
                    for (k, v) in fields.iter() {
                        h.append(
                            HeaderName::from_bytes(k.as_bytes()).expect("name"),
                            HeaderValue::from_bytes(v.as_bytes()).expect("value"),
                        );
                    }
                    let host = h.get(header::HOST).cloned();
                    strip_hop_by_hop(&mut h);
                    add_forwarded(&mut h, &client, host.as_ref(), which);
                    if id {
                        ids.ensure(&mut h);
                    }
                    let mut expected = b"GET / HTTP/1.1\r\n".to_vec();
                    for (k, v) in &h {
                        expected.extend_from_slice(k.as_str().as_bytes());
                        expected.extend_from_slice(b": ");
                        expected.extend_from_slice(v.as_bytes());
                        expected.extend_from_slice(b"\r\n");
                    }
                    expected.extend_from_slice(b"\r\n");

                    let raw: Vec<httparse::Header<'_>> = fields
                        .iter()
                        .map(|(k, v)| httparse::Header {
                            name: k,
                            value: v.as_bytes(),
                        })
                        .collect();
                    let listed: Vec<&str> = fields
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
                        .flat_map(|(_, v)| v.split(',').map(str::trim))
                        .filter(|t| {
                            !t.eq_ignore_ascii_case("keep-alive")
                                && !t.eq_ignore_ascii_case("close")
                        })
                        .collect();
                    let mut got = Vec::new();
                    let rw = Rewrite {
                        client: &client,
                        host: host.as_ref().map(HeaderValue::as_bytes),
                        which,
                        ids: id.then_some(&ids),
                    };
                    encode_request(&mut got, "GET", "/", &raw, &listed, rw);
                    assert_eq!(
                        fields_of(&got),
                        fields_of(&expected),
                        "request {n}, {which:?}, tls {}",
                        client.tls
                    );
                }
            }
        }
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
