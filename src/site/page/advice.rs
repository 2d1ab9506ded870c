//! Recommendations computed from a site's live figures, for its status page: pure functions of
//! a [`PoolFigures`] snapshot, so each rule is tested without sockets.
//!
//! The rules, per pool:
//!
//! - fewer than 80 % of its servers healthy (critical when none is);
//! - average latency of its healthy servers above `admin.slow_latency`;
//! - error rate (failed over all requests in the window) above 5 %;
//! - the busiest healthy server (requests per unit of weight in the window) above 3× the least
//!   busy one;
//! - in-flight work at 90 % or more of its connection limit (the sum of its healthy servers'
//!   `max_connections`, or the pool's `max_requests`).
//!
//! The rate rules wait for enough requests in the window (`min_requests`) so that a quiet pool
//! is not flagged on noise.

use std::time::Duration;

use serde::Serialize;

/// One server's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerFigures {
    pub(crate) id: String,
    /// Takes new requests now.
    pub(crate) usable: bool,
    /// Counts towards the pool's size: not in maintenance and not being removed.
    pub(crate) counted: bool,
    pub(crate) weight: u32,
    /// Requests and failures in the window.
    pub(crate) requests: u64,
    pub(crate) failures: u64,
    /// Latency estimate.
    pub(crate) latency: Duration,
    pub(crate) in_flight: u64,
    /// 0: no limit.
    pub(crate) max_connections: u32,
}

/// One pool's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolFigures {
    pub(crate) name: String,
    pub(crate) servers: Vec<ServerFigures>,
    pub(crate) in_flight: u64,
    /// The pool's own `max_requests` (0: no limit).
    pub(crate) max_requests: u64,
}

/// Where the rules draw their lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Thresholds {
    pub(crate) healthy_share: f64,
    pub(crate) slow_latency: Duration,
    pub(crate) error_rate: f64,
    pub(crate) imbalance: f64,
    pub(crate) near_limit: f64,
    /// Requests a pool needs in the window before the rate rules apply.
    pub(crate) min_requests: u64,
}

impl Thresholds {
    pub(crate) fn new(slow_latency: Duration) -> Self {
        Thresholds {
            healthy_share: 0.8,
            slow_latency,
            error_rate: 0.05,
            imbalance: 3.0,
            near_limit: 0.9,
            min_requests: 20,
        }
    }
}

/// How urgent a recommendation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    Critical,
    Warning,
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Advice {
    pub(crate) severity: Severity,
    pub(crate) pool: String,
    /// Which rule: `healthy`, `latency`, `errors`, `imbalance`, `limit`.
    pub(crate) rule: &'static str,
    pub(crate) text: String,
}

/// Every recommendation for these pools, most urgent first (then in pool order).
pub(crate) fn advise(pools: &[PoolFigures], t: &Thresholds) -> Vec<Advice> {
    let mut out = Vec::new();
    for p in pools {
        let mut add = |severity, rule, text: String| {
            out.push(Advice {
                severity,
                pool: p.name.clone(),
                rule,
                text,
            })
        };
        let counted: Vec<&ServerFigures> = p.servers.iter().filter(|s| s.counted).collect();
        let usable: Vec<&ServerFigures> = counted.iter().copied().filter(|s| s.usable).collect();
        if !counted.is_empty() && (usable.len() as f64) < t.healthy_share * counted.len() as f64 {
            let down: Vec<&str> = counted
                .iter()
                .filter(|s| !s.usable)
                .map(|s| s.id.as_str())
                .collect();
            add(
                if usable.is_empty() {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                "healthy",
                format!(
                    "{} of {} servers healthy ({:.0} %, below {:.0} %): look at {}",
                    usable.len(),
                    counted.len(),
                    100.0 * usable.len() as f64 / counted.len() as f64,
                    100.0 * t.healthy_share,
                    down.join(", ")
                ),
            );
        }
        let served: Vec<&ServerFigures> =
            usable.iter().copied().filter(|s| s.requests > 0).collect();
        if !served.is_empty() {
            let avg = served.iter().map(|s| s.latency).sum::<Duration>() / served.len() as u32;
            if avg > t.slow_latency {
                add(
                    Severity::Warning,
                    "latency",
                    format!(
                        "average latency {} ms, above {} ms: the servers or what they call are slow",
                        avg.as_millis(),
                        t.slow_latency.as_millis()
                    ),
                );
            }
        }
        let requests: u64 = p.servers.iter().map(|s| s.requests).sum();
        let failures: u64 = p.servers.iter().map(|s| s.failures).sum();
        if requests >= t.min_requests && failures as f64 > t.error_rate * requests as f64 {
            add(
                Severity::Warning,
                "errors",
                format!(
                    "{failures} of {requests} requests failed ({:.1} %, above {:.0} %)",
                    100.0 * failures as f64 / requests as f64,
                    100.0 * t.error_rate
                ),
            );
        }
        let weighted: Vec<(&str, f64)> = usable
            .iter()
            .filter(|s| s.weight > 0)
            .map(|s| (s.id.as_str(), s.requests as f64 / f64::from(s.weight)))
            .collect();
        if weighted.len() >= 2 && requests >= t.min_requests {
            let by = |a: &&(&str, f64), b: &&(&str, f64)| a.1.total_cmp(&b.1);
            let busiest = weighted.iter().max_by(by).copied().unwrap_or(("", 0.0));
            let idlest = weighted.iter().min_by(by).copied().unwrap_or(("", 0.0));
            if busiest.1 > t.imbalance * idlest.1 {
                add(
                    Severity::Warning,
                    "imbalance",
                    format!(
                        "{} took {:.0} requests per unit of weight, {} only {:.0} (more than {:.0}×): \
                         check the algorithm, hash keys and weights",
                        busiest.0, busiest.1, idlest.0, idlest.1, t.imbalance
                    ),
                );
            }
        }
        let limit = if usable.iter().any(|s| s.max_connections == 0) {
            0
        } else {
            usable.iter().map(|s| u64::from(s.max_connections)).sum()
        };
        for (cap, what) in [
            (limit, "its servers' max_connections"),
            (p.max_requests, "max_requests"),
        ] {
            if cap > 0 && p.in_flight as f64 >= t.near_limit * cap as f64 {
                add(
                    Severity::Warning,
                    "limit",
                    format!(
                        "{} in flight of {cap} allowed by {what} ({:.0} %): add servers or raise the limit",
                        p.in_flight,
                        100.0 * p.in_flight as f64 / cap as f64
                    ),
                );
            }
        }
    }
    out.sort_by_key(|a| a.severity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, requests: u64) -> ServerFigures {
        ServerFigures {
            id: id.to_string(),
            usable: true,
            counted: true,
            weight: 1,
            requests,
            failures: 0,
            latency: Duration::from_millis(20),
            in_flight: 0,
            max_connections: 0,
        }
    }

    fn pool(servers: Vec<ServerFigures>) -> PoolFigures {
        PoolFigures {
            name: "web".to_string(),
            in_flight: servers.iter().map(|s| s.in_flight).sum(),
            servers,
            max_requests: 0,
        }
    }

    fn rules(p: PoolFigures) -> Vec<&'static str> {
        advise(&[p], &Thresholds::new(Duration::from_millis(500)))
            .iter()
            .map(|a| a.rule)
            .collect()
    }

    #[test]
    fn a_healthy_balanced_pool_gets_no_advice() {
        let p = pool((0..5).map(|i| server(&format!("s{i}"), 100)).collect());
        assert!(rules(p).is_empty());
    }

    #[test]
    fn fewer_than_80_percent_healthy() {
        let mut s: Vec<ServerFigures> = (0..5).map(|i| server(&format!("s{i}"), 100)).collect();
        s[0].usable = false;
        assert!(rules(pool(s.clone())).is_empty(), "4 of 5 is 80 %: fine");
        s[1].usable = false;
        let a = advise(&[pool(s.clone())], &Thresholds::new(Duration::from_secs(1)));
        assert_eq!(a[0].rule, "healthy");
        assert_eq!(a[0].severity, Severity::Warning);
        assert!(a[0].text.contains("3 of 5") && a[0].text.contains("s0, s1"));
        // Servers in maintenance do not count against the pool.
        s[0].counted = false;
        s[1].counted = false;
        assert!(rules(pool(s.clone())).is_empty());
        for x in &mut s {
            x.usable = false;
        }
        let a = advise(&[pool(s)], &Thresholds::new(Duration::from_secs(1)));
        assert_eq!(a[0].severity, Severity::Critical);
    }

    #[test]
    fn slow_servers() {
        let mut s = vec![server("a", 50), server("b", 50)];
        s[0].latency = Duration::from_millis(900);
        s[1].latency = Duration::from_millis(200);
        assert_eq!(rules(pool(s.clone())), ["latency"], "average 550 ms");
        s[0].latency = Duration::from_millis(700);
        assert!(rules(pool(s.clone())).is_empty(), "average 450 ms");
        // A server that served nothing in the window has no say.
        s[0].requests = 0;
        s[0].latency = Duration::from_secs(5);
        assert!(!rules(pool(s)).contains(&"latency"));
    }

    #[test]
    fn error_rate_over_5_percent() {
        let mut s = vec![server("a", 100), server("b", 100)];
        s[0].failures = 10;
        assert!(rules(pool(s.clone())).is_empty(), "10 of 200 is 5 %: fine");
        s[0].failures = 11;
        assert_eq!(rules(pool(s.clone())), ["errors"]);
        // Too few requests to tell.
        let mut q = vec![server("a", 5), server("b", 5)];
        q[0].failures = 5;
        assert!(!rules(pool(q)).contains(&"errors"));
    }

    #[test]
    fn busiest_above_three_times_the_least_busy_per_weight() {
        let s = vec![server("a", 300), server("b", 100)];
        assert!(rules(pool(s)).is_empty(), "exactly 3×: fine");
        let s = vec![server("a", 301), server("b", 100)];
        let a = advise(&[pool(s)], &Thresholds::new(Duration::from_secs(1)));
        assert_eq!(a[0].rule, "imbalance");
        assert!(a[0].text.starts_with("a took 301"), "{}", a[0].text);
        // Weights are taken into account: a has three times b's weight.
        let mut s = vec![server("a", 600), server("b", 100)];
        s[0].weight = 3;
        assert!(rules(pool(s)).is_empty());
        // A server taking nothing while the other takes plenty.
        assert_eq!(
            rules(pool(vec![server("a", 40), server("b", 0)])),
            ["imbalance"]
        );
        // Unhealthy servers take nothing by design.
        let mut s = vec![server("a", 40), server("b", 0), server("c", 40)];
        s[1].usable = false;
        s[1].counted = false;
        assert!(rules(pool(s)).is_empty());
    }

    #[test]
    fn near_the_connection_limit() {
        let mut s = vec![server("a", 10), server("b", 10)];
        for x in &mut s {
            x.max_connections = 10;
            x.in_flight = 8;
        }
        assert!(rules(pool(s.clone())).is_empty(), "16 of 20");
        s[0].in_flight = 10;
        assert_eq!(rules(pool(s.clone())), ["limit"], "18 of 20");
        // One server without a limit: the pool has none.
        s[1].max_connections = 0;
        assert!(rules(pool(s.clone())).is_empty());
        let mut p = pool(s);
        p.max_requests = 20;
        assert_eq!(rules(p), ["limit"], "the pool's own max_requests");
    }

    #[test]
    fn critical_first() {
        let mut a = server("a", 0);
        a.usable = false;
        let mut slow = server("s", 100);
        slow.latency = Duration::from_secs(2);
        let pools = [
            PoolFigures {
                name: "slow".to_string(),
                servers: vec![slow],
                in_flight: 0,
                max_requests: 0,
            },
            pool(vec![a]),
        ];
        let got = advise(&pools, &Thresholds::new(Duration::from_millis(500)));
        assert_eq!(
            got.iter()
                .map(|a| (a.pool.as_str(), a.rule))
                .collect::<Vec<_>>(),
            [("web", "healthy"), ("slow", "latency")]
        );
    }
}
