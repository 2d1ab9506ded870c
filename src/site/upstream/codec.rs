//! HTTP/1.1 framing towards backends (RFC 9112), on `httparse`: the request head as bytes, the
//! response head parsed into a `HeaderMap` that shares the read buffer, and how the response
//! body is delimited (§6.3), with a chunked decoder. Pure: no I/O, tested on its own.

use std::io::Write;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode, Uri, Version};

/// The largest response head accepted from a backend.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 128;
/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// A backend broke the protocol; the connection cannot be used again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtoError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid header field in the response")]
    Field,
    #[error("invalid Content-Length in the response")]
    ContentLength,
    #[error("malformed chunked body")]
    Chunk,
    #[error("101 Switching Protocols without an upgrade asked for")]
    Upgrade,
}

/// A request head as it goes on the wire, encoded once and sent by every attempt.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) bytes: Vec<u8>,
    /// The body follows chunked (it is streamed and has no declared length).
    pub(crate) chunked: bool,
    /// The request's method (a response to HEAD has no body).
    pub(crate) method: Method,
    /// Keep the response's header fields as the raw head ([`Head::raw`]) rather than a map:
    /// the client-side HTTP/1.1 path writes them on as they came.
    pub(crate) raw_response: bool,
}

impl RequestHead {
    /// Encodes a request whose body is `streamed` (else empty or buffered with its
    /// `Content-Length`). A streamed body without a declared length goes chunked: the
    /// client's own `Transfer-Encoding` was hop-by-hop and is gone.
    pub(crate) fn encode(method: &Method, uri: &Uri, headers: &HeaderMap, streamed: bool) -> Self {
        let chunked = streamed && !headers.contains_key(header::CONTENT_LENGTH);
        let mut bytes = Vec::with_capacity(512);
        encode_head(&mut bytes, method, uri, headers, chunked);
        RequestHead {
            bytes,
            chunked,
            method: method.clone(),
            raw_response: false,
        }
    }
}

/// Writes a request head: request line, the headers as given, `Transfer-Encoding: chunked`
/// when the body is sent chunked, the blank line.
fn encode_head(out: &mut Vec<u8>, method: &Method, uri: &Uri, headers: &HeaderMap, chunked: bool) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Frames one chunk of a chunked request body.
pub(crate) fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked request body (no trailers).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Until the backend closes.
    Close,
}

impl Framing {
    /// The whole body has been read.
    pub(crate) fn is_done(self) -> bool {
        matches!(
            self,
            Framing::Empty | Framing::Length(0) | Framing::Chunked(Chunked::Done)
        )
    }
}

/// A parsed final response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// The header fields (empty when the head was asked for raw).
    pub(crate) headers: HeaderMap,
    /// The head as received, status line and fields, when asked for raw.
    pub(crate) raw: Option<Bytes>,
    pub(crate) framing: Framing,
    /// The connection may carry another request after this response.
    pub(crate) keep_alive: bool,
}

/// What the start of the read buffer holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A 1xx interim response, consumed and to be ignored.
    Interim,
    Final(Head),
}

/// Parses the response head at the start of `buf`, consuming it when whole. `method` is the
/// request's (a response to HEAD has no body whatever it says). With `raw`, the fields are not
/// put in a map: the head comes back as received ([`Head::raw`]).
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    raw: bool,
) -> Result<Parsed, ProtoError> {
    // Left uninitialised: the parser writes the fields it finds (no 4 KiB to zero per answer).
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut r,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(ProtoError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(ProtoError::Head(e)),
    };
    let code = r.code.unwrap_or(0);
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let status =
        StatusCode::from_u16(code).map_err(|_| ProtoError::Head(httparse::Error::Status))?;
    if status.is_informational() {
        buf.advance(len);
        if code == 101 {
            return Err(ProtoError::Upgrade);
        }
        return Ok(Parsed::Interim);
    }
    if raw {
        let fields = &*r.headers;
        let values = |name: &'static str| {
            fields
                .iter()
                .filter(move |f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.value)
        };
        let (framing, keep_alive, _) = framing(method, status, values)?;
        let keep_alive = keep_alive && connection_persists(version, values);
        let head = buf.split_to(len).freeze();
        return Ok(Parsed::Final(Head {
            status,
            headers: HeaderMap::new(),
            raw: Some(head),
            framing,
            keep_alive,
        }));
    }
    // Where each field sits in the head, so that the values can share its bytes once the head
    // is split off the buffer (the parser borrows the buffer until then).
    let base = buf.as_ptr() as usize;
    // (A head is parsed once the buffer holds it, at most MAX_HEAD plus one read: offsets fit
    // in u32.)
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let n = r.headers.len();
    let at = |p: &[u8]| (p.as_ptr() as usize - base) as u32;
    for (span, f) in spans.iter_mut().zip(r.headers.iter()) {
        let name = f.name.as_bytes();
        *span = (
            at(name),
            name.len() as u32,
            at(f.value),
            f.value.len() as u32,
        );
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(n);
    for &(no, nl, vo, vl) in &spans[..n] {
        let (no, nl, vo, vl) = (no as usize, nl as usize, vo as usize, vl as usize);
        let name = HeaderName::from_bytes(&head[no..no + nl]).map_err(|_| ProtoError::Field)?;
        let value = HeaderValue::from_maybe_shared(head.slice(vo..vo + vl))
            .map_err(|_| ProtoError::Field)?;
        headers.append(name, value);
    }
    let values = |name: &'static str| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    let (framing, keep_alive, both) = framing(method, status, values)?;
    let keep_alive = keep_alive && connection_persists(version, values);
    if both {
        // Transfer-Encoding beside Content-Length: the length is not passed on (§6.3 item 3).
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(Parsed::Final(Head {
        status,
        headers,
        raw: None,
        framing,
        keep_alive,
    }))
}

/// A field value as text (what `HeaderValue::to_str` accepts: visible ASCII, space and tab).
pub(crate) fn text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// RFC 9112 §6.3: how the body ends, whether the framing leaves the connection usable, and
/// whether a `Content-Length` came beside `Transfer-Encoding` (then it is not passed on).
/// `values` gives the values of the fields of one name, in order.
fn framing<'a, I>(
    method: &Method,
    status: StatusCode,
    values: impl Fn(&'static str) -> I,
) -> Result<(Framing, bool, bool), ProtoError>
where
    I: Iterator<Item = &'a [u8]>,
{
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true, false));
    }
    let mut te = values("transfer-encoding").peekable();
    if te.peek().is_some() {
        // Chunked only when it is the final coding; otherwise the body runs to the close.
        // (A value that is not text counts as a coding other than chunked.)
        let last = te
            .map(|v| text(v).unwrap_or("?"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .last();
        let chunked = last.is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        // Transfer-Encoding beside Content-Length: the length is ignored and not passed on
        // (§6.3 item 3), and the connection is not reused (a smuggling attempt or a broken
        // backend).
        let both = values("content-length").next().is_some();
        return Ok(if chunked {
            (Framing::Chunked(Chunked::Size), !both, both)
        } else {
            (Framing::Close, false, both)
        });
    }
    let mut length = None;
    for v in values("content-length") {
        // A list of identical values is one value (§6.3 item 5); anything else is an error.
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(ProtoError::ContentLength);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(ProtoError::ContentLength)?;
            match length {
                Some(l) if l != n => return Err(ProtoError::ContentLength),
                _ => length = Some(n),
            }
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), true, false),
        None => (Framing::Close, false, false),
    })
}

/// HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
fn connection_persists<'a, I>(version: Version, values: impl Fn(&'static str) -> I) -> bool
where
    I: Iterator<Item = &'a [u8]>,
{
    let has = |token: &str| {
        values("connection")
            .filter_map(text)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields (discarded) up to a blank line; bytes seen so far.
    Trailers(usize),
    Done,
}

/// What one decoding step gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    /// `buf` holds no whole next piece: read more.
    NeedMore,
    End,
}

/// Decodes the next piece of a chunked body from `buf`: data (sharing the buffer), the end, or
/// a request for more input.
pub(crate) fn decode_chunked(
    state: &mut Chunked,
    buf: &mut BytesMut,
) -> Result<Decoded, ProtoError> {
    loop {
        match *state {
            Chunked::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    *state = if size == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    return Err(ProtoError::Chunk);
                }
                Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                Err(_) => return Err(ProtoError::Chunk),
            },
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = left.min(buf.len() as u64) as usize;
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                *state = if left == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left)
                };
                return Ok(Decoded::Data(data));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ProtoError::Chunk);
                }
                buf.advance(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers(seen) => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    buf.advance(2);
                    *state = Chunked::Done;
                }
                Some(i) if seen + i + 2 <= MAX_TRAILERS => {
                    buf.advance(i + 2);
                    *state = Chunked::Trailers(seen + i + 2);
                }
                None if seen + buf.len() <= MAX_TRAILERS => return Ok(Decoded::NeedMore),
                _ => return Err(ProtoError::Chunk),
            },
            Chunked::Done => return Ok(Decoded::End),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `raw` both ways (fields in a map, and kept raw) and checks that they agree on
    /// everything but where the fields are kept, and consume alike when they succeed.
    fn head(raw: &str, method: &Method) -> Result<Parsed, ProtoError> {
        let mut b = BytesMut::from(raw.as_bytes());
        let mapped = parse_head(&mut b, method, false);
        let mut r = BytesMut::from(raw.as_bytes());
        let unmapped = parse_head(&mut r, method, true);
        match (&mapped, &unmapped) {
            (Ok(Parsed::Final(m)), Ok(Parsed::Final(u))) => {
                assert_eq!(
                    (m.status, m.framing, m.keep_alive),
                    (u.status, u.framing, u.keep_alive)
                );
                assert!(u.headers.is_empty() && m.raw.is_none());
                let consumed = raw.len() - b.len();
                assert_eq!(u.raw.as_deref(), Some(&raw.as_bytes()[..consumed]));
            }
            (Ok(Parsed::Partial), Ok(Parsed::Partial))
            | (Ok(Parsed::Interim), Ok(Parsed::Interim)) => {}
            // (After an error the connection is dropped, buffer and all.)
            (Err(e), Err(f)) => {
                assert_eq!(e, f);
                return mapped;
            }
            other => panic!("the two ways disagree: {other:?}"),
        }
        assert_eq!(b, r);
        mapped
    }

    fn final_head(raw: &str) -> Head {
        match head(raw, &Method::GET) {
            Ok(Parsed::Final(h)) => h,
            other => panic!("expected a final head, got {other:?}"),
        }
    }

    #[test]
    fn request_head_is_the_request_line_headers_and_a_blank_line() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("example.com"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let uri: Uri = "/p?q=1".parse().expect("uri");
        // A streamed body without a Content-Length goes chunked.
        let head = RequestHead::encode(&Method::POST, &uri, &h, true);
        assert!(head.chunked);
        assert_eq!(
            String::from_utf8(head.bytes).expect("ascii"),
            "POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        let mut c = Vec::new();
        encode_chunk(&mut c, b"hello world, this is 30 bytes!");
        assert_eq!(c, b"1e\r\nhello world, this is 30 bytes!\r\n");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_consumes_nothing() {
        let raw = &b"HTTP/1.1 200 OK\r\nContent-Len"[..];
        let mut b = BytesMut::from(raw);
        assert!(matches!(
            parse_head(&mut b, &Method::GET, false),
            Ok(Parsed::Partial)
        ));
        assert_eq!(&b[..], raw);
    }

    #[test]
    fn the_head_is_consumed_and_the_body_bytes_stay() {
        let mut b =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-B: b1\r\n\r\nhello"[..]);
        let Ok(Parsed::Final(h)) = parse_head(&mut b, &Method::GET, false) else {
            panic!("final head expected");
        };
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.headers["x-b"], "b1");
        assert_eq!(&b[..], b"hello");
    }

    #[test]
    fn body_framing_follows_rfc_9112_section_6_3() {
        let h = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked(Chunked::Size));
        assert!(h.keep_alive);
        // Both: chunked wins, the connection is not reused.
        let h = final_head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked(Chunked::Size));
        assert!(!h.keep_alive);
        assert!(!h.headers.contains_key("content-length"), "not passed on");
        let h = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = final_head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = final_head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
        for bad in ["7, 8", "-1", "0x10", "", "99999999999999999999"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                head(&raw, &Method::GET).err(),
                Some(ProtoError::ContentLength),
                "{bad:?}"
            );
        }
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            head(two, &Method::GET).err(),
            Some(ProtoError::ContentLength)
        );
        for raw in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        ] {
            assert_eq!(final_head(raw).framing, Framing::Empty);
        }
        let Ok(Parsed::Final(h)) = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            &Method::HEAD,
        ) else {
            panic!("final head expected");
        };
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn persistence_depends_on_version_and_connection() {
        assert!(
            !final_head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        assert!(!final_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            final_head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn interim_responses_are_skipped_and_101_is_refused() {
        let mut b = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
        );
        assert!(matches!(
            parse_head(&mut b, &Method::POST, false),
            Ok(Parsed::Interim)
        ));
        assert!(matches!(
            parse_head(&mut b, &Method::POST, false),
            Ok(Parsed::Final(_))
        ));
        assert_eq!(
            head("HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::GET).err(),
            Some(ProtoError::Upgrade)
        );
    }

    #[test]
    fn malformed_and_oversized_heads_are_errors() {
        assert!(matches!(
            head("HTTP/1.1 2000 OK\r\n\r\n", &Method::GET),
            Err(ProtoError::Head(_))
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", &Method::GET),
            Err(ProtoError::Head(_))
        ));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(
            head(&big, &Method::GET).err(),
            Some(ProtoError::HeadTooLarge)
        );
    }

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ProtoError> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decode_chunked(&mut state, &mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, buf.len())),
                Decoded::NeedMore => {
                    assert!(fed < input.len(), "decoder wants more than the input has");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 64] {
            let (out, rest) = decode_all(body, step).expect("valid chunked body");
            assert_eq!(out, b"hello world", "step {step}");
            assert!(rest <= 4, "only the next response's bytes stay");
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            &b"ffffffffffffffffff\r\n"[..],
        ] {
            assert_eq!(decode_all(bad, 4).err(), Some(ProtoError::Chunk), "{bad:?}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a backend sends, parsing its head never panics, and a head that is
            /// not whole consumes nothing.
            #[test]
            fn any_bytes_parse_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut b = BytesMut::from(&raw[..]);
                if let Ok(Parsed::Partial) = parse_head(&mut b, &Method::GET, false) {
                    prop_assert_eq!(&b[..], &raw[..]);
                }
                let mut state = Chunked::Size;
                let mut c = BytesMut::from(&raw[..]);
                for _ in 0..raw.len() + 2 {
                    match decode_chunked(&mut state, &mut c) {
                        Ok(Decoded::Data(_)) => {}
                        _ => break,
                    }
                }
            }

            /// Any body, chunked in any sizes and fed in any read sizes, decodes to itself.
            #[test]
            fn chunked_round_trip(
                body in proptest::collection::vec(any::<u8>(), 0..2048),
                chunk in 1usize..300,
                step in 1usize..64,
            ) {
                let mut wire = Vec::new();
                for piece in body.chunks(chunk) {
                    encode_chunk(&mut wire, piece);
                }
                wire.extend_from_slice(LAST_CHUNK);
                let (out, rest) = decode_all(&wire, step).expect("valid chunked body");
                prop_assert_eq!(out, body);
                prop_assert_eq!(rest, 0);
            }
        }
    }
}
