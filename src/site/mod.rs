//! The site balancer: `meridian site --config FILE`. It spreads HTTP traffic over a site's
//! backends with the shared [`crate::balance`] engine and reports the site's own health to the
//! DNS side on an admin listener.
//!
//! # Layout
//!
//! ```text
//! listener ─► serve ─┬─► h1 (HTTP/1.1, no body) ─┬─► proxy ─► pool::pick (balance) ─► upstream
//!                    └─► hyper (the rest, h2c) ──┘              ▲      ▲
//!                                  checker (active) ────────────┘      └── record(): passive ejection,
//!                                                                          breaker, latency estimate
//! admin listener ─► /health /metrics /status /drain
//! ```
//!
//! Clients' HTTP/1.1 requests without a body (most traffic) are served by `h1` on `httparse`,
//! the backend's request head written straight from the client's fields; anything else (a
//! body, HTTP/1.0, h2c, a malformed head, a listener with routing features) is handed with the
//! bytes read so far to hyper, which serves that connection from then on. Towards the backends
//! `upstream` speaks HTTP/1.1 itself on `httparse` (one buffer per request head, response
//! bodies read straight from the socket).
//!
//! Sockets and shutdown are injected ([`Site::run`] takes bound [`Listeners`] and a future), so
//! tests bind `127.0.0.1:0` and end a site without signals.

mod admin;
mod affinity;
mod api;
mod backend;
mod body;
mod breaker;
mod checker;
pub mod ctl;
mod discovery;
mod front;
mod h1;
mod headers;
mod io;
mod l4;
mod l7;
mod metrics;
mod page;
mod pool;
mod proxy;
mod reload;
mod risefall;
mod serve;
mod tls;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use tokio::net::TcpListener;

pub use admin::HealthReport;
pub use backend::{Origin, ServerState};
pub use breaker::{Breaker, BreakerState};
pub use headers::{Client, RequestIds, add_forwarded, strip_hop_by_hop};
pub use metrics::SiteMetrics;
pub use reload::{ReloadError, ReloadHandle, reload_on_sighup};
pub use risefall::RiseFall;
pub use serve::shutdown_signal;
pub use tls::{CertReloader, TlsError, preflight};

use crate::config::site::{ApiConfig, SiteConfig};
use pool::Pool;

/// Errors that stop a site.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listeners given do not match the configuration.
    #[error("{0}")]
    Listeners(String),
    /// TLS material could not be loaded.
    #[error("{0}")]
    Tls(String),
}

/// Bound sockets for a site: one per `[[listeners]]` entry, in order, and the admin listener.
#[derive(Debug)]
pub struct Listeners {
    /// Client-facing listeners, in the order of the configuration.
    pub http: Vec<TcpListener>,
    /// The admin listener, when the configuration has one.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address of the configuration.
    pub async fn bind(cfg: &SiteConfig) -> Result<Self, SiteError> {
        let mut http = Vec::new();
        for l in &cfg.listeners {
            http.push(bind(l.bind).await?);
        }
        let admin = match &cfg.admin {
            Some(a) => Some(bind(a.bind).await?),
            None => None,
        };
        Ok(Listeners { http, admin })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SiteError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SiteError::Bind { addr, source })
}

/// State shared by every connection of a site.
#[derive(Debug)]
pub(crate) struct SiteState {
    /// The pools, swapped whole by a reload.
    pools: ArcSwap<Vec<Arc<Pool>>>,
    /// Set by SIGTERM: the site is going away.
    pub(crate) draining: AtomicBool,
    /// Set by the admin API: the site asks the DNS side to steer clients away, and serves on.
    pub(crate) admin_draining: AtomicBool,
    pub(crate) metrics: SiteMetrics,
    pub(crate) ids: Arc<RequestIds>,
    pub(crate) l4: l4::L4Metrics,
    /// Who may call the admin API (swapped by a reload).
    pub(crate) api: ArcSwap<ApiConfig>,
    pub(crate) reload: ReloadHandle,
    pub(crate) reloads: prometheus::IntCounterVec,
    pub(crate) discovery: discovery::DiscoveryMetrics,
    /// The running listeners (features, certificates), in configuration order; replaced
    /// when listeners start or restart.
    pub(crate) listeners: ArcSwap<Vec<front::ListenerView>>,
    /// The certificates of the running TLS listeners.
    pub(crate) certs: tls::CertReloader,
    /// The site's name on its status page (the site file's name).
    pub(crate) name: String,
    /// Counter samples for the status page's recent figures.
    pub(crate) recent: page::Recent,
    /// `admin.slow_latency` in nanoseconds (swapped by a reload).
    pub(crate) slow_latency: AtomicU64,
}

impl SiteState {
    /// The pools now.
    pub(crate) fn pools(&self) -> Arc<Vec<Arc<Pool>>> {
        self.pools.load_full()
    }

    /// A pool by name.
    pub(crate) fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools
            .load()
            .iter()
            .find(|p| p.cfg.name == name)
            .cloned()
    }

    /// Starts a pool's tasks: active checks of its servers, and its discovery.
    pub(crate) fn start_pool(&self, p: &Arc<Pool>) {
        p.start();
        discovery::start(p, &self.discovery);
    }

    /// Whether `/health` says `draining` (SIGTERM, or the admin API).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.admin_draining.load(Ordering::Relaxed)
    }
}

/// A configured site, ready to run.
#[derive(Debug)]
pub struct Site {
    cfg: SiteConfig,
    state: Arc<SiteState>,
    reloads: reload::ReloadRequests,
}

impl Site {
    /// Builds pools and servers (no I/O yet).
    pub fn new(cfg: SiteConfig) -> Self {
        let metrics = SiteMetrics::new();
        let (reload, reloads) = reload::channel();
        let pools: Vec<Arc<Pool>> = cfg
            .pools
            .iter()
            .map(|p| Arc::new(Pool::new(p.clone(), &metrics)))
            .collect();
        let certs = tls::CertReloader::new(&metrics.features);
        let state = Arc::new(SiteState {
            pools: ArcSwap::from_pointee(pools),
            draining: AtomicBool::new(false),
            admin_draining: AtomicBool::new(false),
            l4: l4::L4Metrics::new(metrics.registry()).expect("L4 metric definitions are valid"),
            api: ArcSwap::from_pointee(api::resolve(cfg.admin.as_ref().map(|a| a.api.clone()))),
            reload,
            reloads: reload_counter(metrics.registry()),
            discovery: discovery::DiscoveryMetrics::new(metrics.registry())
                .expect("discovery metric definitions are valid"),
            metrics,
            ids: Arc::new(RequestIds::new()),
            listeners: ArcSwap::from_pointee(Vec::new()),
            certs,
            name: cfg
                .file
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            recent: page::Recent::new(),
            slow_latency: AtomicU64::new(slow_latency_ns(&cfg)),
        });
        Site {
            cfg,
            state,
            reloads,
        }
    }

    /// A handle that makes the running site re-read its file.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.state.reload.clone()
    }

    /// A handle that reloads the TLS listeners' certificates, as SIGHUP does.
    pub fn cert_reloader(&self) -> CertReloader {
        self.state.certs.clone()
    }

    /// The `/health` report now.
    pub fn health(&self) -> HealthReport {
        admin::health(&self.state)
    }

    /// Serves until `shutdown` completes, then drains: `/health` says `draining`, listeners stay
    /// open for `shutdown.delay`, then close; in-flight requests get up to `shutdown.grace`.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SiteError> {
        serve::run(self.cfg, self.state, listeners, shutdown, self.reloads).await
    }
}

/// Binds the configured addresses and runs the site until `shutdown` completes.
pub async fn run(cfg: SiteConfig, shutdown: impl Future<Output = ()>) -> Result<(), SiteError> {
    let listeners = Listeners::bind(&cfg).await?;
    let site = Site::new(cfg);
    let sighup = tokio::spawn(reload_on_sighup(site.reload_handle()));
    let r = site.run(listeners, shutdown).await;
    sighup.abort();
    r
}

/// `admin.slow_latency` of a configuration, in nanoseconds.
pub(crate) fn slow_latency_ns(cfg: &SiteConfig) -> u64 {
    cfg.admin
        .as_ref()
        .map_or(500_000_000, |a| a.slow_latency.as_nanos() as u64)
}

fn reload_counter(r: &prometheus::Registry) -> prometheus::IntCounterVec {
    let c = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "meridian_site_reloads_total",
            "Configuration reloads, by result (ok, error)",
        ),
        &["result"],
    )
    .expect("valid metric definition");
    r.register(Box::new(c.clone())).expect("unique metric name");
    for result in ["ok", "error"] {
        c.with_label_values(&[result]);
    }
    c
}

/// A Tokio runtime for a site: `threads` workers (else `TOKIO_WORKER_THREADS`, else one per
/// core). One thread means Tokio's current-thread scheduler: every task runs where the
/// sockets are polled, with no work-stealing machinery or cross-thread wake-ups.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.or_else(|| {
        std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    let mut b = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    b.enable_all().build()
}
