//! Where a client is: the interned [`Location`] and the compact [`Hit`] a lookup returns.
//!
//! A database has a few tens of thousands of distinct places for hundreds of thousands of
//! networks, so every distinct place is stored once and lookups return its [`LocId`]. The policy
//! engine can precompute per-location decisions indexed by [`LocId::index`].

use std::collections::HashMap;

use crate::config::codes;
use crate::config::zone::model::{DcId, GeoPoint, LocationSpec};

/// Index of an interned [`Location`] in a [`Locator`](super::Locator); dense from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocId(pub(crate) u32);

impl LocId {
    /// The id as an index into per-location tables (`0..locator.location_count()`).
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The result of locating an address: which location, and the ECS scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hit {
    /// The client's location.
    pub loc: LocId,
    /// The shortest prefix length `p` such that every address of the aligned `/p` block around
    /// the address gets the same [`LocId`]. IPv4 addresses get IPv4-relative lengths (0..=32),
    /// IPv6 addresses (including IPv4-mapped, 6to4 and Teredo ones) IPv6-relative ones.
    pub scope: u8,
}

/// What placed a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A record of the GeoIP database.
    Database,
    /// A `[[geoip.nets]]` override of the zone.
    Override,
    /// Neither: the zone's `geoip.default` location, or nothing at all when it declares none.
    Default,
}

/// A client location.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<Box<str>>,
    /// Continent code: AF AN AS EU NA OC SA.
    pub continent: Option<Box<str>>,
    /// ISO 3166-2 code of the largest subdivision, such as `US-CA`.
    pub subdivision: Option<Box<str>>,
    /// True when the country is an EU member state.
    pub eu: bool,
    /// Coordinates, when the source has them.
    pub point: Option<GeoPoint>,
    /// For overrides that map a network straight to datacenters: those, in order. Empty
    /// otherwise.
    pub datacenters: Box<[DcId]>,
    /// What placed the client.
    pub origin: Origin,
}

impl Location {
    /// A location that says nothing: the fallback when a zone declares no `geoip.default`.
    pub fn unknown() -> Self {
        Location {
            country: None,
            continent: None,
            subdivision: None,
            eu: false,
            point: None,
            datacenters: Box::new([]),
            origin: Origin::Default,
        }
    }

    /// A location written in the zone file.
    pub fn from_spec(spec: &LocationSpec, origin: Origin) -> Self {
        Location {
            country: spec.country.as_deref().map(Into::into),
            continent: spec.continent.as_deref().map(Into::into),
            subdivision: spec.subdivision.as_deref().map(Into::into),
            eu: spec
                .eu
                .unwrap_or_else(|| spec.country.as_deref().is_some_and(codes::is_eu_member)),
            point: spec.point,
            datacenters: Box::new([]),
            origin,
        }
    }

    /// An override that maps straight to datacenters.
    pub fn datacenters(dcs: &[DcId]) -> Self {
        Location {
            datacenters: dcs.into(),
            origin: Origin::Override,
            ..Location::unknown()
        }
    }

    /// True when the location carries no place at all (no country, continent, subdivision or
    /// coordinates, and no datacenters).
    pub fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.continent.is_none()
            && self.subdivision.is_none()
            && self.point.is_none()
            && self.datacenters.is_empty()
    }
}

/// Hashable identity of a location (coordinates by bit pattern).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    country: Option<Box<str>>,
    continent: Option<Box<str>>,
    subdivision: Option<Box<str>>,
    eu: bool,
    point: Option<(u64, u64)>,
    datacenters: Box<[DcId]>,
    origin: Origin,
}

impl Key {
    fn of(l: &Location) -> Self {
        Key {
            country: l.country.clone(),
            continent: l.continent.clone(),
            subdivision: l.subdivision.clone(),
            eu: l.eu,
            point: l.point.map(|p| (p.lat.to_bits(), p.lon.to_bits())),
            datacenters: l.datacenters.clone(),
            origin: l.origin,
        }
    }
}

/// Stores each distinct location once; ids are `base + position`.
#[derive(Debug)]
pub(crate) struct Interner {
    base: u32,
    list: Vec<Location>,
    ids: HashMap<Key, u32>,
}

impl Interner {
    pub(crate) fn new(base: u32) -> Self {
        Interner {
            base,
            list: Vec::new(),
            ids: HashMap::new(),
        }
    }

    /// The id of `l`, adding it when new. `None` when the id space is exhausted.
    pub(crate) fn intern(&mut self, l: Location) -> Option<u32> {
        let key = Key::of(&l);
        if let Some(&id) = self.ids.get(&key) {
            return Some(id);
        }
        let id = self
            .base
            .checked_add(u32::try_from(self.list.len()).ok()?)?;
        if id >= super::ranges::NONE - 8 {
            return None;
        }
        self.list.push(l);
        self.ids.insert(key, id);
        Some(id)
    }

    pub(crate) fn into_list(self) -> Vec<Location> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_locations_share_an_id() {
        let mut i = Interner::new(10);
        let a = Location {
            country: Some("DE".into()),
            eu: true,
            point: Some(GeoPoint {
                lat: 50.1,
                lon: 8.7,
            }),
            origin: Origin::Database,
            ..Location::unknown()
        };
        let b = Location {
            country: Some("FR".into()),
            ..a.clone()
        };
        assert_eq!(i.intern(a.clone()), Some(10));
        assert_eq!(i.intern(b), Some(11));
        assert_eq!(i.intern(a), Some(10));
        assert_eq!(i.into_list().len(), 2);
    }

    #[test]
    fn spec_derives_eu_membership_from_the_country() {
        let spec = LocationSpec {
            country: Some("IE".into()),
            ..Default::default()
        };
        assert!(Location::from_spec(&spec, Origin::Override).eu);
        let spec = LocationSpec {
            country: Some("US".into()),
            ..Default::default()
        };
        assert!(!Location::from_spec(&spec, Origin::Override).eu);
    }
}
