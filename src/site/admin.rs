//! The admin listener: `GET /health` (the report the DNS side's prober reads), `GET /metrics`
//! (Prometheus), `GET /status` (JSON of pools and servers, or the HTML status page of `page/`
//! for a browser), `/status.json`, `/status.html`, `/status/live`. Calls that change things are in
//! `api.rs` (token-authenticated).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::SiteState;
use super::body::RespBody;

/// The `/health` report. Its shape is a contract with the prober (`docs/site-file.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// `up`, `draining` or `down`.
    pub status: &'static str,
    /// Servers that may take requests, over every pool.
    pub healthy_backends: usize,
    /// Servers configured, over every pool.
    pub total_backends: usize,
    /// In-flight requests over the capacity (`max_connections`) of the healthy servers.
    pub load: f64,
}

#[derive(Serialize)]
struct ServerStatus<'a> {
    id: &'a str,
    address: &'a str,
    weight: u32,
    state: &'static str,
    admin_state: &'static str,
    origin: &'static str,
    active_check: &'static str,
    ejected: bool,
    ejections: u32,
    breaker: &'static str,
    in_flight: u64,
    max_connections: u32,
    requests: u64,
    failures: u64,
    latency_ms: f64,
}

#[derive(Serialize)]
struct PoolStatus<'a> {
    name: &'a str,
    algorithm: &'static str,
    in_flight: u64,
    servers: Vec<ServerStatus<'a>>,
}

#[derive(Serialize)]
struct Status<'a> {
    health: HealthReport,
    pools: Vec<PoolStatus<'a>>,
    /// What the status page recommends (see `page/advice.rs`).
    recommendations: Vec<super::page::advice::Advice>,
    /// Listeners with TLS or HTTP features.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listeners: Vec<super::l7::FeatureStatus>,
}

/// The site's health as the prober sees it.
pub(crate) fn health(site: &SiteState) -> HealthReport {
    let mut healthy = 0;
    let mut total = 0;
    let mut in_flight = 0u64;
    let mut capacity = 0u64;
    for p in site.pools().iter() {
        for b in &p.members().backends {
            in_flight += b.in_flight.load(Ordering::Relaxed);
            if b.is_removed() {
                continue;
            }
            total += 1;
            if p.is_usable(b) {
                healthy += 1;
                capacity += u64::from(b.max_connections());
            }
        }
    }
    let status = if site.is_draining() {
        "draining"
    } else if healthy == 0 {
        "down"
    } else {
        "up"
    };
    let load = if capacity == 0 {
        if in_flight > 0 { 1.0 } else { 0.0 }
    } else {
        in_flight as f64 / capacity as f64
    };
    HealthReport {
        status,
        healthy_backends: healthy,
        total_backends: total,
        load,
    }
}

/// `/status` JSON: the same gathered view as the status page, so the figures agree and the
/// servers are read once.
pub(crate) fn status(site: &SiteState) -> serde_json::Value {
    let view = super::page::gather(site);
    let pools = view
        .pools
        .iter()
        .map(|p| PoolStatus {
            name: &p.name,
            algorithm: p.algorithm,
            in_flight: p.in_flight,
            servers: p
                .servers
                .iter()
                .map(|s| ServerStatus {
                    id: &s.id,
                    address: &s.address,
                    weight: s.weight,
                    state: s.state,
                    admin_state: s.admin_state,
                    origin: s.origin,
                    active_check: s.check,
                    ejected: s.ejected,
                    ejections: s.ejections,
                    breaker: s.breaker,
                    in_flight: s.in_flight,
                    max_connections: s.max_connections,
                    requests: s.requests,
                    failures: s.failures,
                    latency_ms: s.latency.as_secs_f64() * 1e3,
                })
                .collect(),
        })
        .collect();
    serde_json::to_value(Status {
        health: view.health.clone(),
        recommendations: view.advice.clone(),
        pools,
        listeners: super::l7::listener_status(site),
    })
    .unwrap_or_default()
}

fn refresh_gauges(site: &SiteState) {
    for f in site
        .listeners
        .load()
        .iter()
        .filter_map(|l| l.features.as_ref())
    {
        f.refresh_gauges();
    }
    let m = &site.metrics;
    for p in site.pools().iter() {
        let now = p.now();
        for b in &p.members().backends {
            let labels = [p.cfg.name.as_str(), b.cfg.id.as_str()];
            m.active
                .with_label_values(&labels)
                .set(b.in_flight.load(Ordering::Relaxed) as i64);
            m.up.with_label_values(&labels)
                .set(i64::from(p.is_usable(b)));
            m.breaker
                .with_label_values(&labels)
                .set(b.breaker_state(now).as_gauge());
            m.idle_connections
                .with_label_values(&labels)
                .set(b.conns.idle_count() as i64);
        }
    }
}

/// Serves one admin request.
pub(crate) fn handle<B>(site: &SiteState, req: &Request<B>) -> Response<RespBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            let h = health(site);
            let code = if h.status == "up" {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(code, &h)
        }
        (&Method::GET, "/status") if wants_html(req) => {
            html(super::page::page(&super::page::gather(site), &site.name))
        }
        (&Method::GET, "/status" | "/status.json") => json(StatusCode::OK, &status(site)),
        (&Method::GET, "/" | "/status.html") => {
            html(super::page::page(&super::page::gather(site), &site.name))
        }
        (&Method::GET, "/status/live") => {
            html(super::page::live_fragment(&super::page::gather(site)))
        }
        (&Method::GET, "/metrics") => {
            refresh_gauges(site);
            let mut r = Response::new(RespBody::full(site.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /metrics, /status (HTML for browsers), /status.json\n",
        ),
    }
}

fn json<T: Serialize>(code: StatusCode, v: &T) -> Response<RespBody> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(RespBody::full(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A browser asking for `/status` gets the page; scripts (no `text/html` in `Accept`) get JSON.
fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn html(body: String) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(code: StatusCode, msg: &'static str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = code;
    r
}
