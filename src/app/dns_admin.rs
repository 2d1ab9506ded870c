//! The DNS side's admin listener: `/metrics` (Prometheus), `/status.json` (datacenters and
//! their health), `/health`, and `POST /api/datacenters/ZONE/DC` to drain or force a datacenter
//! (token-authenticated).

use std::sync::Arc;

use hyper::{Method, StatusCode};
use prometheus::Registry;
use serde::Deserialize;

use crate::config::Name;
use crate::probe::{DcState, HealthBoard};
use crate::telemetry::http::{AdminHandler, AdminRequest, AdminResponse, json, metrics, text};

/// What the admin handlers need.
#[derive(Debug, Clone)]
pub struct DnsAdmin {
    /// The process's metrics.
    pub registry: Registry,
    /// Live health.
    pub board: HealthBoard,
    /// Bearer token required by `/api/` calls; `None` refuses every call.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetState {
    /// `up`, `draining`, `down`, or null to hand the datacenter back to its checks.
    state: Option<String>,
}

impl DnsAdmin {
    /// The handler for [`crate::telemetry::http::serve`].
    pub fn handler(self) -> AdminHandler {
        let me = Arc::new(self);
        Arc::new(move |req| {
            let me = me.clone();
            Box::pin(async move { me.route(req) })
        })
    }

    fn route(&self, req: AdminRequest) -> AdminResponse {
        match (&req.method, req.path.as_str()) {
            (&Method::GET, "/metrics") => metrics(&self.registry),
            (&Method::GET, "/health") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/status.json") => json(StatusCode::OK, &self.board.status()),
            (_, p) if p.starts_with("/api/") => self.api(&req),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn authorized(&self, req: &AdminRequest) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        req.headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    fn api(&self, req: &AdminRequest) -> AdminResponse {
        if !self.authorized(req) {
            return text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        }
        let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (&req.method, parts.as_slice()) {
            (&Method::POST, ["api", "datacenters", zone, dc]) => {
                let Ok(zone) = Name::parse_absolute(zone) else {
                    return text(StatusCode::BAD_REQUEST, "bad zone name\n");
                };
                let body: SetState = match serde_json::from_slice(&req.body) {
                    Ok(b) => b,
                    Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad body: {e}\n")),
                };
                let state = match body.state.as_deref() {
                    None => None,
                    Some("up") => Some(DcState::Up),
                    Some("draining") => Some(DcState::Draining),
                    Some("down") => Some(DcState::Down),
                    Some(other) => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            format!("unknown state {other:?}: up, draining, down or null\n"),
                        );
                    }
                };
                match self.board.set_admin(&zone, dc, state) {
                    Ok(()) => text(StatusCode::OK, "ok\n"),
                    Err(e) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "no such API call\n"),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
