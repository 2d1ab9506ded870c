//! TCP (L4) listeners: echo through every algorithm, half-close, connect and idle timeouts,
//! connection limits.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestSite;
use crate::support::tcp::{TcpBackend, connect_named, read_line, read_to_end};

pub(crate) fn tcp_site(listener_extra: &str, pool_extra: &str, servers: &[String]) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n{listener_extra}\n\
         [pools.p]\nservers = [{}]\n{pool_extra}\n",
        servers.join(", ")
    )
}

fn quoted(b: &[&TcpBackend]) -> Vec<String> {
    b.iter().map(|b| format!("\"{}\"", b.addr)).collect()
}

/// One echo round trip; returns the backend's name.
async fn echo_once(site: &TestSite, msg: &str) -> String {
    let (mut s, name) = connect_named(site.addr).await;
    s.write_all(msg.as_bytes()).await.expect("write");
    s.write_all(b"\n").await.expect("write");
    assert_eq!(read_line(&mut s).await, msg, "echo through the proxy");
    name
}

/// A PROXY v1 line declaring client `ip`, so the hashing algorithms see many clients.
async fn echo_as(site: &TestSite, ip: &str) -> String {
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(format!("PROXY TCP4 {ip} 127.0.0.1 4000 5000\r\nping\n").as_bytes())
        .await
        .expect("write");
    let name = read_line(&mut s).await;
    assert_eq!(read_line(&mut s).await, "ping");
    name
}

fn counts(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn echo_round_robin_and_weighted() {
    let (a, b, c) = (
        TcpBackend::start("a").await,
        TcpBackend::start("b").await,
        TcpBackend::start("c").await,
    );
    let site = TestSite::start(&tcp_site("", "", &quoted(&[&a, &b, &c]))).await;
    let mut names = Vec::new();
    for i in 0..6 {
        names.push(echo_once(&site, &format!("hello-{i}")).await);
    }
    assert_eq!(names[..3], names[3..], "round robin cycles: {names:?}");
    assert_eq!(counts(&names).len(), 3);

    let servers = vec![
        format!("{{ address = \"{}\", id = \"a\", weight = 3 }}", a.addr),
        format!("{{ address = \"{}\", id = \"b\" }}", b.addr),
        format!("{{ address = \"{}\", id = \"c\" }}", c.addr),
    ];
    let site = TestSite::start(&tcp_site(
        "",
        "algorithm = \"weighted-round-robin\"",
        &servers,
    ))
    .await;
    let mut names = Vec::new();
    for i in 0..10 {
        names.push(echo_once(&site, &format!("w-{i}")).await);
    }
    let got = counts(&names);
    assert_eq!(
        (got["a"], got["b"], got["c"]),
        (6, 2, 2),
        "weights 3:1:1 over two cycles"
    );
}

#[tokio::test]
async fn echo_least_connections_counts_open_connections() {
    let (a, b, c) = (
        TcpBackend::start("a").await,
        TcpBackend::start("b").await,
        TcpBackend::start("c").await,
    );
    let site = TestSite::start(&tcp_site(
        "",
        "algorithm = \"least-connections\"",
        &quoted(&[&a, &b, &c]),
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_named(site.addr).await);
    }
    let names: Vec<String> = held.iter().map(|h| h.1.clone()).collect();
    assert_eq!(
        counts(&names).len(),
        3,
        "one open connection each: {names:?}"
    );
    // Close the connection on "b": the next one must go there (the only server with none).
    let i = names.iter().position(|n| n == "b").expect("b");
    drop(held.remove(i));
    crate::support::poll_until(5, || async { b.open() == 0 }).await;
    for _ in 0..3 {
        let (s, name) = connect_named(site.addr).await;
        assert_eq!(name, "b");
        drop(s);
        crate::support::poll_until(5, || async { b.open() == 0 }).await;
    }
}

#[tokio::test]
async fn echo_hashing_keeps_a_client_on_one_server() {
    let (a, b, c) = (
        TcpBackend::start("a").await,
        TcpBackend::start("b").await,
        TcpBackend::start("c").await,
    );
    for alg in ["ip-hash", "consistent-hash"] {
        let site = TestSite::start(&tcp_site(
            "accept_proxy = true",
            &format!("algorithm = \"{alg}\""),
            &quoted(&[&a, &b, &c]),
        ))
        .await;
        let mut first = Vec::new();
        for i in 0..24 {
            first.push(echo_as(&site, &format!("192.0.2.{i}")).await);
        }
        for (i, want) in first.iter().enumerate() {
            assert_eq!(
                &echo_as(&site, &format!("192.0.2.{i}")).await,
                want,
                "{alg}: client {i} moved"
            );
        }
        assert!(counts(&first).len() >= 2, "{alg}: spread: {first:?}");
    }
}

#[tokio::test]
async fn echo_least_time_and_random() {
    let (a, b) = (TcpBackend::start("a").await, TcpBackend::start("b").await);
    for alg in ["least-time", "random"] {
        let site = TestSite::start(&tcp_site(
            "",
            &format!("algorithm = \"{alg}\""),
            &quoted(&[&a, &b]),
        ))
        .await;
        let mut names = Vec::new();
        for i in 0..40 {
            names.push(echo_once(&site, &format!("{alg}-{i}")).await);
        }
        assert_eq!(counts(&names).len(), 2, "{alg} uses both: {names:?}");
    }
}

#[tokio::test]
async fn half_close_passes_through_both_ways() {
    let a = TcpBackend::start("a").await;
    for splice in [false, true] {
        let site =
            TestSite::start(&tcp_site(&format!("splice = {splice}"), "", &quoted(&[&a]))).await;
        let (mut s, name) = connect_named(site.addr).await;
        assert_eq!(name, "a");
        s.write_all(b"last words").await.expect("write");
        s.shutdown().await.expect("half-close");
        // The backend sees EOF, then still answers: the proxy must keep that direction open.
        let rest = read_to_end(&mut s).await;
        assert_eq!(rest, b"last wordsbye\n", "splice = {splice}");
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
async fn blackhole() -> (std::net::SocketAddr, Vec<TcpStream>, socket2::Socket) {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    sock.bind(&addr.into()).expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let mut fill = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fill.push(s),
            _ => return (addr, fill, sock),
        }
    }
    panic!("could not fill the accept queue");
}

#[tokio::test]
async fn connect_timeout_fires_and_another_server_is_tried() {
    let (hole, _fill, _sock) = blackhole().await;
    let a = TcpBackend::start("a").await;
    let servers = vec![format!("\"{hole}\""), format!("\"{}\"", a.addr)];
    let pool = "timeouts = { connect = \"200ms\" }\npassive = { consecutive_failures = 0 }\n\
                breaker = { failures = 0 }";
    let site = TestSite::start(&tcp_site("", pool, &servers)).await;
    for i in 0..4 {
        assert_eq!(echo_once(&site, &format!("r{i}")).await, "a");
    }
    let st = site.server(&hole.to_string()).await;
    assert!(st["failures"].as_u64().unwrap_or(0) >= 1, "{st}");

    // Only the black hole: the client is closed after the connect timeout.
    let site = TestSite::start(&tcp_site("", pool, &[format!("\"{hole}\"")])).await;
    let start = tokio::time::Instant::now();
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    assert!(read_to_end(&mut s).await.is_empty());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
}

#[tokio::test]
async fn connect_failures_eject_the_server() {
    let a = TcpBackend::start("a").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let servers = vec![format!("\"{dead_addr}\""), format!("\"{}\"", a.addr)];
    let pool = "passive = { consecutive_failures = 2, max_ejection_percent = 50 }\n\
                breaker = { failures = 0 }";
    let site = TestSite::start(&tcp_site("", pool, &servers)).await;
    for i in 0..6 {
        assert_eq!(echo_once(&site, &format!("e{i}")).await, "a");
    }
    let st = site.server(&dead_addr.to_string()).await;
    assert_eq!(st["ejected"], true, "{st}");
    assert_eq!(
        st["failures"], 2,
        "ejected after two, then never picked: {st}"
    );
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_connection() {
    let a = TcpBackend::start("a").await;
    let site = TestSite::start(&tcp_site("idle_timeout = \"300ms\"", "", &quoted(&[&a]))).await;
    let start = tokio::time::Instant::now();
    let (mut s, _) = connect_named(site.addr).await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("closed within 5 s")
        .expect("read");
    assert_eq!(n, 0);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    crate::support::poll_until(5, || async { a.open() == 0 }).await;
}

#[tokio::test]
async fn per_server_and_per_listener_limits() {
    let a = TcpBackend::start("a").await;
    let one = vec![format!(
        "{{ address = \"{}\", max_connections = 1 }}",
        a.addr
    )];
    let site = TestSite::start(&tcp_site("", "", &one)).await;
    let (first, _) = connect_named(site.addr).await;
    let mut second = TcpStream::connect(site.addr).await.expect("connect");
    assert!(
        read_to_end(&mut second).await.is_empty(),
        "server full, no queue: closed at once"
    );
    drop(first);

    let (b, c) = (TcpBackend::start("b").await, TcpBackend::start("c").await);
    let site = TestSite::start(&tcp_site("max_connections = 2", "", &quoted(&[&b, &c]))).await;
    let (h1, _) = connect_named(site.addr).await;
    let (mut h2, _) = connect_named(site.addr).await;
    let mut third = TcpStream::connect(site.addr).await.expect("kernel accepts");
    third.write_all(b"waiting\n").await.expect("write");
    // A round trip on an open connection, then the third is still not relayed.
    h2.write_all(b"x\n").await.expect("write");
    assert_eq!(read_line(&mut h2).await, "x");
    assert_eq!(
        b.accepted() + c.accepted(),
        2,
        "the listener is at its limit"
    );
    drop(h1);
    let name = read_line(&mut third).await;
    assert!(name == "b" || name == "c", "{name}");
    assert_eq!(read_line(&mut third).await, "waiting");
}
