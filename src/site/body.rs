//! Body types of the proxy, as enums rather than boxes: a request body is empty, replayable
//! bytes or the client's stream; a response body is the balancer's own bytes or the backend's
//! stream, which hands its connection back to the pool and releases the server's slot when it
//! ends (so "in flight" lasts until the last byte, which least-connections and draining need).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::pool::Lease;
use super::upstream::{ConnPool, Upstream};

/// A request body towards a backend.
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// A buffered body (kept for replay on retry).
    Full(Option<Bytes>),
    /// The client's body, streamed.
    Stream(Incoming),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream(s) => s.size_hint(),
        }
    }
}

/// What to do when a proxied response body ends: return the connection to its pool, free the
/// server's slot.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) conns: Arc<ConnPool>,
    pub(crate) lease: Lease,
}

/// Errors of a response body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body transformed on its way to the client (compressed, copied into the cache).
pub(crate) type Layered = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

/// A response body towards the client.
pub(crate) enum RespBody {
    /// Bytes made by the balancer (errors, admin answers).
    Full(Option<Bytes>),
    /// A backend's body, read from its connection.
    Proxied(Upstream, Option<Completion>),
    /// A body with a transformation on top (only with listener features configured).
    Layered(Layered),
}

impl std::fmt::Debug for RespBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespBody::Full(b) => f.debug_tuple("Full").field(b).finish(),
            RespBody::Proxied(i, c) => f.debug_tuple("Proxied").field(i).field(c).finish(),
            RespBody::Layered(_) => f.write_str("Layered(..)"),
        }
    }
}

impl RespBody {
    /// A body of fixed bytes.
    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        RespBody::Full(Some(b.into()))
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Layered(b) => b.as_mut().poll_frame(cx),
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Proxied(inner, done) => {
                let r = inner.poll_data(cx);
                match &r {
                    Poll::Ready(None) => finish(inner, done, true),
                    Poll::Ready(Some(Ok(_))) if inner.is_end() => finish(inner, done, true),
                    Poll::Ready(Some(Err(_))) => finish(inner, done, false),
                    _ => {}
                }
                r.map(|o| o.map(|res| res.map(Frame::data).map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Proxied(inner, _) => inner.is_end(),
            RespBody::Layered(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespBody::Proxied(inner, _) => inner.size_hint(),
            RespBody::Layered(b) => b.size_hint(),
        }
    }
}

/// Ends a proxied exchange: on a clean end a reusable connection goes back to its pool; on an
/// error (or when the client goes away and the body is dropped) it is closed. The lease drops
/// here.
fn finish(inner: &mut Upstream, done: &mut Option<Completion>, clean: bool) {
    let Some(Completion { conns, lease }) = done.take() else {
        return;
    };
    if clean && let Some(c) = inner.reusable_conn() {
        conns.checkin(c);
    }
    drop(lease);
}
