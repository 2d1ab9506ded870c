//! Traffic splitting: a request of a split route goes to one of several pools by weight, and a
//! client keeps its variant, by a cookie naming it or by a hash of a client id (a header, or
//! the client address). Pure: the random draw for a new cookie client is passed in.

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::HeaderValue;

use super::cookie;
use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::{SplitConfig, Sticky};

/// A split, ready to choose.
#[derive(Debug)]
pub(crate) struct Split {
    cfg: SplitConfig,
    /// Pool name of each variant: the cookie value.
    names: Vec<String>,
    total: u64,
}

/// A variant for one request, and the cookie to set when the client has none yet.
#[derive(Debug)]
pub(crate) struct Choice {
    /// Index into the split's variants.
    pub(crate) variant: usize,
    pub(crate) set_cookie: Option<HeaderValue>,
}

impl Split {
    pub(crate) fn new(cfg: SplitConfig, names: Vec<String>) -> Self {
        let total = cfg.variants.iter().map(|v| u64::from(v.1)).sum();
        Split { cfg, names, total }
    }

    /// The pool names of the variants.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Picks the variant of a request. `draw` is a random number, used only for a cookie
    /// client without a (valid) cookie yet.
    pub(crate) fn choose(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        secure: bool,
        draw: u64,
    ) -> Choice {
        let by_hash = |h: u64| Choice {
            variant: self.bucket(h),
            set_cookie: None,
        };
        match &self.cfg.sticky {
            Sticky::Cookie(name) => {
                let kept = cookie::get(headers, name).and_then(|v| {
                    self.names
                        .iter()
                        .position(|n| n == v)
                        .filter(|&i| self.cfg.variants[i].1 > 0)
                });
                match kept {
                    Some(variant) => Choice {
                        variant,
                        set_cookie: None,
                    },
                    None => {
                        let variant = self.bucket(draw);
                        Choice {
                            variant,
                            set_cookie: Some(cookie::set(name, &self.names[variant], None, secure)),
                        }
                    }
                }
            }
            Sticky::Header(h) => match headers.get(h) {
                Some(v) => by_hash(hash_bytes(DEFAULT_SEED, v.as_bytes())),
                None => by_hash(ip_hash(ip)),
            },
            Sticky::ClientIp => by_hash(ip_hash(ip)),
        }
    }

    /// The variant whose share of `[0, total)` holds `h` scaled into it.
    fn bucket(&self, h: u64) -> usize {
        let point = ((u128::from(h) * u128::from(self.total)) >> 64) as u64;
        let mut acc = 0u64;
        for (i, (_, w)) in self.cfg.variants.iter().enumerate() {
            acc += u64::from(*w);
            if point < acc {
                return i;
            }
        }
        self.cfg.variants.len() - 1
    }
}

fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
        IpAddr::V6(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hyper::header::{self, HeaderName};

    use super::*;

    fn split(sticky: Sticky) -> Split {
        Split::new(
            SplitConfig {
                variants: vec![(0, 90), (1, 10)],
                sticky,
            },
            vec!["stable".into(), "canary".into()],
        )
    }

    fn ip() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    #[test]
    fn hashed_ids_split_within_two_percent_and_stick() {
        let s = split(Sticky::Header(HeaderName::from_static("x-user")));
        let mut canary = 0;
        for i in 0..10_000 {
            let mut h = HeaderMap::new();
            h.insert(
                "x-user",
                HeaderValue::from_str(&format!("user-{i}")).expect("v"),
            );
            let first = s.choose(&h, ip(), false, 0).variant;
            assert_eq!(s.choose(&h, ip(), false, u64::MAX).variant, first, "sticky");
            canary += first;
        }
        let share = canary as f64 / 10_000.0;
        assert!((share - 0.10).abs() <= 0.02, "canary share {share}");
    }

    #[test]
    fn cookie_clients_keep_their_variant_and_new_ones_are_drawn() {
        let s = split(Sticky::Cookie("ab".into()));
        let new = s.choose(&HeaderMap::new(), ip(), true, u64::MAX);
        assert_eq!(
            new.variant, 1,
            "a draw at the top lands in the last variant"
        );
        let set = new.set_cookie.expect("cookie for a new client");
        assert!(set.to_str().expect("ascii").starts_with("ab=canary;"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("ab=canary"));
        let kept = s.choose(&h, ip(), true, 0);
        assert_eq!((kept.variant, kept.set_cookie.is_none()), (1, true));
        h.insert(header::COOKIE, HeaderValue::from_static("ab=gone"));
        assert!(
            s.choose(&h, ip(), true, 0).set_cookie.is_some(),
            "unknown variant: redrawn"
        );
    }
}
