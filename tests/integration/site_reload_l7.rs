//! Reload meets the HTTP features and TLS: a reload re-reads the running TLS listeners'
//! certificates, a certificate that does not load refuses the whole reload, a listener whose
//! route targets were replaced follows the new pools (on its open keep-alive connections too),
//! and servers that join at run time speak
//! TLS to the backend when their pool does.

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::tls::{Pki, connect, h1_get, peer_leaf, tls_backend};
use crate::support::{TestBackend, TestSite, request};

fn tls_site(path: &Path, cert: &Path, key: &Path, servers: &str) {
    let text = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         tls = {{ certificates = [{{ cert = {:?}, key = {:?} }}] }}\n\
         [pools.web]\nservers = [{servers}]\n",
        cert.display().to_string(),
        key.display().to_string(),
    );
    std::fs::write(path, text).expect("write site file");
}

#[tokio::test]
async fn a_reload_rereads_certificates_and_a_broken_one_refuses_it() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let (b1, b2) = (
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    tls_site(&file, &a.cert, &a.key, &format!("\"{}\"", b1.addr));
    let site = TestSite::start_file(&file).await;
    let s = connect(&pki.client(&[b"http/1.1"]), site.addr, "a.test").await;
    assert_eq!(peer_leaf(&s), a.der);
    let (_held, status, body) = h1_get(s, "a.test", "/").await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"b1"[..]));

    // The file is unchanged; the certificate was renewed in place: a reload picks it up.
    let renewed = pki.leaf("a", &["a.test"]);
    site.reload.reload().await.expect("reload");
    let s = connect(&pki.client(&[b"http/1.1"]), site.addr, "a.test").await;
    assert_eq!(peer_leaf(&s), renewed.der, "the renewed certificate serves");

    // A new server and a broken key in one reload: nothing of it applies.
    tls_site(
        &file,
        &a.cert,
        &a.key,
        &format!("\"{}\", \"{}\"", b1.addr, b2.addr),
    );
    std::fs::write(&a.key, "not a key").expect("break the key");
    let err = site.reload.reload().await.expect_err("refused");
    assert!(err.to_string().contains("a.key"), "{err}");
    let s = connect(&pki.client(&[b"http/1.1"]), site.addr, "a.test").await;
    assert_eq!(peer_leaf(&s), renewed.der, "the old certificate stays");
    let servers = site.status().await["pools"][0]["servers"].clone();
    assert_eq!(
        servers.as_array().map(Vec::len),
        Some(1),
        "the server change was not applied: {servers}"
    );
}

fn routed_site(path: &Path, api_servers: &str, api_algorithm: &str, web: &TestBackend) {
    let text = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         [[listeners.routes]]\npath_prefix = \"/api/\"\npool = \"api\"\n\
         [pools.web]\nservers = [\"{}\"]\n\
         [pools.api]\nservers = [{api_servers}]\nalgorithm = \"{api_algorithm}\"\n",
        web.addr
    );
    std::fs::write(path, text).expect("write site file");
}

#[tokio::test]
async fn a_route_follows_its_pool_when_a_reload_replaces_it() {
    let (web, old, new) = (
        TestBackend::start("web").await,
        TestBackend::start("old").await,
        TestBackend::start("new").await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    routed_site(&file, &format!("\"{}\"", old.addr), "round-robin", &web);
    let site = TestSite::start_file(&file).await;
    assert_eq!(site.get("/api/x").await.1, "old");
    assert_eq!(site.get("/").await.1, "web");

    // The listener and its own pool are unchanged; the route's pool gets new settings and a
    // new server list, so it is replaced and the listener must route to the new one.
    routed_site(
        &file,
        &format!("\"{}\"", new.addr),
        "least-connections",
        &web,
    );
    site.reload.reload().await.expect("reload");
    for _ in 0..5 {
        let (status, who) = site.get("/api/x").await;
        assert_eq!((status.as_u16(), who.as_str()), (200, "new"));
    }
    assert_eq!(site.get("/").await.1, "web");
}

#[tokio::test]
async fn servers_added_at_run_time_speak_tls_to_the_backend() {
    let pki = Pki::new();
    let leaf = pki.leaf("backend", &["backend.test"]);
    let tls_be = tls_backend(&leaf).await;
    let plain = TestBackend::start("plain").await;
    let site = TestSite::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"secure\"\n\
         [pools.secure]\nservers = [{{ address = \"{}\", id = \"first\" }}]\n\
         retry = {{ attempts = 0 }}\n\
         tls = {{ ca = {:?}, server_name = \"backend.test\" }}\n",
        plain.addr,
        pki.ca_file.display().to_string()
    ))
    .await;
    // The plain server cannot answer a TLS client: the pool really speaks TLS.
    assert_eq!(site.get("/").await.0.as_u16(), 502);
    let api = |method: &str, path: &str, body: String| {
        Request::builder()
            .method(method)
            .uri(site.admin_url(path))
            .header("authorization", "Bearer t0ken")
            .body(Full::<Bytes>::from(body))
            .expect("req")
    };
    let add = api(
        "POST",
        "/api/pools/secure/servers",
        format!("{{\"address\": \"{tls_be}\", \"id\": \"added\"}}"),
    );
    let (status, _, body) = request(&site.client, add).await;
    assert!(
        status.is_success(),
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
    let drain = api(
        "PATCH",
        "/api/pools/secure/servers/first",
        r#"{"state": "maintenance"}"#.to_string(),
    );
    assert!(request(&site.client, drain).await.0.is_success());
    let (status, who) = site.get("/").await;
    assert_eq!((status.as_u16(), who.as_str()), (200, "tls"));
}
