//! Health checks of sites and the health board the DNS path reads.
//!
//! ```text
//! ZoneSet ──attach──► HealthBoard ──one task per distinct check──► schedule::run
//!                          ▲                                          │ probe (HTTP/TCP)
//!                          └──── report (state machine applied) ◄─────┘
//!                          │
//!                          └──► ZoneHealth per zone (ArcSwap snapshot) ──► DNS path, no locks
//! ```
//!
//! - [`machine`]: the pure rise/fall state machine.
//! - `schedule`: interval, jitter, timeout and fast re-checks on `tokio::time`.
//! - `check`, `http`: the probes and the judgement of a site's `/health` answer.
//! - `board`: the [`HealthBoard`], which dedupes checks and publishes [`ZoneHealth`].
//!
//! The timings and their consequences are described in `docs/health.md`.

mod board;
mod check;
mod health;
mod http;
pub mod machine;
mod metrics;
mod schedule;
mod status;

pub use board::{HealthBoard, ProbeError};
pub use check::{CheckResult, Observation, target_label};
pub use health::{DcHealth, DcState, ZoneHealth};
pub use metrics::ProbeMetrics;
pub use schedule::FAST_DIVISOR;
pub use status::{BoardStatus, DcStatus, ZoneStatus};
