//! The board as the status page and `/status` JSON show it.

use std::time::SystemTime;

use serde::{Serialize, Serializer};

use super::board::HealthBoard;
use super::health::DcState;

/// Every attached zone's datacenters, in attach order.
#[derive(Debug, Clone, Serialize)]
pub struct BoardStatus {
    /// One entry per zone.
    pub zones: Vec<ZoneStatus>,
}

/// One zone's datacenters.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    /// The zone's origin, e.g. `example.com.`.
    pub origin: String,
    /// In the zone's `DcId` order.
    pub datacenters: Vec<DcStatus>,
}

/// One datacenter's health and its latest check.
#[derive(Debug, Clone, Serialize)]
pub struct DcStatus {
    /// Datacenter name.
    pub name: String,
    /// The state the DNS side uses.
    pub state: DcState,
    /// When that state was entered (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
    /// A transition is under way or just happened (answers use `failover_ttl`).
    pub changing: bool,
    /// The operator's override, when set.
    pub admin: Option<DcState>,
    /// The check's target (URL or `tcp://host:port`); `None`: no check, always up.
    pub check: Option<String>,
    /// `pass`, `draining`, `fail` or `timeout`; `None` before the first result.
    pub last_result: Option<&'static str>,
    /// When the latest check finished (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_check: Option<SystemTime>,
    /// Duration of the latest check, milliseconds.
    pub last_rtt_ms: Option<f64>,
    /// Load reported by the site (0 without a report).
    pub load: f32,
    /// Why the latest check failed.
    pub last_error: Option<String>,
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

fn rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

impl HealthBoard {
    /// A copy of the board for the status page: state, since, latest check, load, error.
    pub fn status(&self) -> BoardStatus {
        let st = self
            .inner()
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let zones = st
            .zones
            .iter()
            .map(|z| ZoneStatus {
                origin: z.origin.to_string(),
                datacenters: z
                    .dcs
                    .iter()
                    .map(|d| {
                        let c = d.check.and_then(|id| st.checks.get(&id));
                        let s = c.map(|c| &c.status);
                        DcStatus {
                            name: d.name.clone(),
                            state: d.current.state,
                            since: d.since,
                            changing: d.current.changing,
                            admin: d.admin,
                            check: c.map(|c| c.target.clone()),
                            last_result: s.and_then(|s| s.result).map(|r| r.as_str()),
                            last_check: s.and_then(|s| s.at),
                            last_rtt_ms: s.and_then(|s| s.rtt).map(|r| r.as_secs_f64() * 1e3),
                            load: d.current.load,
                            last_error: s.and_then(|s| s.error.clone()),
                        }
                    })
                    .collect(),
            })
            .collect();
        BoardStatus { zones }
    }
}
