//! `tls` of a listener (termination: certificates chosen by SNI) and `tls` of a pool (TLS
//! towards the backends, verified against a CA file). Paths are relative to the site file; the
//! files themselves are read when the site starts (and by `meridian check`), not here, so that
//! parsing stays free of I/O.

use std::path::{Path, PathBuf};

use rustls::pki_types::ServerName;
use serde::Deserialize;
use toml::Spanned;

use crate::config::error::Collector;

/// TLS termination on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chains and keys; the first is the default (no SNI, or an unknown name).
    pub certificates: Vec<CertFiles>,
    /// Oldest protocol version accepted: 2 (TLS 1.2) or 3 (TLS 1.3).
    pub min_version: TlsVersion,
}

/// Oldest TLS version a listener accepts. TLS 1.1 and older are never offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// One certificate: a PEM chain (leaf first) and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain.
    pub cert: PathBuf,
    /// The key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// TLS from the balancer to a pool's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTlsConfig {
    /// PEM file of the CA certificates that sign the servers' certificates.
    pub ca: PathBuf,
    /// Name the servers' certificates must carry (default: each server's IP address).
    pub server_name: Option<ServerName<'static>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) certificates: Spanned<Vec<Spanned<RawCert>>>,
    pub(crate) min_version: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCert {
    pub(crate) cert: Spanned<String>,
    pub(crate) key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackendTls {
    pub(crate) ca: Spanned<String>,
    pub(crate) server_name: Option<Spanned<String>>,
}

/// A path as written, resolved against the site file's directory.
fn resolve(c: &mut Collector<'_>, file: &Path, v: &Spanned<String>, item: &str) -> PathBuf {
    if v.get_ref().trim().is_empty() {
        c.err(&v.span(), item, "expected a file path");
    }
    let p = Path::new(v.get_ref());
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new("")).join(p)
    }
}

pub(crate) fn listener_tls(
    c: &mut Collector<'_>,
    file: &Path,
    raw: &Spanned<RawTls>,
    item: &str,
) -> TlsConfig {
    let r = raw.get_ref();
    let item = format!("{item} tls");
    if r.certificates.get_ref().is_empty() {
        c.err(
            &r.certificates.span(),
            &item,
            "at least one certificate is needed",
        );
    }
    let certificates = r
        .certificates
        .get_ref()
        .iter()
        .map(|cf| {
            let cf = cf.get_ref();
            CertFiles {
                cert: resolve(c, file, &cf.cert, &format!("{item} cert")),
                key: resolve(c, file, &cf.key, &format!("{item} key")),
            }
        })
        .collect();
    let min_version = match r.min_version.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "1.2")) => TlsVersion::Tls12,
        Some((_, "1.3")) => TlsVersion::Tls13,
        Some((v, _)) => {
            c.err(
                &v.span(),
                &format!("{item} min_version"),
                "expected \"1.2\" or \"1.3\" (older versions are never accepted)",
            );
            TlsVersion::Tls12
        }
    };
    TlsConfig {
        certificates,
        min_version,
    }
}

pub(crate) fn backend_tls(
    c: &mut Collector<'_>,
    file: &Path,
    raw: &Spanned<RawBackendTls>,
    item: &str,
) -> BackendTlsConfig {
    let r = raw.get_ref();
    let item = format!("{item} tls");
    let server_name = r.server_name.as_ref().and_then(|n| {
        match ServerName::try_from(n.get_ref().trim().to_string()) {
            Ok(s) => Some(s),
            Err(_) => {
                c.err(
                    &n.span(),
                    &format!("{item} server_name"),
                    "expected a DNS name or an IP address",
                );
                None
            }
        }
    });
    BackendTlsConfig {
        ca: resolve(c, file, &r.ca, &format!("{item} ca")),
        server_name,
    }
}
