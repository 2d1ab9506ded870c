//! Active checks, passive ejection with its cap, and the circuit breaker, against real
//! loopback backends.

use crate::support::{TestBackend, TestSite, poll_until};
use hyper::StatusCode;

fn toml(extra: &str, b: &[TestBackend]) -> String {
    let servers: Vec<String> = b.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [{}]\n{extra}\n",
        servers.join(", ")
    )
}

async fn three() -> Vec<TestBackend> {
    vec![
        TestBackend::start("b0").await,
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    ]
}

#[tokio::test]
async fn active_check_marks_a_dead_server_down_and_back_up() {
    let b = three().await;
    let site = TestSite::start(&toml(
        "check = { http = \"/health\", interval = \"20ms\", timeout = \"20ms\", rise = 2, fall = 2 }",
        &b,
    ))
    .await;
    let id0 = b[0].addr.to_string();
    // Down until checked, then up after the first passing check.
    poll_until(5, || async { site.server(&id0).await["state"] == "up" }).await;
    b[0].set_healthy(false);
    poll_until(5, || async { site.server(&id0).await["state"] == "down" }).await;
    let before = b[0].hits();
    for _ in 0..12 {
        let (s, name) = site.get("/").await;
        assert_eq!(s, StatusCode::OK);
        assert_ne!(name, "b0");
    }
    assert_eq!(b[0].hits(), before);
    b[0].set_healthy(true);
    poll_until(5, || async { site.server(&id0).await["state"] == "up" }).await;
    let mut seen = false;
    for _ in 0..6 {
        seen |= site.get("/").await.1 == "b0";
    }
    assert!(seen, "b0 takes requests again");
}

#[tokio::test]
async fn a_server_without_a_passing_check_gets_nothing() {
    let b = three().await;
    b[2].set_healthy(false);
    let site = TestSite::start(&toml(
        "check = { http = \"/health\", interval = \"20ms\", timeout = \"20ms\" }",
        &b,
    ))
    .await;
    let (id0, id1) = (b[0].addr.to_string(), b[1].addr.to_string());
    poll_until(5, || async {
        site.server(&id0).await["state"] == "up" && site.server(&id1).await["state"] == "up"
    })
    .await;
    for _ in 0..10 {
        assert_ne!(site.get("/").await.1, "b2");
    }
}

#[tokio::test]
async fn passive_ejection_respects_max_ejection_percent() {
    let b = three().await;
    b[0].set_status(500);
    b[1].set_status(500);
    let site = TestSite::start(&toml(
        "passive = { consecutive_failures = 2, base_ejection = \"1m\", max_ejection_percent = 34 }\n\
         breaker = { failures = 0 }\nretry = { attempts = 0 }",
        &b,
    ))
    .await;
    for _ in 0..30 {
        site.get("/").await;
    }
    let s = site.status().await;
    let servers = s["pools"][0]["servers"]
        .as_array()
        .expect("servers")
        .clone();
    let ejected: Vec<&str> = servers
        .iter()
        .filter(|x| x["ejected"] == true)
        .map(|x| x["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ejected.len(),
        1,
        "34 % of 3 servers allows one ejection: {s}"
    );
    assert!(
        servers
            .iter()
            .all(|x| x["id"] != b[2].addr.to_string() || x["ejected"] == false)
    );
    // Before the cap, failing servers are ejected after two failures each.
    let ejections: u64 = servers
        .iter()
        .map(|x| x["ejections"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(ejections, 1);
}

#[tokio::test]
async fn ejection_takes_a_failing_server_out() {
    let b = three().await;
    b[1].set_status(503);
    let site = TestSite::start(&toml(
        "passive = { consecutive_failures = 3, base_ejection = \"1m\" }\nbreaker = { failures = 0 }\nretry = { attempts = 0 }",
        &b,
    ))
    .await;
    for _ in 0..9 {
        site.get("/").await;
    }
    assert_eq!(b[1].hits(), 3);
    assert_eq!(site.server(&b[1].addr.to_string()).await["ejected"], true);
    for _ in 0..9 {
        assert_eq!(site.get("/").await.0, StatusCode::OK);
    }
    assert_eq!(b[1].hits(), 3);
}

#[tokio::test]
async fn breaker_opens_half_opens_and_closes() {
    let b = vec![
        TestBackend::start("b0").await,
        TestBackend::start("b1").await,
    ];
    b[0].set_status(500);
    let site = TestSite::start(&toml(
        "algorithm = \"round-robin\"\npassive = { consecutive_failures = 0 }\n\
         breaker = { failures = 3, cooldown = \"300ms\", successes = 2 }\nretry = { attempts = 0 }",
        &b,
    ))
    .await;
    let id0 = b[0].addr.to_string();
    for _ in 0..6 {
        site.get("/").await;
    }
    assert_eq!(b[0].hits(), 3);
    assert_eq!(site.server(&id0).await["breaker"], "open");
    // Open: b0 gets nothing.
    for _ in 0..4 {
        assert_eq!(site.get("/").await.1, "b1");
    }
    b[0].set_status(200);
    poll_until(5, || async {
        site.server(&id0).await["breaker"] == "half-open"
    })
    .await;
    // Trials go through one at a time; two successes close it.
    let mut b0 = 0;
    for _ in 0..8 {
        if site.get("/").await.1 == "b0" {
            b0 += 1;
        }
    }
    assert!(b0 >= 2, "trials reached b0");
    assert_eq!(site.server(&id0).await["breaker"], "closed");
}

#[tokio::test]
async fn health_report_follows_the_servers() {
    let b = vec![
        TestBackend::start("b0").await,
        TestBackend::start("b1").await,
    ];
    let site = TestSite::start(&toml(
        "check = { http = \"/health\", interval = \"20ms\", timeout = \"20ms\", rise = 1, fall = 1 }",
        &b,
    ))
    .await;
    let c = site.client.clone();
    let health = || {
        let c = c.clone();
        let url = site.admin_url("/health");
        async move {
            let (s, _, body) = crate::support::site::get(&c, &url).await;
            (
                s,
                serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            )
        }
    };
    poll_until(5, || async { health().await.1["healthy_backends"] == 2 }).await;
    let (s, h) = health().await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "up");
    assert_eq!(h["total_backends"], 2);
    assert!(h["load"].as_f64().is_some());
    b[0].set_healthy(false);
    b[1].set_healthy(false);
    poll_until(5, || async { health().await.1["status"] == "down" }).await;
    let (s, h) = health().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["healthy_backends"], 0);
}
