//! Client location: MaxMind databases plus CIDR overrides.
//!
//! A zone's [`GeoipConfig`](crate::config::zone::model::GeoipConfig) becomes a [`Locator`]: the
//! zone's `[[geoip.nets]]` overrides over a [`GeoDatabase`] (GeoLite2/GeoIP2/DB-IP City or
//! Country, or one built by `meridian geoip build`). Databases are compiled at load time into
//! flat range tables, as gdnsd does, and shared between zones through a [`DatabaseCache`], so a
//! query does one or two binary searches and never runs the MMDB decoder or allocates.
//!
//! ```text
//! client address ─► overrides (zone) ─► database ranges (shared) ─► zone default
//!                        │                  │ embedded IPv4 (mapped, 6to4, Teredo)
//!                        │                  └──────► IPv4 tables again
//!                        └──────────────► Hit { loc: LocId, scope } ─► &Location
//! ```
//!
//! [`build`] writes GeoLite2-City-shaped databases from CSV (`meridian geoip build`), through
//! the MaxMind DB writer in [`mmdb`].

pub mod build;
mod cache;
mod database;
mod location;
mod locator;
pub mod mmdb;
mod ranges;

use std::path::PathBuf;

pub use cache::DatabaseCache;
pub use database::GeoDatabase;
pub use location::{Hit, LocId, Location, Origin};
pub use locator::Locator;

/// Errors from loading GeoIP databases and building them.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB the reader accepts (bad metadata, bad tree size, ...).
    #[error("{path}: not a readable MaxMind DB: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// The search tree or a data record is broken.
    #[error("{path}: corrupt MaxMind DB at {network}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The network whose record failed, or the part of the file.
        network: String,
        /// What is wrong.
        message: String,
    },
    /// The database has networks but no record carries a place (an ASN database, say).
    #[error(
        "{path}: database type {database_type:?} has no location data (no country, continent, \
         subdivision or coordinates in any record); use a City or Country database"
    )]
    NoLocations {
        /// The file.
        path: PathBuf,
        /// The `database_type` of its metadata.
        database_type: String,
    },
    /// A row of a CSV given to `geoip build` is wrong.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
        /// What is wrong, with the bad value.
        message: String,
    },
    /// The database cannot be written (too large for the format).
    #[error("cannot write MaxMind DB: {0}")]
    Write(String),
}
