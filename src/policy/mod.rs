//! The GSLB steering pipeline: `select(service, location, health) -> Decision`.
