//! Raw zone file → validated [`Zone`]: the records half (origin, SOA, NS, static records).

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use toml::Spanned;

use super::model::{Record, RecordData, Soa, Zone};
use super::raw::{RawRecord, RawSoa, RawZone};
use super::steering;
use crate::config::Name;
use crate::config::error::{Collector, ConfigError, Source};

/// Largest TTL allowed (RFC 2181 §8).
pub(crate) const MAX_TTL: i64 = 0x7fff_ffff;

/// Parses and validates one zone file's text.
pub fn parse_zone(file: &Path, text: &str) -> Result<Zone, ConfigError> {
    let src = Source::new(file, text);
    let raw: RawZone = toml::from_str(text).map_err(|e| ConfigError::single(src.from_toml(&e)))?;
    let mut c = Collector::new(&src);
    let zone = build(&mut c, file, raw);
    match zone {
        Some(z) => c.finish(z),
        None => Err(ConfigError {
            diagnostics: c.found,
        }),
    }
}

fn build(c: &mut Collector<'_>, file: &Path, raw: RawZone) -> Option<Zone> {
    let origin = match Name::parse_absolute(raw.origin.get_ref()) {
        Ok(n) if !n.is_root() => n,
        Ok(_) => {
            c.err(&raw.origin.span(), "origin", "the root cannot be served");
            return None;
        }
        Err(e) => {
            c.err(&raw.origin.span(), "origin", e);
            return None;
        }
    };
    check_origin_matches_file(c, file, &origin, &raw.origin);
    let ttl = raw
        .ttl
        .as_ref()
        .map_or(300, |t| ttl_value(c, t, "zone ttl"));
    let soa = soa(c, &origin, &raw.soa, file);
    let mut nameservers = Vec::new();
    if raw.nameservers.is_empty() {
        c.err(
            &raw.origin.span(),
            "nameservers",
            "a zone needs at least one name server in `nameservers`",
        );
    }
    for ns in &raw.nameservers {
        match Name::parse_in(ns.get_ref(), &origin) {
            Ok(n) => nameservers.push(n),
            Err(e) => c.err(&ns.span(), "nameservers", e),
        }
    }
    let mut records = Vec::new();
    for r in &raw.records {
        records.extend(record(c, &origin, ttl, r));
    }
    let mut zone = Zone {
        file: file.to_path_buf(),
        origin,
        ttl,
        soa,
        nameservers,
        records,
        geoip: Default::default(),
        datacenters: Vec::new(),
        services: Vec::new(),
        latency: Vec::new(),
    };
    steering::build(c, file, &raw, &mut zone);
    check_names(c, &raw, &zone);
    Some(zone)
}

/// A file named like a domain (`example.com.toml`) must declare that origin.
fn check_origin_matches_file(
    c: &mut Collector<'_>,
    file: &Path,
    origin: &Name,
    raw: &Spanned<String>,
) {
    let Some(stem) = file.file_stem().and_then(|s| s.to_str()) else {
        return;
    };
    if !stem.contains('.') {
        return;
    }
    if let Ok(from_file) = Name::parse_absolute(stem)
        && &from_file != origin
    {
        c.err(
            &raw.span(),
            "origin",
            format!("does not match the file name, which names {from_file}"),
        );
    }
}

pub(crate) fn ttl_value(c: &mut Collector<'_>, t: &Spanned<i64>, item: &str) -> u32 {
    let v = *t.get_ref();
    if !(0..=MAX_TTL).contains(&v) {
        c.err(
            &t.span(),
            item,
            format!("bad TTL: must be 0..={MAX_TTL} seconds"),
        );
        return 0;
    }
    v as u32
}

fn u32_field(c: &mut Collector<'_>, t: &Option<Spanned<i64>>, item: &str, default: u32) -> u32 {
    match t {
        None => default,
        Some(t) => {
            let v = *t.get_ref();
            if !(0..=i64::from(u32::MAX)).contains(&v) {
                c.err(&t.span(), item, "must be 0..=4294967295");
                default
            } else {
                v as u32
            }
        }
    }
}

fn soa(c: &mut Collector<'_>, origin: &Name, raw: &Spanned<RawSoa>, file: &Path) -> Soa {
    let r = raw.get_ref();
    let name = |c: &mut Collector<'_>, s: &Spanned<String>, item: &str| match Name::parse_in(
        s.get_ref(),
        origin,
    ) {
        Ok(n) => n,
        Err(e) => {
            c.err(&s.span(), item, e);
            origin.clone()
        }
    };
    let mname = name(c, &r.mname, "soa.mname");
    let rname = name(c, &r.rname, "soa.rname");
    let default_serial = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(1, |d| d.as_secs() as u32);
    let minimum = match &r.minimum {
        Some(t) => ttl_value(c, t, "soa.minimum"),
        None => 60,
    };
    Soa {
        mname,
        rname,
        serial: u32_field(c, &r.serial, "soa.serial", default_serial),
        refresh: u32_field(c, &r.refresh, "soa.refresh", 3600),
        retry: u32_field(c, &r.retry, "soa.retry", 600),
        expire: u32_field(c, &r.expire, "soa.expire", 604_800),
        minimum,
    }
}

fn record(
    c: &mut Collector<'_>,
    origin: &Name,
    zone_ttl: u32,
    raw: &Spanned<RawRecord>,
) -> Vec<Record> {
    let r = raw.get_ref();
    let item = format!("record {:?} {}", r.name.get_ref(), r.rtype.get_ref());
    let name = match Name::parse_in(r.name.get_ref(), origin) {
        Ok(n) => n,
        Err(e) => {
            c.err(&r.name.span(), &item, e);
            return Vec::new();
        }
    };
    if !name.is_within(origin) {
        c.err(
            &r.name.span(),
            &item,
            format!("name is outside the zone's origin {origin}"),
        );
        return Vec::new();
    }
    let ttl = r.ttl.as_ref().map_or(zone_ttl, |t| ttl_value(c, t, &item));
    let values: Vec<&Spanned<String>> = match (&r.value, &r.values) {
        (Some(v), None) => vec![v],
        (None, Some(vs)) if !vs.is_empty() => vs.iter().collect(),
        (Some(_), Some(_)) => {
            c.err(
                &raw.span(),
                &item,
                "give either `value` or `values`, not both",
            );
            return Vec::new();
        }
        _ => {
            c.err(&raw.span(), &item, "a record needs `value` or `values`");
            return Vec::new();
        }
    };
    let rtype = r.rtype.get_ref().to_ascii_uppercase();
    // TXT with `values` is one record of several strings; other types take one record per value.
    if rtype == "TXT" {
        let mut strings = Vec::new();
        for v in &values {
            match txt_strings(v.get_ref()) {
                Ok(s) => strings.extend(s),
                Err(e) => c.err(&v.span(), &item, e),
            }
        }
        return vec![Record {
            name,
            ttl,
            data: RecordData::Txt(strings),
        }];
    }
    let mut out = Vec::new();
    for v in values {
        match rdata(&rtype, v.get_ref(), origin) {
            Ok(data) => out.push(Record {
                name: name.clone(),
                ttl,
                data,
            }),
            Err(e) if e.starts_with("unknown record type") => {
                c.err(&r.rtype.span(), &item, e);
                return Vec::new();
            }
            Err(e) => c.err(&v.span(), &item, e),
        }
    }
    out
}

/// Parses one value in presentation format.
pub(crate) fn rdata(rtype: &str, value: &str, origin: &Name) -> Result<RecordData, String> {
    let v = value.trim();
    let name = |s: &str| Name::parse_in(s, origin);
    let fields: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str, what: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .map_err(|_| format!("bad {what} {s:?}: expected 0..=65535"))
    };
    match rtype {
        "A" => v
            .parse::<Ipv4Addr>()
            .map(RecordData::A)
            .map_err(|_| format!("bad address {v:?}: expected an IPv4 address")),
        "AAAA" => v
            .parse::<Ipv6Addr>()
            .map(RecordData::Aaaa)
            .map_err(|_| format!("bad address {v:?}: expected an IPv6 address")),
        "CNAME" => name(v).map(RecordData::Cname),
        "NS" => name(v).map(RecordData::Ns),
        "PTR" => name(v).map(RecordData::Ptr),
        "MX" => match fields.as_slice() {
            [p, e] => Ok(RecordData::Mx {
                preference: num(p, "preference")?,
                exchange: name(e)?,
            }),
            _ => Err("MX value is \"PREFERENCE EXCHANGE\"".into()),
        },
        "SRV" => match fields.as_slice() {
            [p, w, port, t] => Ok(RecordData::Srv {
                priority: num(p, "priority")?,
                weight: num(w, "weight")?,
                port: num(port, "port")?,
                target: name(t)?,
            }),
            _ => Err("SRV value is \"PRIORITY WEIGHT PORT TARGET\"".into()),
        },
        "CAA" => caa(v),
        "TXT" => txt_strings(v).map(RecordData::Txt),
        other => Err(format!(
            "unknown record type {other:?}: expected A, AAAA, CNAME, MX, TXT, SRV, CAA, NS or PTR"
        )),
    }
}

fn caa(v: &str) -> Result<RecordData, String> {
    let mut it = v.splitn(3, char::is_whitespace);
    let (Some(flags), Some(tag), Some(value)) = (it.next(), it.next(), it.next()) else {
        return Err("CAA value is \"FLAGS TAG VALUE\", e.g. 0 issue \"letsencrypt.org\"".into());
    };
    let flags: u8 = flags
        .parse()
        .map_err(|_| format!("bad CAA flags {flags:?}: expected 0..=255"))?;
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("bad CAA tag {tag:?}"));
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(value);
    let (critical, tag) = (flags & 0x80 != 0, tag.to_ascii_lowercase());
    crate::dns::check_caa(critical, &tag, value)?;
    Ok(RecordData::Caa {
        critical,
        tag,
        value: value.to_string(),
    })
}

/// A TXT value is taken as one string, split into 255-octet chunks as RFC 7208 §3.3 allows.
fn txt_strings(v: &str) -> Result<Vec<String>, String> {
    if v.len() > 4000 {
        return Err("TXT value is longer than 4000 octets".into());
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in v.chars() {
        if cur.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(ch);
    }
    out.push(cur);
    Ok(out)
}

/// Zone-wide name rules: CNAME alone at its name, no duplicate records, services not clashing
/// with static records.
fn check_names(c: &mut Collector<'_>, raw: &RawZone, zone: &Zone) {
    let mut by_name: BTreeMap<&Name, Vec<usize>> = BTreeMap::new();
    for (i, r) in zone.records.iter().enumerate() {
        by_name.entry(&r.name).or_default().push(i);
    }
    // Records failed validation are missing from zone.records, so map spans by position only
    // when every record survived; otherwise fall back to the name's first raw record.
    let span_of = |name: &Name| -> std::ops::Range<usize> {
        raw.records
            .iter()
            .find(|r| Name::parse_in(r.get_ref().name.get_ref(), &zone.origin).as_ref() == Ok(name))
            .map_or(0..0, |r| r.get_ref().name.span())
    };
    let service_names: HashSet<&Name> = zone.services.iter().map(|s| &s.name).collect();
    for (name, idx) in &by_name {
        let has_cname = idx
            .iter()
            .any(|&i| matches!(zone.records[i].data, RecordData::Cname(_)));
        if has_cname && (idx.len() > 1 || service_names.contains(name)) {
            c.err(
                &span_of(name),
                &format!("record {name} CNAME"),
                "CNAME beside other data: a name with a CNAME can have no other records",
            );
        }
        if has_cname && *name == &zone.origin {
            c.err(
                &span_of(name),
                &format!("record {name} CNAME"),
                "CNAME at the zone apex (it would sit beside SOA and NS)",
            );
        }
        let mut seen = HashSet::new();
        for &i in idx {
            let d = &zone.records[i].data;
            let key = format!("{d:?}");
            if !seen.insert(key) {
                c.err(
                    &span_of(name),
                    &format!("record {name} {}", d.type_name()),
                    "duplicate record",
                );
            }
        }
        let service_clash = zone.records[idx[0]].name == **name
            && service_names.contains(name)
            && idx
                .iter()
                .any(|&i| matches!(zone.records[i].data, RecordData::A(_) | RecordData::Aaaa(_)));
        if service_clash {
            c.err(
                &span_of(name),
                &format!("record {name}"),
                "a service already answers A and AAAA at this name",
            );
        }
    }
    let _ = raw;
}
