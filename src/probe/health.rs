//! The health of datacenters as the policy engine sees it: small `Copy` values, published per
//! zone as one immutable snapshot that readers load without locks.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use serde::Serialize;

use crate::config::Name;
use crate::config::zone::DcId;

/// Whether a datacenter may receive new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DcState {
    /// Passing its checks.
    Up,
    /// Up, but the site asked for no new clients (its `/health` says `draining`, or an operator
    /// drained it).
    Draining,
    /// Failing its checks.
    Down,
}

impl DcState {
    /// `up`, `draining` or `down`: the name in metrics, logs and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            DcState::Up => "up",
            DcState::Draining => "draining",
            DcState::Down => "down",
        }
    }
}

/// The health of one datacenter: plain data, cheap to copy, read by the policy engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcHealth {
    /// Current state.
    pub state: DcState,
    /// Load reported by the site: in-flight work over capacity (0..1, above 1 when overloaded);
    /// 0 when the site sends no report.
    pub load: f32,
    /// True while the state changed recently or a check result is disagreeing with the state
    /// (rise/fall in progress): answers use the service's shorter `failover_ttl`.
    pub changing: bool,
}

impl DcHealth {
    /// A healthy, idle datacenter.
    pub const UP: DcHealth = DcHealth {
        state: DcState::Up,
        load: 0.0,
        changing: false,
    };

    /// A datacenter that fails its checks.
    pub const DOWN: DcHealth = DcHealth {
        state: DcState::Down,
        load: 0.0,
        changing: false,
    };

    /// True when it may take new clients.
    pub fn is_up(&self) -> bool {
        self.state == DcState::Up
    }
}

/// The live health of one zone's datacenters, indexed by [`DcId`] (the zone model's
/// `datacenters` order). Written by the [`HealthBoard`](super::HealthBoard), read by the DNS
/// path with [`ZoneHealth::load`], which takes no lock.
#[derive(Debug)]
pub struct ZoneHealth {
    origin: Name,
    dcs: ArcSwap<Vec<DcHealth>>,
}

impl ZoneHealth {
    /// A fixed health view (tests, `meridian explain`); the board makes live ones.
    pub fn new(origin: Name, dcs: Vec<DcHealth>) -> Self {
        ZoneHealth {
            origin,
            dcs: ArcSwap::from_pointee(dcs),
        }
    }

    /// The zone this view belongs to.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The current snapshot, one entry per datacenter. Lock-free; hold the guard only for the
    /// duration of one decision.
    pub fn load(&self) -> Guard<Arc<Vec<DcHealth>>> {
        self.dcs.load()
    }

    /// One datacenter's current health.
    pub fn get(&self, id: DcId) -> Option<DcHealth> {
        self.dcs.load().get(id).copied()
    }

    pub(crate) fn store(&self, dcs: Vec<DcHealth>) {
        self.dcs.store(Arc::new(dcs));
    }
}
