//! Failover drill: how long after a site dies until `meridian dns` stops answering with it, and
//! how many queries fail meanwhile.
//!
//! It starts two loopback "sites" (HTTP `/health` endpoints), runs the real `meridian dns`
//! binary as a child over a zone whose service prefers site A, queries it continuously over UDP
//! (one query every 2 ms), kills site A (its listener and every connection close, as when the
//! process dies), and reports the time from the kill to the first answer without A, plus the
//! SERVFAILs and timeouts seen. The zone uses the default check settings, so the figure is the
//! default detection time.
//!
//! ```sh
//! cargo build --release && cargo run --release --example failover_drill -- [runs]
//! ```

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PRIMARY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const BACKUP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// A minimal HTTP health endpoint; `kill` closes the listener and every connection.
struct Site {
    addr: SocketAddr,
    alive: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    break;
                };
                let flag = flag.clone();
                conns.spawn(async move {
                    let mut buf = [0u8; 2048];
                    while flag.load(Ordering::SeqCst) {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let body = r#"{"status":"up","healthy_backends":2,"total_backends":2,"load":0.1}"#;
                                let resp = format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                    body.len()
                                );
                                if s.write_all(resp.as_bytes()).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        Site { addr, alive, task }
    }

    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        // Aborting the accept task drops the listener and the connection set with it.
        self.task.abort();
    }
}

fn zone(a: &Site, b: &Site) -> String {
    format!(
        r#"origin = "drill.example."
nameservers = ["ns1.drill.example."]
soa = {{ mname = "ns1.drill.example.", rname = "hostmaster.drill.example." }}
[datacenters.a]
addresses = ["{PRIMARY}"]
check = {{ url = "http://{}/health" }}
[datacenters.b]
addresses = ["{BACKUP}"]
check = {{ url = "http://{}/health" }}
[[services]]
name = "www"
policy = "failover"
ttl = 30
datacenters = ["a", "b"]
"#,
        a.addr, b.addr
    )
}

fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x03www\x05drill\x07example\x00\x00\x01\x00\x01");
    q
}

/// What a reply says: rcode and whether it names the primary.
fn parse(reply: &[u8]) -> Option<(u8, bool)> {
    if reply.len() < 12 {
        return None;
    }
    let rcode = reply[3] & 0x0f;
    let has_primary = reply.windows(4).any(|w| w == PRIMARY.octets());
    Some((rcode, has_primary))
}

fn meridian_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("MERIDIAN_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("exe");
    // target/<profile>/examples/failover_drill → target/<profile>/meridian
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("meridian"))
        .expect("binary path")
}

struct Outcome {
    detect: Option<Duration>,
    servfail: u32,
    timeouts: u32,
    queries: u32,
}

async fn run_once() -> Outcome {
    let a = Site::start().await;
    let b = Site::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("drill.example.toml"), zone(&a, &b)).expect("zone");
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let mut child: Child = Command::new(meridian_bin())
        .args(["dns", "--zones"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .stderr(Stdio::null())
        .spawn()
        .expect("start meridian dns (build it first: cargo build --release)");
    // The driver asks for the kill; this task kills site A and answers with the instant.
    let (want_kill, mut kill_requests) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<Instant>();
    let killer = tokio::spawn(async move {
        if kill_requests.recv().await.is_some() {
            a.kill();
            let _ = killed_tx.send(Instant::now());
        }
        b
    });
    let outcome = tokio::task::spawn_blocking(move || drive(port, want_kill, killed_rx)).await;
    let _ = child.kill();
    let _ = child.wait();
    drop(killer.await);
    outcome.expect("drive")
}

/// Queries until ready, then for 2 s, has site A killed, then 4 s more.
fn drive(
    port: u16,
    want_kill: tokio::sync::mpsc::UnboundedSender<()>,
    killed: std::sync::mpsc::Receiver<Instant>,
) -> Outcome {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let mut buf = [0u8; 1500];
    // Ready: an answer naming the primary (its first check passed).
    let ready_by = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = sock.send_to(&query(1), server);
        if let Ok(n) = sock.recv(&mut buf)
            && parse(&buf[..n]) == Some((0, true))
        {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "meridian dns did not become ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let kill_after = Duration::from_secs(2);
    let end = kill_after + Duration::from_secs(4);
    let mut out = Outcome {
        detect: None,
        servfail: 0,
        timeouts: 0,
        queries: 0,
    };
    let mut killed_at: Option<Instant> = None;
    let mut id = 2u16;
    while start.elapsed() < end {
        if killed_at.is_none() && start.elapsed() >= kill_after {
            let _ = want_kill.send(());
            killed_at = killed.recv().ok();
        }
        id = id.wrapping_add(1);
        out.queries += 1;
        let _ = sock.send_to(&query(id), server);
        match sock.recv(&mut buf) {
            Ok(n) => match parse(&buf[..n]) {
                Some((2, _)) => out.servfail += 1,
                Some((0, false)) => {
                    if let (Some(k), None) = (killed_at, out.detect) {
                        out.detect = Some(k.elapsed());
                    }
                }
                _ => {}
            },
            Err(_) => out.timeouts += 1,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut detects = Vec::new();
    let (mut servfail, mut timeouts, mut queries) = (0, 0, 0);
    for i in 0..runs {
        let o = rt.block_on(run_once());
        match o.detect {
            Some(d) => {
                println!(
                    "run {}: kill → first answer without the dead site: {:.0} ms; {} queries, {} SERVFAIL, {} timeouts",
                    i + 1,
                    d.as_secs_f64() * 1000.0,
                    o.queries,
                    o.servfail,
                    o.timeouts
                );
                detects.push(d);
            }
            None => println!(
                "run {}: the dead site was still answered 4 s after the kill",
                i + 1
            ),
        }
        servfail += o.servfail;
        timeouts += o.timeouts;
        queries += o.queries;
    }
    detects.sort();
    if !detects.is_empty() {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "failover over {} runs: median {:.0} ms, max {:.0} ms; {queries} queries, {servfail} SERVFAIL, {timeouts} timeouts",
            detects.len(),
            ms(detects[detects.len() / 2]),
            ms(*detects.last().expect("one run"))
        );
    }
}
