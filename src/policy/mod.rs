//! The GSLB steering pipeline: `select(service, client, health) -> Decision`.
//!
//! Pure: no I/O, no clock, no locks. The same function answers queries, `meridian explain`,
//! the tests and the benchmarks. Each step can be traced for `explain`:
//!
//! ```text
//! candidates ─► drop unhealthy/drained ─► sovereignty fence ─► order by policy ─► take `answers`
//!     │                                      (fail open inside the fence)      (geo, latency,
//!     └─ all down: fail open or NODATA                                          failover, weighted,
//!                                                                               consistent-hash)
//! ```

mod client;
mod distance;
mod explain;
mod order;
mod plan;
mod select;
mod table;

pub use client::{ClientView, matches};
pub use distance::great_circle_km;
pub use explain::{Explanation, NoTrace, Step, Trace};
pub use plan::ZonePlan;
pub use select::{
    DcList, Decision, MAX_DCS, Precomputed, select, select_precomputed, select_traced,
};
pub use table::OrderTable;

#[cfg(test)]
mod tests;
