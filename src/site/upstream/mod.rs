//! Keep-alive connections to one backend: a stack of idle HTTP/1.1 connections. A request takes
//! the most recently used connection (warmest, least likely to have been closed by the backend's
//! idle timer) or dials a new one; the response body hands it back when it ends.
//!
//! The exchange is written and read here, on `httparse` (framing in [`codec`]), rather than
//! through hyper's client: a request is one buffer written with one `send(2)`, the response
//! head is parsed into headers that share the read buffer, and the body is read from the same
//! buffer by the response body the client is sent, with no channel, task or dispatcher between
//! the socket and the client (measured in docs/benchmarks.md, "Where the time goes"). A
//! connection is used by one request at a time and has no task while idle; one the backend
//! closed meanwhile is let go by the site's maintenance tick ([`ConnPool::sweep`]) or, at the
//! latest, when it is taken (its socket reads end-of-file).

pub(crate) mod codec;

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Incoming};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use self::codec::{Decoded, Framing, Head, Parsed, RequestHead};
use super::body::ReqBody;
use super::tls::{BackendStream, BackendTls};

/// Idle connections kept per backend.
const MAX_IDLE: usize = 256;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Largest write buffer a connection keeps between requests.
const MAX_KEPT_WBUF: usize = 16 * 1024;

/// One HTTP/1.1 connection to a backend.
#[derive(Debug)]
pub(crate) struct Conn {
    io: BackendStream,
    /// Bytes read and not yet consumed (a response head in progress, body bytes).
    rbuf: BytesMut,
    /// The request head (and a small body) being written; kept for its capacity.
    wbuf: Vec<u8>,
    /// A streamed request body still being sent while the response arrives.
    pump: Option<Pump>,
    /// The last response allows another request on this connection.
    reusable: bool,
    /// The response deadline of the exchange in progress. One timer per connection, moved
    /// forward by each request: a later deadline on a timer still pending is one atomic store,
    /// where a timer per request is an insert into and a removal from the runtime's wheel.
    /// A deadline that passes while the connection is idle wakes the task that last used it
    /// once (a spurious poll) and is armed again by the next request.
    deadline: Pin<Box<Sleep>>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Nothing reached the backend: here is the request body back.
    NotSent(ReqBody),
    /// The request (or part of it) left, then the exchange failed.
    Failed(io::Error),
    /// No response head by the deadline (the request may have reached the backend).
    TimedOut,
}

fn broken(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Conn {
    fn new(io: BackendStream) -> Self {
        Conn {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(1024),
            pump: None,
            reusable: true,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now())),
        }
    }

    /// An idle connection is usable when it holds no stray bytes and its socket has neither
    /// data nor end-of-file waiting. Without pending readiness this costs no system call.
    fn still_open(&mut self) -> bool {
        if !self.reusable || !self.rbuf.is_empty() {
            return false;
        }
        let mut scratch = [0u8; 1];
        let mut rb = ReadBuf::new(&mut scratch);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut rb),
            Poll::Pending
        )
    }

    /// Sends a request and reads the response head, giving up at `deadline`. A streamed body
    /// goes on being sent while the response body is read. The body of a request of which
    /// nothing was written comes back.
    pub(crate) async fn send(
        &mut self,
        head: &RequestHead,
        body: ReqBody,
        deadline: Instant,
    ) -> Result<Head, SendError> {
        self.deadline.as_mut().reset(deadline);
        // Head and a buffered body leave in one write.
        let out: &[u8] = match &body {
            ReqBody::Full(Some(b)) => {
                self.wbuf.clear();
                self.wbuf.extend_from_slice(&head.bytes);
                self.wbuf.extend_from_slice(b);
                &self.wbuf
            }
            _ => &head.bytes,
        };
        let mut written = 0;
        while written < out.len() {
            let r = poll_fn(
                |cx| match Pin::new(&mut self.io).poll_write(cx, &out[written..]) {
                    Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                        Poll::Ready(None)
                    }
                    p => p.map(Some),
                },
            )
            .await;
            let Some(r) = r else {
                return Err(SendError::TimedOut);
            };
            match r {
                Ok(n) if n > 0 => written += n,
                // The first write failed: the backend had closed the connection.
                _ if written == 0 => return Err(SendError::NotSent(body)),
                Ok(_) => return Err(SendError::Failed(io::ErrorKind::WriteZero.into())),
                Err(e) => return Err(SendError::Failed(e)),
            }
        }
        if self.wbuf.capacity() > MAX_KEPT_WBUF {
            // A large buffered body was sent: an idle connection does not keep its buffer.
            self.wbuf = Vec::new();
        }
        self.pump = match body {
            ReqBody::Stream(body) => Some(Pump::new(body, head.chunked)),
            _ => None,
        };
        let req = head;
        let head = poll_fn(|cx| {
            if let Some(p) = &mut self.pump {
                p.advance(cx, &mut self.io);
            }
            match poll_head(cx, &mut self.io, &mut self.rbuf, req) {
                Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                    Poll::Ready(Err(SendError::TimedOut))
                }
                p => p.map_err(SendError::Failed),
            }
        })
        .await?;
        self.reusable = head.keep_alive;
        Ok(head)
    }

    /// The connection may take the next request: the response ended cleanly, its framing and
    /// `Connection` allowed reuse and a streamed request body was sent whole.
    fn reusable(&self) -> bool {
        self.reusable && self.pump.as_ref().is_none_or(|p| p.done && !p.failed)
    }
}

/// Reads until a final response head is whole (interim 1xx responses are skipped).
fn poll_head(
    cx: &mut Context<'_>,
    io: &mut BackendStream,
    rbuf: &mut BytesMut,
    req: &RequestHead,
) -> Poll<io::Result<Head>> {
    loop {
        if !rbuf.is_empty() {
            match codec::parse_head(rbuf, &req.method, req.raw_response) {
                Ok(Parsed::Final(h)) => return Poll::Ready(Ok(h)),
                Ok(Parsed::Interim) => continue,
                Ok(Parsed::Partial) => {}
                Err(e) => return Poll::Ready(Err(broken(e))),
            }
        }
        if !ready!(poll_fill(cx, io, rbuf))? {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend closed the connection before a response",
            )));
        }
    }
}

/// Reads what the socket has into `rbuf`: true when bytes came, false at end-of-file.
fn poll_fill(
    cx: &mut Context<'_>,
    io: &mut BackendStream,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<bool>> {
    rbuf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(Pin::new(io), cx, rbuf).map_ok(|n| n > 0)
}

/// Sends a streamed request body, frame by frame, chunked when it has no declared length.
#[derive(Debug)]
struct Pump {
    body: Incoming,
    chunked: bool,
    pending: Vec<u8>,
    pos: usize,
    last: bool,
    done: bool,
    /// Writing failed (the backend stopped reading); what it answers is still read.
    failed: bool,
}

impl Pump {
    fn new(body: Incoming, chunked: bool) -> Self {
        Pump {
            body,
            chunked,
            pending: Vec::new(),
            pos: 0,
            last: false,
            done: false,
            failed: false,
        }
    }

    /// Moves the body along as far as it can go now. A backend may answer (and stop reading)
    /// before the body is whole: a failed write then only stops the pump (the connection will
    /// not be reused), and the answer, or the connection's end, is still read.
    fn advance(&mut self, cx: &mut Context<'_>, io: &mut BackendStream) {
        if self.failed {
            return;
        }
        if let Poll::Ready(Err(e)) = self.poll_inner(cx, io) {
            self.failed = true;
            tracing::debug!(error = %e, "backend stopped reading the request body");
        }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>, io: &mut BackendStream) -> Poll<io::Result<()>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.pos < self.pending.len() {
                match Pin::new(&mut *io).poll_write(cx, &self.pending[self.pos..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => self.pos += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
                continue;
            }
            self.pending.clear();
            self.pos = 0;
            if self.last {
                self.done = true;
                continue;
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Request trailers are not forwarded.
                    if let Ok(data) = frame.into_data() {
                        if self.chunked {
                            codec::encode_chunk(&mut self.pending, &data);
                        } else {
                            self.pending.extend_from_slice(&data);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(broken(e))),
                Poll::Ready(None) => {
                    if self.chunked {
                        self.pending.extend_from_slice(codec::LAST_CHUNK);
                    }
                    self.last = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A response body read from its backend connection as the client takes it.
#[derive(Debug)]
pub(crate) struct Upstream {
    conn: Option<Box<Conn>>,
    framing: Framing,
    /// The response head as received, when it was asked for raw.
    raw: Option<Bytes>,
}

impl Upstream {
    pub(crate) fn new(conn: Box<Conn>, framing: Framing, raw: Option<Bytes>) -> Self {
        Upstream {
            conn: Some(conn),
            framing,
            raw,
        }
    }

    /// The response head as received (status line and fields), when it was asked for raw.
    pub(crate) fn raw_head(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// Nothing more will come.
    pub(crate) fn is_end(&self) -> bool {
        self.conn.is_none() || self.framing.is_done()
    }

    pub(crate) fn size_hint(&self) -> hyper::body::SizeHint {
        match self.framing {
            Framing::Empty => hyper::body::SizeHint::with_exact(0),
            Framing::Length(n) => hyper::body::SizeHint::with_exact(n),
            _ => hyper::body::SizeHint::default(),
        }
    }

    /// The connection, when the exchange ended cleanly and it can be used again.
    pub(crate) fn reusable_conn(&mut self) -> Option<Box<Conn>> {
        let c = self.conn.take()?;
        (self.framing.is_done() && c.reusable()).then_some(c)
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let Some(conn) = self.conn.as_deref_mut() else {
            return Poll::Ready(None);
        };
        let Conn { io, rbuf, pump, .. } = conn;
        if let Some(p) = pump {
            p.advance(cx, io);
        }
        loop {
            match &mut self.framing {
                Framing::Empty | Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(left) if !rbuf.is_empty() => {
                    let take = (*left).min(rbuf.len() as u64) as usize;
                    *left -= take as u64;
                    return Poll::Ready(Some(Ok(rbuf.split_to(take).freeze())));
                }
                Framing::Chunked(state) => match codec::decode_chunked(state, rbuf) {
                    Ok(Decoded::Data(d)) => return Poll::Ready(Some(Ok(d))),
                    Ok(Decoded::End) => return Poll::Ready(None),
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return Poll::Ready(Some(Err(broken(e)))),
                },
                Framing::Close if !rbuf.is_empty() => {
                    return Poll::Ready(Some(Ok(rbuf.split().freeze())));
                }
                Framing::Length(_) | Framing::Close => {}
            }
            match ready!(poll_fill(cx, io, rbuf)) {
                Ok(true) => {}
                Ok(false) if self.framing == Framing::Close => {
                    // The body ends with the connection, which goes with it.
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(false) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "backend closed the connection in the middle of a response body",
                    ))));
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

/// An idle connection, idle since `since`, may take a request at `now`: it is younger than
/// `max_idle` and still open.
fn usable(c: &mut Conn, since: Instant, now: Instant, max_idle: Duration) -> bool {
    now.saturating_duration_since(since) <= max_idle && c.still_open()
}

/// Why no connection could be had. The request has not left.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect to {0} timed out")]
    Timeout(SocketAddr),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
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
    pub(crate) fn checkout(&self, max_idle: Duration) -> Option<Box<Conn>> {
        loop {
            let (mut c, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if usable(&mut c, since, Instant::now(), max_idle) {
                return Some(c);
            }
        }
    }

    /// Returns a connection after its exchange finished cleanly.
    pub(crate) fn checkin(&self, c: Box<Conn>) {
        if !c.reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((c, Instant::now()));
        }
    }

    /// Closes idle connections older than `max_idle` or that the backend closed meanwhile (its
    /// FIN has made the socket readable), so they do not sit in CLOSE_WAIT until the next
    /// request. Checking one costs no system call unless its socket has readiness pending.
    pub(crate) fn sweep(&self, max_idle: Duration) {
        let now = Instant::now();
        // Closed after the lock is released: a request taking a connection does not wait on
        // the system calls.
        let _stale: Vec<_> = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extract_if(.., |(c, since)| !usable(c, *since, now, max_idle))
            .collect();
    }

    /// Idle connections held now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
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
        Ok(Box::new(Conn::new(stream)))
    }
}
