//! The GSLB wiring of the DNS path: for each zone, the locator (geo), the live health (probe)
//! and the policy engine, behind the DNS front end's [`ZoneSteering`] seam.
//!
//! ```text
//! Client ─► Locator::locate_subnet ─► ClientView ─► policy::select(plan, service, view, health)
//!                                                         └─► Steered { datacenters, scope, TTL }
//! ```

mod explain;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::zone::Zone;
use crate::config::{ConfigError, Diagnostic, ZoneSet};
use crate::dns::{Client, Steered, SteeringFactory, ZoneSteering};
use crate::geo::{DatabaseCache, Locator};
use crate::policy::{ClientView, Decision, ZonePlan, select};
use crate::probe::{HealthBoard, ZoneHealth};

pub use explain::{ExplainRequest, explain};

/// Steering of one zone's services from live health and client location.
#[derive(Debug)]
pub struct GeoSteering {
    plan: ZonePlan,
    locator: Arc<Locator>,
    health: Arc<ZoneHealth>,
    /// Per service: every candidate was down at the last query (for logging transitions once).
    all_down: Vec<AtomicBool>,
}

impl GeoSteering {
    /// Steering for a zone.
    pub fn new(zone: Arc<Zone>, locator: Arc<Locator>, health: Arc<ZoneHealth>) -> Self {
        let all_down = zone
            .services
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        GeoSteering {
            plan: ZonePlan::new(zone),
            locator,
            health,
            all_down,
        }
    }

    /// Locates `addr/prefix` and runs the policy engine.
    pub fn decide(&self, service: usize, addr: IpAddr, prefix: u8) -> Decision {
        let hit = self.locator.locate_subnet(addr, prefix);
        let loc = self.locator.location(hit.loc);
        let view = view(addr, prefix, loc, hit.scope);
        let health = self.health.load();
        let d = select(&self.plan, service, &view, &health, rand::random());
        self.note_all_down(service, d.all_down);
        d
    }

    fn note_all_down(&self, service: usize, now: bool) {
        let Some(flag) = self.all_down.get(service) else {
            return;
        };
        if flag.load(Ordering::Relaxed) != now && flag.swap(now, Ordering::Relaxed) != now {
            let svc = &self.plan.zone.services[service];
            if now {
                tracing::warn!(service = %svc.name, on_all_down = ?svc.on_all_down, "every datacenter of the service is down");
            } else {
                tracing::info!(service = %svc.name, "the service has a healthy datacenter again");
            }
        }
    }
}

/// The policy engine's view of a located client.
pub(crate) fn view<'a>(
    addr: IpAddr,
    prefix: u8,
    loc: &'a crate::geo::Location,
    scope: u8,
) -> ClientView<'a> {
    ClientView {
        addr,
        prefix,
        country: loc.country.as_deref(),
        continent: loc.continent.as_deref(),
        subdivision: loc.subdivision.as_deref(),
        eu: loc.eu,
        point: loc.point,
        direct: &loc.datacenters,
        scope,
    }
}

impl ZoneSteering for GeoSteering {
    fn steer(&self, service: usize, client: &Client) -> Steered {
        let (addr, prefix) = client.subnet();
        let d = self.decide(service, addr, prefix);
        if d.nodata {
            Steered::nodata(d.scope, d.ttl)
        } else {
            Steered::new(d.dcs.iter(), d.scope, d.ttl)
        }
    }
}

/// Builds locators for a zone set, sharing databases between zones.
pub fn locators(
    set: &ZoneSet,
    cache: &mut DatabaseCache,
) -> Result<Vec<Arc<Locator>>, ConfigError> {
    let mut out = Vec::new();
    let mut diagnostics = Vec::new();
    for z in set.zones() {
        match Locator::new(&z.geoip, cache) {
            Ok(l) => out.push(Arc::new(l)),
            Err(e) => diagnostics.push(Diagnostic {
                file: z.file.clone(),
                line: 0,
                col: 0,
                item: "geoip.database".into(),
                value: z
                    .geoip
                    .database
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                message: e.to_string(),
            }),
        }
    }
    if diagnostics.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError { diagnostics })
    }
}

/// The steering factory of `meridian dns`: locators (databases shared and reused across
/// reloads) and the health board's live view of each zone.
pub fn steering_factory(board: HealthBoard) -> SteeringFactory {
    let cache = Arc::new(std::sync::Mutex::new(DatabaseCache::default()));
    Arc::new(move |set: &ZoneSet| {
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let locs = locators(set, &mut cache)?;
        let health = board.attach(set);
        Ok(set
            .zones()
            .iter()
            .zip(locs)
            .zip(health)
            .map(|((z, l), h)| Arc::new(GeoSteering::new(z.clone(), l, h)) as Arc<dyn ZoneSteering>)
            .collect())
    })
}
