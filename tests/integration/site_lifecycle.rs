//! Draining, graceful shutdown (also by a real SIGTERM to the binary), and losing a backend
//! under load.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::site::{client, get};
use crate::support::{TestBackend, TestSite, poll_until, request};

fn toml(extra: &str, b: &[&TestBackend]) -> String {
    let servers: Vec<String> = b.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [{}]\n{extra}\n",
        servers.join(", ")
    )
}

fn spawn_get(site: &TestSite, path: &str) -> tokio::task::JoinHandle<StatusCode> {
    let c = site.client.clone();
    let url = site.url(path);
    tokio::spawn(async move {
        request(
            &c,
            Request::get(url)
                .body(Full::<Bytes>::default())
                .expect("req"),
        )
        .await
        .0
    })
}

#[tokio::test]
async fn a_drained_server_finishes_in_flight_requests_and_takes_no_new_ones() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml("algorithm = \"round-robin\"", &[&a, &b])).await;
    let held = spawn_get(&site, "/hold");
    poll_until(5, || async { a.held() + b.held() == 1 }).await;
    let (busy, other) = if a.held() == 1 { (&a, &b) } else { (&b, &a) };
    let (s, _, _) = request(
        &site.client,
        Request::post(site.admin_url(&format!("/drain?pool=p&server={}", busy.addr)))
            .header("authorization", "Bearer t0ken")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        site.server(&busy.addr.to_string()).await["state"],
        "draining"
    );
    let before = busy.hits();
    for _ in 0..6 {
        assert_eq!(site.get("/").await.1, other.state.name);
    }
    assert_eq!(
        busy.hits(),
        before,
        "no new request went to the drained server"
    );
    busy.release(1);
    assert_eq!(held.await.expect("task"), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_drains_and_loses_no_in_flight_request() {
    let a = TestBackend::start("a").await;
    let mut site = TestSite::start(&toml("", &[&a])).await;
    let held: Vec<_> = (0..4).map(|_| spawn_get(&site, "/hold")).collect();
    poll_until(5, || async { a.held() == 4 }).await;
    site.shutdown();
    let c = client();
    let url = site.admin_url("/health");
    poll_until(5, || async {
        get(&c, &url).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let body = get(&c, &url).await.2;
    let h: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(h["status"], "draining");
    a.release(4);
    for h in held {
        assert_eq!(h.await.expect("task"), StatusCode::OK);
    }
    site.join().await.expect("clean stop");
}

#[tokio::test]
async fn sigterm_to_the_binary_loses_no_in_flight_request() {
    let a = TestBackend::start("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("site.toml");
    // Fixed ports are unknown in advance: ask the OS for two free ones.
    let port = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    };
    let (lp, ap) = (port(0), port(1));
    std::fs::write(
        &cfg,
        format!(
            "threads = 1\n[admin]\nbind = \"127.0.0.1:{ap}\"\n[shutdown]\ngrace = \"10s\"\n[[listeners]]\nbind = \"127.0.0.1:{lp}\"\npool = \"p\"\n[pools.p]\nservers = [\"{}\"]\n",
            a.addr
        ),
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["site", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn meridian");
    let c = client();
    let health = format!("http://127.0.0.1:{ap}/health");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", ap))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "site did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(&c, &health).await.0, StatusCode::OK);
    let url = format!("http://127.0.0.1:{lp}/hold");
    let held: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            let url = url.clone();
            tokio::spawn(async move {
                request(
                    &c,
                    Request::get(url)
                        .body(Full::<Bytes>::default())
                        .expect("req"),
                )
                .await
                .0
            })
        })
        .collect();
    poll_until(5, || async { a.held() == 3 }).await;
    let pid = child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    // Wait until the site logged that it is draining, then let the requests finish.
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("draining") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(drained, Ok(true));
    a.release(3);
    for h in held {
        assert_eq!(h.await.expect("task"), StatusCode::OK);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "exit 0 after draining: {status}");
}

/// Done-when 3: a bounded load run over three backends, one killed midway: no GET fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_three_backends_under_load_fails_no_get() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let victim = TestBackend::start("victim").await;
    let site =
        Arc::new(TestSite::start(&toml("algorithm = \"round-robin\"", &[&a, &b, &victim])).await);
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 250;
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (site, done, failed) = (Arc::clone(&site), Arc::clone(&done), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_CLIENT {
                let (s, _) = site.get("/").await;
                if s != StatusCode::OK {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    poll_until(10, || async {
        done.load(Ordering::SeqCst) >= CLIENTS * PER_CLIENT / 3
    })
    .await;
    victim.kill();
    let killed_at = done.load(Ordering::SeqCst);
    for t in tasks {
        t.await.expect("client");
    }
    assert!(
        killed_at < CLIENTS * PER_CLIENT,
        "the kill happened during the run"
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed GETs");
    assert_eq!(done.load(Ordering::SeqCst), CLIENTS * PER_CLIENT);
}
