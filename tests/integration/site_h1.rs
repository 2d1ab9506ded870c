//! The client-side HTTP/1.1 path (`src/site/h1.rs`), spoken to over raw sockets: pipelining,
//! HEAD framing, `Connection: close`, and the hand-over to hyper in the middle of a connection
//! (a request with a body, HTTP/1.0, an absolute-form target, a head too large).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestBackend, TestSite};

fn toml(backend: &TestBackend) -> String {
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [\"{}\"]\n",
        backend.addr
    )
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer per entry of `head` (true: the answer to a HEAD request, which has no body
/// whatever its `Content-Length` says) from `s`, in order. Bodies are `Content-Length` framed.
async fn answers(s: &mut TcpStream, head: &[bool]) -> Vec<Answer> {
    let read = async {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while out.len() < head.len() {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut fields);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let status = r.code.expect("status");
                let len = if head[out.len()] {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .map_or(0, |(_, v)| v.parse::<usize>().expect("length"))
                };
                if buf.len() >= n + len {
                    let body = buf[n..n + len].to_vec();
                    buf.drain(..n + len);
                    out.push(Answer {
                        status,
                        headers,
                        body,
                    });
                    continue;
                }
            }
            let mut chunk = [0u8; 4096];
            let got = s.read(&mut chunk).await.expect("read");
            assert!(got > 0, "connection closed after {} answers", out.len());
            buf.extend_from_slice(&chunk[..got]);
        }
        assert!(buf.is_empty(), "bytes beyond the answers: {buf:?}");
        out
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("answers within 5 s")
}

/// The connection reaches end-of-file (the proxy closed it).
async fn closes(s: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed within 5 s")
        .expect("read");
    assert!(rest.is_empty(), "bytes after the last answer: {rest:?}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_head_has_no_body() {
    let b = TestBackend::start("bee").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("write");
    let a = answers(&mut s, &[false, true, false]).await;
    assert_eq!(
        a.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 200, 200]
    );
    assert_eq!(a[0].body, b"bee");
    assert_eq!(
        a[1].header("content-length"),
        Some("3"),
        "HEAD keeps the length"
    );
    assert_eq!(a[2].body, b"bee");
    assert_eq!(a[0].header("x-backend"), Some("bee"));
    assert!(a[0].header("date").is_some());
    assert_eq!(b.hits(), 3);
}

#[tokio::test]
async fn connection_close_is_answered_and_the_connection_closed() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let a = answers(&mut s, &[false]).await;
    assert_eq!(a[0].status, 200);
    assert_eq!(a[0].header("connection"), Some("close"));
    closes(&mut s).await;
    assert!(
        !b.last_headers().contains_key("connection"),
        "Connection is hop-by-hop"
    );
}

#[tokio::test]
async fn hyper_takes_over_mid_connection_for_a_body_and_keeps_serving() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    // A plain GET, then a POST with a body (handed over) pipelined behind it, then another GET
    // on the same connection (served by hyper from then on).
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo-len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .expect("write");
    let a = answers(&mut s, &[false, false]).await;
    assert_eq!((a[0].status, &a[0].body[..]), (200, &b"b"[..]));
    assert_eq!((a[1].status, &a[1].body[..]), (200, &b"5"[..]));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let a = answers(&mut s, &[false]).await;
    assert_eq!((a[0].status, &a[0].body[..]), (200, &b"b"[..]));
    assert_eq!(b.posts(), 1);
    assert_eq!(b.hits(), 3);
}

#[tokio::test]
async fn http_1_0_and_absolute_form_targets_are_served_by_hyper() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await
        .expect("write");
    let a = answers(&mut s, &[false]).await;
    assert_eq!((a[0].status, &a[0].body[..]), (200, &b"b"[..]));
    assert_eq!(b.last_headers()["host"], "example.com");
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("write");
    let a = answers(&mut s, &[false]).await;
    assert_eq!((a[0].status, &a[0].body[..]), (200, &b"b"[..]));
    closes(&mut s).await;
}

#[tokio::test]
async fn bad_requests_after_a_served_one_get_431_and_400_and_reach_no_backend() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(answers(&mut s, &[false]).await[0].status, 200);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    s.write_all(big.as_bytes()).await.expect("write");
    assert_eq!(answers(&mut s, &[false]).await[0].status, 431);
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
    )
    .await
    .expect("write");
    let a = answers(&mut s, &[false, false]).await;
    assert_eq!((a[0].status, a[1].status), (200, 400));
    assert_eq!(b.hits(), 2, "only the good requests reached the backend");
}

#[tokio::test]
async fn a_request_split_over_many_writes_is_served() {
    let b = TestBackend::start("b").await;
    let site = TestSite::start(&toml(&b)).await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = b"GET /split HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nX-Two: 2\r\n\r\n";
    for piece in req.chunks(7) {
        s.write_all(piece).await.expect("write");
        s.flush().await.expect("flush");
    }
    let a = answers(&mut s, &[false]).await;
    assert_eq!((a[0].status, &a[0].body[..]), (200, &b"b"[..]));
    let h = b.last_headers();
    assert_eq!(h["x-one"], "1");
    assert_eq!(h["x-two"], "2");
}

#[tokio::test]
async fn the_balancers_own_answer_to_head_has_no_body() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = l.local_addr().expect("addr");
    drop(l);
    let site = TestSite::start(&format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [\"{dead}\"]\n"
    ))
    .await;
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let a = answers(&mut s, &[true, false]).await;
    assert_eq!((a[0].status, a[1].status), (502, 502));
    assert_eq!(
        a[0].header("content-length"),
        Some(a[1].body.len().to_string().as_str()),
        "HEAD is told the length GET gets"
    );
    assert!(!a[1].body.is_empty());
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_however_it_arrives() {
    let b = TestBackend::start("b").await;
    // A limit that is not a multiple of the read size, so that a head just over it can be in
    // the buffer whole.
    let site = TestSite::start(&format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\nmax_header_bytes = 10000\n\
         [pools.p]\nservers = [\"{}\"]\n",
        b.addr
    ))
    .await;
    let head = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(n)
        )
    };
    let mut s = TcpStream::connect(site.addr).await.expect("connect");
    s.write_all(head(9_000).as_bytes()).await.expect("write");
    assert_eq!(answers(&mut s, &[false]).await[0].status, 200);
    s.write_all(head(10_100).as_bytes()).await.expect("write");
    assert_eq!(answers(&mut s, &[false]).await[0].status, 431);
    assert_eq!(b.hits(), 1);
}
