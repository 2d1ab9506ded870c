//! Shared helpers of the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod dns;
pub mod dns_server;
pub mod health_site;
pub mod site;
pub mod tcp;

pub use backend::TestBackend;
pub use site::{TestSite, poll_until, request};
