//! A stand-in for a site balancer's `/health` endpoint: answers every request with a
//! configurable status and body, counts requests, and can be stopped (connections refused)
//! and restarted on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug)]
struct Shared {
    hits: AtomicU64,
    reply: Mutex<(u16, String)>,
}

/// A loopback HTTP server standing in for a site.
#[derive(Debug)]
pub(crate) struct HealthSite {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl HealthSite {
    /// Starts on 127.0.0.1 with an ephemeral port, answering `200 ok`.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut site = HealthSite {
            addr: listener.local_addr().expect("local addr"),
            shared: Arc::new(Shared {
                hits: AtomicU64::new(0),
                reply: Mutex::new((200, "ok".to_string())),
            }),
            running: None,
        };
        site.serve(listener);
        site
    }

    /// The URL of its health endpoint.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// Requests answered so far.
    pub(crate) fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// What every following request gets.
    pub(crate) fn reply(&self, status: u16, body: &str) {
        *self.shared.reply.lock().unwrap() = (status, body.to_string());
    }

    /// Answers with a site report.
    pub(crate) fn report(&self, status: &str, healthy: u32, total: u32, load: f64) {
        self.reply(
            200,
            &format!(
                r#"{{"status":"{status}","healthy_backends":{healthy},"total_backends":{total},"load":{load}}}"#
            ),
        );
    }

    /// Closes the listener and every connection: new connections are refused.
    pub(crate) async fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            task.await.expect("server task");
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tx, mut rx) = oneshot::channel();
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            // Dropping the set on stop aborts the connections in flight.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = shared.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |_req: Request<Incoming>| {
                                let shared = shared.clone();
                                async move { Ok::<_, Infallible>(answer(&shared)) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
            }
        });
        self.running = Some((tx, task));
    }
}

impl Drop for HealthSite {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}

fn answer(shared: &Shared) -> Response<Full<Bytes>> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let (status, body) = shared.reply.lock().unwrap().clone();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("valid status");
    resp
}

/// A listener that accepts connections and never answers: checks against it time out.
#[derive(Debug)]
pub(crate) struct Blackhole {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Blackhole {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        Blackhole { addr, task }
    }

    /// The URL of a health endpoint that never answers.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
