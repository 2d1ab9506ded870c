//! The prober and the health board against real HTTP endpoints on loopback: stop, restart,
//! draining, `min_healthy`, shared targets, reloads, admin overrides and start-up.
//!
//! Checks run every 100 ms here (the defaults are 500 ms) so that each test takes well under a
//! second of waiting. Waiting is polling with a deadline, never a fixed sleep.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meridian::config::Name;
use meridian::config::zone::{Zone, ZoneSet, parse_zone};
use meridian::probe::{DcState, HealthBoard, ZoneHealth};
use prometheus::Registry;
use prometheus::proto::MetricType;
use tokio::time::Instant;

use crate::support::health_site::{Blackhole, HealthSite};

const INTERVAL_MS: u64 = 100;
const TIMING: &str = r#"interval = "100ms", timeout = "80ms", rise = 2, fall = 2"#;

/// A zone with one datacenter per `(name, check)`; `check` is the inside of the inline table,
/// or empty for a datacenter without a check.
fn zone(origin: &str, dcs: &[(&str, String)]) -> Zone {
    let mut text = format!(
        "origin = \"{origin}\"\nnameservers = [\"ns1.{origin}\"]\n\
         soa = {{ mname = \"ns1.{origin}\", rname = \"hostmaster.{origin}\" }}\n"
    );
    for (name, check) in dcs {
        text.push_str(&format!(
            "[datacenters.{name}]\naddresses = [\"192.0.2.1\"]\n"
        ));
        if !check.is_empty() {
            text.push_str(&format!("check = {{ {check} }}\n"));
        }
    }
    parse_zone(Path::new("test.toml"), &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn http(url: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!("url = \"{url}\", {TIMING}{sep}{extra}")
}

fn set(zones: Vec<Zone>) -> ZoneSet {
    ZoneSet::new(zones).expect("distinct origins")
}

fn id(set: &ZoneSet, zone: usize, dc: &str) -> usize {
    set.zones()[zone].datacenter_id(dc).expect("datacenter")
}

fn state(h: &ZoneHealth, dc: usize) -> DcState {
    h.load()[dc].state
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The value of one series, 0 when absent.
fn metric(reg: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for fam in reg.gather().iter().filter(|f| f.name() == name) {
        for m in fam.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if matches {
                return match fam.get_field_type() {
                    MetricType::COUNTER => m.get_counter().value(),
                    MetricType::GAUGE => m.get_gauge().value(),
                    _ => m.get_histogram().get_sample_count() as f64,
                };
            }
        }
    }
    0.0
}

async fn board_with(zones: &ZoneSet) -> (HealthBoard, Registry, Vec<Arc<ZoneHealth>>) {
    let reg = Registry::new();
    let board = HealthBoard::new(&reg).expect("board");
    let health = board.attach(zones);
    board.first_round().await;
    (board, reg, health)
}

#[tokio::test]
async fn stopping_a_site_takes_it_down_and_restarting_brings_it_back_after_rise_checks() {
    let mut site = HealthSite::start().await;
    let zs = set(vec![zone(
        "example.test.",
        &[("a", http(&site.url(), "")), ("b", String::new())],
    )]);
    let (a, b) = (id(&zs, 0, "a"), id(&zs, 0, "b"));
    let (_board, reg, health) = board_with(&zs).await;
    let h = &health[0];
    assert_eq!((state(h, a), state(h, b)), (DcState::Up, DcState::Up));
    let fails = || {
        metric(
            &reg,
            "meridian_probe_checks_total",
            &[("datacenter", "a"), ("result", "fail")],
        )
    };

    site.stop().await;
    eventually("a down", || state(h, a) == DcState::Down).await;
    // Read after the state: the failures that caused it are already counted.
    assert!(fails() >= 2.0, "down after {} failures", fails());
    assert_eq!(
        state(h, b),
        DcState::Up,
        "a datacenter without a check stays up"
    );

    let before = site.hits();
    site.restart().await;
    eventually("a up", || {
        // State first, then hits: when up is seen, the passes that caused it were counted.
        let up = state(h, a) == DcState::Up;
        let passes = site.hits() - before;
        assert!(
            !up || passes >= 2,
            "up after {passes} passing checks, rise is 2"
        );
        up
    })
    .await;
    let t = |to| {
        metric(
            &reg,
            "meridian_probe_transitions_total",
            &[("datacenter", "a"), ("to", to)],
        )
    };
    assert_eq!((t("down"), t("up")), (1.0, 1.0));
    assert_eq!(
        metric(
            &reg,
            "meridian_probe_state",
            &[("datacenter", "a"), ("state", "up")]
        ),
        1.0
    );
}

#[tokio::test]
async fn draining_reports_take_a_datacenter_out_at_once_and_back() {
    let site = HealthSite::start().await;
    site.report("up", 4, 4, 0.25);
    let zs = set(vec![zone("example.test.", &[("a", http(&site.url(), ""))])]);
    let (board, _reg, health) = board_with(&zs).await;
    let h = &health[0];
    assert_eq!(h.load()[0].state, DcState::Up);
    assert_eq!(h.load()[0].load, 0.25);

    let hits = site.hits();
    site.report("draining", 4, 4, 0.5);
    eventually("draining", || state(h, 0) == DcState::Draining).await;
    // One check suffices: draining is a declaration, not a measurement.
    assert!(
        site.hits() - hits <= 2,
        "took {} checks",
        site.hits() - hits
    );
    assert_eq!(h.load()[0].load, 0.5);

    // A site may answer 503 while draining; it is alive, not down.
    site.reply(
        503,
        r#"{"status":"draining","healthy_backends":4,"total_backends":4,"load":0.1}"#,
    );
    eventually("load 0.1", || h.load()[0].load == 0.1).await;
    assert_eq!(state(h, 0), DcState::Draining);

    site.report("up", 4, 4, 0.0);
    eventually("up again", || state(h, 0) == DcState::Up).await;

    site.report("down", 0, 4, 0.0);
    eventually("down", || state(h, 0) == DcState::Down).await;
    let st = board.status();
    assert_eq!(
        st.zones[0].datacenters[0].last_error.as_deref(),
        Some("site reports down")
    );
}

#[tokio::test]
async fn min_healthy_share_and_count() {
    let share = HealthSite::start().await;
    let count = HealthSite::start().await;
    share.report("up", 2, 4, 0.0);
    count.report("up", 3, 10, 0.0);
    let zs = set(vec![zone(
        "example.test.",
        &[
            ("share", http(&share.url(), "min_healthy = 0.5")),
            ("count", http(&count.url(), "min_healthy = 3")),
        ],
    )]);
    let (s, c) = (id(&zs, 0, "share"), id(&zs, 0, "count"));
    let (board, _reg, health) = board_with(&zs).await;
    let h = &health[0];
    assert_eq!((state(h, s), state(h, c)), (DcState::Up, DcState::Up));

    share.report("up", 1, 4, 0.0);
    count.report("up", 2, 10, 0.0);
    eventually("both down", || {
        state(h, s) == DcState::Down && state(h, c) == DcState::Down
    })
    .await;
    let st = board.status();
    let err = |name: &str| {
        st.zones[0]
            .datacenters
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.last_error.clone())
    };
    assert_eq!(err("share").as_deref(), Some("1 healthy backends, need 2"));
    assert_eq!(err("count").as_deref(), Some("2 healthy backends, need 3"));

    share.report("up", 2, 4, 0.0);
    count.report("up", 3, 10, 0.0);
    eventually("both up", || {
        state(h, s) == DcState::Up && state(h, c) == DcState::Up
    })
    .await;
}

#[tokio::test]
async fn a_shared_target_is_probed_once_per_interval() {
    let shared = HealthSite::start().await;
    let alone = HealthSite::start().await;
    let check = http(&shared.url(), "");
    // Three datacenters in two zones share one target; a fourth has its own, as a control.
    let zs = set(vec![
        zone("one.test.", &[("a", check.clone()), ("b", check.clone())]),
        zone(
            "two.test.",
            &[("c", check.clone()), ("d", http(&alone.url(), ""))],
        ),
    ]);
    let start = Instant::now();
    let (board, reg, _health) = board_with(&zs).await;
    eventually("20 control checks", || alone.hits() >= 20).await;
    let (s, c) = (shared.hits(), alone.hits());
    let elapsed = start.elapsed();
    // Each check starts at least 0.9 × interval after the previous one (jitter 10 %).
    let max = (elapsed.as_secs_f64() / (0.9 * INTERVAL_MS as f64 / 1e3)).floor() as u64 + 1;
    assert!(
        s <= max,
        "shared target probed {s} times in {elapsed:?}, at most {max} allowed"
    );
    assert!(s.abs_diff(c) <= 2, "shared {s} vs single {c}");
    // Every datacenter still gets the result, and the duration histogram counts real probes.
    for dc in ["a", "b", "c"] {
        let n = metric(
            &reg,
            "meridian_probe_checks_total",
            &[("datacenter", dc), ("result", "pass")],
        );
        assert!(n >= 19.0, "{dc}: {n} results");
    }
    let probes = metric(
        &reg,
        "meridian_probe_check_duration_seconds",
        &[("target", &shared.url())],
    );
    assert!(probes <= shared.hits() as f64 && probes >= s as f64 - 1.0);
    let targets: Vec<Option<String>> = board
        .status()
        .zones
        .iter()
        .flat_map(|z| z.datacenters.iter().map(|d| d.check.clone()))
        .collect();
    let u = shared.url();
    assert_eq!(
        targets,
        [Some(u.clone()), Some(u.clone()), Some(u), Some(alone.url())]
    );
}

#[tokio::test]
async fn reload_keeps_state_of_surviving_checks_and_stops_removed_ones() {
    let mut kept = HealthSite::start().await;
    let removed = HealthSite::start().await;
    let added = HealthSite::start().await;
    let first = set(vec![zone(
        "example.test.",
        &[
            ("kept", http(&kept.url(), "")),
            ("gone", http(&removed.url(), "")),
        ],
    )]);
    let (board, reg, health) = board_with(&first).await;
    kept.stop().await;
    eventually("kept down", || {
        state(&health[0], id(&first, 0, "kept")) == DcState::Down
    })
    .await;
    let origin = Name::parse_absolute("example.test.").unwrap();
    board
        .set_admin(&origin, "gone", Some(DcState::Draining))
        .unwrap();
    assert_eq!(state(&health[0], id(&first, 0, "gone")), DcState::Draining);

    // The new set: `kept` unchanged, `gone` removed, `new` added (sorting before `kept`, so
    // the DcIds shift).
    let second = set(vec![zone(
        "example.test.",
        &[
            ("kept", http(&kept.url(), "")),
            ("new", http(&added.url(), "")),
        ],
    )]);
    let health2 = board.attach(&second);
    let removed_hits = removed.hits();
    let h = &health2[0];
    assert_eq!(
        state(h, id(&second, 0, "kept")),
        DcState::Down,
        "state kept across reload"
    );
    board.first_round().await;
    assert_eq!(state(h, id(&second, 0, "new")), DcState::Up);
    assert!(board.set_admin(&origin, "gone", None).is_err());
    assert_eq!(
        metric(
            &reg,
            "meridian_probe_state",
            &[("datacenter", "gone"), ("state", "draining")]
        ),
        0.0
    );

    // The old snapshot no longer changes; the new one does.
    kept.restart().await;
    eventually("kept up", || {
        state(h, id(&second, 0, "kept")) == DcState::Up
    })
    .await;
    assert_eq!(state(&health[0], id(&first, 0, "kept")), DcState::Down);
    eventually("10 checks of new", || added.hits() >= 10).await;
    assert!(
        removed.hits() <= removed_hits + 1,
        "the removed check kept running"
    );
}

#[tokio::test]
async fn admin_override_wins_over_checks_until_cleared() {
    let site = HealthSite::start().await;
    let zs = set(vec![zone("example.test.", &[("a", http(&site.url(), ""))])]);
    let (board, _reg, health) = board_with(&zs).await;
    let origin = Name::parse_absolute("example.test").unwrap();
    board
        .set_admin(&origin, "a", Some(DcState::Draining))
        .unwrap();
    assert_eq!(state(&health[0], 0), DcState::Draining);
    let st = board.status();
    assert_eq!(st.zones[0].datacenters[0].admin, Some(DcState::Draining));
    let hits = site.hits();
    eventually("two more checks", || site.hits() >= hits + 2).await;
    assert_eq!(state(&health[0], 0), DcState::Draining);
    board.set_admin(&origin, "a", None).unwrap();
    assert_eq!(state(&health[0], 0), DcState::Up);
    assert!(matches!(
        board.set_admin(&origin, "nope", None),
        Err(meridian::probe::ProbeError::UnknownDatacenter { .. })
    ));
}

#[tokio::test]
async fn before_the_first_result_the_declared_state_holds_and_first_round_waits_for_it() {
    let hole = Blackhole::start().await;
    let site = HealthSite::start().await;
    let slow = |initial: &str, url: &str| {
        format!(r#"url = "{url}", interval = "2s", timeout = "300ms", initial = "{initial}""#)
    };
    let zs = set(vec![zone(
        "example.test.",
        &[
            ("hole", slow("up", &hole.url())),
            ("site", slow("down", &site.url())),
        ],
    )]);
    let (hole_id, site_id) = (id(&zs, 0, "hole"), id(&zs, 0, "site"));
    let reg = Registry::new();
    let board = HealthBoard::new(&reg).unwrap();
    let started = Instant::now();
    let health = board.attach(&zs);
    // The blackholed check cannot finish before its 300 ms timeout.
    assert_eq!(state(&health[0], hole_id), DcState::Up);
    board.first_round().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(state(&health[0], hole_id), DcState::Down);
    assert_eq!(state(&health[0], site_id), DcState::Up);
    let json = serde_json::to_value(board.status()).unwrap();
    let dc = &json["zones"][0]["datacenters"][hole_id];
    assert_eq!(dc["state"], "down");
    assert_eq!(dc["last_result"], "timeout");
    assert!(dc["since"].as_str().unwrap().ends_with('Z'));
    let dc = &json["zones"][0]["datacenters"][site_id];
    assert_eq!(dc["state"], "up");
    assert!(dc["last_rtt_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(dc["last_error"], serde_json::Value::Null);
}

#[tokio::test]
async fn tcp_checks_follow_the_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let zs = set(vec![zone(
        "example.test.",
        &[("a", format!(r#"tcp = "{addr}", {TIMING}"#))],
    )]);
    let (board, _reg, health) = board_with(&zs).await;
    assert_eq!(state(&health[0], 0), DcState::Up);
    assert_eq!(
        board.status().zones[0].datacenters[0].check.as_deref(),
        Some(format!("tcp://{addr}").as_str())
    );
    drop(listener);
    eventually("down", || state(&health[0], 0) == DcState::Down).await;
}
