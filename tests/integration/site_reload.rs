//! Reload: unchanged servers keep their open connections, health and counters; changed ones
//! are updated in place; removed ones drain; a bad file changes nothing. Also through SIGHUP
//! to the binary.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::site::{client, get};
use crate::support::tcp::{TcpBackend, connect_named, read_line};
use crate::support::{TestSite, poll_until};

fn write(path: &Path, admin: &str, listener: &str, pool: &str, servers: &[String]) {
    let text = format!(
        "[admin]\nbind = \"{admin}\"\n\
         [[listeners]]\nbind = \"{listener}\"\nprotocol = \"tcp\"\npool = \"p\"\n\
         [pools.p]\nservers = [{}]\n{pool}\n",
        servers.join(", ")
    );
    std::fs::write(path, text).expect("write site file");
}

fn entry(b: &TcpBackend, extra: &str) -> String {
    format!("{{ address = \"{}\", id = \"{}\"{extra} }}", b.addr, b.name)
}

async fn echo(s: &mut TcpStream, msg: &str) {
    s.write_all(format!("{msg}\n").as_bytes())
        .await
        .expect("write");
    assert_eq!(read_line(s).await, msg);
}

#[tokio::test]
async fn unchanged_servers_keep_connections_health_and_counters() {
    let (a, b, c, d) = (
        TcpBackend::start("a").await,
        TcpBackend::start("b").await,
        TcpBackend::start("c").await,
        TcpBackend::start("d").await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    let l = "127.0.0.1:0";
    write(
        &file,
        l,
        l,
        "",
        &[entry(&a, ""), entry(&b, ""), entry(&c, "")],
    );
    let site = TestSite::start_file(&file).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_named(site.addr).await);
    }
    held.sort_by(|x, y| x.1.cmp(&y.1));
    let names: Vec<&str> = held.iter().map(|h| h.1.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let requests_a = site.server("a").await["requests"].clone();

    // a unchanged, b re-weighted, c removed, d added.
    write(
        &file,
        l,
        l,
        "",
        &[entry(&a, ""), entry(&b, ", weight = 2"), entry(&d, "")],
    );
    let changes = site.reload.reload().await.expect("reload");
    assert!(changes.iter().any(|c| c.contains("\"d\"")), "{changes:?}");
    for (s, name) in &mut held {
        echo(s, &format!("after reload {name}")).await;
    }
    assert_eq!(
        site.server("a").await["requests"],
        requests_a,
        "a's counters kept"
    );
    assert_eq!(site.server("b").await["weight"], 2);
    assert_eq!(site.server("c").await["state"], "removing");
    assert_eq!(site.server("d").await["state"], "up");
    assert_eq!(
        a.accepted() + b.accepted() + c.accepted(),
        3,
        "no reconnects"
    );

    // c's last connection ends: it leaves.
    let (c_conn, _) = held.pop().expect("c");
    drop(c_conn);
    poll_until(5, || async {
        let s = site.status().await;
        !s["pools"][0]["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .any(|x| x["id"] == "c")
    })
    .await;

    // New pool settings: a new pool carries the servers (same objects) over.
    write(
        &file,
        l,
        l,
        "algorithm = \"least-connections\"",
        &[entry(&a, ""), entry(&b, ", weight = 2"), entry(&d, "")],
    );
    site.reload.reload().await.expect("reload");
    for (s, name) in &mut held {
        echo(s, &format!("after the pool changed {name}")).await;
    }
    assert_eq!(
        site.status().await["pools"][0]["algorithm"],
        "least-connections"
    );
    assert_eq!(site.server("a").await["requests"], requests_a);
    assert_eq!(
        site.server("a").await["in_flight"],
        1,
        "the open connection still counts"
    );
    // Least connections: a and b are busy, so d gets the next one.
    assert_eq!(connect_named(site.addr).await.1, "d");

    // A broken file: nothing changes.
    std::fs::write(&file, "[pools.p]\nservers = []\n").expect("write");
    let e = site.reload.reload().await.expect_err("invalid file");
    assert!(e.to_string().contains("site.toml"), "{e}");
    assert_eq!(
        site.status().await["pools"][0]["servers"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    for (s, name) in &mut held {
        echo(s, &format!("after a bad reload {name}")).await;
    }
}

#[tokio::test]
async fn sighup_to_the_binary_keeps_open_connections() {
    let (a, b) = (TcpBackend::start("a").await, TcpBackend::start("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("site.toml");
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    };
    let (lp, ap) = (port(), port());
    let (listener, admin) = (format!("127.0.0.1:{lp}"), format!("127.0.0.1:{ap}"));
    write(&file, &admin, &listener, "", &[entry(&a, "")]);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["site", "--config"])
        .arg(&file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn meridian");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&admin).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "site did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let proxy: std::net::SocketAddr = listener.parse().expect("addr");
    let (mut held, name) = connect_named(proxy).await;
    assert_eq!(name, "a");
    write(
        &file,
        &admin,
        &listener,
        "",
        &[entry(&a, ""), entry(&b, "")],
    );
    let pid = child.id().expect("pid").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("site reloaded") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(reloaded, Ok(true));
    echo(&mut held, "kept across SIGHUP").await;
    let c = client();
    let (_, _, body) = get(&c, &format!("http://{admin}/status")).await;
    let s: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let ids: Vec<&str> = s["pools"][0]["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(a.accepted(), 1, "the open connection was not replaced");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2 {
        seen.insert(connect_named(proxy).await.1);
    }
    assert!(seen.contains("b"), "{seen:?}");
    echo(&mut held, "still kept").await;
}
