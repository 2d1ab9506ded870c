//! Evaluating the compiled routing rules of a listener against a request: pure functions over
//! borrowed request parts, no allocation on the way.

use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request};

use crate::config::site::{HeaderOp, HostMatch, PathMatch, RouteRule};

/// The parts of a request that rules look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    /// Host without port (not lower-cased: compared without regard to case).
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) method: &'a Method,
    pub(crate) headers: &'a HeaderMap,
}

impl<'a> RequestView<'a> {
    pub(crate) fn of<B>(req: &'a Request<B>) -> Self {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(strip_port)
            .unwrap_or("");
        RequestView {
            host,
            path: req.uri().path(),
            query: req.uri().query(),
            method: req.method(),
            headers: req.headers(),
        }
    }
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        // [v6]:port
        return h.split_once(']').map_or(h, |(a, _)| &a[1..]);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

/// The index of the first rule that matches.
pub(crate) fn first_match(rules: &[RouteRule], v: &RequestView<'_>) -> Option<usize> {
    rules.iter().position(|r| matches(r, v))
}

/// True when every condition of the rule holds.
pub(crate) fn matches(r: &RouteRule, v: &RequestView<'_>) -> bool {
    if let Some(h) = &r.host {
        let host = v.host.trim_end_matches('.');
        let ok = match h {
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        };
        if !ok {
            return false;
        }
    }
    if let Some(p) = &r.path {
        let ok = match p {
            PathMatch::Exact(x) => v.path == x,
            PathMatch::Prefix(x) => v.path.starts_with(x.as_str()),
            PathMatch::Regex(re) => re.is_match(v.path),
        };
        if !ok {
            return false;
        }
    }
    if !r.methods.is_empty() && !r.methods.contains(v.method) {
        return false;
    }
    let header_ok = r.headers.iter().all(|m| {
        let mut values = v.headers.get_all(&m.name).iter();
        match &m.op {
            HeaderOp::Present => values.next().is_some(),
            HeaderOp::Equals(x) => values.any(|val| val.as_bytes() == x.as_bytes()),
            HeaderOp::Contains(x) => values.any(|val| contains(val, x)),
        }
    });
    header_ok
        && r.query.iter().all(|q| {
            query_params(v.query)
                .any(|(k, val)| k == q.name && q.equals.as_ref().is_none_or(|e| e == val))
        })
}

fn contains(v: &HeaderValue, needle: &str) -> bool {
    let (h, n) = (v.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w == n)
}

fn query_params(q: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
}

/// The path and query with `prefix` (which the path starts with) replaced by `replacement`;
/// `/api` + `/` on `/api/users` gives `/users`, never a doubled or missing slash.
pub(crate) fn rewrite(path: &str, query: Option<&str>, prefix: &str, replacement: &str) -> String {
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let mut out = String::with_capacity(path.len() + replacement.len() + 8);
    out.push_str(replacement);
    match (out.ends_with('/'), rest.starts_with('/')) {
        (true, true) => out.push_str(&rest[1..]),
        (false, false) if !rest.is_empty() => {
            out.push('/');
            out.push_str(rest);
        }
        _ => out.push_str(rest),
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::site::parse_site;

    fn rules(routes: &str) -> Vec<RouteRule> {
        let toml = format!(
            "[pools.a]\nservers = [\"127.0.0.1:1\"]\n[pools.b]\nservers = [\"127.0.0.1:2\"]\n\
             [[listeners]]\nbind = \"127.0.0.1:0\"\n{routes}"
        );
        let cfg = parse_site(Path::new("t.toml"), &toml).unwrap_or_else(|e| panic!("{e}"));
        let f = cfg.listeners[0].features.clone().expect("features");
        f.routes
    }

    fn req(method: &str, host: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    fn route_of(r: &[RouteRule], q: &Request<()>) -> Option<usize> {
        first_match(r, &RequestView::of(q))
    }

    #[test]
    fn each_matcher() {
        let r = rules(
            "[[listeners.routes]]\nhost = \"api.example.com\"\npool = \"a\"\n\
             [[listeners.routes]]\nhost = \"*.example.com\"\npath_prefix = \"/w/\"\npool = \"b\"\n\
             [[listeners.routes]]\npath = \"/exact\"\npool = \"a\"\n\
             [[listeners.routes]]\npath_regex = \"^/v[0-9]+/\"\nmethods = [\"post\"]\npool = \"b\"\n\
             [[listeners.routes]]\nheaders = [{ name = \"x-canary\", present = true }]\npool = \"a\"\n\
             [[listeners.routes]]\nheaders = [{ name = \"x-env\", equals = \"beta\" }]\npool = \"a\"\n\
             [[listeners.routes]]\nheaders = [{ name = \"accept\", contains = \"json\" }]\npool = \"a\"\n\
             [[listeners.routes]]\nquery = [{ name = \"v\", equals = \"2\" }, { name = \"debug\" }]\npool = \"b\"\n",
        );
        let g = |host, uri| req("GET", host, uri, &[]);
        assert_eq!(route_of(&r, &g("API.example.com:8443", "/x")), Some(0));
        assert_eq!(route_of(&r, &g("a.b.example.com", "/w/1")), Some(1));
        assert_eq!(route_of(&r, &g("example.com", "/w/1")), None, "bare domain");
        assert_eq!(route_of(&r, &g("x", "/exact")), Some(2));
        assert_eq!(route_of(&r, &g("x", "/exact/")), None);
        assert_eq!(route_of(&r, &req("POST", "x", "/v2/a", &[])), Some(3));
        assert_eq!(route_of(&r, &g("x", "/v2/a")), None, "method");
        assert_eq!(
            route_of(&r, &req("GET", "x", "/", &[("x-canary", "")])),
            Some(4)
        );
        assert_eq!(
            route_of(&r, &req("GET", "x", "/", &[("x-env", "beta")])),
            Some(5)
        );
        assert_eq!(
            route_of(&r, &req("GET", "x", "/", &[("x-env", "beta2")])),
            None
        );
        let accept = [("accept", "text/html, application/json")];
        assert_eq!(route_of(&r, &req("GET", "x", "/", &accept)), Some(6));
        assert_eq!(route_of(&r, &g("x", "/?a=1&v=2&debug")), Some(7));
        assert_eq!(route_of(&r, &g("x", "/?v=2")), None, "both params needed");
        assert_eq!(route_of(&r, &g("x", "/?v=3&debug=1")), None);
    }

    #[test]
    fn rewrite_keeps_one_slash() {
        assert_eq!(
            rewrite("/api/users", Some("a=1"), "/api", "/"),
            "/users?a=1"
        );
        assert_eq!(rewrite("/api/users", None, "/api/", "/v2"), "/v2/users");
        assert_eq!(rewrite("/api", None, "/api", "/"), "/");
        assert_eq!(rewrite("/api/x", None, "/api", "/v2/"), "/v2/x");
    }
}
