//! Server certificates: loaded from PEM, indexed by the DNS names they carry (exact and
//! wildcard), picked per handshake from the SNI name, and swapped whole on reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;

use super::{TlsError, provider};
use crate::config::site::{CertFiles, TlsConfig, TlsVersion};
use crate::site::l7::metrics::FeatureMetrics;

/// What `/status` shows of one certificate.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CertInfo {
    pub(crate) file: String,
    pub(crate) names: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

/// The certificates of one listener.
#[derive(Debug)]
pub(crate) struct CertStore {
    keys: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` is stored as `.example.com`.
    wildcard: HashMap<String, usize>,
    pub(crate) infos: Vec<CertInfo>,
}

impl CertStore {
    /// No certificate: every handshake fails (until the site has loaded the files).
    pub(crate) fn empty() -> Self {
        CertStore {
            keys: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            infos: Vec::new(),
        }
    }

    /// Reads every certificate and key of a listener.
    pub(crate) fn load(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let mut store = CertStore::empty();
        for (i, files) in cfg.certificates.iter().enumerate() {
            let (key, info) = load_pair(files)?;
            for name in &info.names {
                // The first certificate listing a name keeps it.
                match name.strip_prefix('*') {
                    Some(suffix) => store.wildcard.entry(suffix.to_string()).or_insert(i),
                    None => store.exact.entry(name.clone()).or_insert(i),
                };
            }
            store.keys.push(Arc::new(key));
            store.infos.push(info);
        }
        Ok(store)
    }

    /// The certificate for an SNI name: exact name, then a wildcard, then the first.
    pub(crate) fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let i = sni.and_then(|name| self.lookup(&name.to_ascii_lowercase()));
        self.keys.get(i.unwrap_or(0)).cloned()
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        // A wildcard covers exactly one label, as certificate validation (RFC 6125) says.
        let dot = name.find('.')?;
        self.wildcard.get(&name[dot..]).copied()
    }
}

fn load_pair(files: &CertFiles) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_err(&files.key, e))?;
    let ck = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Rustls {
        context: format!("{} with {}", files.cert.display(), files.key.display()),
        source: e,
    })?;
    let info = describe(&ck.cert[0], &files.cert)?;
    Ok((ck, info))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

fn pem_err(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            what: other.to_string(),
        },
    }
}

/// The DNS names (subject alternative names, else the common name) and expiry of a leaf.
fn describe(leaf: &CertificateDer<'_>, path: &Path) -> Result<CertInfo, TlsError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("cannot parse the certificate: {e}"),
    })?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(|s| s.to_ascii_lowercase()),
        );
    }
    Ok(CertInfo {
        file: path.display().to_string(),
        names,
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Picks a listener's certificate per handshake from the current [`CertStore`].
#[derive(Debug)]
pub(crate) struct Resolver {
    pub(crate) store: ArcSwap<CertStore>,
}

impl Resolver {
    pub(crate) fn new(store: CertStore) -> Self {
        Resolver {
            store: ArcSwap::from_pointee(store),
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().pick(hello.server_name())
    }
}

/// The rustls configuration of a listener: TLS 1.2 and 1.3 (or 1.3 only), ALPN h2 (when
/// the listener speaks it) and http/1.1, session tickets.
pub(crate) fn server_config(
    cfg: &TlsConfig,
    h2: bool,
    resolver: Arc<Resolver>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let rustls_err = |context: &str| {
        let context = context.to_string();
        move |source| TlsError::Rustls { context, source }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut sc = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(rustls_err("protocol versions"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    sc.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    sc.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(rustls_err("ticketer"))?;
    Ok(Arc::new(sc))
}

/// A running TLS listener's certificate settings and the resolver its handshakes use.
#[derive(Debug)]
pub(crate) struct TlsListener {
    /// The listener's address, as in metrics.
    pub(crate) name: String,
    pub(crate) cfg: TlsConfig,
    pub(crate) resolver: Arc<Resolver>,
}

/// Reloads the certificates of every running TLS listener (a site reload does it too).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct CertReloader {
    /// The running listeners (the front publishes them when listeners start or restart).
    listeners: Arc<ArcSwap<Vec<Arc<TlsListener>>>>,
    metrics: FeatureMetrics,
}

impl CertReloader {
    pub(crate) fn new(metrics: &FeatureMetrics) -> Self {
        CertReloader {
            listeners: Arc::new(ArcSwap::from_pointee(Vec::new())),
            metrics: metrics.clone(),
        }
    }

    /// The TLS listeners now running; their certificates' expiry gauges are set.
    pub(crate) fn set(&self, listeners: Vec<Arc<TlsListener>>) {
        if !listeners.is_empty() {
            for result in ["ok", "error"] {
                self.metrics.reloads.with_label_values(&[result]);
            }
        }
        for l in &listeners {
            self.publish(&l.resolver.store.load(), &l.name);
        }
        self.listeners.store(Arc::new(listeners));
    }

    /// Sets the expiry gauges of a listener's certificates.
    fn publish(&self, store: &CertStore, listener: &str) {
        for info in &store.infos {
            self.metrics
                .cert_expiry
                .with_label_values(&[listener, info.file.as_str()])
                .set(info.not_after);
        }
    }

    /// Reads the files of the running TLS listeners that `only` accepts (by address); returns
    /// the new stores, or the first error (nothing is swapped in then).
    pub(crate) fn load_all(
        &self,
        only: impl Fn(&str) -> bool,
    ) -> Result<Vec<(Arc<TlsListener>, CertStore)>, TlsError> {
        let list = self.listeners.load();
        let mut out = Vec::with_capacity(list.len());
        for l in list.iter().filter(|l| only(&l.name)) {
            match CertStore::load(&l.cfg) {
                Ok(store) => out.push((Arc::clone(l), store)),
                Err(e) => {
                    tracing::warn!(listener = %l.name, error = %e, "certificate reload failed; keeping the old ones");
                    self.metrics.reloads.with_label_values(&["error"]).inc();
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Swaps in stores read by [`Self::load_all`]; handshakes already done (open connections)
    /// are not touched. Returns how many certificates are in use.
    pub(crate) fn install(&self, loaded: Vec<(Arc<TlsListener>, CertStore)>) -> usize {
        let mut n = 0;
        let any = !loaded.is_empty();
        for (l, store) in loaded {
            n += store.keys.len();
            self.publish(&store, &l.name);
            l.resolver.store.store(Arc::new(store));
            tracing::info!(listener = %l.name, "certificates reloaded");
        }
        if any {
            self.metrics.reloads.with_label_values(&["ok"]).inc();
        }
        n
    }

    /// Reads every running TLS listener's files again and swaps them in when all load (else
    /// none is, and the error is returned). Returns how many certificates are in use.
    pub fn reload(&self) -> Result<usize, TlsError> {
        Ok(self.install(self.load_all(|_| true)?))
    }
}
