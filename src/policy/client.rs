//! Who the client is, as the policy engine sees it, and client-set matching (sovereignty
//! fences, latency rows).

use std::net::IpAddr;

pub(crate) use crate::config::zone::ClientMatch;
use crate::config::zone::{ClientSet, DcId, GeoPoint};

/// A located client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientView<'a> {
    /// The address used for location and hashing, with bits beyond `prefix` zero.
    pub addr: IpAddr,
    /// How many leading bits of `addr` the client gave (ECS source prefix, or the full length).
    pub prefix: u8,
    /// Country code, upper case.
    pub country: Option<&'a str>,
    /// Continent code.
    pub continent: Option<&'a str>,
    /// ISO 3166-2 subdivision.
    pub subdivision: Option<&'a str>,
    /// In an EU member state.
    pub eu: bool,
    /// Coordinates.
    pub point: Option<GeoPoint>,
    /// An override mapped the client straight to these datacenters.
    pub direct: &'a [DcId],
    /// Prefix length within which every address has this same location (ECS scope).
    pub scope: u8,
}

impl<'a> ClientView<'a> {
    /// A client about which nothing is known but its address.
    pub fn unlocated(addr: IpAddr, prefix: u8) -> Self {
        ClientView {
            addr,
            prefix,
            country: None,
            continent: None,
            subdivision: None,
            eu: false,
            point: None,
            direct: &[],
            scope: 0,
        }
    }
}

/// Does the client fall in the set? Network matches test the client's subnet: it matches only
/// when the whole subnet is inside the network.
pub fn matches(set: &ClientSet, c: &ClientView<'_>) -> bool {
    set.0.iter().any(|m| match_one(m, c))
}

fn match_one(m: &ClientMatch, c: &ClientView<'_>) -> bool {
    match m {
        ClientMatch::Eu => c.eu,
        ClientMatch::Continent(x) => c.continent == Some(x.as_str()),
        ClientMatch::Country(x) => c.country == Some(x.as_str()),
        ClientMatch::Subdivision(x) => c.subdivision == Some(x.as_str()),
        ClientMatch::Net(n) => n.prefix_len() <= c.prefix && n.contains(&c.addr),
    }
}

/// How specific a match is, for picking the most specific latency row: networks by prefix
/// length, then subdivision, country, EU, continent.
pub(crate) fn specificity(set: &ClientSet, c: &ClientView<'_>) -> Option<u16> {
    set.0
        .iter()
        .filter(|m| match_one(m, c))
        .map(|m| match m {
            ClientMatch::Net(n) => 1000 + u16::from(n.prefix_len()),
            ClientMatch::Subdivision(_) => 400,
            ClientMatch::Country(_) => 300,
            ClientMatch::Eu => 200,
            ClientMatch::Continent(_) => 100,
        })
        .max()
}
