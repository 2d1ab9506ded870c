//! Session affinity over real sockets: a cookie keeps a client on one server across 100
//! requests, moves it (with a new cookie) when that server goes down or is drained, means the
//! same server to another balancer with the same configuration; client-IP affinity (ip-hash)
//! agrees across instances too.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::{TestBackend, TestSite, request};

async fn backends() -> Vec<TestBackend> {
    let mut v = Vec::new();
    for n in ["a", "b", "c"] {
        v.push(TestBackend::start(n).await);
    }
    v
}

fn toml(b: &[TestBackend], extra: &str) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         [pools.web]\nservers = [{}]\n{extra}\n",
        b.iter()
            .map(|b| format!("{{ address = \"{}\", id = \"{}\" }}", b.addr, b.state.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// (backend, the `srv` cookie set, if any).
async fn get(site: &TestSite, cookie: Option<&str>) -> (String, Option<String>) {
    let mut b = Request::get(site.url("/"));
    if let Some(c) = cookie {
        b = b.header("cookie", format!("other=1; {c}"));
    }
    let (s, h, _) = request(&site.client, b.body(Full::<Bytes>::default()).expect("req")).await;
    assert_eq!(s.as_u16(), 200);
    let set = h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("srv="))
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    let who = h
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (who.to_string(), set)
}

#[tokio::test]
async fn cookie_keeps_a_client_on_its_server_and_moves_it_when_the_server_goes_down() {
    let b = backends().await;
    let cfg = toml(
        &b,
        "affinity = { cookie = \"srv\", secret = \"s3cret\", max_age = \"1h\" }",
    );
    let site = TestSite::start(&cfg).await;
    let (first, cookie) = get(&site, None).await;
    let cookie = cookie.expect("the first answer sets the cookie");
    assert!(!cookie.contains("127.0.0.1"), "opaque: {cookie}");
    for _ in 0..100 {
        let (who, set) = get(&site, Some(&cookie)).await;
        assert_eq!(who, first, "round robin would have moved it");
        assert!(set.is_none(), "no new cookie while the server holds");
    }
    let dead = b.iter().find(|x| x.state.name == first).expect("backend");
    dead.kill();
    let (moved, set) = get(&site, Some(&cookie)).await;
    assert_ne!(moved, first);
    let new_cookie = set.expect("a moved client gets a new cookie");
    assert_ne!(new_cookie, cookie);
    for _ in 0..20 {
        assert_eq!(get(&site, Some(&new_cookie)).await.0, moved);
    }
    // The same configuration elsewhere (or after a restart) reads the cookie alike.
    let twin = TestSite::start(&cfg).await;
    assert_eq!(get(&twin, Some(&new_cookie)).await.0, moved);
    let metrics = crate::support::site::get(&site.client, &site.admin_url("/metrics"))
        .await
        .2;
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("meridian_site_affinity_total{pool=\"web\",result=\"kept\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_drained_server_lets_its_clients_go() {
    let b = backends().await;
    let site = TestSite::start(&toml(&b, "affinity = { cookie = \"srv\" }")).await;
    let (first, cookie) = get(&site, None).await;
    let cookie = cookie.expect("cookie");
    let url = site.admin_url(&format!("/api/pools/web/servers/{first}"));
    let req = Request::patch(url)
        .header("authorization", "Bearer t0ken")
        .body(Full::<Bytes>::from(r#"{"state":"drain"}"#))
        .expect("req");
    assert_eq!(request(&site.client, req).await.0.as_u16(), 200);
    let (moved, set) = get(&site, Some(&cookie)).await;
    assert_ne!(moved, first);
    assert!(set.is_some());
}

#[tokio::test]
async fn client_ip_affinity_agrees_across_instances() {
    let b = backends().await;
    let cfg = toml(&b, "algorithm = \"ip-hash\"");
    let one = TestSite::start(&cfg).await;
    let two = TestSite::start(&cfg).await;
    let (who, _) = get(&one, None).await;
    for _ in 0..20 {
        assert_eq!(get(&one, None).await.0, who);
        assert_eq!(get(&two, None).await.0, who);
    }
}
