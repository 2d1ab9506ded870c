//! The site's status page: an HAProxy-stats-like table of pools and servers (state, weight,
//! active connections, requests, errors, latency, breaker) with recommendations computed from
//! live figures (`advice.rs`), served by the admin listener as self-contained HTML
//! (`html.rs`, no external asset) that refreshes itself.
//!
//! "Live" means the last minute: [`Recent`] keeps a sample of every server's request and
//! failure counters at most every [`SAMPLE_EVERY`], taken when the page or its fragment is
//! served (no background task), and the rate rules use the difference between now and the
//! oldest sample of the last [`WINDOW`]. Before there is an older sample the window is the
//! time since the site started.

pub(crate) mod advice;
mod html;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::SiteState;
use super::admin::{HealthReport, health};
use advice::{Advice, PoolFigures, ServerFigures, Thresholds, advise};

pub(crate) use html::{live_fragment, page};

/// How far back the rate rules look.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Samples closer together than this are not kept.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// (pool, server id) → (requests, failures).
type Counts = HashMap<(String, String), (u64, u64)>;

/// Recent samples of the servers' counters.
#[derive(Debug)]
pub(crate) struct Recent {
    started: Instant,
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl Recent {
    pub(crate) fn new() -> Self {
        Recent {
            started: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `now`'s counts (unless the last sample is recent) and returns the counts to
    /// subtract and the span they cover.
    fn baseline(&self, now: Instant, counts: &Counts) -> (Counts, Duration) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while s.len() > 1 && s.get(1).is_some_and(|(t, _)| now - *t >= WINDOW) {
            s.pop_front();
        }
        let base = match s.front() {
            Some((t, c)) if now - *t <= WINDOW + SAMPLE_EVERY => (c.clone(), now - *t),
            _ => (Counts::new(), now - self.started),
        };
        if s.back().is_none_or(|(t, _)| now - *t >= SAMPLE_EVERY) {
            s.push_back((now, counts.clone()));
        }
        base
    }
}

/// One server's row.
#[derive(Debug, Clone)]
pub(crate) struct ServerRow {
    pub(crate) id: String,
    pub(crate) address: String,
    pub(crate) state: &'static str,
    pub(crate) admin_state: &'static str,
    pub(crate) origin: &'static str,
    pub(crate) check: &'static str,
    pub(crate) breaker: &'static str,
    pub(crate) ejected: bool,
    pub(crate) ejections: u32,
    pub(crate) weight: u32,
    pub(crate) in_flight: u64,
    pub(crate) max_connections: u32,
    pub(crate) requests: u64,
    pub(crate) failures: u64,
    pub(crate) recent_requests: u64,
    pub(crate) recent_failures: u64,
    pub(crate) latency: Duration,
    pub(crate) usable: bool,
    pub(crate) counted: bool,
}

/// One pool's table.
#[derive(Debug, Clone)]
pub(crate) struct PoolRow {
    pub(crate) name: String,
    pub(crate) algorithm: &'static str,
    pub(crate) in_flight: u64,
    pub(crate) max_requests: u64,
    pub(crate) servers: Vec<ServerRow>,
}

/// Everything the page shows, gathered once per request.
#[derive(Debug, Clone)]
pub(crate) struct SiteView {
    pub(crate) health: HealthReport,
    /// The span the "recent" figures cover.
    pub(crate) window: Duration,
    pub(crate) pools: Vec<PoolRow>,
    pub(crate) advice: Vec<Advice>,
}

/// Reads the site's live figures.
pub(crate) fn gather(site: &SiteState) -> SiteView {
    let now = Instant::now();
    let mut pools = Vec::new();
    let mut counts = Counts::new();
    for p in site.pools().iter() {
        let t = p.now();
        let decay = p.cfg.latency_decay.as_nanos() as f64;
        let servers = p
            .members()
            .backends
            .iter()
            .map(|b| {
                let usable = p.is_usable(b);
                let requests = b.requests.load(Ordering::Relaxed);
                let failures = b.failures.load(Ordering::Relaxed);
                counts.insert((p.cfg.name.clone(), b.cfg.id.clone()), (requests, failures));
                let state = b.status_label(usable);
                ServerRow {
                    id: b.cfg.id.clone(),
                    address: b.cfg.address.to_string(),
                    state,
                    admin_state: b.state().as_str(),
                    origin: b.origin.as_str(),
                    check: if b.active_up.load(Ordering::Relaxed) {
                        "up"
                    } else {
                        "down"
                    },
                    breaker: b.breaker_state(t).as_str(),
                    ejected: b.is_ejected(t.as_nanos() as u64),
                    ejections: b.ejections.load(Ordering::Relaxed),
                    weight: b.weight(),
                    in_flight: b.in_flight.load(Ordering::Relaxed),
                    max_connections: b.max_connections(),
                    requests,
                    failures,
                    recent_requests: requests,
                    recent_failures: failures,
                    latency: Duration::from_nanos(
                        b.ewma.estimate(t.as_nanos() as u64, decay).max(0.0) as u64,
                    ),
                    usable,
                    counted: !matches!(state, "maintenance" | "removing"),
                }
            })
            .collect();
        pools.push(PoolRow {
            name: p.cfg.name.clone(),
            algorithm: p.cfg.algorithm.as_str(),
            in_flight: p.in_flight.load(Ordering::Relaxed),
            max_requests: p.cfg.max_requests as u64,
            servers,
        });
    }
    let (base, window) = site.recent.baseline(now, &counts);
    for p in &mut pools {
        for s in &mut p.servers {
            if let Some((r, f)) = base.get(&(p.name.clone(), s.id.clone())) {
                s.recent_requests = s.requests.saturating_sub(*r);
                s.recent_failures = s.failures.saturating_sub(*f);
            }
        }
    }
    let slow = Duration::from_nanos(site.slow_latency.load(Ordering::Relaxed));
    let advice = advise(&figures(&pools), &Thresholds::new(slow));
    SiteView {
        health: health(site),
        window,
        pools,
        advice,
    }
}

fn figures(pools: &[PoolRow]) -> Vec<PoolFigures> {
    pools
        .iter()
        .map(|p| PoolFigures {
            name: p.name.clone(),
            in_flight: p.in_flight,
            max_requests: p.max_requests,
            servers: p
                .servers
                .iter()
                .map(|s| ServerFigures {
                    id: s.id.clone(),
                    usable: s.usable,
                    counted: s.counted,
                    weight: s.weight,
                    requests: s.recent_requests,
                    failures: s.recent_failures,
                    latency: s.latency,
                    in_flight: s.in_flight,
                    max_connections: s.max_connections,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(r: u64) -> Counts {
        Counts::from([(("web".to_string(), "a".to_string()), (r, 0))])
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_covers_the_last_minute() {
        let recent = Recent::new();
        let t0 = Instant::now();
        let (base, span) = recent.baseline(t0, &counts(10));
        assert!(base.is_empty(), "no sample yet: since the start");
        assert_eq!(span, Duration::ZERO);
        for i in 1..=30u64 {
            tokio::time::advance(Duration::from_secs(5)).await;
            let (base, span) = recent.baseline(Instant::now(), &counts(10 + i * 5));
            assert!(span <= WINDOW + SAMPLE_EVERY, "{span:?} at {i}");
            let (r, _) = base[&("web".to_string(), "a".to_string())];
            assert!(r >= 10 + i.saturating_sub(13) * 5, "base {r} at {i}");
        }
        let n = recent.samples.lock().unwrap().len();
        assert!(n <= 14, "bounded: {n} samples");
        // Calls closer together than SAMPLE_EVERY add no sample.
        recent.baseline(Instant::now(), &counts(1000));
        assert_eq!(recent.samples.lock().unwrap().len(), n);
    }
}
