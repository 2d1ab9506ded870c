//! Discovery from a DNS name through the stub resolver of `crate::dns::client`: A and/or AAAA
//! records with the configured port, or SRV records (lowest priority only, their own ports and
//! weights; targets resolved from the additional section or with A/AAAA queries). Any failed
//! query fails the whole refresh, so half an answer never replaces a whole set.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Discovery, DiscoveryError, Found};
use crate::config::site::{DiscoveryConfig, DiscoverySource, RecordKind, ServerConfig};
use crate::dns::client::{self, Answer, Lookup};

/// A DNS name to follow.
#[derive(Debug)]
pub(crate) struct DnsDiscovery {
    name: String,
    record: RecordKind,
    port: u16,
    resolver: Option<SocketAddr>,
    timeout: Duration,
    weight: u32,
    max_connections: u32,
    initial_up: bool,
}

impl DnsDiscovery {
    pub(crate) fn new(cfg: &DiscoveryConfig, initial_up: bool) -> Self {
        let (name, record, port, resolver) = match &cfg.source {
            DiscoverySource::Dns {
                name,
                record,
                port,
                resolver,
            } => (name.clone(), *record, *port, *resolver),
            DiscoverySource::File { .. } => (String::new(), RecordKind::A, 0, None),
        };
        DnsDiscovery {
            name,
            record,
            port,
            resolver,
            timeout: cfg.timeout,
            weight: cfg.weight,
            max_connections: cfg.max_connections,
            initial_up,
        }
    }

    fn server(&self, address: SocketAddr, weight: u32) -> ServerConfig {
        ServerConfig {
            address,
            id: address.to_string(),
            weight,
            max_connections: self.max_connections,
            initial_up: Some(self.initial_up),
            drain: false,
        }
    }

    async fn ask(
        &self,
        server: SocketAddr,
        name: &str,
        l: Lookup,
    ) -> Result<Answer, DiscoveryError> {
        Ok(client::query(server, name, l, self.timeout).await?)
    }

    /// A and/or AAAA addresses of `name`, with the smallest TTL.
    async fn addresses(
        &self,
        server: SocketAddr,
        name: &str,
        record: RecordKind,
    ) -> Result<(Vec<IpAddr>, Option<u32>), DiscoveryError> {
        let mut out = Vec::new();
        let mut ttl: Option<u32> = None;
        let kinds: &[Lookup] = match record {
            RecordKind::A => &[Lookup::A],
            RecordKind::Aaaa => &[Lookup::Aaaa],
            _ => &[Lookup::A, Lookup::Aaaa],
        };
        for &k in kinds {
            let a = self.ask(server, name, k).await?;
            out.extend(a.addresses);
            ttl = min_ttl(ttl, a.ttl);
        }
        Ok((out, ttl))
    }

    async fn srv(
        &self,
        server: SocketAddr,
    ) -> Result<(Vec<ServerConfig>, Option<u32>), DiscoveryError> {
        let a = self.ask(server, &self.name, Lookup::Srv).await?;
        let mut ttl = a.ttl;
        let Some(best) = a.srv.iter().map(|s| s.priority).min() else {
            return Ok((Vec::new(), ttl));
        };
        let group: Vec<_> = a.srv.iter().filter(|s| s.priority == best).collect();
        let top = group.iter().map(|s| u32::from(s.weight)).max().unwrap_or(0);
        let mut out = Vec::new();
        for t in group {
            // SRV weights are relative; scale them into 1..=1000 (0 keeps a small share).
            let w = if top > 1000 {
                (u32::from(t.weight) * 1000).div_ceil(top)
            } else {
                u32::from(t.weight)
            }
            .clamp(1, 1000);
            let addrs = if t.addresses.is_empty() {
                let (a, t2) = self
                    .addresses(server, &t.target, RecordKind::AAndAaaa)
                    .await?;
                ttl = min_ttl(ttl, t2);
                a
            } else {
                t.addresses.clone()
            };
            out.extend(
                addrs
                    .into_iter()
                    .map(|ip| self.server(SocketAddr::new(ip, t.port), w)),
            );
        }
        Ok((out, ttl))
    }
}

fn min_ttl(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

#[async_trait::async_trait]
impl Discovery for DnsDiscovery {
    async fn discover(&mut self) -> Result<Option<Found>, DiscoveryError> {
        let server = self
            .resolver
            .or_else(client::system_resolver)
            .ok_or(DiscoveryError::NoResolver)?;
        let (mut servers, ttl) = match self.record {
            RecordKind::Srv => self.srv(server).await?,
            kind => {
                let (addrs, ttl) = self.addresses(server, &self.name, kind).await?;
                let s = addrs
                    .into_iter()
                    .map(|ip| self.server(SocketAddr::new(ip, self.port), self.weight))
                    .collect();
                (s, ttl)
            }
        };
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.dedup_by(|a, b| a.id == b.id);
        Ok(Some(Found {
            servers,
            ttl: ttl.map(|t| Duration::from_secs(u64::from(t))),
        }))
    }
}
