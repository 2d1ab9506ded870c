//! Keep-alive connections to one backend: a stack of idle HTTP/1.1 connections. A request takes
//! the most recently used connection (warmest, least likely to have been closed by the backend's
//! idle timer) or dials a new one; the response body hands it back when it ends.
//!
//! A connection is not a task of its own: the request that uses it drives it (its `Connection`
//! future is polled from the request's task while waiting for the response and while streaming
//! the body). That saves a task wake-up and two channel hops per request; an idle connection
//! needs no polling, and one the backend closed meanwhile is found out when it is next used
//! (the request comes back unsent and goes out on a new connection).

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::ReqBody;
use super::tls::{BackendStream, BackendTls};

/// Idle connections kept per backend.
const MAX_IDLE: usize = 256;

/// One HTTP/1.1 connection to a backend: the sending half and the connection state machine,
/// driven by whoever holds it.
#[derive(Debug)]
pub(crate) struct Conn {
    tx: SendRequest<ReqBody>,
    driver: Option<Connection<TokioIo<BackendStream>, ReqBody>>,
}

impl Conn {
    /// Lets the connection do its I/O; notes when it has ended.
    pub(crate) fn poll_drive(&mut self, cx: &mut Context<'_>) {
        if let Some(d) = &mut self.driver
            && let Poll::Ready(r) = Pin::new(d).poll(cx)
        {
            if let Err(e) = r {
                tracing::debug!(error = %e, "backend connection ended with an error");
            }
            self.driver = None;
        }
    }

    fn is_open(&self) -> bool {
        self.driver.is_some() && !self.tx.is_closed()
    }

    /// Waits until the connection can take a request; false when it has closed.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.poll_drive(cx);
            match self.tx.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(r.is_ok()),
                Poll::Pending if self.driver.is_none() => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Sends a request and waits for the response head, driving the connection meanwhile.
    /// A request that did not leave comes back in the error.
    pub(crate) async fn send(
        &mut self,
        req: Request<ReqBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ReqBody>>> {
        let mut fut = std::pin::pin!(self.tx.try_send_request(req));
        poll_fn(|cx| {
            self.poll_drive(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }
}

/// Why no connection could be had. The request has not left.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
    #[error("TLS handshake with {0}: {1}")]
    Tls(SocketAddr, std::io::Error),
}

/// The idle connections of one backend.
#[derive(Debug)]
pub(crate) struct ConnPool {
    addr: SocketAddr,
    idle: Mutex<Vec<(Box<Conn>, Instant)>>,
    /// TLS towards this server, set once when the site starts.
    tls: std::sync::OnceLock<BackendTls>,
}

impl ConnPool {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        ConnPool {
            addr,
            idle: Mutex::new(Vec::new()),
            tls: std::sync::OnceLock::new(),
        }
    }

    /// Makes new connections to this server speak TLS.
    pub(crate) fn set_tls(&self, tls: BackendTls) {
        let _ = self.tls.set(tls);
    }

    /// An idle connection younger than `max_idle`, ready for a request, if any.
    pub(crate) async fn checkout(&self, max_idle: Duration) -> Option<Box<Conn>> {
        loop {
            let (mut c, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if !c.is_open() || since.elapsed() > max_idle {
                continue;
            }
            if c.tx.is_ready() || c.ready().await {
                return Some(c);
            }
        }
    }

    /// Returns a connection after its exchange finished cleanly.
    pub(crate) fn checkin(&self, c: Box<Conn>) {
        if !c.is_open() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((c, Instant::now()));
        }
    }

    /// Closes every idle connection (the server was removed or drained).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Dials a new connection.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Box<Conn>, ConnectError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout(addr)),
            Ok(Err(e)) => return Err(ConnectError::Io(addr, e)),
            Ok(Ok(s)) => s,
        };
        // Small requests and responses: waiting for Nagle only adds latency.
        let _ = stream.set_nodelay(true);
        let stream = match self.tls.get() {
            None => BackendStream::Plain(stream),
            Some(tls) => match tokio::time::timeout(timeout, tls.connect(addr, stream)).await {
                Ok(Ok(s)) => BackendStream::Tls(Box::new(s)),
                Ok(Err(e)) => return Err(ConnectError::Tls(addr, e)),
                Err(_) => return Err(ConnectError::Timeout(addr)),
            },
        };
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(addr, e))?;
        // Boxed: the connection state is large and moves between the pool and requests.
        Ok(Box::new(Conn {
            tx,
            driver: Some(conn),
        }))
    }
}
