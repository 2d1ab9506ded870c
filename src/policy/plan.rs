//! A zone prepared for selection: per-datacenter values computed once per load.

use std::sync::Arc;

use crate::config::zone::{NetTarget, Zone};

/// The zone and what selection needs precomputed.
#[derive(Debug, Clone)]
pub struct ZonePlan {
    /// The zone.
    pub zone: Arc<Zone>,
    /// Distance multiplier per datacenter from its bias: `1 - bias/100`.
    pub(crate) bias_factor: Vec<f64>,
    /// Hash seed per datacenter (from its name), for rendezvous hashing.
    pub(crate) dc_seed: Vec<u64>,
    /// Some `[[geoip.nets]]` override sends clients straight to datacenters: then every answer
    /// depends on where the client is.
    pub(crate) has_direct_overrides: bool,
    /// Some datacenter sheds load above a threshold (spill-over can reorder answers).
    pub(crate) has_shedding: bool,
}

impl ZonePlan {
    /// Prepares a zone.
    pub fn new(zone: Arc<Zone>) -> Self {
        let bias_factor = zone
            .datacenters
            .iter()
            .map(|d| 1.0 - d.bias / 100.0)
            .collect();
        let dc_seed = zone
            .datacenters
            .iter()
            .map(|d| xxhash_rust::xxh3::xxh3_64_with_seed(d.name.as_bytes(), super::select::SEED))
            .collect();
        let has_direct_overrides = zone
            .geoip
            .nets
            .iter()
            .any(|n| matches!(n.target, NetTarget::Datacenters(_)));
        let has_shedding = zone.datacenters.iter().any(|d| d.shed.is_some());
        ZonePlan {
            has_shedding,
            zone,
            bias_factor,
            dc_seed,
            has_direct_overrides,
        }
    }
}
