//! Rate limits over real sockets: 429 with `Retry-After` after the burst, separate buckets per
//! client key (an API key header), limits per route, recovery at the configured rate, and
//! the tracked clients in `/status`. The exact refill arithmetic is tested on a paused clock
//! beside the limiter (`site::l7::ratelimit`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::{TestBackend, TestSite, poll_until, request};

async fn get(site: &TestSite, path: &str, key: Option<&str>) -> (u16, Option<String>) {
    let mut b = Request::get(site.url(path));
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    let (s, h, _) = request(&site.client, b.body(Full::<Bytes>::default()).expect("req")).await;
    let retry = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (s.as_u16(), retry)
}

#[tokio::test]
async fn burst_then_429_with_retry_after_per_key_and_per_route() {
    let be = TestBackend::start("b").await;
    let toml = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         rate_limit = {{ rate = 1, per = \"1m\", burst = 3 }}\n\
         [[listeners.routes]]\nname = \"api\"\npath_prefix = \"/api\"\npool = \"web\"\n\
         rate_limit = {{ rate = 1, per = \"1m\", burst = 5, key = \"header:x-api-key\" }}\n\
         [pools.web]\nservers = [\"{}\"]\n",
        be.addr
    );
    let site = TestSite::start(&toml).await;
    for _ in 0..5 {
        assert_eq!(get(&site, "/api/x", Some("key-a")).await.0, 200);
    }
    let (s, retry) = get(&site, "/api/x", Some("key-a")).await;
    assert_eq!(
        (s, retry.as_deref()),
        (429, Some("60")),
        "one token a minute"
    );
    assert_eq!(
        get(&site, "/api/x", Some("key-b")).await.0,
        200,
        "another key, another bucket"
    );
    for _ in 0..3 {
        assert_eq!(
            get(&site, "/page", None).await.0,
            200,
            "the listener's own limit"
        );
    }
    assert_eq!(get(&site, "/page", None).await.0, 429);
    assert_eq!(be.hits(), 9, "limited requests never reach the backend");
    let status = site.status().await;
    let routes = &status["listeners"][0]["routes"];
    assert_eq!(routes[0]["rate_limited"], 1);
    assert_eq!(routes[0]["clients_tracked"], 2);
}

#[tokio::test]
async fn a_limited_client_is_served_again_once_tokens_refill() {
    let be = TestBackend::start("b").await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         rate_limit = {{ rate = 4, per = \"1s\", burst = 2 }}\n\
         [pools.web]\nservers = [\"{}\"]\n",
        be.addr
    );
    let site = TestSite::start(&toml).await;
    let mut ok = 0;
    let mut limited = 0;
    // Until the first 429: the burst (2), plus at most the tokens refilled meanwhile.
    while limited == 0 {
        match get(&site, "/", None).await {
            (200, _) => ok += 1,
            (429, retry) => {
                limited += 1;
                assert_eq!(retry.as_deref(), Some("1"), "250 ms rounds up to 1 s");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(ok < 50, "the limit never applied");
    }
    assert!(ok >= 2);
    poll_until(5, || async { get(&site, "/", None).await.0 == 200 }).await;
}
