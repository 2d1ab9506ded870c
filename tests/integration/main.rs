//! Integration tests, one binary: each topic in its own module.

mod geo;
mod geo_build;
mod geo_props;
