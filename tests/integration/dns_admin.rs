//! The DNS admin listener end to end: the status page and its JSON against the example zone
//! with three loopback sites, answer shares from real queries, draining through the API, live
//! explain. (The running binary's logs and metrics: `dns_binary.rs`.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use meridian::app::dns_admin::{DnsAdmin, OpsMetrics};
use meridian::app::status::AnswerShares;
use meridian::dns::{DnsMetrics, DnsOptions, DnsServer, Zones};
use meridian::geo::DatabaseCache;
use meridian::gslb::GslbMetrics;
use meridian::probe::HealthBoard;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::support::dns::{Q, answer_strings};
use crate::support::health_site::HealthSite;

pub(crate) const TOKEN: &str = "test-token";
pub(crate) const DCS: [&str; 3] = ["eu-west", "us-east", "ap-northeast"];

/// The example zone with its checks pointed at `sites` (every 100 ms) and the database path
/// made absolute, written to `dir`.
pub(crate) fn write_zone(dir: &Path, sites: &[HealthSite]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut zone = std::fs::read_to_string(root.join("zones/example.com.toml")).expect("zone");
    zone = zone.replace(
        "\"../geoip/demo.mmdb\"",
        &format!("{:?}", root.join("geoip/demo.mmdb")),
    );
    for (region, site) in ["127.0.1.1", "127.0.2.1", "127.0.3.1"].iter().zip(sites) {
        zone = zone.replace(
            &format!("{{ url = \"http://{region}:9101/health\" }}"),
            &format!(
                "{{ url = \"{}\", interval = \"100ms\", timeout = \"80ms\" }}",
                site.url()
            ),
        );
    }
    std::fs::write(dir.join("example.com.toml"), zone).expect("write zone");
}

/// The DNS server, its board and its admin listener, in process.
struct Stack {
    admin: SocketAddr,
    dns: SocketAddr,
    http: reqwest::Client,
    sites: Vec<HealthSite>,
    _server: DnsServer,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        let mut sites = Vec::new();
        for _ in DCS {
            sites.push(HealthSite::start().await);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_zone(dir.path(), &sites);
        let registry = prometheus::Registry::new();
        let board = HealthBoard::new(&registry).expect("board");
        let gslb = GslbMetrics::new(&registry).expect("gslb metrics");
        OpsMetrics::new(&registry).expect("ops metrics");
        let geo = Arc::new(Mutex::new(DatabaseCache::default()));
        let steering =
            meridian::gslb::steering_factory_cached(board.clone(), Some(gslb.clone()), geo.clone());
        let metrics = DnsMetrics::new(&registry).expect("dns metrics");
        let zones = Arc::new(Zones::load(dir.path(), steering, metrics).expect("zones"));
        board.first_round().await;
        let server = DnsServer::start(&zones, &DnsOptions::default())
            .await
            .expect("dns server");
        let shares = Arc::new(AnswerShares::new(gslb, Duration::from_secs(60)));
        shares.sample();
        let handler = DnsAdmin {
            registry,
            board,
            token: Some(TOKEN.into()),
            zones,
            geo,
            shares,
        }
        .handler();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let admin = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(meridian::telemetry::http::serve(listener, handler, stopped));
        Stack {
            admin,
            dns: server.local_addrs[0],
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            sites,
            _server: server,
            _stop: stop,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ctype, r.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> Value {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn set_state(&self, dc: &str, state: &str, token: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(format!(
                "http://{}/api/datacenters/example.com./{dc}",
                self.admin
            ))
            .body(format!("{{\"state\": {state}}}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST").status().as_u16()
    }

    async fn ask(&self, subnet: &str) -> Vec<String> {
        let q = Q::new("www.example.com.", RecordType::A)
            .ecs(subnet)
            .bytes();
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        sock.send_to(&q, self.dns).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("reply in time")
            .expect("recv");
        answer_strings(&hickory_proto::op::Message::from_vec(&buf[..n]).expect("reply"))
    }

    /// The datacenter `dc` in `/status.json`.
    async fn dc(&self, dc: &str) -> Value {
        let v = self.json("/status.json").await;
        v["zones"][0]["datacenters"]
            .as_array()
            .expect("datacenters")
            .iter()
            .find(|d| d["name"] == dc)
            .cloned()
            .unwrap_or_else(|| panic!("no {dc} in {v}"))
    }

    /// Polls `/status.json` until `dc` has `colour` (bounded).
    async fn until_colour(&self, dc: &str, colour: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.dc(dc).await;
            if d["colour"] == colour {
                return;
            }
            assert!(Instant::now() < deadline, "{dc} never turned {colour}: {d}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The `data-colour` of the element with `class` for datacenter `dc` in the page.
fn colour_in(page: &str, class: &str, dc: &str) -> String {
    let start = page
        .find(&format!(
            "class=\"{class}\" data-zone=\"example.com.\" data-dc=\"{dc}\""
        ))
        .unwrap_or_else(|| panic!("no {class} for {dc}"));
    let rest = &page[start..];
    let at = rest.find("data-colour=\"").expect("colour") + "data-colour=\"".len();
    rest[at..].split('"').next().unwrap_or("").to_string()
}

#[tokio::test]
async fn the_status_page_is_self_contained_and_shows_every_datacenter() {
    let s = Stack::start().await;
    let (status, ctype, page) = s.get("/status").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(page.starts_with("<!doctype html>"));
    assert_eq!(
        count(&page, "class=\"dc-marker\""),
        3,
        "one marker per datacenter"
    );
    assert_eq!(
        count(&page, "class=\"dc-row\""),
        3,
        "one table row per datacenter"
    );
    for dc in DCS {
        assert_eq!(colour_in(&page, "dc-marker", dc), "green", "{dc}");
        assert_eq!(colour_in(&page, "dc-row", dc), "green", "{dc}");
    }
    assert!(
        page.contains("<svg") && page.contains("<polygon"),
        "inline map"
    );
    assert!(page.contains("<form method=\"get\""), "explain form");
    for external in ["src=", "href=", "<link", "@import", "url("] {
        assert!(
            !page.contains(external),
            "external asset {external:?} in the page"
        );
    }
    let (status, _, live) = s.get("/status/live").await;
    assert_eq!(status, 200);
    assert_eq!(count(&live, "class=\"dc-marker\""), 3);
    assert!(!live.contains("<html"), "a fragment, not a page");
}

#[tokio::test]
async fn answer_shares_follow_the_queries_of_the_last_minute() {
    let s = Stack::start().await;
    for (subnet, n, want) in [
        ("81.2.69.0/24", 6, "127.0.1.10"),
        ("216.160.83.0/24", 3, "127.0.2.10"),
        ("2001:218::/48", 3, "127.0.3.10"),
    ] {
        for _ in 0..n {
            assert_eq!(s.ask(subnet).await, [want]);
        }
    }
    for (dc, n, share) in [
        ("eu-west", 6, 0.5),
        ("us-east", 3, 0.25),
        ("ap-northeast", 3, 0.25),
    ] {
        let d = s.dc(dc).await;
        assert_eq!(d["answers_last_minute"], n, "{d}");
        assert_eq!(d["answer_share"].as_f64(), Some(share), "{d}");
        assert!(d["location"]["lat"].is_number(), "{d}");
    }
    let (_, _, page) = s.get("/status").await;
    assert!(page.contains("50.0 % <small>(6)</small>"), "{page}");
}

#[tokio::test]
async fn draining_through_the_api_turns_a_datacenter_amber_and_a_dead_site_red() {
    let mut s = Stack::start().await;
    assert_eq!(s.set_state("eu-west", "\"draining\"", None).await, 401);
    assert_eq!(
        s.set_state("eu-west", "\"draining\"", Some("wrong")).await,
        401
    );
    assert_eq!(s.dc("eu-west").await["colour"], "green");

    assert_eq!(
        s.set_state("eu-west", "\"draining\"", Some(TOKEN)).await,
        200
    );
    let d = s.dc("eu-west").await;
    assert_eq!(
        (d["state"].as_str(), d["colour"].as_str()),
        (Some("draining"), Some("amber"))
    );
    let (_, _, page) = s.get("/status").await;
    assert_eq!(colour_in(&page, "dc-marker", "eu-west"), "amber");
    assert_eq!(colour_in(&page, "dc-row", "eu-west"), "amber");
    assert!(page.contains("draining (admin)"), "the override is shown");
    assert_eq!(
        s.ask("81.2.69.0/24").await,
        ["127.0.2.10"],
        "GB moves to us-east"
    );

    assert_eq!(s.set_state("eu-west", "null", Some(TOKEN)).await, 200);
    s.until_colour("eu-west", "green").await;

    s.sites[1].stop().await;
    s.until_colour("us-east", "red").await;
    let (_, _, page) = s.get("/status/live").await;
    assert_eq!(colour_in(&page, "dc-marker", "us-east"), "red");
    assert_eq!(s.set_state("nowhere", "\"down\"", Some(TOKEN)).await, 404);
}

#[tokio::test]
async fn live_explain_uses_the_served_zones_and_the_live_health() {
    let s = Stack::start().await;
    let x = s
        .json("/explain.json?name=www.example.com&client=81.2.69.0%2F24")
        .await;
    assert_eq!(x["answer"][0]["datacenter"], "eu-west", "{x}");
    assert_eq!(x["scope"], 24);

    assert_eq!(
        s.set_state("eu-west", "\"draining\"", Some(TOKEN)).await,
        200
    );
    let x = s
        .json("/explain.json?name=www.example.com&client=81.2.69.0%2F24")
        .await;
    assert_eq!(x["answer"][0]["datacenter"], "us-east", "{x}");
    let health = x["health"].to_string();
    assert!(health.contains(r#"["eu-west","draining"]"#), "{health}");
    // What explain says is what the server answers.
    let addrs = x["answer"][0]["addresses"].to_string();
    for a in s.ask("81.2.69.0/24").await {
        assert!(addrs.contains(&a), "{a} not in {addrs}");
    }
    // An EU client stays inside the fence, failing open there.
    let x = s
        .json("/explain.json?name=www.example.com&client=89.160.20.0/24")
        .await;
    assert_eq!(x["answer"][0]["datacenter"], "eu-west", "{x}");
    assert!(
        x["steps"]
            .to_string()
            .contains("fail open inside the fence"),
        "{x}"
    );

    let (status, _, page) = s
        .get("/status?name=www.example.com.&client=81.2.69.0%2F24")
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("<table id=\"steps\">"), "the trace is shown");
    assert!(
        page.contains("us-east (127.0.2.10, 2001:db8:20::1)"),
        "{page}"
    );

    let (status, _, body) = s
        .get("/explain.json?name=www.example.com&client=nonsense")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("bad client"), "{body}");
    let (_, _, page) = s
        .get("/status?name=mail.example.com&client=192.0.2.1")
        .await;
    assert!(
        page.contains("class=\"error\">mail.example.com. is not a service"),
        "{page}"
    );
    let (_, _, page) = s.get("/status?name=%3Cb%3E&client=192.0.2.1").await;
    assert!(!page.contains("<b>"), "input is escaped");
}
