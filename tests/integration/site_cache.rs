//! The response cache and compression over real sockets: hits are served without reaching
//! the backend and honour no-store, private, max-age and Vary; stale entries are revalidated
//! (304 keeps the body) or replaced; unsafe methods invalidate; compressed answers decompress
//! to the backend's bytes, and only text-like, unencoded, large-enough answers are compressed.

use std::io::Read;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Request};

use crate::support::origin::{Origin, reply};
use crate::support::{TestSite, request};

async fn site_for(origin: &Origin, features: &str) -> TestSite {
    TestSite::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\
         [[listeners]]\nbind = \"127.0.0.1:0\"\npool = \"o\"\n{features}\n\
         [pools.o]\nservers = [\"{}\"]\nretry = {{ attempts = 0 }}\n",
        origin.addr
    ))
    .await
}

async fn send(
    site: &TestSite,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Bytes) {
    let mut b = Request::builder().method(method).uri(site.url(path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (s, h, body) = request(&site.client, b.body(Full::default()).expect("req")).await;
    (s.as_u16(), h, body)
}

/// The origin: `/cc/<cache-control>` answers with that Cache-Control and a body counting the
/// backend's requests; `/vary` varies on Accept-Language; `/etag` carries an ETag, arrives
/// already as old as its max-age (so it is stale at once) and answers 304 to If-None-Match.
async fn origin() -> Origin {
    Origin::start(|req, n| {
        let path = req.uri().path().to_string();
        let body = format!("v{n}");
        if let Some(cc) = path.strip_prefix("/cc/") {
            let cc = cc.replace("%20", " ");
            return reply(body, &[("cache-control", &cc)]);
        }
        match path.as_str() {
            "/vary" => {
                let lang = req
                    .headers()
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                reply(
                    format!("{lang}{n}"),
                    &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
                )
            }
            "/etag" => {
                if req
                    .headers()
                    .get("if-none-match")
                    .is_some_and(|v| v == "\"t1\"")
                {
                    let mut r = reply(
                        Bytes::new(),
                        &[
                            ("etag", "\"t1\""),
                            ("cache-control", "max-age=60"),
                            ("age", "60"),
                        ],
                    );
                    *r.status_mut() = hyper::StatusCode::NOT_MODIFIED;
                    return r;
                }
                reply(
                    body,
                    &[
                        ("etag", "\"t1\""),
                        ("cache-control", "max-age=60"),
                        ("age", "60"),
                    ],
                )
            }
            "/stale-no-validator" => reply(body, &[("cache-control", "max-age=60"), ("age", "61")]),
            _ => reply(body, &[]),
        }
    })
    .await
}

#[tokio::test]
async fn hits_skip_the_backend_and_cache_control_is_honoured() {
    let o = origin().await;
    let site = site_for(&o, "cache = { max_bytes = 1048576 }").await;
    let (s, h, body) = send(&site, "GET", "/cc/max-age=60", &[]).await;
    assert_eq!((s, &body[..]), (200, &b"v1"[..]));
    assert!(!h.contains_key("age"), "a miss comes from the backend");
    let (_, h, body) = send(&site, "GET", "/cc/max-age=60", &[]).await;
    assert_eq!(&body[..], b"v1", "served from the cache");
    assert!(h.contains_key("age"));
    let (s, _, body) = send(&site, "HEAD", "/cc/max-age=60", &[]).await;
    assert_eq!((s, body.len()), (200, 0));
    assert_eq!(
        o.hits(),
        1,
        "GET hit and HEAD hit never reached the backend"
    );

    for cc in [
        "no-store,%20max-age=60",
        "private,%20max-age=60",
        "no-cache",
        "public",
    ] {
        let before = o.hits();
        send(&site, "GET", &format!("/cc/{cc}"), &[]).await;
        send(&site, "GET", &format!("/cc/{cc}"), &[]).await;
        assert_eq!(o.hits(), before + 2, "{cc}: not cached");
    }
    let before = o.hits();
    send(
        &site,
        "GET",
        "/cc/s-maxage=30",
        &[("authorization", "Bearer x")],
    )
    .await;
    send(
        &site,
        "GET",
        "/cc/s-maxage=30",
        &[("cache-control", "no-store")],
    )
    .await;
    assert_eq!(
        o.hits(),
        before + 2,
        "credentials and no-store requests bypass"
    );

    let metrics = crate::support::site::get(&site.client, &site.admin_url("/metrics"))
        .await
        .2;
    let text = String::from_utf8_lossy(&metrics);
    assert!(text.contains("result=\"hit\"} 2"), "{text}");
    assert!(text.contains("meridian_site_cache_entries"), "{text}");
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let o = origin().await;
    let site = site_for(&o, "cache = {}").await;
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(&send(&site, "GET", "/vary", &en).await.2[..], b"en1");
    assert_eq!(&send(&site, "GET", "/vary", &fr).await.2[..], b"fr2");
    assert_eq!(&send(&site, "GET", "/vary", &en).await.2[..], b"en1");
    assert_eq!(&send(&site, "GET", "/vary", &fr).await.2[..], b"fr2");
    assert_eq!(o.hits(), 2);
}

#[tokio::test]
async fn stale_entries_are_revalidated_or_replaced_and_unsafe_methods_invalidate() {
    let o = origin().await;
    let site = site_for(&o, "cache = {}").await;
    let (_, _, body) = send(&site, "GET", "/etag", &[]).await;
    assert_eq!(&body[..], b"v1");
    let (s, h, body) = send(&site, "GET", "/etag", &[]).await;
    assert_eq!(
        (s, &body[..]),
        (200, &b"v1"[..]),
        "304 from the backend: cached body"
    );
    assert_eq!(h["etag"], "\"t1\"");
    assert_eq!(o.hits(), 2, "one conditional request");
    let (s, _, _) = send(&site, "GET", "/etag", &[("if-none-match", "\"t1\"")]).await;
    assert_eq!(s, 304, "the client's own conditional is answered");

    let before = o.hits();
    send(&site, "GET", "/stale-no-validator", &[]).await;
    send(&site, "GET", "/stale-no-validator", &[]).await;
    assert_eq!(
        o.hits(),
        before + 2,
        "stale without a validator: fetched again"
    );

    send(&site, "GET", "/cc/max-age=60", &[]).await;
    let before = o.hits();
    send(&site, "GET", "/cc/max-age=60", &[]).await;
    assert_eq!(o.hits(), before);
    send(&site, "POST", "/cc/max-age=60", &[]).await;
    send(&site, "GET", "/cc/max-age=60", &[]).await;
    assert_eq!(o.hits(), before + 2, "the POST invalidated the entry");
}

fn text_origin() -> impl Fn(&Request<hyper::body::Incoming>, usize) -> hyper::Response<Full<Bytes>>
{
    |req, _| {
        let page = "<p>the quick brown fox jumps over the lazy dog</p>\n".repeat(200);
        match req.uri().path() {
            "/png" => reply(page, &[("content-type", "image/png")]),
            "/small" => reply("tiny", &[("content-type", "text/plain")]),
            "/pre" => reply(
                page,
                &[("content-type", "text/html"), ("content-encoding", "gzip")],
            ),
            _ => reply(page, &[("content-type", "text/html; charset=utf-8")]),
        }
    }
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gunzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("unbrotli");
        }
        "zstd" => out = zstd::decode_all(body).expect("unzstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

#[tokio::test]
async fn compressed_answers_decompress_to_the_backends_bytes() {
    let o = Origin::start(text_origin()).await;
    let site = site_for(&o, "compression = { min_size = 100 }").await;
    let page = "<p>the quick brown fox jumps over the lazy dog</p>\n".repeat(200);
    for coding in ["gzip", "br", "zstd"] {
        let (s, h, body) = send(&site, "GET", "/", &[("accept-encoding", coding)]).await;
        assert_eq!(s, 200);
        assert_eq!(h["content-encoding"], coding);
        assert_eq!(h["vary"], "accept-encoding");
        assert!(
            body.len() < page.len() / 4,
            "{coding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(coding, &body), page.as_bytes(), "{coding}");
    }
    let (_, h, body) = send(
        &site,
        "GET",
        "/",
        &[("accept-encoding", "gzip, br;q=0.5, zstd;q=0")],
    )
    .await;
    assert_eq!(
        h["content-encoding"], "br",
        "the balancer's preference among accepted codings"
    );
    assert_eq!(decode("br", &body), page.as_bytes());
    let (_, h, body) = send(&site, "GET", "/", &[]).await;
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(body.len(), page.len());
    for path in ["/png", "/small"] {
        let (_, h, _) = send(&site, "GET", path, &[("accept-encoding", "gzip")]).await;
        assert!(!h.contains_key("content-encoding"), "{path}");
    }
    let (_, h, body) = send(&site, "GET", "/pre", &[("accept-encoding", "br")]).await;
    assert_eq!(
        h["content-encoding"], "gzip",
        "the backend's own encoding is kept"
    );
    assert_eq!(body.len(), page.len(), "and not encoded twice");
}

#[tokio::test]
async fn cache_and_compression_together() {
    let o = Origin::start(|_, n| {
        let page = format!("{n}:") + &"cacheable text ".repeat(300);
        reply(
            page,
            &[
                ("content-type", "text/plain"),
                ("cache-control", "max-age=60"),
            ],
        )
    })
    .await;
    let site = site_for(&o, "compression = {}\ncache = {}").await;
    let (_, h, gz) = send(&site, "GET", "/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(h["content-encoding"], "gzip");
    let (_, h, plain) = send(&site, "GET", "/", &[]).await;
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(
        decode("gzip", &gz),
        plain.to_vec(),
        "one stored body, encoded per client"
    );
    assert_eq!(o.hits(), 1);
}
