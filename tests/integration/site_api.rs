//! The runtime admin API: authentication, changes that apply to the next connection while open
//! ones finish, the site's own state, and `meridian site ctl` driving the same calls.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::site::get;
use crate::support::tcp::{TcpBackend, connect_named, read_line};
use crate::support::{TestSite, poll_until, request};

const TOKEN: &str = "s3cret-token";

fn site_toml(admin_extra: &str, pool_extra: &str, servers: &[&TcpBackend]) -> String {
    let servers: Vec<String> = servers
        .iter()
        .map(|b| format!("{{ address = \"{}\", id = \"{}\" }}", b.addr, b.name))
        .collect();
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n{admin_extra}\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\
         [pools.p]\nservers = [{}]\n{pool_extra}\n",
        servers.join(", ")
    )
}

/// One API call with the token: (status, JSON).
async fn call(site: &TestSite, m: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_with(site, m, path, body, Some(TOKEN)).await
}

async fn call_with(
    site: &TestSite,
    m: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(m).uri(site.admin_url(path));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
    let (s, _, bytes) = request(&site.client, b.body(Full::new(body)).expect("req")).await;
    (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Echo round trip through the TCP listener; returns the backend's name.
async fn echo(site: &TestSite) -> String {
    let (mut s, name) = connect_named(site.addr).await;
    s.write_all(b"hi\n").await.expect("write");
    assert_eq!(read_line(&mut s).await, "hi");
    name
}

fn server<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["pools"][0]["servers"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
}

#[tokio::test]
async fn unauthenticated_calls_get_401_and_reads_stay_open() {
    let a = TcpBackend::start("a").await;
    let site = TestSite::start(&site_toml(&format!("token = \"{TOKEN}\""), "", &[&a])).await;
    for (m, path) in [
        (Method::GET, "/api/pools"),
        (Method::DELETE, "/api/pools/p/servers/a"),
        (Method::PUT, "/api/site"),
        (Method::POST, "/drain?pool=p&server=a"),
    ] {
        let (s, _) = call_with(&site, m.clone(), path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} without a token");
        let (s, _) = call_with(&site, m.clone(), path, None, Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {path} with a wrong token");
    }
    assert_eq!(
        get(&site.client, &site.admin_url("/health")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&site.client, &site.admin_url("/status")).await.0,
        StatusCode::OK
    );
    let (s, v) = call(&site, Method::GET, "/api/pools", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(server(&v, "a").expect("a")["state"], "up");
    assert_eq!(a.accepted(), 0, "nothing was removed or changed");

    // No token configured: every call is refused; a network outside api_allow gets 403.
    let site = TestSite::start(&site_toml("", "", &[&a])).await;
    assert_eq!(
        call(&site, Method::GET, "/api/pools", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let site = TestSite::start(&site_toml(
        &format!("token = \"{TOKEN}\"\napi_allow = [\"10.0.0.0/8\"]"),
        "",
        &[&a],
    ))
    .await;
    assert_eq!(
        call(&site, Method::GET, "/api/pools", None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn changes_apply_to_the_next_connection_while_open_ones_finish() {
    let a = TcpBackend::start("a").await;
    let b = TcpBackend::start("b").await;
    let site = TestSite::start(&site_toml(
        &format!("token = \"{TOKEN}\""),
        "algorithm = \"weighted-round-robin\"",
        &[&a],
    ))
    .await;
    let (mut held, name) = connect_named(site.addr).await;
    assert_eq!(name, "a");

    // Add b with weight 3: the next connections go 3:1.
    let (s, v) = call(
        &site,
        Method::POST,
        "/api/pools/p/servers",
        Some(json!({ "address": b.addr.to_string(), "id": "b", "weight": 3 })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let names: Vec<String> = futures_collect(&site, 8).await;
    assert_eq!(names.iter().filter(|n| *n == "b").count(), 6, "{names:?}");
    let (s, _) = call(
        &site,
        Method::POST,
        "/api/pools/p/servers",
        Some(json!({ "address": b.addr.to_string(), "id": "b" })),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "ids are unique");

    // Weight: a gets 3 of 4.
    let (s, _) = call(
        &site,
        Method::PATCH,
        "/api/pools/p/servers/b",
        Some(json!({ "weight": 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &site,
        Method::PATCH,
        "/api/pools/p/servers/a",
        Some(json!({ "weight": 3 })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let names = futures_collect(&site, 8).await;
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 6, "{names:?}");

    // Drain a: nothing new goes there; the open connection still works.
    let (s, _) = call(
        &site,
        Method::PATCH,
        "/api/pools/p/servers/a",
        Some(json!({ "state": "drain" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(futures_collect(&site, 4).await.iter().all(|n| n == "b"));
    held.write_all(b"still here\n").await.expect("write");
    assert_eq!(read_line(&mut held).await, "still here");
    let (_, v) = call(&site, Method::GET, "/api/pools", None).await;
    assert_eq!(server(&v, "a").expect("a")["state"], "draining");

    // Remove a (drains first): listed as removing while the connection is open, then gone.
    let (s, v) = call(&site, Method::DELETE, "/api/pools/p/servers/a", None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["in_flight"], 1);
    let (_, v) = call(&site, Method::GET, "/api/pools", None).await;
    assert_eq!(server(&v, "a").expect("a")["state"], "removing");
    held.write_all(b"bye a\n").await.expect("write");
    assert_eq!(read_line(&mut held).await, "bye a");
    drop(held);
    poll_until(5, || async {
        let (_, v) = call(&site, Method::GET, "/api/pools", None).await;
        server(&v, "a").is_none()
    })
    .await;
    let (s, _) = call(&site, Method::DELETE, "/api/pools/p/servers/b", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "the last server stays");
    let (s, _) = call(
        &site,
        Method::PATCH,
        "/api/pools/p/servers/b",
        Some(json!({ "state": "nope" })),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn futures_collect(site: &TestSite, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(echo(site).await);
    }
    out
}

#[tokio::test]
async fn site_draining_makes_health_say_draining() {
    let a = TcpBackend::start("a").await;
    let site = TestSite::start(&site_toml(&format!("token = \"{TOKEN}\""), "", &[&a])).await;
    let (s, v) = call(
        &site,
        Method::PUT,
        "/api/site",
        Some(json!({ "state": "draining" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (code, _, body) = get(&site.client, &site.admin_url("/health")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let h: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(h["status"], "draining");
    assert_eq!(h["healthy_backends"], 1, "the contract's other fields stay");
    assert_eq!(echo(&site).await, "a", "a draining site still serves");
    call(
        &site,
        Method::PUT,
        "/api/site",
        Some(json!({ "state": "ready" })),
    )
    .await;
    assert_eq!(
        get(&site.client, &site.admin_url("/health")).await.0,
        StatusCode::OK
    );
}

/// Runs `meridian site ctl --admin ADDR ARGS...` with the token in the environment.
async fn ctl(site: &TestSite, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["site", "ctl", "--admin"])
        .arg(site.admin.expect("admin").to_string())
        .args(args)
        .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .expect("run meridian");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn ctl_drives_the_same_calls() {
    let a = TcpBackend::start("a").await;
    let b = TcpBackend::start("b").await;
    let site = TestSite::start(&site_toml(&format!("token = \"{TOKEN}\""), "", &[&a])).await;
    let (ok, out) = ctl(&site, &["pools"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("POOL") && out.contains(&a.addr.to_string()),
        "{out}"
    );
    let (ok, out) = ctl(
        &site,
        &[
            "add",
            "p",
            &b.addr.to_string(),
            "--id",
            "b",
            "--weight",
            "2",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = ctl(&site, &["state", "p", "a", "maintenance"]).await;
    assert!(ok, "{out}");
    assert!(futures_collect(&site, 3).await.iter().all(|n| n == "b"));
    let (ok, out) = ctl(&site, &["weight", "p", "b", "5"]).await;
    assert!(ok, "{out}");
    let (_, v) = call(&site, Method::GET, "/api/pools", None).await;
    assert_eq!(server(&v, "b").expect("b")["weight"], 5);
    assert_eq!(server(&v, "a").expect("a")["state"], "maintenance");
    let (ok, out) = ctl(&site, &["remove", "p", "a"]).await;
    assert!(ok, "{out}");
    let (ok, out) = ctl(&site, &["site", "draining"]).await;
    assert!(ok && out.contains("draining"), "{out}");
    assert_eq!(
        get(&site.client, &site.admin_url("/health")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (ok, out) = ctl(&site, &["remove", "p", "nope"]).await;
    assert!(!ok && out.contains("404"), "{out}");
}
