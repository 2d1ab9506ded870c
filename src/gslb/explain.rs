//! `meridian explain`: the whole decision for one client, step by step.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{Name, load_zone_dir};
use crate::geo::{DatabaseCache, Locator, Origin};
use crate::policy::{Explanation, ZonePlan, select_traced};
use crate::probe::{DcHealth, DcState};

/// What to explain.
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

/// Runs the pipeline for one client and describes every step.
pub fn explain(req: &ExplainRequest) -> anyhow::Result<String> {
    let set = load_zone_dir(&req.zones).map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = Name::parse_absolute(&req.name).map_err(|e| anyhow::anyhow!("bad name: {e}"))?;
    let zone = set
        .find(&name)
        .ok_or_else(|| anyhow::anyhow!("{name} is in no zone of {}", req.zones.display()))?;
    let service = zone
        .services
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<_> = zone.services.iter().map(|s| s.name.to_string()).collect();
            anyhow::anyhow!(
                "{name} is not a service of zone {} (services: {})",
                zone.origin,
                names.join(", ")
            )
        })?;
    let (addr, prefix) = parse_client(&req.client)?;
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
                .ok_or_else(|| anyhow::anyhow!("no datacenter {d:?} in zone {}", zone.origin))?;
            health[id].state = state;
        }
    }
    let plan = ZonePlan::new(Arc::clone(zone));
    let hit = locator.locate_subnet(addr, prefix);
    let loc = locator.location(hit.loc);
    let view = super::view(addr, prefix, loc, hit.scope);
    let mut trace = Explanation::default();
    let d = select_traced(&plan, service, &view, &health, 0, &mut trace);
    let svc = &zone.services[service];
    let dc_names = |ids: &[usize]| -> String {
        if ids.is_empty() {
            return "(none)".into();
        }
        ids.iter()
            .map(|i| zone.datacenters[*i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let mut o = String::new();
    let _ = writeln!(o, "query      {name} from {addr}/{prefix}");
    let _ = writeln!(o, "zone       {} ({})", zone.origin, zone.file.display());
    let _ = writeln!(
        o,
        "service    {} policy {} answers {} ttl {} failover_ttl {}",
        svc.name,
        svc.policy.as_str(),
        svc.answers,
        svc.ttl,
        svc.failover_ttl
    );
    let origin = match loc.origin {
        Origin::Database => "database",
        Origin::Override => "override [[geoip.nets]]",
        Origin::Default => "not found: zone default",
    };
    let _ = writeln!(
        o,
        "located    country {} continent {} subdivision {} eu {} point {} ({origin}); same location for the /{} block",
        loc.country.as_deref().unwrap_or("-"),
        loc.continent.as_deref().unwrap_or("-"),
        loc.subdivision.as_deref().unwrap_or("-"),
        if loc.eu { "yes" } else { "no" },
        loc.point
            .map_or("-".to_string(), |p| format!("{:.2},{:.2}", p.lat, p.lon)),
        hit.scope
    );
    if !loc.datacenters.is_empty() {
        let _ = writeln!(o, "override   straight to {}", dc_names(&loc.datacenters));
    }
    let states: Vec<String> = svc
        .datacenters
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                zone.datacenters[*i].name,
                health[*i].state.as_str()
            )
        })
        .collect();
    let _ = writeln!(o, "health     {}", states.join(", "));
    for (i, s) in trace.steps.iter().enumerate() {
        let _ = writeln!(
            o,
            "step {}     {:<12} {} — {}",
            i + 1,
            s.name,
            dc_names(&s.kept),
            s.note
        );
    }
    if d.nodata {
        let _ = writeln!(o, "answer     NODATA");
    } else {
        for id in d.dcs.iter() {
            let dc = &zone.datacenters[id];
            let addrs: Vec<String> = dc.addresses.iter().map(ToString::to_string).collect();
            let _ = writeln!(o, "answer     {}: {}", dc.name, addrs.join(", "));
        }
    }
    let _ = writeln!(o, "ttl        {}", d.ttl);
    let _ = writeln!(o, "ecs scope  /{}", d.scope);
    Ok(o)
}

fn parse_client(s: &str) -> anyhow::Result<(IpAddr, u8)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        let p = if ip.is_ipv4() { 32 } else { 128 };
        return Ok((ip, p));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| anyhow::anyhow!("bad client {s:?}: expected an address or ADDRESS/PREFIX"))?;
    Ok((net.trunc().addr(), net.prefix_len()))
}
