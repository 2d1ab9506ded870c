//! The runtime admin API on the admin listener: JSON over HTTP under `/api/`, for callers from
//! the allowed networks (loopback unless `admin.api_allow` says otherwise) holding the bearer
//! token. Every change is logged with the caller's address and applies to the next request or
//! connection; nothing in flight is dropped (a removed server drains first).
//!
//! ```text
//! GET    /api/pools                        pools, servers and their state
//! GET    /api/pools/NAME                   one pool
//! POST   /api/pools/NAME/servers           add {"address", "id"?, "weight"?, "max_connections"?, "state"?}
//! DELETE /api/pools/NAME/servers/ID        remove (drains first)
//! PATCH  /api/pools/NAME/servers/ID        {"weight"?, "state"?: "ready" | "drain" | "maintenance"}
//! GET    /api/site                         the site's own state and health
//! PUT    /api/site                         {"state": "ready" | "draining"}
//! POST   /api/reload                       re-read the site file, as SIGHUP does
//! POST   /drain?pool=&server=, /undrain    the older drain calls (same auth)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SiteState;
use super::backend::{Origin, ServerState};
use super::body::RespBody;
use super::pool::{MemberError, Pool};
use crate::config::site::{ApiConfig, ServerConfig};

/// Largest API request body.
const MAX_BODY: usize = 64 * 1024;

/// The API settings with the token from `MERIDIAN_ADMIN_TOKEN` when the file sets none.
pub(crate) fn resolve(c: Option<ApiConfig>) -> ApiConfig {
    let mut c = c.unwrap_or_default();
    if c.token.is_none() {
        c.token = std::env::var("MERIDIAN_ADMIN_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
    }
    c
}

/// True for the paths this module answers.
pub(crate) fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/drain" || path == "/undrain"
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddServer {
    address: String,
    id: Option<String>,
    weight: Option<u32>,
    max_connections: Option<u32>,
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeServer {
    weight: Option<u32>,
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteChange {
    state: String,
}

/// An answer: status and JSON body.
type Answer = (StatusCode, Value);

fn err(code: StatusCode, msg: impl std::fmt::Display) -> Answer {
    (code, json!({ "error": msg.to_string() }))
}

/// Serves one API call.
pub(crate) async fn handle(
    site: &Arc<SiteState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<RespBody> {
    let (code, body) = match authorize(site, peer, &req) {
        Err(a) => a,
        Ok(()) => {
            let (parts, body) = req.into_parts();
            match Limited::new(body, MAX_BODY).collect().await {
                Err(_) => err(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
                Ok(b) => route(site, peer, &parts, &b.to_bytes()).await,
            }
        }
    };
    let text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let mut r = Response::new(RespBody::full(Bytes::from(text)));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if code == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

fn authorize<B>(site: &SiteState, peer: SocketAddr, req: &Request<B>) -> Result<(), Answer> {
    let api = site.api.load();
    // An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d.
    let ip = peer.ip().to_canonical();
    if !api.allow.iter().any(|n| n.contains(&ip)) {
        tracing::warn!(client = %peer, path = %req.uri().path(), "admin API call from a network not in admin.api_allow");
        return Err(err(
            StatusCode::FORBIDDEN,
            "the admin API is not open to this address",
        ));
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&api.token, given) {
        (Some(t), Some(g)) if constant_time_eq(t.as_bytes(), g.trim().as_bytes()) => Ok(()),
        (None, _) => Err(err(
            StatusCode::UNAUTHORIZED,
            "the admin API has no token configured (admin.token, admin.token_file or MERIDIAN_ADMIN_TOKEN)",
        )),
        _ => {
            tracing::warn!(client = %peer, path = %req.uri().path(), "admin API call with a missing or wrong token");
            Err(err(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(
    site: &Arc<SiteState>,
    peer: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Answer {
    let path: Vec<String> = parts
        .uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let m = &parts.method;
    let answer = match (m, p.as_slice()) {
        (&Method::GET, ["api", "pools"]) => (StatusCode::OK, super::admin::status(site)),
        (&Method::GET, ["api", "pools", name]) => one_pool(site, name),
        (&Method::POST, ["api", "pools", name, "servers"]) => {
            with_pool(site, name, |pool| add(pool, body))
        }
        (&Method::DELETE, ["api", "pools", name, "servers", id]) => {
            with_pool(site, name, |pool| remove(pool, id))
        }
        (&Method::PATCH | &Method::PUT | &Method::POST, ["api", "pools", name, "servers", id]) => {
            with_pool(site, name, |pool| change(pool, id, body))
        }
        (&Method::GET, ["api", "site"]) => (StatusCode::OK, site_state(site)),
        (&Method::PUT | &Method::POST, ["api", "site"]) => set_site(site, body),
        (&Method::POST, ["api", "reload"]) => reload(site).await,
        (&Method::POST, ["drain"]) => legacy_drain(site, parts, ServerState::Drain),
        (&Method::POST, ["undrain"]) => legacy_drain(site, parts, ServerState::Ready),
        _ => err(StatusCode::NOT_FOUND, "no such API call"),
    };
    if *m != Method::GET {
        tracing::info!(client = %peer, method = %m, path = %parts.uri.path(), status = answer.0.as_u16(), "admin API call");
    }
    answer
}

fn with_pool(site: &SiteState, name: &str, f: impl FnOnce(&Arc<Pool>) -> Answer) -> Answer {
    match site.pool(name) {
        Some(p) => f(&p),
        None => err(StatusCode::NOT_FOUND, format!("no pool {name:?}")),
    }
}

fn one_pool(site: &SiteState, name: &str) -> Answer {
    let all = super::admin::status(site);
    let found = all["pools"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name).cloned());
    match found {
        Some(p) => (StatusCode::OK, p),
        None => err(StatusCode::NOT_FOUND, format!("no pool {name:?}")),
    }
}

fn member_error(e: MemberError) -> Answer {
    let code = match e {
        MemberError::Exists { .. } | MemberError::LastServer { .. } => StatusCode::CONFLICT,
        MemberError::NoSuchServer { .. } => StatusCode::NOT_FOUND,
    };
    err(code, e)
}

fn parse_state(s: &str) -> Result<ServerState, Answer> {
    ServerState::parse(s).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("unknown state {s:?}: ready, drain or maintenance"),
        )
    })
}

fn check_weight(w: Option<u32>) -> Result<(), Answer> {
    match w {
        Some(w) if w > 1000 => Err(err(StatusCode::BAD_REQUEST, "weight must be 0..=1000")),
        _ => Ok(()),
    }
}

fn add(pool: &Arc<Pool>, body: &Bytes) -> Answer {
    let a: AddServer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
    };
    let Ok(address) = a.address.trim().parse::<SocketAddr>() else {
        return err(
            StatusCode::BAD_REQUEST,
            "address: expected IP:port, such as 127.0.0.1:8080 or [::1]:8080",
        );
    };
    if let Err(e) = check_weight(a.weight) {
        return e;
    }
    let max_connections = a.max_connections.unwrap_or(1024);
    if !(1..=1_000_000).contains(&max_connections) {
        return err(
            StatusCode::BAD_REQUEST,
            "max_connections must be 1..=1000000",
        );
    }
    let state = match a.state.as_deref().map(parse_state).transpose() {
        Ok(s) => s.unwrap_or(ServerState::Ready),
        Err(e) => return e,
    };
    let s = ServerConfig {
        address,
        id: a.id.unwrap_or_else(|| a.address.trim().to_string()),
        weight: a.weight.unwrap_or(1),
        max_connections,
        initial_up: Some(pool.cfg.check.as_ref().is_none_or(|c| c.initial_up)),
        drain: false,
    };
    let id = s.id.clone();
    match pool.add(s, Origin::Api) {
        Ok(b) => {
            if state != ServerState::Ready {
                b.set_state(state);
                pool.refresh();
            }
            (
                StatusCode::CREATED,
                json!({ "pool": pool.cfg.name, "id": id, "state": state.as_str() }),
            )
        }
        Err(e) => member_error(e),
    }
}

fn remove(pool: &Pool, id: &str) -> Answer {
    let in_flight = pool
        .members()
        .by_id(id)
        .map(|b| b.in_flight.load(Ordering::Relaxed));
    match pool.remove(id) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            json!({ "pool": pool.cfg.name, "id": id, "state": "removing", "in_flight": in_flight }),
        ),
        Err(e) => member_error(e),
    }
}

fn change(pool: &Pool, id: &str, body: &Bytes) -> Answer {
    let c: ChangeServer = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
    };
    if c.weight.is_none() && c.state.is_none() {
        return err(StatusCode::BAD_REQUEST, "give weight and/or state");
    }
    if let Err(e) = check_weight(c.weight) {
        return e;
    }
    let state = match c.state.as_deref().map(parse_state).transpose() {
        Ok(s) => s,
        Err(e) => return e,
    };
    if let Some(w) = c.weight
        && let Err(e) = pool.set_weight(id, w)
    {
        return member_error(e);
    }
    if let Some(s) = state
        && let Err(e) = pool.set_state(id, s)
    {
        return member_error(e);
    }
    let m = pool.members();
    let b = m.by_id(id);
    (
        StatusCode::OK,
        json!({
            "pool": pool.cfg.name,
            "id": id,
            "weight": b.map(|b| b.weight()),
            "state": b.map(|b| b.state().as_str()),
        }),
    )
}

fn site_state(site: &SiteState) -> Value {
    let state = if site.draining.load(Ordering::Relaxed) {
        "stopping"
    } else if site.admin_draining.load(Ordering::Relaxed) {
        "draining"
    } else {
        "ready"
    };
    json!({ "state": state, "health": super::admin::health(site) })
}

fn set_site(site: &SiteState, body: &Bytes) -> Answer {
    let c: SiteChange = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
    };
    let draining = match c.state.as_str() {
        "draining" | "drain" => true,
        "ready" | "up" => false,
        other => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("unknown site state {other:?}: ready or draining"),
            );
        }
    };
    let before = site.admin_draining.swap(draining, Ordering::Relaxed);
    if before != draining {
        tracing::warn!(
            draining,
            "site state changed by the admin API: /health now says {}",
            if draining {
                "draining"
            } else {
                "up (if servers are)"
            }
        );
    }
    (StatusCode::OK, site_state(site))
}

async fn reload(site: &SiteState) -> Answer {
    match site.reload.reload().await {
        Ok(summary) => (
            StatusCode::OK,
            json!({ "reloaded": true, "changes": summary }),
        ),
        Err(e) => err(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

fn legacy_drain(site: &SiteState, parts: &hyper::http::request::Parts, to: ServerState) -> Answer {
    let q = parts.uri.query().unwrap_or("");
    let (Some(pool), Some(server)) = (
        crate::telemetry::http::query_param(q, "pool"),
        crate::telemetry::http::query_param(q, "server"),
    ) else {
        return err(StatusCode::BAD_REQUEST, "expected ?pool=NAME&server=ID");
    };
    with_pool(site, &pool, |p| match p.set_state(&server, to) {
        Ok(()) => (
            StatusCode::OK,
            json!({ "id": server, "state": to.as_str() }),
        ),
        Err(e) => member_error(e),
    })
}
