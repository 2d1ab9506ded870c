//! Each datacenter's share of recent answers, for the status page.
//!
//! The steered-answer counters only grow; a share over the last minute needs their values a
//! minute ago. A background task samples them every few seconds into a small ring; a page
//! request compares the counters now with the oldest sample still inside the window. Nothing
//! here is on the query path: the counters are read through the registry's collector, and the
//! ring's mutex is taken once per sample and once per page.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::gslb::GslbMetrics;

/// Counters by (zone origin, datacenter).
type Counts = HashMap<(String, String), u64>;

/// A datacenter's answers over the window and its share of its zone's answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Answers (first datacenter of the answer) over the window.
    pub answers: u64,
    /// `answers` over every answer of the zone in the window; `None` when the zone answered
    /// nothing.
    pub share: Option<f64>,
}

/// The shares of every datacenter, and the time they cover.
#[derive(Debug, Clone, Default)]
pub struct Shares {
    by_dc: HashMap<(String, String), Share>,
    /// How far back the oldest sample used goes (at most the window).
    pub span: Duration,
}

impl Shares {
    /// The share of `datacenter` in zone `zone` (origin with its final dot).
    pub fn get(&self, zone: &str, datacenter: &str) -> Share {
        self.by_dc
            .get(&(zone.to_string(), datacenter.to_string()))
            .copied()
            .unwrap_or(Share {
                answers: 0,
                share: None,
            })
    }
}

/// Samples of the answer counters over a sliding window.
#[derive(Debug)]
pub struct AnswerShares {
    metrics: GslbMetrics,
    window: Duration,
    ring: Mutex<VecDeque<(Instant, Arc<Counts>)>>,
}

impl AnswerShares {
    /// Shares over `window` (one minute on the status page) of the answers counted by
    /// `metrics`.
    pub fn new(metrics: GslbMetrics, window: Duration) -> Self {
        AnswerShares {
            metrics,
            window,
            ring: Mutex::new(VecDeque::new()),
        }
    }

    fn read(&self) -> Counts {
        self.metrics
            .answer_counts()
            .into_iter()
            .map(|c| ((c.zone, c.datacenter), c.answers))
            .collect()
    }

    /// Takes one sample now and forgets the samples the window no longer needs (it keeps the
    /// newest one at least `window` old, so a page always covers a whole window once the
    /// process has run that long).
    pub fn sample(&self) {
        let now = Instant::now();
        let counts = Arc::new(self.read());
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.push_back((now, counts));
        while ring.len() > 1 && now.duration_since(ring[1].0) >= self.window {
            ring.pop_front();
        }
    }

    /// Shares from the oldest sample within the window up to the counters now.
    pub fn shares(&self) -> Shares {
        let now = Instant::now();
        let base = {
            let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            ring.iter()
                .find(|(t, _)| now.duration_since(*t) <= self.window)
                .map(|(t, c)| (*t, Arc::clone(c)))
        };
        let Some((since, base)) = base else {
            return Shares::default();
        };
        let current = self.read();
        let mut deltas: HashMap<(String, String), u64> = HashMap::new();
        let mut zone_totals: HashMap<String, u64> = HashMap::new();
        for (key, n) in current {
            let d = n.saturating_sub(base.get(&key).copied().unwrap_or(0));
            *zone_totals.entry(key.0.clone()).or_default() += d;
            deltas.insert(key, d);
        }
        let by_dc = deltas
            .into_iter()
            .map(|(key, answers)| {
                let total = zone_totals.get(&key.0).copied().unwrap_or(0);
                let share = (total > 0).then(|| answers as f64 / total as f64);
                (key, Share { answers, share })
            })
            .collect();
        Shares {
            by_dc,
            span: now.duration_since(since),
        }
    }

    /// Samples every `period` until `shutdown` turns true; the first sample is taken at once.
    pub async fn run(self: Arc<Self>, period: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::zone::parse_zone;
    use crate::geo::{DatabaseCache, Locator};
    use crate::gslb::GeoSteering;
    use crate::probe::{DcHealth, ZoneHealth};
    use std::net::IpAddr;
    use std::path::Path;

    const ZONE: &str = r#"
origin = "example.com."
nameservers = ["ns1.example.com."]
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com." }
[datacenters.a]
addresses = ["192.0.2.1"]
[datacenters.b]
addresses = ["192.0.2.2"]
[[services]]
name = "www"
policy = "failover"
datacenters = ["a", "b"]
"#;

    fn steering() -> (GeoSteering, Arc<ZoneHealth>, GslbMetrics) {
        let zone = Arc::new(parse_zone(Path::new("example.com.toml"), ZONE).expect("zone"));
        let metrics = GslbMetrics::new(&prometheus::Registry::new()).expect("metrics");
        let locator =
            Arc::new(Locator::new(&zone.geoip, &mut DatabaseCache::default()).expect("l"));
        let health = Arc::new(ZoneHealth::new(zone.origin.clone(), vec![DcHealth::UP; 2]));
        let s = GeoSteering::with_metrics(zone, locator, health.clone(), Some(metrics.clone()));
        (s, health, metrics)
    }

    fn ask(s: &GeoSteering, n: usize) {
        for _ in 0..n {
            s.decide(0, IpAddr::from([192, 0, 2, 0]), 24);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shares_cover_the_last_window_only() {
        let (s, health, metrics) = steering();
        let shares = AnswerShares::new(metrics, Duration::from_secs(60));
        assert_eq!(shares.shares().get("example.com.", "a").share, None);
        ask(&s, 30); // before the first sample: never counted
        shares.sample();
        ask(&s, 10);
        let now = shares.shares();
        assert_eq!(
            now.get("example.com.", "a"),
            Share {
                answers: 10,
                share: Some(1.0)
            }
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        shares.sample();
        health.store(vec![DcHealth::DOWN, DcHealth::UP]);
        ask(&s, 30);
        let now = shares.shares();
        assert_eq!(now.get("example.com.", "a").answers, 10);
        assert_eq!(
            now.get("example.com.", "b"),
            Share {
                answers: 30,
                share: Some(0.75)
            }
        );
        assert_eq!(now.span, Duration::from_secs(30));

        // 61 s after the first sample, only the one taken 31 s ago is inside the window.
        tokio::time::advance(Duration::from_secs(31)).await;
        shares.sample();
        let now = shares.shares();
        assert_eq!(
            now.get("example.com.", "a"),
            Share {
                answers: 0,
                share: Some(0.0)
            }
        );
        assert_eq!(
            now.get("example.com.", "b"),
            Share {
                answers: 30,
                share: Some(1.0)
            }
        );
        assert_eq!(now.span, Duration::from_secs(31));
        assert!(shares.ring.lock().unwrap().len() <= 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_runs_until_shutdown() {
        let (s, _health, metrics) = steering();
        let shares = Arc::new(AnswerShares::new(metrics, Duration::from_secs(60)));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(shares.clone().run(Duration::from_secs(5), stopped));
        tokio::task::yield_now().await; // the first sample is taken at once
        ask(&s, 4);
        assert_eq!(shares.shares().get("example.com.", "a").answers, 4);
        for _ in 0..60 {
            tokio::time::advance(Duration::from_secs(5)).await;
            tokio::task::yield_now().await;
        }
        let kept = shares.ring.lock().unwrap().len();
        assert!(
            (12..=14).contains(&kept),
            "{kept} samples kept for a 60 s window"
        );
        assert_eq!(
            shares.shares().get("example.com.", "a").answers,
            0,
            "answers older than the window no longer count"
        );
        stop.send(true).expect("send");
        task.await.expect("the sampler stops");
    }
}
