//! Shared helpers of the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod dns;
pub mod dns_server;
pub mod health_site;
pub mod origin;
pub mod site;
pub mod tcp;
pub mod tls;

pub use backend::TestBackend;
pub use site::{TestSite, poll_until, request};
