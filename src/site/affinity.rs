//! Cookie-based session affinity of a pool: the balancer sets a cookie naming the server that
//! answered, and later requests carrying it go to that server while it can take them.
//!
//! The cookie's value is an opaque hash of (secret, pool, server id) with the project's fixed
//! seed: the same on every restart and on every balancer with the same configuration, and it
//! does not reveal the server's address. It is not a signature: a client that forges one can
//! only choose among the pool's servers. A cookie naming a server that is down, draining, full
//! or unknown falls back to the pool's algorithm, and the answer carries a new cookie.

use hyper::HeaderMap;
use hyper::header;

use prometheus::IntCounter;

use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::AffinityConfig;
use crate::site::backend::Backend;
use crate::site::l7::cookie;
use crate::site::l7::metrics::FeatureMetrics;

/// A pool's affinity cookies.
#[derive(Debug)]
pub(crate) struct Affinity {
    cfg: AffinityConfig,
    /// Hash of (secret, pool): the seed of every server's key, so a key hashes only the id.
    seed: u64,
    kept: IntCounter,
    moved: IntCounter,
}

impl Affinity {
    pub(crate) fn new(cfg: &AffinityConfig, pool: &str, m: &FeatureMetrics) -> Self {
        let mut buf = Vec::with_capacity(cfg.secret.len() + pool.len() + 2);
        for part in [cfg.secret.as_str(), pool] {
            buf.extend_from_slice(part.as_bytes());
            buf.push(0);
        }
        Affinity {
            cfg: cfg.clone(),
            seed: hash_bytes(DEFAULT_SEED, &buf),
            kept: m.affinity.with_label_values(&[pool, "kept"]),
            moved: m.affinity.with_label_values(&[pool, "set"]),
        }
    }

    /// The cookie key of the server with this id (servers are named by id, so a server keeps
    /// its cookie when others join or leave, and across restarts).
    pub(crate) fn key(&self, id: &str) -> u64 {
        hash_bytes(self.seed, id.as_bytes())
    }

    /// Whether cookie key `k` names `b`.
    pub(crate) fn names(&self, k: u64, b: &Backend) -> bool {
        self.key(&b.cfg.id) == k
    }

    /// After the server with key `server` answered a request whose cookie held `preferred`:
    /// sets the cookie when it named another server (or none).
    pub(crate) fn answered(
        &self,
        headers: &mut HeaderMap,
        preferred: Option<u64>,
        server: u64,
        secure: bool,
    ) {
        if preferred == Some(server) {
            self.kept.inc();
        } else {
            self.moved.inc();
            self.set_cookie(headers, server, secure);
        }
    }

    /// The key a request's cookie holds (16 hex digits), if it has one.
    pub(crate) fn preferred(&self, headers: &HeaderMap) -> Option<u64> {
        let v = cookie::get(headers, &self.cfg.cookie)?;
        if v.len() != 16 {
            return None;
        }
        u64::from_str_radix(v, 16).ok()
    }

    /// Adds the cookie naming the server with key `server` to an answer.
    pub(crate) fn set_cookie(&self, headers: &mut HeaderMap, server: u64, secure: bool) {
        let v = format!("{server:016x}");
        headers.append(
            header::SET_COOKIE,
            cookie::set(&self.cfg.cookie, &v, self.cfg.max_age, secure),
        );
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn affinity(secret: &str) -> Affinity {
        let m = FeatureMetrics::new(&prometheus::Registry::new());
        let cfg = AffinityConfig {
            cookie: "srv".to_string(),
            secret: secret.to_string(),
            max_age: None,
        };
        Affinity::new(&cfg, "web", &m)
    }

    #[test]
    fn values_are_stable_opaque_and_keyed() {
        let a = affinity("s1");
        let b = affinity("s1");
        assert_eq!(a.key("web-1"), b.key("web-1"), "same config, same cookies");
        assert_ne!(a.key("web-1"), a.key("web-2"));
        let c = affinity("s2");
        assert_ne!(
            a.key("web-1"),
            c.key("web-1"),
            "the secret changes the values"
        );
        let mut h = HeaderMap::new();
        a.set_cookie(&mut h, a.key("web-2"), false);
        let set = h[header::SET_COOKIE].to_str().expect("ascii").to_string();
        assert!(!set.contains("web-2"), "opaque: {set}");
        let mut req = HeaderMap::new();
        let pair = set.split(';').next().expect("pair").to_string();
        req.insert(header::COOKIE, HeaderValue::from_str(&pair).expect("value"));
        assert_eq!(a.preferred(&req), Some(a.key("web-2")));
        assert_ne!(
            c.preferred(&req),
            Some(c.key("web-2")),
            "another secret's cookie names nothing"
        );
        req.insert(header::COOKIE, HeaderValue::from_static("srv=zz"));
        assert_eq!(a.preferred(&req), None, "not a key");
    }
}
