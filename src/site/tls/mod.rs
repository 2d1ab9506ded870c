//! TLS with rustls: termination on listeners (certificates chosen by SNI, ALPN h2 and
//! http/1.1, TLS 1.2+ only, certificates reloaded on SIGHUP without touching open
//! connections) and TLS towards backends verified against a CA file.
//!
//! Every file is read when a listener starts, by `meridian check` ([`preflight`]), and on
//! every site reload (SIGHUP or the admin API), which re-reads the certificates of listeners
//! that keep running; a reload whose files do not load changes nothing and is logged and
//! counted.

mod accept;
mod certs;
mod client;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use accept::{Handshakes, ListenerTls, handshake, prepare_listener, prepare_pool};
pub use certs::CertReloader;
pub(crate) use certs::{CertInfo, CertStore, Resolver, TlsListener};
pub(crate) use client::BackendTls;
pub(crate) use stream::BackendStream;

use crate::config::site::SiteConfig;

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file held no PEM item of the expected kind, or a bad one.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// rustls refused the material or the settings.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being done.
        context: String,
        /// Why.
        source: rustls::Error,
    },
}

/// Reads every certificate, key and CA file a site names, as starting the site would; for
/// `meridian check`.
pub fn preflight(cfg: &SiteConfig) -> Result<usize, TlsError> {
    let mut n = 0;
    for l in &cfg.listeners {
        if let Some(t) = &l.tls {
            let store = CertStore::load(t)?;
            certs::server_config(t, l.h2, Arc::new(Resolver::new(store)))?;
            n += t.certificates.len();
        }
    }
    for p in &cfg.pools {
        if let Some(t) = &p.tls {
            BackendTls::load(t)?;
            n += 1;
        }
    }
    Ok(n)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
