//! Paused-clock tests of the pool: slow start, growing ejections, panic mode.
use std::path::Path;

use super::*;
use crate::config::site::parse_site;

fn pool(toml: &str) -> Arc<Pool> {
    let cfg = parse_site(Path::new("t.toml"), toml).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Pool::new(cfg.pools[0].clone(), &SiteMetrics::new()))
}

fn picks(p: &Arc<Pool>, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| p.pick(0, &[]).map(|l| l.index).unwrap_or(usize::MAX))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_returning_server() {
    let p = pool(
        "[pools.p]\nalgorithm = \"weighted-round-robin\"\nslow_start = \"10s\"\n\
         servers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\ncheck = { tcp = true, initial = \"up\" }\n",
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    p.refresh();
    assert_eq!(p.members().weights, [16, 16]);
    p.set_active(&p.members().backends[1], false);
    p.set_active(&p.members().backends[1], true);
    let w = p.members().weights.clone();
    assert_eq!(w, [16, 2], "10 % of the weight on return");
    let back = picks(&p, 18).iter().filter(|&&i| i == 1).count();
    assert_eq!(back, 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    p.refresh();
    assert_eq!(p.members().weights, [16, 8]);
    tokio::time::advance(Duration::from_secs(5)).await;
    p.refresh();
    assert_eq!(p.members().weights, [16, 16]);
}

#[tokio::test(start_paused = true)]
async fn ejection_grows_with_each_ejection_and_expires() {
    let p = pool(
        "[pools.p]\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
         passive = { consecutive_failures = 2, base_ejection = \"10s\", max_ejection = \"15s\" }\n\
         breaker = { failures = 0 }\n",
    );
    p.record(0, false, None);
    p.record(0, false, None);
    assert!(picks(&p, 4).iter().all(|&i| i == 1), "ejected");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(picks(&p, 4).contains(&0), "back after base_ejection");
    p.record(0, false, None);
    p.record(0, false, None);
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(
        !picks(&p, 4).contains(&0),
        "second ejection lasts 2 × 10 s, capped at 15 s"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(picks(&p, 4).contains(&0));
}

#[tokio::test(start_paused = true)]
async fn panic_threshold_fails_open() {
    let p = pool(
        "[pools.p]\npanic_threshold = 0.5\n\
         servers = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\ncheck = { tcp = true, initial = \"up\" }\n",
    );
    p.set_active(&p.members().backends[0], false);
    assert!(!picks(&p, 6).contains(&0), "2 of 3 healthy: no panic");
    p.set_active(&p.members().backends[1], false);
    let got = picks(&p, 6);
    assert!(
        got.contains(&0) && got.contains(&1),
        "1 of 3 < 50 %: every server: {got:?}"
    );
}
