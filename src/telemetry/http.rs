//! A small HTTP/1.1 server for admin endpoints (metrics, status pages, JSON APIs). Not the
//! proxy path: admin traffic is light, so each request is answered from a function that
//! returns the whole body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request body an admin endpoint reads.
const MAX_BODY: usize = 64 * 1024;

/// A request as admin handlers see it: method, path, query and the whole body.
#[derive(Debug, Clone)]
pub struct AdminRequest {
    /// Method.
    pub method: hyper::Method,
    /// Path without the query.
    pub path: String,
    /// Query string (without `?`).
    pub query: String,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A handler's answer.
pub type AdminResponse = Response<Full<Bytes>>;

/// What answers admin requests.
pub type AdminHandler =
    Arc<dyn Fn(AdminRequest) -> Pin<Box<dyn Future<Output = AdminResponse> + Send>> + Send + Sync>;

/// Serves `handler` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    handler: AdminHandler,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handle(req, handler).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, handler: AdminHandler) -> AdminResponse {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    let r = AdminRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    };
    handler(r).await
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> AdminResponse {
    respond(status, "text/plain; charset=utf-8", body)
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> AdminResponse {
    match serde_json::to_vec_pretty(value) {
        Ok(v) => respond(status, "application/json", v),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// A response with a content type.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> AdminResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// The Prometheus text exposition of a registry.
pub fn metrics(registry: &Registry) -> AdminResponse {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    match enc.encode(&registry.gather(), &mut buf) {
        Ok(()) => respond(StatusCode::OK, enc.format_type(), buf),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// The value of `key` in a query string (percent-decoded, `+` as space).
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param("name=www.example.com&client=192.0.2.0%2F24", "client").as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(query_param("a=1&b=x+y", "b").as_deref(), Some("x y"));
        assert_eq!(query_param("a=1", "b"), None);
        assert_eq!(query_param("a=%4", "a").as_deref(), Some("%4"));
    }
}
