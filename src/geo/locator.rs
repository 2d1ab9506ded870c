//! The per-zone [`Locator`]: a shared compiled database under the zone's own overrides.
//!
//! Two layers, each a flat range table: the zone's `[[geoip.nets]]` overrides on top (longest
//! prefix wins, [`NONE`] where no override applies) and the shared [`GeoDatabase`] below. The
//! database is compiled once per file and shared through `Arc`; only the small override layer
//! is per zone. A query is one or two binary searches and a few bit operations.
//!
//! The ECS scope of a hit is the longer of the two layers' scopes, so the scope block lies
//! inside one override range *and* one database range: an override nested in a database network
//! splits it, and the block never reaches over it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::GeoError;
use super::cache::DatabaseCache;
use super::database::{Embedded, GeoDatabase};
use super::location::{Hit, Interner, LocId, Location, Origin};
use super::ranges::{NONE, Partition, RangeTable};
use crate::config::zone::model::{GeoipConfig, NetTarget};

/// Locates clients for one zone.
#[derive(Debug)]
pub struct Locator {
    db: Arc<GeoDatabase>,
    /// Zone overrides over IPv4, [`NONE`] where none applies.
    over4: RangeTable<u32>,
    /// Zone overrides over IPv6; [`NONE`] where none applies, including the embedded-IPv4
    /// ranges unless an override at least as long as the range covers them.
    over6: RangeTable<u128>,
    has_over4: bool,
    has_over6: bool,
    /// Locations of the zone (default first), ids from `db.locations.len()`.
    zone_locations: Vec<Location>,
    default: u32,
}

impl Locator {
    /// Builds the locator of a zone, loading its database through `cache`.
    pub fn new(config: &GeoipConfig, cache: &mut DatabaseCache) -> Result<Self, GeoError> {
        let db = match &config.database {
            Some(path) => cache.get(path)?,
            None => Arc::new(GeoDatabase::empty()),
        };
        Ok(Self::with_database(db, config))
    }

    /// Builds the locator of a zone over an already loaded database (`config.database` is not
    /// read).
    pub fn with_database(db: Arc<GeoDatabase>, config: &GeoipConfig) -> Self {
        let base = u32::try_from(db.locations.len()).unwrap_or(NONE);
        let mut zone = Interner::new(base);
        let default = match &config.default {
            Some(spec) => Location::from_spec(spec, Origin::Default),
            None => Location::unknown(),
        };
        // The database refuses more locations than leave room for these few; the zone's own
        // list is tiny.
        let default = zone.intern(default).unwrap_or(NONE);
        let mut nets4 = Vec::new();
        let mut nets6 = Vec::new();
        for n in &config.nets {
            let loc = match &n.target {
                NetTarget::Location(spec) => Location::from_spec(spec, Origin::Override),
                NetTarget::Datacenters(dcs) => Location::datacenters(dcs),
            };
            let Some(id) = zone.intern(loc) else { continue };
            match n.net {
                ipnet::IpNet::V4(v) => {
                    nets4.push((u128::from(u32::from(v.network())), v.prefix_len(), id))
                }
                ipnet::IpNet::V6(v) => {
                    nets6.push((u128::from(v.network()), v.prefix_len(), id));
                }
            }
        }
        let over4 = Partition::paint(32, &nets4, NONE);
        let over6 = overrides6(&nets6);
        Locator {
            has_over4: !nets4.is_empty(),
            has_over6: !nets6.is_empty(),
            over4: RangeTable::new(&over4),
            over6: RangeTable::new(&over6),
            db,
            zone_locations: zone.into_list(),
            default,
        }
    }

    /// Locates an address: overrides, then the database, then the zone's default.
    #[inline]
    pub fn locate(&self, ip: IpAddr) -> Hit {
        match ip {
            IpAddr::V4(a) => self.locate_v4(a),
            IpAddr::V6(a) => self.locate_v6(a),
        }
    }

    /// Locates an IPv4 address; the scope is IPv4-relative (0..=32).
    #[inline]
    pub fn locate_v4(&self, a: Ipv4Addr) -> Hit {
        let (loc, scope) = self.v4(u32::from(a));
        Hit {
            loc: LocId(loc),
            scope,
        }
    }

    /// Locates an IPv6 address; the scope is IPv6-relative (0..=128).
    #[inline]
    pub fn locate_v6(&self, a: Ipv6Addr) -> Hit {
        let (loc, scope) = self.v6(u128::from(a), 128);
        Hit {
            loc: LocId(loc),
            scope,
        }
    }

    /// Locates an ECS client subnet: `ip` truncated to `source_prefix` bits.
    ///
    /// Like [`Locator::locate`] on the truncated address, except for IPv6 addresses that embed
    /// an IPv4 address (IPv4-mapped, 6to4, Teredo) when the source prefix stops before the
    /// IPv4 bits that decide the location: the zero-filled bits would be a guess (for Teredo,
    /// whose client bits are inverted, a guess of 255.x), so such a client gets the zone's
    /// default location, with a scope no shorter than the source prefix.
    pub fn locate_subnet(&self, ip: IpAddr, source_prefix: u8) -> Hit {
        let (loc, scope) = match ip {
            IpAddr::V4(a) => {
                let p = source_prefix.min(32);
                self.v4(u32::from(a) & prefix_mask32(p))
            }
            IpAddr::V6(a) => {
                let p = source_prefix.min(128);
                self.v6(u128::from(a) & prefix_mask128(p), p)
            }
        };
        Hit {
            loc: LocId(loc),
            scope,
        }
    }

    #[inline]
    fn v4(&self, a: u32) -> (u32, u8) {
        let mut s_over = 0;
        if self.has_over4 {
            let (v, s) = self.over4.find(a);
            if v != NONE {
                return (v, s);
            }
            s_over = s;
        }
        let (v, s) = self.db.v4.find(a);
        let loc = if v == NONE { self.default } else { v };
        (loc, s.max(s_over))
    }

    /// `known` is how many leading bits of `a` the client gave (128 for a full address).
    #[inline]
    fn v6(&self, a: u128, known: u8) -> (u32, u8) {
        let mut s_over = 0;
        if self.has_over6 {
            let (v, s) = self.over6.find(a);
            if v != NONE {
                return (v, s);
            }
            s_over = s;
        }
        let (v, s) = self.db.v6.find(a);
        let s = s.max(s_over);
        if v == NONE {
            return (self.default, s);
        }
        match Embedded::from_mark(v) {
            None => (v, s),
            Some(kind) => {
                let (v4, offset) = kind.extract(a);
                let (loc, s4) = self.v4(v4);
                let known4 = known.saturating_sub(offset).min(32);
                if s4 > known4 {
                    return (self.default, s.max(known));
                }
                // Addresses that share the first `offset + s4` bits embed IPv4 addresses that
                // share the first `s4` bits; with s4 == 0 every embedded address is answered
                // alike and only the range itself bounds the block.
                let inner = if s4 == 0 { 0 } else { offset + s4 };
                (loc, s.max(inner))
            }
        }
    }

    /// The location of a hit.
    #[inline]
    pub fn location(&self, id: LocId) -> &Location {
        let i = id.index();
        let n = self.db.locations.len();
        if i < n {
            &self.db.locations[i]
        } else {
            // Ids come from this locator; an id from another one is a caller bug, answered with
            // the default rather than a panic on the query path.
            self.zone_locations
                .get(i - n)
                .unwrap_or(&self.zone_locations[0])
        }
    }

    /// The id of the zone's default location (for clients nothing places).
    pub fn default_location(&self) -> LocId {
        LocId(self.default)
    }

    /// Number of locations: every [`LocId`] this locator returns is below this, so per-location
    /// tables can be plain vectors.
    pub fn location_count(&self) -> usize {
        self.db.locations.len() + self.zone_locations.len()
    }

    /// Every location with its id.
    pub fn locations(&self) -> impl Iterator<Item = (LocId, &Location)> + '_ {
        self.db
            .locations
            .iter()
            .chain(self.zone_locations.iter())
            .enumerate()
            .map(|(i, l)| (LocId(i as u32), l))
    }

    /// The shared database under the overrides.
    pub fn database(&self) -> &Arc<GeoDatabase> {
        &self.db
    }
}

/// IPv6 overrides, with the embedded-IPv4 ranges as holes that fall through to the database
/// unless an override at least as long as the range covers them.
fn overrides6(nets: &[(u128, u8, u32)]) -> Partition {
    if nets.is_empty() {
        return Partition::uniform(128, NONE);
    }
    let mut all: Vec<(u128, u8, u32)> = Embedded::ALL
        .iter()
        .map(|e| {
            let (a, p) = e.net();
            (a, p, NONE)
        })
        .collect();
    // `paint` lets later entries win at equal length: holes first, so an override of exactly
    // `2002::/16` still applies.
    all.extend_from_slice(nets);
    Partition::paint(128, &all, NONE)
}

fn prefix_mask32(p: u8) -> u32 {
    if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p))
    }
}

fn prefix_mask128(p: u8) -> u128 {
    if p == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(p))
    }
}
