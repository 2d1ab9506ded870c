//! The validated zone model: what the DNS front end, the policy engine and the prober use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::Name;

/// Index of a datacenter in [`Zone::datacenters`].
pub type DcId = usize;

/// One zone, validated.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The file the zone was read from.
    pub file: PathBuf,
    /// The zone's apex.
    pub origin: Name,
    /// Default TTL of records and services.
    pub ttl: u32,
    /// The start of authority.
    pub soa: Soa,
    /// The apex NS set.
    pub nameservers: Vec<Name>,
    /// Static records in file order.
    pub records: Vec<Record>,
    /// GeoIP database and overrides used to locate clients for this zone's services.
    pub geoip: GeoipConfig,
    /// Datacenters, sorted by name; [`DcId`] indexes this list.
    pub datacenters: Vec<Datacenter>,
    /// Steered names.
    pub services: Vec<Service>,
    /// The latency table used by the `latency` policy, in file order.
    pub latency: Vec<LatencyRule>,
}

impl Zone {
    /// The datacenter with this name.
    pub fn datacenter_id(&self, name: &str) -> Option<DcId> {
        self.datacenters.iter().position(|d| d.name == name)
    }
}

/// The SOA record's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: Name,
    /// Responsible person's mailbox as a name.
    pub rname: Name,
    /// Serial; defaults to the file's modification time in seconds (mod 2^32).
    pub serial: u32,
    /// Refresh interval, seconds.
    pub refresh: u32,
    /// Retry interval, seconds.
    pub retry: u32,
    /// Expiry, seconds.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308), seconds.
    pub minimum: u32,
}

/// A static resource record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Owner name, absolute; may be a wildcard (`*.example.com.`).
    pub name: Name,
    /// TTL in seconds.
    pub ttl: u32,
    /// Type and data.
    pub data: RecordData,
}

/// Record data of the types a zone file may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Canonical name.
    Cname(Name),
    /// Name server (at the apex, or a delegation below it).
    Ns(Name),
    /// Pointer.
    Ptr(Name),
    /// Mail exchanger.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The mail host.
        exchange: Name,
    },
    /// Text strings, each at most 255 octets.
    Txt(Vec<String>),
    /// Service location (RFC 2782).
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Relative weight among equal priorities.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: Name,
    },
    /// Certification authority authorization (RFC 8659).
    Caa {
        /// The issuer-critical flag.
        critical: bool,
        /// `issue`, `issuewild`, `iodef`, ...
        tag: String,
        /// The property value.
        value: String,
    },
}

impl RecordData {
    /// The record type's mnemonic.
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordData::A(_) => "A",
            RecordData::Aaaa(_) => "AAAA",
            RecordData::Cname(_) => "CNAME",
            RecordData::Ns(_) => "NS",
            RecordData::Ptr(_) => "PTR",
            RecordData::Mx { .. } => "MX",
            RecordData::Txt(_) => "TXT",
            RecordData::Srv { .. } => "SRV",
            RecordData::Caa { .. } => "CAA",
        }
    }
}

/// A point on the globe, degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// A location as written in the zone file (overrides and the default location).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocationSpec {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Continent code: AF AN AS EU NA OC SA.
    pub continent: Option<String>,
    /// ISO 3166-2 code such as `US-CA`.
    pub subdivision: Option<String>,
    /// EU membership; derived from the country when not given.
    pub eu: Option<bool>,
    /// Coordinates, for distance-based policies.
    pub point: Option<GeoPoint>,
}

/// Where the zone locates clients.
#[derive(Debug, Clone, Default)]
pub struct GeoipConfig {
    /// The MaxMind database, resolved relative to the zone file.
    pub database: Option<PathBuf>,
    /// The location of clients that the database and overrides do not place.
    pub default: Option<LocationSpec>,
    /// Overrides, in file order; the longest matching prefix wins.
    pub nets: Vec<NetOverride>,
}

/// A CIDR override.
#[derive(Debug, Clone, PartialEq)]
pub struct NetOverride {
    /// The network (host bits zero).
    pub net: IpNet,
    /// What clients in it get.
    pub target: NetTarget,
}

/// What an override maps its network to.
#[derive(Debug, Clone, PartialEq)]
pub enum NetTarget {
    /// Treat the client as being here.
    Location(LocationSpec),
    /// Answer straight from these datacenters, in this order.
    Datacenters(Vec<DcId>),
}

/// A region that answers for services.
#[derive(Debug, Clone, PartialEq)]
pub struct Datacenter {
    /// Name (the key of `[datacenters.NAME]`).
    pub name: String,
    /// Addresses answered when the datacenter is chosen.
    pub addresses: Vec<IpAddr>,
    /// Coordinates, for geo and latency policies.
    pub location: Option<GeoPoint>,
    /// Country the datacenter is in.
    pub country: Option<String>,
    /// Continent the datacenter is in.
    pub continent: Option<String>,
    /// Legal jurisdiction, e.g. `EU` or `US` (shown by explain and the status page).
    pub jurisdiction: Option<String>,
    /// Health check of the site's balancer; without one the datacenter is always up.
    pub check: Option<CheckSpec>,
    /// Geoproximity bias, -99..=99: positive values widen the area the datacenter attracts.
    pub bias: f64,
    /// Load shedding: above `at` (reported load 0..1), keep only a share of clients.
    pub shed: Option<Shed>,
}

/// Load-shedding settings of a datacenter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shed {
    /// Reported load above which the datacenter sheds clients.
    pub at: f64,
    /// Share of clients kept while shedding; `None` keeps `at / load`.
    pub keep: Option<f64>,
}

/// A health check of a datacenter.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// What to check.
    pub target: CheckTarget,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take; shorter than the interval.
    pub timeout: Duration,
    /// Consecutive successes that bring a down datacenter up.
    pub rise: u32,
    /// Consecutive failures that take an up datacenter down.
    pub fall: u32,
    /// Random spread of the interval, as a share (0.1 = ±10 %).
    pub jitter: f64,
    /// HTTP status that counts as success.
    pub expect_status: u16,
    /// Substring the HTTP body must contain.
    pub body: Option<String>,
    /// Minimum healthy backends reported by the site.
    pub min_healthy: Option<MinHealthy>,
    /// State before the first result.
    pub initial_up: bool,
}

/// Default check interval.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Default check timeout.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(400);
/// Default rise threshold.
pub const DEFAULT_RISE: u32 = 2;
/// Default fall threshold.
pub const DEFAULT_FALL: u32 = 2;
/// Default jitter share.
pub const DEFAULT_JITTER: f64 = 0.1;

/// The target of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// HTTP(S) GET of this URL.
    Http(String),
    /// TCP connect to `host:port`.
    Tcp(String),
}

/// How many of a site's backends must be healthy for the site to count as up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinHealthy {
    /// At least this many.
    Count(u32),
    /// At least this share of the total (0..=1).
    Share(f64),
}

/// How a service orders its datacenters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Explicit mappings, then great-circle distance.
    Geo,
    /// The latency table, then distance.
    Latency,
    /// The configured order.
    Failover,
    /// Random draw by weight.
    Weighted,
    /// Client subnet hashed to a stable datacenter.
    ConsistentHash,
}

impl Policy {
    /// The name used in zone files.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Geo => "geo",
            Policy::Latency => "latency",
            Policy::Failover => "failover",
            Policy::Weighted => "weighted",
            Policy::ConsistentHash => "consistent-hash",
        }
    }
}

/// What a service answers when every candidate is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Answer as if all were healthy.
    FailOpen,
    /// Answer NOERROR with no data.
    NoData,
}

/// A steered name.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Owner name, absolute.
    pub name: Name,
    /// TTL of answers.
    pub ttl: u32,
    /// TTL while a datacenter in the answer is changing state or shedding load.
    pub failover_ttl: u32,
    /// The ordering policy.
    pub policy: Policy,
    /// Candidate datacenters, in configured order.
    pub datacenters: Vec<DcId>,
    /// How many datacenters to answer with.
    pub answers: usize,
    /// Sovereignty fences; the first whose clients match applies.
    pub sovereignty: Vec<Fence>,
    /// Behaviour when all candidates are down.
    pub on_all_down: AllDown,
    /// Datacenter preferred for clients that cannot be located.
    pub default: Option<DcId>,
    /// Weight per entry of `datacenters` (weighted policy; 1 when not given).
    pub weights: Vec<u32>,
    /// Explicit geo mappings.
    pub geo: GeoMap,
    /// Prefix lengths hashed by the consistent-hash policy (IPv4, IPv6).
    pub hash_prefix: (u8, u8),
}

/// A sovereignty rule: clients that match are only ever answered from these datacenters.
#[derive(Debug, Clone, PartialEq)]
pub struct Fence {
    /// Who the rule covers.
    pub clients: ClientSet,
    /// The only datacenters they may get.
    pub datacenters: Vec<DcId>,
}

/// A set of clients described by place or network.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientSet(pub Vec<ClientMatch>);

/// One way to describe clients.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMatch {
    /// Clients in an EU member state.
    Eu,
    /// Clients on a continent (`continent:EU`).
    Continent(String),
    /// Clients in a country (`DE`).
    Country(String),
    /// Clients in a subdivision (`US-CA`).
    Subdivision(String),
    /// Clients in a network (`10.0.0.0/8`).
    Net(IpNet),
}

/// Explicit geo mappings of a service: most specific wins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoMap {
    /// ISO 3166-2 code → ordered datacenters.
    pub subdivisions: Vec<(String, Vec<DcId>)>,
    /// Country → ordered datacenters.
    pub countries: Vec<(String, Vec<DcId>)>,
    /// Continent → ordered datacenters.
    pub continents: Vec<(String, Vec<DcId>)>,
}

impl GeoMap {
    /// True when no mapping is configured.
    pub fn is_empty(&self) -> bool {
        self.subdivisions.is_empty() && self.countries.is_empty() && self.continents.is_empty()
    }
}

/// One row of the latency table.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRule {
    /// Who the row is for.
    pub clients: ClientSet,
    /// Round-trip time from those clients to each listed datacenter, milliseconds.
    pub rtt_ms: Vec<(DcId, f64)>,
}
