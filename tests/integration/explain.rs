//! `meridian explain` prints the decision step by step for the steering cases.

use std::path::Path;
use std::process::Command;

fn explain(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("explain")
        .arg("--zones")
        .arg(root.join("zones"))
        .args(args)
        .output()
        .expect("run meridian explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

#[test]
fn gb_us_and_jp_clients() {
    for (client, dc, scope, country) in [
        ("81.2.69.0/24", "eu-west", "/24", "country GB"),
        ("216.160.83.0/24", "us-east", "/24", "country US"),
        ("2001:218::/48", "ap-northeast", "/32", "country JP"),
    ] {
        let t = explain(&["--name", "www.example.com", "--client", client]);
        assert!(line(&t, "located").contains(country), "{t}");
        assert!(
            line(&t, "answer").starts_with(&format!("answer     {dc}:")),
            "{t}"
        );
        assert_eq!(line(&t, "ecs scope"), format!("ecs scope  {scope}"), "{t}");
        assert_eq!(line(&t, "ttl"), "ttl        30");
        for step in ["candidates", "health", "sovereignty", "order", "answers"] {
            assert!(t.contains(step), "step {step} missing:\n{t}");
        }
    }
}

#[test]
fn eu_client_with_every_eu_datacenter_down() {
    let t = explain(&[
        "--name",
        "www.example.com",
        "--client",
        "89.160.20.0/24",
        "--down",
        "eu-west",
    ]);
    assert!(line(&t, "health").contains("eu-west down"), "{t}");
    assert!(t.contains("fail open inside the fence"), "{t}");
    assert!(line(&t, "answer").contains("eu-west"), "{t}");
    assert_eq!(line(&t, "ttl"), "ttl        10", "failover TTL");
}

#[test]
fn fail_open_and_nodata() {
    let t = explain(&[
        "--name",
        "api.example.com",
        "--client",
        "216.160.83.0/24",
        "--down",
        "eu-west",
        "--down",
        "us-east",
        "--down",
        "ap-northeast",
    ]);
    assert!(t.contains("fail-open"), "{t}");
    assert!(line(&t, "answer").contains("us-east"), "{t}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("example.net.toml"),
        r#"origin = "example.net."
nameservers = ["ns1.example.net."]
soa = { mname = "ns1.example.net.", rname = "hostmaster.example.net." }
[datacenters.a]
addresses = ["192.0.2.1"]
[[services]]
name = "strict"
policy = "failover"
datacenters = ["a"]
on_all_down = "nodata"
"#,
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["explain", "--zones"])
        .arg(dir.path())
        .args([
            "--name",
            "strict.example.net",
            "--client",
            "192.0.2.7",
            "--down",
            "a",
        ])
        .output()
        .expect("run");
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(t.contains("answering NODATA"), "{t}");
    assert_eq!(line(&t, "answer"), "answer     NODATA");
}

#[test]
fn unknown_names_are_clear_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["explain", "--zones"])
        .arg(root.join("zones"))
        .args(["--name", "mail.example.com", "--client", "192.0.2.1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("not a service"), "{e}");
}
