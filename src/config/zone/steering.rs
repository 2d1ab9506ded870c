//! Raw zone file → validated [`Zone`]: the steering half (GeoIP, datacenters, services,
//! latency table).

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::model::*;
use super::raw::*;
use super::validate::ttl_value;
use crate::config::Name;
use crate::config::codes;
use crate::config::error::Collector;

/// Most datacenters a service may list (the policy engine keeps lists inline).
pub const MAX_SERVICE_DCS: usize = 64;
/// Most datacenters one answer may name.
pub const MAX_ANSWERS: usize = 16;

pub(crate) fn build(c: &mut Collector<'_>, file: &Path, raw: &RawZone, zone: &mut Zone) {
    // Datacenters first: everything else refers to them by name.
    for (name, dc) in &raw.datacenters {
        zone.datacenters.push(datacenter(c, name, dc));
    }
    if let Some(g) = &raw.geoip {
        zone.geoip = geoip(c, file, g, zone);
    }
    let mut seen = HashSet::new();
    for s in &raw.services {
        if let Some(svc) = service(c, s, zone) {
            if !seen.insert(svc.name.clone()) {
                c.err(
                    &s.get_ref().name.span(),
                    &format!("service {:?}", s.get_ref().name.get_ref()),
                    "duplicate service name",
                );
            }
            zone.services.push(svc);
        }
    }
    for l in &raw.latency {
        let r = l.get_ref();
        let clients = client_set(c, &r.clients, "latency row");
        let mut rtt_ms = Vec::new();
        for (dc, ms) in &r.rtt {
            let Some(id) = dc_ref(c, zone, dc, "latency row") else {
                continue;
            };
            let v = *ms.get_ref();
            if !(v.is_finite() && v >= 0.0) {
                c.err(
                    &ms.span(),
                    "latency row",
                    "rtt must be a number of milliseconds ≥ 0",
                );
                continue;
            }
            rtt_ms.push((id, v));
        }
        zone.latency.push(LatencyRule { clients, rtt_ms });
    }
}

fn dc_ref(c: &mut Collector<'_>, zone: &Zone, name: &Spanned<String>, item: &str) -> Option<DcId> {
    let id = zone.datacenter_id(name.get_ref());
    if id.is_none() {
        let known: Vec<&str> = zone.datacenters.iter().map(|d| d.name.as_str()).collect();
        c.err(
            &name.span(),
            item,
            format!(
                "unknown datacenter {:?} (known: {})",
                name.get_ref(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    id
}

fn dc_list(c: &mut Collector<'_>, zone: &Zone, names: &[Spanned<String>], item: &str) -> Vec<DcId> {
    let mut out = Vec::new();
    for n in names {
        if let Some(id) = dc_ref(c, zone, n, item) {
            if out.contains(&id) {
                c.err(&n.span(), item, "datacenter listed twice");
            } else {
                out.push(id);
            }
        }
    }
    out
}

fn code(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    item: &str,
    ok: fn(&str) -> bool,
    what: &str,
) -> Option<String> {
    let v = v.as_ref()?;
    let s = v.get_ref().trim().to_ascii_uppercase();
    if ok(&s) {
        Some(s)
    } else {
        c.err(&v.span(), item, format!("bad {what} code"));
        None
    }
}

fn point(
    c: &mut Collector<'_>,
    lat: &Spanned<f64>,
    lon: &Spanned<f64>,
    item: &str,
) -> Option<GeoPoint> {
    let (la, lo) = (*lat.get_ref(), *lon.get_ref());
    let mut ok = true;
    if !(-90.0..=90.0).contains(&la) {
        c.err(&lat.span(), item, "latitude must be within -90..=90");
        ok = false;
    }
    if !(-180.0..=180.0).contains(&lo) {
        c.err(&lon.span(), item, "longitude must be within -180..=180");
        ok = false;
    }
    ok.then_some(GeoPoint { lat: la, lon: lo })
}

/// The location keys shared by `geoip.default` and `[[geoip.nets]]`.
struct LocFields<'a> {
    country: &'a Option<Spanned<String>>,
    continent: &'a Option<Spanned<String>>,
    subdivision: &'a Option<Spanned<String>>,
    eu: Option<bool>,
    lat: &'a Option<Spanned<f64>>,
    lon: &'a Option<Spanned<f64>>,
}

fn location(
    c: &mut Collector<'_>,
    span: &Range<usize>,
    item: &str,
    f: LocFields<'_>,
) -> LocationSpec {
    let LocFields {
        country,
        continent,
        subdivision,
        eu,
        lat,
        lon,
    } = f;
    let point = match (lat, lon) {
        (Some(la), Some(lo)) => point(c, la, lo, item),
        (None, None) => None,
        _ => {
            c.err(span, item, "give both `lat` and `lon`, or neither");
            None
        }
    };
    let country = code(c, country, item, codes::is_country_code, "country");
    LocationSpec {
        eu: eu.or_else(|| country.as_deref().map(codes::is_eu_member)),
        country,
        continent: code(c, continent, item, codes::is_continent_code, "continent"),
        subdivision: code(
            c,
            subdivision,
            item,
            codes::is_subdivision_code,
            "subdivision",
        ),
        point,
    }
}

fn geoip(c: &mut Collector<'_>, file: &Path, g: &RawGeoip, zone: &Zone) -> GeoipConfig {
    let database = g.database.as_ref().map(|d| {
        let p = Path::new(d.get_ref());
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            file.parent().unwrap_or(Path::new(".")).join(p)
        };
        if !full.is_file() {
            c.err(&d.span(), "geoip.database", "no such file");
        }
        full
    });
    let default = g.default.as_ref().map(|d| {
        let r = d.get_ref();
        location(
            c,
            &d.span(),
            "geoip.default",
            LocFields {
                country: &r.country,
                continent: &r.continent,
                subdivision: &r.subdivision,
                eu: r.eu,
                lat: &r.lat,
                lon: &r.lon,
            },
        )
    });
    let mut nets = Vec::new();
    let mut seen = HashSet::new();
    for n in &g.nets {
        let r = n.get_ref();
        let item = format!("[[geoip.nets]] {:?}", r.cidr.get_ref());
        let net = match parse_net(r.cidr.get_ref()) {
            Ok(net) => net,
            Err(e) => {
                c.err(&r.cidr.span(), &item, e);
                continue;
            }
        };
        if !seen.insert(net) {
            c.err(&r.cidr.span(), &item, "network listed twice");
        }
        let has_loc = r.country.is_some()
            || r.continent.is_some()
            || r.subdivision.is_some()
            || r.lat.is_some()
            || r.lon.is_some()
            || r.eu.is_some();
        let target = match (&r.datacenter, &r.datacenters, has_loc) {
            (Some(d), None, false) => {
                NetTarget::Datacenters(dc_list(c, zone, std::slice::from_ref(d), &item))
            }
            (None, Some(ds), false) if !ds.is_empty() => {
                NetTarget::Datacenters(dc_list(c, zone, ds, &item))
            }
            (None, None, true) => NetTarget::Location(location(
                c,
                &n.span(),
                &item,
                LocFields {
                    country: &r.country,
                    continent: &r.continent,
                    subdivision: &r.subdivision,
                    eu: r.eu,
                    lat: &r.lat,
                    lon: &r.lon,
                },
            )),
            _ => {
                c.err(
                    &n.span(),
                    &item,
                    "an override maps to a location (country, continent, subdivision, eu, lat, lon) \
                     or to `datacenter`/`datacenters`, exactly one of the two",
                );
                continue;
            }
        };
        nets.push(NetOverride { net, target });
    }
    GeoipConfig {
        database,
        default,
        nets,
    }
}

/// Parses `a.b.c.d/n` or an address (a host route); host bits must be zero.
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net: IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => return Err(format!("bad network {s:?}: expected ADDRESS/PREFIX")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "bad network {s:?}: bits are set beyond the prefix (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

fn datacenter(
    c: &mut Collector<'_>,
    name: &Spanned<String>,
    dc: &Spanned<RawDatacenter>,
) -> Datacenter {
    let item = format!("datacenter {:?}", name.get_ref());
    if name.get_ref().is_empty()
        || !name
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        c.err(
            &name.span(),
            &item,
            "bad datacenter name: use letters, digits, '-' and '_'",
        );
    }
    let r = dc.get_ref();
    let mut addresses = Vec::new();
    for a in &r.addresses {
        match a.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) if !addresses.contains(&ip) => addresses.push(ip),
            Ok(_) => c.err(&a.span(), &item, "address listed twice"),
            Err(_) => c.err(
                &a.span(),
                &item,
                "bad address: expected an IPv4 or IPv6 address",
            ),
        }
    }
    if r.addresses.is_empty() {
        c.err(
            &name.span(),
            &item,
            "a datacenter needs at least one address",
        );
    }
    let location = r
        .location
        .as_ref()
        .and_then(|l| point(c, &l.get_ref().lat, &l.get_ref().lon, &item));
    let bias = match &r.bias {
        Some(b) if !(-99.0..=99.0).contains(b.get_ref()) => {
            c.err(&b.span(), &item, "bias must be within -99..=99");
            0.0
        }
        Some(b) => *b.get_ref(),
        None => 0.0,
    };
    let shed = match (&r.shed_at, &r.shed_keep) {
        (None, None) => None,
        (None, Some(k)) => {
            c.err(&k.span(), &item, "`shed_keep` needs `shed_at`");
            None
        }
        (Some(at), keep) => {
            let a = *at.get_ref();
            if !(a > 0.0 && a.is_finite()) {
                c.err(
                    &at.span(),
                    &item,
                    "shed_at must be a load above 0 (1.0 = full)",
                );
            }
            let keep = keep.as_ref().map(|k| {
                let v = *k.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    c.err(&k.span(), &item, "shed_keep must be a share within 0..=1");
                }
                v
            });
            Some(Shed { at: a, keep })
        }
    };
    Datacenter {
        name: name.get_ref().clone(),
        addresses,
        location,
        country: code(c, &r.country, &item, codes::is_country_code, "country"),
        continent: code(
            c,
            &r.continent,
            &item,
            codes::is_continent_code,
            "continent",
        ),
        jurisdiction: r
            .jurisdiction
            .as_ref()
            .map(|j| j.get_ref().trim().to_string()),
        check: r.check.as_ref().and_then(|ch| check(c, ch, &item)),
        bias,
        shed,
    }
}

pub(crate) fn duration(c: &mut Collector<'_>, v: &Spanned<String>, item: &str) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if d > Duration::ZERO => Some(d),
        Ok(_) => {
            c.err(&v.span(), item, "duration must be above zero");
            None
        }
        Err(e) => {
            c.err(
                &v.span(),
                item,
                format!("bad duration ({e}); e.g. \"500ms\", \"2s\""),
            );
            None
        }
    }
}

fn small_count(c: &mut Collector<'_>, v: &Option<Spanned<i64>>, item: &str, default: u32) -> u32 {
    match v {
        None => default,
        Some(v) if (1..=100).contains(v.get_ref()) => *v.get_ref() as u32,
        Some(v) => {
            c.err(&v.span(), item, "must be within 1..=100");
            default
        }
    }
}

fn check(c: &mut Collector<'_>, ch: &Spanned<RawCheck>, dc_item: &str) -> Option<CheckSpec> {
    let r = ch.get_ref();
    let item = format!("{dc_item} check");
    let target = match (&r.url, &r.tcp) {
        (Some(u), None) => {
            let s = u.get_ref().trim();
            match reqwest::Url::parse(s) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    CheckTarget::Http(s.to_string())
                }
                _ => {
                    c.err(
                        &u.span(),
                        &item,
                        "bad url: expected http://HOST[:PORT]/PATH or https://...",
                    );
                    return None;
                }
            }
        }
        (None, Some(t)) => {
            let s = t.get_ref().trim();
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                c.err(&t.span(), &item, "bad tcp target: expected HOST:PORT");
                return None;
            }
            CheckTarget::Tcp(s.to_string())
        }
        _ => {
            c.err(
                &ch.span(),
                &item,
                "a check needs exactly one of `url` or `tcp`",
            );
            return None;
        }
    };
    let interval = r
        .interval
        .as_ref()
        .and_then(|v| duration(c, v, &item))
        .unwrap_or(DEFAULT_CHECK_INTERVAL);
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|v| duration(c, v, &item))
        .unwrap_or(DEFAULT_CHECK_TIMEOUT.min(interval * 4 / 5));
    if timeout >= interval {
        let span = r.timeout.as_ref().map_or(ch.span(), |t| t.span());
        c.err(&span, &item, "timeout must be shorter than the interval");
    }
    let jitter = match &r.jitter {
        None => DEFAULT_JITTER,
        Some(j) if (0.0..=0.5).contains(j.get_ref()) => *j.get_ref(),
        Some(j) => {
            c.err(&j.span(), &item, "jitter is a share within 0..=0.5");
            DEFAULT_JITTER
        }
    };
    let expect_status = match &r.expect_status {
        None => 200,
        Some(s) if (100..=599).contains(s.get_ref()) => *s.get_ref() as u16,
        Some(s) => {
            c.err(
                &s.span(),
                &item,
                "expect_status must be an HTTP status 100..=599",
            );
            200
        }
    };
    let min_healthy = r.min_healthy.as_ref().and_then(|m| match m.get_ref() {
        CountOrShare::Count(n) if (0..=i64::from(u32::MAX)).contains(n) => {
            Some(MinHealthy::Count(*n as u32))
        }
        CountOrShare::Share(s) if (0.0..=1.0).contains(s) => Some(MinHealthy::Share(*s)),
        _ => {
            c.err(
                &m.span(),
                &item,
                "min_healthy is a count (integer) or a share within 0.0..=1.0 (float)",
            );
            None
        }
    });
    let initial_up = match &r.initial {
        None => true,
        Some(s) => match s.get_ref().as_str() {
            "up" => true,
            "down" => false,
            _ => {
                c.err(&s.span(), &item, "initial is \"up\" or \"down\"");
                true
            }
        },
    };
    if (r.body.is_some() || r.expect_status.is_some() || r.min_healthy.is_some())
        && matches!(target, CheckTarget::Tcp(_))
    {
        c.err(
            &ch.span(),
            &item,
            "expect_status, body and min_healthy need an HTTP check (`url`)",
        );
    }
    Some(CheckSpec {
        target,
        interval,
        timeout,
        rise: small_count(c, &r.rise, &item, DEFAULT_RISE),
        fall: small_count(c, &r.fall, &item, DEFAULT_FALL),
        jitter,
        expect_status,
        body: r.body.as_ref().map(|b| b.get_ref().clone()),
        min_healthy,
        initial_up,
    })
}

/// Parses a client description: `EU`, `continent:XX`, `XX` (country), `XX-YYY`
/// (subdivision) or a CIDR.
pub(crate) fn client_match(s: &str) -> Result<ClientMatch, String> {
    let s = s.trim();
    if let Some(cont) = s.strip_prefix("continent:") {
        let cont = cont.to_ascii_uppercase();
        return if codes::is_continent_code(&cont) {
            Ok(ClientMatch::Continent(cont))
        } else {
            Err(format!("bad continent code {cont:?}"))
        };
    }
    if let Some(cc) = s.strip_prefix("country:") {
        let cc = cc.to_ascii_uppercase();
        return if codes::is_country_code(&cc) {
            Ok(ClientMatch::Country(cc))
        } else {
            Err(format!("bad country code {cc:?}"))
        };
    }
    if s.contains('/') || s.contains(':') || s.parse::<IpAddr>().is_ok() {
        return parse_net(s).map(ClientMatch::Net);
    }
    let up = s.to_ascii_uppercase();
    if up == "EU" {
        Ok(ClientMatch::Eu)
    } else if codes::is_country_code(&up) {
        Ok(ClientMatch::Country(up))
    } else if codes::is_subdivision_code(&up) {
        Ok(ClientMatch::Subdivision(up))
    } else {
        Err(format!(
            "bad client set {s:?}: expected EU, a country (DE), a subdivision (US-CA), \
             continent:XX or a CIDR"
        ))
    }
}

fn client_set(c: &mut Collector<'_>, v: &Spanned<OneOrMany>, item: &str) -> ClientSet {
    let mut out = Vec::new();
    for s in v.get_ref().items() {
        match client_match(s) {
            Ok(m) => out.push(m),
            Err(e) => c.err(&v.span(), item, e),
        }
    }
    if out.is_empty() {
        c.err(&v.span(), item, "`clients` is empty");
    }
    ClientSet(out)
}

fn service(c: &mut Collector<'_>, s: &Spanned<RawService>, zone: &Zone) -> Option<Service> {
    let r = s.get_ref();
    let item = format!("service {:?}", r.name.get_ref());
    let name = match Name::parse_in(r.name.get_ref(), &zone.origin) {
        Ok(n) if n.is_within(&zone.origin) => n,
        Ok(_) => {
            c.err(
                &r.name.span(),
                &item,
                format!("name is outside the zone's origin {}", zone.origin),
            );
            return None;
        }
        Err(e) => {
            c.err(&r.name.span(), &item, e);
            return None;
        }
    };
    let ttl = r.ttl.as_ref().map_or(zone.ttl, |t| ttl_value(c, t, &item));
    let failover_ttl = r
        .failover_ttl
        .as_ref()
        .map_or(ttl.min(10), |t| ttl_value(c, t, &item));
    let policy = match r.policy.as_ref().map(|p| (p, p.get_ref().as_str())) {
        None => Policy::Geo,
        Some((_, "geo")) => Policy::Geo,
        Some((_, "latency")) => Policy::Latency,
        Some((_, "failover")) => Policy::Failover,
        Some((_, "weighted")) => Policy::Weighted,
        Some((_, "consistent-hash")) => Policy::ConsistentHash,
        Some((p, _)) => {
            c.err(
                &p.span(),
                &item,
                "unknown policy: expected geo, latency, failover, weighted or consistent-hash",
            );
            Policy::Geo
        }
    };
    let datacenters = dc_list(c, zone, r.datacenters.get_ref(), &item);
    if r.datacenters.get_ref().is_empty() {
        c.err(
            &r.datacenters.span(),
            &item,
            "a service needs at least one datacenter",
        );
    }
    if datacenters.len() > MAX_SERVICE_DCS {
        c.err(
            &r.datacenters.span(),
            &item,
            format!("a service lists at most {MAX_SERVICE_DCS} datacenters"),
        );
    }
    let answers = match &r.answers {
        None => 1,
        Some(a)
            if *a.get_ref() >= 1
                && (*a.get_ref() as usize) <= datacenters.len().clamp(1, MAX_ANSWERS) =>
        {
            *a.get_ref() as usize
        }
        Some(a) => {
            c.err(
                &a.span(),
                &item,
                format!(
                    "answers must be within 1..={}",
                    datacenters.len().clamp(1, MAX_ANSWERS)
                ),
            );
            1
        }
    };
    let in_service = |c: &mut Collector<'_>, ids: &[DcId], span: &Range<usize>, what: &str| {
        for id in ids {
            if !datacenters.contains(id) {
                c.err(
                    span,
                    &item,
                    format!(
                        "{what} names datacenter {:?}, which is not in the service's list",
                        zone.datacenters[*id].name
                    ),
                );
            }
        }
    };
    let mut sovereignty = Vec::new();
    for f in &r.sovereignty {
        let fr = f.get_ref();
        let clients = client_set(c, &fr.clients, &item);
        let dcs = dc_list(c, zone, &fr.datacenters, &item);
        if fr.datacenters.is_empty() {
            c.err(
                &f.span(),
                &item,
                "a sovereignty rule needs at least one datacenter",
            );
        }
        in_service(c, &dcs, &f.span(), "sovereignty rule");
        sovereignty.push(Fence {
            clients,
            datacenters: dcs,
        });
    }
    let on_all_down = match r.on_all_down.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "fail-open")) => AllDown::FailOpen,
        Some((_, "nodata")) => AllDown::NoData,
        Some((v, _)) => {
            c.err(
                &v.span(),
                &item,
                "on_all_down is \"fail-open\" or \"nodata\"",
            );
            AllDown::FailOpen
        }
    };
    let default = r.default.as_ref().and_then(|d| {
        let id = dc_ref(c, zone, d, &item)?;
        in_service(c, &[id], &d.span(), "default");
        Some(id)
    });
    let mut weights = vec![1u32; datacenters.len()];
    if let Some(w) = &r.weights {
        for (dc, weight) in w {
            let Some(id) = dc_ref(c, zone, dc, &item) else {
                continue;
            };
            let Some(pos) = datacenters.iter().position(|d| *d == id) else {
                in_service(c, &[id], &dc.span(), "weights");
                continue;
            };
            match u32::try_from(*weight.get_ref()) {
                Ok(v) if v <= 1_000_000 => weights[pos] = v,
                _ => c.err(&weight.span(), &item, "weight must be within 0..=1000000"),
            }
        }
    }
    let geo = r.geo.as_ref().map_or_else(GeoMap::default, |g| {
        let map = |c: &mut Collector<'_>,
                   m: &std::collections::BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
                   ok: fn(&str) -> bool,
                   what: &str| {
            let mut out = Vec::new();
            for (k, v) in m {
                let key = k.get_ref().trim().to_ascii_uppercase();
                if !ok(&key) {
                    c.err(&k.span(), &item, format!("bad {what} code in geo map"));
                    continue;
                }
                let ids = dc_list(c, zone, v, &item);
                in_service(c, &ids, &k.span(), "geo map");
                out.push((key, ids));
            }
            out
        };
        GeoMap {
            subdivisions: map(
                c,
                &g.subdivisions,
                codes::is_subdivision_code,
                "subdivision",
            ),
            countries: map(c, &g.countries, codes::is_country_code, "country"),
            continents: map(c, &g.continents, codes::is_continent_code, "continent"),
        }
    });
    let mut hash_prefix = (24u8, 56u8);
    if let Some(h) = &r.hash_prefix {
        let hr = h.get_ref();
        if let Some(v4) = &hr.v4 {
            match u8::try_from(*v4.get_ref()) {
                Ok(v) if v <= 32 => hash_prefix.0 = v,
                _ => c.err(&v4.span(), &item, "hash_prefix.v4 must be within 0..=32"),
            }
        }
        if let Some(v6) = &hr.v6 {
            match u8::try_from(*v6.get_ref()) {
                Ok(v) if v <= 128 => hash_prefix.1 = v,
                _ => c.err(&v6.span(), &item, "hash_prefix.v6 must be within 0..=128"),
            }
        }
    }
    if policy == Policy::Weighted && !weights.is_empty() && weights.iter().all(|w| *w == 0) {
        c.err(
            &s.span(),
            &item,
            "every weight is 0: nothing could ever be drawn",
        );
    }
    Some(Service {
        name,
        ttl,
        failover_ttl,
        policy,
        datacenters,
        answers,
        sovereignty,
        on_all_down,
        default,
        weights,
        geo,
        hash_prefix,
    })
}
