//! Configuration: zone files (`zones/*.toml`) and site files, in two stages.
//!
//! Raw serde structs (`deny_unknown_fields`, spans kept) are converted into validated model
//! types. Every error names the file, line, column, the item and the bad value.

pub mod codes;
pub mod error;
pub mod name;
pub mod site;
pub mod zone;

pub use error::{ConfigError, Diagnostic};
pub use name::Name;
pub use zone::{ZoneSet, load_zone_dir, load_zone_file};
