//! The seam between the DNS front end and steering: what a service answers for a client.

use std::fmt::Debug;
use std::net::IpAddr;

use crate::config::zone::{DcId, Zone};

use super::query::Ecs;

/// Who asked: the packet's source and the client subnet it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Source address of the query packet (the resolver, usually).
    pub source: IpAddr,
    /// EDNS Client Subnet of the query, if any.
    pub ecs: Option<Ecs>,
}

impl Client {
    /// The address to locate and its prefix length: the ECS subnet when it has a non-zero
    /// source prefix, else the packet's source address as a host route.
    pub fn subnet(&self) -> (IpAddr, u8) {
        match self.ecs {
            Some(e) if e.source > 0 => (e.addr, e.source),
            _ => match self.source {
                IpAddr::V4(a) => (IpAddr::V4(a), 32),
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), 32),
                    None => (IpAddr::V6(a), 128),
                },
            },
        }
    }
}

/// Most datacenters an answer names.
pub const MAX_ANSWER_DCS: usize = 16;

/// What a service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steered {
    dcs: [u16; MAX_ANSWER_DCS],
    len: u8,
    /// ECS scope prefix length of the answer (0: the same for every client).
    pub scope: u8,
    /// TTL of the answer.
    pub ttl: u32,
    /// Answer NOERROR with no data (every candidate down and `on_all_down = "nodata"`).
    pub nodata: bool,
}

impl Steered {
    /// An answer naming `dcs` in order (at most [`MAX_ANSWER_DCS`]).
    pub fn new(dcs: impl IntoIterator<Item = DcId>, scope: u8, ttl: u32) -> Self {
        let mut s = Steered {
            dcs: [0; MAX_ANSWER_DCS],
            len: 0,
            scope,
            ttl,
            nodata: false,
        };
        for d in dcs.into_iter().take(MAX_ANSWER_DCS) {
            s.dcs[s.len as usize] = d as u16;
            s.len += 1;
        }
        s
    }

    /// A NODATA answer.
    pub fn nodata(scope: u8, ttl: u32) -> Self {
        let mut s = Self::new([], scope, ttl);
        s.nodata = true;
        s
    }

    /// The datacenters, in answer order.
    pub fn datacenters(&self) -> impl Iterator<Item = DcId> + '_ {
        self.dcs[..self.len as usize].iter().map(|d| *d as DcId)
    }
}

/// Steering of one zone's services. Implementations are pure over an immutable snapshot and
/// take no locks: they run on the query path.
pub trait ZoneSteering: Send + Sync + Debug {
    /// The answer of service `service` (index into `Zone::services`) for `client`.
    fn steer(&self, service: usize, client: &Client) -> Steered;
}

/// Steering without a policy engine: a service answers with its first listed datacenter, the
/// same for every client.
#[derive(Debug)]
pub struct FirstDatacenter {
    answers: Vec<Steered>,
}

impl FirstDatacenter {
    /// Steering for a zone.
    pub fn new(zone: &Zone) -> Self {
        FirstDatacenter {
            answers: zone
                .services
                .iter()
                .map(|s| Steered::new(s.datacenters.first().copied(), 0, s.ttl))
                .collect(),
        }
    }
}

impl ZoneSteering for FirstDatacenter {
    fn steer(&self, service: usize, _client: &Client) -> Steered {
        self.answers
            .get(service)
            .copied()
            .unwrap_or_else(|| Steered::nodata(0, 0))
    }
}
