//! `meridian dns`: load zones, serve them, reload on SIGHUP, stop on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::dns_admin::OpsMetrics;
use crate::app::status::AnswerShares;
use crate::config::Diagnostic;
use crate::dns::{DnsMetrics, DnsOptions, DnsServer, Zones};
use crate::probe::HealthBoard;

/// The status page's answer shares cover this much time...
const SHARE_WINDOW: Duration = Duration::from_secs(60);
/// ...sampled this often.
const SHARE_PERIOD: Duration = Duration::from_secs(5);

/// Settings of `meridian dns`.
#[derive(Debug, Clone)]
pub struct DnsArgs {
    /// Zone directory (or one file).
    pub zones: PathBuf,
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads per address.
    pub udp_workers: usize,
    /// Admin listener (metrics, status, API); `None` for none.
    pub admin: Option<SocketAddr>,
    /// Bearer token of the admin API.
    pub admin_token: Option<String>,
}

/// Worker threads: `TOKIO_WORKER_THREADS` when set (the benchmark harnesses set it), else one per
/// core.
pub fn default_workers() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs the DNS server until SIGTERM or Ctrl-C.
pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    // Signal handlers first: a SIGHUP that arrives once the server is up must reload, not kill.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let registry = Registry::new();
    let metrics = DnsMetrics::new(&registry)?;
    let ops = OpsMetrics::new(&registry)?;
    for result in ["ok", "error"] {
        // Both series exist from the start, so `increase(...{result="error"}[5m])` alerts work.
        metrics.reloads.with_label_values(&[result]);
    }
    let board = HealthBoard::new(&registry)?;
    let gslb_metrics = crate::gslb::GslbMetrics::new(&registry)?;
    let geo = Arc::new(std::sync::Mutex::new(crate::geo::DatabaseCache::default()));
    let steering = crate::gslb::steering_factory_cached(
        board.clone(),
        Some(gslb_metrics.clone()),
        geo.clone(),
    );
    let zones = Zones::load(&args.zones, steering, metrics.clone()).map_err(|e| {
        for d in &e.diagnostics {
            log_diagnostic(d, "zone file rejected");
        }
        anyhow::anyhow!(
            "{} error(s) in {}",
            e.diagnostics.len(),
            args.zones.display()
        )
    })?;
    let zones = Arc::new(zones);
    // Never answer blind: the first round of checks runs before the listeners open.
    board.first_round().await;
    let options = DnsOptions {
        listen: args.listen.clone(),
        udp_workers: args.udp_workers,
        ..DnsOptions::default()
    };
    let server = DnsServer::start(&zones, &options).await?;
    let set = zones.current();
    ops.loaded(&set);
    for z in set.zones() {
        tracing::info!(zone = %z.origin, serial = z.soa.serial, file = %z.file.display(), "serving zone");
    }
    for a in &server.local_addrs {
        tracing::info!(addr = %a, workers = options.udp_workers, "listening on UDP and TCP");
    }
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
    if let Some(addr) = args.admin {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "admin listening (/status, /metrics, /status.json, /api)");
        let shares = Arc::new(AnswerShares::new(gslb_metrics.clone(), SHARE_WINDOW));
        tokio::spawn(shares.clone().run(SHARE_PERIOD, admin_stopped.clone()));
        let handler = crate::app::dns_admin::DnsAdmin {
            registry: registry.clone(),
            board: board.clone(),
            token: args.admin_token.clone(),
            zones: zones.clone(),
            geo,
            shares,
        }
        .handler();
        tokio::spawn(crate::telemetry::http::serve(
            listener,
            handler,
            admin_stopped,
        ));
    }
    loop {
        tokio::select! {
            _ = hup.recv() => match reload(&zones, &board).await {
                Ok(set) => {
                    metrics.reloads.with_label_values(&["ok"]).inc();
                    ops.loaded(&set);
                    tracing::info!(zones = set.zones().len(), "zones reloaded");
                    for z in set.zones() {
                        tracing::info!(zone = %z.origin, serial = z.soa.serial,
                            file = %z.file.display(), "serving zone");
                    }
                }
                Err(e) => {
                    metrics.reloads.with_label_values(&["error"]).inc();
                    ops.rejected();
                    for d in &e.diagnostics {
                        log_diagnostic(d, "reload rejected; the old zones keep serving");
                    }
                }
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = stop_admin.send(true);
    server.shutdown().await;
    Ok(())
}

/// Reads the zones again; new datacenters get their first check before the new set serves.
async fn reload(
    zones: &Zones,
    board: &HealthBoard,
) -> Result<std::sync::Arc<crate::config::ZoneSet>, crate::config::ConfigError> {
    let loaded = zones.prepare()?;
    board.first_round().await;
    Ok(zones.publish(loaded))
}

/// Logs a zone-file problem with its position as fields (for JSON logs) and as text.
fn log_diagnostic(d: &Diagnostic, what: &str) {
    tracing::error!(
        file = %d.file.display(),
        line = d.line,
        col = d.col,
        item = %d.item,
        value = %d.value,
        error = %d.message,
        "{what}: {d}"
    );
}
