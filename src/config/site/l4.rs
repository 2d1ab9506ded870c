//! Options of `protocol = "tcp"` (L4) listeners: idle timeout, connection limit, the PROXY
//! protocol in both directions, and the splice relay. Kept apart from the HTTP keys so each
//! kind of listener rejects the other's keys with a clear message.

use std::time::Duration;

use toml::Spanned;

use super::model::Protocol;
use super::raw::RawListener;
use super::validate::{duration, int};
use crate::config::error::Collector;

/// Which PROXY protocol header a `tcp` listener sends to its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header (`PROXY TCP4 src dst sport dport\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// Options of a `tcp` listener. An `http` listener carries the defaults and ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Options {
    /// A connection with no byte moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Client connections open at once through this listener; at the limit the listener stops
    /// accepting until one closes (clients wait in the kernel's backlog). 0 = no limit.
    pub max_connections: usize,
    /// Expect a PROXY protocol header (v1 or v2) from the client (a front load balancer) and
    /// take the client's address from it.
    pub accept_proxy: bool,
    /// Send a PROXY protocol header to the backend before the client's bytes.
    pub send_proxy: Option<ProxyVersion>,
    /// Relay with `splice(2)` through a pipe instead of copying through user space (Linux).
    pub splice: bool,
}

impl Default for L4Options {
    fn default() -> Self {
        L4Options {
            idle_timeout: Duration::from_secs(600),
            max_connections: 0,
            accept_proxy: false,
            send_proxy: None,
            splice: false,
        }
    }
}

/// Reads the L4 keys of a listener; on an `http` listener each of them is an error, and on a
/// `tcp` listener each HTTP-only key is.
pub(crate) fn build(
    c: &mut Collector<'_>,
    r: &RawListener,
    item: &str,
    protocol: Protocol,
) -> L4Options {
    let key = |k: &str| format!("{item} {k}");
    if protocol == Protocol::Http {
        let given = [
            ("idle_timeout", r.idle_timeout.as_ref().map(|v| v.span())),
            (
                "max_connections",
                r.max_connections.as_ref().map(|v| v.span()),
            ),
            ("accept_proxy", r.accept_proxy.as_ref().map(|v| v.span())),
            ("send_proxy", r.send_proxy.as_ref().map(|v| v.span())),
            ("splice", r.splice.as_ref().map(|v| v.span())),
        ];
        for (k, span) in given {
            if let Some(span) = span {
                c.err(
                    &span,
                    &key(k),
                    "applies to protocol = \"tcp\" listeners only",
                );
            }
        }
        return L4Options::default();
    }
    let http_only = [
        (
            "max_header_bytes",
            r.max_header_bytes.as_ref().map(|v| v.span()),
        ),
        (
            "max_body_bytes",
            r.max_body_bytes.as_ref().map(|v| v.span()),
        ),
        ("tls", r.tls.as_ref().map(|v| v.span())),
        (
            "routes",
            r.routes.as_ref().and_then(|v| v.first()).map(|v| v.span()),
        ),
        ("rate_limit", r.rate_limit.as_ref().map(|v| v.span())),
        ("compression", r.compression.as_ref().map(|v| v.span())),
        ("cache", r.cache.as_ref().map(|v| v.span())),
    ];
    for (k, span) in http_only {
        if let Some(span) = span {
            c.err(
                &span,
                &key(k),
                "applies to protocol = \"http\" listeners only",
            );
        }
    }
    if r.h2.is_some() {
        let span = r.bind.span();
        c.err(
            &span,
            &key("h2"),
            "applies to protocol = \"http\" listeners only",
        );
    }
    let d = L4Options::default();
    let idle_timeout = duration(
        c,
        r.idle_timeout.as_ref(),
        &key("idle_timeout"),
        d.idle_timeout,
    );
    if idle_timeout.is_zero()
        && let Some(v) = &r.idle_timeout
    {
        c.err(&v.span(), &key("idle_timeout"), "must be more than 0s");
    }
    L4Options {
        idle_timeout,
        max_connections: int(
            c,
            r.max_connections.as_ref(),
            &key("max_connections"),
            0..=10_000_000,
            0,
        ) as usize,
        accept_proxy: r.accept_proxy.as_ref().is_some_and(|v| *v.get_ref()),
        send_proxy: send_proxy(c, r.send_proxy.as_ref(), &key("send_proxy")),
        splice: r.splice.as_ref().is_some_and(|v| *v.get_ref()),
    }
}

fn send_proxy(
    c: &mut Collector<'_>,
    v: Option<&Spanned<String>>,
    item: &str,
) -> Option<ProxyVersion> {
    let v = v?;
    match v.get_ref().as_str() {
        "v1" => Some(ProxyVersion::V1),
        "v2" => Some(ProxyVersion::V2),
        _ => {
            c.err(&v.span(), item, "expected \"v1\" or \"v2\"");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::site::{Protocol, ProxyVersion, parse_site};

    const POOL: &str = "[pools.p]\nservers = [\"127.0.0.1:1\"]\n";

    #[test]
    fn tcp_listener_with_every_option() {
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\
             idle_timeout = \"5s\"\nmax_connections = 10\naccept_proxy = true\n\
             send_proxy = \"v2\"\nsplice = true\n{POOL}"
        );
        let cfg = parse_site(Path::new("s.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let l = &cfg.listeners[0];
        assert_eq!(l.protocol, Protocol::Tcp);
        assert_eq!(l.l4.idle_timeout.as_secs(), 5);
        assert_eq!(l.l4.max_connections, 10);
        assert!(l.l4.accept_proxy && l.l4.splice);
        assert_eq!(l.l4.send_proxy, Some(ProxyVersion::V2));
    }

    #[test]
    fn keys_of_the_other_kind_are_errors_with_positions() {
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\nsend_proxy = \"v1\"\n\
             [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\
             max_header_bytes = 9000\nsend_proxy = \"v3\"\n{POOL}"
        );
        let e = parse_site(Path::new("s.toml"), &text)
            .expect_err("invalid")
            .to_string();
        assert!(
            e.contains("s.toml:4:14: listener \"127.0.0.1:0\" send_proxy: \"v1\": applies to protocol = \"tcp\" listeners only"),
            "{e}"
        );
        assert!(e.contains("s.toml:9:20:"), "{e}");
        assert!(
            e.contains("send_proxy: \"v3\": expected \"v1\" or \"v2\""),
            "{e}"
        );
    }

    #[test]
    fn tcp_listeners_refuse_tls_and_http_features_and_need_a_pool() {
        let text = format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\
             tls = {{ certificates = [{{ cert = \"c.pem\", key = \"k.pem\" }}] }}\n\
             cache = {{}}\n\
             [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\n{POOL}"
        );
        let e = parse_site(Path::new("s.toml"), &text)
            .expect_err("invalid")
            .to_string();
        assert!(
            e.contains("s.toml:5:7: listener \"127.0.0.1:0\" tls")
                && e.contains("applies to protocol = \"http\" listeners only"),
            "{e}"
        );
        assert!(
            e.contains("s.toml:6:9: listener \"127.0.0.1:0\" cache"),
            "{e}"
        );
        assert!(e.contains("a tcp listener needs a pool"), "{e}");
        assert!(
            !e.contains("(or routes)"),
            "one message for a missing pool: {e}"
        );
    }
}
