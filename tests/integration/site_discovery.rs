//! Discovery: a pool follows a DNS name (A and SRV, from a tiny test DNS server) and a watched
//! file within one refresh; a failing resolver, an empty answer or a broken file leave the
//! pool as it was.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::dns_server::TinyDns;
use crate::support::site::get;
use crate::support::tcp::{TcpBackend, connect_named, read_line};
use crate::support::{TestSite, poll_until};

fn site_toml(discovery: &str) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n\
         [pools.p]\nslow_start = \"0s\"\ndiscovery = {discovery}\n"
    )
}

/// Ids of the pool's servers that are not being removed.
async fn ids(site: &TestSite) -> BTreeSet<String> {
    let s = site.status().await;
    s["pools"][0]["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["state"] != "removing")
        .filter_map(|x| x["id"].as_str().map(str::to_string))
        .collect()
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// A discovery counter from /metrics.
async fn refreshes(site: &TestSite, result: &str) -> u64 {
    let (_, _, body) = get(&site.client, &site.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&body);
    let key = format!("meridian_site_discovery_refreshes_total{{pool=\"p\",result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Three backends on 127.0.0.2-4 with one port (A records carry addresses only).
async fn same_port_backends() -> (u16, Vec<TcpBackend>) {
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.2:0").await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let (Ok(b), Ok(c)) = (
            TcpListener::bind(("127.0.0.3", port)).await,
            TcpListener::bind(("127.0.0.4", port)).await,
        ) else {
            continue;
        };
        let v = vec![
            TcpBackend::serve(first, "two"),
            TcpBackend::serve(b, "three"),
            TcpBackend::serve(c, "four"),
        ];
        return (port, v);
    }
    panic!("no port free on 127.0.0.2-4");
}

#[tokio::test]
async fn a_records_gain_and_lose_addresses_and_failures_change_nothing() {
    let (port, _backends) = same_port_backends().await;
    let dns = TinyDns::start(1).await;
    dns.set_addrs("web.test.", &["127.0.0.2", "127.0.0.3"]);
    let site = TestSite::start(&site_toml(&format!(
        "{{ dns = \"web.test\", record = \"A\", port = {port}, resolver = \"{}\", interval = \"100ms\" }}",
        dns.addr
    )))
    .await;
    let want = |ips: &[&str]| {
        set(&ips
            .iter()
            .map(|i| format!("{i}:{port}"))
            .collect::<Vec<_>>())
    };
    poll_until(5, || async {
        ids(&site).await == want(&["127.0.0.2", "127.0.0.3"])
    })
    .await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        let (mut s, name) = connect_named(site.addr).await;
        s.write_all(b"x\n").await.expect("write");
        assert_eq!(read_line(&mut s).await, "x");
        seen.insert(name);
    }
    assert_eq!(seen, set(&["two".into(), "three".into()]));

    // The name changes: the pool follows within one refresh (one more A query, or two if a
    // refresh was under way when it changed).
    let before = dns.queries.load(Ordering::SeqCst);
    dns.set_addrs("web.test.", &["127.0.0.3", "127.0.0.4"]);
    poll_until(5, || async {
        ids(&site).await == want(&["127.0.0.3", "127.0.0.4"])
    })
    .await;
    let asked = dns.queries.load(Ordering::SeqCst) - before;
    assert!(asked <= 2, "followed after {asked} queries");
    let (_, name) = connect_named(site.addr).await;
    assert!(name == "three" || name == "four", "{name}");

    // SERVFAIL, an empty answer (NXDOMAIN) and silence: the last good set stays.
    dns.servfail.store(true, Ordering::SeqCst);
    let errors = refreshes(&site, "error").await;
    poll_until(5, || async {
        refreshes(&site, "error").await >= errors + 2
    })
    .await;
    assert_eq!(ids(&site).await, want(&["127.0.0.3", "127.0.0.4"]));
    dns.servfail.store(false, Ordering::SeqCst);
    dns.tables.lock().expect("lock").addrs.clear();
    poll_until(5, || async { refreshes(&site, "empty").await >= 2 }).await;
    assert_eq!(ids(&site).await, want(&["127.0.0.3", "127.0.0.4"]));
    let (_, name) = connect_named(site.addr).await;
    assert!(name == "three" || name == "four", "{name}");
}

#[tokio::test]
async fn srv_records_bring_ports_weights_and_priorities() {
    let (a, b, c) = (
        TcpBackend::start("a").await,
        TcpBackend::start("b").await,
        TcpBackend::start("c").await,
    );
    let dns = TinyDns::start(1).await;
    for t in ["a.test.", "b.test.", "c.test."] {
        dns.set_addrs(t, &["127.0.0.1"]);
    }
    let (pa, pb, pc) = (a.addr.port(), b.addr.port(), c.addr.port());
    dns.set_srv(
        "_svc._tcp.test.",
        &[
            (10, 1, pa, "a.test."),
            (10, 3, pb, "b.test."),
            (20, 1, pc, "c.test."),
        ],
    );
    let site = TestSite::start(&site_toml(&format!(
        "{{ dns = \"_svc._tcp.test.\", record = \"SRV\", resolver = \"{}\", interval = \"100ms\" }}\nalgorithm = \"weighted-round-robin\"",
        dns.addr
    )))
    .await;
    let id = |b: &TcpBackend| b.addr.to_string();
    poll_until(5, || async { ids(&site).await == set(&[id(&a), id(&b)]) }).await;
    assert_eq!(site.server(&id(&b)).await["weight"], 3);
    let mut names = Vec::new();
    for _ in 0..8 {
        names.push(connect_named(site.addr).await.1);
    }
    assert_eq!(names.iter().filter(|n| *n == "b").count(), 6, "{names:?}");
    dns.set_srv(
        "_svc._tcp.test.",
        &[(10, 1, pa, "a.test."), (10, 1, pc, "c.test.")],
    );
    poll_until(5, || async { ids(&site).await == set(&[id(&a), id(&c)]) }).await;
}

#[tokio::test]
async fn a_watched_file_is_followed_and_a_broken_one_ignored() {
    let (a, b) = (TcpBackend::start("a").await, TcpBackend::start("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("servers.toml");
    std::fs::write(&file, format!("servers = [\"{}\"]\n", a.addr)).expect("write");
    let site = TestSite::start(&site_toml(&format!(
        "{{ file = \"{}\", interval = \"50ms\" }}",
        file.display()
    )))
    .await;
    poll_until(5, || async {
        ids(&site).await == set(&[a.addr.to_string()])
    })
    .await;
    assert_eq!(connect_named(site.addr).await.1, "a");
    std::fs::write(
        &file,
        format!(
            "servers = [\"{}\", {{ address = \"{}\", weight = 2 }}]\n",
            a.addr, b.addr
        ),
    )
    .expect("write");
    poll_until(5, || async { ids(&site).await.len() == 2 }).await;
    std::fs::write(&file, "servers = [\"not an address\"]\n").expect("write");
    poll_until(5, || async { refreshes(&site, "error").await >= 2 }).await;
    assert_eq!(ids(&site).await.len(), 2, "a broken file changes nothing");
    std::fs::write(&file, format!("servers = [\"{}\"]\n", b.addr)).expect("write");
    poll_until(5, || async {
        ids(&site).await == set(&[b.addr.to_string()])
    })
    .await;
    assert_eq!(connect_named(site.addr).await.1, "b");
}
