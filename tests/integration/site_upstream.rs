//! The backend side of the L7 proxy, against a scripted raw-TCP backend: response framing
//! (chunked, close-delimited, both headers, bad lengths), interim responses, connection reuse
//! and its limits, a backend that closes idle connections, request bodies sent chunked, and an
//! answer that comes before the request body was read, and the response timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::support::{TestSite, request};

/// A keep-alive answer with the body `ok`.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// What the scripted backend does with each request it reads.
#[derive(Clone)]
struct Step {
    /// Bytes written back.
    reply: &'static [u8],
    /// Close the connection after replying.
    close: bool,
    /// Reply as soon as the head is read, without reading the body.
    early: bool,
    /// Never reply (the connection stays open).
    silent: bool,
}

fn reply(bytes: &'static [u8]) -> Step {
    Step {
        reply: bytes,
        close: false,
        early: false,
        silent: false,
    }
}

/// Reads the request and never answers.
fn no_answer() -> Step {
    Step {
        silent: true,
        ..reply(b"")
    }
}

/// Replies, then closes the connection.
fn reply_and_close(bytes: &'static [u8]) -> Step {
    Step {
        close: true,
        ..reply(bytes)
    }
}

/// A backend on a raw socket that answers the n-th request with the n-th step (the last
/// repeats) and records what it received.
struct Scripted {
    addr: String,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Scripted {
    async fn start(steps: Vec<Step>) -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let steps = Arc::new(steps);
        let (c, r) = (Arc::clone(&connections), Arc::clone(&received));
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(
                    s,
                    Arc::clone(&steps),
                    Arc::clone(&next),
                    Arc::clone(&r),
                ));
            }
        });
        Scripted {
            addr,
            connections,
            received,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request (head, then a body by Content-Length or chunked) unless `early`.
async fn serve(
    mut s: TcpStream,
    steps: Arc<Vec<Step>>,
    next: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let n = next.fetch_add(1, Ordering::SeqCst);
        let step = steps[n.min(steps.len() - 1)].clone();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut end = head_end;
        if !step.early {
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                while buf.len() < head_end + len {
                    let mut chunk = [0u8; 65536];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                end = head_end + len;
            } else if head.contains("transfer-encoding: chunked") {
                end = loop {
                    if let Some(i) = find(&buf[head_end..], b"\r\n0\r\n\r\n") {
                        break head_end + i + 7;
                    }
                    let mut chunk = [0u8; 65536];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                };
            }
        }
        received.lock().await.push(buf[..end].to_vec());
        buf.drain(..end);
        if step.silent {
            std::future::pending::<()>().await;
        }
        if s.write_all(step.reply).await.is_err() {
            return;
        }
        if step.close {
            let _ = s.shutdown().await;
            return;
        }
    }
}

fn site_toml(backend: &str, extra: &str) -> String {
    format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [\"{backend}\"]\n{extra}\n"
    )
}

async fn get(site: &TestSite, path: &str) -> (StatusCode, hyper::HeaderMap, Bytes) {
    request(
        &site.client,
        Request::get(site.url(path))
            .body(Full::default())
            .expect("req"),
    )
    .await
}

#[tokio::test]
async fn a_chunked_response_is_decoded_and_its_connection_reused() {
    let b = Scripted::start(vec![reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    for _ in 0..3 {
        let (s, h, body) = get(&site, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&body[..], b"hello world");
        assert!(h.get("transfer-encoding").is_none_or(|v| v == "chunked"));
    }
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        1,
        "one backend connection for three sequential requests"
    );
}

#[tokio::test]
async fn a_close_delimited_response_is_read_to_the_end_and_not_reused() {
    let b = Scripted::start(vec![reply_and_close(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    for _ in 0..2 {
        let (s, _, body) = get(&site, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&body[..], b"until the close");
    }
    assert_eq!(b.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let b = Scripted::start(vec![reply(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    let (s, _, body) = get(&site, "/").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(&body[..], b"ok");
}

#[tokio::test]
async fn both_length_headers_mean_chunked_and_no_reuse() {
    let b = Scripted::start(vec![reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\nsafe\r\n0\r\n\r\n",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    for _ in 0..2 {
        let (s, _, body) = get(&site, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&body[..], b"safe");
    }
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        2,
        "a response with both framings is not followed on the same connection"
    );
}

#[tokio::test]
async fn malformed_responses_get_502() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd"[..],
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"[..],
    ] {
        let b = Scripted::start(vec![reply_and_close(Box::leak(
            bad.to_vec().into_boxed_slice(),
        ))])
        .await;
        let site = TestSite::start(&site_toml(&b.addr, "")).await;
        let (s, _, _) = get(&site, "/").await;
        assert_eq!(
            s,
            StatusCode::BAD_GATEWAY,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn a_connection_the_backend_closed_while_idle_is_not_used() {
    // Every answer closes its connection after a keep-alive response, as a backend whose idle
    // timer fired would: the next request must go out on a new connection, not fail.
    let b = Scripted::start(vec![reply_and_close(OK)]).await;
    let site = TestSite::start(&site_toml(&b.addr, "retry = { attempts = 0 }")).await;
    for i in 0..5 {
        let (s, _, body) = get(&site, "/").await;
        assert_eq!(s, StatusCode::OK, "request {i}");
        assert_eq!(&body[..], b"ok");
        // The backend's FIN reaches the proxy before the next request is sent.
        crate::support::poll_until(5, || async {
            b.connections.load(Ordering::SeqCst) == i + 1
        })
        .await;
    }
}

#[tokio::test]
async fn a_streamed_body_without_length_goes_chunked_and_whole() {
    let b = Scripted::start(vec![reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    let stream = TcpStream::connect(site.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let body = Chunks(
        (0..20)
            .map(|i| Bytes::from(vec![b'a' + i as u8; 1000]))
            .collect(),
    );
    let req = Request::post(format!("http://{}/up", site.addr))
        .body(body)
        .expect("req");
    let resp = tx.send_request(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let got = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&got[..], b"done");
    let received = b.received.lock().await;
    let raw = &received[0];
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(!text.contains("content-length"), "{text}");
    // Decode what the backend got: twenty chunks of 1,000 bytes, in order.
    let head_end = find(raw, b"\r\n\r\n").expect("head") + 4;
    let mut rest = &raw[head_end..];
    let mut data = Vec::new();
    loop {
        let line = find(rest, b"\r\n").expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line]).expect("ascii"), 16)
            .expect("hex size");
        rest = &rest[line + 2..];
        if size == 0 {
            break;
        }
        data.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    let want: Vec<u8> = (0..20).flat_map(|i| vec![b'a' + i as u8; 1000]).collect();
    assert_eq!(data, want);
}

/// A request body of several frames and no declared length (so the client sends it chunked).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn an_answer_before_the_body_was_read_reaches_the_client() {
    // The backend refuses a large upload from its head alone and closes.
    let b = Scripted::start(vec![Step {
        early: true,
        ..reply_and_close(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n",
        )
    }])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    let body = Bytes::from(vec![1u8; 8 << 20]);
    let (s, _, out) = request(
        &site.client,
        Request::post(site.url("/upload"))
            .body(Full::new(body))
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(&out[..], b"too big\n");
}

#[tokio::test]
async fn a_small_body_is_sent_with_its_head_and_replayed_on_a_retry() {
    // The first backend fails the exchange after reading the request; the PUT (idempotent,
    // body under the replay cap) goes to the second with the same bytes.
    let bad = Scripted::start(vec![reply_and_close(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    )])
    .await;
    let good = Scripted::start(vec![reply(OK)]).await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\nservers = [\"{}\", \"{}\"]\n",
        bad.addr, good.addr
    );
    let site = TestSite::start(&toml).await;
    let payload = Bytes::from_static(b"{\"key\": \"value\"}");
    for _ in 0..2 {
        let (s, _, out) = request(
            &site.client,
            Request::put(site.url("/item"))
                .body(Full::new(payload.clone()))
                .expect("req"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&out[..], b"ok");
    }
    let sent = good.received.lock().await;
    assert_eq!(sent.len(), 2, "both PUTs answered by the good server");
    for raw in sent.iter() {
        assert!(raw.starts_with(b"PUT /item HTTP/1.1\r\n"));
        assert!(
            raw.ends_with(b"\r\n\r\n{\"key\": \"value\"}"),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    // Round robin sent at least one of them to the failing server first: a retry happened.
    assert!(!bad.received.lock().await.is_empty());
}

#[tokio::test]
async fn the_response_timeout_holds_on_a_reused_connection_and_after_an_idle_spell() {
    // One connection serves all three requests: its timer is moved forward by each request,
    // and it fires while the connection sits idle in between.
    let b = Scripted::start(vec![reply(OK), reply(OK), no_answer()]).await;
    let timeout = std::time::Duration::from_millis(300);
    let site = TestSite::start(&site_toml(
        &b.addr,
        "timeouts = { response = \"300ms\" }\nretry = { attempts = 0 }",
    ))
    .await;
    let (s, _, _) = get(&site, "/").await;
    assert_eq!(s, StatusCode::OK);
    // The scenario is time passing: the first request's deadline goes by while the connection
    // is idle, and must not cut the next request short.
    tokio::time::sleep(timeout + std::time::Duration::from_millis(100)).await;
    let (s, _, body) = get(&site, "/").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "an expired deadline of an earlier request"
    );
    assert_eq!(&body[..], b"ok");
    let asked = std::time::Instant::now();
    let (s, _, _) = get(&site, "/").await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        asked.elapsed() >= timeout,
        "504 after {:?}, before the response timeout",
        asked.elapsed()
    );
    assert_eq!(b.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_get_that_times_out_is_retried_on_another_server() {
    let silent = Scripted::start(vec![no_answer()]).await;
    let ok = Scripted::start(vec![reply(OK)]).await;
    let toml = format!(
        "[[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"p\"\n[pools.p]\n\
         servers = [\"{}\", \"{}\"]\ntimeouts = {{ response = \"200ms\" }}\n\
         retry = {{ attempts = 1, on = [\"timeout\"] }}\n",
        silent.addr, ok.addr
    );
    let site = TestSite::start(&toml).await;
    for i in 0..3 {
        let (s, _, body) = get(&site, "/").await;
        assert_eq!(s, StatusCode::OK, "request {i}");
        assert_eq!(&body[..], b"ok");
    }
    assert!(
        !silent.received.lock().await.is_empty(),
        "round robin sent at least one request to the silent server first"
    );
}

/// The value of the one `meridian_site_idle_connections` series of a one-server site.
async fn idle_connections(site: &TestSite) -> Option<u64> {
    let (_, _, body) = crate::support::site::get(&site.client, &site.admin_url("/metrics")).await;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with("meridian_site_idle_connections{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn an_idle_connection_the_backend_closed_is_let_go_without_waiting_for_a_request() {
    // The first answer keeps the connection open: it is held idle. The second closes it after
    // answering: the proxy notices the close while idle, with no request to take it.
    let b = Scripted::start(vec![reply(OK), reply_and_close(OK)]).await;
    let site = TestSite::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n{}",
        site_toml(&b.addr, "")
    ))
    .await;
    let (s, _, _) = get(&site, "/").await;
    assert_eq!(s, StatusCode::OK);
    crate::support::poll_until(5, || async { idle_connections(&site).await == Some(1) }).await;
    let (s, _, _) = get(&site, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b.connections.load(Ordering::SeqCst),
        1,
        "the idle one was reused"
    );
    crate::support::poll_until(5, || async { idle_connections(&site).await == Some(0) }).await;
}

#[tokio::test]
async fn hop_by_hop_response_fields_stay_behind() {
    let b = Scripted::start(vec![reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\n\
          X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-End: 2\r\n\r\nok",
    )])
    .await;
    let site = TestSite::start(&site_toml(&b.addr, "")).await;
    let (s, h, body) = get(&site, "/").await;
    assert_eq!((s, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(h["x-end"], "2");
    for gone in ["x-hop", "keep-alive", "proxy-authenticate", "connection"] {
        assert!(!h.contains_key(gone), "{gone} was passed on: {h:?}");
    }
    assert_eq!(h["content-length"], "2");
}
