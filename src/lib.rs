//! Meridian: a global server load balancer.
//!
//! # Layout
//!
//! The modules follow the data flow of a query and of a request:
//!
//! ```text
//! zones/*.toml ──config──► ZoneSet (immutable, swapped atomically on reload)
//! geoip db + [[geoip.nets]] ──geo──► Locator: client subnet → Location + matched prefix
//! probe tasks ──HTTP/TCP checks of each site's /health──► HealthBoard
//!
//! DNS query ─► dns (wire, ECS) ─► zone lookup ─┬─ static record → answer
//!                                              └─ service → policy::select ─► answer + scope + TTL
//!
//! site listener ─► site (router, proxy) ─► pool ─► balance::pick ─► backend
//! ```
//!
//! - [`config`]: zone and site TOML schemas, two-stage validation with file:line:col errors.
//! - [`geo`]: client location from MaxMind databases and CIDR overrides.
//! - [`balance`]: the selection algorithms shared by the DNS and site sides.
//! - [`policy`]: the pure GSLB steering pipeline and its explanation.
//! - [`dns`]: the authoritative DNS front end; the only module that sees hickory types.
//! - [`probe`]: health checks of sites and the lock-free health board.
//! - [`site`]: the site balancer (L4 and L7 proxy, health, admin API).
//! - [`telemetry`]: logging and metrics set-up.

pub mod app;
pub mod balance;
pub mod config;
pub mod dns;
pub mod geo;
pub mod gslb;
pub mod policy;
pub mod probe;
pub mod site;
pub mod telemetry;
