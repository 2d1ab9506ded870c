//! `meridian site ctl`: argument parsing only; the calls are in `meridian::site::ctl`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use meridian::site::ctl::{CtlCommand, CtlTarget};

#[derive(Args, Debug)]
pub(crate) struct CtlArgs {
    /// The admin listener, e.g. 127.0.0.1:9100 (default: `[admin] bind` of --config).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// A site file to take the admin address and token from.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A file holding the bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List pools and servers with their state.
    Pools,
    /// Add a server to a pool.
    Add {
        pool: String,
        /// IP:port.
        address: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        weight: Option<u32>,
        #[arg(long)]
        max_connections: Option<u32>,
        /// ready, drain or maintenance.
        #[arg(long)]
        state: Option<String>,
    },
    /// Remove a server (it drains first).
    Remove { pool: String, id: String },
    /// Set a server's weight (0..=1000).
    Weight {
        pool: String,
        id: String,
        weight: u32,
    },
    /// Set a server's state: ready, drain or maintenance.
    State {
        pool: String,
        id: String,
        state: String,
    },
    /// Show the site's own state, or set it: ready or draining.
    Site { state: Option<String> },
    /// Re-read the site file (as SIGHUP does).
    Reload,
}

pub(crate) fn run(a: CtlArgs) -> ExitCode {
    let target = match target(&a) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cmd = match a.command {
        Cmd::Pools => CtlCommand::Pools,
        Cmd::Add {
            pool,
            address,
            id,
            weight,
            max_connections,
            state,
        } => CtlCommand::Add {
            pool,
            address,
            id,
            weight,
            max_connections,
            state,
        },
        Cmd::Remove { pool, id } => CtlCommand::Remove { pool, id },
        Cmd::Weight { pool, id, weight } => CtlCommand::Weight { pool, id, weight },
        Cmd::State { pool, id, state } => CtlCommand::State { pool, id, state },
        Cmd::Site { state } => CtlCommand::Site { state },
        Cmd::Reload => CtlCommand::Reload,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(meridian::site::ctl::run(&target, &cmd)) {
        Ok(out) => {
            print!("{}", out.trim_end());
            println!();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn target(a: &CtlArgs) -> anyhow::Result<CtlTarget> {
    let mut t = match (&a.config, a.admin) {
        (Some(c), _) => CtlTarget::from_site_file(c)?,
        (None, Some(admin)) => CtlTarget { admin, token: None },
        (None, None) => anyhow::bail!("give --admin ADDRESS or --config SITE_FILE"),
    };
    if let Some(admin) = a.admin {
        t.admin = admin;
    }
    if let Some(f) = &a.token_file {
        let tok = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        t.token = Some(tok.trim().to_string());
    }
    if t.token.is_none() {
        t.token = std::env::var("MERIDIAN_ADMIN_TOKEN").ok();
    }
    Ok(t)
}
