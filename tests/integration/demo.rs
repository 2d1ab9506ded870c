//! `meridian demo` as a newcomer runs it: every `dig` and `curl` line of the printed guide
//! gives what the guide says, in order.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::dns::{Q, answer_strings};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Runs `dig @HOST -p PORT NAME +short +subnet=NET` and returns what it would print.
async fn dig(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let host: IpAddr = words[1].trim_start_matches('@').parse().expect("server");
    let port: u16 = words[3].parse().expect("port");
    let name = words[4];
    let subnet = words
        .iter()
        .find_map(|w| w.strip_prefix("+subnet="))
        .expect("subnet");
    let q = Q::new(&format!("{name}."), RecordType::A)
        .ecs(subnet)
        .bytes();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.send_to(&q, SocketAddr::new(host, port))
        .await
        .expect("send");
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("a DNS reply")
        .expect("recv");
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).expect("reply");
    answer_strings(&m).join("\n")
}

/// Runs `curl -s [-X POST -H 'K: V'] URL [-d 'BODY']` and returns the body.
async fn curl(line: &str) -> String {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url");
    let quoted: Vec<&str> = line.split('\'').collect();
    let req = if line.contains("-X POST") {
        let (k, v) = quoted[1].split_once(": ").expect("header");
        client.post(url).header(k, v).body(quoted[3].to_string())
    } else {
        client.get(url)
    };
    let r = req.send().await.expect("HTTP request");
    r.text().await.expect("body").trim().to_string()
}

#[tokio::test]
async fn every_line_of_the_guide_gives_what_it_says() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (dns, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .current_dir(root)
        .args(["demo", "--dns", &format!("127.0.0.1:{dns}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let guide = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("guide line");
            let done = line.contains("Ctrl-C stops everything");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let guide = tokio::time::timeout(Duration::from_secs(60), guide)
        .await
        .expect("the demo printed its guide within a minute")
        .expect("reader");
    let mut steps = 0;
    let mut expect: Option<String> = None;
    for line in &guide {
        let t = line.trim();
        if let Some(note) = t.strip_prefix("# ") {
            let want = note
                .rsplit_once("(prints ")
                .map(|(_, w)| w.trim_end_matches(')').to_string());
            expect = want;
            continue;
        }
        let got = if t.starts_with("dig ") {
            dig(t).await
        } else if t.starts_with("curl ") {
            curl(t).await
        } else {
            continue;
        };
        let want = expect.take().expect("every command follows its comment");
        assert_eq!(got, want, "`{t}`");
        steps += 1;
    }
    assert!(
        steps >= 10,
        "the guide has its dig and curl lines: {guide:#?}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "the demo stops cleanly: {status}");
}
