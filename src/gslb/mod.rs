//! The GSLB wiring of the DNS path: for each zone, the locator (geo), the live health (probe)
//! and the policy engine, behind the DNS front end's [`ZoneSteering`] seam.
//!
//! ```text
//! Client ─► Locator::locate_subnet ─► ClientView ─► policy::select(plan, service, view, health)
//!                                                         └─► Steered { datacenters, scope, TTL }
//! ```

mod explain;
mod metrics;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::zone::Zone;
use crate::config::{ConfigError, Diagnostic, ZoneSet};
use crate::dns::{Client, Steered, SteeringFactory, ZoneSteering};
use crate::geo::{DatabaseCache, Locator};
use crate::policy::{ClientView, Decision, OrderTable, ZonePlan, select, select_precomputed};
use crate::probe::{HealthBoard, ZoneHealth};

pub use explain::{
    ExplainError, ExplainRequest, Explained, ExplainedAnswer, ExplainedStep, explain, explain_in,
    find_service, parse_client,
};
use metrics::ServiceCounters;
pub use metrics::{AnswerCount, GslbMetrics};

/// Steering of one zone's services from live health and client location.
#[derive(Debug)]
pub struct GeoSteering {
    plan: ZonePlan,
    locator: Arc<Locator>,
    health: Arc<ZoneHealth>,
    /// Per service: the policy's order for every location, when it depends on nothing else.
    tables: Vec<Option<OrderTable>>,
    /// Per service: every candidate was down at the last query (for logging transitions once).
    all_down: Vec<AtomicBool>,
    /// Per service: answer and fail-open counters.
    counters: Vec<ServiceCounters>,
    metrics: Option<GslbMetrics>,
}

impl GeoSteering {
    /// Steering for a zone.
    pub fn new(zone: Arc<Zone>, locator: Arc<Locator>, health: Arc<ZoneHealth>) -> Self {
        Self::with_metrics(zone, locator, health, None)
    }

    /// Steering for a zone, counting answers on `metrics`.
    pub fn with_metrics(
        zone: Arc<Zone>,
        locator: Arc<Locator>,
        health: Arc<ZoneHealth>,
        metrics: Option<GslbMetrics>,
    ) -> Self {
        let counters = metrics
            .as_ref()
            .map(|m| m.services(&zone))
            .unwrap_or_default();
        let all_down = zone
            .services
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let plan = ZonePlan::new(zone);
        let tables = (0..plan.zone.services.len())
            .map(|s| {
                let views = locator
                    .locations()
                    .map(|(_, loc)| view(IpAddr::from([0, 0, 0, 0]), 0, loc, 0));
                OrderTable::build(&plan, s, views)
            })
            .collect();
        GeoSteering {
            plan,
            locator,
            health,
            tables,
            all_down,
            counters,
            metrics,
        }
    }

    /// Locates `addr/prefix` and runs the policy engine without the per-location tables
    /// (for the test that keeps the two in agreement).
    pub fn decide_uncached(&self, service: usize, addr: IpAddr, prefix: u8, draw: u64) -> Decision {
        let hit = self.locator.locate_subnet(addr, prefix);
        let loc = self.locator.location(hit.loc);
        let view = view(addr, prefix, loc, hit.scope);
        select(&self.plan, service, &view, &self.health.load(), draw)
    }

    /// Locates `addr/prefix` and runs the policy engine.
    pub fn decide(&self, service: usize, addr: IpAddr, prefix: u8) -> Decision {
        match &self.metrics {
            Some(m) if metrics::sample() => {
                let start = std::time::Instant::now();
                let d = self.decide_inner(service, addr, prefix);
                m.observe_decision(start.elapsed());
                d
            }
            _ => self.decide_inner(service, addr, prefix),
        }
    }

    fn decide_inner(&self, service: usize, addr: IpAddr, prefix: u8) -> Decision {
        let hit = self.locator.locate_subnet(addr, prefix);
        let loc = self.locator.location(hit.loc);
        let view = view(addr, prefix, loc, hit.scope);
        let health = self.health.load();
        let pre = self
            .tables
            .get(service)
            .and_then(|t| t.as_ref()?.get(hit.loc.index()));
        let d = match pre {
            Some(pre) => select_precomputed(&self.plan, service, &view, &health, pre),
            None => select(&self.plan, service, &view, &health, rand::random()),
        };
        self.note_all_down(service, d.all_down);
        if let Some(c) = self.counters.get(service) {
            c.count(&d);
        }
        d
    }

    fn note_all_down(&self, service: usize, now: bool) {
        let Some(flag) = self.all_down.get(service) else {
            return;
        };
        if flag.load(Ordering::Relaxed) != now && flag.swap(now, Ordering::Relaxed) != now {
            let svc = &self.plan.zone.services[service];
            let action = match svc.on_all_down {
                crate::config::zone::AllDown::FailOpen => "fail-open",
                crate::config::zone::AllDown::NoData => "nodata",
            };
            if now {
                tracing::warn!(zone = %self.plan.zone.origin, service = %svc.name,
                    on_all_down = action, "every datacenter of the service is down");
            } else {
                tracing::info!(zone = %self.plan.zone.origin, service = %svc.name,
                    "the service has a healthy datacenter again");
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
/// reloads), the health board's live view of each zone, and (optionally) answer counters.
pub fn steering_factory(board: HealthBoard) -> SteeringFactory {
    steering_factory_with(board, None)
}

/// [`steering_factory`] counting answers on `metrics`.
pub fn steering_factory_with(board: HealthBoard, metrics: Option<GslbMetrics>) -> SteeringFactory {
    steering_factory_cached(board, metrics, Arc::default())
}

/// [`steering_factory_with`] loading databases through `cache`, which the caller may share
/// (the status page's live `explain` locates clients with the same compiled databases).
pub fn steering_factory_cached(
    board: HealthBoard,
    metrics: Option<GslbMetrics>,
    cache: Arc<std::sync::Mutex<DatabaseCache>>,
) -> SteeringFactory {
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
            .map(|((z, l), h)| {
                Arc::new(GeoSteering::with_metrics(z.clone(), l, h, metrics.clone()))
                    as Arc<dyn ZoneSteering>
            })
            .collect())
    })
}
