//! Per-location orders computed once per load, so a query does no distance or code comparison:
//! for each location of the zone's locator, the policy's full order of the service's candidates
//! and the sovereignty rule that covers it. Health, fences' fail-open, spill-over and `answers`
//! still run per query over that order (`select_precomputed`), which gives exactly the decision
//! `select` would (a test checks it over every location and random health).

use super::client::{ClientMatch, ClientView, matches};
use super::order;
use super::plan::ZonePlan;
use super::select::DcList;
use crate::config::zone::Policy;

/// The orders of one service, by location index.
#[derive(Debug, Clone)]
pub struct OrderTable {
    width: usize,
    orders: Box<[u16]>,
    fences: Box<[u8]>,
}

const NO_FENCE: u8 = u8::MAX;

impl OrderTable {
    /// Builds the table from every location's view (index = location id), or `None` when the
    /// service's order depends on more than the location: weighted draws, consistent hashing,
    /// or rules that match client networks.
    pub fn build<'a>(
        plan: &ZonePlan,
        service: usize,
        locations: impl Iterator<Item = ClientView<'a>>,
    ) -> Option<Self> {
        let svc = &plan.zone.services[service];
        if !matches!(svc.policy, Policy::Geo | Policy::Latency | Policy::Failover) {
            return None;
        }
        let by_network = |set: &crate::config::zone::ClientSet| {
            set.0.iter().any(|m| matches!(m, ClientMatch::Net(_)))
        };
        if svc.sovereignty.iter().any(|f| by_network(&f.clients))
            || svc.sovereignty.len() >= usize::from(NO_FENCE)
            || (svc.policy == Policy::Latency
                && plan.zone.latency.iter().any(|r| by_network(&r.clients)))
        {
            return None;
        }
        let width = svc.datacenters.len();
        let mut orders = Vec::new();
        let mut fences = Vec::new();
        for view in locations {
            let mut list = DcList::from_ids(svc.datacenters.iter().copied());
            order::order_why(plan, svc, &view, 0, &mut list);
            orders.extend(list.iter().map(|d| d as u16));
            let fence = svc
                .sovereignty
                .iter()
                .position(|f| matches(&f.clients, &view))
                .map_or(NO_FENCE, |i| i as u8);
            fences.push(fence);
        }
        Some(OrderTable {
            width,
            orders: orders.into_boxed_slice(),
            fences: fences.into_boxed_slice(),
        })
    }

    /// The order and fence of a location, when the table has it.
    #[inline]
    pub fn get(&self, location: usize) -> Option<super::select::Precomputed<'_>> {
        let order = self
            .orders
            .get(location * self.width..(location + 1) * self.width)?;
        let fence = match *self.fences.get(location)? {
            NO_FENCE => None,
            i => Some(usize::from(i)),
        };
        Some(super::select::Precomputed { order, fence })
    }
}
