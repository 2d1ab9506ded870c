//! TLS termination over real sockets: SNI picks the certificate, ALPN negotiates h2, TLS 1.1
//! is refused, certificates reload without dropping open connections, and TLS to backends is
//! verified against the pool's CA. Certificates are made at run time.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::tls::{Pki, connect, h1_get, peer_leaf, send, tls_backend};
use crate::support::{TestBackend, TestSite};

fn site_toml(
    backend: std::net::SocketAddr,
    certs: &[(&std::path::Path, &std::path::Path)],
) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| {
            format!(
                "{{ cert = {:?}, key = {:?} }}",
                c.display().to_string(),
                k.display().to_string()
            )
        })
        .collect();
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"web\"\n\
         tls = {{ certificates = [{}] }}\n\
         [pools.web]\nservers = [\"{backend}\"]\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_negotiates_h2() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["*.b.test"]);
    let be = TestBackend::start("b1").await;
    let site = TestSite::start(&site_toml(be.addr, &[(&a.cert, &a.key), (&b.cert, &b.key)])).await;

    let h1 = pki.client(&[b"http/1.1"]);
    let s = connect(&h1, site.addr, "a.test").await;
    assert_eq!(peer_leaf(&s), a.der, "exact name");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (_tx, status, body) = h1_get(s, "a.test", "/").await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"b1"[..]));
    let fwd = be.last_headers();
    assert_eq!(fwd["x-forwarded-proto"], "https");

    let s = connect(&h1, site.addr, "x.b.test").await;
    assert_eq!(peer_leaf(&s), b.der, "wildcard");
    let s = connect(
        &pki.client_without_verification(),
        site.addr,
        "unknown.test",
    )
    .await;
    assert_eq!(
        peer_leaf(&s),
        a.der,
        "an unknown name gets the first certificate"
    );

    let h2 = pki.client(&[b"h2", b"http/1.1"]);
    let s = connect(&h2, site.addr, "a.test").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("https://a.test/")
        .body(Full::<Bytes>::default())
        .expect("req");
    let resp = tx.send_request(req).await.expect("h2 response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"b1");
}

/// A ClientHello with legacy `version` and no supported_versions extension (so 3.2 offers
/// TLS 1.1 at most), with suites and extensions a TLS 1.2 server accepts.
fn client_hello(version: u8) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    ext(
        &mut exts,
        0x0000,
        &[0, 9, 0, 0, 6, b'a', b'.', b't', b'e', b's', b't'],
    );
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]);
    ext(&mut exts, 0x000b, &[1, 0]);
    ext(
        &mut exts,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    );
    let mut body = vec![0x03, version];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    // ECDHE-ECDSA-AES128-GCM, ECDHE-RSA-AES128-GCM, and two CBC suites of TLS 1.1.
    body.extend_from_slice(&[0x00, 0x08, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

/// Sends a ClientHello and returns the first record the server sends back.
async fn first_record(addr: std::net::SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(hello).await.expect("write");
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut head))
        .await
        .expect("the server answers")
        .expect("read");
    let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
    let mut rest = vec![0u8; len];
    tcp.read_exact(&mut rest).await.expect("record body");
    let mut rec = head.to_vec();
    rec.extend_from_slice(&rest);
    rec
}

#[tokio::test]
async fn tls_1_1_is_refused() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let be = TestBackend::start("b1").await;
    let site = TestSite::start(&site_toml(be.addr, &[(&a.cert, &a.key)])).await;
    let rec = first_record(site.addr, &client_hello(2)).await;
    assert_eq!(rec[0], 0x15, "an alert record, no ServerHello: {rec:?}");
    assert_eq!(rec[5], 2, "fatal");
    assert!(
        matches!(rec[6], 40 | 70),
        "handshake_failure or protocol_version: {rec:?}"
    );
    // The same hello offering TLS 1.2 gets a ServerHello: the version is what was refused.
    let rec = first_record(site.addr, &client_hello(3)).await;
    assert_eq!((rec[0], rec[5]), (0x16, 0x02), "a ServerHello: {rec:?}");
    assert_eq!(be.hits(), 0);
}

#[tokio::test]
async fn certificates_reload_without_dropping_connections() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let be = TestBackend::start("b1").await;
    let site = TestSite::start(&site_toml(be.addr, &[(&a.cert, &a.key)])).await;
    let c = pki.client(&[b"http/1.1"]);
    let s = connect(&c, site.addr, "a.test").await;
    assert_eq!(peer_leaf(&s), a.der);
    let (mut old, status, _) = h1_get(s, "a.test", "/").await;
    assert_eq!(status.as_u16(), 200);

    let renewed = pki.leaf("a", &["a.test"]); // same files, new key and certificate
    assert_ne!(renewed.der, a.der);
    assert_eq!(site.certs.reload().expect("reload"), 1);
    // A new client: the first one would resume its TLS session and see the old certificate.
    let s = connect(&pki.client(&[b"http/1.1"]), site.addr, "a.test").await;
    assert_eq!(
        peer_leaf(&s),
        renewed.der,
        "new handshakes get the new certificate"
    );
    let (status, body) = send(&mut old, "a.test", "/").await;
    assert_eq!(
        (status.as_u16(), &body[..]),
        (200, &b"b1"[..]),
        "open connection kept"
    );

    std::fs::write(&a.key, "not a key").expect("break the key");
    assert!(site.certs.reload().is_err());
    let s = connect(&pki.client(&[b"http/1.1"]), site.addr, "a.test").await;
    assert_eq!(
        peer_leaf(&s),
        renewed.der,
        "a failed reload keeps what was in use"
    );
}

#[tokio::test]
async fn tls_to_backends_is_verified_against_the_ca() {
    let pki = Pki::new();
    let leaf = pki.leaf("backend", &["backend.test"]);
    let backend = tls_backend(&leaf).await;
    let toml = |name: &str| {
        format!(
            "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"secure\"\n\
             [pools.secure]\nservers = [\"{backend}\"]\nretry = {{ attempts = 0 }}\n\
             tls = {{ ca = {:?}, server_name = \"{name}\" }}\n",
            pki.ca_file.display().to_string()
        )
    };
    let site = TestSite::start(&toml("backend.test")).await;
    let (status, who) = site.get("/").await;
    assert_eq!((status.as_u16(), who.as_str()), (200, "tls"));
    let wrong = TestSite::start(&toml("other.test")).await;
    let (status, _) = wrong.get("/").await;
    assert_eq!(
        status.as_u16(),
        502,
        "a certificate for another name is refused"
    );
}

#[tokio::test]
async fn status_and_metrics_show_certificates_and_handshakes() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test", "*.a.test"]);
    let be = TestBackend::start("b1").await;
    let toml = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n{}",
        site_toml(be.addr, &[(&a.cert, &a.key)])
    );
    let site = TestSite::start(&toml).await;
    let c = pki.client(&[b"h2", b"http/1.1"]);
    let _s = connect(&c, site.addr, "a.test").await;
    let status = site.status().await;
    let certs = &status["listeners"][0]["certificates"][0];
    assert_eq!(certs["names"], serde_json::json!(["a.test", "*.a.test"]));
    assert!(certs["not_after"].as_i64().is_some_and(|t| t > 0));
    // The server counts the handshake once it has read the client's last message.
    let metrics = || async {
        let url = site.admin_url("/metrics");
        let (_, _, body) = crate::support::site::get(&site.client, &url).await;
        String::from_utf8_lossy(&body).into_owned()
    };
    crate::support::poll_until(5, || async {
        metrics()
            .await
            .contains("meridian_site_tls_handshakes_total{alpn=\"h2\"")
    })
    .await;
    let text = metrics().await;
    assert!(text.contains("meridian_site_tls_certificate_expiry_seconds{"));
}
