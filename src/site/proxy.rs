//! The L7 request path: rewrite headers, pick a server, send on a pooled connection, retry where
//! it is safe, stream the answer back.
//!
//! Retry rules: a request that never left (connect failure, a pooled connection found closed)
//! may go to another server whatever its method; after it reached a backend only idempotent
//! methods are retried, on 5xx or a response timeout as configured, with a replayable body
//! (none, or buffered because it was at most `retry.body_cap`), within the pool's retry budget,
//! and never twice to the same server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};

use super::body::{Completion, ReqBody, RespBody};
use super::headers::{Client, RequestIds, add_forwarded, strip_hop_by_hop};
use super::l7::Features;
use super::pool::{Lease, PickError, Pool};
use super::upstream::codec::{Head, RequestHead};
use super::upstream::{Conn, SendError, Upstream};
use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::{ForwardedHeaders, HashKey};

/// Handles requests of one listener.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) pool: Arc<Pool>,
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) max_body: u64,
    /// Forwarding headers added.
    pub(crate) forwarded: ForwardedHeaders,
    /// Assign request ids.
    pub(crate) request_id: bool,
    /// Routing, rate limits, cache, compression; `None` keeps the plain path.
    pub(crate) features: Option<Arc<Features>>,
}

/// What one attempt on one server gave.
enum Outcome {
    Response(Head, Box<Conn>),
    /// The request never left; here is its body back.
    NotSent(ReqBody),
    Timeout,
    /// Sent, then the exchange failed.
    Failed,
}

/// A request ready to go to a pool: its head encoded once (every attempt sends the same bytes,
/// so a retry needs no copy of the headers), its body, and what choosing a server needs.
pub(crate) struct Prepared {
    pub(crate) head: RequestHead,
    pub(crate) body: Option<ReqBody>,
    pub(crate) replayable: bool,
    pub(crate) idempotent: bool,
    pub(crate) hash: u64,
    /// The server the client's affinity cookie names, if it has one.
    pub(crate) prefer: Option<u64>,
    /// The client came over TLS (affinity cookies are `Secure` then).
    pub(crate) secure: bool,
}

impl Proxy {
    /// Serves one client request.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        client: &Client,
    ) -> Response<RespBody> {
        if let Some(f) = &self.features {
            // Boxed: the feature path's state stays out of the plain path's future.
            return Box::pin(f.handle(self, req, client)).await;
        }
        let start = Instant::now();
        let resp = match self.prepare(&self.pool, req, client).await {
            Ok(p) => self.forward(&self.pool, p).await,
            Err(r) => return r,
        };
        self.pool
            .metrics
            .duration
            .observe(start.elapsed().as_secs_f64());
        resp
    }

    /// Sends a request the client-side HTTP/1.1 path prepared (`super::h1`) to the listener's
    /// pool.
    pub(crate) async fn handle_prepared(&self, p: Prepared) -> Response<RespBody> {
        let start = Instant::now();
        let resp = self.forward(&self.pool, p).await;
        self.pool
            .metrics
            .duration
            .observe(start.elapsed().as_secs_f64());
        resp
    }

    /// Rewrites the request for `pool` (headers, origin-form URI, hash key) and reads its body
    /// when it is small enough to replay; an answer instead when it cannot be forwarded.
    pub(crate) async fn prepare(
        &self,
        pool: &Pool,
        req: Request<Incoming>,
        client: &Client,
    ) -> Result<Prepared, Response<RespBody>> {
        let (mut parts, body) = req.into_parts();
        // Room for the five headers added below, so the map grows once, not per insert.
        parts.headers.reserve(5);
        let declared = content_length(&parts.headers);
        if self.max_body > 0 && declared.is_some_and(|n| n > self.max_body) {
            return Err(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ));
        }
        let host = match parts.headers.get(header::HOST) {
            Some(h) => Some(h.clone()),
            None => parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        };
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, client, host.as_ref(), self.forwarded);
        if let Some(h) = &host
            && !parts.headers.contains_key(header::HOST)
        {
            parts.headers.insert(header::HOST, h.clone());
        }
        if self.request_id {
            self.ids.ensure(&mut parts.headers);
        }
        let uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        let hash = if pool.needs_hash() {
            let field = |h: &header::HeaderName| parts.headers.get(h).map(HeaderValue::as_bytes);
            request_hash(pool, uri.path(), field, client.addr.ip())
        } else {
            0
        };
        let idempotent = is_idempotent(&parts.method);
        let cap = pool.cfg.retry.body_cap as u64;
        let body = if body.is_end_stream() {
            ReqBody::Empty
        } else if idempotent && declared.is_some_and(|n| n <= cap) {
            match Box::pin(Limited::new(body, cap as usize).collect()).await {
                Ok(b) => ReqBody::Full(Some(b.to_bytes())),
                Err(_) => {
                    return Err(plain(StatusCode::BAD_REQUEST, "cannot read request body\n"));
                }
            }
        } else {
            ReqBody::Stream(body)
        };
        let streamed = matches!(body, ReqBody::Stream(_));
        let prefer = pool
            .affinity
            .as_ref()
            .and_then(|a| a.preferred(&parts.headers));
        Ok(Prepared {
            head: RequestHead::encode(&parts.method, &uri, &parts.headers, streamed),
            body: Some(body),
            replayable: !streamed,
            idempotent,
            hash,
            prefer,
            secure: client.tls,
        })
    }

    /// Sends a prepared request to `pool`, retrying where it is safe.
    pub(crate) async fn forward(&self, pool: &Arc<Pool>, mut p: Prepared) -> Response<RespBody> {
        let retry = pool.cfg.retry;
        let affinity = pool.affinity.as_ref();
        let prefer = p.prefer;
        let attempts = 1 + retry.attempts as usize;
        // Servers tried so far (attempts ≤ 11): on the stack, no allocation per request.
        let mut tried = [usize::MAX; 11];
        let mut last: Option<Response<RespBody>> = None;
        let mut _budget = None;
        // A retry after a request that never left (connect failure) costs the backends nothing:
        // it is not counted against the retry budget, so losing a server never fails a request
        // that another server could take, however many requests were in flight to it.
        let mut never_left = false;
        for attempt in 0..attempts {
            if attempt > 0 && !never_left {
                match pool.try_retry() {
                    Some(g) => _budget = Some(g),
                    None => break,
                }
            }
            never_left = false;
            let preferred = match (affinity, prefer) {
                (Some(a), Some(k)) if attempt == 0 => pool.pick_server(|b| a.names(k, b)),
                _ => None,
            };
            let picked = match preferred {
                Some(l) => Ok(l),
                None => pool.pick_wait(p.hash, &tried[..attempt]).await,
            };
            let lease = match picked {
                Ok(l) => l,
                Err(e) if attempt == 0 => return unavailable(pool, e),
                Err(_) => break,
            };
            if attempt > 0 {
                pool.metrics.retries.inc();
            }
            tried[attempt] = lease.index;
            let more = attempt + 1 < attempts;
            let keep = more && p.idempotent && p.replayable && (retry.on_5xx || retry.on_timeout);
            let body = match (&p.body, p.replayable) {
                (Some(ReqBody::Full(b)), true) => ReqBody::Full(b.clone()),
                (Some(ReqBody::Empty), true) => ReqBody::Empty,
                _ => match p.body.take() {
                    Some(b) => b,
                    None => break,
                },
            };
            let sent = tokio::time::Instant::now();
            match attempt_on(pool, &lease, &p.head, body, sent).await {
                Outcome::Response(resp, tx) => {
                    let status = resp.status;
                    let failed = status.is_server_error();
                    pool.record(lease.index, !failed, Some(sent));
                    if failed && keep && retry.on_5xx {
                        lease.backend().metrics.count_status(status.as_u16());
                        last = Some(plain(StatusCode::BAD_GATEWAY, "bad gateway\n"));
                        continue;
                    }
                    let server = affinity.map(|a| a.key(&lease.backend().cfg.id));
                    let mut r = respond(resp, tx, lease);
                    if let (Some(a), Some(server)) = (affinity, server) {
                        a.answered(r.headers_mut(), prefer, server, p.secure);
                    }
                    return r;
                }
                Outcome::NotSent(body) => {
                    never_left = true;
                    pool.record(lease.index, false, None);
                    lease.backend().metrics.count_error();
                    // The request never left: put it back for the next server, any method.
                    p.body = Some(body);
                    last = Some(plain(
                        StatusCode::BAD_GATEWAY,
                        "bad gateway: cannot reach a server\n",
                    ));
                }
                Outcome::Timeout => {
                    pool.record(lease.index, false, None);
                    lease.backend().metrics.count_error();
                    last = Some(plain(StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"));
                    if !(keep && retry.on_timeout) {
                        break;
                    }
                }
                Outcome::Failed => {
                    pool.record(lease.index, false, None);
                    lease.backend().metrics.count_error();
                    last = Some(plain(StatusCode::BAD_GATEWAY, "bad gateway\n"));
                    if !(keep && retry.on_5xx) {
                        break;
                    }
                }
            }
        }
        last.unwrap_or_else(|| unavailable(pool, PickError::NoServer))
    }
}

/// The key a hashing pool places a request by: the client's address, the request path, or
/// a header's value (`field` looks it up), as the pool's `hash_key` says.
pub(crate) fn request_hash<'a>(
    pool: &Pool,
    path: &str,
    field: impl FnOnce(&header::HeaderName) -> Option<&'a [u8]>,
    ip: IpAddr,
) -> u64 {
    let ip_hash = || match ip {
        IpAddr::V4(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
        IpAddr::V6(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
    };
    match &pool.cfg.hash_key {
        HashKey::ClientIp => ip_hash(),
        HashKey::Path => hash_bytes(DEFAULT_SEED, path.as_bytes()),
        HashKey::Header(h) => match field(h) {
            Some(v) => hash_bytes(DEFAULT_SEED, v),
            None => ip_hash(),
        },
    }
}

/// One exchange with the leased server, started at `sent`: a pooled connection, else a new
/// one. A pooled connection that turns out closed before the request left is replaced once by a
/// new one.
async fn attempt_on(
    pool: &Pool,
    lease: &Lease,
    head: &RequestHead,
    mut body: ReqBody,
    sent: tokio::time::Instant,
) -> Outcome {
    let b = lease.backend();
    let t = pool.cfg.timeouts;
    let deadline = sent + t.response;
    let mut pooled = b.conns.checkout(t.idle);
    loop {
        let fresh = pooled.is_none();
        let mut conn = match pooled.take() {
            Some(c) => c,
            // Boxed: dialling is rare with keep-alive and its future is large.
            None => match Box::pin(b.conns.connect(t.connect)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(server = %b.cfg.id, error = %e, "connect failed");
                    return Outcome::NotSent(body);
                }
            },
        };
        match conn.send(head, body, deadline).await {
            Ok(head) => return Outcome::Response(head, conn),
            Err(SendError::TimedOut) => return Outcome::Timeout,
            Err(SendError::NotSent(b)) if !fresh => body = b,
            Err(SendError::NotSent(b)) => return Outcome::NotSent(b),
            Err(SendError::Failed(e)) => {
                tracing::debug!(server = %b.cfg.id, error = %e, "exchange failed");
                return Outcome::Failed;
            }
        }
    }
}

fn respond(head: Head, conn: Box<Conn>, lease: Lease) -> Response<RespBody> {
    let Head {
        status,
        mut headers,
        raw,
        framing,
        keep_alive: _,
    } = head;
    lease.backend().metrics.count_status(status.as_u16());
    strip_hop_by_hop(&mut headers);
    let conns = Arc::clone(&lease.backend().conns);
    let mut body = Upstream::new(conn, framing, raw);
    let done = if body.is_end() {
        // No body will be polled (HEAD, 204, 304, a zero length): the exchange is over now.
        if let Some(c) = body.reusable_conn() {
            conns.checkin(c);
        }
        drop(lease);
        None
    } else {
        Some(Completion { conns, lease })
    };
    let mut r = Response::new(RespBody::Proxied(body, done));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

fn unavailable(pool: &Pool, e: PickError) -> Response<RespBody> {
    pool.metrics.rejected.inc();
    let msg = match e {
        PickError::NoServer => "no server available\n",
        PickError::Full => "pool at its limit\n",
    };
    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// A short text answer made by the balancer.
pub(crate) fn plain(status: StatusCode, msg: &'static str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
