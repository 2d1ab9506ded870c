//! `meridian dns` as a child process: its JSON logs (state changes, reloads and fail-open
//! events with structured fields, nothing per query) and its `/metrics` (every family
//! documented in docs/metrics.md, accepted by `promtool check metrics`, and the alert rules of
//! `examples/prometheus/` checked and unit-tested by `promtool`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::time::Instant;

use crate::dns_admin::{DCS, TOKEN, write_zone};
use crate::support::dns::{Q, answer_strings};
use crate::support::health_site::HealthSite;

/// `meridian dns` running as a child process with JSON logs, its stderr read line by line.
struct Binary {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    /// Lines received but not matched yet (events of concurrent checks come in any order).
    pending: Vec<Value>,
    admin: SocketAddr,
    dns: SocketAddr,
    sites: Vec<HealthSite>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

impl Binary {
    async fn start() -> Binary {
        use std::io::BufRead;
        let mut sites = Vec::new();
        for _ in DCS {
            sites.push(HealthSite::start().await);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_zone(dir.path(), &sites);
        let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["dns", "--log-format", "json", "--workers", "1", "--zones"])
            .arg(dir.path())
            .args(["--listen", &dns.to_string(), "--admin", &admin.to_string()])
            .env_remove("RUST_LOG")
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn meridian dns");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let mut b = Binary {
            child,
            lines,
            seen: Vec::new(),
            pending: Vec::new(),
            admin,
            dns,
            sites,
            dir,
        };
        b.expect("INFO", "admin listening", &[]).await;
        b
    }

    /// Waits (bounded) for a log line at `level` with `message` and the given fields, logged
    /// since the previous match of any line.
    async fn expect(&mut self, level: &str, message: &str, fields: &[(&str, &str)]) -> Value {
        let matches = |line: &Value| {
            let f = &line["fields"];
            line["level"] == level
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
                && fields.iter().all(|(k, v)| f[*k] == *v)
        };
        if let Some(i) = self.pending.iter().position(matches) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(v)) => v,
                Ok(None) => panic!("meridian exited before logging {message:?}"),
                Err(_) => panic!(
                    "no {level} {message:?} {fields:?} logged; saw {:?}",
                    self.seen
                ),
            };
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
            self.pending.push(line);
        }
    }

    fn ask(&self, subnet: &str) -> Vec<String> {
        let q = Q::new("www.example.com.", RecordType::A)
            .ecs(subnet)
            .bytes();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        sock.send_to(&q, self.dns).expect("send");
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("reply");
        answer_strings(&hickory_proto::op::Message::from_vec(&buf[..n]).expect("reply"))
    }

    async fn set_state(&self, dc: &str, state: &str) {
        let status = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!(
                "http://{}/api/datacenters/example.com./{dc}",
                self.admin
            ))
            .bearer_auth(TOKEN)
            .body(format!("{{\"state\": {state}}}"))
            .send()
            .await
            .expect("POST")
            .status();
        assert_eq!(status, 200);
    }

    async fn metrics(&self) -> String {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// SIGTERM, then the exit status and every line logged.
    async fn stop(mut self) -> Vec<Value> {
        self.signal("-TERM");
        self.expect("INFO", "shutting down", &[]).await;
        while let Some(v) = self.lines.recv().await {
            self.seen.push(v);
        }
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "clean exit on SIGTERM: {status}");
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_state_changes_reloads_and_fail_open_as_structured_json() {
    let mut b = Binary::start().await;
    for _ in 0..50 {
        assert_eq!(b.ask("81.2.69.0/24"), ["127.0.1.10"]);
    }
    b.set_state("eu-west", "\"draining\"").await;
    let zd = [("zone", "example.com."), ("datacenter", "eu-west")];
    b.expect("INFO", "admin override set", &zd).await;
    b.expect(
        "INFO",
        "datacenter state changed",
        &[
            zd[0],
            zd[1],
            ("from", "up"),
            ("to", "draining"),
            ("cause", "admin"),
        ],
    )
    .await;
    b.set_state("eu-west", "null").await;
    b.expect("INFO", "datacenter state changed", &[zd[1], ("to", "up")])
        .await;

    for site in &mut b.sites {
        site.stop().await;
    }
    for dc in DCS {
        let line = b
            .expect(
                "INFO",
                "datacenter state changed",
                &[("datacenter", dc), ("to", "down"), ("cause", "check")],
            )
            .await;
        assert!(
            !line["fields"]["error"].as_str().unwrap_or("").is_empty(),
            "{line}"
        );
    }
    assert_eq!(b.ask("81.2.69.0/24"), ["127.0.1.10"], "fail open");
    b.expect(
        "WARN",
        "every datacenter of the service is down",
        &[
            ("zone", "example.com."),
            ("service", "www.example.com."),
            ("on_all_down", "fail-open"),
        ],
    )
    .await;

    let file = b.dir.path().join("example.com.toml");
    let good = std::fs::read_to_string(&file).expect("zone");
    std::fs::write(
        &file,
        format!("{good}\n[[records]]\nname = \"x\"\ntype = \"A\"\nvalue = \"bad\"\n"),
    )
    .expect("write");
    b.signal("-HUP");
    let line = b
        .expect(
            "ERROR",
            "reload rejected",
            &[("item", "record \"x\" A"), ("value", "\"bad\"")],
        )
        .await;
    assert!(
        line["fields"]["line"].as_u64().is_some_and(|l| l > 100),
        "{line}"
    );
    assert_eq!(line["fields"]["col"], 9, "{line}");
    assert!(
        line["fields"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("example.com.toml"))
    );
    std::fs::write(&file, good).expect("write");
    b.signal("-HUP");
    b.expect("INFO", "zones reloaded", &[]).await;

    let lines = b.stop().await;
    for l in &lines {
        assert!(
            !l.to_string().contains("81.2.69"),
            "a query was logged: {l}"
        );
    }
    assert!(
        lines.len() < 50,
        "{} lines for 51 queries: {lines:?}",
        lines.len()
    );
}

/// The metric names listed in the first column of the tables under `## {section}` in
/// docs/metrics.md.
pub(crate) fn documented_metrics(section: &str) -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/metrics.md")).expect("docs/metrics.md");
    let start = doc
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("no section {section:?} in docs/metrics.md"));
    let body = &doc[start + 1..];
    let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
    body.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect()
}

/// Every metric family an exposition declares (`# TYPE`) is in the `## {section}` tables of
/// docs/metrics.md, and every one listed there is exposed.
pub(crate) fn assert_exposed_as_documented(text: &str, section: &str) {
    let exposed: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    let documented = documented_metrics(section);
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&exposed).collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented but not exposed: {missing:?}"
    );
}

/// Runs `promtool` with `args` (and `stdin`), or `None` when it is not installed.
pub(crate) fn promtool(args: &[&str], dir: &Path, stdin: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exposed_metric_is_documented_and_promtool_accepts_them() {
    let mut b = Binary::start().await;
    for subnet in ["81.2.69.0/24", "216.160.83.0/24", "2001:218::/48"] {
        assert_eq!(b.ask(subnet).len(), 1);
    }
    b.set_state("eu-west", "\"draining\"").await;
    b.expect("INFO", "datacenter state changed", &[("to", "draining")])
        .await;
    b.set_state("eu-west", "null").await;
    b.expect("INFO", "datacenter state changed", &[("to", "up")])
        .await;
    b.signal("-HUP");
    b.expect("INFO", "zones reloaded", &[]).await;
    let text = b.metrics().await;
    b.stop().await;

    assert_exposed_as_documented(&text, "meridian dns");
    assert!(
        text.contains("meridian_dns_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("meridian_dns_config_last_reload_successful 1"),
        "{text}"
    );

    // Every metric an alert uses exists.
    let documented = documented_metrics("meridian dns");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules_dir = root.join("examples/prometheus");
    let rules = std::fs::read_to_string(rules_dir.join("meridian-alerts.yml")).expect("rules");
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("meridian_") || word.starts_with("process_") {
            let family = word.strip_suffix("_bucket").unwrap_or(word);
            assert!(
                documented.contains(family),
                "the rules use unknown metric {word}"
            );
        }
    }

    let Some((ok, out)) = promtool(&["check", "metrics"], &rules_dir, &text) else {
        println!(
            "note: promtool is not installed (Debian package `prometheus`), so the exposition \
             and the alert rules were not checked with it here; .ci/run installs it"
        );
        return;
    };
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    let (ok, out) =
        promtool(&["check", "rules", "meridian-alerts.yml"], &rules_dir, "").expect("promtool");
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(
        &["test", "rules", "meridian-alerts.test.yml"],
        &rules_dir,
        "",
    )
    .expect("promtool");
    assert!(ok, "promtool test rules:\n{out}");
}
