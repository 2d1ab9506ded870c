//! User-space cost of answering one UDP query, packet bytes in → reply bytes out (parse, zone
//! lookup, steering, encoding), for the three workloads of `../shared/bench/dns`, with their
//! query files when the harness has built them (`~/.cache/meridian-bench-dns/*.bin`), else with
//! queries generated here. The kernel's share (recv/send) is not in these figures.
//!
//! `cargo bench --bench answer`

use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meridian::dns::{Catalog, Zones, answer_into};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Queries of a dnsperf `-B` file (2-byte length, then the message).
fn read_queries(prefix: &str) -> Option<Vec<Vec<u8>>> {
    let dir = PathBuf::from(std::env::var_os("HOME")?).join(".cache/meridian-bench-dns");
    let file = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".bin"))
        })?;
    let bytes = std::fs::read(file).ok()?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let n = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
        out.push(bytes.get(at + 2..at + 2 + n)?.to_vec());
        at += 2 + n;
    }
    Some(out)
}

/// A query for www.geo.example A with an ECS /24 for `net`.
fn query(id: u16, net: [u8; 3]) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(b"\x03www\x03geo\x07example\x00\x00\x01\x00\x01");
    q.extend_from_slice(&[
        0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 1, 24, 0,
    ]);
    q.extend_from_slice(&net);
    q
}

fn generated() -> Vec<Vec<u8>> {
    (0..10_000u32)
        .map(|i| query(i as u16, [(i * 7 % 223 + 1) as u8, (i >> 3) as u8, i as u8]))
        .collect()
}

fn render(template: &str, workload: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/templates/{template}")),
    )
    .expect("template");
    let dcs = [
        ("us-east", "192.0.2.1", "NA"),
        ("eu-west", "198.51.100.1", "EU"),
        ("ap-northeast", "203.0.113.1", "AS"),
    ];
    let block = |text: &str, tag: &str, rows: Vec<Vec<(&str, String)>>| -> String {
        let (open, close) = (format!("{{{{#{tag}}}}}\n"), format!("{{{{/{tag}}}}}\n"));
        let Some(a) = text.find(&open) else {
            return text.to_string();
        };
        let b = text.find(&close).expect("close tag");
        let body = &text[a + open.len()..b];
        let mut out = String::new();
        for row in rows {
            let mut r = body.to_string();
            for (k, v) in row {
                r = r.replace(&format!("{{{{{k}}}}}"), &v);
            }
            out.push_str(&r);
        }
        format!("{}{}{}", &text[..a], out, &text[b + close.len()..])
    };
    let mut t = block(
        &text,
        "DATACENTERS",
        dcs.iter()
            .map(|(d, a, _)| vec![("DATACENTER", d.to_string()), ("ADDRESS", a.to_string())])
            .collect(),
    );
    let mut nets: Vec<Vec<(&str, String)>> = (0..256)
        .map(|n| {
            vec![
                ("CIDR", format!("10.{n}.0.0/16")),
                ("DATACENTER", dcs[n % 3].0.to_string()),
            ]
        })
        .collect();
    nets.push(vec![
        ("CIDR", "172.16.0.0/12".into()),
        ("DATACENTER", "eu-west".into()),
    ]);
    nets.push(vec![
        ("CIDR", "192.168.0.0/16".into()),
        ("DATACENTER", "ap-northeast".into()),
    ]);
    t = block(&t, "NETS", nets);
    let conts = [
        ("EU", "eu-west"),
        ("NA", "us-east"),
        ("SA", "us-east"),
        ("AS", "ap-northeast"),
        ("OC", "ap-northeast"),
        ("AF", "eu-west"),
    ];
    t = block(
        &t,
        "CONTINENTS",
        conts
            .iter()
            .map(|(c, d)| vec![("CONTINENT", c.to_string()), ("DATACENTER", d.to_string())])
            .collect(),
    );
    let _ = workload;
    t.replace(
        "{{MMDB}}",
        &shared()
            .join("testdata/synthetic/world-synthetic.mmdb")
            .display()
            .to_string(),
    )
    .replace("{{DEFAULT_DC}}", "us-east")
}

fn catalog(workload: &str) -> (Zones, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = render(&format!("dns-{workload}.toml.tmpl"), workload);
    std::fs::write(dir.path().join("geo.toml"), text).expect("write");
    let registry = prometheus::Registry::new();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    let board = meridian::probe::HealthBoard::new(&registry).expect("board");
    let metrics = meridian::dns::DnsMetrics::new(&registry).expect("metrics");
    let zones =
        Zones::load(dir.path(), meridian::gslb::steering_factory(board), metrics).expect("zones");
    std::mem::forget(rt);
    (zones, dir)
}

fn run(c: &mut Criterion, workload: &str, queries: &[Vec<u8>]) {
    let (zones, _dir) = catalog(workload);
    let cat: std::sync::Arc<Catalog> = zones.catalog();
    let src = IpAddr::from([127, 0, 0, 1]);
    let mut out = Vec::with_capacity(1500);
    assert!(
        answer_into(&cat, &queries[0], src, 1232, &mut out),
        "answers"
    );
    let mut g = c.benchmark_group("answer");
    g.throughput(Throughput::Elements(1));
    g.bench_function(workload, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % queries.len();
            black_box(answer_into(
                &cat,
                black_box(&queries[i]),
                src,
                1232,
                &mut out,
            ))
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let nets = read_queries("nets-ecs-").unwrap_or_else(generated);
    let world = read_queries("world-ecs-").unwrap_or_else(generated);
    let stat = read_queries("static-noecs-").unwrap_or_else(generated);
    run(c, "static", &stat);
    run(c, "nets", &nets);
    run(c, "world", &world);
}

criterion_group!(benches, bench);
criterion_main!(benches);
