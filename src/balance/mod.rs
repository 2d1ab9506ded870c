//! Selection algorithms shared by the DNS policy engine and the site balancer.
//!
//! Everything here is pure: no I/O, no clock, no locks. Callers pass in what changes per pick
//! (a counter, random bits, loads, a key) and an `eligible` predicate over server indices, so the
//! same code picks a backend for a request and a datacenter for a DNS answer, and tests drive it
//! without sockets. Tables that are costly to build ([`Maglev`], [`SmoothWeighted`],
//! [`WeightedRandom`]) are immutable once built: the owner rebuilds one when its server set or
//! weights change and publishes it through an `ArcSwap`.
//!
//! Hashes use fixed seeds ([`hash_bytes`]), so every thread, process and restart maps a key to
//! the same server.

mod ewma;
mod hash;
mod least;
mod maglev;
mod random;
mod round_robin;
mod smooth;

pub use ewma::{PeakEwma, p2c_pick};
pub use hash::{DEFAULT_SEED, hash_bytes, hash_u64};
pub use least::least_loaded;
pub use maglev::Maglev;
pub use random::WeightedRandom;
pub use round_robin::round_robin;
pub use smooth::SmoothWeighted;
