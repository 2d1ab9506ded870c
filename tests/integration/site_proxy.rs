//! The request path: retries, header rewriting, limits, bad requests, h2c, streaming.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestBackend, TestSite, poll_until, request};

fn toml(extra: &str, servers: &[String]) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [{}]\n{extra}\n",
        servers.join(", ")
    )
}

/// An address where nothing listens.
async fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a.to_string()
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_server() {
    let live = TestBackend::start("live").await;
    let dead = dead_addr().await;
    let site = TestSite::start(&toml(
        "algorithm = \"round-robin\"\npassive = { consecutive_failures = 0 }\nbreaker = { failures = 0 }",
        &[format!("\"{dead}\""), format!("\"{}\"", live.addr)],
    ))
    .await;
    for _ in 0..6 {
        assert_eq!(site.get("/").await, (StatusCode::OK, "live".to_string()));
    }
    // A POST that never left is retried too.
    let (s, _, _) = request(
        &site.client,
        Request::post(site.url("/"))
            .body(Full::new(Bytes::from_static(b"x")))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let metrics = crate::support::site::get(&site.client, &site.admin_url("/metrics"))
        .await
        .2;
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("meridian_site_retries_total{pool=\"p\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_post_is_not_retried_after_it_reached_a_backend() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    a.set_status(503);
    b.set_status(503);
    let site = TestSite::start(&toml(
        "retry = { attempts = 2, on = [\"connect\", \"5xx\"] }\npassive = { consecutive_failures = 0 }\nbreaker = { failures = 0 }",
        &[format!("\"{}\"", a.addr), format!("\"{}\"", b.addr)],
    ))
    .await;
    let (s, _, _) = request(
        &site.client,
        Request::post(site.url("/"))
            .body(Full::new(Bytes::from_static(b"pay")))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.posts() + b.posts(),
        1,
        "the POST reached one backend once"
    );
    // A GET with the same failure is retried on the other server.
    let before = a.hits() + b.hits();
    site.get("/").await;
    assert_eq!(a.hits() + b.hits() - before, 2);
}

#[tokio::test]
async fn idempotent_5xx_is_retried_on_a_different_server() {
    let bad = TestBackend::start("bad").await;
    let good = TestBackend::start("good").await;
    bad.set_status(502);
    let site = TestSite::start(&toml(
        "algorithm = \"round-robin\"\npassive = { consecutive_failures = 0 }\nbreaker = { failures = 0 }",
        &[format!("\"{}\"", bad.addr), format!("\"{}\"", good.addr)],
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(site.get("/").await, (StatusCode::OK, "good".to_string()));
    }
    // A small PUT body is buffered and replayed.
    let (s, h, _) = request(
        &site.client,
        Request::put(site.url("/"))
            .body(Full::new(Bytes::from_static(b"data")))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-backend"], "good");
    assert_eq!(
        good.state
            .last_body_len
            .load(std::sync::atomic::Ordering::SeqCst),
        4
    );
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_removed() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml("", &[format!("\"{}\"", b.addr)])).await;
    let req = Request::get(site.url("/x?y=1"))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("x-forwarded-for", "203.0.113.7")
        .body(Full::<Bytes>::default())
        .expect("req");
    let (s, _, _) = request(&site.client, req).await;
    assert_eq!(s, StatusCode::OK);
    let h = b.last_headers();
    assert!(!h.contains_key("x-private"));
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], site.addr.to_string().as_str());
    assert!(
        h["forwarded"]
            .to_str()
            .expect("ascii")
            .starts_with("for=127.0.0.1;proto=http;host=")
    );
    assert_eq!(h["x-request-id"].len(), 32);
}

#[tokio::test]
async fn a_listener_adds_only_the_forwarding_headers_it_names() {
    let b = TestBackend::start("b").await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n\
         forwarded_headers = [\"x-forwarded-for\"]\nrequest_id = false\n\
         [pools.p]\nservers = [\"{}\"]\n",
        b.addr
    );
    let site = TestSite::start(&toml).await;
    let req = Request::get(site.url("/"))
        .header("forwarded", "for=192.0.2.60")
        .body(Full::<Bytes>::default())
        .expect("req");
    let (s, _, _) = request(&site.client, req).await;
    assert_eq!(s, StatusCode::OK);
    let h = b.last_headers();
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    for absent in ["x-forwarded-proto", "x-forwarded-host", "x-request-id"] {
        assert!(!h.contains_key(absent), "{absent} was added");
    }
    assert_eq!(h["forwarded"], "for=192.0.2.60", "passed through as sent");
    let bad = "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n\
               forwarded_headers = [\"via\"]\n[pools.p]\nservers = [\"127.0.0.1:1\"]\n";
    let e = meridian::config::site::parse_site(std::path::Path::new("s.toml"), bad)
        .expect_err("unknown header name");
    let msg = e.to_string();
    assert!(
        msg.contains("s.toml:4:") && msg.contains("forwarded_headers"),
        "{msg}"
    );
}

async fn raw(site: &TestSite, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_headers_get_431_and_malformed_requests_400() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml("", &[format!("\"{}\"", b.addr)])).await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert!(raw(&site, big.as_bytes()).await.starts_with("HTTP/1.1 431"));
    assert!(
        raw(&site, b"GARBAGE\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    assert!(
        raw(
            &site,
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"
        )
        .await
        .starts_with("HTTP/1.1 400")
    );
    assert_eq!(b.hits(), 0, "bad requests never reach a backend");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml("", &[format!("\"{}\"", b.addr)])).await;
    let stream = TcpStream::connect(site.addr).await.expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/", site.addr))
        .body(Full::<Bytes>::default())
        .expect("req");
    let resp = tx.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"b");
    assert_eq!(b.last_headers()["host"], site.addr.to_string().as_str());
}

#[tokio::test]
async fn large_bodies_stream_through() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml("", &[format!("\"{}\"", b.addr)])).await;
    let body = Bytes::from(vec![7u8; 5 << 20]);
    let (s, _, out) = request(
        &site.client,
        Request::post(site.url("/echo-len"))
            .body(Full::new(body))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&out[..], (5usize << 20).to_string().as_bytes());
}

#[tokio::test]
async fn a_full_pool_answers_503_with_retry_after() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(
        "max_pending = 0",
        &[format!(
            "{{ address = \"{}\", max_connections = 1 }}",
            b.addr
        )],
    ))
    .await;
    let c = site.client.clone();
    let url = site.url("/hold");
    let held = tokio::spawn(async move {
        request(
            &c,
            Request::get(url)
                .body(Full::<Bytes>::default())
                .expect("req"),
        )
        .await
        .0
    });
    poll_until(5, || async { b.held() == 1 }).await;
    let (s, h, _) = request(
        &site.client,
        Request::get(site.url("/"))
            .body(Full::default())
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "1");
    b.release(1);
    assert_eq!(held.await.expect("task"), StatusCode::OK);
}

#[tokio::test]
async fn a_pending_request_waits_for_a_free_slot() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(
        "max_pending = 4\nqueue_timeout = \"10s\"",
        &[format!(
            "{{ address = \"{}\", max_connections = 1 }}",
            b.addr
        )],
    ))
    .await;
    let spawn = |path: &'static str| {
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
    };
    let first = spawn("/hold");
    poll_until(5, || async { b.held() == 1 }).await;
    let second = spawn("/");
    // The second waits in the queue; releasing the first lets it through.
    poll_until(5, || async {
        site.status().await["pools"][0]["in_flight"] == 1
    })
    .await;
    b.release(1);
    assert_eq!(first.await.expect("task"), StatusCode::OK);
    assert_eq!(second.await.expect("task"), StatusCode::OK);
}

#[tokio::test]
async fn idle_and_stalled_client_connections_are_closed() {
    let b = TestBackend::start("b").await;
    let cfg = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\nheader_timeout = \"100ms\"\n[pools.p]\nservers = [\"{}\"]\n",
        b.addr
    );
    let site = TestSite::start(&cfg).await;
    // A request head that never completes.
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "a stalled request head is cut off");
    // A keep-alive connection that served a request and then sits idle.
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}
