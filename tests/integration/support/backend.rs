//! A scriptable HTTP backend on 127.0.0.1:0. Answers `200 <name>` with `x-backend: <name>`;
//! `/health` answers per the health flag; `/hold` waits until the test releases it (a request
//! kept in flight without sleeps); `/slow` answers after the configured delay. The status of
//! ordinary answers and of POSTs can be changed at run time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

#[derive(Debug)]
pub struct State {
    pub name: String,
    pub hits: AtomicUsize,
    pub posts: AtomicUsize,
    pub status: AtomicU16,
    pub healthy: AtomicBool,
    pub held: AtomicUsize,
    pub release: Semaphore,
    pub slow_ms: AtomicU64,
    pub last_headers: Mutex<Option<HeaderMap>>,
    pub last_body_len: AtomicUsize,
}

#[derive(Debug)]
pub struct TestBackend {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl TestBackend {
    pub async fn start(name: &str) -> TestBackend {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve(l, name)
    }

    /// Serves on an existing listener (to bring a backend back on the same port).
    pub fn serve(l: TcpListener, name: &str) -> TestBackend {
        let addr = l.local_addr().expect("addr");
        let state = Arc::new(State {
            name: name.to_string(),
            hits: AtomicUsize::new(0),
            posts: AtomicUsize::new(0),
            status: AtomicU16::new(200),
            healthy: AtomicBool::new(true),
            held: AtomicUsize::new(0),
            release: Semaphore::new(0),
            slow_ms: AtomicU64::new(0),
            last_headers: Mutex::new(None),
            last_body_len: AtomicUsize::new(0),
        });
        let (stop, rx) = watch::channel(false);
        tokio::spawn(accept(l, Arc::clone(&state), rx));
        TestBackend { addr, state, stop }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn posts(&self) -> usize {
        self.state.posts.load(Ordering::SeqCst)
    }

    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    pub fn set_status(&self, s: u16) {
        self.state.status.store(s, Ordering::SeqCst);
    }

    pub fn set_healthy(&self, h: bool) {
        self.state.healthy.store(h, Ordering::SeqCst);
    }

    pub fn set_slow(&self, ms: u64) {
        self.state.slow_ms.store(ms, Ordering::SeqCst);
    }

    pub fn release(&self, n: usize) {
        self.state.release.add_permits(n);
    }

    pub fn last_headers(&self) -> HeaderMap {
        self.state
            .last_headers
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or_default()
    }

    /// Kills the backend: the listener closes and every open connection is dropped.
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept(l: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = l.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let state = Arc::clone(&state);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(Arc::clone(&state), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        let code = if state.healthy.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        return Ok(reply(&state, code, "health"));
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let is_post = req.method() == Method::POST;
    if is_post {
        state.posts.fetch_add(1, Ordering::SeqCst);
    }
    *state.last_headers.lock().expect("lock") = Some(req.headers().clone());
    let body = req.into_body().collect().await?.to_bytes();
    state.last_body_len.store(body.len(), Ordering::SeqCst);
    if path == "/hold" {
        state.held.fetch_add(1, Ordering::SeqCst);
        if let Ok(p) = state.release.acquire().await {
            p.forget();
        }
        state.held.fetch_sub(1, Ordering::SeqCst);
    }
    let slow = state.slow_ms.load(Ordering::SeqCst);
    if slow > 0 {
        // The backend's own speed, part of the scenario (not test synchronisation).
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    if path == "/echo-len" {
        return Ok(reply(&state, 200, &body.len().to_string()));
    }
    let code = state.status.load(Ordering::SeqCst);
    Ok(reply(&state, code, &state.name))
}

fn reply(state: &State, code: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("x-backend", state.name.parse().expect("header value"));
    r
}
