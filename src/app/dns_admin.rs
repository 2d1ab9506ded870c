//! The DNS side's admin listener:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /status` | the status page: map, datacenter table, explain form (`?name=&client=`) |
//! | `GET /status/live` | the page's map and table alone (the page refreshes with it) |
//! | `GET /status.json` | every datacenter's health, place and share of recent answers |
//! | `GET /explain.json?name=&client=` | the live decision for one client, step by step |
//! | `GET /metrics` | Prometheus text exposition |
//! | `GET /health` | `ok` while the process serves |
//! | `POST /api/datacenters/ZONE/DC` | drain or force a datacenter (bearer token) |
//!
//! Reads are open: bind the listener to loopback or a management network. Writes need the
//! token.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Deserialize;

use crate::app::status::{self, AnswerShares, ExplainForm, StatusView};
use crate::config::{Name, ZoneSet};
use crate::dns::Zones;
use crate::geo::{DatabaseCache, Locator};
use crate::gslb::{ExplainError, Explained, explain_in, find_service, parse_client};
use crate::probe::{DcState, HealthBoard};
use crate::telemetry::http::{
    AdminHandler, AdminRequest, AdminResponse, json, metrics, query_param, respond, text,
};

/// What the admin handlers need.
#[derive(Debug, Clone)]
pub struct DnsAdmin {
    /// The process's metrics.
    pub registry: Registry,
    /// Live health.
    pub board: HealthBoard,
    /// Bearer token required by `/api/` calls; `None` refuses every call.
    pub token: Option<String>,
    /// The zones being served.
    pub zones: Arc<Zones>,
    /// The compiled GeoIP databases (shared with the steering), for live explain.
    pub geo: Arc<Mutex<DatabaseCache>>,
    /// Answer shares over the last minute.
    pub shares: Arc<AnswerShares>,
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
            Box::pin(async move {
                // Explaining may compile a GeoIP database replaced on disk: off the runtime.
                let fallback = text(StatusCode::INTERNAL_SERVER_ERROR, "admin handler failed\n");
                tokio::task::spawn_blocking(move || me.route(req))
                    .await
                    .unwrap_or(fallback)
            })
        })
    }

    fn route(&self, req: AdminRequest) -> AdminResponse {
        match (&req.method, req.path.as_str()) {
            (&Method::GET, "/metrics") => metrics(&self.registry),
            (&Method::GET, "/health") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/status.json") => json(StatusCode::OK, &self.view()),
            (&Method::GET, "/status" | "/status/") => self.page(&req.query),
            (&Method::GET, "/status/live") => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                status::live_fragment(&self.view()),
            ),
            (&Method::GET, "/explain.json") => {
                let name = query_param(&req.query, "name").unwrap_or_default();
                let client = query_param(&req.query, "client").unwrap_or_default();
                match self.explain(&name, &client) {
                    Ok(x) => json(StatusCode::OK, &x),
                    Err(e) => json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({ "error": e.to_string() }),
                    ),
                }
            }
            (_, p) if p.starts_with("/api/") => self.api(&req),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// The status of every datacenter now.
    pub fn view(&self) -> StatusView {
        StatusView::gather(
            self.board.status(),
            &self.zones.current(),
            &self.shares.shares(),
        )
    }

    fn page(&self, query: &str) -> AdminResponse {
        let mut form = ExplainForm {
            name: query_param(query, "name").unwrap_or_default(),
            client: query_param(query, "client").unwrap_or_default(),
            result: None,
        };
        if !form.client.is_empty() {
            form.result = Some(
                self.explain(&form.name, &form.client)
                    .map_err(|e| e.to_string()),
            );
        }
        let html = status::page(&self.view(), &self.zones.current(), &form);
        respond(StatusCode::OK, "text/html; charset=utf-8", html)
    }

    /// Explains the decision for `client` asking for `name`, against the zones being served
    /// and the board's health now.
    pub fn explain(&self, name: &str, client: &str) -> Result<Explained, ExplainError> {
        let set = self.zones.current();
        let (zone, service) = find_service(&set, name)?;
        let client = parse_client(client)?;
        let locator = {
            let mut cache = self.geo.lock().unwrap_or_else(PoisonError::into_inner);
            Locator::new(&zone.geoip, &mut cache)?
        };
        let names: Vec<&str> = zone.datacenters.iter().map(|d| d.name.as_str()).collect();
        let health = self.view().health_of(zone.origin.as_str(), &names);
        Ok(explain_in(&zone, service, &locator, &health, client))
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

/// Process-level metrics of `meridian dns` beyond the query path's: build, served zone
/// serials, the outcome of the latest reload, and the process collector (CPU, memory, file
/// descriptors, start time).
#[derive(Debug, Clone)]
pub struct OpsMetrics {
    serial: IntGaugeVec,
    last_ok: IntGauge,
    last_ok_time: Gauge,
}

impl OpsMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let build = IntGaugeVec::new(
            Opts::new(
                "meridian_build_info",
                "Always 1; the labels name the running version",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let serial = IntGaugeVec::new(
            Opts::new(
                "meridian_dns_zone_serial",
                "SOA serial of each zone being served (compare across servers)",
            ),
            &["zone"],
        )?;
        let last_ok = IntGauge::new(
            "meridian_dns_config_last_reload_successful",
            "1 when the latest zone load or reload succeeded, 0 when it was rejected",
        )?;
        let last_ok_time = Gauge::new(
            "meridian_dns_config_last_reload_success_timestamp_seconds",
            "Time of the latest successful zone load or reload (Unix seconds)",
        )?;
        registry.register(Box::new(build))?;
        registry.register(Box::new(serial.clone()))?;
        registry.register(Box::new(last_ok.clone()))?;
        registry.register(Box::new(last_ok_time.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(OpsMetrics {
            serial,
            last_ok,
            last_ok_time,
        })
    }

    /// Records a zone set that is now served.
    pub fn loaded(&self, set: &ZoneSet) {
        self.serial.reset();
        for z in set.zones() {
            self.serial
                .with_label_values(&[z.origin.as_str()])
                .set(i64::from(z.soa.serial));
        }
        self.last_ok.set(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_ok_time.set(now.as_secs_f64());
    }

    /// Records a rejected reload (the old zones keep serving).
    pub fn rejected(&self) {
        self.last_ok.set(0);
    }
}
