//! The site balancer's `/metrics`: every family documented in docs/metrics.md, and accepted by
//! `promtool check metrics` (skipped with a note where promtool is not installed; .ci/run
//! installs it).

use std::path::Path;

use crate::dns_binary::{assert_exposed_as_documented, promtool};
use crate::support::{TestBackend, TestSite};

#[tokio::test]
async fn site_metrics_are_documented_and_promtool_accepts_them() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    // Every listener feature, a TLS listener, a TCP listener and a discovered pool, so that
    // every family has series.
    let pki = crate::support::tls::Pki::new();
    let leaf = pki.leaf("site", &["site.test"]);
    let t = crate::support::tcp::TcpBackend::start("t").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = dir.path().join("servers.toml");
    std::fs::write(&servers, format!("servers = [\"{}\"]\n", t.addr)).expect("write");
    let site = TestSite::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n\
         rate_limit = {{ rate = 1000 }}\ncompression = {{}}\ncache = {{}}\n\
         [[listeners.routes]]\npath = \"/split\"\nsplit = [{{ pool = \"p\", weight = 1 }}, {{ pool = \"q\", weight = 1 }}]\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"d\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n\
         tls = {{ certificates = [{{ cert = {:?}, key = {:?} }}] }}\n\
         [pools.p]\nservers = [\"{}\", \"{}\"]\nretry = {{ attempts = 1 }}\n\
         affinity = {{ cookie = \"srv\" }}\n\
         [pools.q]\nservers = [\"{}\"]\n\
         [pools.d]\ndiscovery = {{ file = \"{}\", interval = \"50ms\" }}\n",
        leaf.cert.display().to_string(),
        leaf.key.display().to_string(),
        a.addr,
        b.addr,
        a.addr,
        servers.display()
    ))
    .await;
    for _ in 0..4 {
        let (status, _) = site.get("/").await;
        assert_eq!(status, 200);
    }
    let tcp = site.addrs[1];
    crate::support::poll_until(5, || async {
        tokio::net::TcpStream::connect(tcp).await.is_ok() && t.accepted() > 0
    })
    .await;
    let (status, _, body) =
        crate::support::site::get(&site.client, &site.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body.to_vec()).expect("utf-8");

    assert_exposed_as_documented(&text, "meridian site");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    match promtool(&["check", "metrics"], dir, &text) {
        None => println!(
            "note: promtool is not installed (Debian package `prometheus`); the site exposition \
             was not checked with it here; .ci/run installs it"
        ),
        Some((ok, out)) => assert!(ok && out.trim().is_empty(), "promtool:\n{out}"),
    }
}
