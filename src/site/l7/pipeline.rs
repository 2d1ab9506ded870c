//! The request path of a listener with features (see the order in `mod.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};

use super::cache::{Cache, Entry, Lookup, Tee};
use super::route::{RequestView, first_match, rewrite};
use super::{Features, Route, Target, freshness};
use crate::config::site::{Encoding, PathMatch};
use crate::site::body::RespBody;
use crate::site::headers::Client;
use crate::site::pool::Pool;
use crate::site::proxy::{Proxy, plain};

/// What the cache lookup left for after the backend's answer.
enum Pending {
    None,
    /// Store the answer if it allows (request headers kept for `Vary`).
    Store(u64, HeaderMap),
    /// A conditional request went out for this entry.
    Revalidate(u64, HeaderMap, Arc<Entry>),
    /// An unsafe method: forget the resource once it succeeded.
    Invalidate(u64),
}

impl Features {
    pub(crate) async fn handle(
        &self,
        proxy: &Proxy,
        mut req: Request<Incoming>,
        client: &Client,
    ) -> Response<RespBody> {
        let start = Instant::now();
        let view = RequestView::of(&req);
        let route = first_match(&self.rules, &view).map(|i| (i, &self.routes[i]));
        let host = view.host.to_string();
        let (route_no, limiter, limited) = match route {
            Some((i, r)) => {
                r.routed.inc();
                let (l, c) = match &r.limit {
                    Some(l) => (Some(l), &r.limited),
                    None => (self.limit.as_ref(), &self.default_limited),
                };
                (i + 1, l, c)
            }
            None if self.default.is_some() => {
                self.default_routed.inc();
                (0, self.limit.as_ref(), &self.default_limited)
            }
            None => {
                self.unrouted.inc();
                return plain(StatusCode::NOT_FOUND, "no route for this request\n");
            }
        };
        if let Some(l) = limiter
            && let Err(wait) = l.check(req.headers(), client.addr.ip())
        {
            limited.inc();
            return too_many(wait);
        }
        let (pool, split_cookie) = self.pick_pool(route.map(|r| r.1), &req, client);
        let Some(pool) = pool else {
            return plain(StatusCode::NOT_FOUND, "no route for this request\n");
        };
        let original = req.uri().path_and_query().map(|pq| pq.as_str().to_string());
        if let Some((_, r)) = route {
            apply_rewrite(r, &mut req);
        }
        let coding = self
            .compress
            .as_ref()
            .and_then(|c| c.negotiate(req.headers()));
        let head = req.method() == Method::HEAD;
        let base = Cache::base_key(route_no, &host, original.as_deref().unwrap_or("/"));
        let pending = match self.cache_lookup(base, &mut req) {
            Ok(p) => p,
            Err(e) => {
                return self.finish(
                    Cache::answer(&e, req.headers(), head, now()),
                    coding,
                    head,
                    split_cookie,
                );
            }
        };
        let resp = match proxy.prepare(&pool, req, client).await {
            Ok(p) => proxy.forward(&pool, p).await,
            Err(r) => r,
        };
        pool.metrics.duration.observe(start.elapsed().as_secs_f64());
        let resp = self.after_cache(pending, resp, head);
        self.finish(resp, coding, head, split_cookie)
    }

    fn pick_pool(
        &self,
        route: Option<&Route>,
        req: &Request<Incoming>,
        client: &Client,
    ) -> (Option<Arc<Pool>>, Option<HeaderValue>) {
        match route.map(|r| &r.target) {
            None => (self.default.clone(), None),
            Some(Target::Pool(p)) => (Some(Arc::clone(p)), None),
            Some(Target::Split(s, pools, counts)) => {
                let c = s.choose(req.headers(), client.addr.ip(), client.tls, rand::random());
                counts[c.variant].inc();
                (pools.get(c.variant).cloned(), c.set_cookie)
            }
        }
    }

    /// `Err(entry)`: answer from the cache at once.
    fn cache_lookup(&self, base: u64, req: &mut Request<Incoming>) -> Result<Pending, Arc<Entry>> {
        let Some(cache) = &self.cache else {
            return Ok(Pending::None);
        };
        let m = &self.cache_counts;
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            if !method.is_safe() {
                return Ok(Pending::Invalidate(base));
            }
            return Ok(Pending::None);
        }
        let get = method == Method::GET;
        match cache.lookup(base, req.headers(), now()) {
            Lookup::Bypass => {
                m.bypass.inc();
                Ok(Pending::None)
            }
            Lookup::Fresh(e) => {
                m.hit.inc();
                Err(e)
            }
            Lookup::Miss(base) => {
                m.miss.inc();
                Ok(if get {
                    Pending::Store(base, req.headers().clone())
                } else {
                    Pending::None
                })
            }
            Lookup::Stale(base, e) => {
                let own = req.headers().contains_key(header::IF_NONE_MATCH)
                    || req.headers().contains_key(header::IF_MODIFIED_SINCE);
                if own || !get {
                    // The client's own conditional (or a HEAD) goes through as it is.
                    m.miss.inc();
                    return Ok(if get {
                        Pending::Store(base, req.headers().clone())
                    } else {
                        Pending::None
                    });
                }
                let kept = req.headers().clone();
                let h = req.headers_mut();
                if let Some(t) = e.headers.get(header::ETAG) {
                    h.insert(header::IF_NONE_MATCH, t.clone());
                }
                if let Some(t) = e.headers.get(header::LAST_MODIFIED) {
                    h.insert(header::IF_MODIFIED_SINCE, t.clone());
                }
                Ok(Pending::Revalidate(base, kept, e))
            }
        }
    }

    fn after_cache(
        &self,
        pending: Pending,
        resp: Response<RespBody>,
        head: bool,
    ) -> Response<RespBody> {
        let Some(cache) = &self.cache else {
            return resp;
        };
        let m = &self.cache_counts;
        match pending {
            Pending::None => resp,
            Pending::Invalidate(base) => {
                if resp.status().is_success() || resp.status().is_redirection() {
                    cache.invalidate(base);
                }
                resp
            }
            Pending::Revalidate(base, req, entry) if resp.status() == StatusCode::NOT_MODIFIED => {
                match cache.refresh(base, &req, &entry, resp.headers(), now()) {
                    Some(e) => {
                        m.revalidated.inc();
                        Cache::answer(&e, &req, head, now())
                    }
                    None => {
                        // It may no longer be stored: answer once from what we had.
                        m.stale.inc();
                        Cache::answer(&entry, &req, head, now())
                    }
                }
            }
            Pending::Revalidate(base, req, _) => {
                m.stale.inc();
                cache.invalidate(base);
                self.tee(cache, base, req, resp)
            }
            Pending::Store(base, req) => self.tee(cache, base, req, resp),
        }
    }

    /// Copies a storable answer into the cache as it streams to the client.
    fn tee(
        &self,
        cache: &Arc<Cache>,
        base: u64,
        req: HeaderMap,
        resp: Response<RespBody>,
    ) -> Response<RespBody> {
        let status = resp.status();
        if freshness::lifetime(status, resp.headers()).is_none() {
            return resp;
        }
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cache.max_object()) {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let headers = parts.headers.clone();
        let store = Arc::clone(cache);
        let stored = self.cache_counts.stored.clone();
        let done = Box::new(move |bytes| {
            if store.store(base, &req, status, &headers, bytes, now()) {
                stored.inc();
            }
        });
        let limit = usize::try_from(cache.max_object()).unwrap_or(usize::MAX);
        let body = RespBody::Layered(Box::pin(Tee::new(body, limit, done)));
        Response::from_parts(parts, body)
    }

    fn finish(
        &self,
        resp: Response<RespBody>,
        coding: Option<Encoding>,
        head: bool,
        split_cookie: Option<HeaderValue>,
    ) -> Response<RespBody> {
        let mut resp = match &self.compress {
            Some(c) => {
                let (r, used) = c.apply(coding, head, resp);
                if let Some(i) = used.and_then(|e| Encoding::ALL.iter().position(|x| *x == e)) {
                    self.compressed[i].inc();
                }
                r
            }
            None => resp,
        };
        if let Some(c) = split_cookie {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }
}

fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

fn apply_rewrite(r: &Route, req: &mut Request<Incoming>) {
    let (Some(to), Some(PathMatch::Prefix(from))) = (&r.rule.rewrite_prefix, &r.rule.path) else {
        return;
    };
    let uri = req.uri();
    let new = rewrite(uri.path(), uri.query(), from, to);
    let mut parts = uri.clone().into_parts();
    match new.parse() {
        Ok(pq) => {
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
        Err(e) => tracing::debug!(error = %e, "rewritten path is not a valid URI; left as it was"),
    }
}

fn too_many(wait: Duration) -> Response<RespBody> {
    let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}
