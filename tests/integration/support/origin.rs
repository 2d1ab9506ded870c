//! A backend whose answers a test writes as a function of the request, counting the requests
//! it got (to tell a cache hit from a trip to the backend).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub type Handler = dyn Fn(&Request<Incoming>, usize) -> Response<Full<Bytes>> + Send + Sync;

#[derive(Debug)]
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Origin {
    /// Serves `f(request, n)` where n counts requests from 1.
    pub async fn start(
        f: impl Fn(&Request<Incoming>, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let f: Arc<Handler> = Arc::new(f);
        let h = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let f = Arc::clone(&f);
                let h = Arc::clone(&h);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                        let resp = f(&req, n);
                        async move { Ok::<_, hyper::Error>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Origin { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A response with a body and headers.
pub fn reply(body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    for (k, v) in headers {
        r.headers_mut().append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    r
}
