//! Reload: a broken file leaves the old zones serving; a fixed one is picked up.

use hickory_proto::rr::RecordType;

use crate::support::dns::{Q, TestDns, answer_strings};

const ZONE: &str = r#"origin = "example.com."
nameservers = ["ns1.example.com."]
soa = { mname = "ns1.example.com.", rname = "hostmaster.example.com." }
[[records]]
name = "www"
type = "A"
value = "192.0.2.1"
"#;

#[tokio::test]
async fn broken_reload_keeps_old_zones_and_fixed_reload_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("example.com.toml");
    std::fs::write(&file, ZONE).expect("write");
    let s = TestDns::start(dir.path()).await;
    let q = Q::new("www.example.com.", RecordType::A).bytes();
    assert_eq!(answer_strings(&s.udp(&q).await), ["192.0.2.1"]);

    std::fs::write(
        &file,
        format!("{ZONE}[[records]]\nname = \"new\"\ntype = \"A\"\nvalue = \"192.0.2.999\"\n"),
    )
    .expect("write");
    let err = s.zones.reload().expect_err("broken file rejected");
    let text = err.to_string();
    assert!(text.contains("example.com.toml:11:9"), "{text}");
    assert_eq!(
        answer_strings(&s.udp(&q).await),
        ["192.0.2.1"],
        "old zone still serves"
    );
    let new_q = Q::new("new.example.com.", RecordType::A).bytes();
    assert!(s.udp(&new_q).await.answers.is_empty());

    std::fs::write(
        &file,
        format!("{ZONE}[[records]]\nname = \"new\"\ntype = \"A\"\nvalue = \"192.0.2.9\"\n"),
    )
    .expect("write");
    s.zones.reload().expect("fixed file loads");
    assert_eq!(answer_strings(&s.udp(&new_q).await), ["192.0.2.9"]);
    s.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("example.com.toml");
    std::fs::write(&file, ZONE).expect("write");
    // Port 0: the server picks one and logs it (no race with other tests for a free port).
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["dns", "--zones"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut wait_for = |needle: &str| {
        for line in lines.by_ref() {
            let line = line.expect("log line");
            if line.contains(needle) {
                return line;
            }
        }
        panic!("the server exited before logging {needle:?}");
    };
    let listening = wait_for("listening on UDP and TCP");
    let port: u16 = listening
        .split("addr=127.0.0.1:")
        .nth(1)
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no port in {listening:?}"));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let ask = |q: &[u8]| {
        sock.send_to(q, ("127.0.0.1", port)).expect("send");
        let mut buf = [0u8; 2048];
        let n = sock.recv(&mut buf).expect("reply");
        hickory_proto::op::Message::from_vec(&buf[..n]).expect("decode")
    };
    let new_q = Q::new("new.example.com.", RecordType::A).bytes();
    assert!(ask(&new_q).answers.is_empty());

    std::fs::write(
        &file,
        format!("{ZONE}[[records]]\nname = \"new\"\ntype = \"A\"\nvalue = \"bad\"\n"),
    )
    .expect("write");
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    let line = wait_for("reload rejected");
    assert!(line.contains("example.com.toml:11:9"), "{line}");
    assert!(ask(&new_q).answers.is_empty(), "old zones keep serving");

    std::fs::write(
        &file,
        format!("{ZONE}[[records]]\nname = \"new\"\ntype = \"A\"\nvalue = \"192.0.2.9\"\n"),
    )
    .expect("write");
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    wait_for("zones reloaded");
    assert_eq!(answer_strings(&ask(&new_q)), ["192.0.2.9"]);
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(
        child.wait().expect("wait").success(),
        "clean exit on SIGTERM"
    );
}
