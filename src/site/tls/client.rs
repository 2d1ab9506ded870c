//! TLS towards a pool's servers: a rustls client verifying the servers against the pool's CA
//! file, under the configured name or the server's IP address.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::certs::read_certs;
use super::{TlsError, provider};
use crate::config::site::BackendTlsConfig;

/// A pool's TLS client.
#[derive(Clone)]
pub(crate) struct BackendTls {
    connector: TlsConnector,
    name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BackendTls {
    pub(crate) fn load(cfg: &BackendTlsConfig) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(&cfg.ca)? {
            roots.add(c).map_err(|source| TlsError::Rustls {
                context: format!("CA file {}", cfg.ca.display()),
                source,
            })?;
        }
        let mut cc = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                context: "protocol versions".into(),
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The backend connections speak HTTP/1.1.
        cc.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(BackendTls {
            connector: TlsConnector::from(Arc::new(cc)),
            name: cfg.server_name.clone(),
        })
    }

    /// Runs the handshake on a connected socket.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        self.connector.connect(name, tcp).await
    }
}
