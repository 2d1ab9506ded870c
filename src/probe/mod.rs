//! Health checks of sites and the health board the DNS path reads.

mod health;

pub use health::{DcHealth, DcState};
