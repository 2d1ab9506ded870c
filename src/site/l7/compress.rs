//! Response compression: brotli, zstd or gzip, chosen from the client's `Accept-Encoding` in
//! the listener's order of preference, applied while the body streams (each chunk goes through
//! the encoder; what it has produced is sent on), only for text-like media types, answers the
//! backend did not encode itself, and bodies not declared smaller than `min_size`.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

use crate::config::site::{CompressionConfig, Encoding};
use crate::site::body::{BoxError, RespBody};

/// A listener's compression settings.
#[derive(Debug)]
pub(crate) struct Compressor {
    cfg: CompressionConfig,
}

impl Compressor {
    pub(crate) fn new(cfg: CompressionConfig) -> Self {
        Compressor { cfg }
    }

    /// The codings offered, best first.
    pub(crate) fn codings(&self) -> Vec<&'static str> {
        self.cfg.algorithms.iter().map(|e| e.as_str()).collect()
    }

    /// The coding to use for a client, from its `Accept-Encoding` (q-values honoured; `*`
    /// stands for codings not named; q=0 refuses one).
    pub(crate) fn negotiate(&self, headers: &HeaderMap) -> Option<Encoding> {
        let mut star: Option<bool> = None;
        let mut named: Vec<(&str, bool)> = Vec::new();
        for v in headers.get_all(header::ACCEPT_ENCODING) {
            for item in v.to_str().unwrap_or("").split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let q_ok = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
                if coding == "*" {
                    star = Some(q_ok);
                } else if !coding.is_empty() {
                    named.push((coding, q_ok));
                }
            }
        }
        self.cfg.algorithms.iter().copied().find(|e| {
            match named
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(e.as_str()))
            {
                Some((_, ok)) => *ok,
                None => star == Some(true),
            }
        })
    }

    fn compressible(&self, h: &HeaderMap) -> bool {
        let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.cfg.types.iter().any(|t| {
            if t.ends_with('/') {
                media.starts_with(t.as_str())
            } else {
                media == *t
            }
        })
    }

    /// Compresses an answer when it qualifies; marks it `Vary: Accept-Encoding` whenever its
    /// type is one that may be compressed (so a cache keeps the variants apart).
    pub(crate) fn apply(
        &self,
        coding: Option<Encoding>,
        head: bool,
        resp: Response<RespBody>,
    ) -> (Response<RespBody>, Option<Encoding>) {
        let (mut parts, body) = resp.into_parts();
        let h = &mut parts.headers;
        if !self.compressible(h) {
            return (Response::from_parts(parts, body), None);
        }
        add_vary(h);
        let declared = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let skip =
            head || matches!(
                parts.status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
            ) || parts.status.is_informational()
                || h.get(header::CONTENT_ENCODING)
                    .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
                || h.get(header::CONTENT_RANGE).is_some()
                || h.get_all(header::CACHE_CONTROL)
                    .iter()
                    .any(|v| contains_token(v, "no-transform"))
                || declared.is_some_and(|n| n < self.cfg.min_size);
        let Some(coding) = coding.filter(|_| !skip) else {
            return (Response::from_parts(parts, body), None);
        };
        h.remove(header::CONTENT_LENGTH);
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.as_str()),
        );
        // The encoded bytes differ: a strong validator becomes weak.
        if let Some(etag) = h.get(header::ETAG).and_then(|v| v.to_str().ok())
            && !etag.starts_with("W/")
            && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
        {
            h.insert(header::ETAG, weak);
        }
        let body = RespBody::Layered(Box::pin(Encode {
            inner: body,
            codec: Some(Codec::new(coding)),
            trailers: None,
        }));
        (Response::from_parts(parts, body), Some(coding))
    }
}

fn contains_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .unwrap_or("")
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn add_vary(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .any(|v| contains_token(v, "accept-encoding") || v.to_str().is_ok_and(|s| s.trim() == "*"));
    if !present {
        h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// One streaming encoder writing into a buffer that is emptied after each chunk.
enum Codec {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Codec {
    fn new(e: Encoding) -> Self {
        match e {
            // Levels for on-the-fly compression: fast, most of the gain.
            Encoding::Gzip => Codec::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(5),
            )),
            Encoding::Brotli => Codec::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                4,
                22,
            ))),
            Encoding::Zstd => match zstd::stream::write::Encoder::new(Vec::new(), 3) {
                Ok(z) => Codec::Zstd(z),
                // zstd only fails to allocate its context; gzip always works.
                Err(_) => Codec::new(Encoding::Gzip),
            },
        }
    }

    fn push(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Codec::Gzip(w) => {
                w.write_all(data)?;
                w.get_mut()
            }
            Codec::Brotli(w) => {
                w.write_all(data)?;
                w.get_mut()
            }
            Codec::Zstd(w) => {
                w.write_all(data)?;
                w.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Codec::Gzip(w) => w.finish()?,
            Codec::Brotli(w) => w.into_inner(),
            Codec::Zstd(w) => w.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// A body passed through an encoder.
struct Encode {
    inner: RespBody,
    codec: Option<Codec>,
    /// Trailers seen after the data, sent once the encoder is finished.
    trailers: Option<HeaderMap>,
}

impl Body for Encode {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(codec) = this.codec.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = codec.push(&data)?;
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    Err(frame) => this.trailers = frame.into_trailers().ok(),
                },
                Poll::Ready(None) => {
                    let Some(codec) = this.codec.take() else {
                        continue;
                    };
                    let out = codec.finish()?;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.codec.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp() -> Compressor {
        Compressor::new(CompressionConfig {
            algorithms: Encoding::ALL.to_vec(),
            min_size: 10,
            types: vec!["text/".into(), "application/json".into()],
        })
    }

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn negotiation_follows_preference_and_q_values() {
        let c = comp();
        assert_eq!(c.negotiate(&accept("gzip, br")), Some(Encoding::Brotli));
        assert_eq!(c.negotiate(&accept("gzip, br;q=0")), Some(Encoding::Gzip));
        assert_eq!(
            c.negotiate(&accept("gzip;q=0.5, zstd")),
            Some(Encoding::Zstd)
        );
        assert_eq!(c.negotiate(&accept("*")), Some(Encoding::Brotli));
        assert_eq!(c.negotiate(&accept("*, br;q=0")), Some(Encoding::Zstd));
        assert_eq!(c.negotiate(&accept("identity")), None);
        assert_eq!(c.negotiate(&HeaderMap::new()), None);
    }

    fn resp(ct: &str, len: Option<usize>, extra: &[(&'static str, &str)]) -> Response<RespBody> {
        let mut r = Response::new(RespBody::full(Bytes::from_static(b"hello hello hello")));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).expect("ct"));
        if let Some(n) = len {
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        for (k, v) in extra {
            r.headers_mut()
                .insert(*k, HeaderValue::from_str(v).expect("v"));
        }
        r
    }

    #[test]
    fn only_qualifying_answers_are_compressed() {
        let c = comp();
        let g = Some(Encoding::Gzip);
        let (r, e) = c.apply(g, false, resp("text/html; charset=utf-8", Some(17), &[]));
        assert_eq!(e, g);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        assert_eq!(c.apply(g, false, resp("image/png", None, &[])).1, None);
        assert_eq!(
            c.apply(g, false, resp("text/plain", Some(5), &[])).1,
            None,
            "min size"
        );
        let pre = [("content-encoding", "br")];
        assert_eq!(c.apply(g, false, resp("text/plain", None, &pre)).1, None);
        let nt = [("cache-control", "public, no-transform")];
        assert_eq!(c.apply(g, false, resp("text/plain", None, &nt)).1, None);
        assert_eq!(
            c.apply(g, true, resp("text/plain", None, &[])).1,
            None,
            "HEAD"
        );
        let (r, e) = c.apply(None, false, resp("application/json", None, &[]));
        assert_eq!(e, None);
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        let (r, _) = c.apply(g, false, resp("text/plain", None, &[("etag", "\"x\"")]));
        assert_eq!(r.headers()[header::ETAG], "W/\"x\"");
    }
}
