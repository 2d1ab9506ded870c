//! Integration tests: one binary, one module per topic, shared helpers in `support/`.

mod support;

mod config_files;
mod dns_behaviour;
mod dns_ecs;
mod dns_fuzz;
mod dns_reload;
mod site_balance;
mod site_health;
mod site_lifecycle;
mod site_proxy;
