//! A MaxMind DB compiled, at load time, into flat range tables (the way gdnsd does it).
//!
//! Every network of the database is visited once with the reader's `networks` iterator, each
//! distinct data record is decoded once (keyed by its data-section offset), identical places are
//! interned, and the networks become sorted range tables with adjacent equal locations merged.
//! After that a query never touches the MMDB decoder.
//!
//! The IPv6 table also marks the ranges whose addresses embed an IPv4 address (IPv4-compatible
//! `::/96`, IPv4-mapped `::ffff:0:0/96`, 6to4 `2002::/16`, Teredo `2001::/32`) so the locator
//! looks those up in the IPv4 table; the marks keep those ranges from merging with their
//! neighbours, which would make an ECS scope reach over addresses that are answered differently.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use super::GeoError;
use super::location::{Interner, Location, Origin};
use super::ranges::{NONE, Partition, RangeTable, net_bounds};
use crate::config::codes;
use crate::config::zone::model::GeoPoint;

/// How an IPv6 range embeds an IPv4 address (a value in the IPv6 table, never a location id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Embedded {
    /// `::a.b.c.d` (deprecated IPv4-compatible; also where IPv6 databases keep IPv4).
    Compatible,
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// `2002:AABB:CCDD::/48`: the IPv4 address is bits 16..48.
    SixToFour,
    /// `2001:0:server:flags:port:client`: the client is the last 32 bits, inverted.
    Teredo,
}

impl Embedded {
    pub(crate) const ALL: [Embedded; 4] = [
        Embedded::Compatible,
        Embedded::Mapped,
        Embedded::SixToFour,
        Embedded::Teredo,
    ];

    /// The value that marks the range in the IPv6 table.
    pub(crate) fn mark(self) -> u32 {
        NONE - 1 - self as u32
    }

    /// The kind a table value marks; `None` for location ids (checked with one comparison).
    #[inline]
    pub(crate) fn from_mark(v: u32) -> Option<Self> {
        if v < NONE - 4 {
            return None;
        }
        Self::ALL.into_iter().find(|e| e.mark() == v)
    }

    /// The network, as (address, prefix length).
    pub(crate) fn net(self) -> (u128, u8) {
        match self {
            Embedded::Compatible => (0, 96),
            Embedded::Mapped => (0xffff_u128 << 32, 96),
            Embedded::SixToFour => (0x2002_u128 << 112, 16),
            Embedded::Teredo => (0x2001_0000_u128 << 96, 32),
        }
    }

    /// The IPv4 address embedded in `a`, and the bit offset where it starts.
    #[inline]
    pub(crate) fn extract(self, a: u128) -> (u32, u8) {
        match self {
            Embedded::Compatible | Embedded::Mapped => (a as u32, 96),
            Embedded::SixToFour => ((a >> 80) as u32, 16),
            Embedded::Teredo => (!(a as u32), 96),
        }
    }
}

/// A GeoIP database compiled into range tables; shared between zones through `Arc`.
#[derive(Debug)]
pub struct GeoDatabase {
    path: PathBuf,
    database_type: String,
    networks: usize,
    pub(crate) v4: RangeTable<u32>,
    pub(crate) v6: RangeTable<u128>,
    pub(crate) locations: Vec<Location>,
}

/// The fields of a City or Country record that locate a client.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Country<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Country<'a>>,
    #[serde(borrow, default)]
    continent: Option<Continent<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Subdivision<'a>>>,
    #[serde(default)]
    location: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(default)]
    is_in_european_union: Option<bool>,
}

#[derive(Deserialize)]
struct Continent<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Subdivision<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

impl Record<'_> {
    /// The place this record describes; `country` falls back to `registered_country` (MaxMind
    /// leaves `country` out for some satellite and anonymous networks).
    fn location(&self) -> Location {
        let country = self
            .country
            .as_ref()
            .filter(|c| c.iso_code.is_some())
            .or(self.registered_country.as_ref());
        let cc = country
            .and_then(|c| c.iso_code)
            .filter(|c| codes::is_country_code(c));
        let eu = country
            .and_then(|c| c.is_in_european_union)
            .unwrap_or_else(|| cc.is_some_and(codes::is_eu_member));
        let subdivision = match (cc, self.subdivisions.as_deref()) {
            (Some(cc), Some([first, ..])) => first
                .iso_code
                .map(|s| format!("{cc}-{s}"))
                .filter(|s| codes::is_subdivision_code(s)),
            _ => None,
        };
        let point = self.location.as_ref().and_then(|l| {
            let (lat, lon) = (l.latitude?, l.longitude?);
            let ok = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
            ok.then_some(GeoPoint { lat, lon })
        });
        Location {
            country: cc.map(Into::into),
            continent: self
                .continent
                .as_ref()
                .and_then(|c| c.code)
                .filter(|c| codes::is_continent_code(c))
                .map(Into::into),
            subdivision: subdivision.map(Into::into),
            eu,
            point,
            datacenters: Box::new([]),
            origin: Origin::Database,
        }
    }
}

/// Networks collected from the tree, before they become tables.
struct Collected {
    v4: Vec<(u128, u128, u32)>,
    v6: Vec<(u128, u128, u32)>,
    /// IPv4 networks written only under `::ffff:0:0/96` (some third-party writers do that);
    /// used as the IPv4 table when the tree has no IPv4 data of its own.
    mapped4: Vec<(u128, u128, u32)>,
    networks: usize,
}

impl GeoDatabase {
    /// Reads and compiles the database at `path`.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let bytes = fs::read(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Compiles a database held in memory; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, GeoError> {
        let open_err = |source| GeoError::Open {
            path: path.to_path_buf(),
            source,
        };
        let reader = Reader::from_source(bytes).map_err(open_err)?;
        let database_type = reader.metadata().database_type.clone();
        let mut interner = Interner::new(0);
        let c = collect(&reader, path, &mut interner)?;
        let locations = interner.into_list();
        if locations.is_empty() && c.networks > 0 {
            return Err(GeoError::NoLocations {
                path: path.to_path_buf(),
                database_type,
            });
        }
        let v4 = Partition::from_disjoint(32, c.v4)
            .map_err(|(first, _)| overlap(path, IpAddr::V4(v4addr(first))))?;
        let v6 = Partition::from_disjoint(128, c.v6)
            .map_err(|(first, _)| overlap(path, IpAddr::V6(first.into())))?;
        let v6 = Partition::overlay(&embedded_marks(), &v6);
        Ok(GeoDatabase {
            path: path.to_path_buf(),
            database_type,
            networks: c.networks,
            v4: RangeTable::new(&v4),
            v6: RangeTable::new(&v6),
            locations,
        })
    }

    /// A database that maps nothing: every client gets the zone's default or an override.
    pub fn empty() -> Self {
        GeoDatabase {
            path: PathBuf::new(),
            database_type: String::new(),
            networks: 0,
            v4: RangeTable::new(&Partition::uniform(32, NONE)),
            v6: RangeTable::new(&embedded_marks()),
            locations: Vec::new(),
        }
    }

    /// The file the database was read from (empty for [`GeoDatabase::empty`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `database_type` of the file's metadata, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.database_type
    }

    /// Networks read from the file (IPv4 aliases not counted).
    pub fn network_count(&self) -> usize {
        self.networks
    }

    /// Distinct locations after interning.
    pub fn location_count(&self) -> usize {
        self.locations.len()
    }

    /// Ranges in the compiled (IPv4, IPv6) tables, after merging.
    pub fn range_counts(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }
}

fn v4addr(v: u128) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(v as u32)
}

fn overlap(path: &Path, at: IpAddr) -> GeoError {
    GeoError::Corrupt {
        path: path.to_path_buf(),
        network: at.to_string(),
        message: "networks overlap".into(),
    }
}

/// The IPv6 partition of the embedded-IPv4 ranges (everything else [`NONE`]).
pub(crate) fn embedded_marks() -> Partition {
    let nets: Vec<(u128, u8, u32)> = Embedded::ALL
        .iter()
        .map(|e| {
            let (a, p) = e.net();
            (a, p, e.mark())
        })
        .collect();
    Partition::paint(128, &nets, NONE)
}

/// Walks every network once, decoding each distinct record once.
fn collect<S: AsRef<[u8]>>(
    reader: &Reader<S>,
    path: &Path,
    interner: &mut Interner,
) -> Result<Collected, GeoError> {
    let corrupt = |network: String, e: maxminddb::MaxMindDbError| GeoError::Corrupt {
        path: path.to_path_buf(),
        network,
        message: e.to_string(),
    };
    let mut by_offset: HashMap<usize, u32> = HashMap::new();
    let mut c = Collected {
        v4: Vec::new(),
        v6: Vec::new(),
        mapped4: Vec::new(),
        networks: 0,
    };
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(|e| corrupt("::/0".into(), e))?;
    for item in networks {
        let item = item.map_err(|e| corrupt("(search tree)".into(), e))?;
        let net = item
            .network()
            .map_err(|e| corrupt("(search tree)".into(), e))?;
        let Some(offset) = item.offset() else {
            continue;
        };
        c.networks += 1;
        let val = match by_offset.entry(offset) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                let rec: Record<'_> = item
                    .decode()
                    .map_err(|e| corrupt(net.to_string(), e))?
                    .ok_or_else(|| corrupt(net.to_string(), missing()))?;
                let loc = rec.location();
                let id = if loc.is_empty() {
                    NONE
                } else {
                    interner.intern(loc).ok_or_else(|| GeoError::Corrupt {
                        path: path.to_path_buf(),
                        network: net.to_string(),
                        message: "too many distinct locations".into(),
                    })?
                };
                *v.insert(id)
            }
        };
        if val != NONE {
            add_network(&mut c, net.ip(), net.prefix(), val);
        }
    }
    if c.v4.is_empty() {
        c.v4 = std::mem::take(&mut c.mapped4);
    }
    Ok(c)
}

fn missing() -> maxminddb::MaxMindDbError {
    maxminddb::MaxMindDbError::decoding("record vanished")
}

/// Files a network in the IPv4 or IPv6 list. An IPv6 network inside `::/96` is IPv4 space of
/// the tree; one that contains `::/96` (a database without an IPv4 subtree) also answers for
/// all of IPv4, as the reader's own IPv4 lookups would; one inside `::ffff:0:0/96` is kept
/// aside in case the tree keeps its IPv4 data only there.
fn add_network(c: &mut Collected, ip: IpAddr, prefix: u8, val: u32) {
    match ip {
        IpAddr::V4(a) => {
            let (f, l) = net_bounds(32, u128::from(u32::from(a)), prefix);
            c.v4.push((f, l, val));
        }
        IpAddr::V6(a) => {
            let x = u128::from(a);
            if x >> 32 == 0 && prefix >= 96 {
                let (f, l) = net_bounds(32, x & 0xffff_ffff, prefix - 96);
                c.v4.push((f, l, val));
                return;
            }
            if x >> 32 == 0xffff && prefix >= 96 {
                let (f, l) = net_bounds(32, x & 0xffff_ffff, prefix - 96);
                c.mapped4.push((f, l, val));
            }
            let (f, l) = net_bounds(128, x, prefix);
            if f == 0 && prefix <= 96 {
                c.v4.push((0, u128::from(u32::MAX), val));
            }
            c.v6.push((f, l, val));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::mmdb::{Value, Writer, map};

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn db(records: &[(&str, Value)]) -> Result<GeoDatabase, GeoError> {
        let mut w = Writer::new("Test-City", "t", 1);
        for (net, v) in records {
            w.insert(net.parse().unwrap(), v).unwrap();
        }
        GeoDatabase::from_bytes(Path::new("t.mmdb"), w.to_bytes().unwrap())
    }

    fn at<'a>(d: &'a GeoDatabase, a: &str) -> Option<&'a Location> {
        let (v, _) =
            d.v4.find(u32::from(a.parse::<std::net::Ipv4Addr>().unwrap()));
        (v != NONE).then(|| &d.locations[v as usize])
    }

    #[test]
    fn registered_country_stands_in_for_a_missing_country() {
        let d = db(&[
            (
                "192.0.2.0/24",
                map([
                    ("continent", map([("code", s("EU"))])),
                    ("registered_country", map([("iso_code", s("FR"))])),
                ]),
            ),
            (
                "198.51.100.0/24",
                map([("continent", map([("code", s("AS"))]))]),
            ),
            (
                "203.0.113.0/24",
                map([("traits", map([("is_anycast", Value::Bool(true))]))]),
            ),
        ])
        .unwrap();
        let fr = at(&d, "192.0.2.1").unwrap();
        assert_eq!(fr.country.as_deref(), Some("FR"));
        assert!(fr.eu, "derived from the country when the flag is absent");
        let asia = at(&d, "198.51.100.1").unwrap();
        assert_eq!(
            (asia.country.as_deref(), asia.continent.as_deref()),
            (None, Some("AS"))
        );
        assert!(
            at(&d, "203.0.113.1").is_none(),
            "a record without a place is no location"
        );
        assert_eq!(d.network_count(), 3);
    }

    #[test]
    fn identical_places_are_interned_and_merged() {
        let rec = || map([("country", map([("iso_code", s("DE"))]))]);
        let d = db(&[
            ("10.0.0.0/24", rec()),
            ("10.0.1.0/24", rec()),
            ("10.0.3.0/24", rec()),
        ])
        .unwrap();
        assert_eq!(d.location_count(), 1);
        // 10.0.0.0/23 merged; 10.0.2.0/24 is a gap.
        assert_eq!(
            d.v4.find(u32::from(std::net::Ipv4Addr::new(10, 0, 1, 9))),
            (0, 23)
        );
    }

    #[test]
    fn networks_are_filed_by_where_the_tree_keeps_ipv4() {
        let mut c = Collected {
            v4: Vec::new(),
            v6: Vec::new(),
            mapped4: Vec::new(),
            networks: 0,
        };
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        add_network(&mut c, v6("::10.0.0.0"), 104, 1);
        add_network(&mut c, v6("::ffff:10.0.0.0"), 104, 2);
        add_network(&mut c, v6("::"), 64, 3);
        add_network(&mut c, v6("2001:db8::"), 32, 4);
        assert_eq!(
            c.v4,
            vec![(0x0a00_0000, 0x0aff_ffff, 1), (0, 0xffff_ffff, 3)]
        );
        assert_eq!(c.mapped4, vec![(0x0a00_0000, 0x0aff_ffff, 2)]);
        assert_eq!(c.v6.len(), 3);
    }

    #[test]
    fn a_database_of_non_maps_is_corrupt_not_a_panic() {
        let e = db(&[("10.0.0.0/8", s("just a string"))]).unwrap_err();
        assert!(
            e.to_string()
                .contains("t.mmdb: corrupt MaxMind DB at 10.0.0.0/8"),
            "{e}"
        );
    }
}
