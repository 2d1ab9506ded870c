//! The programs: what each subcommand runs, wired from the library's parts.

pub mod dns;
