//! `meridian geoip build`: a GeoLite2-City-shaped MaxMind DB from a CSV file.
//!
//! The CSV has a header row naming its columns (any order; `#` starts a comment line):
//!
//! | column | required | value |
//! | --- | --- | --- |
//! | `network` | yes | CIDR, host bits zero (`81.2.69.0/24`, `2001:218::/32`) |
//! | `country` (or `country_iso`) | yes, may be empty | ISO 3166-1 alpha-2 |
//! | `continent` | yes, may be empty | AF AN AS EU NA OC SA |
//! | `eu` (or `is_eu`) | yes, may be empty | `1`/`0`/`true`/`false`; empty: from the country |
//! | `lat`, `lon` | yes, may both be empty | degrees |
//! | `subdivision` | no | `US-CA` or `CA` (ISO 3166-2, needs the country) |
//! | `city` | no | English city name |
//!
//! Records carry what GeoLite2-City readers look for: `continent.code`/`names.en`,
//! `country.iso_code`/`is_in_european_union`, `registered_country` (same as `country`),
//! `location.latitude`/`longitude`, `subdivisions[0].iso_code` and `city.names.en`.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use ipnet::IpNet;

use super::GeoError;
use super::mmdb::{Value, Writer, map};
use crate::config::codes;

/// The `build_epoch` written unless another is asked for: 2026-01-01T00:00:00Z.
pub const DEFAULT_BUILD_EPOCH: u64 = 1_767_225_600;

/// Metadata of a built database.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `database_type` (readers that check it expect `GeoLite2-City`).
    pub database_type: String,
    /// `description.en`.
    pub description: String,
    /// `build_epoch`, seconds since 1970: fixed (not the clock) so that builds are
    /// reproducible; libmaxminddb refuses 0.
    pub build_epoch: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            database_type: "GeoLite2-City".into(),
            description: "Built by meridian geoip build".into(),
            build_epoch: DEFAULT_BUILD_EPOCH,
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSummary {
    /// Networks written.
    pub networks: usize,
    /// Size of the file.
    pub bytes: usize,
}

/// One row of the CSV, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The network.
    pub network: IpNet,
    /// Country code.
    pub country: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// EU membership (given, or derived from the country).
    pub eu: bool,
    /// Latitude and longitude.
    pub point: Option<(f64, f64)>,
    /// Subdivision code without the country part (`CA` for `US-CA`).
    pub subdivision: Option<String>,
    /// City name.
    pub city: Option<String>,
}

/// Reads `csv` and writes the database to `out`.
pub fn build_file(csv: &Path, out: &Path, opts: &BuildOptions) -> Result<BuildSummary, GeoError> {
    let text = fs::read(csv).map_err(|source| GeoError::Io {
        path: csv.to_path_buf(),
        source,
    })?;
    let rows = parse_csv(csv, &text)?;
    let bytes = build_bytes(&rows, opts).map_err(|e| match e {
        (Some(i), message) => GeoError::Csv {
            path: csv.to_path_buf(),
            line: i,
            message,
        },
        (None, message) => GeoError::Write(message),
    })?;
    fs::write(out, &bytes).map_err(|source| GeoError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(BuildSummary {
        networks: rows.len(),
        bytes: bytes.len(),
    })
}

/// The database for `rows` (with their CSV line numbers). Errors carry the line of the row at
/// fault, if any.
pub fn build_bytes(
    rows: &[(u64, Row)],
    opts: &BuildOptions,
) -> Result<Vec<u8>, (Option<u64>, String)> {
    let mut order: Vec<&(u64, Row)> = rows.iter().collect();
    // Shorter prefixes first so that a network nested in another one wins inside it.
    order.sort_by_key(|(_, r)| match r.network {
        IpNet::V4(n) => n.prefix_len() + 96,
        IpNet::V6(n) => n.prefix_len(),
    });
    let mut w = Writer::new(&opts.database_type, &opts.description, opts.build_epoch);
    for (line, row) in order {
        w.insert(row.network, &record(row))
            .map_err(|m| (Some(*line), m))?;
    }
    w.to_bytes().map_err(|e| (None, e.to_string()))
}

/// The GeoLite2-City-shaped record of a row (keys in sorted order, as MaxMind writes them).
pub fn record(row: &Row) -> Value {
    let mut m = Vec::new();
    if let Some(city) = &row.city {
        m.push((
            "city".into(),
            map([("names", map([("en", Value::Str(city.clone()))]))]),
        ));
    }
    if let Some(c) = &row.continent {
        let mut cont = vec![("code".to_string(), Value::Str(c.clone()))];
        if let Some(name) = continent_name(c) {
            cont.push(("names".into(), map([("en", Value::Str(name.into()))])));
        }
        m.push(("continent".into(), Value::Map(cont)));
    }
    let country = row.country.as_ref().map(|cc| {
        let mut c = Vec::new();
        if row.eu {
            c.push(("is_in_european_union".to_string(), Value::Bool(true)));
        }
        c.push(("iso_code".into(), Value::Str(cc.clone())));
        Value::Map(c)
    });
    if let Some(c) = &country {
        m.push(("country".into(), c.clone()));
    }
    if let Some((lat, lon)) = row.point {
        m.push((
            "location".into(),
            map([
                ("latitude", Value::Double(lat)),
                ("longitude", Value::Double(lon)),
            ]),
        ));
    }
    if let Some(c) = country {
        m.push(("registered_country".into(), c));
    }
    if let Some(s) = &row.subdivision {
        m.push((
            "subdivisions".into(),
            Value::Array(vec![map([("iso_code", Value::Str(s.clone()))])]),
        ));
    }
    Value::Map(m)
}

fn continent_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "AF" => "Africa",
        "AN" => "Antarctica",
        "AS" => "Asia",
        "EU" => "Europe",
        "NA" => "North America",
        "OC" => "Oceania",
        "SA" => "South America",
        _ => return None,
    })
}

/// Column positions, from the header.
struct Columns {
    network: usize,
    country: usize,
    continent: usize,
    eu: usize,
    lat: usize,
    lon: usize,
    subdivision: Option<usize>,
    city: Option<usize>,
}

fn columns(path: &Path, header: &csv::StringRecord, line: u64) -> Result<Columns, GeoError> {
    let err = |message: String| GeoError::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut found: [Option<usize>; 8] = [None; 8];
    const NAMES: [&[&str]; 8] = [
        &["network"],
        &["country", "country_iso"],
        &["continent"],
        &["eu", "is_eu"],
        &["lat"],
        &["lon"],
        &["subdivision"],
        &["city"],
    ];
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        let Some(k) = NAMES.iter().position(|names| names.contains(&h)) else {
            return Err(err(format!(
                "unknown column {h:?}; expected network, country, continent, eu, lat, lon, \
                 subdivision, city"
            )));
        };
        if found[k].replace(i).is_some() {
            return Err(err(format!("column {h:?} given twice")));
        }
    }
    let need = |k: usize| found[k].ok_or_else(|| err(format!("missing column {:?}", NAMES[k][0])));
    Ok(Columns {
        network: need(0)?,
        country: need(1)?,
        continent: need(2)?,
        eu: need(3)?,
        lat: need(4)?,
        lon: need(5)?,
        subdivision: found[6],
        city: found[7],
    })
}

/// Parses and validates the CSV text; rows come with their line numbers.
pub fn parse_csv(path: &Path, text: &[u8]) -> Result<Vec<(u64, Row)>, GeoError> {
    let mut rd = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text);
    let csv_err = |e: csv::Error| GeoError::Csv {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    };
    let header = rd.headers().map_err(csv_err)?.clone();
    let header_line = rd.position().line().saturating_sub(1).max(1);
    let cols = columns(path, &header, header_line)?;
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for rec in rd.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line());
        let row = parse_row(&cols, &rec).map_err(|message| GeoError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        })?;
        if !seen.insert(row.network) {
            return Err(GeoError::Csv {
                path: path.to_path_buf(),
                line,
                message: format!("network {} listed twice", row.network),
            });
        }
        rows.push((line, row));
    }
    Ok(rows)
}

fn parse_row(c: &Columns, rec: &csv::StringRecord) -> Result<Row, String> {
    let get = |i: usize| rec.get(i).unwrap_or("");
    let opt = |i: Option<usize>| i.map(get).filter(|s| !s.is_empty());
    let net_s = get(c.network);
    let network: IpNet = net_s
        .parse()
        .map_err(|_| format!("bad network {net_s:?}: expected ADDRESS/PREFIX"))?;
    if network.trunc() != network {
        return Err(format!(
            "bad network {net_s:?}: bits are set beyond the prefix (did you mean {}?)",
            network.trunc()
        ));
    }
    let country = opt(Some(c.country)).map(str::to_string);
    if let Some(cc) = &country
        && !codes::is_country_code(cc)
    {
        return Err(format!(
            "bad country {cc:?}: expected two upper-case letters"
        ));
    }
    let continent = opt(Some(c.continent)).map(str::to_string);
    if let Some(k) = &continent
        && !codes::is_continent_code(k)
    {
        return Err(format!(
            "bad continent {k:?}: expected one of {:?}",
            codes::CONTINENTS
        ));
    }
    let eu = match get(c.eu) {
        "" => country.as_deref().is_some_and(codes::is_eu_member),
        "1" | "true" => true,
        "0" | "false" => false,
        other => {
            return Err(format!(
                "bad eu flag {other:?}: expected 1, 0, true or false"
            ));
        }
    };
    let point = match (get(c.lat), get(c.lon)) {
        ("", "") => None,
        (la, lo) => {
            let la: f64 = la.parse().map_err(|_| format!("bad lat {la:?}"))?;
            let lo: f64 = lo.parse().map_err(|_| format!("bad lon {lo:?}"))?;
            if !(-90.0..=90.0).contains(&la) || !(-180.0..=180.0).contains(&lo) {
                return Err(format!("lat/lon {la}, {lo} out of range"));
            }
            Some((la, lo))
        }
    };
    let subdivision = match opt(c.subdivision) {
        None => None,
        Some(s) => Some(subdivision(s, country.as_deref())?),
    };
    Ok(Row {
        network,
        country,
        continent,
        eu,
        point,
        subdivision,
        city: opt(c.city).map(str::to_string),
    })
}

fn subdivision(s: &str, country: Option<&str>) -> Result<String, String> {
    let Some(cc) = country else {
        return Err(format!("subdivision {s:?} needs a country"));
    };
    let full = if s.contains('-') {
        s.to_string()
    } else {
        format!("{cc}-{s}")
    };
    if !codes::is_subdivision_code(&full) || !full.starts_with(&format!("{cc}-")) {
        return Err(format!(
            "bad subdivision {s:?}: expected an ISO 3166-2 code of {cc}, like {cc}-XX"
        ));
    }
    Ok(full[3..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(u64, Row)>, GeoError> {
        parse_csv(Path::new("t.csv"), text.as_bytes())
    }

    #[test]
    fn rows_parse_with_optional_columns_and_comments() {
        let rows = parse(
            "# demo\nnetwork,country,continent,eu,lat,lon,subdivision,city\n\
             81.2.69.0/24,GB,EU,0,51.5,-0.12,GB-ENG,London\n\
             2001:218::/32,JP,AS,,35.68,139.69,,\n\
             10.0.0.0/8,,,,,,,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0, 3);
        assert_eq!(rows[0].1.subdivision.as_deref(), Some("ENG"));
        assert_eq!(rows[0].1.city.as_deref(), Some("London"));
        assert!(!rows[1].1.eu);
        assert_eq!(rows[2].1.point, None);
    }

    #[test]
    fn synthetic_world_header_is_accepted() {
        let rows = parse(
            "network,country_iso,continent,is_eu,lat,lon\n1.21.94.0/23,DE,EU,1,51.9879,10.0184\n",
        )
        .unwrap();
        assert!(rows[0].1.eu);
    }

    #[test]
    fn errors_name_the_line_and_the_value() {
        let cases = [
            (
                "network,country,continent,eu,lat,lon\n10.0.0.1/8,US,NA,0,1,1\n",
                "10.0.0.1/8",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,usa,NA,0,1,1\n",
                "usa",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,US,XX,0,1,1\n",
                "XX",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,US,NA,2,1,1\n",
                "\"2\"",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,US,NA,0,91,1\n",
                "out of range",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,US,NA,0,1,\n",
                "bad lon",
            ),
            (
                "network,country,continent,eu,lat,lon,subdivision\n10.0.0.0/8,US,NA,0,1,1,DE-BY\n",
                "DE-BY",
            ),
            (
                "network,country,continent,eu,lat,lon\n10.0.0.0/8,US,NA,0,1,1\n10.0.0.0/8,US,NA,0,1,1\n",
                "twice",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("t.csv:"), "{e}");
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        let e = parse("network,country,continent,eu,lat,lon\n10.0.0.0/8,US,NA,0,1,1\n10.0.0.0/8,US,NA,0,1,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.csv:3:"), "{e}");
        let e = parse("network,country,lat,lon\n").unwrap_err().to_string();
        assert!(e.contains("missing column \"continent\""), "{e}");
        let e = parse("network,country,continent,eu,lat,lon,asn\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown column \"asn\""), "{e}");
    }

    #[test]
    fn nested_networks_build_with_the_longer_one_winning() {
        let rows = parse(
            "network,country,continent,eu,lat,lon\n\
             10.1.0.0/16,DE,EU,,50,8\n10.0.0.0/8,US,NA,,40,-100\n",
        )
        .unwrap();
        let bytes = build_bytes(&rows, &BuildOptions::default()).unwrap();
        let r = maxminddb::Reader::from_source(bytes).unwrap();
        let c: maxminddb::geoip2::City<'_> = r
            .lookup("10.1.2.3".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(c.country.iso_code, Some("DE"));
        assert_eq!(c.country.is_in_european_union, Some(true));
        let c: maxminddb::geoip2::City<'_> = r
            .lookup("10.2.2.3".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(c.country.iso_code, Some("US"));
        assert_eq!(c.continent.names.english, Some("North America"));
    }
}
