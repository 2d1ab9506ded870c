//! Integration tests: one binary, one module per topic.

mod support;

mod site_balance;
mod site_health;
mod site_lifecycle;
mod site_proxy;
