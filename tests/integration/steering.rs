//! Geo steering end to end: the bundled example zone and demo GeoIP database, live health from
//! loopback sites, queries with ECS over UDP.

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use meridian::config::Name;
use meridian::probe::{DcState, HealthBoard};

use crate::support::dns::{Q, TestDns, answer_strings, reply_ecs};
use crate::support::health_site::HealthSite;

const EU_WEST: &str = "127.0.1.10";
const US_EAST: &str = "127.0.2.10";
const AP_NORTHEAST: &str = "127.0.3.10";

struct World {
    dns: TestDns,
    board: HealthBoard,
    _sites: Vec<HealthSite>,
    _dir: tempfile::TempDir,
}

/// The example zone, with its checks pointed at three loopback sites and `extra` appended.
async fn world(extra: &str) -> World {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    world_from(
        &root.join("zones/example.com.toml"),
        extra,
        tempfile::tempdir().expect("tempdir"),
    )
    .await
}

async fn world_from(file: &Path, extra: &str, dir: tempfile::TempDir) -> World {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut zone = std::fs::read_to_string(file).expect("zone");
    zone = zone.replace(
        "\"../geoip/demo.mmdb\"",
        &format!("{:?}", root.join("geoip/demo.mmdb")),
    );
    let mut sites = Vec::new();
    for region in ["127.0.1.1", "127.0.2.1", "127.0.3.1"] {
        let site = HealthSite::start().await;
        zone = zone.replace(&format!("http://{region}:9101/health"), &site.url());
        sites.push(site);
    }
    zone.push_str(extra);
    std::fs::write(dir.path().join("example.com.toml"), zone).expect("write");
    let board = HealthBoard::new(&prometheus::Registry::new()).expect("board");
    let dns =
        TestDns::start_with(dir.path(), meridian::gslb::steering_factory(board.clone())).await;
    board.first_round().await;
    World {
        dns,
        board,
        _sites: sites,
        _dir: dir,
    }
}

async fn ask(w: &World, name: &str, subnet: &str) -> Message {
    w.dns
        .udp(&Q::new(name, RecordType::A).ecs(subnet).bytes())
        .await
}

fn origin() -> Name {
    Name::parse_absolute("example.com.").expect("name")
}

#[tokio::test]
async fn clients_in_gb_us_and_jp_get_their_regions() {
    let w = world("").await;
    for (subnet, want, scope) in [
        ("81.2.69.0/24", EU_WEST, 24),
        ("216.160.83.0/24", US_EAST, 24),
        ("2001:218::/48", AP_NORTHEAST, 32),
    ] {
        let m = ask(&w, "www.example.com.", subnet).await;
        assert_eq!(answer_strings(&m), [want], "{subnet}");
        let (_, got_scope, _) = reply_ecs(&m).expect("ECS echoed");
        assert_eq!(got_scope, scope, "{subnet}: scope of the deciding network");
        assert_eq!(m.answers[0].ttl, 30);
    }
    // No ECS: the resolver's address (loopback: not in the database, the zone default, US).
    let m = w
        .dns
        .udp(&Q::new("www.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(answer_strings(&m), [US_EAST]);
    w.dns.stop().await;
}

#[tokio::test]
async fn an_eu_client_stays_in_the_eu_when_every_eu_datacenter_is_down() {
    let w = world("").await;
    let sweden = "89.160.20.0/24";
    assert_eq!(
        answer_strings(&ask(&w, "www.example.com.", sweden).await),
        [EU_WEST]
    );
    w.board
        .set_admin(&origin(), "eu-west", Some(DcState::Down))
        .expect("admin");
    let m = ask(&w, "www.example.com.", sweden).await;
    assert_eq!(answer_strings(&m), [EU_WEST], "fail open inside the fence");
    assert_eq!(
        m.answers[0].ttl, 10,
        "the short failover TTL while failing open"
    );
    // A client outside the EU moves away from the down datacenter.
    let m = ask(&w, "www.example.com.", "81.2.69.0/24").await;
    assert_eq!(answer_strings(&m), [US_EAST], "GB is not under the EU rule");
    w.dns.stop().await;
}

#[tokio::test]
async fn a_stopped_site_moves_answers_away_and_back() {
    let mut w = world("").await;
    let gb = "81.2.69.0/24";
    assert_eq!(
        answer_strings(&ask(&w, "www.example.com.", gb).await),
        [EU_WEST]
    );
    w._sites[0].stop().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if answer_strings(&ask(&w, "www.example.com.", gb).await) == [US_EAST] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never moved off eu-west"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    w._sites[0].restart().await;
    loop {
        if answer_strings(&ask(&w, "www.example.com.", gb).await) == [EU_WEST] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never came back to eu-west"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    w.dns.stop().await;
}

const NODATA_SERVICE: &str = r#"
[[services]]
name = "strict"
policy = "failover"
datacenters = ["us-east", "eu-west"]
on_all_down = "nodata"
"#;

#[tokio::test]
async fn all_down_fails_open_or_answers_nodata() {
    let w = world(NODATA_SERVICE).await;
    for dc in ["eu-west", "us-east", "ap-northeast"] {
        w.board
            .set_admin(&origin(), dc, Some(DcState::Down))
            .expect("admin");
    }
    let m = ask(&w, "api.example.com.", "216.160.83.0/24").await;
    assert_eq!(
        answer_strings(&m),
        [US_EAST],
        "fail-open answers as if all were up"
    );
    let m = ask(&w, "strict.example.com.", "216.160.83.0/24").await;
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    assert!(m.answers.is_empty(), "nodata");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // Lifting the override hands eu-west back to its (passing) check.
    w.board
        .set_admin(&origin(), "eu-west", None)
        .expect("admin");
    let m = ask(&w, "strict.example.com.", "216.160.83.0/24").await;
    assert_eq!(answer_strings(&m), [EU_WEST]);
    w.dns.stop().await;
}

#[tokio::test]
async fn ecs_scope_blocks_answer_alike_over_the_wire() {
    let w = world("").await;
    // Probe several clients; for each, an address elsewhere in its scope block gets the same.
    for subnet in [
        "81.2.69.0/24",
        "10.1.2.0/24",
        "216.160.83.0/24",
        "175.16.199.0/24",
    ] {
        let m = ask(&w, "www.example.com.", subnet).await;
        let (_, scope, addr) = reply_ecs(&m).expect("ECS");
        let IpAddr::V4(a) = addr else { unreachable!() };
        let span = if scope >= 32 { 0 } else { u32::MAX >> scope };
        let other = std::net::Ipv4Addr::from((u32::from(a) & !span) | (span & 0x00ab_cd00));
        let m2 = ask(&w, "www.example.com.", &format!("{other}/24")).await;
        assert_eq!(
            answer_strings(&m),
            answer_strings(&m2),
            "{subnet} vs {other} (scope /{scope})"
        );
    }
    w.dns.stop().await;
}

/// The example zone with eu-west's check asking for at least 2 healthy backends and shedding
/// above load 0.8, keeping 60 % of its clients.
fn with_eu_settings(zone: &str) -> String {
    zone.replacen(
        "check = { url = \"http://127.0.1.1:9101/health\" }",
        "check = { url = \"http://127.0.1.1:9101/health\", min_healthy = 2 }\nshed_at = 0.8\nshed_keep = 0.6",
        1,
    )
}

async fn world_with(edit: fn(&str) -> String) -> World {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("zones/example.com.toml")).expect("zone");
    let dir = tempfile::tempdir().expect("tempdir");
    let edited = dir.path().join("edited");
    std::fs::create_dir(&edited).expect("dir");
    std::fs::write(edited.join("example.com.toml"), edit(&text)).expect("write");
    world_from(&edited.join("example.com.toml"), "", dir).await
}

async fn wait_for(w: &World, subnet: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if answer_strings(&ask(w, "www.example.com.", subnet).await) == [want] {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{subnet} never got {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn draining_and_min_healthy_take_a_site_out_of_answers() {
    let w = world_with(with_eu_settings).await;
    let gb = "81.2.69.0/24";
    w._sites[0].report("up", 3, 3, 0.1);
    wait_for(&w, gb, EU_WEST).await;
    w._sites[0].report("draining", 3, 3, 0.1);
    wait_for(&w, gb, US_EAST).await;
    w._sites[0].report("up", 3, 3, 0.1);
    wait_for(&w, gb, EU_WEST).await;
    w._sites[0].report("up", 1, 3, 0.1);
    wait_for(&w, gb, US_EAST).await;
    w._sites[0].report("up", 2, 3, 0.1);
    wait_for(&w, gb, EU_WEST).await;
    w.dns.stop().await;
}

#[tokio::test]
async fn an_overloaded_site_keeps_its_share_and_spreads_the_rest() {
    let w = world_with(with_eu_settings).await;
    let site = &w._sites[0];
    site.report("up", 3, 3, 0.1);
    wait_for(&w, "81.2.69.0/24", EU_WEST).await;
    site.report("up", 3, 3, 1.5);
    // Clients of eu-west outside the EU fence: distinct /56s of the GB network 2a02:d3c0::/29.
    let nets: Vec<String> = (0..2000u32)
        .map(|i| format!("2a02:d3c{:x}:{:x}:{:x}00::/56", i % 8, i / 8, i % 256))
        .collect();
    // First wait until the report is seen (some client moves), then measure one whole pass.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut i = 0;
    while answer_strings(&ask(&w, "www.example.com.", &nets[i % nets.len()]).await) == [EU_WEST] {
        i += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load report was never seen"
        );
    }
    let mut moved = std::collections::BTreeMap::new();
    let mut stayed = 0usize;
    let total = nets.len();
    for net in &nets {
        let a = answer_strings(&ask(&w, "www.example.com.", net).await);
        if a == [EU_WEST] {
            stayed += 1;
        } else {
            *moved.entry(a.join(",")).or_insert(0usize) += 1;
        }
    }
    let share = stayed as f64 / total as f64;
    assert!((share - 0.6).abs() <= 0.03, "kept {share}, configured 0.6");
    assert!(!moved.is_empty(), "{moved:?}");
    w.dns.stop().await;
}
