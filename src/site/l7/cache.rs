//! The in-memory response cache of a listener: moka holds the entries, bounded by the bytes
//! they take; this file keys them (route, host, path and query, then the values of the
//! request headers the response varies on), decides hit, stale or miss, and builds answers
//! from entries. What may be stored and for how long is in `freshness.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};
use tokio::time::Instant;

use super::freshness;
use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::CacheConfig;
use crate::site::body::{BoxError, RespBody};

/// A stored response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    stored: Instant,
    /// `Age` it arrived with.
    initial_age: Duration,
    ttl: Duration,
}

impl Entry {
    fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored)
    }

    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.ttl
    }

    /// Whether the backend can be asked if it changed.
    pub(crate) fn has_validator(&self) -> bool {
        self.headers.contains_key(header::ETAG) || self.headers.contains_key(header::LAST_MODIFIED)
    }
}

/// What the cache says about a request.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Not cacheable: forward, store nothing.
    Bypass,
    /// Forward; store the answer under this base key if it allows.
    Miss(u64),
    /// Answer from this entry.
    Fresh(Arc<Entry>),
    /// Revalidate this entry with the backend (conditional request), or replace it.
    Stale(u64, Arc<Entry>),
}

/// A listener's cache.
#[derive(Debug)]
pub(crate) struct Cache {
    cfg: CacheConfig,
    entries: moka::sync::Cache<u64, Arc<Entry>>,
    /// Base key → header names its responses vary on.
    vary: moka::sync::Cache<u64, Arc<Vec<HeaderName>>>,
}

/// Overhead counted per entry beside its body and headers.
const ENTRY_OVERHEAD: u64 = 256;

impl Cache {
    pub(crate) fn new(cfg: CacheConfig) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|_k: &u64, e: &Arc<Entry>| {
                let headers: usize = e
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len())
                    .sum();
                (e.body.len() as u64 + headers as u64 + ENTRY_OVERHEAD).min(u64::from(u32::MAX))
                    as u32
            })
            .build();
        let vary = moka::sync::Cache::builder().max_capacity(100_000).build();
        Cache { cfg, entries, vary }
    }

    /// The base key of a request: route, host and path with query.
    pub(crate) fn base_key(route: usize, host: &str, path_and_query: &str) -> u64 {
        let mut buf = Vec::with_capacity(host.len() + path_and_query.len() + 10);
        buf.extend_from_slice(&(route as u64).to_le_bytes());
        buf.extend_from_slice(host.to_ascii_lowercase().as_bytes());
        buf.push(0);
        buf.extend_from_slice(path_and_query.as_bytes());
        hash_bytes(DEFAULT_SEED, &buf)
    }

    fn key(base: u64, names: &[HeaderName], req: &HeaderMap) -> u64 {
        if names.is_empty() {
            return base;
        }
        let mut buf = base.to_le_bytes().to_vec();
        for n in names {
            for v in req.get_all(n) {
                buf.extend_from_slice(v.as_bytes());
                buf.push(b',');
            }
            buf.push(0);
        }
        hash_bytes(DEFAULT_SEED, &buf)
    }

    /// Looks a GET or HEAD request up.
    pub(crate) fn lookup(&self, base: u64, req: &HeaderMap, now: Instant) -> Lookup {
        let usage = freshness::request_use(req);
        if usage == freshness::RequestUse::Bypass {
            return Lookup::Bypass;
        }
        let Some(names) = self.vary.get(&base) else {
            return Lookup::Miss(base);
        };
        let Some(e) = self.entries.get(&Self::key(base, &names, req)) else {
            return Lookup::Miss(base);
        };
        if usage == freshness::RequestUse::Normal && e.is_fresh(now) {
            Lookup::Fresh(e)
        } else if e.has_validator() {
            Lookup::Stale(base, e)
        } else {
            Lookup::Miss(base)
        }
    }

    /// Forgets every variant of a base key (an unsafe method changed the resource).
    pub(crate) fn invalidate(&self, base: u64) {
        self.vary.invalidate(&base);
    }

    /// Stores a complete response if its headers allow; returns whether it did.
    pub(crate) fn store(
        &self,
        base: u64,
        req: &HeaderMap,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now: Instant,
    ) -> bool {
        let Some(ttl) = freshness::lifetime(status, headers) else {
            return false;
        };
        let Some(names) = freshness::vary_names(headers) else {
            return false;
        };
        if body.len() as u64 > self.cfg.max_object_bytes {
            return false;
        }
        let mut stored_headers = headers.clone();
        stored_headers.remove(header::AGE);
        let entry = Entry {
            status,
            headers: stored_headers,
            body,
            stored: now,
            initial_age: freshness::age(headers),
            ttl,
        };
        let key = Self::key(base, &names, req);
        self.vary.insert(base, Arc::new(names));
        self.entries.insert(key, Arc::new(entry));
        true
    }

    /// After a `304 Not Modified` to a revalidation: the entry with the new headers, fresh
    /// again if they allow, else dropped (`None`).
    pub(crate) fn refresh(
        &self,
        base: u64,
        req: &HeaderMap,
        old: &Entry,
        not_modified: &HeaderMap,
        now: Instant,
    ) -> Option<Arc<Entry>> {
        let mut headers = old.headers.clone();
        for name in not_modified.keys() {
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            headers.remove(name);
            for v in not_modified.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        if !self.store(base, req, old.status, &headers, old.body.clone(), now) {
            self.invalidate(base);
            return None;
        }
        let names = freshness::vary_names(&headers)?;
        self.entries.get(&Self::key(base, &names, req))
    }

    /// The answer to a request from an entry: `Age` set, body left out for HEAD, 304 when
    /// the client's `If-None-Match` names the entry.
    pub(crate) fn answer(
        e: &Entry,
        req: &HeaderMap,
        head: bool,
        now: Instant,
    ) -> Response<RespBody> {
        let not_modified = e
            .headers
            .get(header::ETAG)
            .is_some_and(|t| freshness::etag_matches(req, t.as_bytes()));
        let body = if head || not_modified {
            RespBody::Full(None)
        } else {
            RespBody::full(e.body.clone())
        };
        let mut r = Response::new(body);
        *r.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            e.status
        };
        *r.headers_mut() = e.headers.clone();
        if not_modified {
            r.headers_mut().remove(header::CONTENT_LENGTH);
        }
        r.headers_mut()
            .insert(header::AGE, HeaderValue::from(e.age(now).as_secs()));
        r
    }

    /// Entries and bytes held (after moka's pending housekeeping).
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    pub(crate) fn max_object(&self) -> u64 {
        self.cfg.max_object_bytes
    }
}

/// Called with the whole body once a response streamed to the client ended cleanly.
pub(crate) type OnComplete = Box<dyn FnOnce(Bytes) + Send>;

/// A response body that is also copied, up to a limit, for the cache.
pub(crate) struct Tee {
    inner: RespBody,
    buf: Option<BytesMut>,
    limit: usize,
    done: Option<OnComplete>,
}

impl Tee {
    pub(crate) fn new(inner: RespBody, limit: usize, done: OnComplete) -> Self {
        Tee {
            inner,
            buf: Some(BytesMut::new()),
            limit,
            done: Some(done),
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(d), Some(buf)) = (f.data_ref(), this.buf.as_mut()) {
                    if buf.len() + d.len() > this.limit {
                        this.buf = None;
                    } else {
                        buf.extend_from_slice(d);
                    }
                }
                if this.inner.is_end_stream() {
                    this.complete();
                }
            }
            Poll::Ready(None) => this.complete(),
            Poll::Ready(Some(Err(_))) => this.buf = None,
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Tee {
    fn complete(&mut self) {
        if let (Some(buf), Some(done)) = (self.buf.take(), self.done.take()) {
            done(buf.freeze());
        }
    }
}
