//! `meridian geoip build`: the committed demo database, read-back through the maxminddb crate
//! and through the locator, and the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::IpNet;
use maxminddb::geoip2;
use meridian::config::zone::model::GeoipConfig;
use meridian::geo::build::{BuildOptions, Row, build_bytes, parse_csv};
use meridian::geo::{DatabaseCache, Locator, Origin};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn demo_rows() -> Vec<(u64, Row)> {
    let path = repo("geoip/demo.csv");
    parse_csv(&path, &std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn demo_mmdb_is_exactly_what_the_builder_writes() {
    let built = build_bytes(&demo_rows(), &BuildOptions::default()).unwrap();
    let committed = std::fs::read(repo("geoip/demo.mmdb")).unwrap();
    assert!(
        built == committed,
        "geoip/demo.mmdb is stale: run `meridian geoip build --csv geoip/demo.csv --out geoip/demo.mmdb`"
    );
}

fn hosts(net: IpNet) -> [std::net::IpAddr; 2] {
    [net.network(), net.broadcast()]
}

#[test]
fn every_row_reads_back_identically_with_the_maxminddb_crate() {
    let rows = demo_rows();
    let reader = maxminddb::Reader::open_readfile(repo("geoip/demo.mmdb")).unwrap();
    assert_eq!(reader.metadata().database_type, "GeoLite2-City");
    reader.verify().unwrap();
    for (line, row) in &rows {
        for a in hosts(row.network) {
            let res = reader.lookup(a).unwrap();
            let net = res.network().unwrap();
            assert_eq!(net.prefix(), row.network.prefix_len(), "line {line}: {a}");
            let c: geoip2::City<'_> = res.decode().unwrap().unwrap();
            assert_eq!(c.country.iso_code, row.country.as_deref(), "line {line}");
            assert_eq!(c.registered_country.iso_code, row.country.as_deref());
            assert_eq!(c.continent.code, row.continent.as_deref());
            assert_eq!(c.country.is_in_european_union.unwrap_or(false), row.eu);
            let point = c.location.latitude.zip(c.location.longitude);
            assert_eq!(point, row.point, "line {line}");
            let sub = c.subdivisions.first().and_then(|s| s.iso_code);
            assert_eq!(sub, row.subdivision.as_deref());
            assert_eq!(c.city.names.english, row.city.as_deref());
        }
    }
    // IPv4-mapped and 6to4 forms reach the IPv4 records in the crate too.
    let mapped: geoip2::Country<'_> = reader
        .lookup("::ffff:8.8.8.8".parse().unwrap())
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(mapped.country.iso_code, Some("US"));
}

#[test]
fn every_row_reads_back_identically_through_the_locator() {
    let config = GeoipConfig {
        database: Some(repo("geoip/demo.mmdb")),
        ..Default::default()
    };
    let l = Locator::new(&config, &mut DatabaseCache::new()).unwrap();
    for (line, row) in demo_rows() {
        for a in hosts(row.network) {
            let hit = l.locate(a);
            let loc = l.location(hit.loc);
            assert_eq!(loc.origin, Origin::Database, "line {line}");
            assert_eq!(loc.country.as_deref(), row.country.as_deref());
            assert_eq!(loc.continent.as_deref(), row.continent.as_deref());
            assert_eq!(loc.eu, row.eu);
            assert_eq!(loc.point.map(|p| (p.lat, p.lon)), row.point);
            let full = row
                .subdivision
                .as_ref()
                .map(|s| format!("{}-{s}", row.country.as_deref().unwrap()));
            assert_eq!(loc.subdivision.as_deref(), full.as_deref());
            assert!(hit.scope <= row.network.prefix_len(), "line {line}");
        }
    }
}

#[test]
fn the_command_line_builds_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let out = dir.path().join("out.mmdb");
    std::fs::write(
        &csv,
        "network,country,continent,eu,lat,lon\n192.0.2.0/24,FR,EU,1,48.86,2.35\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_meridian");
    let run = |args: &[&Path]| {
        let mut cmd = Command::new(bin);
        cmd.args(["geoip", "build", "--csv"])
            .arg(args[0])
            .arg("--out")
            .arg(args[1]);
        cmd.output().unwrap()
    };
    let ok = run(&[&csv, &out]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 networks"));
    let r = maxminddb::Reader::open_readfile(&out).unwrap();
    let c: geoip2::Country<'_> = r
        .lookup("192.0.2.1".parse().unwrap())
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(c.country.iso_code, Some("FR"));

    std::fs::write(
        &csv,
        "network,country,continent,eu,lat,lon\n192.0.2.0/24,France,EU,1,48.86,2.35\n",
    )
    .unwrap();
    let bad = run(&[&csv, &out]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("in.csv:2:") && err.contains("\"France\""),
        "{err}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    /// Random disjoint networks with random places read back field for field.
    #[test]
    fn random_rows_read_back_identically(
        raw in proptest::collection::vec(
            (proptest::prelude::any::<u128>(), 8u8..=32, proptest::prelude::any::<bool>(),
             0usize..4, -90.0f64..90.0, -180.0f64..180.0, proptest::prelude::any::<bool>()),
            1..40)
    ) {
        let places = [("DE", "EU", Some("BY")), ("US", "NA", Some("CA")), ("JP", "AS", None), ("BR", "SA", None)];
        let mut text = String::from("network,country,continent,eu,lat,lon,subdivision,city\n");
        let mut taken: Vec<IpNet> = Vec::new();
        for (bits, len, v6, place, lat, lon, city) in raw {
            let net: IpNet = if v6 {
                // 2400::/6 .. : clear of the IPv4 alias ranges.
                let a = (0x24u128 << 120) | (bits >> 8);
                IpNet::new(std::net::Ipv6Addr::from(a).into(), len + 16).unwrap().trunc()
            } else {
                IpNet::new(std::net::Ipv4Addr::from(bits as u32).into(), len).unwrap().trunc()
            };
            if taken.iter().any(|t| t.contains(&net) || net.contains(t)) {
                continue;
            }
            taken.push(net);
            let (cc, cont, sub) = places[place];
            text.push_str(&format!(
                "{net},{cc},{cont},,{lat},{lon},{},{}\n",
                sub.unwrap_or(""),
                if city { "Zürich, \"Old Town\"" } else { "" }
            ).replace("Zürich, \"Old Town\"", "\"Zürich, \"\"Old Town\"\"\""));
        }
        let rows = parse_csv(Path::new("r.csv"), text.as_bytes()).unwrap();
        let bytes = build_bytes(&rows, &BuildOptions::default()).unwrap();
        let reader = maxminddb::Reader::from_source(bytes).unwrap();
        for (_, row) in &rows {
            for a in hosts(row.network) {
                let res = reader.lookup(a).unwrap();
                proptest::prop_assert_eq!(res.network().unwrap().prefix(), row.network.prefix_len());
                let c: geoip2::City<'_> = res.decode().unwrap().unwrap();
                proptest::prop_assert_eq!(c.country.iso_code, row.country.as_deref());
                proptest::prop_assert_eq!(c.continent.code, row.continent.as_deref());
                proptest::prop_assert_eq!(c.country.is_in_european_union.unwrap_or(false), row.eu);
                proptest::prop_assert_eq!(c.location.latitude.zip(c.location.longitude), row.point);
                proptest::prop_assert_eq!(c.subdivisions.first().and_then(|s| s.iso_code), row.subdivision.as_deref());
                proptest::prop_assert_eq!(c.city.names.english, row.city.as_deref());
            }
        }
    }
}
