//! Keep-alive connections to one backend: a stack of idle HTTP/1.1 senders. A request takes the
//! most recently used connection (warmest, least likely to have been closed by the backend's
//! idle timer) or dials a new one; the response body hands it back when it ends.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::ReqBody;

/// Idle connections kept per backend.
const MAX_IDLE: usize = 256;

/// Why no connection could be had. The request has not left.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("handshake with {0}: {1}")]
    Handshake(SocketAddr, hyper::Error),
}

/// The idle connections of one backend.
#[derive(Debug)]
pub(crate) struct ConnPool {
    addr: SocketAddr,
    idle: Mutex<Vec<(SendRequest<ReqBody>, Instant)>>,
}

impl ConnPool {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        ConnPool {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection younger than `max_idle`, ready for a request, if any.
    pub(crate) async fn checkout(&self, max_idle: Duration) -> Option<SendRequest<ReqBody>> {
        loop {
            let (mut tx, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if tx.is_closed() || since.elapsed() > max_idle {
                continue;
            }
            if tx.is_ready() || tx.ready().await.is_ok() {
                return Some(tx);
            }
        }
    }

    /// Returns a connection after its exchange finished cleanly.
    pub(crate) fn checkin(&self, tx: SendRequest<ReqBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((tx, Instant::now()));
        }
    }

    /// Closes every idle connection (the server was removed or drained).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Dials a new connection.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<SendRequest<ReqBody>, ConnectError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout(addr)),
            Ok(Err(e)) => return Err(ConnectError::Io(addr, e)),
            Ok(Ok(s)) => s,
        };
        // Small requests and responses: waiting for Nagle only adds latency.
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Handshake(addr, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(backend = %addr, error = %e, "backend connection ended with an error");
            }
        });
        Ok(tx)
    }
}
