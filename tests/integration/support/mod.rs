//! Test harness: loopback backends with scripted behaviour, a site runner, an HTTP client.

#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod site;

pub use backend::TestBackend;
pub use site::{TestSite, poll_until, request};
