//! `meridian site ctl`: the admin API from a shell. Each command is one HTTP call to the admin
//! listener with the bearer token; the answer's JSON is printed as it came (or a table for
//! `pools`), and an error status makes the command fail.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::site::load_site_file;

/// Where the admin API is and the token to use.
#[derive(Debug, Clone)]
pub struct CtlTarget {
    /// The admin listener.
    pub admin: SocketAddr,
    /// Bearer token.
    pub token: Option<String>,
}

impl CtlTarget {
    /// The admin address and token of a site file (its `[admin]` table; the token falls back
    /// to `MERIDIAN_ADMIN_TOKEN`).
    pub fn from_site_file(path: &Path) -> Result<Self, CtlError> {
        let cfg = load_site_file(path).map_err(|e| CtlError::Config(e.to_string()))?;
        let admin = cfg
            .admin
            .ok_or_else(|| CtlError::Config(format!("{}: no [admin] table", path.display())))?;
        let mut admin_addr = admin.bind;
        if admin_addr.ip().is_unspecified() {
            admin_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(CtlTarget {
            admin: admin_addr,
            token: admin.api.token,
        })
    }
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlCommand {
    /// List pools and servers.
    Pools,
    /// Add a server.
    Add {
        /// Pool name.
        pool: String,
        /// `IP:port`.
        address: String,
        /// Id (default: the address).
        id: Option<String>,
        /// Weight.
        weight: Option<u32>,
        /// Connection limit.
        max_connections: Option<u32>,
        /// Initial state.
        state: Option<String>,
    },
    /// Remove a server (it drains first).
    Remove {
        /// Pool name.
        pool: String,
        /// Server id.
        id: String,
    },
    /// Set a server's weight.
    Weight {
        /// Pool name.
        pool: String,
        /// Server id.
        id: String,
        /// New weight.
        weight: u32,
    },
    /// Set a server's state: ready, drain, maintenance.
    State {
        /// Pool name.
        pool: String,
        /// Server id.
        id: String,
        /// New state.
        state: String,
    },
    /// Set the site's own state: ready or draining.
    Site {
        /// `ready` or `draining`; `None` shows it.
        state: Option<String>,
    },
    /// Reload the site file.
    Reload,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The site file could not be used.
    #[error("{0}")]
    Config(String),
    /// No answer.
    #[error("cannot reach the admin API at {0}: {1}")]
    Http(SocketAddr, String),
    /// An error answer.
    #[error("{status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// What the site said.
        body: String,
    },
}

fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Runs one command; returns the text to print.
pub async fn run(t: &CtlTarget, cmd: &CtlCommand) -> Result<String, CtlError> {
    use reqwest::Method;
    let server = |p: &str, id: &str| format!("/api/pools/{}/servers/{}", seg(p), seg(id));
    let (method, path, body) = match cmd {
        CtlCommand::Pools => (Method::GET, "/api/pools".to_string(), None),
        CtlCommand::Add {
            pool,
            address,
            id,
            weight,
            max_connections,
            state,
        } => {
            let mut b = json!({ "address": address });
            for (k, v) in [
                ("id", id.clone().map(Value::from)),
                ("weight", weight.map(Value::from)),
                ("max_connections", max_connections.map(Value::from)),
                ("state", state.clone().map(Value::from)),
            ] {
                if let Some(v) = v {
                    b[k] = v;
                }
            }
            (
                Method::POST,
                format!("/api/pools/{}/servers", seg(pool)),
                Some(b),
            )
        }
        CtlCommand::Remove { pool, id } => (Method::DELETE, server(pool, id), None),
        CtlCommand::Weight { pool, id, weight } => (
            Method::PATCH,
            server(pool, id),
            Some(json!({ "weight": weight })),
        ),
        CtlCommand::State { pool, id, state } => (
            Method::PATCH,
            server(pool, id),
            Some(json!({ "state": state })),
        ),
        CtlCommand::Site { state: None } => (Method::GET, "/api/site".into(), None),
        CtlCommand::Site { state: Some(s) } => {
            (Method::PUT, "/api/site".into(), Some(json!({ "state": s })))
        }
        CtlCommand::Reload => (Method::POST, "/api/reload".into(), None),
    };
    let http = |e: reqwest::Error| CtlError::Http(t.admin, e.to_string());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(http)?;
    let mut req = client.request(method, format!("http://{}{}", t.admin, path));
    if let Some(tok) = &t.token {
        req = req.bearer_auth(tok);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(http)?;
    let status = resp.status();
    let text = resp.text().await.map_err(http)?;
    if !status.is_success() {
        return Err(CtlError::Status {
            status: status.as_u16(),
            body: text.trim().to_string(),
        });
    }
    if *cmd == CtlCommand::Pools
        && let Ok(v) = serde_json::from_str::<Value>(&text)
    {
        return Ok(table(&v));
    }
    Ok(text)
}

/// `pools` as a table: one line per server.
fn table(v: &Value) -> String {
    let mut out = format!(
        "{:<12} {:<24} {:<22} {:>6} {:<12} {:<10} {:>9}\n",
        "POOL", "SERVER", "ADDRESS", "WEIGHT", "STATE", "ORIGIN", "IN-FLIGHT"
    );
    for p in v["pools"].as_array().into_iter().flatten() {
        for s in p["servers"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{:<12} {:<24} {:<22} {:>6} {:<12} {:<10} {:>9}\n",
                p["name"].as_str().unwrap_or(""),
                s["id"].as_str().unwrap_or(""),
                s["address"].as_str().unwrap_or(""),
                s["weight"],
                s["state"].as_str().unwrap_or(""),
                s["origin"].as_str().unwrap_or(""),
                s["in_flight"],
            ));
        }
    }
    let h = &v["health"];
    out.push_str(&format!(
        "site: {} ({}/{} servers healthy, load {})\n",
        h["status"].as_str().unwrap_or("?"),
        h["healthy_backends"],
        h["total_backends"],
        h["load"]
    ));
    out
}
