//! The authoritative DNS front end. The only module that uses hickory types.
//!
//! ```text
//! packet ─► query (lean parse, ECS checks) ─► catalog (zone, node) ─► lookup ─► respond (encode)
//!                                                       └─ service ─► steer (policy engine)
//! ```
//!
//! UDP runs on plain threads, one SO_REUSEPORT socket each (`udp.rs`); TCP runs on
//! hickory-server (`tcp.rs`). Both call the same responder.

mod catalog;
pub mod client;
mod fast;
mod lookup;
mod metrics;
mod names;
mod query;
mod respond;
mod server;
mod steer;
mod tcp;
mod udp;

pub use catalog::Catalog;
pub use metrics::DnsMetrics;
pub use query::Ecs;
pub use respond::DEFAULT_MAX_UDP_PAYLOAD;
pub use server::{
    DnsOptions, DnsServer, Loaded, SteeringFactory, Zones, first_datacenter_steering,
};
pub use steer::{Client, FirstDatacenter, MAX_ANSWER_DCS, Steered, ZoneSteering};

/// Checks that a CAA value can be served (used by zone validation, which must not see hickory
/// types).
pub fn check_caa(critical: bool, tag: &str, value: &str) -> Result<(), String> {
    catalog::caa(critical, tag, value).map(|_| ())
}

/// Answers one query packet from a catalog without sockets: the reply bytes as UDP would send
/// them (`None`: no reply). For tests, fuzzing and tools.
pub fn answer_packet(
    catalog: &Catalog,
    packet: &[u8],
    source: std::net::IpAddr,
    max_udp: u16,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    respond::answer_udp(catalog, packet, source, max_udp, &mut out).map(|_| out)
}

/// [`answer_packet`] into a reused buffer (benchmarks): true when a reply was written.
pub fn answer_into(
    catalog: &Catalog,
    packet: &[u8],
    source: std::net::IpAddr,
    max_udp: u16,
    out: &mut Vec<u8>,
) -> bool {
    respond::answer_udp(catalog, packet, source, max_udp, out).is_some()
}

/// Like [`answer_packet`], but always through the general path (no fast path): for the
/// differential test that keeps the two in agreement.
pub fn answer_packet_general(
    catalog: &Catalog,
    packet: &[u8],
    source: std::net::IpAddr,
    max_udp: u16,
) -> Option<Vec<u8>> {
    let p = respond::prepare(catalog, packet, source, max_udp)?;
    let mut out = Vec::new();
    respond::encode_udp(&p, &mut out);
    Some(out)
}
