//! Content routing over real sockets: each matcher routes as written, rewrites reach the
//! backend, unmatched requests get 404 (or the default pool), and splits hold their ratio
//! with every client keeping its variant.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::origin::{Origin, reply};
use crate::support::site::HttpClient;
use crate::support::{TestBackend, TestSite, request};

async fn send(site: &TestSite, method: &str, uri: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut b = Request::builder().method(method).uri(site.url(uri));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (s, h, _) = request(&site.client, b.body(Full::default()).expect("req")).await;
    let who = h
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (s.as_u16(), who.to_string())
}

#[tokio::test]
async fn each_matcher_routes_as_written_and_unmatched_gets_404() {
    let names = ["host", "wild", "exact", "regex", "hdr", "query", "method"];
    let mut backends = Vec::new();
    for n in names {
        backends.push(TestBackend::start(n).await);
    }
    let pools: String = names
        .iter()
        .zip(&backends)
        .map(|(n, b)| format!("[pools.{n}]\nservers = [\"{}\"]\n", b.addr))
        .collect();
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[listeners.routes]]\nhost = \"api.example.com\"\npool = \"host\"\n\
         [[listeners.routes]]\nhost = \"*.example.com\"\npool = \"wild\"\n\
         [[listeners.routes]]\npath = \"/exact\"\npool = \"exact\"\n\
         [[listeners.routes]]\npath_regex = \"^/v[0-9]+/items$\"\npool = \"regex\"\n\
         [[listeners.routes]]\nheaders = [{{ name = \"x-canary\", equals = \"1\" }}, {{ name = \"accept\", contains = \"json\" }}]\npool = \"hdr\"\n\
         [[listeners.routes]]\nquery = [{{ name = \"beta\" }}]\npool = \"query\"\n\
         [[listeners.routes]]\nmethods = [\"DELETE\"]\npath_prefix = \"/admin/\"\npool = \"method\"\n\
         {pools}"
    );
    let site = TestSite::start(&toml).await;
    let host = |h: &'static str| [("host", h)];
    assert_eq!(
        send(&site, "GET", "/", &host("api.example.com")).await,
        (200, "host".into())
    );
    assert_eq!(
        send(&site, "GET", "/", &host("www.example.com:80")).await,
        (200, "wild".into())
    );
    assert_eq!(
        send(&site, "GET", "/exact", &[]).await,
        (200, "exact".into())
    );
    assert_eq!(
        send(&site, "GET", "/v2/items", &[]).await,
        (200, "regex".into())
    );
    assert_eq!(send(&site, "GET", "/v2/items/1", &[]).await.0, 404);
    let canary = [("x-canary", "1"), ("accept", "text/html, application/json")];
    assert_eq!(send(&site, "GET", "/", &canary).await, (200, "hdr".into()));
    assert_eq!(
        send(&site, "GET", "/", &[("x-canary", "1")]).await.0,
        404,
        "both headers"
    );
    assert_eq!(
        send(&site, "GET", "/?a=1&beta", &[]).await,
        (200, "query".into())
    );
    assert_eq!(
        send(&site, "DELETE", "/admin/x", &[]).await,
        (200, "method".into())
    );
    assert_eq!(send(&site, "GET", "/admin/x", &[]).await.0, 404);
    assert_eq!(send(&site, "GET", "/nothing", &[]).await.0, 404);
    for (n, b) in names.iter().zip(&backends) {
        assert!(b.hits() >= 1, "{n} reached");
    }
}

#[tokio::test]
async fn default_pool_and_prefix_rewrite() {
    let api = Origin::start(|req, _| reply(req.uri().to_string(), &[("x-backend", "api")])).await;
    let web = TestBackend::start("web").await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         [[listeners.routes]]\npath_prefix = \"/api/\"\nrewrite_prefix = \"/v2/\"\npool = \"api\"\n\
         [pools.api]\nservers = [\"{}\"]\n[pools.web]\nservers = [\"{}\"]\n",
        api.addr, web.addr
    );
    let site = TestSite::start(&toml).await;
    let (s, _, body) = crate::support::site::get(&site.client, &site.url("/api/users?id=7")).await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"/v2/users?id=7"[..]));
    assert_eq!(send(&site, "GET", "/other", &[]).await, (200, "web".into()));
}

async fn split_site() -> (TestSite, TestBackend, TestBackend) {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n\
         [[listeners.routes]]\nname = \"by-user\"\npath_prefix = \"/u\"\nsticky = \"header:x-user\"\n\
         split = [{{ pool = \"stable\", weight = 80 }}, {{ pool = \"canary\", weight = 20 }}]\n\
         [[listeners.routes]]\nname = \"by-cookie\"\npath_prefix = \"/c\"\n\
         split = [{{ pool = \"stable\", weight = 50 }}, {{ pool = \"canary\", weight = 50 }}]\n\
         [pools.stable]\nservers = [\"{}\"]\n[pools.canary]\nservers = [\"{}\"]\n",
        stable.addr, canary.addr
    );
    (TestSite::start(&toml).await, stable, canary)
}

async fn variant(c: &HttpClient, url: &str, headers: &[(&str, &str)]) -> (String, Option<String>) {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (s, h, _) = request(c, b.body(Full::<Bytes>::default()).expect("req")).await;
    assert_eq!(s.as_u16(), 200);
    let who = h
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let cookie = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    (who, cookie)
}

#[tokio::test]
async fn split_holds_its_ratio_over_10000_clients_and_each_keeps_its_variant() {
    let (site, _stable, _canary) = split_site().await;
    let url = site.url("/u");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = site.client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut canary = 0;
            for i in (t..10_000).step_by(8) {
                let id = format!("user-{i}");
                let (first, _) = variant(&c, &url, &[("x-user", &id)]).await;
                if i % 10 == 0 {
                    let (again, _) = variant(&c, &url, &[("x-user", &id)]).await;
                    assert_eq!(again, first, "client {id} keeps its variant");
                }
                canary += usize::from(first == "canary");
            }
            canary
        }));
    }
    let mut canary = 0;
    for t in tasks {
        canary += t.await.expect("task");
    }
    let share = canary as f64 / 10_000.0;
    assert!((share - 0.20).abs() <= 0.02, "canary share {share}");
}

#[tokio::test]
async fn cookie_split_clients_keep_their_variant() {
    let (site, _stable, _canary) = split_site().await;
    let url = site.url("/c");
    let mut seen = [0usize; 2];
    for _ in 0..200 {
        let (first, cookie) = variant(&site.client, &url, &[]).await;
        let cookie = cookie.expect("a new client gets a variant cookie");
        assert!(cookie.starts_with("meridian_split_by-cookie="), "{cookie}");
        seen[usize::from(first == "canary")] += 1;
        for _ in 0..3 {
            let (again, set) = variant(&site.client, &url, &[("cookie", &cookie)]).await;
            assert_eq!(again, first);
            assert!(set.is_none(), "a kept variant sets no new cookie");
        }
    }
    assert!(
        seen[0] > 50 && seen[1] > 50,
        "both variants drawn: {seen:?}"
    );
}
