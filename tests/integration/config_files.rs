//! `meridian check`: every bundled file is valid, and each kind of error is reported with its
//! file, line, column, item and value.

use std::path::{Path, PathBuf};
use std::process::Command;

fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_bundled_zone_and_example_file_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    toml_files(&root.join("zones"), &mut files);
    toml_files(&root.join("examples"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let out = meridian()
            .arg("check")
            .arg(&f)
            .output()
            .expect("run meridian");
        assert!(
            out.status.success(),
            "{} does not check:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const GOOD_HEAD: &str = r#"origin = "example.com."
nameservers = ["ns1.example.com."]
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com." }
"#;

/// Writes `body` after a valid head into `name` in a fresh directory, runs `meridian check` and
/// returns (success, stderr).
fn check(name: &str, body: &str) -> (bool, String, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{GOOD_HEAD}{body}")).expect("write");
    let out = meridian()
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let kept = dir.keep();
    (out.status.success(), err, kept.join(name))
}

/// Asserts an error at `file:line:col` naming `item` and `value`.
fn assert_error(name: &str, body: &str, line: usize, col: usize, item: &str, value: &str) {
    let (ok, err, path) = check(name, body);
    assert!(!ok, "expected a failure for {body:?}");
    let loc = format!("{}:{line}:{col}: ", path.display());
    assert!(err.contains(&loc), "location {loc:?} missing in:\n{err}");
    assert!(err.contains(item), "item {item:?} missing in:\n{err}");
    assert!(err.contains(value), "value {value:?} missing in:\n{err}");
}

#[test]
fn unknown_key() {
    assert_error(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"192.0.2.1\"]\nadresses = [\"x\"]\n",
        6,
        1,
        "[datacenters.eu]",
        "adresses",
    );
}

#[test]
fn bad_address() {
    assert_error(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"192.0.2.300\"]\n",
        5,
        14,
        "datacenter \"eu\"",
        "192.0.2.300",
    );
}

#[test]
fn service_naming_an_unknown_datacenter() {
    assert_error(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"192.0.2.1\"]\n[[services]]\nname = \"www\"\ndatacenters = [\"eu\", \"mars\"]\n",
        8,
        22,
        "service \"www\"",
        "mars",
    );
}

#[test]
fn duplicate_service_names() {
    assert_error(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"192.0.2.1\"]\n[[services]]\nname = \"www\"\ndatacenters = [\"eu\"]\n[[services]]\nname = \"WWW\"\ndatacenters = [\"eu\"]\n",
        10,
        8,
        "service \"WWW\"",
        "WWW",
    );
}

#[test]
fn duplicate_datacenter_names() {
    let (ok, err, path) = check(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"192.0.2.1\"]\n[datacenters.eu]\naddresses = [\"192.0.2.2\"]\n",
    );
    assert!(!ok);
    assert!(err.contains(&format!("{}:6:", path.display())), "{err}");
    assert!(err.contains("duplicate"), "{err}");
}

#[test]
fn cname_beside_other_data() {
    assert_error(
        "example.com.toml",
        "[[records]]\nname = \"www\"\ntype = \"CNAME\"\nvalue = \"other\"\n[[records]]\nname = \"www\"\ntype = \"TXT\"\nvalue = \"x\"\n",
        5,
        8,
        "record www.example.com. CNAME",
        "www",
    );
}

#[test]
fn bad_ttl() {
    assert_error(
        "example.com.toml",
        "[[records]]\nname = \"www\"\ntype = \"A\"\nvalue = \"192.0.2.1\"\nttl = -5\n",
        8,
        7,
        "record \"www\" A",
        "-5",
    );
}

#[test]
fn origin_mismatch() {
    assert_error("example.org.toml", "", 1, 10, "origin", "example.com.");
}

#[test]
fn name_outside_the_origin() {
    assert_error(
        "example.com.toml",
        "[[records]]\nname = \"www.example.net.\"\ntype = \"A\"\nvalue = \"192.0.2.1\"\n",
        5,
        8,
        "record \"www.example.net.\" A",
        "www.example.net.",
    );
}

#[test]
fn every_error_of_a_file_is_reported() {
    let (ok, err, _) = check(
        "example.com.toml",
        "[datacenters.eu]\naddresses = [\"nope\"]\n[[services]]\nname = \"www\"\ndatacenters = [\"mars\"]\n",
    );
    assert!(!ok);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        2,
        "{err}"
    );
}

#[test]
fn a_valid_directory_prints_a_summary() {
    let out = meridian()
        .arg("check")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zones"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("zone example.com."), "{s}");
    assert!(s.contains("zone sub.example.com."), "{s}");
}
