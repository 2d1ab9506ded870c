//! PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) through the `ppp` codec:
//! encoding the header sent to a backend, and reading the one a front load balancer sends.
//!
//! The parse is pure ([`parse`] over a byte slice); [`read`] only feeds it socket reads. Bytes
//! the client sent after the header are handed back, so nothing of the stream is lost.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::{HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::site::ProxyVersion;

/// Longest header accepted: a v2 header with 64 KiB of TLVs is legal, but no front balancer
/// sends that much; 4 KiB leaves room for the usual TLVs (ALPN, authority, unique id, TLS).
const MAX_HEADER: usize = 4096;

/// The connection's endpoints as a PROXY header declared them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    /// The original client; `None` for `LOCAL` / `UNKNOWN` headers (a balancer's own health
    /// check), where the socket's peer stands.
    pub(crate) source: Option<SocketAddr>,
    /// The address the client connected to.
    pub(crate) destination: Option<SocketAddr>,
    /// Header length in bytes: what follows is the client's data.
    pub(crate) len: usize,
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HeaderError {
    #[error("not a PROXY protocol header: {0}")]
    Invalid(String),
    #[error("PROXY protocol header longer than {MAX_HEADER} bytes")]
    TooLong,
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
    #[error("reading the PROXY protocol header: {0}")]
    Io(String),
}

/// The header announcing `source` → `destination`. Mixed families are written as IPv6 (an
/// IPv4 address in its mapped form), as the spec asks.
pub(crate) fn encode(v: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    match v {
        ProxyVersion::V1 => ppp::v1::Addresses::from((source, destination))
            .to_string()
            .into_bytes(),
        ProxyVersion::V2 => {
            use ppp::v2::{Builder, Command, Protocol, Version};
            Builder::with_addresses(
                Version::Two | Command::Proxy,
                Protocol::Stream,
                (source, destination),
            )
            .build()
            // Writing to a Vec cannot fail; an address pair always fits.
            .unwrap_or_default()
        }
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

/// Parses a header at the start of `buf`: `Ok(None)` when more bytes are needed.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Declared>, HeaderError> {
    let r = HeaderResult::parse(buf);
    if r.is_incomplete() {
        return if buf.len() >= MAX_HEADER {
            Err(HeaderError::TooLong)
        } else {
            Ok(None)
        };
    }
    let pair = |s: SocketAddr, d: SocketAddr| (Some(s), Some(d));
    let declared = match r {
        HeaderResult::V1(Ok(h)) => {
            let (source, destination) = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => pair(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                ppp::v1::Addresses::Tcp6(a) => pair(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                ppp::v1::Addresses::Unknown => (None, None),
            };
            Declared {
                source,
                destination,
                len: h.header.len(),
            }
        }
        HeaderResult::V2(Ok(h)) => {
            let local = h.command == ppp::v2::Command::Local;
            let (source, destination) = match h.addresses {
                _ if local => (None, None),
                ppp::v2::Addresses::IPv4(a) => pair(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                ppp::v2::Addresses::IPv6(a) => pair(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                _ => (None, None),
            };
            Declared {
                source,
                destination,
                len: h.len(),
            }
        }
        HeaderResult::V1(Err(e)) => return Err(HeaderError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => return Err(HeaderError::Invalid(e.to_string())),
    };
    if declared.len > MAX_HEADER {
        return Err(HeaderError::TooLong);
    }
    Ok(Some(declared))
}

/// Reads a header from a client within `timeout`; returns it and the bytes read past it.
pub(crate) async fn read(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<(Declared, Vec<u8>), HeaderError> {
    let work = async {
        let mut buf = Vec::with_capacity(256);
        loop {
            let mut chunk = [0u8; 512];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| HeaderError::Io(e.to_string()))?;
            if n == 0 {
                return Err(HeaderError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(d) = parse(&buf)? {
                let rest = buf.split_off(d.len);
                return Ok((d, rest));
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| HeaderError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn v1_is_the_text_line_of_the_spec() {
        let h = encode(
            ProxyVersion::V1,
            sa("192.0.2.7:5555"),
            sa("198.51.100.1:443"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\n");
        let h = encode(ProxyVersion::V1, sa("[2001:db8::1]:1"), sa("127.0.0.1:2"));
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 1 2\r\n");
    }

    #[test]
    fn v2_is_the_binary_layout_of_the_spec() {
        let h = encode(
            ProxyVersion::V2,
            sa("192.0.2.7:5555"),
            sa("198.51.100.1:443"),
        );
        let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        want.extend([
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 198, 51, 100, 1, 0x15, 0xb3, 0x01, 0xbb,
        ]);
        assert_eq!(h, want);
    }

    #[test]
    fn parses_both_versions_and_keeps_what_follows() {
        for v in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut bytes = encode(v, sa("192.0.2.7:5555"), sa("198.51.100.1:443"));
            let len = bytes.len();
            bytes.extend_from_slice(b"hello");
            let d = parse(&bytes).expect("valid").expect("complete");
            assert_eq!(d.source, Some(sa("192.0.2.7:5555")));
            assert_eq!(d.destination, Some(sa("198.51.100.1:443")));
            assert_eq!(d.len, len);
            assert_eq!(
                parse(&bytes[..len - 1]),
                Ok(None),
                "{v:?} prefix is incomplete"
            );
        }
    }

    #[test]
    fn unknown_and_garbage() {
        let d = parse(b"PROXY UNKNOWN\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(d.source, None);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HeaderError::Invalid(_))
        ));
        assert!(parse(&[b'P'; MAX_HEADER]).is_err());
    }
}
