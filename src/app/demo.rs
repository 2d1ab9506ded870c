//! `meridian demo`: three regions on loopback, in one command.
//!
//! The DNS server (`meridian dns` on `zones/`) and one site balancer per region
//! (`meridian site --config examples/demo/REGION.toml`) run as child processes of this binary;
//! the demo backends behind each site (two per region, answering which region and backend
//! served) run in this process. The guide printed at start-up lists `dig` and `curl` lines and
//! what each gives; a test runs them. Ctrl-C (or SIGTERM) stops everything.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// A region of the demo: its site and backends.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// Datacenter name in the example zone.
    pub name: &'static str,
    /// Third octet of its loopback addresses (127.0.N.x).
    pub net: u8,
}

/// The demo's regions.
pub const REGIONS: [Region; 3] = [
    Region {
        name: "eu-west",
        net: 1,
    },
    Region {
        name: "us-east",
        net: 2,
    },
    Region {
        name: "ap-northeast",
        net: 3,
    },
];

/// Bearer token of the demo's DNS admin API.
pub const DEMO_TOKEN: &str = "demo";

impl Region {
    /// The site's HTTP listener (the datacenter's address in the zone).
    pub fn site(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, self.net, 10], 8080))
    }
    /// The site's admin listener (the zone's health-check target).
    pub fn admin(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, self.net, 1], 9101))
    }
    /// The region's backends.
    pub fn backends(&self) -> [SocketAddr; 2] {
        [
            SocketAddr::from(([127, 0, self.net, 11], 8081)),
            SocketAddr::from(([127, 0, self.net, 12], 8082)),
        ]
    }
}

/// Settings of `meridian demo`.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// The zone directory (`zones/`).
    pub zones: PathBuf,
    /// The site files (`examples/demo/`).
    pub sites: PathBuf,
    /// Where the DNS server listens.
    pub dns: SocketAddr,
    /// Where the DNS admin listener (status page, metrics, API) listens.
    pub admin: SocketAddr,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Listen for Ctrl-C and SIGTERM from the start, so that an early stop still cleans up.
    let stop_signal = tokio::spawn(wait_for_stop());
    let exe = std::env::current_exe().context("cannot find the meridian binary")?;
    for f in [&args.zones, &args.sites] {
        anyhow::ensure!(
            f.exists(),
            "{} not found: run the demo from the repository's root",
            f.display()
        );
    }
    let mut backends = Vec::new();
    for r in REGIONS {
        for (i, addr) in r.backends().into_iter().enumerate() {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (is another demo running?)"))?;
            backends.push(tokio::spawn(serve_backend(l, r.name, i + 1)));
        }
    }
    let mut children = Vec::new();
    for r in REGIONS {
        let file = args.sites.join(format!("{}.toml", r.name));
        children.push(spawn(&exe, &["site", "--config"], &file)?);
    }
    for r in REGIONS {
        wait_http_ok(r.admin(), "/health", Duration::from_secs(20))
            .await
            .with_context(|| format!("the {} site did not come up", r.name))?;
    }
    let mut dns_cmd = Command::new(&exe);
    dns_cmd
        .arg("dns")
        .arg("--zones")
        .arg(&args.zones)
        .args(["--listen", &args.dns.to_string()])
        .args(["--admin", &args.admin.to_string(), "--workers", "1"])
        .env("MERIDIAN_ADMIN_TOKEN", DEMO_TOKEN)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    children.push(dns_cmd.spawn().context("cannot start meridian dns")?);
    wait_http_ok(args.admin, "/health", Duration::from_secs(20))
        .await
        .context("the DNS server did not come up")?;
    {
        use std::io::Write as _;
        // The guide goes to stdout; a reader that has gone away is no reason to fail.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(guide(&args).as_bytes());
        let _ = out.flush();
    }
    let _ = stop_signal.await;
    tracing::info!("stopping the demo");
    for c in &mut children {
        stop(c).await;
    }
    for b in backends {
        b.abort();
    }
    Ok(())
}

fn spawn(exe: &Path, args: &[&str], file: &Path) -> anyhow::Result<Child> {
    Command::new(exe)
        .args(args)
        .arg(file)
        // The sites' runtime API takes the same throwaway token as the DNS admin API.
        .env("MERIDIAN_ADMIN_TOKEN", DEMO_TOKEN)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start meridian {}", args.join(" ")))
}

/// SIGTERM, then SIGKILL if it lingers.
async fn stop(c: &mut Child) {
    if let Some(pid) = c.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(5), c.wait())
        .await
        .is_err()
    {
        let _ = c.kill().await;
    }
}

async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Polls `GET path` until it answers 200, within `limit`.
async fn wait_http_ok(addr: SocketAddr, path: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://{addr}{path}");
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A demo backend: every request gets `REGION/backend-N` and an `X-Backend` header.
async fn serve_backend(listener: TcpListener, region: &'static str, n: usize) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut have = 0;
            loop {
                // Answer each request head (the demo sends no request bodies).
                let Ok(n_read) = s.read(&mut buf[have..]).await else {
                    return;
                };
                if n_read == 0 {
                    return;
                }
                have += n_read;
                while let Some(end) = find_head_end(&buf[..have]) {
                    let body = format!("{region}/backend-{n}\n");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-backend: {region}-{n}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    buf.copy_within(end..have, 0);
                    have -= end;
                }
                if have == buf.len() {
                    return;
                }
            }
        });
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// One line of the guide: a command and what it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuideLine {
    /// The shell command.
    pub command: String,
    /// What it prints (or, for an action, what it does).
    pub expect: String,
}

/// The `dig` and `curl` lines of the guide, in order.
pub fn guide_lines(args: &DemoArgs) -> Vec<GuideLine> {
    let (host, port) = (args.dns.ip(), args.dns.port());
    let dig =
        |subnet: &str| format!("dig @{host} -p {port} www.example.com +short +subnet={subnet}");
    let [eu, us, ap] = REGIONS;
    let api = format!(
        "curl -s -X POST -H 'Authorization: Bearer {DEMO_TOKEN}' http://{}/api/datacenters/example.com./eu-west",
        args.admin
    );
    let line = |command: String, expect: String| GuideLine { command, expect };
    vec![
        line(dig("81.2.69.0/24"), eu.site().ip().to_string()),
        line(dig("216.160.83.0/24"), us.site().ip().to_string()),
        line(dig("2001:218::/48"), ap.site().ip().to_string()),
        line(dig("89.160.20.0/24"), eu.site().ip().to_string()),
        line(
            format!("curl -s http://{}/", eu.site()),
            "eu-west/backend-1".into(),
        ),
        line(
            format!("curl -s http://{}/", eu.site()),
            "eu-west/backend-2".into(),
        ),
        line(
            format!("{api} -d '{{\"state\":\"draining\"}}'"),
            "ok".into(),
        ),
        line(dig("81.2.69.0/24"), us.site().ip().to_string()),
        line(dig("89.160.20.0/24"), eu.site().ip().to_string()),
        line(format!("{api} -d '{{\"state\":null}}'"), "ok".into()),
        line(dig("81.2.69.0/24"), eu.site().ip().to_string()),
    ]
}

fn guide(args: &DemoArgs) -> String {
    let mut g = String::new();
    let _ = writeln!(g, "\nMeridian demo: three regions on loopback.\n");
    let _ = writeln!(
        g,
        "  DNS           {}  status http://{}/status  metrics http://{}/metrics",
        args.dns, args.admin, args.admin
    );
    for r in REGIONS {
        let [b1, b2] = r.backends();
        let _ = writeln!(
            g,
            "  {:<13} site http://{}  status http://{}/status  backends {b1} {b2}",
            r.name,
            r.site(),
            r.admin()
        );
    }
    let notes = [
        "a London client: eu-west",
        "a Seattle client: us-east",
        "a Tokyo client: ap-northeast",
        "a Swedish client (EU): eu-west",
        "through the eu-west site",
        "round robin: the next backend",
        "drain eu-west through the DNS admin API",
        "London moves to the next-nearest region",
        "the EU client stays in the EU (sovereignty fence)",
        "undo the drain",
        "London is back on eu-west",
    ];
    let _ = writeln!(g, "\nTry:\n");
    for (l, note) in guide_lines(args).iter().zip(notes) {
        let _ = writeln!(g, "  # {note} (prints {})", l.expect);
        let _ = writeln!(g, "  {}", l.command);
    }
    let _ = writeln!(
        g,
        "\nTo drain a whole region at its own balancer instead (its status page turns amber and \
         the DNS prober takes it out of answers within a second), send its runtime API\n  \
         PUT http://{}/api/site with the body {{\"state\":\"draining\"}} (then \
         {{\"state\":\"ready\"}}) and the header 'Authorization: Bearer {DEMO_TOKEN}',\n  \
         or run: MERIDIAN_ADMIN_TOKEN={DEMO_TOKEN} meridian site ctl --admin {} site draining",
        REGIONS[0].admin(),
        REGIONS[0].admin()
    );
    let _ = writeln!(
        g,
        "\nExplain a decision: meridian explain --name www.example.com --client 81.2.69.0/24\n\
         Ctrl-C stops everything."
    );
    g
}
