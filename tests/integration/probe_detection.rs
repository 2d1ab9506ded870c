//! How long the board takes to see a dead site at the default timings, measured on loopback.
//!
//! A measurement, not part of the normal suite (it takes about a minute):
//! `cargo test --release --test integration probe_detection -- --ignored --nocapture`.
//! It asserts the analytical worst case from docs/health.md (plus 100 ms of scheduling slack)
//! and prints the distribution that docs/health.md quotes.

use std::path::Path;
use std::time::Duration;

use meridian::config::zone::{
    DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, DEFAULT_FALL, DEFAULT_JITTER, ZoneSet,
    parse_zone,
};
use meridian::probe::{DcState, FAST_DIVISOR, HealthBoard, ZoneHealth};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::health_site::HealthSite;

const ROUNDS: usize = 20;

async fn until(h: &ZoneHealth, want: DcState) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.load()[0].state != want {
        assert!(Instant::now() < deadline, "never became {want:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A random pause, so the failure lands at a random phase of the check cycle.
async fn random_phase() {
    let ms = rand::random_range(0..DEFAULT_CHECK_INTERVAL.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn summary(name: &str, mut v: Vec<Duration>, bound: Duration) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} min={:.0} ms median={:.0} ms max={:.0} ms (bound {:.0} ms)",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        ms(bound)
    );
    assert!(v[v.len() - 1] <= bound, "{name}: slower than the bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement at default timings, about a minute"]
async fn probe_detection_at_default_timings() {
    let (mut refused, mut hung) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut site = HealthSite::start().await;
        let text = format!(
            "origin = \"m.test.\"\nnameservers = [\"ns1.m.test.\"]\n\
             soa = {{ mname = \"ns1.m.test.\", rname = \"h.m.test.\" }}\n\
             [datacenters.a]\naddresses = [\"192.0.2.1\"]\ncheck = {{ url = \"{}\" }}\n",
            site.url()
        );
        let zs = ZoneSet::new(vec![parse_zone(Path::new("t.toml"), &text).unwrap()]).unwrap();
        let board = HealthBoard::new(&prometheus::Registry::new()).unwrap();
        let h = board.attach(&zs);
        board.first_round().await;

        // The site's process dies: connections are refused.
        random_phase().await;
        let t = Instant::now();
        site.stop().await;
        until(&h[0], DcState::Down).await;
        refused.push(t.elapsed());

        site.restart().await;
        until(&h[0], DcState::Up).await;

        // The site hangs: connections are accepted and never answered.
        random_phase().await;
        let t = Instant::now();
        site.stop().await;
        let addr = site.url().replace("http://", "").replace("/health", "");
        let listener = TcpListener::bind(&addr).await.unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        until(&h[0], DcState::Down).await;
        hung.push(t.elapsed());
        hold.abort();
    }
    let slack = Duration::from_millis(100);
    let first = DEFAULT_CHECK_INTERVAL.mul_f64(1.0 + DEFAULT_JITTER);
    let fast = (DEFAULT_CHECK_INTERVAL / FAST_DIVISOR).mul_f64(1.0 + DEFAULT_JITTER);
    summary(
        "refused",
        refused,
        first + fast * (DEFAULT_FALL - 1) + slack,
    );
    summary(
        "hung",
        hung,
        first
            + DEFAULT_CHECK_TIMEOUT
            + DEFAULT_CHECK_TIMEOUT.max(fast) * (DEFAULT_FALL - 1)
            + slack,
    );
}
