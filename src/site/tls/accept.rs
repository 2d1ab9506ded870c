//! The TLS side of a listener: loading certificates when the listener starts (site start or a
//! reload that restarts it), and the handshake of each client connection (bounded by the
//! listener's `header_timeout`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certs::{CertStore, Resolver, TlsListener, server_config};
use super::{BackendTls, TlsError};
use crate::config::site::{ListenerConfig, PoolConfig};
use crate::site::SiteError;
use crate::site::l7::metrics::FeatureMetrics;

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

/// A TLS listener ready to accept: its acceptor, its handshake counters, and what a
/// certificate reload needs.
pub(crate) struct ListenerTls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) handshakes: Handshakes,
    pub(crate) certs: Arc<TlsListener>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("certs", &self.certs)
            .finish_non_exhaustive()
    }
}

/// Loads a listener's certificates (when it has TLS) and builds its acceptor.
pub(crate) fn prepare_listener(
    lc: &ListenerConfig,
    m: &FeatureMetrics,
) -> Result<Option<ListenerTls>, SiteError> {
    let Some(t) = &lc.tls else {
        return Ok(None);
    };
    let item = format!("listener {}", lc.bind);
    let store = CertStore::load(t).map_err(|e| tls_err(&item, e))?;
    let resolver = Arc::new(Resolver::new(store));
    let sc = server_config(t, lc.h2, Arc::clone(&resolver)).map_err(|e| tls_err(&item, e))?;
    let name = lc.bind.to_string();
    Ok(Some(ListenerTls {
        acceptor: TlsAcceptor::from(sc),
        handshakes: Handshakes::new(m, &name),
        certs: Arc::new(TlsListener {
            name,
            cfg: t.clone(),
            resolver,
        }),
    }))
}

/// Loads a pool's CA for TLS towards its servers, when it has one.
pub(crate) fn prepare_pool(pc: &PoolConfig) -> Result<Option<BackendTls>, SiteError> {
    pc.tls
        .as_ref()
        .map(|t| BackendTls::load(t).map_err(|e| tls_err(&format!("pool {:?}", pc.name), e)))
        .transpose()
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
