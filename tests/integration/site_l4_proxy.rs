//! PROXY protocol on TCP listeners: headers sent to a backend are byte-exact (checked against
//! the spec's layout written out here, not against the codec), and headers from a front
//! balancer are parsed and passed on.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::site_l4::tcp_site;
use crate::support::TestSite;
use crate::support::tcp::{TcpBackend, read_line, read_to_end};

async fn site(listener: &str, b: &TcpBackend) -> TestSite {
    TestSite::start(&tcp_site(listener, "", &[format!("\"{}\"", b.addr)])).await
}

/// Sends `payload`, waits for its echo, returns what the backend received.
async fn through(site: &TestSite, b: &TcpBackend, conn: usize, payload: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    let port = s.local_addr().expect("addr").port();
    s.write_all(payload).await.expect("write");
    s.write_all(b"\n").await.expect("write");
    assert_eq!(read_line(&mut s).await, b.name);
    read_line(&mut s).await;
    (port, b.received(conn))
}

#[tokio::test]
async fn v1_header_reaches_the_backend_byte_exact() {
    let b = TcpBackend::start("b").await;
    let site = site("send_proxy = \"v1\"", &b).await;
    let (port, got) = through(&site, &b, 0, b"data").await;
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}\r\ndata\n",
        site.addr.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[tokio::test]
async fn v2_header_reaches_the_backend_byte_exact() {
    let b = TcpBackend::start("b").await;
    let site = site("send_proxy = \"v2\"", &b).await;
    let (port, got) = through(&site, &b, 0, b"data").await;
    // Signature, version 2 + PROXY, TCP over IPv4, 12 address bytes, src, dst, sport, dport.
    let mut want = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00,
        0x0c, 127, 0, 0, 1, 127, 0, 0, 1,
    ];
    want.extend_from_slice(&port.to_be_bytes());
    want.extend_from_slice(&site.addr.port().to_be_bytes());
    want.extend_from_slice(b"data\n");
    assert_eq!(got, want);
}

#[tokio::test]
async fn headers_from_a_front_balancer_are_parsed_and_passed_on() {
    let b = TcpBackend::start("b").await;
    let site = site("accept_proxy = true\nsend_proxy = \"v1\"", &b).await;
    // v1 in, with the client's first bytes in the same segment.
    let (_, got) = through(
        &site,
        &b,
        0,
        b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nhello",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nhello\n"
    );
    // v2 in (IPv6), v1 out.
    let mut v2 = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21, 0x00,
        36,
    ];
    let src: std::net::Ipv6Addr = "2001:db8::7".parse().expect("ip");
    let dst: std::net::Ipv6Addr = "2001:db8::1".parse().expect("ip");
    v2.extend_from_slice(&src.octets());
    v2.extend_from_slice(&dst.octets());
    v2.extend_from_slice(&4321u16.to_be_bytes());
    v2.extend_from_slice(&8443u16.to_be_bytes());
    v2.extend_from_slice(b"v2 payload");
    let (_, got) = through(&site, &b, 1, &v2).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "PROXY TCP6 2001:db8::7 2001:db8::1 4321 8443\r\nv2 payload\n"
    );
}

#[tokio::test]
async fn a_connection_without_a_valid_header_never_reaches_a_backend() {
    let b = TcpBackend::start("b").await;
    let site = site("accept_proxy = true", &b).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(
        read_to_end(&mut s).await.is_empty(),
        "closed without an answer"
    );
    assert_eq!(b.accepted(), 0);
}
