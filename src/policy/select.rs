//! The pipeline itself.

use std::net::IpAddr;

use super::client::{ClientView, matches};
use super::explain::{NoTrace, Trace};
use super::order;
use super::plan::ZonePlan;
use crate::config::zone::{AllDown, DcId, Policy, Service};
use crate::probe::DcHealth;

/// Seed of every hash the policy engine takes (fixed: every thread and restart agrees).
pub(crate) const SEED: u64 = 0x6d65_7269_6469_616e;

/// Most datacenters a list holds.
pub const MAX_DCS: usize = 64;

/// A small ordered list of datacenters, kept inline (no allocation on the query path).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DcList {
    ids: [u16; MAX_DCS],
    len: u8,
}

impl std::fmt::Debug for DcList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Default for DcList {
    fn default() -> Self {
        DcList {
            ids: [0; MAX_DCS],
            len: 0,
        }
    }
}

impl DcList {
    /// The list from ids (beyond [`MAX_DCS`] are dropped).
    pub fn from_ids(ids: impl IntoIterator<Item = DcId>) -> Self {
        let mut l = DcList::default();
        for i in ids {
            l.push(i);
        }
        l
    }

    /// Appends (ignored when full).
    pub fn push(&mut self, id: DcId) {
        if (self.len as usize) < MAX_DCS {
            self.ids[self.len as usize] = id as u16;
            self.len += 1;
        }
    }

    /// The ids in order.
    pub fn iter(&self) -> impl Iterator<Item = DcId> + '_ {
        self.ids[..self.len as usize].iter().map(|i| *i as DcId)
    }

    /// The ids as a vector (for traces and tests).
    pub fn as_slice(&self) -> Vec<DcId> {
        self.iter().collect()
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the ids for which `f` holds, in order.
    pub fn retain(&mut self, mut f: impl FnMut(DcId) -> bool) {
        let mut n = 0;
        for i in 0..self.len as usize {
            if f(self.ids[i] as DcId) {
                self.ids[n] = self.ids[i];
                n += 1;
            }
        }
        self.len = n as u8;
    }

    /// True when `id` is in the list.
    pub fn contains(&self, id: DcId) -> bool {
        self.ids[..self.len as usize].contains(&(id as u16))
    }

    /// Keeps the first `n`.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u8);
    }

    pub(crate) fn ids_mut(&mut self) -> &mut [u16] {
        &mut self.ids[..self.len as usize]
    }
}

/// The outcome of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Datacenters to answer with, best first.
    pub dcs: DcList,
    /// ECS scope: the prefix length within which every client gets this same answer.
    pub scope: u8,
    /// TTL of the answer.
    pub ttl: u32,
    /// Answer NODATA (all down with `on_all_down = "nodata"`).
    pub nodata: bool,
    /// Every candidate was down (fail open or NODATA applied).
    pub all_down: bool,
    /// Every datacenter of the client's sovereignty fence was down: answered from them anyway.
    pub fence_fail_open: bool,
    /// A sovereignty fence applied.
    pub fenced: bool,
}

/// Selects datacenters for a client. `draw` is a random number for the weighted policy.
pub fn select(
    plan: &ZonePlan,
    service: usize,
    client: &ClientView<'_>,
    health: &[DcHealth],
    draw: u64,
) -> Decision {
    select_traced(plan, service, client, health, draw, &mut NoTrace)
}

/// [`select`], reporting each step to a tracer.
pub fn select_traced<T: Trace>(
    plan: &ZonePlan,
    service: usize,
    client: &ClientView<'_>,
    health: &[DcHealth],
    draw: u64,
    t: &mut T,
) -> Decision {
    pipeline(plan, service, client, health, draw, None, t)
}

/// What an [`OrderTable`](super::OrderTable) knows of a location in advance: the policy's
/// full order of the candidates and the sovereignty rule that applies.
#[derive(Debug, Clone, Copy)]
pub struct Precomputed<'a> {
    /// Every candidate, in the policy's order for this location.
    pub order: &'a [u16],
    /// Index of the sovereignty rule covering the location.
    pub fence: Option<usize>,
}

/// [`select`] with the location's order looked up instead of computed: the same decision,
/// without distances or code comparisons on the query path.
pub fn select_precomputed(
    plan: &ZonePlan,
    service: usize,
    client: &ClientView<'_>,
    health: &[DcHealth],
    pre: Precomputed<'_>,
) -> Decision {
    pipeline(plan, service, client, health, 0, Some(pre), &mut NoTrace)
}

fn pipeline<T: Trace>(
    plan: &ZonePlan,
    service: usize,
    client: &ClientView<'_>,
    health: &[DcHealth],
    draw: u64,
    pre: Option<Precomputed<'_>>,
    t: &mut T,
) -> Decision {
    let svc = &plan.zone.services[service];
    let up = |d: DcId| health.get(d).is_none_or(DcHealth::is_up);
    let candidates = DcList::from_ids(svc.datacenters.iter().copied());
    t.step("candidates", &candidates.as_slice(), || {
        format!(
            "service {} lists {} datacenter(s)",
            svc.name,
            candidates.len()
        )
    });

    let mut healthy = candidates;
    healthy.retain(up);
    t.step("health", &healthy.as_slice(), || {
        let dropped = candidates.len() - healthy.len();
        format!("{dropped} down, draining or overloaded dropped")
    });

    let fence = match pre {
        Some(p) => p.fence.and_then(|i| svc.sovereignty.get(i)),
        None => svc.sovereignty.iter().find(|f| matches(&f.clients, client)),
    };
    let mut allowed = healthy;
    let mut all_down = false;
    let mut fence_open = false;
    match fence {
        Some(f) => {
            allowed.retain(|d| f.datacenters.contains(&d));
            if allowed.is_empty() {
                // Fail open inside the fence, never outside it.
                allowed = candidates;
                allowed.retain(|d| f.datacenters.contains(&d));
                fence_open = true;
            }
            t.step("sovereignty", &allowed.as_slice(), || {
                let mut s = format!("client falls under a rule: only {}", names(plan, &f.datacenters));
                if fence_open {
                    s.push_str("; all of them are down, answering from them anyway (fail open inside the fence)");
                }
                s
            });
        }
        None => {
            t.step("sovereignty", &allowed.as_slice(), || {
                "no rule covers the client".into()
            });
            if allowed.is_empty() {
                all_down = true;
                match svc.on_all_down {
                    AllDown::FailOpen => {
                        allowed = candidates;
                        t.step("all-down", &allowed.as_slice(), || {
                            "every candidate is down: answering as if all were up (fail-open)"
                                .into()
                        });
                    }
                    AllDown::NoData => {
                        t.step("all-down", &[], || {
                            "every candidate is down: answering NODATA (on_all_down = nodata)"
                                .into()
                        });
                        return Decision {
                            dcs: DcList::default(),
                            scope: scope(plan, svc, client, fence.is_some()),
                            ttl: svc.failover_ttl,
                            nodata: true,
                            all_down: true,
                            fence_fail_open: false,
                            fenced: false,
                        };
                    }
                }
            }
        }
    }

    let mut ordered = allowed;
    match pre {
        Some(p) => {
            ordered = DcList::from_ids(
                p.order
                    .iter()
                    .map(|d| *d as DcId)
                    .filter(|d| allowed.contains(*d)),
            );
            t.step("order", &ordered.as_slice(), || {
                "precomputed for the location".into()
            });
        }
        None => {
            let why = order::order_why(plan, svc, client, draw, &mut ordered);
            t.step("order", &ordered.as_slice(), || why.to_string());
        }
    }
    let shedding = shed(plan, svc, client, health, &mut ordered);
    if shedding {
        t.step("spill-over", &ordered.as_slice(), || {
            "overloaded datacenters keep a share of clients (by client subnet); \
             the rest go to their next choice"
                .into()
        });
    }
    ordered.truncate(svc.answers);
    let changing = ordered
        .iter()
        .any(|d| health.get(d).is_some_and(|h| h.changing));
    let ttl = if changing || all_down || fence_open || shedding {
        svc.failover_ttl
    } else {
        svc.ttl
    };
    let mut scope = scope(plan, svc, client, fence.is_some());
    if shedding {
        // Who stays depends on the hashed client prefix.
        scope = scope.max(hash_prefix(svc, client.addr));
    }
    t.step("answers", &ordered.as_slice(), || {
        format!("answers = {}; TTL {ttl}; ECS scope /{scope}", svc.answers)
    });
    Decision {
        dcs: ordered,
        scope,
        ttl,
        nodata: false,
        all_down,
        fence_fail_open: fence_open,
        fenced: fence.is_some(),
    }
}

/// The ECS scope: the longest of the prefixes the answer depends on. Where the answer depends
/// on the client's place (geo, latency, fences, direct overrides), the located network decides;
/// consistent hashing depends on the hashed prefix; otherwise nothing about the client matters.
fn scope(plan: &ZonePlan, svc: &Service, client: &ClientView<'_>, fenced_or_ruled: bool) -> u8 {
    let by_place = matches!(svc.policy, Policy::Geo | Policy::Latency)
        || !svc.sovereignty.is_empty()
        || plan.has_direct_overrides
        || fenced_or_ruled;
    let mut s = if by_place { client.scope } else { 0 };
    if svc.policy == Policy::ConsistentHash {
        s = s.max(hash_prefix(svc, client.addr));
    }
    s
}

/// Load-aware spill-over: a datacenter whose reported load is above its `shed_at` keeps a share
/// of clients (`shed_keep`, else `shed_at / load`, so its load comes back to the threshold); for
/// the other clients it moves to the end of their order, so each goes to its own next choice.
/// Which clients stay is a hash of the client's prefix: stable per subnet, so resolvers' caches
/// agree. Returns whether any datacenter in the list is shedding.
fn shed(
    plan: &ZonePlan,
    svc: &Service,
    client: &ClientView<'_>,
    health: &[DcHealth],
    list: &mut DcList,
) -> bool {
    let mut any = false;
    let mut moved = DcList::default();
    let key = order::hash_key(client.addr, hash_prefix(svc, client.addr));
    list.retain(|d| {
        let (Some(cfg), Some(h)) = (plan.zone.datacenters[d].shed, health.get(d)) else {
            return true;
        };
        // Compare as the site reported it (f32): 0.8 reported is not above `shed_at = 0.8`.
        if h.load <= cfg.at as f32 || h.load <= 0.0 {
            return true;
        }
        let load = f64::from(h.load);
        any = true;
        let keep = cfg.keep.unwrap_or(cfg.at / load).clamp(0.0, 1.0);
        let stays = order::unit(key ^ plan.dc_seed[d] ^ SHED_SALT) < keep;
        if !stays {
            moved.push(d);
        }
        stays
    });
    for d in moved.iter() {
        list.push(d);
    }
    any
}

const SHED_SALT: u64 = 0x5348_4544_5348_4544;

pub(crate) fn hash_prefix(svc: &Service, addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => svc.hash_prefix.0,
        IpAddr::V6(_) => svc.hash_prefix.1,
    }
}

fn names(plan: &ZonePlan, ids: &[DcId]) -> String {
    ids.iter()
        .map(|d| plan.zone.datacenters[*d].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
