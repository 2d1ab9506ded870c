//! Cookie-based session affinity of a pool: the balancer sets a cookie naming the server that
//! answered, and later requests carrying it go to that server while it can take them.
//!
//! The cookie's value is an opaque hash of (secret, pool, server id) with the project's fixed
//! seed: the same on every restart and on every balancer with the same configuration, and it
//! does not reveal the server's address. It is not a signature: a client that forges one can
//! only choose among the pool's servers. A cookie naming a server that is down, draining, full
//! or unknown falls back to the pool's algorithm, and the answer carries a new cookie.

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};

use prometheus::IntCounter;

use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::{AffinityConfig, PoolConfig};
use crate::site::l7::cookie;
use crate::site::l7::metrics::FeatureMetrics;

/// A pool's affinity cookies, computed once.
#[derive(Debug)]
pub(crate) struct Affinity {
    cfg: AffinityConfig,
    /// Cookie value of each server, by index.
    values: Vec<String>,
    /// `Set-Cookie` for each server: over plain HTTP, then over TLS (`Secure`).
    set: Vec<[HeaderValue; 2]>,
    kept: IntCounter,
    moved: IntCounter,
}

impl Affinity {
    pub(crate) fn new(cfg: &AffinityConfig, pool: &PoolConfig, m: &FeatureMetrics) -> Self {
        let values: Vec<String> = pool
            .servers
            .iter()
            .map(|s| value(&cfg.secret, &pool.name, &s.id))
            .collect();
        let set = values
            .iter()
            .map(|v| [false, true].map(|secure| cookie::set(&cfg.cookie, v, cfg.max_age, secure)))
            .collect();
        Affinity {
            cfg: cfg.clone(),
            values,
            set,
            kept: m.affinity.with_label_values(&[pool.name.as_str(), "kept"]),
            moved: m.affinity.with_label_values(&[pool.name.as_str(), "set"]),
        }
    }

    /// After `server` answered a request whose cookie named `preferred`: sets the cookie
    /// when it named another server (or none).
    pub(crate) fn answered(
        &self,
        headers: &mut HeaderMap,
        preferred: Option<usize>,
        server: usize,
        secure: bool,
    ) {
        if preferred == Some(server) {
            self.kept.inc();
        } else {
            self.moved.inc();
            self.set_cookie(headers, server, secure);
        }
    }

    /// The server a request's cookie names, if it names one of this pool's.
    pub(crate) fn preferred(&self, headers: &HeaderMap) -> Option<usize> {
        let v = cookie::get(headers, &self.cfg.cookie)?;
        self.values.iter().position(|x| x == v)
    }

    /// Adds the cookie naming `server` to an answer.
    pub(crate) fn set_cookie(&self, headers: &mut HeaderMap, server: usize, secure: bool) {
        if let Some(v) = self.set.get(server) {
            headers.append(header::SET_COOKIE, v[usize::from(secure)].clone());
        }
    }
}

/// The cookie value naming a server: 16 hex digits.
fn value(secret: &str, pool: &str, id: &str) -> String {
    let mut buf = Vec::with_capacity(secret.len() + pool.len() + id.len() + 2);
    for part in [secret, pool, id] {
        buf.extend_from_slice(part.as_bytes());
        buf.push(0);
    }
    format!("{:016x}", hash_bytes(DEFAULT_SEED, &buf))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::site::parse_site;

    fn pool(secret: &str) -> PoolConfig {
        let toml = format!(
            "[pools.web]\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
             affinity = {{ cookie = \"srv\", secret = \"{secret}\" }}\n"
        );
        let cfg = parse_site(Path::new("t.toml"), &toml).unwrap_or_else(|e| panic!("{e}"));
        cfg.pools[0].clone()
    }

    fn affinity(p: &PoolConfig) -> Affinity {
        let m = FeatureMetrics::new(&prometheus::Registry::new());
        Affinity::new(p.affinity.as_ref().expect("affinity"), p, &m)
    }

    #[test]
    fn values_are_stable_opaque_and_keyed() {
        let p = pool("s1");
        let a = affinity(&p);
        let b = affinity(&p);
        assert_eq!(a.values, b.values, "same config, same cookies");
        assert_ne!(a.values[0], a.values[1]);
        assert!(!a.values[0].contains("127.0.0.1"));
        let p2 = pool("s2");
        let c = affinity(&p2);
        assert_ne!(a.values[0], c.values[0], "the secret changes the values");
        let mut h = HeaderMap::new();
        a.set_cookie(&mut h, 1, false);
        let set = h[header::SET_COOKIE].to_str().expect("ascii").to_string();
        let mut req = HeaderMap::new();
        let pair = set.split(';').next().expect("pair").to_string();
        req.insert(header::COOKIE, HeaderValue::from_str(&pair).expect("value"));
        assert_eq!(a.preferred(&req), Some(1));
        assert_eq!(
            c.preferred(&req),
            None,
            "another secret's cookie names nothing"
        );
    }
}
