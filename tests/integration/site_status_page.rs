//! The site's status page over real sockets: a browser (Accept: text/html) gets the HTML page
//! of pools and servers, scripts get the JSON; recommendations follow the live figures (a pool
//! with a dead server and failing requests is flagged, with the same advice in the JSON); the
//! site's state colours the page (draining through the API turns it amber).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::{TestBackend, TestSite, poll_until, request};

async fn get_with(site: &TestSite, path: &str, accept: &str) -> (u16, String, String) {
    let req = Request::get(site.admin_url(path))
        .header("accept", accept)
        .body(Full::<Bytes>::default())
        .expect("req");
    let (status, headers, body) = request(&site.client, req).await;
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status.as_u16(),
        ctype,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_page_shows_pools_servers_and_recommendations() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let site = TestSite::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         [pools.web]\nretry = {{ attempts = 0 }}\n\
         servers = [{{ address = \"{}\", id = \"a\" }}, {{ address = \"{}\", id = \"b\" }}, \
         {{ address = \"{}\", id = \"c\" }}]\n\
         check = {{ http = \"/health\", interval = \"50ms\", rise = 1, fall = 1 }}\n",
        a.addr, b.addr, c.addr
    ))
    .await;
    poll_until(5, || async {
        site.status().await["health"]["healthy_backends"] == 3
    })
    .await;

    let (status, ctype, html) = get_with(&site, "/status", "text/html,application/xhtml+xml").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    for id in ["a", "b", "c"] {
        assert!(
            html.contains(&format!("<tr class=\"green\" data-server=\"{id}\"")),
            "{html}"
        );
    }
    assert!(html.contains("id=\"advice-none\""));
    assert!(html.contains("class=\"badge green\" data-state=\"up\""));
    let (_, ctype, _) = get_with(&site, "/status", "*/*").await;
    assert_eq!(ctype, "application/json", "scripts keep the JSON");

    // c dies (2 of 3 healthy: below 80 %) and a answers 500 (errors over 5 %).
    c.set_healthy(false);
    a.set_status(500);
    poll_until(5, || async {
        site.status().await["health"]["healthy_backends"] == 2
    })
    .await;
    for _ in 0..40 {
        site.get("/").await;
    }
    let (_, _, live) = get_with(&site, "/status/live", "text/html").await;
    assert!(
        live.contains("<tr class=\"red\" data-server=\"c\""),
        "{live}"
    );
    assert!(live.contains("data-rule=\"healthy\""), "{live}");
    assert!(live.contains("data-rule=\"errors\""), "{live}");
    let json = site.status().await;
    let rules: Vec<&str> = json["recommendations"]
        .as_array()
        .expect("recommendations")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"healthy") && rules.contains(&"errors"),
        "{rules:?}"
    );

    // Draining the whole site through the API turns the page amber.
    let req = Request::put(site.admin_url("/api/site"))
        .header("authorization", "Bearer t0ken")
        .body(Full::<Bytes>::from(r#"{"state": "draining"}"#))
        .expect("req");
    assert!(request(&site.client, req).await.0.is_success());
    let (_, _, live) = get_with(&site, "/status/live", "text/html").await;
    assert!(
        live.contains("class=\"badge amber\" data-state=\"draining\""),
        "{live}"
    );
}
