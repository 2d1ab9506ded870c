//! Integration tests: one binary, one module per topic, shared helpers in `support/`.

mod support;

mod config_files;
mod demo;
mod dns_admin;
mod dns_behaviour;
mod dns_binary;
mod dns_ecs;
mod dns_fuzz;
mod dns_reload;
mod docs_keys;
mod explain;
mod geo;
mod geo_build;
mod geo_props;
mod metrics_site;
mod probe;
mod probe_detection;
mod site_affinity;
mod site_api;
mod site_balance;
mod site_cache;
mod site_discovery;
mod site_health;
mod site_l4;
mod site_l4_proxy;
mod site_lifecycle;
mod site_limits;
mod site_proxy;
mod site_reload;
mod site_reload_l7;
mod site_routing;
mod site_status_page;
mod site_tls;
mod steering;
mod steering_props;
