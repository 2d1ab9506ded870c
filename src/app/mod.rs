//! The programs: what each subcommand runs, wired from the library's parts.

pub mod demo;
pub mod dns;
pub mod dns_admin;
pub mod status;
