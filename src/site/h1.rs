//! HTTP/1.1 from clients, on `httparse`, for requests without a body: the head is parsed in
//! the connection's read buffer and the backend's request head is written straight from its
//! fields (`headers::encode_request`), the response head straight from the backend's, and the
//! response body is copied as it arrives, head and first bytes in one write. No `HeaderMap`
//! per request, no dispatcher or service future between the socket and the proxy.
//!
//! Everything else — a request with a body, `Expect`, `Upgrade`, HTTP/1.0, a target that is not
//! a plain origin-form path, a head that is malformed or too large, the HTTP/2 preface, a
//! listener with routing or other features — is handed to hyper, with the bytes read so far
//! ([`Rewind`]), and hyper serves the connection from there on. hyper also answers every
//! malformed request (400, 431), so the rules for what is refused are hyper's alone.

use std::future::poll_fn;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Body;
use hyper::header;
use hyper::{HeaderMap, Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::body::{ReqBody, RespBody};
use super::headers::{Client, Rewrite, encode_request, encode_response_fields};
use super::proxy::{Prepared, Proxy, is_idempotent, plain, request_hash};
use super::serve::Activity;
use super::upstream::codec::{LAST_CHUNK, RequestHead};

/// The most header fields in a request served here (hyper's own limit, which answers 431 above
/// it once handed the request).
const MAX_FIELDS: usize = 100;
/// The most names a request's `Connection` header may list and still be served here.
const MAX_LISTED: usize = 8;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Response bytes gathered before a write; a larger piece of body is written on its own.
const MAX_GATHER: usize = 64 * 1024;

/// What a connection's driver and its request loop share.
#[derive(Debug, Default)]
pub(crate) struct Door {
    /// Part of a request has arrived, or a request is being answered.
    pub(crate) busy: AtomicBool,
    /// Answer what is in progress with `Connection: close`, then close.
    pub(crate) closing: AtomicBool,
}

/// How the request loop ended.
pub(crate) enum Served<I> {
    /// The connection is done.
    Closed,
    /// hyper takes the connection from here, starting with the bytes already read.
    Handover(Rewind<I>),
}

/// A request this path serves.
struct Ready {
    /// Length of its head in the read buffer.
    len: usize,
    prepared: Prepared,
    /// A HEAD request: the response has no body, whatever its head says.
    head_only: bool,
    /// The client asked to close after this response.
    close: bool,
}

enum Parse {
    Partial,
    Ready(Ready),
    Handover,
}

/// Serves requests on one client connection until it closes or a request needs hyper.
pub(crate) async fn serve<I>(
    mut io: I,
    proxy: &ArcSwap<Proxy>,
    client: &Client,
    activity: &Activity,
    door: &Door,
    max_head: usize,
) -> Served<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = Vec::with_capacity(READ_CHUNK);
    loop {
        // Read until a whole head is in (pipelined requests may be in already).
        let (ready, proxy) = loop {
            if !rbuf.is_empty() {
                let proxy = proxy.load_full();
                match parse(&rbuf, &proxy, client) {
                    Parse::Ready(r) if r.len <= max_head => break (r, proxy),
                    Parse::Handover => return Served::Handover(Rewind::new(rbuf.freeze(), io)),
                    // Whole or not, a head larger than allowed is refused here, to the byte
                    // (hyper checks its buffer only while a head is incomplete).
                    Parse::Ready(_) => return too_large(io, &mut wbuf).await,
                    Parse::Partial if rbuf.len() > max_head => {
                        return too_large(io, &mut wbuf).await;
                    }
                    Parse::Partial => {}
                }
            } else if door.closing.load(Ordering::Relaxed) {
                return Served::Closed;
            }
            door.busy.store(!rbuf.is_empty(), Ordering::Relaxed);
            rbuf.reserve(READ_CHUNK);
            match io.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return Served::Closed,
                Ok(_) => {}
            }
        };
        door.busy.store(true, Ordering::Relaxed);
        rbuf.advance(ready.len);
        activity.started.fetch_add(1, Ordering::Relaxed);
        let resp = proxy.handle_prepared(ready.prepared).await;
        drop(proxy);
        let close = ready.close || door.closing.load(Ordering::Relaxed);
        let kept = write_response(&mut io, &mut wbuf, resp, ready.head_only, close).await;
        activity.finished.fetch_add(1, Ordering::Relaxed);
        if !kept || door.closing.load(Ordering::Relaxed) {
            let _ = io.shutdown().await;
            return Served::Closed;
        }
    }
}

/// Answers 431 to a request head over the listener's limit, and closes.
async fn too_large<I: AsyncWrite + Unpin>(mut io: I, wbuf: &mut Vec<u8>) -> Served<I> {
    let resp = plain(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request header fields too large\n",
    );
    write_response(&mut io, wbuf, resp, false, true).await;
    let _ = io.shutdown().await;
    Served::Closed
}

/// Reads the request head at the start of `buf`, if this path serves it.
fn parse(buf: &[u8], proxy: &Proxy, client: &Client) -> Parse {
    if proxy.features.is_some() {
        return Parse::Handover;
    }
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut r = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut r,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Handover,
    };
    let (Some(method), Some(target), Some(1)) = (r.method, r.path, r.version) else {
        return Parse::Handover;
    };
    if method == "CONNECT" || !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
        return Parse::Handover;
    }
    let Ok(method_t) = Method::from_bytes(method.as_bytes()) else {
        return Parse::Handover;
    };
    let (mut close, mut host, mut length) = (false, None, false);
    let mut listed = [""; MAX_LISTED];
    let mut n_listed = 0;
    for f in r.headers.iter() {
        let is = |s: &str| f.name.eq_ignore_ascii_case(s);
        if is("content-length") {
            // Only an explicit empty body is served here.
            if length || f.value != b"0" {
                return Parse::Handover;
            }
            length = true;
        } else if is("transfer-encoding") || is("expect") || is("upgrade") {
            return Parse::Handover;
        } else if is("host") {
            if host.is_some() {
                return Parse::Handover;
            }
            host = Some(f.value);
        } else if is("connection") {
            let Ok(v) = std::str::from_utf8(f.value) else {
                return Parse::Handover;
            };
            for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                } else if t.eq_ignore_ascii_case("upgrade") || n_listed == MAX_LISTED {
                    return Parse::Handover;
                } else {
                    listed[n_listed] = t;
                    n_listed += 1;
                }
            }
        }
    }
    let pool = &proxy.pool;
    let hash = if pool.needs_hash() {
        let path = target.split('?').next().unwrap_or(target);
        let field = |h: &header::HeaderName| {
            r.headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(h.as_str()))
                .map(|f| f.value)
        };
        request_hash(pool, path, field, client.addr.ip())
    } else {
        0
    };
    let prefer = pool.affinity.as_ref().and_then(|a| {
        let mut cookies = HeaderMap::new();
        for f in r
            .headers
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("cookie"))
        {
            if let Ok(v) = header::HeaderValue::from_bytes(f.value) {
                cookies.append(header::COOKIE, v);
            }
        }
        a.preferred(&cookies)
    });
    let mut bytes = Vec::with_capacity(len + 192);
    let rw = Rewrite {
        client,
        host,
        which: proxy.forwarded,
        ids: proxy.request_id.then_some(&*proxy.ids),
    };
    encode_request(
        &mut bytes,
        method,
        target,
        r.headers,
        &listed[..n_listed],
        rw,
    );
    Parse::Ready(Ready {
        len,
        head_only: method_t == Method::HEAD,
        close,
        prepared: Prepared {
            body: Some(ReqBody::Empty),
            replayable: true,
            idempotent: is_idempotent(&method_t),
            hash,
            prefer,
            secure: client.tls,
            head: RequestHead {
                bytes,
                chunked: false,
                method: method_t,
                raw_response: true,
            },
        },
    })
}

/// A byte of an origin-form target that every parser takes alike (RFC 3986 `pchar`, `/`, `?`);
/// a target with anything else goes to hyper.
fn plain_target_byte(b: u8) -> bool {
    matches!(b, b'!' | b'$'..=b';' | b'=' | b'?'..=b'Z' | b'_' | b'a'..=b'z' | b'~')
}

/// How a response body is sent to the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    None,
    Length,
    Chunked,
}

/// Writes a response; whether the connection can take another request.
async fn write_response<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    resp: Response<RespBody>,
    head_only: bool,
    close: bool,
) -> bool
where
    I: AsyncWrite + Unpin,
{
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // A backend's fields as they came (the map then holds only what the proxy added), or the
    // balancer's own answer's.
    let (mut has_length, mut has_date) = match &body {
        RespBody::Proxied(up, _) => up
            .raw_head()
            .map_or((false, false), |raw| encode_response_fields(out, raw)),
        _ => (false, false),
    };
    for (name, value) in &parts.headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        has_length |= name == header::CONTENT_LENGTH;
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let no_body_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let exact = body.size_hint().exact();
    let mode = if no_body_status {
        Out::None
    } else if has_length {
        if head_only { Out::None } else { Out::Length }
    } else if let Some(n) = exact {
        let _ = write!(out, "content-length: {n}\r\n");
        if head_only { Out::None } else { Out::Length }
    } else if head_only {
        Out::None
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Out::Chunked
    };
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if mode == Out::None {
        // Dropping the body ends the exchange with the backend (its connection goes back to
        // the pool when the body was already complete).
        drop(body);
        return flush(io, out).await.is_ok() && !close;
    }
    loop {
        // Body bytes that are already here go out with what is gathered; otherwise that goes
        // out first and the next piece is awaited.
        let next = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if flush(io, out).await.is_err() {
                    return false;
                }
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match next {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                // Trailers are not passed on.
                Err(_) => continue,
            },
            Some(Err(e)) => {
                // The response cannot be finished: what was sent stands, the connection ends.
                tracing::debug!(error = %e, "response body failed");
                let _ = flush(io, out).await;
                return false;
            }
        };
        if data.is_empty() {
            continue;
        }
        if mode == Out::Chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if out.len() + data.len() <= MAX_GATHER {
            out.extend_from_slice(&data);
        } else if flush(io, out).await.is_err() || write_bytes(io, data).await.is_err() {
            return false;
        }
        if mode == Out::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if mode == Out::Chunked {
        out.extend_from_slice(LAST_CHUNK);
    }
    flush(io, out).await.is_ok() && !close
}

async fn flush<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await
}

async fn write_bytes<I: AsyncWrite + Unpin>(io: &mut I, b: Bytes) -> io::Result<()> {
    io.write_all(&b).await
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread.
fn date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, s)| {
        if *at != secs {
            *s = httpdate::fmt_http_date(now);
            *at = secs;
        }
        out.extend_from_slice(s.as_bytes());
    });
}

/// A client connection with bytes already read from it put back in front.
pub(crate) struct Rewind<I> {
    pre: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    pub(crate) fn new(pre: Bytes, inner: I) -> Self {
        Rewind { pre, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
