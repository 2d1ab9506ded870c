//! `explain`: the whole decision for one client, step by step.
//!
//! One function, [`explain_in`], runs the policy pipeline with a tracer over a loaded zone, a
//! locator and a health view. `meridian explain` calls it on zone files with health made up
//! from `--down`/`--draining`; the DNS admin listener's status page calls it on the zones being
//! served, their locators and the board's live health. Both render the same [`Explained`].

use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::zone::Zone;
use crate::config::{ConfigError, Name, ZoneSet, load_zone_dir};
use crate::geo::{DatabaseCache, GeoError, Locator, Origin};
use crate::policy::{Explanation, ZonePlan, select_traced};
use crate::probe::{DcHealth, DcState};

/// What to explain from zone files (`meridian explain`).
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// Zone directory or file.
    pub zones: PathBuf,
    /// The queried name (a service).
    pub name: String,
    /// The client: an address (a host) or a subnet as ECS would carry it (`192.0.2.0/24`).
    pub client: String,
    /// Datacenters to treat as down.
    pub down: Vec<String>,
    /// Datacenters to treat as draining.
    pub draining: Vec<String>,
}

/// Why a decision cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The zone files do not load.
    #[error("{0}")]
    Zones(#[from] ConfigError),
    /// The name is not a domain name.
    #[error("bad name {name:?}: {reason}")]
    BadName {
        /// As given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No zone holds the name.
    #[error("{0} is in no zone served")]
    NoZone(String),
    /// The name is in a zone but is not a service.
    #[error("{name} is not a service of zone {zone} (services: {services})")]
    NotAService {
        /// The name.
        name: String,
        /// The zone's origin.
        zone: String,
        /// The zone's services, comma-separated.
        services: String,
    },
    /// The client is neither an address nor a subnet.
    #[error("bad client {0:?}: expected an address or ADDRESS/PREFIX")]
    BadClient(String),
    /// `--down`/`--draining` named a datacenter the zone does not have.
    #[error("no datacenter {dc:?} in zone {zone}")]
    UnknownDatacenter {
        /// The name given.
        dc: String,
        /// The zone's origin.
        zone: String,
    },
    /// The zone's GeoIP database cannot be loaded.
    #[error("{0}")]
    Geo(#[from] GeoError),
}

/// One step of the pipeline, with the datacenters it kept.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedStep {
    /// `candidates`, `health`, `sovereignty`, `order`, `answers`, ...
    pub name: &'static str,
    /// Datacenter names kept, in order.
    pub kept: Vec<String>,
    /// Why.
    pub note: String,
}

/// One datacenter of the answer.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedAnswer {
    /// Datacenter name.
    pub datacenter: String,
    /// Its addresses.
    pub addresses: Vec<String>,
}

/// The decision for one client, every step named: what `meridian explain` prints and the
/// status page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    /// The queried name.
    pub name: String,
    /// The client subnet as looked up, e.g. `81.2.69.0/24`.
    pub client: String,
    /// The zone's origin.
    pub zone: String,
    /// The zone's file.
    pub file: String,
    /// Service settings.
    pub policy: &'static str,
    /// `answers` of the service.
    pub answers: usize,
    /// `ttl` of the service.
    pub ttl: u32,
    /// `failover_ttl` of the service.
    pub failover_ttl: u32,
    /// Where the client was placed (country, continent, ... in one line).
    pub located: String,
    /// Prefix length for which the location holds.
    pub located_scope: u8,
    /// Datacenters an override sends the client straight to.
    pub override_datacenters: Vec<String>,
    /// The service's datacenters and the state each had, in the service's order.
    pub health: Vec<(String, DcState)>,
    /// The pipeline's steps.
    pub steps: Vec<ExplainedStep>,
    /// The answer; empty with `nodata`.
    pub answer: Vec<ExplainedAnswer>,
    /// NODATA (every candidate down with `on_all_down = "nodata"`).
    pub nodata: bool,
    /// TTL of the answer.
    pub answer_ttl: u32,
    /// ECS scope of the answer.
    pub scope: u8,
}

/// Runs the pipeline for one client of `zone`'s service number `service`, over `locator` and
/// `health` (one entry per datacenter of the zone), and describes every step.
pub fn explain_in(
    zone: &Arc<Zone>,
    service: usize,
    locator: &Locator,
    health: &[DcHealth],
    (addr, prefix): (IpAddr, u8),
) -> Explained {
    let plan = ZonePlan::new(Arc::clone(zone));
    let hit = locator.locate_subnet(addr, prefix);
    let loc = locator.location(hit.loc);
    let view = super::view(addr, prefix, loc, hit.scope);
    let mut trace = Explanation::default();
    let d = select_traced(&plan, service, &view, health, 0, &mut trace);
    let svc = &zone.services[service];
    let names = |ids: &[usize]| -> Vec<String> {
        ids.iter()
            .filter_map(|i| zone.datacenters.get(*i))
            .map(|d| d.name.clone())
            .collect()
    };
    let origin = match loc.origin {
        Origin::Database => "database",
        Origin::Override => "override [[geoip.nets]]",
        Origin::Default => "not found: zone default",
    };
    let located = format!(
        "country {} continent {} subdivision {} eu {} point {} ({origin})",
        loc.country.as_deref().unwrap_or("-"),
        loc.continent.as_deref().unwrap_or("-"),
        loc.subdivision.as_deref().unwrap_or("-"),
        if loc.eu { "yes" } else { "no" },
        loc.point
            .map_or("-".to_string(), |p| format!("{:.2},{:.2}", p.lat, p.lon)),
    );
    Explained {
        name: svc.name.to_string(),
        client: format!("{addr}/{prefix}"),
        zone: zone.origin.to_string(),
        file: zone.file.display().to_string(),
        policy: svc.policy.as_str(),
        answers: svc.answers,
        ttl: svc.ttl,
        failover_ttl: svc.failover_ttl,
        located,
        located_scope: hit.scope,
        override_datacenters: names(&loc.datacenters),
        health: svc
            .datacenters
            .iter()
            .map(|i| {
                let state = health.get(*i).map_or(DcState::Up, |h| h.state);
                (zone.datacenters[*i].name.clone(), state)
            })
            .collect(),
        steps: trace
            .steps
            .iter()
            .map(|s| ExplainedStep {
                name: s.name,
                kept: names(&s.kept),
                note: s.note.clone(),
            })
            .collect(),
        answer: d
            .dcs
            .iter()
            .filter(|_| !d.nodata)
            .map(|id| {
                let dc = &zone.datacenters[id];
                ExplainedAnswer {
                    datacenter: dc.name.clone(),
                    addresses: dc.addresses.iter().map(ToString::to_string).collect(),
                }
            })
            .collect(),
        nodata: d.nodata,
        answer_ttl: d.ttl,
        scope: d.scope,
    }
}

impl Explained {
    /// The text `meridian explain` prints: one line per fact, keyed by the first word.
    pub fn to_text(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut o = String::new();
        let _ = writeln!(o, "query      {} from {}", self.name, self.client);
        let _ = writeln!(o, "zone       {} ({})", self.zone, self.file);
        let _ = writeln!(
            o,
            "service    {} policy {} answers {} ttl {} failover_ttl {}",
            self.name, self.policy, self.answers, self.ttl, self.failover_ttl
        );
        let _ = writeln!(
            o,
            "located    {}; same location for the /{} block",
            self.located, self.located_scope
        );
        if !self.override_datacenters.is_empty() {
            let _ = writeln!(
                o,
                "override   straight to {}",
                list(&self.override_datacenters)
            );
        }
        let states: Vec<String> = self
            .health
            .iter()
            .map(|(n, s)| format!("{n} {}", s.as_str()))
            .collect();
        let _ = writeln!(o, "health     {}", states.join(", "));
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                o,
                "step {}     {:<12} {} — {}",
                i + 1,
                s.name,
                list(&s.kept),
                s.note
            );
        }
        if self.nodata {
            let _ = writeln!(o, "answer     NODATA");
        } else {
            for a in &self.answer {
                let _ = writeln!(o, "answer     {}: {}", a.datacenter, a.addresses.join(", "));
            }
        }
        let _ = writeln!(o, "ttl        {}", self.answer_ttl);
        let _ = writeln!(o, "ecs scope  /{}", self.scope);
        o
    }
}

/// The zone of `name` in `set` and the index of its service `name`.
pub fn find_service(set: &ZoneSet, name: &str) -> Result<(Arc<Zone>, usize), ExplainError> {
    let name = Name::parse_absolute(name).map_err(|e| ExplainError::BadName {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    let zone = set
        .find(&name)
        .ok_or_else(|| ExplainError::NoZone(name.to_string()))?;
    let service = zone
        .services
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| ExplainError::NotAService {
            name: name.to_string(),
            zone: zone.origin.to_string(),
            services: zone
                .services
                .iter()
                .map(|s| s.name.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    Ok((Arc::clone(zone), service))
}

/// Parses a client given as an address (a host) or `ADDRESS/PREFIX` (host bits dropped).
pub fn parse_client(s: &str) -> Result<(IpAddr, u8), ExplainError> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        let p = if ip.is_ipv4() { 32 } else { 128 };
        return Ok((ip, p));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| ExplainError::BadClient(s.to_string()))?;
    Ok((net.trunc().addr(), net.prefix_len()))
}

/// `meridian explain`: loads the zone files and explains one client with every datacenter up
/// except those named down or draining.
pub fn explain(req: &ExplainRequest) -> Result<String, ExplainError> {
    let set = load_zone_dir(&req.zones)?;
    let (zone, service) = find_service(&set, &req.name)?;
    let client = parse_client(&req.client)?;
    let mut cache = DatabaseCache::default();
    let locator = Locator::new(&zone.geoip, &mut cache)?;
    let mut health = vec![DcHealth::UP; zone.datacenters.len()];
    for (list, state) in [
        (&req.down, DcState::Down),
        (&req.draining, DcState::Draining),
    ] {
        for d in list {
            let id = zone
                .datacenter_id(d)
                .ok_or_else(|| ExplainError::UnknownDatacenter {
                    dc: d.clone(),
                    zone: zone.origin.to_string(),
                })?;
            health[id].state = state;
        }
    }
    Ok(explain_in(&zone, service, &locator, &health, client).to_text())
}
