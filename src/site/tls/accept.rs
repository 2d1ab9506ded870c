//! The TLS side of a listener: loading certificates when the site starts, the handshake of each
//! client connection (bounded by the listener's `header_timeout`), and reloading on SIGHUP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certs::{CertStore, server_config};
use super::{BackendTls, TlsError};
use crate::config::site::SiteConfig;
use crate::site::l7::metrics::FeatureMetrics;
use crate::site::{SiteError, SiteState};

/// Handshake counters of one listener, resolved once.
#[derive(Debug)]
pub(crate) struct Handshakes {
    h2: IntCounter,
    h1: IntCounter,
    error: IntCounter,
    timeout: IntCounter,
}

impl Handshakes {
    pub(crate) fn new(m: &FeatureMetrics, listener: &str) -> Self {
        let c =
            |result: &str, alpn: &str| m.handshakes.with_label_values(&[listener, result, alpn]);
        Handshakes {
            h2: c("ok", "h2"),
            h1: c("ok", "http/1.1"),
            error: c("error", ""),
            timeout: c("timeout", ""),
        }
    }
}

/// Loads every listener's certificates and every pool's CA; the acceptors by listener.
pub(crate) fn start(
    cfg: &SiteConfig,
    state: &SiteState,
) -> Result<Vec<Option<TlsAcceptor>>, SiteError> {
    for (pool, pc) in state.pools.iter().zip(&cfg.pools) {
        if let Some(t) = &pc.tls {
            let tls =
                BackendTls::load(t).map_err(|e| tls_err(&format!("pool {:?}", pc.name), e))?;
            for b in &pool.backends {
                b.conns.set_tls(tls.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (i, lc) in cfg.listeners.iter().enumerate() {
        let Some(t) = &lc.tls else {
            out.push(None);
            continue;
        };
        let item = format!("listener {}", lc.bind);
        let resolver = state
            .certs
            .listeners
            .iter()
            .find(|(idx, ..)| *idx == i)
            .map(|(.., r)| Arc::clone(r))
            .ok_or_else(|| SiteError::Listeners(format!("{item}: no certificate resolver")))?;
        let store = CertStore::load(t).map_err(|e| tls_err(&item, e))?;
        state.certs.publish(&store, &lc.bind.to_string());
        resolver.store.store(Arc::new(store));
        let sc = server_config(t, lc.h2, resolver).map_err(|e| tls_err(&item, e))?;
        out.push(Some(TlsAcceptor::from(sc)));
    }
    Ok(out)
}

fn tls_err(item: &str, e: TlsError) -> SiteError {
    SiteError::Tls(format!("{item}: {e}"))
}

/// The handshake of one client connection; `None` (counted) when it fails or times out.
/// The flag says whether ALPN chose h2.
pub(crate) async fn handshake<IO>(
    acceptor: &TlsAcceptor,
    io: IO,
    timeout: Duration,
    m: &Handshakes,
    peer: SocketAddr,
) -> Option<(TlsStream<IO>, bool)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(s)) => {
            let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
            if h2 { &m.h2 } else { &m.h1 }.inc();
            Some((s, h2))
        }
        Ok(Err(e)) => {
            m.error.inc();
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            m.timeout.inc();
            tracing::debug!(client = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Reloads the certificates on every SIGHUP, for the life of the site.
pub(crate) async fn reload_on_sighup(state: Arc<SiteState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates will not reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            // Failures are logged and counted by `reload`; the old certificates stay.
            let _ = state.certs.reload();
        }
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        std::future::pending::<()>().await;
    }
}
