//! The `meridian` command line. Parsing only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "meridian",
    version,
    about = "Global server load balancer: geo-DNS and site balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate zone files (and site files) and print a summary; non-zero exit on errors.
    Check {
        /// Files or directories of `*.toml` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { paths } => check(&paths),
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for p in paths {
        match meridian::config::load_zone_dir(p) {
            Ok(set) => {
                for z in set.zones() {
                    println!(
                        "ok {}: zone {} ({} records, {} datacenters, {} services)",
                        z.file.display(),
                        z.origin,
                        z.records.len(),
                        z.datacenters.len(),
                        z.services.len()
                    );
                }
            }
            Err(e) => {
                failed = true;
                for d in &e.diagnostics {
                    eprintln!("error: {d}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
