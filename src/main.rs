//! The `meridian` command line. Parsing only; the work is in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ctl;
use meridian::telemetry::LogFormat;

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
    /// Run the whole system on loopback: DNS, three site balancers, their backends, and a
    /// printed guide of dig and curl lines. Ctrl-C stops everything.
    Demo {
        /// Where the DNS server listens.
        #[arg(long, default_value = "127.0.0.1:5353")]
        dns: SocketAddr,
        /// Where the DNS status page, metrics and admin API listen.
        #[arg(long, default_value = "127.0.0.1:9100")]
        admin: SocketAddr,
        /// Zone directory.
        #[arg(long, default_value = "zones")]
        zones: PathBuf,
        /// Directory of the demo's site files.
        #[arg(long, default_value = "examples/demo")]
        sites: PathBuf,
    },
    /// Serve zones as an authoritative geo-DNS server (UDP and TCP on each address).
    Dns {
        /// Directory of zone files (or one zone file).
        #[arg(long, default_value = "zones")]
        zones: PathBuf,
        /// Address to serve on; repeat for several (e.g. 127.0.0.1:53 and [::1]:53).
        #[arg(long, default_value = "127.0.0.1:5353")]
        listen: Vec<SocketAddr>,
        /// UDP worker threads (one SO_REUSEPORT socket each) per address; default:
        /// TOKIO_WORKER_THREADS or one per core.
        #[arg(long)]
        workers: Option<usize>,
        /// Admin listener: /metrics, /status.json, /api (off when not given).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Log format.
        #[arg(long, default_value = "text")]
        log_format: LogFormat,
    },
    /// Show how a client's query for a service is steered, step by step.
    Explain {
        /// Directory of zone files (or one zone file).
        #[arg(long, default_value = "zones")]
        zones: PathBuf,
        /// The service's name, e.g. www.example.com.
        #[arg(long)]
        name: String,
        /// The client: an address, or a subnet as EDNS Client Subnet carries it.
        #[arg(long)]
        client: String,
        /// Treat this datacenter as down (repeatable).
        #[arg(long)]
        down: Vec<String>,
        /// Treat this datacenter as draining (repeatable).
        #[arg(long)]
        draining: Vec<String>,
    },
    /// Validate zone files (and site files) and print a summary; non-zero exit on errors.
    Check {
        /// Files or directories of `*.toml` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the site balancer: HTTP and TCP listeners over pools of backends, plus the admin
    /// listener (SIGHUP reloads the file). `meridian site ctl ...` drives a running site.
    #[command(args_conflicts_with_subcommands = true)]
    Site {
        #[command(subcommand)]
        ctl: Option<SiteCommand>,
        /// The site file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Log format.
        #[arg(long, default_value = "text")]
        log_format: LogFormat,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
}

#[derive(Subcommand, Debug)]
enum SiteCommand {
    /// Call a running site's admin API (token: --token-file, the site file's [admin] token, or
    /// MERIDIAN_ADMIN_TOKEN).
    Ctl(ctl::CtlArgs),
}

#[derive(Subcommand, Debug)]
enum GeoipCommand {
    /// Build a GeoLite2-City-shaped MaxMind DB from a CSV file (columns: network, country,
    /// continent, eu, lat, lon, optional subdivision and city; see docs/geoip.md).
    Build {
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
        /// The database to write.
        #[arg(long)]
        out: PathBuf,
        /// `build_epoch` written in the metadata (seconds since 1970); fixed by default
        /// (2026-01-01) so that builds are reproducible.
        #[arg(long, default_value_t = meridian::geo::build::DEFAULT_BUILD_EPOCH)]
        build_epoch: u64,
    },
}

/// mimalloc instead of glibc's malloc: the HTTP path allocates per request (headers, bodies,
/// futures), and glibc's malloc/free were 3-4 % of the proxy's CPU in profiles
/// (docs/benchmarks.md, "Pursuing the target").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            dns,
            admin,
            zones,
            sites,
        } => {
            meridian::telemetry::init_logging(LogFormat::Text);
            run_async(meridian::app::demo::run(meridian::app::demo::DemoArgs {
                zones,
                sites,
                dns,
                admin,
            }))
        }
        Command::Check { paths } => check(&paths),
        Command::Explain {
            zones,
            name,
            client,
            down,
            draining,
        } => {
            let req = meridian::gslb::ExplainRequest {
                zones,
                name,
                client,
                down,
                draining,
            };
            match meridian::gslb::explain(&req) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Geoip {
            command:
                GeoipCommand::Build {
                    csv,
                    out,
                    build_epoch,
                },
        } => geoip_build(&csv, &out, build_epoch),
        Command::Dns {
            zones,
            listen,
            workers,
            admin,
            log_format,
        } => {
            meridian::telemetry::init_logging(log_format);
            let workers = workers.unwrap_or_else(meridian::app::dns::default_workers);
            let args = meridian::app::dns::DnsArgs {
                zones,
                listen,
                udp_workers: workers,
                admin,
                admin_token: std::env::var("MERIDIAN_ADMIN_TOKEN").ok(),
            };
            run_async(meridian::app::dns::run(args))
        }
        Command::Site {
            ctl: Some(SiteCommand::Ctl(args)),
            ..
        } => ctl::run(args),
        Command::Site {
            ctl: None,
            config,
            log_format,
        } => {
            let Some(config) = config else {
                eprintln!("error: `meridian site` needs --config FILE (or `ctl ...`)");
                return ExitCode::FAILURE;
            };
            meridian::telemetry::init_logging(log_format);
            match site(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn site(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = meridian::config::site::load_site_file(path)?;
    let rt = meridian::site::runtime(cfg.threads)?;
    rt.block_on(meridian::site::run(cfg, meridian::site::shutdown_signal()))?;
    Ok(())
}

/// A site file is a TOML file without a top-level `origin` key (zone files always have one).
fn is_site_file(p: &std::path::Path) -> bool {
    p.is_file()
        && std::fs::read_to_string(p).is_ok_and(|t| meridian::config::site::is_site_text(&t))
}

fn check_site(p: &std::path::Path) -> bool {
    match meridian::config::site::load_site_file(p) {
        Ok(s) => {
            // Certificates, keys and CA files are read as starting the site would.
            if let Err(e) = meridian::site::preflight(&s) {
                eprintln!("error: {}: tls: {e}", p.display());
                return false;
            }
            let servers: usize = s.pools.iter().map(|p| p.servers.len()).sum();
            println!(
                "ok {}: site ({} listeners, {} pools, {} servers)",
                p.display(),
                s.listeners.len(),
                s.pools.len(),
                servers
            );
            true
        }
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("error: {d}");
            }
            false
        }
    }
}

fn run_async(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for p in paths {
        if is_site_file(p) {
            failed |= !check_site(p);
            continue;
        }
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

fn geoip_build(csv: &Path, out: &Path, build_epoch: u64) -> ExitCode {
    let opts = meridian::geo::build::BuildOptions {
        build_epoch,
        ..Default::default()
    };
    match meridian::geo::build::build_file(csv, out, &opts) {
        Ok(s) => {
            println!(
                "wrote {}: {} networks, {} bytes",
                out.display(),
                s.networks,
                s.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
