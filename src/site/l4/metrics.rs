//! Metrics of the TCP (L4) listeners, in the site's registry beside the HTTP ones.

use prometheus::{IntCounterVec, Opts, Registry};

/// L4 metric families.
#[derive(Debug, Clone)]
pub(crate) struct L4Metrics {
    /// Connections relayed, by pool and server.
    pub(crate) connections: IntCounterVec,
    /// Failed connection attempts to a server (refused, timed out), by pool and server.
    pub(crate) connect_errors: IntCounterVec,
    /// Bytes relayed, by pool and direction (`up`: client to server).
    pub(crate) bytes: IntCounterVec,
    /// Client connections closed, by listener and reason.
    pub(crate) closed: IntCounterVec,
}

impl L4Metrics {
    /// Registers the families in `r`.
    pub(crate) fn new(r: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(Opts::new(name, help), labels)?;
            r.register(Box::new(v.clone()))?;
            Ok(v)
        };
        Ok(L4Metrics {
            connections: vec(
                "meridian_site_l4_connections_total",
                "TCP connections relayed to a server",
                &["pool", "server"],
            )?,
            connect_errors: vec(
                "meridian_site_l4_connect_errors_total",
                "Failed connection attempts to a server (refused or timed out)",
                &["pool", "server"],
            )?,
            bytes: vec(
                "meridian_site_l4_bytes_total",
                "Bytes relayed; up = client to server",
                &["pool", "direction"],
            )?,
            closed: vec(
                "meridian_site_l4_closed_total",
                "Client connections closed, by reason (done, idle, error, no_server, proxy_header)",
                &["listener", "reason"],
            )?,
        })
    }
}
